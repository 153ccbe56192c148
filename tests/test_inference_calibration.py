"""The leaderboard's paired test holds its error rate on simulated boards shaped like the committed gym board
(3 and 5 seeds, 200 examples per set, its 7 sets, their seed spread): an A/A comparison is marked in at most 5%
of boards per cell (within Monte Carlo error), and the same check catches the former bootstrap. The figures,
with power, come from benchmarks/inference_calibration.py (docs/leaderboards.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2lbench.report.calibration import (
    board_shape_from_csv,
    bootstrap_wald_p_values,
    calibrated_p_values,
    column_groups,
    rejection_rates,
    sign_flip_smallest_p,
    simulate_differences,
)
from s2lbench.report.stats import paired_test

GYM_CSV = Path(__file__).resolve().parents[1] / "leaderboards" / "gym" / "leaderboard.csv"
BOARDS = 2000
ALPHA = 0.05
# a rate is "at most 5% within Monte Carlo error" when it is below 5% plus two standard errors of a 5% rate
BOUND = ALPHA + 2 * np.sqrt(ALPHA * (1 - ALPHA) / BOARDS)


@pytest.fixture(scope="module")
def shape():
    return board_shape_from_csv(GYM_CSV)


@pytest.fixture(scope="module")
def null_boards(shape):
    return {seeds: simulate_differences(shape, boards=BOARDS, seeds=seeds, items=200,
                                        rng=np.random.default_rng(seeds)) for seeds in (3, 5)}


def test_the_board_shape_is_the_committed_gym_board(shape):
    assert len(shape.sets) == 7 and sum(shape.in_domain) == 2
    assert all(0.0 <= a <= 1.0 for a in shape.accuracy) and max(shape.seed_sd) > 0.03
    assert set(column_groups(shape)) == set(shape.sets) | {"avg_id", "avg_ood", "avg"}


def test_the_simulation_reproduces_the_measured_seed_spread(shape):
    # one arm's seed-to-seed std of each set's accuracy, read through the A/A difference (two arms: sqrt 2)
    diffs = simulate_differences(shape, boards=400, seeds=5, items=200, rng=np.random.default_rng(9))
    simulated = diffs.mean(axis=-1).std(axis=-1, ddof=1).mean(axis=0) / np.sqrt(2)
    for name, want, got in zip(shape.sets, shape.seed_sd, simulated, strict=True):
        assert got == pytest.approx(want, rel=0.2, abs=0.003), name


@pytest.mark.parametrize("seeds", [3, 5])
def test_a_mark_between_identical_selectors_is_at_most_5_percent(shape, null_boards, seeds):
    rates = rejection_rates(calibrated_p_values(null_boards[seeds], shape), ALPHA)
    per_cell = {k: v for k, v in rates.items() if k != "any"}
    assert all(rate <= BOUND for rate in per_cell.values()), per_cell


@pytest.mark.parametrize("seeds", [3, 5])
def test_the_former_bootstrap_fails_the_same_check(shape, null_boards, seeds):
    rates = rejection_rates(bootstrap_wald_p_values(null_boards[seeds], shape), ALPHA)
    assert max(v for k, v in rates.items() if k != "any") > BOUND + 0.02, rates


def test_a_planted_difference_is_found(shape):
    # +10 points on every set, 5 seeds: the average is marked on nearly every board (the benchmark prints more)
    diffs = simulate_differences(shape, boards=300, seeds=5, items=200, effect=0.10, rng=np.random.default_rng(3))
    rates = rejection_rates(calibrated_p_values(diffs, shape), ALPHA)
    assert rates["avg"] > 0.9 and rates["gym-ood_bignum"] == 0.0  # a set at the floor cannot move


def test_the_vectorised_simulation_computes_the_leaderboards_test(shape, null_boards):
    diffs = null_boards[3][:5]
    vectorised = calibrated_p_values(diffs, shape)
    for board in range(5):
        for column, sets in column_groups(shape).items():
            tasks = [({s: dict(enumerate(diffs[board, i, s])) for s in range(3)},
                      {s: dict.fromkeys(range(200), 0.0) for s in range(3)}) for i in sets]
            assert paired_test(tasks).p_value == pytest.approx(vectorised[column][board], rel=1e-9), column


def test_an_exact_sign_flip_test_could_never_mark_at_three_seeds():
    assert sign_flip_smallest_p(3) == 0.25 and sign_flip_smallest_p(5) == pytest.approx(0.0625)
    assert sign_flip_smallest_p(6) < ALPHA
