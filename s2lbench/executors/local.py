"""The ``local`` executor: the grid's cells one after another in this process (2-core machines gain nothing
from more)."""

from __future__ import annotations

from s2lbench import hookimpl
from s2lbench.executors.base import Executor


class LocalExecutor(Executor):
    name = "local"

    def run(self, grid):
        for task in grid.tasks:  # the runner shows the grid's progress (common/console.py)
            yield task.cell_id, grid.run_cell(task.payload)


@hookimpl
def register_executors(register):
    register(LocalExecutor)
