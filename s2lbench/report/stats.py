"""Seed statistics and the calibrated paired test behind the leaderboard's "vs random" marks.

A cell's score is the mean over a test set's examples of a model fine-tuned with one seed. Two sources of
noise move it: the seed (the fine-tune, the selection's random stream) and the finite test set. The test
compares a selector with a baseline (random) on the *same* examples and counts both, calibrated for the
2-10 seeds a board runs (benchmarks/inference_calibration.py measures it; docs/leaderboards.md has the figures):

- Examples are matched by their ``index``; only indices both sides scored are compared.
- Seed pairs: when both sides ran common seeds, seed ``s`` of the selector is paired with seed ``s`` of the
  baseline and ``d_s`` is the mean over examples of that pair's difference. With several tasks (an average
  column) ``d_s`` is the mean of the per-task mean differences. The statistic is ``mean_s d_s``.
- Its variance is estimated from the two-way (seeds x examples) decomposition of the per-example differences:
  the seed term ``var(d_s) / n`` (it holds the seed-to-seed spread, and the example x seed noise, whose own
  estimate ``MS_residual / m`` replaces it when discrete scores make the seeds agree exactly) plus the
  example term ``(MS_examples - MS_residual) / (n m)`` (how much the set's particular examples move the mean
  when every seed sees the same ones), truncated at 0 and averaged over tasks as ``1 / T^2`` times the sum.
- The p-value and the interval are Student-t's with the seed term's degrees of freedom (``n - 1`` paired; the
  Welch-Satterthwaite df of the two seed terms unpaired): the example terms add variance, not degrees of
  freedom (with them in the Satterthwaite sum the averages were measured anti-conservative). At 3 seeds the seed term has 2
  degrees of freedom and the 95% quantile is 4.30, not the normal 1.96: that is what a bootstrap over 3 seed
  pairs misses (its variance is also shrunk by ``(n - 1) / n``), and why it marked identical selectors.
- Sides that share no seed are compared unpaired: the seed term is ``var(a_s) / n_a + var(b_s) / n_b``
  (Welch), the example term the same decomposition of the seed-averaged differences.
- One seed cannot say how much a fine-tune moves with its seed: without an external estimate the test is not
  made (``p_value`` None, the board shows no mark). With :class:`ExternalSeedSD` (a seed standard deviation
  measured elsewhere, named on the board) a side with one seed uses it, with that estimate's degrees of freedom.

Assumptions: seeds are exchangeable and independent; the per-seed mean differences are roughly normal (means
of hundreds of examples); the test set is a sample of the task's examples. An exact sign-flip permutation
over seed pairs was measured and rejected: its smallest two-sided p-value is ``2 / 2^n`` = 0.25 at 3 seeds,
so it could never mark a difference there. A table tests many (selector, column) pairs; :func:`holm_adjust`
controls the family-wise error over them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from s2lbench.errors import DataError

DEFAULT_RESAMPLES = 2000  # the transfer table's bootstrap
DEFAULT_BOOTSTRAP_SEED = 0
METHOD = "seed-level paired t (the seeds' df) + the test set's example variance"


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
class ExternalSeedSD:
    """A per-seed standard deviation of one column's score measured elsewhere (another board with several
    seeds), used for a side with one seed; ``df`` its degrees of freedom (inf for a given constant)."""

    sd: float
    df: float
    source: str


@dataclass(frozen=True)
class PairedTest:
    """Result of the calibrated test of ``selector - baseline``; ``p_value``/``low``/``high`` are None when
    the seed variance is unknown (one seed and no external estimate)."""

    mean_diff: float
    low: float | None
    high: float | None
    confidence: float
    pairing: str  # "seeds" (seed s with seed s) or "unpaired" (no common seed)
    n_seed_pairs: int  # seed pairs used; 0 when unpaired
    n_examples: int  # matched test examples, summed over tasks
    se: float | None = None
    df: float | None = None
    p_value: float | None = None  # two-sided
    seed_sd_source: str | None = None  # the external seed sd used, if any

    @property
    def tested(self) -> bool:
        return self.p_value is not None

    @property
    def excludes_zero(self) -> bool:
        return self.p_value is not None and self.p_value < 1 - self.confidence

    def verdict(self, higher_is_better: bool) -> str:
        """``better`` / ``worse`` when the test rejects "no difference" (in the metric's direction), ``tie``
        when it does not, ``untested`` without a seed variance."""
        if not self.tested:
            return "untested"
        if not self.excludes_zero:
            return "tie"
        return "better" if (self.mean_diff > 0) == higher_is_better else "worse"


# per seed: {example index: score}
SeedScores = Mapping[int, Mapping[int, float]]


def _aligned(selector: SeedScores, baseline: SeedScores, where: str
             ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Two (seeds x examples) arrays over the common examples, rows in common-seed order when paired."""
    if not selector or not baseline:
        raise DataError(f"{where}: no per-example scores to compare")
    common_seeds = sorted(set(selector) & set(baseline))
    sel_maps = [selector[s] for s in common_seeds] if common_seeds else [selector[s] for s in sorted(selector)]
    base_maps = [baseline[s] for s in common_seeds] if common_seeds else [baseline[s] for s in sorted(baseline)]
    indices = set.intersection(*(set(m) for m in sel_maps + base_maps))
    if not indices:
        raise DataError(f"{where}: the selector and the baseline share no scored test example index")
    order = sorted(indices)
    a = np.asarray([[m[i] for i in order] for m in sel_maps], dtype=float)
    b = np.asarray([[m[i] for i in order] for m in base_maps], dtype=float)
    return a, b, common_seeds


def _example_variance(diffs: np.ndarray, error_ms: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """(variance of the mean due to the examples, its df) from ``diffs`` (..., seeds, examples): the variance of
    the per-example differences averaged over seeds, less the seed x example noise already in the seed term
    (``error_ms / (n m)``), truncated at 0 (df inf where 0)."""
    n_seeds, m = diffs.shape[-2:]
    if m < 2:
        zero = np.zeros(diffs.shape[:-2])
        return zero, np.full_like(zero, np.inf)
    v_examples = diffs.mean(axis=-2).var(ddof=1, axis=-1) / m
    v_error = np.asarray(error_ms) / (n_seeds * m)
    v = np.maximum(0.0, v_examples - v_error)
    df_error = (n_seeds - 1) * (m - 1)
    denom = v_examples ** 2 / (m - 1) + (v_error ** 2 / df_error if df_error > 0 else 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where((v > 0) & (denom > 0), v * v / np.where(denom > 0, denom, 1.0), np.inf)
    return v, df


def _residual_ms(x: np.ndarray) -> np.ndarray:
    """Residual mean square of (..., seeds, examples) tables after seed and example means; 0 with one seed."""
    n, m = x.shape[-2:]
    if n < 2 or m < 2:
        return np.zeros(x.shape[:-2])
    r = x - x.mean(axis=-1, keepdims=True) - x.mean(axis=-2, keepdims=True) + x.mean(axis=(-2, -1), keepdims=True)
    return (r * r).sum(axis=(-2, -1)) / ((n - 1) * (m - 1))


@dataclass(frozen=True)
class TResult:
    """Elementwise (arrays over a batch of comparisons, or 0-d) results of :func:`combine`."""

    mean: np.ndarray
    se: np.ndarray
    df: np.ndarray
    p_value: np.ndarray
    low: np.ndarray
    high: np.ndarray


@dataclass(frozen=True)
class Component:
    """One independent term of a mean's estimated variance: ``variance`` (array), its degrees of freedom, and
    whether it is a seed term (whose df set the test's) or an example term (variance only, see :func:`combine`)."""

    variance: np.ndarray
    df: np.ndarray | float
    seed_term: bool


def combine(mean: np.ndarray, components: Sequence[Component], confidence: float = 0.95, *,
            example_df: bool = False) -> TResult:
    """Student-t p-value and interval of ``mean`` whose variance is the sum of the components'.

    The degrees of freedom are the Welch-Satterthwaite combination of the seed terms only: the example terms
    add their variance but not their (large, and badly estimated) df, which keeps the test at least as
    conservative as the seed-level t-test, exact for normal per-seed means. ``example_df=True`` puts them in
    the Satterthwaite sum too: measured anti-conservative for averages over several sets (benchmarks/
    inference_calibration.py), kept for that comparison. A zero variance gives p 1 for a zero mean, else 0.
    """
    from scipy import stats as scipy_stats  # scipy is heavy: imported on use, never at `s2lbench --help`

    mean = np.asarray(mean, dtype=float)
    var = np.zeros_like(mean)
    denom = np.zeros_like(mean)
    for c in components:
        v = np.broadcast_to(np.asarray(c.variance, dtype=float), mean.shape)
        df = np.broadcast_to(np.asarray(c.df, dtype=float), mean.shape)
        var = var + v
        if c.seed_term or example_df:
            denom = denom + np.where((v > 0) & np.isfinite(df), v * v / np.where(df > 0, df, 1.0), 0.0)
    seed_var = sum((np.broadcast_to(np.asarray(c.variance, dtype=float), mean.shape) for c in components
                    if c.seed_term or example_df), np.zeros_like(mean))
    degenerate = var <= 1e-24
    safe_var = np.where(degenerate, 1.0, var)
    df = np.where(denom > 0, seed_var * seed_var / np.where(denom > 0, denom, 1.0), np.inf)
    df = np.where(seed_var > 1e-24, df, _seed_df_floor(components, mean.shape))
    se = np.sqrt(safe_var)
    p = np.where(degenerate, np.where(np.abs(mean) < 1e-12, 1.0, 0.0),
                 2 * scipy_stats.t.sf(np.abs(mean) / se, df))
    half = np.where(degenerate, 0.0, scipy_stats.t.ppf(0.5 + confidence / 2, df) * se)
    return TResult(mean, np.where(degenerate, 0.0, se), np.where(degenerate, np.inf, df), p, mean - half,
                   mean + half)


def _seed_df_floor(components: Sequence[Component], shape: tuple[int, ...]) -> np.ndarray:
    """The df where every seed term is 0 (seeds agree exactly): the smallest seed df, never more."""
    dfs = [np.broadcast_to(np.asarray(c.df, dtype=float), shape) for c in components if c.seed_term]
    return np.minimum.reduce(dfs) if dfs else np.full(shape, np.inf)


def seed_paired_components(diffs: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Component]]:
    """(mean difference, variance components) of per-task differences, each (..., seeds, examples) with the
    same seed pairs in the same order, at least 2 of them (vectorised over the leading axes)."""
    n_tasks = len(diffs)
    per_seed = np.mean([d.mean(axis=-1) for d in diffs], axis=0)  # d_s
    n = per_seed.shape[-1]
    residuals = [_residual_ms(d) for d in diffs]
    # seeds that agree exactly by chance (scores are discrete: two seeds of 200 0/1 answers often do) would make a
    # zero variance and p = 0; their variance is then the seed x example noise's own estimate, sum MS_res / (m T^2)
    noise = sum(ms / d.shape[-1] for ms, d in zip(residuals, diffs, strict=True)) / n_tasks ** 2
    seed_var = per_seed.var(ddof=1, axis=-1)
    components = [Component(np.where(seed_var > 1e-15, seed_var, noise) / n, float(n - 1), True)]
    for d, ms in zip(diffs, residuals, strict=True):
        v, df = _example_variance(d, ms)
        components.append(Component(v / n_tasks ** 2, df, False))
    return per_seed.mean(axis=-1), components


def paired_test(tasks: Sequence[tuple[SeedScores, SeedScores]], *, confidence: float = 0.95,
                seed_sd: ExternalSeedSD | None = None, where: str = "paired test") -> PairedTest:
    """The calibrated test of the mean difference over one or more tasks (see the module docstring).

    ``tasks`` holds, per task, ``(selector_scores, baseline_scores)``, each ``{seed: {example index: score}}``;
    ``seed_sd`` is the external seed standard deviation of the compared column, used for a side with one seed.
    """
    if not tasks:
        raise ValueError("paired_test needs at least one task")
    aligned = [_aligned(sel, base, where) for sel, base in tasks]
    seed_lists = {tuple(common) for _, _, common in aligned}
    paired = len(seed_lists) == 1 and bool(next(iter(seed_lists)))
    n_tasks = len(aligned)
    n_examples = int(sum(a.shape[1] for a, _, _ in aligned))
    external = None
    if paired:
        diffs = [a - b for a, b, _ in aligned]
        n = diffs[0].shape[0]
        if n >= 2:
            mean, components = seed_paired_components(diffs)
        else:
            mean = np.mean([d.mean() for d in diffs])
            if seed_sd is None:
                return PairedTest(float(mean), None, None, confidence, "seeds", n, n_examples)
            external = seed_sd.source
            # one seed pair: the example term cannot be told from the seed x example noise; counting both is
            # conservative
            components = [Component(np.asarray(2 * seed_sd.sd ** 2), seed_sd.df, True)]
            components += [Component(v / n_tasks ** 2, df, False)
                           for v, df in (_example_variance(d, 0.0) for d in diffs)]
        n_pairs = n
    else:
        if len({a.shape[0] for a, _, _ in aligned}) != 1 or len({b.shape[0] for _, b, _ in aligned}) != 1:
            raise DataError(f"{where}: the tasks of one column have different seed counts")
        a_seed = np.mean([a.mean(axis=1) for a, _, _ in aligned], axis=0)
        b_seed = np.mean([b.mean(axis=1) for _, b, _ in aligned], axis=0)
        mean = np.asarray(a_seed.mean() - b_seed.mean())
        components: list[Component] = []
        for side, arrays in ((a_seed, [a for a, _, _ in aligned]), (b_seed, [b for _, b, _ in aligned])):
            if side.size >= 2:
                var = float(side.var(ddof=1))
                if var <= 1e-15:  # as in the paired case: seeds agreeing exactly by chance
                    var = float(sum(_residual_ms(x) / x.shape[1] for x in arrays) / n_tasks ** 2)
                components.append(Component(np.asarray(var / side.size), float(side.size - 1), True))
            elif seed_sd is not None:
                external = seed_sd.source
                components.append(Component(np.asarray(seed_sd.sd ** 2), seed_sd.df, True))
            else:
                return PairedTest(float(mean), None, None, confidence, "unpaired", 0, n_examples)
        for a, b, _ in aligned:
            d = a.mean(axis=0, keepdims=True) - b.mean(axis=0, keepdims=True)
            error_ms = _residual_ms(a) / a.shape[0] + _residual_ms(b) / b.shape[0]  # per example, seed-averaged
            v, df = _example_variance(d, error_ms)
            components.append(Component(v / n_tasks ** 2, df, False))
        n_pairs = 0
    r = combine(mean, components, confidence)
    return PairedTest(float(r.mean), float(r.low), float(r.high), confidence, "seeds" if paired else "unpaired",
                      n_pairs, n_examples, float(r.se), float(r.df), float(r.p_value), external)


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
