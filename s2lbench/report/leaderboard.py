"""Paper-style leaderboard tables built from a results store, rendered as Markdown, LaTeX, CSV or HTML.

A table compares selectors at one target model (and, grouped ``by="budget"``, one budget): rows are
selectors plus the full-data reference, columns are the evaluation sets (in-domain first, then
out-of-domain, as the paper's Table 1) and the in-domain, out-of-domain and overall averages. A set on
which every row of a target, the full-data reference included, stays at the floor (mean <= 2%) is shown,
headed "floor: no signal", and left out of the averages and the tests (a footnote names it). A cell is the
mean ± sample std over seeds (one seed says so); the best mean per column among the selection methods is
bold (the metric's ``higher_is_better`` decides; ties are all bold, a column where every selector ties has no
bold; the full-data reference is shown but does not compete). Each selector is compared with the baseline
(random) at the same target and budget by the calibrated paired test of :mod:`s2lbench.report.stats` (seed
pairs, Student's t, the test set's example variance added); † marks p < 0.05 in the selector's favour, ‡
against it; a trailing * says the difference also survives Holm's correction over all the tests of its table.
At one seed no test is made (no mark) unless a seed standard deviation measured elsewhere is given
(:mod:`s2lbench.report.seed_variance`), which the footnote names. A row listed in the run's config as the
baseline selector under another label (``{name: random, label: random-aa, options: {stream: 1}}``) is an A/A
control: a table where it is marked says so in a footnote.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s2lbench.errors import DataError
from s2lbench.evaluation.references import is_untrained_reference
from s2lbench.report import diagnostics as selection_diagnostics
from s2lbench.report.regime import regime_notes
from s2lbench.report.seed_variance import SeedSDSource
from s2lbench.report.stats import (
    METHOD,
    PairedTest,
    SeedSummary,
    holm_adjust,
    paired_test,
    summarize_seeds,
)
from s2lbench.results.export import open_results
from s2lbench.results.store import FULL, Cell, ResultRow, ResultsStore, read_invocations

log = logging.getLogger(__name__)

BASELINE = "random"
AVERAGE = "avg"
AVERAGE_ID, AVERAGE_OOD = "avg_id", "avg_ood"
FLOOR = 0.02  # a set where every row's mean stays at or below this (a [0, 1] metric) carries no signal
FLOOR_LABEL = "floor: no signal"
BETTER_MARK, WORSE_MARK = "†", "‡"
HOLM_MARK = "*"  # appended where the difference survives Holm's correction over the table's tests
FAMILY_ALPHA = 0.05
FORMATS = ("md", "latex", "csv", "html")
GROUPINGS = ("budget", "target")
#: cost keys summed into a row's selection cost (the proxy, the signal pass and the optional signals a selector reads,
#: text embeddings, the selector)
SELECTION_SECONDS_KEYS = ("proxy_seconds", "signals_seconds", "embedding_seconds", "selection_seconds",
                          "ifd_seconds", "dev_embedding_seconds", "gradient_seconds")
SELECTION_FLOPS_KEYS = ("proxy_flops", "signals_flops", "embedding_flops", "selection_flops")


@dataclass(frozen=True)
class Column:
    key: str  # task name, or "avg"
    label: str
    metric: str
    higher_is_better: bool
    in_domain: bool | None  # None: unknown (or the average)
    tasks: tuple[str, ...]  # the tasks it averages (one for a task column)
    metrics: tuple[str, ...]  # each task's metric, aligned with ``tasks``
    floor: bool = False  # every row at the floor: shown, left out of the averages and the tests

    @property
    def is_average(self) -> bool:
        return self.key in (AVERAGE, AVERAGE_ID, AVERAGE_OOD)


@dataclass
class TableCell:
    summary: SeedSummary | None = None
    best: bool = False
    test: PairedTest | None = None
    verdict: str | None = None  # better / worse / tie, None when untested
    p_holm: float | None = None  # the test's p-value, Holm-adjusted over every test in its table
    note: str | None = None  # why the test is missing or not made


@dataclass
class Row:
    selector: str
    budget: int
    fraction: float
    seeds: list[int]
    selection_seconds: float | None
    selection_flops: float | None
    cells: dict[str, TableCell] = field(default_factory=dict)
    control: bool = False  # an A/A control: the baseline selector again, from another random stream

    @property
    def is_reference(self) -> bool:
        """The full-data reference, or an untrained reference row (``ref-NAME``): shown below the contenders."""
        return is_reference_row(self.selector)


@dataclass
class Table:
    title: str
    target: str
    budget: int | None  # None when the table spans budgets (grouped by target)
    columns: list[Column]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)  # footnotes of this table (an A/A control marked)
    #: why each row is where it is (source mix, planted defects, the selector's regime); None without records
    diagnostics: selection_diagnostics.Diagnostics | None = None

    def row(self, selector: str, budget: int | None = None) -> Row:
        for r in self.rows:
            if r.selector == selector and (budget is None or r.budget == budget):
                return r
        raise KeyError(f"no row {selector!r} (budget {budget}) in table {self.title!r}")


@dataclass
class Leaderboard:
    tables: list[Table]
    baseline: str
    scale: float  # display multiplier (100 when every score lies in [0, 1])
    seed_sd: SeedSDSource | None = None  # the external seed sd one-seed tests used, if given
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ building
def is_reference_row(selector: str) -> bool:
    return selector == FULL or is_untrained_reference(selector)


def _primary_metric(metrics: set[str], wanted: str | None) -> str | None:
    if wanted:
        return wanted if wanted in metrics else None
    if "accuracy" in metrics:
        return "accuracy"
    return sorted(metrics)[0] if metrics else None


def _selection_cost(cells: list[Cell]) -> tuple[float | None, float | None]:
    def mean_of(keys: tuple[str, ...]) -> float | None:
        totals = [sum(float(c.cost[k]) for k in keys if k in c.cost) for c in cells
                  if any(k in c.cost for k in keys)]
        return sum(totals) / len(totals) if totals else None

    return mean_of(SELECTION_SECONDS_KEYS), mean_of(SELECTION_FLOPS_KEYS)


def _check_names(b: _Builder, metric: str | None, baseline: str, where: Path) -> None:
    """A --metric no task reports, or a --baseline no finished cell ran, is an error with a did-you-mean."""
    import difflib

    def unknown(kind: str, name: str, known: set[str]) -> DataError:
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(known)) or 'none'}"
        return DataError(f"no finished cell has the {kind} {name!r}; {hint}", path=where)

    metrics = {m for rows in b.results.values() for (_, m) in rows}
    if metric is not None and metric not in metrics:
        raise unknown("metric", metric, metrics)
    selectors = {c.selector for c in b.cells}
    if baseline not in selectors and baseline != BASELINE:  # the default may be absent: then no paired tests
        raise unknown("baseline selector", baseline, selectors)


class _Builder:
    def __init__(self, store: ResultsStore, metric: str | None, baseline: str, seed_sd: SeedSDSource | None,
                 experiment: str | None):
        self.store, self.baseline, self.seed_sd = store, baseline, seed_sd
        all_cells = store.cells(experiment)
        self.cells = [c for c in all_cells if c.status == "done"]
        self.skipped = [c for c in all_cells if c.status != "done"]
        self.results: dict[str, dict[tuple[str, str], ResultRow]] = defaultdict(dict)
        done_ids = {c.cell_id for c in self.cells}
        for r in store.results():
            if r.cell_id in done_ids and r.value is not None:
                self.results[r.cell_id][(r.task, r.metric)] = r
        self.metric = metric
        self._samples: dict[tuple[str, str], dict[int, float] | None] = {}

    def columns(self, target: str) -> list[Column]:
        metrics_by_task: dict[str, set[str]] = defaultdict(set)
        rows_by_task: dict[str, ResultRow] = {}
        for c in self.cells:
            if c.target != target:
                continue
            for (task, metric), r in self.results[c.cell_id].items():
                metrics_by_task[task].add(metric)
                rows_by_task.setdefault(task, r)
        columns = []
        for task in sorted(metrics_by_task):
            metric = _primary_metric(metrics_by_task[task], self.metric)
            if metric is None:
                continue
            sample = next(r for c in self.cells if c.target == target
                          for (t, m), r in self.results[c.cell_id].items() if t == task and m == metric)
            columns.append(Column(task, task, metric, sample.higher_is_better, rows_by_task[task].in_domain,
                                  (task,), (metric,)))
        # in-domain first, then out-of-domain, then unknown; alphabetical inside a group
        columns.sort(key=lambda col: ({True: 0, False: 1, None: 2}[col.in_domain], col.key))
        columns = [dataclasses.replace(c, floor=self._at_floor(target, c)) for c in columns]
        return columns + _averages(columns)

    def _at_floor(self, target: str, column: Column) -> bool:
        """Every finished cell of the target (the full-data reference included) at or below the floor, on a
        [0, 1] higher-is-better metric: the set cannot tell any two rows apart."""
        if not column.higher_is_better:
            return False
        values = [self.value(c, column) for c in self.cells if c.target == target]
        values = [v for v in values if v is not None]
        return bool(values) and all(0.0 <= v <= FLOOR for v in values)

    def value(self, cell: Cell, column: Column) -> float | None:
        """The column's value for one cell (the mean over the averaged tasks), None when any is missing."""
        values = []
        for task, metric in zip(column.tasks, column.metrics, strict=True):
            r = self.results[cell.cell_id].get((task, metric))
            if r is None:
                return None
            values.append(r.value)
        return sum(values) / len(values)

    def scores(self, cell: Cell, task: str, metric: str) -> dict[int, float] | None:
        """Per-example scores ``{index: score}`` of one cell's task, or None without a samples file."""
        r = self.results[cell.cell_id].get((task, metric))
        if r is None or not r.samples_path:
            return None
        key = (r.samples_path, metric)
        if key not in self._samples:
            path = self.store.folder / r.samples_path
            if not path.exists():
                log.warning("samples file %s is missing; no paired test for it", path)
                return None
            rows = self.store.load_samples(r.samples_path)
            if not rows or metric not in (rows[0].get("scores") or {}):
                log.info("%s has no per-example %r (a corpus-level metric?): no paired test", path, metric)
                self._samples[key] = None
                return None
            out: dict[int, float] = {}
            for line_no, row in enumerate(rows, 1):
                try:
                    out[int(row["index"])] = float(row["scores"][metric])
                except (KeyError, TypeError, ValueError) as e:
                    raise DataError(f"needs 'index' and scores[{metric!r}] ({e!r})", path=path, line=line_no) from e
            self._samples[key] = out
        return self._samples[key]

    def row(self, cells: list[Cell], columns: list[Column]) -> Row:
        first = cells[0]
        seconds, flops = _selection_cost(cells)
        row = Row(first.selector, first.budget, first.fraction, sorted(c.seed for c in cells), seconds, flops)
        for col in columns:
            values = [v for v in (self.value(c, col) for c in cells) if v is not None]
            row.cells[col.key] = TableCell(summary=summarize_seeds(values) if values else None)
        return row

    def test(self, row_cells: list[Cell], base_cells: list[Cell], col: Column, target: str) -> PairedTest | None:
        if col.floor:
            return None
        tasks = []
        for task, metric in zip(col.tasks, col.metrics, strict=True):
            sel = {c.seed: self.scores(c, task, metric) for c in row_cells}
            base = {c.seed: self.scores(c, task, metric) for c in base_cells}
            if any(v is None for v in sel.values()) or any(v is None for v in base.values()):
                return None
            tasks.append((sel, base))
        where = f"{row_cells[0].selector} vs {self.baseline}, target {target}, budget {row_cells[0].budget}, {col.key}"
        seed_sd = self.seed_sd.for_column(col.key, col.tasks) if self.seed_sd else None
        return paired_test(tasks, seed_sd=seed_sd, where=where)


