"""Small-to-large transfer: does the selectors' ranking on a small target predict the ranking on a large one?

For every pair of targets in a results store (smaller first) and every budget both were run at, with the
selectors both have (the full-data reference excluded):

- each selector's score on a target = mean over seeds of the mean over tasks of the task metric (the
  leaderboard's Avg column; one task: that task);
- Kendall's tau-b between the two score vectors (``scipy.stats.kendalltau``), with a bootstrap interval that
  resamples seeds and test examples: each resample draws seeds with replacement from the seeds every
  selector has on both targets, and, per task, example indices with replacement (the same draw for every
  selector and both targets, so the comparison stays paired), recomputes every score from the per-example
  samples and then tau;
- whether the best selector on the smaller target is also the best on the larger one, and across resamples
  how often it is;
- DataDecide's *decision accuracy* (Magnusson et al., 2025): the share of selector pairs whose order on the
  smaller target is their order on the larger one (a pair tied on the smaller target counts half, a pair
  tied on the larger one is left out), with the same bootstrap's interval;
- with several common seeds, tau per seed (seed s's scores on both targets), showing how much of the
  ranking a single seed would have got right.

Scores are compared at the metric's resolution before ranking: a score is a mean of per-example scores, and
two selectors with the same count (214/700 correct) must tie, not differ by 1e-17 of floating-point noise
and count as a concordant pair. For a count metric (every stored value times its example count is an
integer) the grid is ``1 / (tasks x seeds x lcm(examples per task))``, otherwise 1e-9.

"Smaller" is the target whose fine-tunes cost fewer FLOPs (median ``finetune_flops`` over its cells: at equal
budgets this is the parameter ratio); ``order`` names them explicitly instead.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from s2lbench.errors import DataError
from s2lbench.results.export import open_results
from s2lbench.results.store import FULL, Cell, ResultsStore

DEFAULT_RESAMPLES = 1000


@dataclass
class BudgetTransfer:
    budget: int
    selectors: list[str]
    small_scores: list[float]
    large_scores: list[float]
    tau: float | None
    tau_low: float | None
    tau_high: float | None
    best_small: str
    best_large: str
    best_agrees: bool
    best_agrees_share: float | None  # share of bootstrap resamples in which the best agree
    seeds: list[int]
    resamples: int
    decision_accuracy: float | None = None  # share of selector pairs ordered alike on both targets
    decision_low: float | None = None  # its 95% bootstrap interval (seeds and test examples)
    decision_high: float | None = None
    tau_per_seed: list[float | None] = field(default_factory=list)  # seed s on both targets, when several seeds


@dataclass
class PairTransfer:
    small: str
    large: str
    budgets: list[BudgetTransfer] = field(default_factory=list)

    @property
    def best_agrees(self) -> tuple[int, int]:
        return sum(b.best_agrees for b in self.budgets), len(self.budgets)


def on_grid(values: Sequence[float], resolution: float) -> np.ndarray:
    """Scores as integer multiples of the metric's resolution: equal counts become equal, exactly."""
    return np.round(np.asarray(values, dtype=float) / resolution).astype(np.int64)


def _kendall(a: Sequence[float], b: Sequence[float], resolution: float = 1e-9) -> float | None:
    from scipy.stats import kendalltau

    if len(a) < 2:
        return None
    tau = kendalltau(on_grid(a, resolution), on_grid(b, resolution)).statistic  # tau-b: ties count as ties
    return None if tau is None or math.isnan(tau) else float(tau)


def decision_accuracy(small: Sequence[float], large: Sequence[float], higher: bool = True,
                      resolution: float = 1e-9) -> float | None:
    """Share of selector pairs whose order on the small target matches the large one (DataDecide): a pair tied
    on the small target counts half, a pair tied on the large one is left out; None without an untied pair."""
    a, b = on_grid(small, resolution), on_grid(large, resolution)
    if not higher:
        a, b = -a, -b
    i, j = np.triu_indices(len(a), k=1)
    da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    decided = db != 0
    if not decided.any():
        return None
    return float(np.mean(np.where(da[decided] == 0, 0.5, (da[decided] == db[decided]).astype(float))))


