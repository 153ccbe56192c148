"""Paper-style leaderboard tables built from a results store, rendered as Markdown, LaTeX, CSV or HTML.

A table compares selectors at one target model (and, grouped ``by="budget"``, one budget): rows are
selectors plus the full-data reference, columns are the evaluation sets (in-domain first, then
out-of-domain, as the paper's Table 1) and their average. A cell is the mean ± sample std over seeds
(one seed says so); the best mean per column among the selection methods is bold (the metric's
``higher_is_better`` decides; ties are all bold, a column where every selector ties has no bold; the
full-data reference is shown but does not compete). Each selector is
compared with the baseline (random) at the same target and budget by a paired bootstrap over seeds and
test examples (see :mod:`s2lbench.report.stats`); † marks an interval that excludes 0 in the selector's favour,
‡ one that excludes 0 against it; a trailing * says the difference also survives Holm's correction over
all the tests of its table (a grid of selectors x evaluation sets makes many comparisons, and some 95%
intervals exclude 0 by chance).
"""

from __future__ import annotations

import csv
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
from s2lbench.report.stats import (
    DEFAULT_BOOTSTRAP_SEED,
    DEFAULT_RESAMPLES,
    PairedTest,
    SeedSummary,
    holm_adjust,
    paired_bootstrap,
    summarize_seeds,
)
from s2lbench.results.store import FULL, Cell, ResultRow, ResultsStore, read_invocations

log = logging.getLogger(__name__)

BASELINE = "random"
AVERAGE = "avg"
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


@dataclass
class TableCell:
    summary: SeedSummary | None = None
    best: bool = False
    test: PairedTest | None = None
    verdict: str | None = None  # better / worse / tie, None when untested
    p_holm: float | None = None  # the test's p-value, Holm-adjusted over every test in its table
    note: str | None = None  # why the test is missing


@dataclass
class Row:
    selector: str
    budget: int
    fraction: float
    seeds: list[int]
    selection_seconds: float | None
    selection_flops: float | None
    cells: dict[str, TableCell] = field(default_factory=dict)

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
    resamples: int
    bootstrap_seed: int
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
    def __init__(self, store: ResultsStore, metric: str | None, baseline: str, resamples: int, bootstrap_seed: int,
                 experiment: str | None):
        self.store, self.baseline = store, baseline
        self.resamples, self.bootstrap_seed = resamples, bootstrap_seed
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
        directions = {col.higher_is_better for col in columns}
        if len(columns) > 1 and len(directions) == 1:
            columns.append(Column(AVERAGE, "Avg", "+".join(sorted({c.metric for c in columns})), directions.pop(),
                                  None, tuple(c.key for c in columns), tuple(c.metric for c in columns)))
        return columns

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
        tasks = []
        for task, metric in zip(col.tasks, col.metrics, strict=True):
            sel = {c.seed: self.scores(c, task, metric) for c in row_cells}
            base = {c.seed: self.scores(c, task, metric) for c in base_cells}
            if any(v is None for v in sel.values()) or any(v is None for v in base.values()):
                return None
            tasks.append((sel, base))
        where = f"{row_cells[0].selector} vs {self.baseline}, target {target}, budget {row_cells[0].budget}, {col.key}"
        return paired_bootstrap(tasks, resamples=self.resamples, seed=self.bootstrap_seed, where=where)


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
    tested = [cell for r in rows for cell in r.cells.values() if cell.test is not None]
    for cell, p in zip(tested, holm_adjust([c.test.p_value for c in tested]), strict=True):
        cell.p_holm = p


def _selector_order(name: str, baseline: str) -> tuple[int, str]:
    return (0 if name == baseline else 1, name)


