"""Radiology reports (findings -> impression) as a pool: read, split with a seed, and the training side.

The radiology evaluators (``evaluators/radiology.py``) test on the other side of the same seeded split, so a
pool and its evaluator never share a report. The files are read in place and never written anywhere: the
Indiana reports are CC BY-NC-ND, MIMIC-III is credentialed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from s2lbench.common.files import read_json_rows, read_text
from s2lbench.errors import ConfigError, DataError
from s2lbench.pool.prompts import RADIOLOGY_INSTRUCTION
from s2lbench.pool.records import Pool, SFTExample

INDIANA_FILE = "indiana_reports.csv"


@dataclass(frozen=True)
class Report:
    id: str
    findings: str
    impression: str


def _text(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def read_reports(path: Path | str) -> list[Report]:
    """Reports with non-empty findings and impression, in file order; errors name the file and column."""
    path = Path(path)
    if not path.is_file():
        raise DataError("radiology reports file not found", path=path)
    if path.suffix.lower() in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(read_text(path, "reports file"), newline=""),
                                delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        try:
            rows = list(reader)
        except csv.Error as e:
            raise DataError(f"malformed CSV: {e}", path=path) from None
        _refuse_repeated_columns(reader.fieldnames or [], path)
    else:
        rows = read_json_rows(path)
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise DataError(f"item {i} is a {type(row).__name__}, not an object", path=path)
    if rows and not {"findings", "impression"} <= set(rows[0]):
        raise DataError(f"expected columns 'findings' and 'impression', found {sorted(rows[0])}", path=path)
    reports = []
    for i, row in enumerate(rows):
        findings, impression = _text(row.get("findings")), _text(row.get("impression"))
        if not findings or not impression:
            continue
        rid = next((str(row[k]) for k in ("id", "uid", "ROW_ID", "note_id") if row.get(k) not in (None, "")), str(i))
        reports.append(Report(rid, findings, impression))
    if not reports:
        raise DataError("no report has both findings and impression", path=path)
    return reports


def _refuse_repeated_columns(names: Sequence[str], path: Path) -> None:
    """csv.DictReader keeps the last of two columns with one name: a findings column could vanish unseen."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"the header names column(s) {', '.join(map(repr, repeated))} twice", path=path, line=1)


def split_reports(reports: Sequence[Report], seed: int, test_size: int,
                  where: str = "") -> tuple[list[Report], list[Report]]:
    """(train, test): a seeded permutation; the same seed and size always give the same disjoint split.
    ``where`` (``"FILE: task options."``) prefixes the error about ``test_size``."""
    if not 0 < test_size < len(reports):
        if len(reports) < 2:
            raise ConfigError(f"{where}test_size: {test_size}, but only {len(reports)} report has findings and an "
                              "impression (a split needs at least 2)")
        raise ConfigError(f"{where}test_size: {test_size} must be between 1 and {len(reports) - 1} "
                          f"({len(reports)} reports have findings and an impression)")
    order = np.random.default_rng(seed).permutation(len(reports))
    test = sorted(order[:test_size].tolist())
    train = sorted(order[test_size:].tolist())
    return [reports[i] for i in train], [reports[i] for i in test]


def radiology_train_pool(path: Path | str, seed: int = 0, test_size: int = 500, source: str = "radiology") -> Pool:
    """The training side of the split as a Pool (instruction / input = findings / output = impression)."""
    train, _ = split_reports(read_reports(path), seed, test_size, where=f"{path}: {source} pool ")
    examples = [SFTExample(id=f"{source}-{r.id}", instruction=RADIOLOGY_INSTRUCTION, input=r.findings,
                           output=r.impression, source=source) for r in train]
    return Pool(examples, name=f"{source}-train-seed{seed}")
