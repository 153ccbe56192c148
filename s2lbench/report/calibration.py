"""Simulated boards for measuring the paired test's error rates (tests/test_inference_calibration.py and
benchmarks/inference_calibration.py).

A board is shaped like the committed gym board: per test set a base accuracy and a seed-to-seed standard
deviation of the set's accuracy (both read from a leaderboard CSV), ``items`` examples per set, and two arms
(a selector and random) fine-tuned with ``seeds`` seeds each. Examples differ in difficulty: each has a
propensity drawn from a Beta distribution with the set's mean and concentration ``KAPPA`` (so answers are
consistent across seeds, as on real boards, where the seed spread is below the binomial one), a seed shifts
every propensity of its set by a normal amount whose variance makes the simulated seed spread match the
measured one, and an answer is a Bernoulli draw. ``effect`` adds that many accuracy points to the
selector's propensities on every set that is not at the floor. Everything is vectorised over boards.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from s2lbench.report.stats import combine, seed_paired_components

KAPPA = 1.0  # Beta concentration of the examples' propensities: strong, stable differences in difficulty
AVERAGE_PREFIX = "avg"


@dataclass(frozen=True)
class BoardShape:
    """Per test set: name, base accuracy, seed standard deviation of the set's accuracy, in-domain or not."""

    sets: tuple[str, ...]
    accuracy: tuple[float, ...]
    seed_sd: tuple[float, ...]
    in_domain: tuple[bool, ...]


def board_shape_from_csv(path: str | Path) -> BoardShape:
    """The shape of a committed board: per task column, random's mean accuracy (over its budgets) and the
    median seed standard deviation over every row of that column."""
    means: dict[str, list[float]] = defaultdict(list)
    sds: dict[str, list[float]] = defaultdict(list)
    groups: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            column = row["column"]
            if column.startswith(AVERAGE_PREFIX) or not row["std"]:
                continue
            groups[column] = row["group"]
            sds[column].append(float(row["std"]))
            if row["selector"] == "random":
                means[column].append(float(row["mean"]))
    sets = tuple(sorted(means))
    return BoardShape(sets, tuple(float(np.mean(means[s])) for s in sets),
                      tuple(float(np.median(sds[s])) for s in sets),
                      tuple(groups[s] == "in-domain" for s in sets))


def simulate_differences(shape: BoardShape, *, boards: int, seeds: int, items: int, effect: float = 0.0,
                         rng: np.random.Generator, concentration: float = KAPPA) -> np.ndarray:
    """Per-example differences selector - random, shape (boards, sets, seeds, items); ``concentration`` is the
    Beta concentration of the examples' propensities (small: stable easy and hard examples)."""
    p = np.asarray(shape.accuracy)[None, :, None]
    floor = p <= 0.0
    clipped = np.clip(p, 1e-3, 1 - 1e-3)
    propensity = rng.beta(clipped * concentration, (1 - clipped) * concentration,
                          size=(boards, len(shape.sets), items))
    propensity = np.where(floor, 0.0, propensity)
    extra = _seed_shift_sd(propensity, np.asarray(shape.seed_sd), rng)
    arms = []
    for lift in (effect, 0.0):
        shift = rng.normal(size=(boards, len(shape.sets), seeds, 1)) * extra[None, :, None, None]
        prob = np.clip(propensity[:, :, None, :] + shift + np.where(floor, 0.0, lift)[..., None], 0.0, 1.0)
        arms.append((rng.random(prob.shape, dtype=np.float32) < prob).astype(np.float32))
    return (arms[0] - arms[1]).astype(float)


def _seed_shift_sd(propensity: np.ndarray, target_sd: np.ndarray, rng: np.random.Generator,
                   pilot_boards: int = 64, pilot_seeds: int = 32, rounds: int = 4) -> np.ndarray:
    """Per set, the sd of the seed shift that gives each set's accuracy the target seed sd: first the variance
    beyond the binomial one, then rescaled on a pilot where clipping at 0 and 1 absorbs part of the shift."""
    pilot = propensity[:pilot_boards]
    items = pilot.shape[-1]
    binomial = ((pilot * (1 - pilot)).mean(axis=-1) / items).mean(axis=0)  # (sets,)
    extra = np.sqrt(np.maximum(0.0, target_sd ** 2 - binomial))
    for _ in range(rounds):
        shift = rng.normal(size=(pilot.shape[0], pilot.shape[1], pilot_seeds, 1)) * extra[None, :, None, None]
        prob = np.clip(pilot[:, :, None, :] + shift, 0.0, 1.0)
        realised = np.sqrt(prob.mean(axis=-1).var(axis=-1, ddof=1).mean(axis=0)
                           + ((prob * (1 - prob)).mean(axis=(-1, -2)) / items).mean(axis=0))
        with np.errstate(divide="ignore", invalid="ignore"):
            extra = np.where((realised > 0) & (extra > 0), extra * target_sd / realised, extra)
    return extra


