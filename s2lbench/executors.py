"""Executors run grid cells. The runner hands over a list of tasks and a function; an executor decides where
they run. ``local`` runs them one after another in this process (2-core machines gain nothing from more);
a cluster executor (submitit for SLURM, Ray) is a plugin that registers another class under a new name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from tqdm.auto import tqdm

from s2lbench import hookimpl


@dataclass(frozen=True)
class CellTask:
    cell_id: str
    payload: Any


class Executor:
    name: ClassVar[str]

    def run(self, tasks: Sequence[CellTask], fn: Callable[[Any], str | None]) -> Iterator[tuple[str, str | None]]:
        """Yield (cell_id, error or None) as cells finish. ``fn`` records its own results and never raises."""
        raise NotImplementedError


class LocalExecutor(Executor):
    name = "local"

    def run(self, tasks, fn):
        for task in tqdm(tasks, desc="cells", unit="cell"):
            yield task.cell_id, fn(task.payload)


@hookimpl
def register_executors(register):
    register(LocalExecutor)