def _averages(columns: list[Column]) -> list[Column]:
    """The in-domain, out-of-domain and overall averages over the sets above the floor (the first two only
    when both groups have a set; none when the sets disagree on the metric's direction)."""
    live = [c for c in columns if not c.floor]
    directions = {c.higher_is_better for c in live}
    if len(live) < 2 or len(directions) != 1:
        return []
    higher = directions.pop()

    def average(key: str, label: str, group: list[Column], in_domain: bool | None) -> Column:
        return Column(key, label, "+".join(sorted({c.metric for c in group})), higher, in_domain,
                      tuple(c.key for c in group), tuple(c.metric for c in group))

    in_domain = [c for c in live if c.in_domain is True]
    out_of_domain = [c for c in live if c.in_domain is False]
    out = []
    if in_domain and out_of_domain:
        out += [average(AVERAGE_ID, "Avg ID", in_domain, None), average(AVERAGE_OOD, "Avg OOD", out_of_domain, None)]
    return out + [average(AVERAGE, "Avg", live, None)]


def _mark_best(rows: list[Row], columns: list[Column]) -> None:
    contenders = [r for r in rows if not r.is_reference]
    for col in columns:
        means = [r.cells[col.key].summary.mean for r in contenders if r.cells[col.key].summary]
        if not means:
            continue
        best = max(means) if col.higher_is_better else min(means)
        if len(means) > 1 and all(abs(m - best) <= 1e-12 for m in means):
            continue  # everyone ties: nothing stands out
        for r in contenders:
            s = r.cells[col.key].summary
            if s is not None and abs(s.mean - best) <= 1e-12:
                r.cells[col.key].best = True


