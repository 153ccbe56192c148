"""``s2lbench.load_results``: a results folder as one pandas DataFrame (one row per cell x task x metric, with
the cell's provenance), and ``load_samples``: the per-example samples behind one of its rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from s2lbench.errors import DataError
from s2lbench.results.store import ResultsStore

#: the DataFrame's columns, in order: what the cell is, the score, then where it came from
COLUMNS = ("experiment", "cell_id", "selector", "budget", "fraction", "seed", "target", "task", "metric", "value",
           "higher_is_better", "in_domain", "n", "samples_path", "status", "config_hash", "pool_fingerprint",
           "selected_ids_hash", "model_fingerprint", "git_commit", "s2lbench_version", "started_at",
           "finished_at")


def load_results(out: str | Path, *, experiment: str | None = None, include_unfinished: bool = False):
    """Every score of a results folder (the ``--out`` of ``s2lbench run``) as a ``pandas.DataFrame``.

    By default only finished cells, as the leaderboard reads them (its means over seeds are the means of
    ``value`` grouped by target, budget, selector, task and metric)."""
    import pandas as pd

    store = ResultsStore(out, read_only=True)
    cells = {c.cell_id: c for c in store.cells(experiment)}
    rows: list[dict[str, Any]] = []
    for r in store.results():
        cell = cells.get(r.cell_id)
        if cell is None or (cell.status != "done" and not include_unfinished):
            continue
        rows.append({"experiment": cell.experiment, "cell_id": cell.cell_id, "selector": cell.selector,
                     "budget": cell.budget, "fraction": cell.fraction, "seed": cell.seed, "target": cell.target,
                     "task": r.task, "metric": r.metric, "value": r.value, "higher_is_better": r.higher_is_better,
                     "in_domain": r.in_domain, "n": r.n, "samples_path": r.samples_path, "status": cell.status,
                     "config_hash": cell.config_hash, "pool_fingerprint": cell.pool_fingerprint,
                     "selected_ids_hash": cell.selected_ids_hash, "model_fingerprint": cell.model_fingerprint,
                     "git_commit": cell.git_commit, "s2lbench_version": (cell.versions or {}).get("s2lbench"),
                     "started_at": cell.started_at, "finished_at": cell.finished_at})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def load_samples(out: str | Path, cell_id: str, task: str):
    """The per-example samples (prompt, output, reference, scores, ...) of one cell on one task, as a
    ``pandas.DataFrame``."""
    import pandas as pd

    store = ResultsStore(out, read_only=True)
    for r in store.results(cell_id):
        if r.task == task and r.samples_path:
            return pd.DataFrame(store.load_samples(r.samples_path))
    raise DataError(f"no samples for cell {cell_id!r}, task {task!r}", path=store.path)
