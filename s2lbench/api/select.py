"""``s2lbench.select``: run one selector on records in memory, a pool file or a ``datasets.Dataset``, and get
the selected rows back in the same kind.

A selector that reads proxy signals (s2l, el2n, ...) gets them from ``signals`` (a signals folder, a
``SignalSet`` or ``{name: array}``) or, given ``proxy``, from the same stages ``s2lbench subset`` runs,
cached in ``out`` (default: a folder per pool under ``$S2LBENCH_CACHE``, else ``~/.cache/s2lbench``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from s2lbench.api.subset import subset
from s2lbench.errors import ConfigError, DataError
from s2lbench.plugin_manager import get_hooks
from s2lbench.pool.loaders import load_pool, read_rows, records_from_rows, resolve_columns, write_pool
from s2lbench.pool.records import Pool
from s2lbench.selection import parse_options, run_selector
from s2lbench.signals.signalset import SignalSet
from s2lbench.signals.stage import PROXY_SIGNALS

#: what an in-memory list of records is called in error messages ("records, line 3, field 'output': ...")
RECORDS = "records"


@dataclass
class SelectResult:
    """The selected rows in the kind the pool came in (a list of dicts for records and files, a
    ``datasets.Dataset`` for a Dataset), their positions in the pool (ascending), their ids, and the
    selector's diagnostics."""

    rows: Any
    positions: np.ndarray
    ids: list[str]
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def is_dataset(obj: Any) -> bool:
    """A ``datasets.Dataset``, recognised without importing ``datasets`` when it is not one."""
    return any(cls.__module__.startswith("datasets") and cls.__name__ == "Dataset" for cls in type(obj).__mro__)


def as_pool(pool: Any, *, preset: str | None = None, columns: Mapping[str, str] | None = None) -> Pool:
    """A ``Pool`` from records (a list of dicts), a file path / ``hf://`` id, or a ``datasets.Dataset``;
    rows are validated as a pool file's (one-line ``DataError`` naming the row)."""
    if isinstance(pool, Pool):
        return pool
    if isinstance(pool, (str, os.PathLike)):
        return load_pool(pool, preset=preset, columns=columns)
    origin = "dataset" if is_dataset(pool) else RECORDS
    if not is_dataset(pool) and not (isinstance(pool, Sequence) and not isinstance(pool, (str, bytes))):
        raise DataError(f"a pool is a list of dicts, a file path or a datasets.Dataset, not a "
                        f"{type(pool).__name__}")
    rows = []
    for i, row in enumerate(pool, 1):
        if not isinstance(row, Mapping):
            raise DataError(f"is a {type(row).__name__}, not a dict", path=origin, line=i)
        rows.append((i, row))
    mapping = resolve_columns(preset, columns, rows[0][1] if rows else None, origin)
    examples = records_from_rows(rows, mapping, origin=origin, default_source="default",
                                 optional={"id", "input", "source"} - set(columns or {}))
    return Pool(examples, name=origin)


def load_signals(signals: Any, pool: Pool) -> SignalSet:
    """A ``SignalSet`` from a signals folder (checked against the pool), a SignalSet, or ``{name: array}``."""
    if signals is None:
        return SignalSet()
    if isinstance(signals, SignalSet):
        return signals
    if isinstance(signals, Mapping):
        return SignalSet({name: np.asarray(a) for name, a in signals.items()})
    found = SignalSet.from_dir(signals)
    expected = found.manifest.get("pool_fingerprint")
    if expected and expected != pool.fingerprint():
        raise DataError(f"signals were computed for pool {expected}, but this pool is {pool.fingerprint()}",
                        path=Path(signals) / "manifest.json")
    return found


def default_work_dir(pool: Pool) -> Path:
    root = Path(os.environ.get("S2LBENCH_CACHE") or Path.home() / ".cache" / "s2lbench").expanduser()
    return root / "select" / pool.fingerprint()


def select(pool: Any, selector: str, budget: int | float | str, *, seed: int = 0, proxy: str | None = None,
           signals: Any = None, options: Mapping[str, Any] | None = None,
           proxy_train: Mapping[str, Any] | None = None, out: str | Path | None = None,
           preset: str | None = None, columns: Mapping[str, str] | None = None, check_determinism: bool = False,
           report: Callable[[str], None] | None = print) -> SelectResult:
    """Select ``budget`` (a count, or a fraction of the pool: ``0.1``, ``"10%"``) examples of ``pool`` with
    the registered ``selector``. See docs/api.md. ``s2lbench select`` runs this function."""
    if proxy is not None and signals is not None:
        raise ConfigError("give either proxy= (signals computed here) or signals=, not both")
    records = as_pool(pool, preset=preset, columns=columns)
    selector_cls = get_hooks().selector(selector)
    needed = set(selector_cls.required_signals(parse_options(selector_cls, options)))
    if proxy is not None and needed & PROXY_SIGNALS:
        work = Path(out) if out is not None else default_work_dir(records)
        in_memory = not isinstance(pool, (str, os.PathLike))
        source = _pool_file(pool, records, work)
        done = subset(source, selector, budget, out=work, proxy=proxy, proxy_train=proxy_train, options=options,
                      seed=seed, preset="s2lbench" if in_memory else preset, columns=None if in_memory else columns,
                      report=report)
        positions, diagnostics = done.positions, done.diagnostics
    else:  # a selector reading signals that are not given raises MissingSignalError, naming how to get them
        result = run_selector(selector_cls, records, budget, seed, signals=load_signals(signals, records),
                              options=options, check_determinism=check_determinism)
        positions, diagnostics = np.asarray(result.positions, dtype=np.int64), dict(result.diagnostics)
    ids = [records[int(p)].id for p in positions]
    return SelectResult(_rows_like(pool, records, positions), positions, ids, diagnostics)


def _pool_file(pool: Any, records: Pool, work: Path) -> Any:
    """A file the stages can read: the pool's own path, else its records written into the work folder."""
    if isinstance(pool, (str, os.PathLike)):
        return pool
    path = work / "pool.jsonl"
    write_pool(path, records)  # the stages key on its content, not on this file: rewriting it costs nothing
    return str(path)


def _rows_like(pool: Any, records: Pool, positions: np.ndarray) -> Any:
    picked = [int(p) for p in positions]
    if is_dataset(pool):
        return pool.select(picked)
    if isinstance(pool, (str, os.PathLike)):
        if str(pool).startswith("hf://"):
            return [records[p].to_dict() for p in picked]
        rows = read_rows(pool)
        return [rows[p] for p in picked]
    if isinstance(pool, Pool):
        return pool.subset(picked)
    return [pool[p] for p in picked]