def _adjust_for_multiple_tests(rows: list[Row]) -> None:
    """Holm-adjust the p-values of every tested cell of one table: a table is read as one family of claims."""
    tested = [cell for r in rows for cell in r.cells.values() if cell.test is not None and cell.test.tested]
    for cell, p in zip(tested, holm_adjust([c.test.p_value for c in tested]), strict=True):
        cell.p_holm = p


def _selector_order(name: str, baseline: str) -> tuple[int, str]:
    return (0 if name == baseline else 1, name)


def build_leaderboard(store: ResultsStore | str | Path, *, by: str = "budget", metric: str | None = None,
                      baseline: str = BASELINE, experiment: str | None = None, paired_tests: bool = True,
                      seed_sd: SeedSDSource | None = None, controls: list[str] | None = None) -> Leaderboard:
    """Build the tables of a results store (``by``: one table per target and budget, or per target).

    ``metric`` picks the metric of every task (default: ``accuracy`` where a task has it, else its first
    metric by name); ``paired_tests=False`` skips the tests (the scaling plot needs only the means);
    ``seed_sd`` is the seed standard deviation measured elsewhere that a side with one seed is tested with
    (without it, one seed means no test); ``controls`` are the A/A control rows (default: from the run's
    ``config.json``, every selector listed with the baseline's name under another label).
    """
    if by not in GROUPINGS:
        raise DataError(f"--by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    if not isinstance(store, ResultsStore):
        store = open_results(store)  # a run's folder, or a board's committed results/
    b = _Builder(store, metric, baseline, seed_sd, experiment)
    controls = set(aa_controls(store.folder, baseline) if controls is None else controls)
    if not b.cells:
        raise DataError("the results store has no finished (status 'done') cell", path=store.path)
    _check_names(b, metric, baseline, store.path)
    groups: dict[tuple[str, str, int], list[Cell]] = defaultdict(list)
    for c in b.cells:
        groups[(c.target, c.selector, c.budget)].append(c)
    tables = []
    all_values = []
    for target in sorted({c.target for c in b.cells}):
        columns = b.columns(target)
        if not columns:
            continue
        full_keys = sorted(k for k in groups if k[0] == target and is_reference_row(k[1]))
        budgets = sorted({k[2] for k in groups if k[0] == target and not is_reference_row(k[1])})
        # a target with reference rows alone (a calibration run of the full data) still gets its table
        blocks = [[b_] for b_ in budgets] if by == "budget" and budgets else [budgets]
        for block in blocks:
            rows = []
            for budget in block:
                keys = sorted((k for k in groups if k[0] == target and k[2] == budget and not is_reference_row(k[1])),
                              key=lambda k: _selector_order(k[1], baseline))
                budget_rows = [b.row(sorted(groups[k], key=lambda c: c.seed), columns) for k in keys]
                for row in budget_rows:
                    row.control = row.selector in controls
                # the full-data reference as the baseline: every row at every budget against the full data
                base_key = next((k for k in full_keys if k[1] == FULL), None) if baseline == FULL \
                    else (target, baseline, budget)
                for k, row in zip(keys, budget_rows, strict=True):
                    if k[1] == baseline or not paired_tests:
                        continue
                    for col in columns:
                        cell = row.cells[col.key]
                        if base_key not in groups:
                            cell.note = f"no {baseline} row" + ("" if baseline == FULL else " at this budget")
                            continue
                        test = b.test(groups[k], groups[base_key], col, target)
                        if test is None:
                            cell.note = FLOOR_LABEL if col.floor else "no per-example scores"
                            continue
                        cell.test, cell.verdict = test, test.verdict(col.higher_is_better)
                        if not test.tested:
                            cell.note = "one seed: no seed variance"
                _mark_best(budget_rows, columns)
                rows.extend(budget_rows)
            for k in full_keys:
                rows.append(b.row(sorted(groups[k], key=lambda c: c.seed), columns))
            _adjust_for_multiple_tests(rows)
            diag = selection_diagnostics.selection_diagnostics(
                [(r.selector, r.budget, f"{r.selector} (reference)" if r.is_reference else _row_name(r)) for r in rows],
                [c for c in b.cells if c.target == target])
            if by == "budget" and block:
                budget = block[0]
                fraction = rows[0].fraction if rows else 0.0
                title = f"target {target}, budget {budget} ({100 * fraction:.3g}% of the pool)"
                tables.append(Table(title, target, budget, columns, rows, _control_notes(rows, baseline), diag))
            else:
                tables.append(Table(f"target {target}", target, None, columns, rows, _control_notes(rows, baseline),
                                    diag))
            all_values += [s.mean for r in rows for cell in r.cells.values() if (s := cell.summary)]
    scale = 100.0 if all_values and all(0.0 <= v <= 1.0 for v in all_values) else 1.0
    notes = []
    if b.skipped:
        by_status = defaultdict(int)
        for c in b.skipped:
            by_status[store.shown_status(c)] += 1
        notes.append("not shown: " + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) + " cell(s)")
    notes += regime_notes(b.cells)
    return Leaderboard(tables, baseline, scale, seed_sd, notes)


