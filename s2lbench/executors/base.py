"""Executors run grid cells. The runner hands over a :class:`Grid` (the cells and three functions); an
executor decides where they run. ``local`` (``local.py``) runs them one after another in this process (2-core
machines gain nothing from more); ``ray`` and ``slurm`` (``ray_executor.py``, ``slurm_executor.py``) spread
them over a cluster. All three are plugins, loaded through entry points like any third party's.

Every function in a :class:`Grid` records its own results in the output folder and never raises, so an
executor only schedules; what a cell did is in the results store whichever process ran it. The functions
pickle (the runner drops its caches and plugin manager when pickled), so they can travel to other machines
that see the same output folder.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from s2lbench.common import console
from s2lbench.common.typed import from_dict
from s2lbench.errors import ConfigError


@dataclass(frozen=True)
class CellTask:
    cell_id: str
    payload: Any


@dataclass(frozen=True)
class Grid:
    tasks: Sequence[CellTask]
    #: runs one cell end to end (payload -> error or None)
    run_cell: Callable[[Any], str | None]
    #: computes the stages every cell shares (gym, proxy, signals, text embeddings) -> error or None. A
    #: parallel executor calls it once before the cells, so they find those stages finished rather than
    #: queueing on their locks; a sequential one may skip it (the first cell computes them).
    shared: Callable[[], str | None] | None = None
    #: a cell's CPU-only stages (selection) -> error or None, for executors that place them apart from the
    #: GPU stages; ``run_cell`` finds them cached (or computes them itself when this was skipped)
    cpu_stages: Callable[[Any], str | None] | None = None


class Executor:
    """Subclasses set ``name`` and may declare an ``Options`` dataclass, filled from ``executor_options``."""

    name: ClassVar[str]
    Options: ClassVar[type | None] = None

    def __init__(self, options: Any = None, out_dir: str | Path | None = None):
        self.options = options
        self.out_dir = Path(out_dir) if out_dir is not None else None

    @classmethod
    def parse_options(cls, data: dict[str, Any] | None, where: str = "executor_options") -> Any:
        data = dict(data or {})
        if cls.Options is None:
            if data:
                raise ConfigError(f"{where}: executor {cls.name!r} takes no options (got {', '.join(sorted(data))})")
            return None
        return from_dict(cls.Options, data, where=where)

    def run(self, grid: Grid) -> Iterator[tuple[str, str | None]]:
        """Yield (cell_id, error or None) as cells finish."""
        raise NotImplementedError


def check_shared_folder(out_dir: Path, probe: Callable[[str, str], list[tuple[str, bool]]]) -> None:
    """Refuse to start unless every worker node sees ``out_dir``: write a token file and have ``probe(path,
    token)`` report ``(node, saw it)`` per node. Stages, locks and the results store all live in that folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    path = out_dir / f".shared-fs-check-{token}"
    path.write_text(token)
    try:
        blind = [node for node, seen in probe(str(path.resolve()), token) if not seen]
    finally:
        path.unlink(missing_ok=True)
    if blind:
        raise ConfigError(f"--out {out_dir}: not visible from worker node(s) {', '.join(blind)}; the "
                          "cluster executors need the output folder on a filesystem every node mounts "
                          "(NFS, Lustre, ...) at the same path")


def sees_token(path: str, token: str) -> bool:
    try:
        return Path(path).read_text() == token
    except OSError:
        return False


def set_torch_threads(threads: int | None) -> None:
    """Pin torch's intra-op CPU threads in a worker (None: leave the default). On CPU the last bits of a
    matmul depend on how many threads split it, so equal results across executors need equal counts."""
    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))


class Pinned:
    """``fn`` with torch's thread count pinned first and its log lines in each cell's log under ``out_dir``
    (``<out>/logs/cells/<cell id>.log``): what a job on another process runs."""

    def __init__(self, fn: Callable[..., Any], threads: int | None, out_dir: str | Path | None = None):
        self.fn, self.threads, self.out_dir = fn, threads, out_dir

    def __call__(self, *args: Any) -> Any:
        set_torch_threads(self.threads)
        with console.worker_logs(self.out_dir):
            return self.fn(*args)
