"""Score against total compute: what each board row spent, in FLOPs as the stages recorded them.

A cell's total is its proxy training + signal pass (+ the optional signals and the selection, where a stage
records FLOPs) + its target fine-tune. Recorded: ``proxy_flops`` and ``finetune_flops`` (6 x parameters x
tokens trained), ``signals_flops`` (2 x parameters x tokens per checkpoint). Not recorded, so counted as 0
and named on the figure: text embeddings, IFD / dev-set / gradient passes and the selector itself (their
stages record seconds only; S2L's k-means is ~2 x rows x K x checkpoints x iterations, a few hundred MFLOPs
on the gym, far below the proxy). A selector reads the proxy and signals once for every budget and seed: each
cell is charged the whole of it, as it would be if run alone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from s2lbench.errors import DataError
from s2lbench.report.leaderboard import SELECTION_FLOPS_KEYS, build_leaderboard
from s2lbench.results.export import open_results
from s2lbench.results.store import Cell, ResultsStore

FINETUNE_FLOPS = "finetune_flops"
TOTAL_FLOPS_KEYS = (*SELECTION_FLOPS_KEYS, FINETUNE_FLOPS)
#: stages whose cost is recorded in seconds only (named on the figure)
UNRECORDED = ("text embeddings", "IFD / dev-set / gradient passes", "the selector")


def total_flops(cell: Cell) -> float | None:
    """The cell's recorded FLOPs, selection and fine-tune; None when its fine-tune recorded none."""
    if not cell.cost.get(FINETUNE_FLOPS):
        return None
    return float(sum(float(cell.cost.get(k) or 0.0) for k in TOTAL_FLOPS_KEYS))


@dataclass
class ComputePoint:
    selector: str
    budget: int
    flops: float  # mean over the row's seeds
    mean: float  # display-scaled, as the board shows it
    std: float
    is_reference: bool


@dataclass
class ComputePanel:
    target: str
    column: str
    metric: str
    points: list[ComputePoint]
    unit: str  # " (%)" when scores are shown x100


def compute_series(store_dir: str | Path | ResultsStore, *, column: str = "avg", metric: str | None = None,
                   experiment: str | None = None) -> list[ComputePanel]:
    """Per target: each board row (selector x budget) at its mean total FLOPs and its score in ``column``."""
    store = store_dir if isinstance(store_dir, ResultsStore) else open_results(store_dir)
    lb = build_leaderboard(store, by="target", metric=metric, experiment=experiment, paired_tests=False)
    flops: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for c in store.cells(experiment):
        if c.status == "done" and (total := total_flops(c)) is not None:
            flops[(c.target, c.selector, c.budget)].append(total)
    panels = []
    for table in lb.tables:
        col = next((c for c in table.columns if c.key == column), None)
        if col is None:
            raise DataError(f"no column {column!r} for target {table.target}; have "
                            f"{', '.join(c.key for c in table.columns)}", path=store_dir)
        points = []
        for row in table.rows:
            s = row.cells[col.key].summary
            spent = flops.get((table.target, row.selector, row.budget))
            if s is None or not spent:
                continue
            points.append(ComputePoint(row.selector, row.budget, float(np.mean(spent)), s.mean * lb.scale,
                                       (s.std or 0.0) * lb.scale, row.is_reference))
        if points:
            panels.append(ComputePanel(table.target, col.label if col.key != "avg" else "average over tasks",
                                       col.metric.split("+")[0], points, " (%)" if lb.scale == 100.0 else ""))
    if not panels:
        raise DataError("no finished cell recorded its fine-tune FLOPs: no compute figure", path=store_dir)
    return panels