def _resolution(rows: Sequence[Any], n_tasks: int, n_seeds: int) -> float:
    """The grid scores live on: ``1 / (tasks x seeds x lcm(examples))`` for count metrics, else 1e-9."""
    sizes = [r.n for r in rows]
    if not rows or any(not n for n in sizes) or any(abs(r.value * r.n - round(r.value * r.n)) > 1e-6 for r in rows):
        return 1e-9
    return 1.0 / (n_tasks * n_seeds * math.lcm(*{int(n) for n in sizes}))


def _best(selectors: Sequence[str], scores: Sequence[float], higher: bool) -> str:
    values = np.asarray(scores, dtype=float)
    return selectors[int(np.argmax(values) if higher else np.argmin(values))]


class _Scores:
    """Per-example scores of every done cell, read once from the store's samples files."""

    def __init__(self, store: ResultsStore, metric: str | None, experiment: str | None):
        self.store = store
        self.cells = [c for c in store.cells(experiment) if c.status == "done" and c.selector != FULL]
        self.rows: dict[str, dict[str, Any]] = defaultdict(dict)  # cell id -> task -> ResultRow
        ids = {c.cell_id for c in self.cells}
        for r in store.results():
            if r.cell_id in ids and r.value is not None and (metric is None or r.metric == metric):
                current = self.rows[r.cell_id].get(r.task)
                if current is None or (metric is None and r.metric == "accuracy"):
                    self.rows[r.cell_id][r.task] = r
        self._samples: dict[tuple[str, str], np.ndarray | None] = {}

    def per_example(self, cell: Cell, task: str) -> np.ndarray | None:
        r = self.rows[cell.cell_id].get(task)
        if r is None or not r.samples_path:
            return None
        key = (cell.cell_id, task)
        if key not in self._samples:
            rows = self.store.load_samples(r.samples_path)
            try:
                pairs = sorted((int(row["index"]), float(row["scores"][r.metric])) for row in rows)
            except (KeyError, TypeError, ValueError) as e:
                raise DataError(f"samples need 'index' and scores[{r.metric!r}] ({e!r})",
                                path=self.store.folder / r.samples_path) from None
            self._samples[key] = np.array([v for _, v in pairs]) if pairs else None
        return self._samples[key]


def target_order(cells: Sequence[Cell], order: Sequence[str] | None = None) -> list[str]:
    targets = sorted({c.target for c in cells})
    if order:
        unknown = [t for t in order if t not in targets]
        if unknown:
            raise DataError(f"--transfer-order names target(s) {', '.join(unknown)} not in the store "
                            f"({', '.join(targets)})")
        return [t for t in order if t in targets]

    def size(target: str) -> tuple[float, str]:
        flops = [float(c.cost["finetune_flops"]) for c in cells if c.target == target and c.cost.get("finetune_flops")]
        return (float(np.median(flops)) if flops else math.inf, target)

    return sorted(targets, key=size)


def transfer_table(store: ResultsStore | str | Path, *, metric: str | None = None, experiment: str | None = None,
                   order: Sequence[str] | None = None, resamples: int = DEFAULT_RESAMPLES,
                   seed: int = 0) -> list[PairTransfer]:
    """Kendall's tau between selector rankings for every pair of targets (see the module docstring)."""
    store = store if isinstance(store, ResultsStore) else open_results(store)
    data = _Scores(store, metric, experiment)
    targets = target_order(data.cells, order)
    if len(targets) < 2:
        raise DataError(f"the transfer table needs two or more targets; {store.folder} has "
                        f"{', '.join(targets) or 'none'}")
    by_key: dict[tuple[str, int, str], list[Cell]] = defaultdict(list)
    for c in data.cells:
        by_key[(c.target, c.budget, c.selector)].append(c)
    out = []
    for small, large in itertools.combinations(targets, 2):
        pair = PairTransfer(small, large)
        budgets = sorted({b for (t, b, _) in by_key if t == small} & {b for (t, b, _) in by_key if t == large})
        for budget in budgets:
            result = _budget_transfer(data, by_key, small, large, budget, resamples, seed)
            if result is not None:
                pair.budgets.append(result)
        out.append(pair)
    return out