def column_groups(shape: BoardShape) -> dict[str, list[int]]:
    """The board's columns as indices into its sets: each set, the in-domain, out-of-domain and overall average."""
    groups = {name: [i] for i, name in enumerate(shape.sets)}
    groups["avg_id"] = [i for i, d in enumerate(shape.in_domain) if d]
    groups["avg_ood"] = [i for i, d in enumerate(shape.in_domain) if not d]
    groups["avg"] = list(range(len(shape.sets)))
    return {k: v for k, v in groups.items() if v}


def calibrated_p_values(diffs: np.ndarray, shape: BoardShape) -> dict[str, np.ndarray]:
    """The paired test's p-value per column for every simulated board (stats.seed_paired_components)."""
    out = {}
    for column, sets in column_groups(shape).items():
        mean, components = seed_paired_components([diffs[:, i] for i in sets])
        out[column] = combine(mean, components).p_value
    return out


def rejection_rates(p_values: dict[str, np.ndarray], alpha: float = 0.05) -> dict[str, float]:
    """Per column, the share of boards where the test rejects at ``alpha``, plus ``any`` (a board with at least one
    mark)."""
    rates = {column: float(np.mean(p < alpha)) for column, p in p_values.items()}
    rates["any"] = float(np.mean(np.any(np.stack(list(p_values.values())) < alpha, axis=0)))
    return rates


# ------------------------------------------------------------------ the candidates measured against each other
def bootstrap_wald_p_values(diffs: np.ndarray, shape: BoardShape) -> dict[str, np.ndarray]:
    """The board's former test, in closed form: the Wald p-value of the paired bootstrap that resampled seed pairs
    and examples with replacement (the limit of infinitely many resamples; its variance is that of the bootstrap
    distribution, shrunk by (n - 1) / n in the seed term, read against the normal, not Student's t)."""
    from scipy import stats as scipy_stats

    out = {}
    for column, sets in column_groups(shape).items():
        n_tasks = len(sets)
        per_task = [diffs[:, i] for i in sets]  # (boards, seeds, items)
        n = per_task[0].shape[1]
        per_seed = np.mean([d.mean(axis=-1) for d in per_task], axis=0)
        examples = sum(d.mean(axis=1).var(axis=-1) / d.shape[-1] for d in per_task) / n_tasks ** 2
        within = sum((d - d.mean(axis=1, keepdims=True)).var(axis=-1).mean(axis=-1) / d.shape[-1]
                     for d in per_task) / n_tasks ** 2
        var = examples + (per_seed.var(axis=-1) + within) / n
        mean = per_seed.mean(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(var > 0, np.abs(mean) / np.sqrt(np.where(var > 0, var, 1.0)), np.where(mean != 0, np.inf, 0))
        out[column] = np.where(np.abs(mean) < 1e-12, 1.0, 2 * scipy_stats.norm.sf(z))
    return out


def seed_t_p_values(diffs: np.ndarray, shape: BoardShape, *, examples: bool, example_df: bool = False
                    ) -> dict[str, np.ndarray]:
    """The seed-level paired t-test; with ``examples`` the example variance is added (``example_df``: its df
    enter the Welch-Satterthwaite sum too)."""
    out = {}
    for column, sets in column_groups(shape).items():
        mean, components = seed_paired_components([diffs[:, i] for i in sets])
        out[column] = combine(mean, components if examples else components[:1], example_df=example_df).p_value
    return out


def sign_flip_smallest_p(seeds: int) -> float:
    """The smallest two-sided p-value an exact sign-flip permutation over ``seeds`` seed pairs can give."""
    return 2.0 / 2 ** seeds