def build_leaderboard(store: ResultsStore | str | Path, *, by: str = "budget", metric: str | None = None,
                      baseline: str = BASELINE, resamples: int = DEFAULT_RESAMPLES,
                      bootstrap_seed: int = DEFAULT_BOOTSTRAP_SEED, experiment: str | None = None,
                      paired_tests: bool = True) -> Leaderboard:
    """Build the tables of a results store (``by``: one table per target and budget, or per target).

    ``metric`` picks the metric of every task (default: ``accuracy`` where a task has it, else its first
    metric by name); ``paired_tests=False`` skips the bootstrap (the scaling plot needs only the means).
    """
    if by not in GROUPINGS:
        raise DataError(f"--by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    if not isinstance(store, ResultsStore):
        folder = Path(store)
        if not (folder / "results.sqlite").exists():
            raise DataError("no results store (results.sqlite) in this folder", path=folder)
        store = ResultsStore(folder, read_only=True)
    b = _Builder(store, metric, baseline, resamples, bootstrap_seed, experiment)
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
        blocks = [[b_] for b_ in budgets] if by == "budget" else [budgets]
        for block in blocks:
            rows = []
            for budget in block:
                keys = sorted((k for k in groups if k[0] == target and k[2] == budget and not is_reference_row(k[1])),
                              key=lambda k: _selector_order(k[1], baseline))
                budget_rows = [b.row(sorted(groups[k], key=lambda c: c.seed), columns) for k in keys]
                base_key = (target, baseline, budget)
                for k, row in zip(keys, budget_rows, strict=True):
                    if k[1] == baseline or not paired_tests:
                        continue
                    for col in columns:
                        cell = row.cells[col.key]
                        if base_key not in groups:
                            cell.note = f"no {baseline} row at this budget"
                            continue
                        test = b.test(groups[k], groups[base_key], col, target)
                        if test is None:
                            cell.note = "no per-example scores"
                            continue
                        cell.test, cell.verdict = test, test.verdict(col.higher_is_better)
                _mark_best(budget_rows, columns)
                rows.extend(budget_rows)
            for k in full_keys:
                rows.append(b.row(sorted(groups[k], key=lambda c: c.seed), columns))
            _adjust_for_multiple_tests(rows)
            if by == "budget":
                budget = block[0]
                fraction = rows[0].fraction if rows else 0.0
                title = f"target {target}, budget {budget} ({100 * fraction:.3g}% of the pool)"
                tables.append(Table(title, target, budget, columns, rows))
            else:
                tables.append(Table(f"target {target}", target, None, columns, rows))
            all_values += [s.mean for r in rows for cell in r.cells.values() if (s := cell.summary)]
    scale = 100.0 if all_values and all(0.0 <= v <= 1.0 for v in all_values) else 1.0
    notes = []
    if b.skipped:
        by_status = defaultdict(int)
        for c in b.skipped:
            by_status[store.shown_status(c)] += 1
        notes.append("not shown: " + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) + " cell(s)")
    return Leaderboard(tables, baseline, scale, resamples, bootstrap_seed, notes)


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
    return f"{_fmt_diff(t.mean_diff, scale)} [{_fmt_diff(t.low, scale)}, {_fmt_diff(t.high, scale)}]"


def _group(col: Column) -> str:
    return {True: "in-domain", False: "out-of-domain"}.get(col.in_domain, "")


def _legend(lb: Leaderboard) -> list[str]:
    unit = " Scores ×100." if lb.scale != 1.0 else ""
    return [
        f"Mean ± sample std over seeds (a cell with one seed says so).{unit} Bold: best per column among the "
        "selection methods (the full-data reference does not compete).",
        f"{BETTER_MARK} / {WORSE_MARK}: the 95% paired-bootstrap interval of the difference to {lb.baseline} at the "
        f"same target and budget excludes 0 in the selector's favour / against it ({lb.resamples} resamples of "
        f"seed pairs and test examples, bootstrap seed {lb.bootstrap_seed}).",
        *([HOLM_LEGEND] if _has_tests(lb) else []),
        *([ONE_PAIR_CAVEAT] if _has_one_seed_pair(lb) else []),
        *lb.notes,
    ]


ONE_PAIR_CAVEAT = ("An interval from one seed pair resamples test examples only: it leaves out how much a "
                   "fine-tune moves with its seed, which can be larger (see the std of rows with several seeds).")


HOLM_LEGEND = (f"{BETTER_MARK}{HOLM_MARK} / {WORSE_MARK}{HOLM_MARK}: the difference also survives Holm's correction "
               f"for multiple comparisons over every test in its table (family-wise error {FAMILY_ALPHA:.0%}; "
               "two-sided p-values from the bootstrap's standard error). A mark without it is one of many tests and "
               "may be chance.")


def _tests(lb: Leaderboard) -> Iterator[PairedTest]:
    return (c.test for t in lb.tables for r in t.rows for c in r.cells.values() if c.test is not None)


def _has_tests(lb: Leaderboard) -> bool:
    return any(True for _ in _tests(lb))


def _has_one_seed_pair(lb: Leaderboard) -> bool:
    return any(t.pairing == "seeds" and t.n_seed_pairs == 1 for t in _tests(lb))


def _pairs_text(row: Row) -> str:
    """How the row's tests paired seeds: the number of seed pairs, or 'averaged' when none were shared."""
    tests = [c.test for c in row.cells.values() if c.test]
    if not tests:
        return "—"
    return "averaged" if tests[0].pairing != "seeds" else str(tests[0].n_seed_pairs)


def _tested_rows(table: Table) -> list[Row]:
    return [r for r in table.rows if any(c.test or c.note for c in r.cells.values())]


