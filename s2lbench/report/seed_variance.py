"""A seed standard deviation measured elsewhere, for boards whose rows have one seed.

One seed cannot say how much a fine-tune moves with its seed, so a one-seed board makes no significance marks
unless it is given such an estimate, and names it in its footnote. Two sources:

- another board's ``leaderboard.csv`` with several seeds (``--seed-sd-from``): per column, the pooled sample
  standard deviation over its rows, ``sqrt(sum (n_i - 1) s_i^2 / sum (n_i - 1))``, with ``sum (n_i - 1)``
  degrees of freedom (the full-data reference included, a row with one seed left out). An average column the
  other board lacks (its average spans other sets) is built from its sets' figures as if they were
  independent, ``sqrt(sum s_t^2) / T``, with the smallest of their degrees of freedom;
- a number (``--seed-sd``), in the metric's units (0.03 = 3 accuracy points), taken as exact (df infinite).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from s2lbench.errors import DataError
from s2lbench.report.stats import ExternalSeedSD


@dataclass(frozen=True)
class SeedSDSource:
    """Per column key a ``(sd, df)``; ``default`` (a given number) applies to every column."""

    name: str
    per_column: dict[str, tuple[float, float]] = field(default_factory=dict)
    default: float | None = None

    def for_column(self, key: str, tasks: Sequence[str]) -> ExternalSeedSD | None:
        if self.default is not None:
            return ExternalSeedSD(self.default, math.inf, self.name)
        if key in self.per_column and (len(tasks) == 1 or key not in tasks):
            sd, df = self.per_column[key]
            return ExternalSeedSD(sd, df, self.name)
        if len(tasks) > 1 and all(t in self.per_column for t in tasks):
            figures = [self.per_column[t] for t in tasks]
            sd = math.sqrt(sum(s * s for s, _ in figures)) / len(figures)
            return ExternalSeedSD(sd, min(df for _, df in figures), self.name)
        return None


def given_seed_sd(value: float) -> SeedSDSource:
    if not (value > 0 and math.isfinite(value)):
        raise DataError(f"--seed-sd {value}: a seed standard deviation must be a positive number")
    return SeedSDSource(f"a seed sd of {value:g} given with --seed-sd", default=value)


def seed_sd_from_board(path: str | Path) -> SeedSDSource:
    """Pooled per-column seed standard deviations of a committed board's ``leaderboard.csv``."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such leaderboard CSV", path=path)
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"column", "std", "n_seeds"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"not a leaderboard CSV: no column(s) {', '.join(sorted(missing))}", path=path)
        for line_no, row in enumerate(reader, 2):
            if not row["std"] or not row["n_seeds"]:
                continue
            try:
                sd, n = float(row["std"]), int(row["n_seeds"])
            except ValueError as e:
                raise DataError(f"std {row['std']!r} / n_seeds {row['n_seeds']!r} are not numbers", path=path,
                                line=line_no) from e
            if n >= 2:
                sums[row["column"]][0] += (n - 1) * sd * sd
                sums[row["column"]][1] += n - 1
    per_column = {k: (math.sqrt(ss / df), df) for k, (ss, df) in sums.items() if df > 0}
    if not per_column:
        raise DataError("no row with two or more seeds: it cannot measure a seed standard deviation", path=path)
    return SeedSDSource(f"pooled seed sd of {path}", per_column)