def _budget_transfer(data: _Scores, by_key, small: str, large: str, budget: int, resamples: int,
                     seed: int) -> BudgetTransfer | None:
    selectors = sorted({s for (t, b, s) in by_key if b == budget and t == small}
                       & {s for (t, b, s) in by_key if b == budget and t == large})
    tasks = sorted(set.intersection(*[set(data.rows[c.cell_id]) for s in selectors for t in (small, large)
                                      for c in by_key[(t, budget, s)]])) if selectors else []
    if len(selectors) < 2 or not tasks:
        return None
    higher = next(iter(data.rows[by_key[(small, budget, selectors[0])][0].cell_id].values())).higher_is_better
    seeds = sorted(set.intersection(*[{c.seed for c in by_key[(t, budget, s)]} for s in selectors
                                      for t in (small, large)]))

    def point(target: str, sel: str) -> float:
        cells = by_key[(target, budget, sel)]
        return float(np.mean([np.mean([data.rows[c.cell_id][task].value for task in tasks]) for c in cells]))

    small_scores = [point(small, s) for s in selectors]
    large_scores = [point(large, s) for s in selectors]
    task_rows = [data.rows[c.cell_id][task] for s in selectors for t in (small, large) for c in by_key[(t, budget, s)]
                 for task in tasks]
    seed_counts = {len(by_key[(t, budget, s)]) for s in selectors for t in (small, large)}
    resolution = _resolution(task_rows, len(tasks), math.lcm(*seed_counts))
    tau = _kendall(small_scores, large_scores, resolution)
    accuracy = decision_accuracy(small_scores, large_scores, higher, resolution)
    best_small, best_large = _best(selectors, small_scores, higher), _best(selectors, large_scores, higher)
    per_seed_resolution = _resolution(task_rows, len(tasks), 1)
    tau_per_seed = [_kendall(*[[_seed_point(data, by_key, t, budget, s, seed, tasks) for s in selectors]
                               for t in (small, large)], per_seed_resolution) for seed in seeds] if len(seeds) > 1 else []
    low = high = share = accuracy_low = accuracy_high = None
    # the bootstrap: seeds x tasks x examples arrays per (target, selector), when every sample is there
    arrays: dict[tuple[str, str], list[np.ndarray]] = {}
    complete = bool(seeds)
    for target, sel in itertools.product((small, large), selectors):
        cells = {c.seed: c for c in by_key[(target, budget, sel)]}
        per_task = []
        for task in tasks:
            rows = [data.per_example(cells[s], task) for s in seeds] if complete else []
            if not rows or any(r is None for r in rows) or len({r.size for r in rows}) != 1:
                complete = False
                break
            per_task.append(np.stack(rows))
        arrays[(target, sel)] = per_task
    if complete and resamples > 0:
        sizes = [arrays[(small, selectors[0])][k].shape[1] for k in range(len(tasks))]
        if all(arrays[key][k].shape[1] == sizes[k] for key in arrays for k in range(len(tasks))):
            rng = np.random.default_rng(seed)
            taus, accuracies, agree = [], [], 0
            binary = all(np.isin(x, (0.0, 1.0)).all() for per_task in arrays.values() for x in per_task)
            grid = 1.0 / (len(tasks) * len(seeds) * math.lcm(*sizes)) if binary else 1e-9
            for _ in range(resamples):
                seed_draw = rng.integers(0, len(seeds), len(seeds))
                example_draws = [rng.integers(0, n, n) for n in sizes]

                a = [_resampled(arrays[(small, s)], seed_draw, example_draws) for s in selectors]
                b = [_resampled(arrays[(large, s)], seed_draw, example_draws) for s in selectors]
                t = _kendall(a, b, grid)
                if t is not None:
                    taus.append(t)
                d = decision_accuracy(a, b, higher, grid)
                if d is not None:
                    accuracies.append(d)
                agree += _best(selectors, a, higher) == _best(selectors, b, higher)
            if taus:
                low, high = (float(x) for x in np.percentile(taus, [2.5, 97.5]))
            if accuracies:
                accuracy_low, accuracy_high = (float(x) for x in np.percentile(accuracies, [2.5, 97.5]))
            share = agree / resamples
    return BudgetTransfer(budget, selectors, small_scores, large_scores, tau, low, high, best_small, best_large,
                          best_small == best_large, share, seeds, resamples if share is not None else 0,
                          accuracy, accuracy_low, accuracy_high, tau_per_seed)


