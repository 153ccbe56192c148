"""The calibrated paired test and the seed summary: exact cases, agreement with scipy's t-tests where the example
term vanishes, the example term by hand, one seed, and Holm. Its error rates: tests/test_inference_calibration.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from s2lbench.errors import DataError
from s2lbench.report.stats import ExternalSeedSD, holm_adjust, paired_test, summarize_seeds


def as_scores(values) -> dict[int, float]:
    return {i: float(v) for i, v in enumerate(values)}


def seeds_of(matrix) -> dict[int, dict[int, float]]:
    return {s: as_scores(row) for s, row in enumerate(np.asarray(matrix, dtype=float))}


def test_summarize_seeds_uses_sample_std_and_flags_one_seed():
    s = summarize_seeds([0.3, 0.4, 0.5])
    assert s.mean == pytest.approx(0.4) and s.std == pytest.approx(0.1) and s.n_seeds == 3
    one = summarize_seeds([0.7])
    assert one.std is None and one.n_seeds == 1
    with pytest.raises(ValueError):
        summarize_seeds([])


def test_a_constant_difference_is_certain_and_follows_the_metrics_direction():
    base = np.random.default_rng(1).random((3, 50))
    test = paired_test([(seeds_of(base + 0.25), seeds_of(base))])
    assert test.mean_diff == pytest.approx(0.25) and test.p_value == 0.0
    assert test.low == pytest.approx(0.25) and test.high == pytest.approx(0.25)
    assert test.verdict(higher_is_better=True) == "better" and test.verdict(higher_is_better=False) == "worse"


def test_identical_scores_are_a_tie():
    scores = seeds_of(np.tile(np.arange(30) % 2, (3, 1)))
    test = paired_test([(scores, scores)])
    assert (test.mean_diff, test.p_value, test.low, test.high) == (0.0, 1.0, 0.0, 0.0)
    assert test.verdict(True) == "tie"


def test_without_an_example_term_it_is_scipys_paired_t_test():
    # each seed's difference is the same on every example: the example term is 0, the seed term is everything
    rng = np.random.default_rng(7)
    base = rng.integers(0, 2, (4, 60)).astype(float)
    shifts = np.array([0.05, 0.12, -0.02, 0.08])
    test = paired_test([(seeds_of(base + shifts[:, None]), seeds_of(base))])
    expected = scipy_stats.ttest_rel(base.mean(axis=1) + shifts, base.mean(axis=1))
    assert test.p_value == pytest.approx(expected.pvalue) and test.df == pytest.approx(3)
    half = scipy_stats.t.ppf(0.975, 3) * shifts.std(ddof=1) / 2
    assert (test.low, test.high) == pytest.approx((shifts.mean() - half, shifts.mean() + half))
    assert test.pairing == "seeds" and test.n_seed_pairs == 4 and test.n_examples == 60


def test_the_example_term_is_the_two_way_decomposition_by_hand():
    rng = np.random.default_rng(3)
    n, m = 3, 40
    d = rng.normal(0.0, 1.0, (n, m)) + rng.normal(0.0, 2.0, m)  # a strong per-example effect, shared by seeds
    test = paired_test([(seeds_of(d), seeds_of(np.zeros((n, m))))])
    row, col, grand = d.mean(axis=1), d.mean(axis=0), d.mean()
    ms_res = ((d - row[:, None] - col[None, :] + grand) ** 2).sum() / ((n - 1) * (m - 1))
    seed_term = row.var(ddof=1) / n
    example_term = max(0.0, col.var(ddof=1) / m - ms_res / (n * m))
    assert example_term > seed_term > 0
    assert test.se == pytest.approx(math.sqrt(seed_term + example_term))
    assert test.df == pytest.approx(n - 1)  # the example term adds variance, not degrees of freedom
    t = grand / test.se
    assert test.p_value == pytest.approx(2 * scipy_stats.t.sf(abs(t), n - 1))


def test_an_average_column_combines_its_sets():
    rng = np.random.default_rng(4)
    a, b = rng.integers(0, 2, (3, 30)).astype(float), rng.integers(0, 2, (3, 50)).astype(float)
    zero_a, zero_b = np.zeros((3, 30)), np.zeros((3, 50))
    both = paired_test([(seeds_of(a), seeds_of(zero_a)), (seeds_of(b), seeds_of(zero_b))])
    assert both.mean_diff == pytest.approx((a.mean() + b.mean()) / 2)  # macro average over sets
    assert both.n_examples == 80 and both.df == pytest.approx(2)


def test_seeds_that_agree_exactly_by_chance_do_not_make_a_certainty():
    # two seeds, the same per-seed mean difference, different examples: not a zero variance
    d = np.array([[1, 0, 0, 1, 0, 0, 0, 0], [0, 1, 0, 0, 1, 0, 0, 0]], dtype=float)
    test = paired_test([(seeds_of(d), seeds_of(np.zeros_like(d)))])
    assert test.mean_diff == pytest.approx(0.25) and test.p_value > 0.05 and test.se > 0


def test_sides_without_a_common_seed_are_compared_unpaired_with_welch():
    rng = np.random.default_rng(8)
    base = rng.integers(0, 2, 40).astype(float)
    sel_shift, base_shift = np.array([0.3, 0.35, 0.28]), np.array([0.0, 0.05, -0.02])
    sel = {s: as_scores(base + x) for s, x in zip((0, 1, 2), sel_shift, strict=True)}
    ref = {s: as_scores(base + x) for s, x in zip((5, 6, 7), base_shift, strict=True)}
    test = paired_test([(sel, ref)])
    expected = scipy_stats.ttest_ind(base.mean() + sel_shift, base.mean() + base_shift, equal_var=False)
    assert test.pairing == "unpaired" and test.n_seed_pairs == 0
    assert test.p_value == pytest.approx(expected.pvalue)


def test_one_seed_is_untested_unless_a_seed_sd_is_given():
    rng = np.random.default_rng(2)
    base = rng.integers(0, 2, 100).astype(float)
    sel = np.where(rng.random(100) < 0.3, 1.0, base)
    untested = paired_test([({0: as_scores(sel)}, {0: as_scores(base)})])
    assert not untested.tested and untested.p_value is None and untested.low is None
    assert untested.verdict(True) == "untested" and not untested.excludes_zero
    assert untested.mean_diff == pytest.approx((sel - base).mean())
    external = ExternalSeedSD(0.02, 12, "board X")
    tested = paired_test([({0: as_scores(sel)}, {0: as_scores(base)})], seed_sd=external)
    assert tested.tested and tested.seed_sd_source == "board X" and tested.df == pytest.approx(12)
    assert tested.se >= math.sqrt(2) * 0.02  # a seed pair's variance is 2 sd^2, plus the examples'


def test_no_common_examples_is_an_error_naming_the_comparison():
    with pytest.raises(DataError, match="s2l vs random.*share no scored test example"):
        paired_test([({0: {0: 1.0}}, {0: {1: 0.0}})], where="s2l vs random")


def test_holm_adjust_matches_the_step_down_procedure():
    # sorted: .01 x3 = .03, .03 x2 = .06, .04 x1 = .04 -> .06 (adjusted p never decrease along the order)
    assert holm_adjust([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm_adjust([0.02]) == pytest.approx([0.02])  # one test: unchanged
    assert holm_adjust([]) == []
