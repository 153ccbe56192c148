"""Regression testing: snapshot a results store and compare it with a committed reference.

A snapshot holds, per grid cell ``(target, selector, budget, seed)``, its status, the hash of the
selected example ids, and every ``task/metric`` value. :func:`compare` reports every difference as a
:class:`Move`; a move *fails* when it is outside its tolerance:

- selected-subset hashes must match exactly (selection is deterministic given a seed and its signals; the
  regression grid trains in fp32, since CPU bf16 kernels round differently across ISAs and thread counts and
  a proxy 2e-4 away moves an S2L cluster boundary);
- a score may move by at most its absolute tolerance: ``DEFAULT_SCORE_TOLERANCE`` (0.02) unless a
  per-metric tolerance says otherwise. CPU training with fixed seeds is bit-for-bit repeatable on one
  machine, but BLAS kernels (and so the last bits of every matmul) differ across CPUs, and a few
  greedy-decoding flips on a small test set move accuracy by a point or two;
- a cell or metric in the reference that is missing now (or a cell that is no longer ``done``) fails;
  one that is new is reported but does not fail (update the reference to adopt it).

Tolerances live in the reference file itself (``"tolerances"``), so they are reviewed with it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from s2lbench.common.atomic import write_json
from s2lbench.common.files import read_json
from s2lbench.common.typed import from_dict
from s2lbench.errors import ConfigError, DataError
from s2lbench.results.store import DB_NAME, ResultsStore

FORMAT_VERSION = 1
DEFAULT_SCORE_TOLERANCE = 0.02
SUBSET = "selected_ids_hash"
STATUS = "status"


@dataclass
class Tolerances:
    """Absolute score tolerances: ``per_metric`` (metric name, or ``task/metric``) overrides ``default``."""

    default: float = DEFAULT_SCORE_TOLERANCE
    per_metric: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        check_tolerance(self.default, "default")
        for metric, value in self.per_metric.items():
            check_tolerance(value, f"per_metric.{metric}")

    def for_metric(self, key: str) -> float:
        task, _, metric = key.partition("/")
        return self.per_metric.get(key, self.per_metric.get(metric, self.default))

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Tolerances:
        return from_dict(cls, dict(data or {}), where="tolerances")


def check_tolerance(value: float, where: str) -> None:
    """A finite number >= 0: a NaN tolerance would pass every move (comparisons with NaN are false)."""
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: {value} must be a finite number >= 0")


def cell_key(target: str, selector: str, budget: int, seed: int) -> str:
    return f"{target}|{selector}|{budget}|{seed}"


def snapshot(store_dir: str | Path | ResultsStore, experiment: str | None = None) -> dict[str, Any]:
    """Every cell's status, selected-subset hash and metric values, keyed by ``target|selector|budget|seed``."""
    folder = store_dir.folder if isinstance(store_dir, ResultsStore) else Path(store_dir)
    if not (folder / DB_NAME).exists():
        raise DataError(f"no results store ({DB_NAME}) in this folder", path=folder)
    store = ResultsStore(folder, read_only=True)
    cells: dict[str, Any] = {}
    ids = {}
    for c in store.cells(experiment):
        key = cell_key(c.target, c.selector, c.budget, c.seed)
        if key in cells:
            raise DataError(f"two cells share the key {key} ({ids[key]} and {c.cell_id}); "
                            "pass --experiment to snapshot one experiment", path=store.path)
        ids[key] = c.cell_id
        cells[key] = {"target": c.target, "selector": c.selector, "budget": c.budget, "seed": c.seed,
                      STATUS: c.status, SUBSET: c.selected_ids_hash, "metrics": {}}
    by_id = {cid: key for key, cid in ids.items()}
    for r in store.results():
        if r.cell_id in by_id:
            cells[by_id[r.cell_id]]["metrics"][f"{r.task}/{r.metric}"] = r.value
    return {"format": FORMAT_VERSION, "cells": dict(sorted(cells.items()))}


@dataclass(frozen=True)
class Move:
    cell: str
    what: str  # "task/metric", "selected_ids_hash", "status" or "cell"
    reference: Any
    current: Any
    tolerance: float | None  # None for exact comparisons
    fails: bool

    @property
    def delta(self) -> float | None:
        if isinstance(self.reference, (int, float)) and isinstance(self.current, (int, float)):
            return self.current - self.reference
        return None


