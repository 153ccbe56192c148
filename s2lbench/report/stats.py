"""Seed statistics and the paired bootstrap behind the leaderboard's "vs random" marks.

The paired bootstrap compares a selector with a baseline (random) on the *same* test examples:

- Examples are matched by their ``index``; only indices both sides scored are compared.
- Across seeds: when both sides ran some common seeds, seed ``s`` of the selector is paired with seed ``s``
  of the baseline and each bootstrap draw resamples those seed pairs with replacement *and* the test
  examples with replacement (the same example draw for every seed pair, so the pairing holds). When they
  share no seed, each side's per-example scores are first averaged over its seeds and only examples are
  resampled.
- Several tasks (the leaderboard's average column) are combined as the mean of the per-task mean
  differences; each task's examples are resampled on their own, seed pairs are shared.
- The statistic is the mean difference ``selector - baseline``; the interval is the percentile interval of
  the bootstrap distribution. Draws use ``numpy.random.default_rng(seed)``, so a report is reproducible.
- The two-sided p-value is the normal (Wald) one with the bootstrap's standard error,
  ``erfc(|mean| / (se * sqrt 2))``: counting draws beyond 0 instead could not go below ``2 / (resamples + 1)``,
  too coarse for a multiple-comparison correction over a large table. A table tests many (selector, column)
  pairs; :func:`holm_adjust` controls the family-wise error over them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from s2lbench.errors import DataError

DEFAULT_RESAMPLES = 2000
DEFAULT_BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class SeedSummary:
    """Mean and sample standard deviation (ddof=1) over seeds; ``std`` is None with one seed."""

    mean: float
    std: float | None
    n_seeds: int


def summarize_seeds(values: Sequence[float]) -> SeedSummary:
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    if arr.size == 0:
        raise ValueError("no values to summarize")
    std = float(arr.std(ddof=1)) if arr.size > 1 else None
    return SeedSummary(float(arr.mean()), std, int(arr.size))


@dataclass(frozen=True)
class PairedTest:
    """Result of a paired bootstrap of ``selector - baseline``."""

    mean_diff: float
    low: float
    high: float
    confidence: float
    pairing: str  # "seeds" (seed s with seed s) or "seed-averaged"
    n_seed_pairs: int  # seed pairs used; 0 when seed-averaged
    n_examples: int  # matched test examples, summed over tasks
    resamples: int
    p_value: float = 1.0  # two-sided bootstrap p-value of "no difference"

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def verdict(self, higher_is_better: bool) -> str:
        """``better`` / ``worse`` when the interval excludes 0 (in the metric's direction), else ``tie``."""
        if not self.excludes_zero:
            return "tie"
        up = self.low > 0
        return "better" if up == higher_is_better else "worse"


# per seed: {example index: score}
SeedScores = Mapping[int, Mapping[int, float]]


def _aligned(selector: SeedScores, baseline: SeedScores, where: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Two (seeds x examples) arrays over the common examples; seed-paired when the sides share seeds."""
    if not selector or not baseline:
        raise DataError(f"{where}: no per-example scores to compare")
    common_seeds = sorted(set(selector) & set(baseline))
    seed_sets = ([selector[s] for s in common_seeds], [baseline[s] for s in common_seeds]) if common_seeds else (
        list(selector.values()), list(baseline.values()))
    indices = set.intersection(*(set(m) for m in seed_sets[0] + seed_sets[1]))
    if not indices:
        raise DataError(f"{where}: the selector and the baseline share no scored test example index")
    order = sorted(indices)
    a = np.asarray([[m[i] for i in order] for m in seed_sets[0]], dtype=float)
    b = np.asarray([[m[i] for i in order] for m in seed_sets[1]], dtype=float)
    if not common_seeds:
        a, b = a.mean(axis=0, keepdims=True), b.mean(axis=0, keepdims=True)
    return a, b, common_seeds


def paired_bootstrap(tasks: Sequence[tuple[SeedScores, SeedScores]], *, resamples: int = DEFAULT_RESAMPLES,
                     confidence: float = 0.95, seed: int = DEFAULT_BOOTSTRAP_SEED,
                     where: str = "paired bootstrap") -> PairedTest:
    """Paired bootstrap of the mean difference over one or more tasks (see the module docstring).

    ``tasks`` holds, per task, ``(selector_scores, baseline_scores)``, each ``{seed: {example index: score}}``.
    """
    if not tasks:
        raise ValueError("paired_bootstrap needs at least one task")
    diffs, seed_lists = [], []
    for sel, base in tasks:
        a, b, common = _aligned(sel, base, where)
        diffs.append(a - b)  # seeds x examples
        seed_lists.append(tuple(common))
    paired = all(seed_lists) and len(set(seed_lists)) == 1
    if not paired:  # tasks disagree on seeds (or share none): fall back to seed-averaged for all
        diffs = [d.mean(axis=0, keepdims=True) for d in diffs]
    n_pairs = diffs[0].shape[0]
    rng = np.random.default_rng(seed)
    seed_draw = (rng.integers(0, n_pairs, size=(resamples, n_pairs)) if n_pairs > 1
                 else np.zeros((resamples, 1), dtype=np.int64))
    boot = np.zeros(resamples)
    for d in diffs:
        n = d.shape[1]
        example_draw = rng.integers(0, n, size=(resamples, n))
        # mean over the drawn seed pairs of the mean over the drawn examples, for each resample
        per_seed_means = np.stack([d[s][example_draw].mean(axis=1) for s in range(n_pairs)], axis=1)
        boot += np.take_along_axis(per_seed_means, seed_draw, axis=1).mean(axis=1)
    boot /= len(diffs)
    observed = float(np.mean([d.mean() for d in diffs]))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    p_value = _wald_p_value(observed, float(boot.std(ddof=1)) if resamples > 1 else 0.0)
    return PairedTest(mean_diff=observed, low=float(low), high=float(high), confidence=confidence,
                      pairing="seeds" if paired else "seed-averaged", n_seed_pairs=n_pairs if paired else 0,
                      n_examples=int(sum(d.shape[1] for d in diffs)), resamples=resamples, p_value=p_value)


def _wald_p_value(mean: float, se: float) -> float:
    if abs(mean) < 1e-12:
        return 1.0
    if se < 1e-12:  # every draw is the same non-zero difference
        return 0.0
    return float(math.erfc(abs(mean) / (se * math.sqrt(2))))


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order: reject where the adjusted p < alpha and the
    family-wise error rate stays at alpha under any dependence between the tests."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