def render_markdown(lb: Leaderboard) -> str:
    out = []
    for t in lb.tables:
        out.append(f"### {t.title}\n")
        header = ["selector", "budget", "fraction", "seeds", "selection cost"] + [
            f"{c.label} ({'ID' if c.in_domain else 'OOD'})" if c.in_domain is not None else c.label for c in t.columns]
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
            name = f"*{r.selector} (reference)*" if r.is_reference else r.selector
            out.append("| " + " | ".join([name, str(r.budget), f"{100 * r.fraction:.3g}%", str(len(r.seeds)),
                                          _cost(r)] + cells) + " |")
        tested = _tested_rows(t)
        if tested:
            out.append(f"\nDifference to {lb.baseline} (mean, 95% paired-bootstrap interval):\n")
            out.append("| selector | budget | seed pairs | " + " | ".join(c.label for c in t.columns) + " |")
            out.append("|---|---|---:|" + "|".join(["---:"] * len(t.columns)) + "|")
            for r in tested:
                out.append(f"| {r.selector} | {r.budget} | {_pairs_text(r)} | " + " | ".join(
                    f"{_interval_text(r.cells[c.key], lb.scale)} {_mark(r.cells[c.key])}".strip()
                    for c in t.columns) + " |")
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
        out.append("Selector & Frac. & Seeds & Sel. cost & " + " & ".join(_latex_escape(c.label) for c in t.columns)
                   + r" \\")
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
            name = _latex_escape("Full data" if r.selector == FULL else r.selector)
            out.append(" & ".join([name, _latex_escape(f"{100 * r.fraction:.3g}%"), str(len(r.seeds)),
                                   _latex_escape(_cost(r)).replace("—", "--")] + cells) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_latex_escape(t.title)}. "
                + _latex_escape(" ".join(_legend(lb))).replace(BETTER_MARK, r"$\dagger$").replace(
                    WORSE_MARK, r"$\ddagger$").replace("±", r"$\pm$").replace("×", r"$\times$") + "}",
                r"\end{table}", ""]
    return "\n".join(out)


CSV_FIELDS = ["table", "target", "selector", "budget", "fraction", "seeds", "column", "group", "metric",
              "higher_is_better", "mean", "std", "n_seeds", "best", "diff_vs_baseline", "ci_low", "ci_high",
              "pairing", "verdict", "p_value", "p_holm", "selection_seconds", "selection_flops"]


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
                    "ci_low": "" if test is None else repr(test.low), "ci_high": "" if test is None else repr(test.high),
                    "pairing": "" if test is None else test.pairing, "verdict": cell.verdict or "",
                    "p_value": "" if test is None else repr(test.p_value),
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
                   + "".join(f"<th>{e(c.label)}</th>" for c in t.columns) + "</tr>")
        for r in t.rows:
            cells = []
            for c in t.columns:
                cell = r.cells[c.key]
                mean, spread = _seed_text(cell, lb.scale)
                body = f"<b>{e(mean)}</b>" if cell.best else e(mean)
                title = f' title="Δ vs {e(lb.baseline)}: {e(_interval_text(cell, lb.scale))}"' if cell.test else ""
                cells.append(f"<td{title}>{body} <span class=spread>{e(spread)}</span>{e(_mark(cell))}</td>")
            cls = ' class="reference"' if r.is_reference else ""
            out.append(f"<tr{cls}><td>{e(r.selector)}</td><td>{r.budget}</td><td>{100 * r.fraction:.3g}%</td>"
                       f"<td>{len(r.seeds)}</td><td>{e(_cost(r))}</td>" + "".join(cells) + "</tr>")
        out.append("</table>")
        tested = _tested_rows(t)
        if tested:
            out.append(f"<p>Difference to {e(lb.baseline)} (mean, 95% paired-bootstrap interval):</p><table>")
            out.append("<tr><th>selector</th><th>budget</th><th>seed pairs</th>"
                       + "".join(f"<th>{e(c.label)}</th>" for c in t.columns) + "</tr>")
            for r in tested:
                out.append(f"<tr><td>{e(r.selector)}</td><td>{r.budget}</td><td>{e(_pairs_text(r))}</td>" + "".join(
                    f"<td>{e(_interval_text(r.cells[c.key], lb.scale))} {e(_mark(r.cells[c.key]))}</td>"
                    for c in t.columns) + "</tr>")
            out.append("</table>")
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
    model fingerprints, package versions, training environments, cell counts by status, and the bootstrap
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
        "paired_bootstrap": {"baseline": lb.baseline, "resamples": lb.resamples, "seed": lb.bootstrap_seed,
                             "confidence": 0.95,
                             "multiple_comparisons": f"holm over each table's tests, family-wise {FAMILY_ALPHA}"},
    }


RENDERERS = {"md": render_markdown, "latex": render_latex, "csv": render_csv, "html": render_html}
EXTENSIONS = {"md": "md", "latex": "tex", "csv": "csv", "html": "html"}


def render(lb: Leaderboard, fmt: str) -> str:
    if fmt not in RENDERERS:
        raise DataError(f"unknown leaderboard format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return RENDERERS[fmt](lb)
