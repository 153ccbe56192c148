"""A results folder as committed text: what a board's tables are computed from, beside the board.

``leaderboards/<board>/results/`` holds, one JSON object per line, sorted keys, in the store's order:

- ``cells.jsonl``: every cell of the store (its status, provenance, cost, regime);
- ``results.jsonl``: every (cell, task, metric) score;
- ``samples/<cell_id>/<task>.jsonl``: the per-example samples the paired tests resample (``index``, ``id``
  and ``scores``; plus the model's ``output`` (and a hybrid backend's ``backup_output``), the answer
  ``extracted`` from it and the ``reference``, so a fixed grader can re-score them, except for tasks whose
  data may not be redistributed, :data:`SCORES_ONLY_TASKS`; never the prompt, which the test set rebuilds);
- ``config.json`` and ``invocations.jsonl`` copied from the run (the provenance reads them).

Never weights, generations caches or stages. Text, so a rerun shows as a diff; small (see docs/leaderboards.md
for the measured sizes). :func:`open_results` opens either kind of folder, so ``s2lbench leaderboard``
reads a committed board exactly as it reads a run folder and reproduces its tables byte for byte.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from s2lbench.common.atomic import atomic_dir
from s2lbench.common.files import iter_jsonl
from s2lbench.errors import DataError
from s2lbench.results.store import (
    DB_NAME,
    INVOCATIONS,
    SAMPLES_DIR,
    Cell,
    ResultRow,
    ResultsStore,
    cell_from_record,
    result_from_record,
)

CELLS_FILE = "cells.jsonl"
RESULTS_FILE = "results.jsonl"
CONFIG_FILE = "config.json"
#: tasks whose test data is licensed (CC BY-NC-ND radiology reports; MIMIC under its DUA): their samples are
#: exported with scores only, never the report text or the model's output about it
SCORES_ONLY_TASKS = ("radiology*",)
#: sample fields kept for every task, and the text fields kept where the task's data may be shared
SCORE_FIELDS = ("index", "id", "scores")
TEXT_FIELDS = ("output", "extracted", "reference", "backup_output")


def is_export(folder: str | Path) -> bool:
    folder = Path(folder)
    return (folder / CELLS_FILE).is_file() and not (folder / DB_NAME).exists()


def open_results(folder: str | Path) -> ResultsStore:
    """A results folder for reading: a run's (``results.sqlite``) or a committed export (``cells.jsonl``)."""
    folder = Path(folder)
    if is_export(folder):
        return ExportedResults(folder)
    if not folder.is_dir():
        raise DataError("no results store here: folder not found", path=folder)
    if not (folder / DB_NAME).exists():
        raise DataError(f"no results store ({DB_NAME}) in this folder, nor the {CELLS_FILE} of a board's "
                        "committed results", path=folder)
    return ResultsStore(folder, read_only=True)


class ExportedResults(ResultsStore):
    """A committed export, read through the store's read interface (cells, results, samples). Read-only."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.read_only = True
        self.path = self.folder / CELLS_FILE
        self._cells = [cell_from_record(_cell_columns(row, self.path, n), self.path)
                       for n, row in iter_jsonl(self.path, "exported cells")]
        results_path = self.folder / RESULTS_FILE
        self._results = [result_from_record(_result_columns(row, results_path, n), results_path)
                         for n, row in iter_jsonl(results_path, "exported results")] if results_path.exists() else []

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        raise DataError("an exported results folder is read-only (it has no database)", path=self.folder)
        yield  # pragma: no cover

    def get_cell(self, cell_id: str) -> Cell | None:
        return next((c for c in self._cells if c.cell_id == cell_id), None)

    def cells(self, experiment: str | None = None) -> list[Cell]:
        chosen = [c for c in self._cells if experiment is None or c.experiment == experiment]
        return sorted(chosen, key=lambda c: (c.target, c.selector, c.budget, c.seed))

    def results(self, cell_id: str | None = None) -> list[ResultRow]:
        chosen = [r for r in self._results if cell_id is None or r.cell_id == cell_id]
        return sorted(chosen, key=lambda r: (r.cell_id, r.task, r.metric))

    def is_live(self, cell_id: str) -> bool:
        return False  # nothing runs in a committed export: a cell left "running" was interrupted


def _cell_columns(row: Any, path: Path, line: int) -> dict[str, Any]:
    fields = {f.name for f in dataclasses.fields(Cell)}
    if not isinstance(row, dict) or "cell_id" not in row or set(row) - fields:
        raise DataError(f"not an exported cell (unknown keys {sorted(set(row) - fields) if isinstance(row, dict) else row!r})",
                        path=path, line=line)
    data = {name: row.get(name) for name in fields}
    for col in ("versions", "cost", "environment", "regime"):  # the store keeps these as JSON text
        data[col] = json.dumps(data[col]) if data[col] is not None else None
    return data


def _result_columns(row: Any, path: Path, line: int) -> dict[str, Any]:
    fields = [f.name for f in dataclasses.fields(ResultRow)]
    if not isinstance(row, dict) or not {"cell_id", "task", "metric"} <= set(row):
        raise DataError("not an exported result (needs cell_id, task and metric)", path=path, line=line)
    return {name: row.get(name) for name in fields}


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False) + "\n"


def _scores_only(task: str) -> bool:
    return any(fnmatch.fnmatch(task, pattern) for pattern in SCORES_ONLY_TASKS)


def withheld_tasks(store: ResultsStore) -> list[str]:
    """The store's tasks whose per-example scores may not leave the machine (:data:`SCORES_ONLY_TASKS`):
    a board of them commits its tables and figures, not ``results/`` (the paired tests need per-report
    scores, which are derived from the reports; rerunning the grid on the data regenerates the board)."""
    return sorted({r.task for r in store.results() if _scores_only(r.task)})


def export_results(store: ResultsStore, dest: str | Path, experiment: str | None = None) -> Path:
    """Write ``store``'s cells (of ``experiment``, or all), scores and per-example samples to ``dest`` as text
    (module docstring), replacing a previous export there as a unit."""
    cells = store.cells(experiment)
    ids = {c.cell_id for c in cells}
    rows = [r for r in store.results() if r.cell_id in ids]
    with atomic_dir(dest, marker=CELLS_FILE) as tmp:
        (tmp / CELLS_FILE).write_text("".join(_line(dataclasses.asdict(c)) for c in cells), encoding="utf-8")
        (tmp / RESULTS_FILE).write_text("".join(_line(dataclasses.asdict(r)) for r in rows), encoding="utf-8")
        for rel in sorted({r.samples_path for r in rows if r.samples_path}):
            task = Path(rel).stem
            keep = SCORE_FIELDS if _scores_only(task) else SCORE_FIELDS + TEXT_FIELDS
            samples = store.load_samples(rel)
            out = tmp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("".join(_line({k: s[k] for k in keep if s.get(k) is not None}) for s in samples),
                           encoding="utf-8")
        for name in (CONFIG_FILE, INVOCATIONS):
            if (store.folder / name).is_file():
                shutil.copyfile(store.folder / name, tmp / name)
    return Path(dest)


__all__ = ["CELLS_FILE", "RESULTS_FILE", "SAMPLES_DIR", "ExportedResults", "export_results", "is_export",
           "open_results", "withheld_tasks"]
