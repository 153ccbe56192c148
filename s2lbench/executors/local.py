"""The ``local`` executor: the grid's cells one after another (2-core machines gain nothing from more), each
in a child process (``isolation.py``) so a native abort fails that cell, not the grid."""

from __future__ import annotations

from dataclasses import dataclass

from s2lbench import hookimpl
from s2lbench.errors import ConfigError
from s2lbench.executors.base import Executor
from s2lbench.executors.isolation import START_METHODS, run_isolated


@dataclass(frozen=True)
class LocalOptions:
    #: how each cell's process starts: fork / forkserver / spawn; "none" runs cells in this process;
    #: "auto": fork, or spawn where this process has initialised CUDA
    isolate: str = "auto"

    def __post_init__(self):
        if self.isolate not in (*START_METHODS, "auto"):
            raise ConfigError(f"executor_options.isolate: {self.isolate!r} is not one of auto, "
                              f"{', '.join(START_METHODS)}")


class LocalExecutor(Executor):
    name = "local"
    Options = LocalOptions

    def run(self, grid):
        method = None if self.options is None or self.options.isolate == "auto" else self.options.isolate
        for task in grid.tasks:  # the runner shows the grid's progress (common/console.py)
            yield task.cell_id, run_isolated(grid.run_cell, task.payload, method)


@hookimpl
def register_executors(register):
    register(LocalExecutor)