def aa_controls(folder: Path, baseline: str) -> list[str]:
    """The A/A control rows of a run: selectors its ``config.json`` lists with the baseline's name under
    another label (none without a config)."""
    import json

    path = folder / "config.json"
    if not path.is_file():
        return []
    try:
        # a config.json without the run's selectors (written by an older version or another tool) names none
        selectors = (json.loads(path.read_text(encoding="utf-8")).get("config") or {}).get("selectors") or []
        return [s["label"] for s in selectors if s.get("name") == baseline and s.get("label")
                and s["label"] != baseline]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataError(f"cannot read the selectors of the run's config ({e!r})", path=path) from e


def _control_notes(rows: list[Row], baseline: str) -> list[str]:
    """A footnote per marked A/A control: the table's marks are then seen to arise between equal selectors."""
    notes = []
    for r in rows:
        marked = [key for key, cell in r.cells.items() if cell.verdict in ("better", "worse")]
        if r.control and marked:
            notes.append(f"A/A control flagged: {r.selector} (the {baseline} selector again, from another random "
                         f"stream) is marked at budget {r.budget} on {', '.join(marked)}; differences of that size "
                         "in this table can be chance.")
    return notes


# ----------------------------------------------------------------------------------------- rendering
def _fmt(value: float, scale: float) -> str:
    return f"{value * scale:.1f}" if scale != 1.0 else f"{value:.3g}"


