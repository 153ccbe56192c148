"""The paired bootstrap and the seed summary: exact cases, agreement with a naive bootstrap, and coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from s2lbench.errors import DataError
from s2lbench.report.stats import holm_adjust, paired_bootstrap, summarize_seeds


def as_scores(values) -> dict[int, float]:
    return {i: float(v) for i, v in enumerate(values)}


def test_summarize_seeds_uses_sample_std_and_flags_one_seed():
    s = summarize_seeds([0.3, 0.4, 0.5])
    assert s.mean == pytest.approx(0.4) and s.std == pytest.approx(0.1) and s.n_seeds == 3
    one = summarize_seeds([0.7])
    assert one.std is None and one.n_seeds == 1
    with pytest.raises(ValueError):
        summarize_seeds([])


def test_constant_difference_gives_a_degenerate_interval():
    rng = np.random.default_rng(1)
    base = rng.random(50)
    test = paired_bootstrap([({0: as_scores(base + 0.25)}, {0: as_scores(base)})], resamples=300)
    assert test.mean_diff == pytest.approx(0.25)
    assert test.low == pytest.approx(0.25) and test.high == pytest.approx(0.25)
    assert test.excludes_zero and test.verdict(higher_is_better=True) == "better"
    assert test.verdict(higher_is_better=False) == "worse"


def test_identical_scores_are_a_tie():
    scores = {s: as_scores(np.arange(30) % 2) for s in range(3)}
    test = paired_bootstrap([(scores, scores)], resamples=300)
    assert (test.mean_diff, test.low, test.high) == (0.0, 0.0, 0.0)
    assert not test.excludes_zero and test.verdict(True) == "tie"


def test_one_seed_matches_a_naive_example_bootstrap():
    rng = np.random.default_rng(7)
    sel, base = rng.integers(0, 2, 80), rng.integers(0, 2, 80)
    test = paired_bootstrap([({0: as_scores(sel)}, {0: as_scores(base)})], resamples=1000, seed=3)
    d = (sel - base).astype(float)
    draws = np.random.default_rng(3).integers(0, d.size, size=(1000, d.size))
    low, high = np.percentile(d[draws].mean(axis=1), [2.5, 97.5])
    assert test.low == pytest.approx(low) and test.high == pytest.approx(high)
    assert test.mean_diff == pytest.approx(d.mean())
    assert test.pairing == "seeds" and test.n_seed_pairs == 1 and test.n_examples == 80


def test_interval_width_matches_the_normal_approximation():
    rng = np.random.default_rng(11)
    n = 2000
    base = rng.integers(0, 2, n).astype(float)
    sel = np.where(rng.random(n) < 0.1, 1 - base, base)  # 10% of the answers flip
    test = paired_bootstrap([({0: as_scores(sel)}, {0: as_scores(base)})], resamples=2000)
    d = sel - base
    half_width = 1.96 * d.std(ddof=1) / np.sqrt(n)
    assert (test.high - test.low) / 2 == pytest.approx(half_width, rel=0.1)
    assert test.low < d.mean() < test.high


def test_seed_pairs_are_resampled():
    # within a seed every example differs by the same amount, so only the seed resampling adds spread:
    # the mean over two drawn seed pairs is .1, .2 or .3
    base = as_scores(np.zeros(20))
    sel = {0: as_scores(np.full(20, 0.1)), 1: as_scores(np.full(20, 0.3))}
    test = paired_bootstrap([(sel, {0: base, 1: base})], resamples=2000)
    assert test.mean_diff == pytest.approx(0.2)
    assert test.low == pytest.approx(0.1) and test.high == pytest.approx(0.3)
    assert test.n_seed_pairs == 2


def test_without_shared_seeds_scores_are_averaged_over_seeds_first():
    sel = {0: as_scores([1, 1, 0, 0]), 1: as_scores([1, 0, 1, 0])}
    base = {5: as_scores([0, 0, 0, 0])}
    test = paired_bootstrap([(sel, base)], resamples=500)
    assert test.pairing == "seed-averaged" and test.n_seed_pairs == 0
    assert test.mean_diff == pytest.approx(0.5)


def test_examples_are_matched_by_index_not_position():
    base = {0: {3: 0.0, 1: 1.0, 2: 0.0}}
    sel = {0: {1: 1.0, 2: 1.0, 3: 0.0, 99: 1.0}}  # shuffled, and index 99 has no counterpart
    test = paired_bootstrap([(sel, base)], resamples=200)
    assert test.n_examples == 3 and test.mean_diff == pytest.approx(1 / 3)


def test_several_tasks_average_the_per_task_differences():
    a = ({0: as_scores(np.ones(10))}, {0: as_scores(np.zeros(10))})  # +1 on 10 examples
    b = ({0: as_scores(np.zeros(90))}, {0: as_scores(np.zeros(90))})  # 0 on 90 examples
    test = paired_bootstrap([a, b], resamples=200)
    assert test.mean_diff == pytest.approx(0.5)  # macro: (1 + 0) / 2, not 10 / 100
    assert test.low == pytest.approx(0.5) and test.high == pytest.approx(0.5)


def test_deterministic_given_the_bootstrap_seed():
    rng = np.random.default_rng(0)
    pair = ({s: as_scores(rng.integers(0, 2, 30)) for s in range(3)}, {s: as_scores(rng.integers(0, 2, 30))
                                                                         for s in range(3)})
    first, again = paired_bootstrap([pair], seed=4), paired_bootstrap([pair], seed=4)
    assert (first.low, first.high) == (again.low, again.high)
    assert (paired_bootstrap([pair], seed=5).low, paired_bootstrap([pair], seed=5).high) != (first.low, first.high)


def test_no_common_examples_is_an_error_naming_the_comparison():
    with pytest.raises(DataError, match="s2l vs random.*share no scored test example"):
        paired_bootstrap([({0: {0: 1.0}}, {0: {1: 0.0}})], where="s2l vs random")


def test_holm_adjust_matches_the_step_down_procedure():
    # sorted: .01 x3 = .03, .03 x2 = .06, .04 x1 = .04 -> .06 (adjusted p never decrease along the order)
    assert holm_adjust([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm_adjust([0.02]) == pytest.approx([0.02])  # one test: unchanged
    assert holm_adjust([]) == []


def test_p_value_follows_the_bootstrap_standard_error():
    rng = np.random.default_rng(5)
    base = rng.integers(0, 2, 300).astype(float)
    sel = np.where(rng.random(300) < 0.15, 1 - base, base)
    test = paired_bootstrap([({0: as_scores(sel)}, {0: as_scores(base)})], resamples=2000, seed=2)
    d = sel - base
    draws = np.random.default_rng(2).integers(0, d.size, size=(2000, d.size))
    se = d[draws].mean(axis=1).std(ddof=1)
    expected = math.erfc(abs(d.mean()) / (se * math.sqrt(2)))
    assert test.p_value == pytest.approx(expected)
    # agrees with the interval: it excludes 0 exactly when p is below 5%, up to the bootstrap's skew
    assert (test.p_value < 0.05) == test.excludes_zero
    same = {0: as_scores(base)}
    assert paired_bootstrap([(same, same)], resamples=200).p_value == 1.0
    shifted = paired_bootstrap([({0: as_scores(base + 0.1)}, same)], resamples=200)
    assert shifted.p_value == 0.0  # every draw is the same non-zero difference
