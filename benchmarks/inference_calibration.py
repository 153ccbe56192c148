"""False-positive rate and power of the leaderboard's "vs random" test on simulated boards shaped like the
committed gym board (s2lbench/report/calibration.py; the figures are quoted in docs/leaderboards.md).

    .venv/bin/python benchmarks/inference_calibration.py [--boards 4000] [--csv leaderboards/gym/leaderboard.csv]

Null: the selector is random itself (an A/A comparison), so every mark is a false positive. Planted: the selector
adds EFFECT accuracy points on every set above the floor. A mark is p < 0.05 in one cell (before Holm); "any"
is a board where at least one of its cells is marked (what Holm is there for).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from s2lbench.report.calibration import (
    board_shape_from_csv,
    bootstrap_wald_p_values,
    calibrated_p_values,
    column_groups,
    rejection_rates,
    seed_t_p_values,
    sign_flip_smallest_p,
)
from s2lbench.report.stats import holm_adjust

ROOT = Path(__file__).resolve().parents[1]
METHODS = {
    "former: paired bootstrap, Wald p": bootstrap_wald_p_values,
    "seed paired t": lambda d, s: seed_t_p_values(d, s, examples=False),
    "t + example var, Satterthwaite df": lambda d, s: seed_t_p_values(d, s, examples=True, example_df=True),
    "chosen: t + example var, seed df": calibrated_p_values,
}


def summary(rates: dict[str, float], shape) -> str:
    sets = [rates[s] for s in shape.sets if shape.accuracy[shape.sets.index(s)] > 0]
    averages = [rates[c] for c in ("avg_id", "avg_ood", "avg") if c in rates]
    return (f"sets {np.mean(sets):.3f} (max {max(sets):.3f}) | averages {np.mean(averages):.3f} "
            f"(max {max(averages):.3f}) | any cell {rates['any']:.3f}")


def holm_any(p_values: dict[str, np.ndarray]) -> float:
    stacked = np.stack(list(p_values.values()), axis=1)
    return float(np.mean([min(holm_adjust(list(row))) < 0.05 for row in stacked]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", type=int, default=4000)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--csv", default=str(ROOT / "leaderboards/gym/leaderboard.csv"))
    args = parser.parse_args()
    shape = board_shape_from_csv(args.csv)
    mc = np.sqrt(0.05 * 0.95 / args.boards)
    print(f"board shape from {args.csv}: {len(shape.sets)} sets, {args.items} items each, seed sd "
          + ", ".join(f"{s.split('-')[-1]} {sd * 100:.1f}" for s, sd in zip(shape.sets, shape.seed_sd, strict=True))
          + f" points; {args.boards} boards per row; Monte Carlo SE at 5%: {mc:.4f}")
    print(f"{len(column_groups(shape))} columns per board: each set, in-domain, out-of-domain and overall averages")
    print("\nFalse-positive rate of a mark at 5% (A/A):")
    for seeds in (2, 3, 5, 10):
        started = time.perf_counter()
        diffs = None
        for name, method in METHODS.items():
            diffs = diffs if diffs is not None else simulate(shape, args, seeds, 0.0)
            p = method(diffs, shape)
            holm = f" | any after Holm {holm_any(p):.3f}" if name.startswith("chosen") else ""
            print(f"  {seeds:2d} seeds  {name:36s} {summary(rejection_rates(p), shape)}{holm}")
        print(f"  {seeds:2d} seeds  exact sign-flip permutation: smallest p {sign_flip_smallest_p(seeds):.4f}"
              f"  ({time.perf_counter() - started:.1f} s)")
    print("\nPower of the chosen test (share of boards marking the planted difference at 5%):")
    for effect in (0.03, 0.05, 0.10):
        for seeds in (3, 5, 10):
            rates = rejection_rates(calibrated_p_values(simulate(shape, args, seeds, effect), shape))
            print(f"  +{effect * 100:.0f} points, {seeds:2d} seeds: {summary(rates, shape)}")


def simulate(shape, args, seeds: int, effect: float) -> np.ndarray:
    from s2lbench.report.calibration import simulate_differences

    return simulate_differences(shape, boards=args.boards, seeds=seeds, items=args.items, effect=effect,
                                rng=np.random.default_rng(seeds * 1000 + int(effect * 1000)))


if __name__ == "__main__":
    main()