def _numbers_differ(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is not b
    if math.isnan(a) and math.isnan(b):
        return False
    return a != b


def compare(current: dict[str, Any], reference: dict[str, Any], tolerances: Tolerances | None = None) -> list[Move]:
    """Every difference between two snapshots, each flagged whether it fails its tolerance."""
    tol = tolerances or Tolerances()
    cur, ref = current.get("cells", {}), reference.get("cells", {})
    moves: list[Move] = []
    for key in sorted(set(ref) | set(cur)):
        if key not in cur:
            moves.append(Move(key, "cell", "present", "missing", None, True))
            continue
        if key not in ref:
            moves.append(Move(key, "cell", "absent", "new", None, False))
            continue
        r, c = ref[key], cur[key]
        if r.get(STATUS) != c.get(STATUS):
            moves.append(Move(key, STATUS, r.get(STATUS), c.get(STATUS), None, c.get(STATUS) != "done"))
        if r.get(SUBSET) != c.get(SUBSET):
            moves.append(Move(key, SUBSET, r.get(SUBSET), c.get(SUBSET), 0.0, True))
        rm, cm = r.get("metrics", {}), c.get("metrics", {})
        for metric in sorted(set(rm) | set(cm)):
            if metric not in cm:
                moves.append(Move(key, metric, rm[metric], "missing", None, True))
            elif metric not in rm:
                moves.append(Move(key, metric, "absent", cm[metric], None, False))
            elif _numbers_differ(rm[metric], cm[metric]):
                t = tol.for_metric(metric)
                a, b = rm[metric], cm[metric]
                outside = a is None or b is None or math.isnan(a) or math.isnan(b) or abs(b - a) > t + 1e-12
                moves.append(Move(key, metric, a, b, t, outside))
    return moves


def failures(moves: list[Move]) -> list[Move]:
    return [m for m in moves if m.fails]


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, str) and len(value) > 16:
        return value[:12] + "…"
    return "—" if value is None else str(value)


def format_moves(moves: list[Move]) -> str:
    """A fixed-width table of moves, failures first."""
    if not moves:
        return "nothing moved"
    header = ("verdict", "cell (target|selector|budget|seed)", "what", "reference", "current", "delta", "tolerance")
    rows = [header]
    for m in sorted(moves, key=lambda m: (not m.fails, m.cell, m.what)):
        delta = "" if m.delta is None else f"{m.delta:+.4f}"
        tol = "exact" if m.tolerance == 0.0 else ("" if m.tolerance is None else f"±{m.tolerance:g}")
        rows.append(("FAIL" if m.fails else "ok", m.cell, m.what, _text(m.reference), _text(m.current), delta, tol))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def load_reference(path: str | Path) -> tuple[dict[str, Any], Tolerances]:
    path = Path(path)
    if not path.exists():
        raise DataError("reference file not found (create it with `s2lbench regress DIR --reference FILE --update`)",
                        path=path)
    data = read_json(path)
    if not isinstance(data, dict) or "cells" not in data:
        raise DataError("not a regression reference (expected an object with 'cells')", path=path)
    if data.get("format") != FORMAT_VERSION:
        raise DataError(f"reference format {data.get('format')!r}, this s2lbench reads {FORMAT_VERSION}", path=path)
    check_reference(data, path)
    try:
        return data, Tolerances.from_dict(data.get("tolerances"))
    except ConfigError as e:
        raise DataError(str(e), path=path) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_reference(data: dict[str, Any], path: Path) -> None:
    """Every cell an object with the snapshot's keys and types; errors name the cell and key."""
    cells = data["cells"]
    if not isinstance(cells, dict):
        raise DataError(f"'cells' must be an object (cell key -> cell), got {type(cells).__name__}", path=path,
                        field="cells")
    if data.get("tolerances") is not None and not isinstance(data["tolerances"], dict):
        raise DataError("'tolerances' must be an object", path=path, field="tolerances")
    for key, cell in cells.items():
        where = f"cells.{key}"
        if not isinstance(cell, dict):
            raise DataError(f"a cell must be an object, got {type(cell).__name__}", path=path, field=where)
        for name, ok, kind in ((STATUS, lambda v: isinstance(v, str), "a string"),
                               (SUBSET, lambda v: v is None or isinstance(v, str), "a string or null"),
                               ("metrics", lambda v: isinstance(v, dict), "an object (task/metric -> number)")):
            if name in cell and not ok(cell[name]):
                raise DataError(f"must be {kind}, got {cell[name]!r}", path=path, field=f"{where}.{name}")
        for metric, value in (cell.get("metrics") or {}).items():
            if value is not None and not _is_number(value):
                raise DataError(f"a metric value must be a number or null, got {value!r}", path=path,
                                field=f"{where}.metrics.{metric}")


def write_reference(path: str | Path, snap: dict[str, Any], tolerances: Tolerances) -> Path:
    """Write a snapshot with its tolerances as the new reference, atomically."""
    return write_json(path, {**snap, "tolerances": asdict(tolerances)})