def _fmt_diff(value: float, scale: float) -> str:
    return f"{value * scale:+.1f}" if scale != 1.0 else f"{value:+.3g}"


def _mark(cell: TableCell) -> str:
    mark = {"better": BETTER_MARK, "worse": WORSE_MARK}.get(cell.verdict or "", "")
    if mark and cell.p_holm is not None and cell.p_holm < FAMILY_ALPHA:
        mark += HOLM_MARK
    return mark


def _cost(row: Row) -> str:
    if row.is_reference:
        return "—"
    parts = []
    if row.selection_seconds is not None:
        parts.append(f"{row.selection_seconds:.3g} s")
    if row.selection_flops:
        parts.append(f"{row.selection_flops:.2g} FLOPs")
    return " / ".join(parts) or "—"


def _seed_text(cell: TableCell, scale: float) -> tuple[str, str]:
    """(mean, spread) texts: spread is '± std' or '(1 seed)'."""
    s = cell.summary
    if s is None:
        return "—", ""
    spread = f"± {_fmt(s.std, scale)}" if s.std is not None else "(1 seed)"
    return _fmt(s.mean, scale), spread


def _interval_text(cell: TableCell, scale: float) -> str:
    t = cell.test
    if t is None:
        return cell.note or "—"
    if not t.tested:
        return f"{_fmt_diff(t.mean_diff, scale)} (untested: one seed)"
    return f"{_fmt_diff(t.mean_diff, scale)} [{_fmt_diff(t.low, scale)}, {_fmt_diff(t.high, scale)}]"


def _header(col: Column) -> str:
    """A column's heading: its label, its group (ID / OOD) and the floor flag."""
    tags = ([{True: "ID", False: "OOD"}[col.in_domain]] if col.in_domain is not None else []) + (
        [FLOOR_LABEL] if col.floor else [])
    return f"{col.label} ({'; '.join(tags)})" if tags else col.label


def _row_name(row: Row) -> str:
    return f"{row.selector} (A/A control)" if row.control else row.selector


def _group(col: Column) -> str:
    return {True: "in-domain", False: "out-of-domain"}.get(col.in_domain, "")


def _baseline_words(baseline: str) -> str:
    return ("the full-data reference (full) of the same target" if baseline == FULL
            else f"{baseline} at the same target and budget")


def _legend(lb: Leaderboard) -> list[str]:
    unit = " Scores ×100." if lb.scale != 1.0 else ""
    return [
        f"Mean ± sample std over seeds (a cell with one seed says so).{unit} Bold: best per column among the "
        "selection methods (the full-data reference does not compete). Avg ID / Avg OOD / Avg: the means over the "
        "in-domain, out-of-domain and all sets, each seed's average first, sets at the floor left out.",
        f"{BETTER_MARK} / {WORSE_MARK}: the difference to {_baseline_words(lb.baseline)} is significant "
        f"at 5% in the selector's favour / against it: {METHOD}, the interval its 95% t interval (docs/"
        "leaderboards.md has the method and its measured error rates).",
        *([HOLM_LEGEND] if _has_tests(lb) else []),
        *([ONE_SEED_NOTE] if _has_untested(lb) else []),
        *([f"A side with one seed is tested with {lb.seed_sd.name}, not its own seeds."]
          if lb.seed_sd is not None and _uses_external(lb) else []),
        *_floor_notes(lb),
        *_diagnostics_legend(lb),
        *lb.notes,
    ]


def _diagnostics_legend(lb: Leaderboard) -> list[str]:
    shown = [t.diagnostics for t in lb.tables if t.diagnostics is not None]
    return [selection_diagnostics.legend(any(d.has_defects for d in shown))] if shown else []


ONE_SEED_NOTE = ("No mark where a side has one seed: one seed cannot say how much a fine-tune moves with its seed "
                 "(often more than the test set's sampling error), so no test is made; give a seed sd measured on a "
                 "board with several seeds (--seed-sd-from, --seed-sd) to test with it.")


HOLM_LEGEND = (f"{BETTER_MARK}{HOLM_MARK} / {WORSE_MARK}{HOLM_MARK}: the difference also survives Holm's correction "
               f"for multiple comparisons over every test in its table (family-wise error {FAMILY_ALPHA:.0%}). A mark "
               "without it is one of many tests and may be chance.")