def _seed_point(data: _Scores, by_key, target: str, budget: int, selector: str, seed: int,
                tasks: Sequence[str]) -> float:
    cell = next(c for c in by_key[(target, budget, selector)] if c.seed == seed)
    return float(np.mean([data.rows[cell.cell_id][task].value for task in tasks]))


def _resampled(per_task: list[np.ndarray], seed_draw: np.ndarray, example_draws: list[np.ndarray]) -> float:
    """A score under one bootstrap draw: mean over tasks of the mean over drawn seeds x drawn examples."""
    return float(np.mean([scores[seed_draw][:, draw].mean() for scores, draw in zip(per_task, example_draws,
                                                                                     strict=True)]))


def render_transfer_markdown(pairs: Sequence[PairTransfer], scale: float = 100.0) -> str:
    lines = ["## Small-to-large transfer", "",
             "Kendall's tau-b between the selectors' scores (mean over seeds of the task average) on the smaller "
             "and the larger target, per budget, on scores at the metric's resolution (equal counts tie); 95% "
             "intervals from a bootstrap over seeds and test examples. Decision accuracy (DataDecide): the share of "
             "selector pairs ordered alike on both targets. Tau per seed: each common seed's scores alone. \"best "
             "agrees\": the best selector on the smaller target is the best on the larger one (share of bootstrap "
             "resamples in brackets).", ""]
    for pair in pairs:
        agree, total = pair.best_agrees
        lines += [f"### {pair.small} -> {pair.large}", "",
                  "| budget | selectors | tau | 95% interval | decision accuracy | 95% interval | tau per seed "
                  "| best on small | best on large | best agrees |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for b in pair.budgets:
            tau = "n/a" if b.tau is None else f"{b.tau:+.2f}"
            interval = "n/a" if b.tau_low is None else f"[{b.tau_low:+.2f}, {b.tau_high:+.2f}]"
            share = "" if b.best_agrees_share is None else f" ({b.best_agrees_share:.0%})"
            accuracy = "n/a" if b.decision_accuracy is None else f"{b.decision_accuracy:.0%}"
            accuracy_interval = ("n/a" if b.decision_low is None
                                 else f"[{b.decision_low:.0%}, {b.decision_high:.0%}]")
            per_seed = " ".join("n/a" if t is None else f"{t:+.2f}" for t in b.tau_per_seed) or "—"
            lines.append(f"| {b.budget} | {len(b.selectors)} | {tau} | {interval} | {accuracy} | {accuracy_interval} "
                         f"| {per_seed} | {b.best_small} | {b.best_large} | {'yes' if b.best_agrees else 'no'}{share} |")
        lines += ["", f"The best selector on {pair.small} is the best on {pair.large} at {agree} of {total} budget(s).", ""]
        for b in pair.budgets:
            scores = ", ".join(f"{s} {x * scale:.1f}/{y * scale:.1f}" for s, x, y in
                               zip(b.selectors, b.small_scores, b.large_scores, strict=True))
            lines.append(f"- budget {b.budget} (seeds {', '.join(map(str, b.seeds)) or 'n/a'}; small/large): {scores}")
        lines.append("")
    return "\n".join(lines)


def transfer_json(pairs: Sequence[PairTransfer]) -> list[dict[str, Any]]:
    return [{"small": p.small, "large": p.large, "best_agrees": list(p.best_agrees),
             "budgets": [asdict(b) for b in p.budgets]} for p in pairs]