def _floor_notes(lb: Leaderboard) -> list[str]:
    floors: dict[str, list[str]] = defaultdict(list)
    for t in lb.tables:
        for c in t.columns:
            if c.floor and c.label not in floors[t.target]:
                floors[t.target].append(c.label)
    return [f"{FLOOR_LABEL}: on target {target}, every row (the full-data reference included) stays at or below "
            f"{FLOOR:.0%} on {', '.join(labels)}; shown, but left out of the averages and the tests."
            for target, labels in sorted(floors.items()) if labels]


def _tests(lb: Leaderboard) -> Iterator[PairedTest]:
    return (c.test for t in lb.tables for r in t.rows for c in r.cells.values() if c.test is not None)


def _has_tests(lb: Leaderboard) -> bool:
    return any(t.tested for t in _tests(lb))


def _has_untested(lb: Leaderboard) -> bool:
    return any(not t.tested for t in _tests(lb))


def _uses_external(lb: Leaderboard) -> bool:
    return any(t.seed_sd_source is not None for t in _tests(lb))


def _pairs_text(row: Row) -> str:
    """How the row's tests paired seeds: the number of seed pairs, or 'unpaired' when none were shared."""
    tests = [c.test for c in row.cells.values() if c.test]
    if not tests:
        return "—"
    return "unpaired" if tests[0].pairing != "seeds" else str(tests[0].n_seed_pairs)


def _tested_rows(table: Table) -> list[Row]:
    return [r for r in table.rows if any(c.test or c.note for c in r.cells.values())]


def render_markdown(lb: Leaderboard) -> str:
    out = []
    for t in lb.tables:
        out.append(f"### {t.title}\n")
        header = ["selector", "budget", "fraction", "seeds", "selection cost"] + [_header(c) for c in t.columns]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|")
        for r in t.rows:
            cells = []
            for c in t.columns:
                cell = r.cells[c.key]
                mean, spread = _seed_text(cell, lb.scale)
                text = f"{mean} {spread}".strip()
                if cell.best:
                    text = f"**{text}**"
                cells.append(f"{text} {_mark(cell)}".strip())
            name = f"*{r.selector} (reference)*" if r.is_reference else _row_name(r)
            out.append("| " + " | ".join([name, str(r.budget), f"{100 * r.fraction:.3g}%", str(len(r.seeds)),
                                          _cost(r)] + cells) + " |")
        tested = _tested_rows(t)
        if tested:
            out.append(f"\nDifference to {lb.baseline} (mean, 95% interval of the paired test):\n")
            out.append("| selector | budget | seed pairs | " + " | ".join(c.label for c in t.columns) + " |")
            out.append("|---|---|---:|" + "|".join(["---:"] * len(t.columns)) + "|")
            for r in tested:
                out.append(f"| {r.selector} | {r.budget} | {_pairs_text(r)} | " + " | ".join(
                    f"{_interval_text(r.cells[c.key], lb.scale)} {_mark(r.cells[c.key])}".strip()
                    for c in t.columns) + " |")
        out += [f"\n{note}" for note in t.notes]
        if t.diagnostics is not None:
            out += selection_diagnostics.render_markdown(t.diagnostics)
        out.append("")
    out += [f"{line}  " for line in _legend(lb)]
    return "\n".join(out).rstrip() + "\n"


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                 ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\^{}")):
        text = text.replace(a, b)
    return text


def render_latex(lb: Leaderboard) -> str:
    marks = {BETTER_MARK: r"$^\dagger$", WORSE_MARK: r"$^\ddagger$",
             BETTER_MARK + HOLM_MARK: r"$^{\dagger *}$", WORSE_MARK + HOLM_MARK: r"$^{\ddagger *}$"}
    out = ["% requires \\usepackage{booktabs}"]
    for t in lb.tables:
        n = len(t.columns)
        out += [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{l r r r " + "r" * n + "}",
                r"\toprule"]
        groups: list[tuple[str, int]] = []
        for c in t.columns:
            g = _group(c)
            if groups and groups[-1][0] == g:
                groups[-1] = (g, groups[-1][1] + 1)
            else:
                groups.append((g, 1))
        if any(g for g, _ in groups):
            out.append(" & & & & " + " & ".join(
                rf"\multicolumn{{{k}}}{{c}}{{{g}}}" if g else " & ".join([""] * k) for g, k in groups) + r" \\")
            rules, first = [], 5
            for g, k in groups:
                if g:
                    rules.append(rf"\cmidrule(lr){{{first}-{first + k - 1}}}")
                first += k
            out.append(" ".join(rules))
        out.append("Selector & Frac. & Seeds & Sel. cost & " + " & ".join(
            _latex_escape(c.label) + (r"$^\flat$" if c.floor else "") for c in t.columns) + r" \\")
        out.append(r"\midrule")
        for r in t.rows:
            cells = []
            for c in t.columns:
                cell = r.cells[c.key]
                mean, spread = _seed_text(cell, lb.scale)
                mean = mean.replace("—", "--")
                body = mean if cell.best is False else rf"\textbf{{{mean}}}"
                if spread.startswith("±"):
                    body += rf"{{\scriptsize$\pm${spread[1:].strip()}}}"
                elif spread:
                    body += r"{\scriptsize (1 seed)}"
                cells.append(body + marks.get(_mark(cell), ""))
            if r.is_reference:
                out.append(r"\midrule")
            name = _latex_escape("Full data" if r.selector == FULL else _row_name(r))
            out.append(" & ".join([name, _latex_escape(f"{100 * r.fraction:.3g}%"), str(len(r.seeds)),
                                   _latex_escape(_cost(r)).replace("—", "--")] + cells) + r" \\")
        floor_key = [r"$^\flat$: " + FLOOR_LABEL + "."] if any(c.floor for c in t.columns) else []
        out += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_latex_escape(t.title)}. "
                + " ".join(floor_key) + " "
                + _latex_escape(" ".join(t.notes + _legend(lb))).replace(BETTER_MARK, r"$\dagger$").replace(
                    WORSE_MARK, r"$\ddagger$").replace("±", r"$\pm$").replace("×", r"$\times$") + "}",
                r"\end{table}", ""]
        if t.diagnostics is not None:
            out += selection_diagnostics.render_latex(t.diagnostics, t.title, _latex_escape)
    return "\n".join(out)


CSV_FIELDS = ["table", "target", "selector", "budget", "fraction", "seeds", "column", "group", "metric",
              "higher_is_better", "mean", "std", "n_seeds", "best", "diff_vs_baseline", "ci_low", "ci_high",
              "pairing", "verdict", "p_value", "p_holm", "selection_seconds", "selection_flops", "floor",
              "control", "se", "df", "seed_sd_source"]


def _opt(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def render_csv(lb: Leaderboard) -> str:
    """One row per (table, selector row, column), unscaled values: the tidy form for further analysis."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for t in lb.tables:
        for r in t.rows:
            for c in t.columns:
                cell = r.cells[c.key]
                s, test = cell.summary, cell.test
                w.writerow({
                    "table": t.title, "target": t.target, "selector": r.selector, "budget": r.budget,
                    "fraction": r.fraction, "seeds": " ".join(map(str, r.seeds)), "column": c.key,
                    "group": _group(c), "metric": c.metric, "higher_is_better": int(c.higher_is_better),
                    "mean": "" if s is None else repr(s.mean), "std": "" if s is None or s.std is None else repr(s.std),
                    "n_seeds": "" if s is None else s.n_seeds, "best": int(cell.best),
                    "diff_vs_baseline": "" if test is None else repr(test.mean_diff),
                    "ci_low": _opt(test and test.low), "ci_high": _opt(test and test.high),
                    "pairing": "" if test is None else test.pairing, "verdict": cell.verdict or "",
                    "p_value": _opt(test and test.p_value), "floor": int(c.floor), "control": int(r.control),
                    "se": _opt(test and test.se), "df": _opt(test and test.df),
                    "seed_sd_source": (test and test.seed_sd_source) or "",
                    "p_holm": "" if cell.p_holm is None else repr(cell.p_holm),
                    "selection_seconds": "" if r.selection_seconds is None else repr(r.selection_seconds),
                    "selection_flops": "" if r.selection_flops is None else repr(r.selection_flops),
                })
    return buf.getvalue()


def render_html(lb: Leaderboard) -> str:
    e = html.escape
    out = ["<!doctype html>", '<meta charset="utf-8">', "<title>s2lbench leaderboard</title>",
           "<style>body{font-family:sans-serif}table{border-collapse:collapse;margin:1em 0}"
           "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}"
           "td:first-child,th:first-child{text-align:left}tr.reference{font-style:italic;background:#f6f6f6}"
           ".spread{color:#666;font-size:85%}</style>"]
    for t in lb.tables:
        out.append(f"<h3>{e(t.title)}</h3>")
        out.append("<table>")
        groups = [_group(c) for c in t.columns]
        if any(groups):
            out.append("<tr><th colspan=5></th>" + "".join(f"<th>{e(g)}</th>" for g in groups) + "</tr>")
        out.append("<tr><th>selector</th><th>budget</th><th>fraction</th><th>seeds</th><th>selection cost</th>"
                   + "".join(f"<th>{e(c.label + (f' ({FLOOR_LABEL})' if c.floor else ''))}</th>" for c in t.columns)
                   + "</tr>")
        for r in t.rows:
            cells = []
            for c in t.columns:
                cell = r.cells[c.key]
                mean, spread = _seed_text(cell, lb.scale)
                body = f"<b>{e(mean)}</b>" if cell.best else e(mean)
                title = f' title="Δ vs {e(lb.baseline)}: {e(_interval_text(cell, lb.scale))}"' if cell.test else ""
                cells.append(f"<td{title}>{body} <span class=spread>{e(spread)}</span>{e(_mark(cell))}</td>")
            cls = ' class="reference"' if r.is_reference else ""
            out.append(f"<tr{cls}><td>{e(r.selector if r.is_reference else _row_name(r))}</td><td>{r.budget}</td><td>{100 * r.fraction:.3g}%</td>"
                       f"<td>{len(r.seeds)}</td><td>{e(_cost(r))}</td>" + "".join(cells) + "</tr>")
        out.append("</table>")
        tested = _tested_rows(t)
        if tested:
            out.append(f"<p>Difference to {e(lb.baseline)} (mean, 95% interval of the paired test):</p><table>")
            out.append("<tr><th>selector</th><th>budget</th><th>seed pairs</th>"
                       + "".join(f"<th>{e(c.label)}</th>" for c in t.columns) + "</tr>")
            for r in tested:
                out.append(f"<tr><td>{e(r.selector)}</td><td>{r.budget}</td><td>{e(_pairs_text(r))}</td>" + "".join(
                    f"<td>{e(_interval_text(r.cells[c.key], lb.scale))} {e(_mark(r.cells[c.key]))}</td>"
                    for c in t.columns) + "</tr>")
            out.append("</table>")
        out += [f"<p>{e(note)}</p>" for note in t.notes]
        if t.diagnostics is not None:
            out += selection_diagnostics.render_html(t.diagnostics, e)
    out += [f"<p>{e(line)}</p>" for line in _legend(lb)]
    return "\n".join(out) + "\n"


def training_environments(cells: list) -> dict[str, Any]:
    """The distinct environments (device, precision, bf16 kernels, threads) the cells' targets and proxies
    trained in, and the cells that recorded none (stores written before environments were recorded)."""
    import json

    found: dict[str, dict[str, None]] = {"finetune": {}, "proxy": {}}
    unrecorded = 0
    for c in cells:
        if c.status != "done":
            continue
        if not (c.environment or {}).get("finetune"):
            unrecorded += 1
        for role, seen in found.items():
            for environment in (c.environment or {}).get(role, []):
                seen[json.dumps(environment, sort_keys=True)] = None
    return {role: [json.loads(e) for e in sorted(seen)] for role, seen in found.items()} | {
        "done_cells_without_record": unrecorded}


def mixed_precisions(environments: dict[str, Any]) -> list[str]:
    """The precisions the targets of one table trained in, when there is more than one (else [])."""
    precisions = sorted({e.get("precision") for e in environments["finetune"] if e.get("precision")})
    return precisions if len(precisions) > 1 else []


def provenance(store: ResultsStore, lb: Leaderboard, command: list[str] | None = None) -> dict:
    """Where a leaderboard's numbers came from: the run's config (``config.json`` beside the store, as
    ``s2lbench run`` writes it), and per-cell provenance summarised: commits, config hashes, pool and
    model fingerprints, package versions, training environments, cell counts by status, and the test's
    settings."""
    import json

    cells = store.cells()

    def distinct(attr: str) -> list:
        return sorted({getattr(c, attr) for c in cells if getattr(c, attr)})

    versions: dict[str, list[str]] = defaultdict(list)
    for c in cells:
        for package, version in (c.versions or {}).items():
            if version not in versions[package]:
                versions[package].append(version)
    by_status: dict[str, int] = defaultdict(int)
    for c in cells:
        by_status[c.status] += 1
    config_path = store.folder / "config.json"
    invocations = read_invocations(store.folder)
    return {
        "command": command,
        "run_config": json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else None,
        "experiments": distinct("experiment"),
        "cells_by_status": dict(sorted(by_status.items())),
        # the runs of the folder, summed: the grid's wall time on the machine(s) that ran it (None if unrecorded)
        "grid_wall_seconds": round(sum(i["wall_seconds"] for i in invocations), 1) if invocations else None,
        "invocations": invocations,
        "git_commits": distinct("git_commit"),
        "config_hashes": distinct("config_hash"),
        "pool_fingerprints": distinct("pool_fingerprint"),
        "model_fingerprints": distinct("model_fingerprint"),
        "versions": {k: sorted(v) for k, v in sorted(versions.items())},
        "training_environments": training_environments(cells),
        "paired_test": {"baseline": lb.baseline, "method": METHOD, "confidence": 0.95,
                        "one_seed": "untested" if lb.seed_sd is None else f"tested with {lb.seed_sd.name}",
                        "floor": FLOOR, "multiple_comparisons": f"holm over each table's tests, family-wise {FAMILY_ALPHA}"},
    }


RENDERERS = {"md": render_markdown, "latex": render_latex, "csv": render_csv, "html": render_html}
EXTENSIONS = {"md": "md", "latex": "tex", "csv": "csv", "html": "html"}


def render(lb: Leaderboard, fmt: str) -> str:
    if fmt not in RENDERERS:
        raise DataError(f"unknown leaderboard format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return RENDERERS[fmt](lb)
