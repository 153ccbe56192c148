"""Time S2L selection at MathInstruct scale; optionally measure cluster balancing on planted clusters.

    python benchmarks/bench_select.py                 # last line: s2l_seconds <X>
    python benchmarks/bench_select.py --planted       # also print the planted-cluster table first

The timed matrix is synthetic: 262,144 examples x 12 checkpoints (MathInstruct's size), 14 sources with
skewed sizes, each example a noisy decaying loss curve drawn around one of 40 prototype curves. The time
covers ``run_selector`` end to end (option parsing, NaN cleaning, source balancing, faiss k-means per
source, sampling, contract checks); building the in-memory pool is not selection and is excluded.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

N_EXAMPLES = 262_144
N_CHECKPOINTS = 12
N_SOURCES = 14


def synthetic_trajectories(n: int, t: int, rng: np.random.Generator, prototypes: int = 40) -> np.ndarray:
    steps = np.linspace(0, 1, t)
    start = rng.uniform(0.5, 3.0, prototypes)
    rate = rng.uniform(0.5, 6.0, prototypes)
    floor = rng.uniform(0.0, 0.8, prototypes)
    curves = floor[:, None] + (start - floor)[:, None] * np.exp(-rate[:, None] * steps[None, :])
    which = rng.integers(prototypes, size=n)
    return (curves[which] + rng.normal(0, 0.08, (n, t))).astype(np.float32)


def skewed_sources(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    weights = rng.pareto(1.2, k) + 0.05
    sizes = np.floor(weights / weights.sum() * n).astype(int)
    sizes[np.argmax(sizes)] += n - sizes.sum()
    labels = np.repeat([f"source_{i:02d}" for i in range(k)], sizes)
    return rng.permutation(labels)


def make_pool(sources: np.ndarray):
    from s2lbench.pool.records import Pool, SFTExample

    return Pool([SFTExample(id=str(i), instruction="", output="", source=str(s)) for i, s in enumerate(sources)])


def planted_source(rng: np.random.Generator, sizes=(30, 60, 120, 250, 500, 1000, 1500, 2000), t: int = 12):
    """One source with 8 planted trajectory clusters of very different sizes; returns matrix and truth."""
    centres = rng.normal(0, 1.0, (len(sizes), t))
    truth = np.repeat(np.arange(len(sizes)), sizes)
    x = centres[truth] + rng.normal(0, 0.15, (truth.size, t))
    return x.astype(np.float32), truth


def planted_table(seeds: int = 3, sources: int = 3, fraction: float = 0.1) -> list[tuple[str, float]]:
    """Share of picks in the 3 smallest planted clusters, divided by their share under random sampling."""
    from s2lbench.selection.helpers import ClusteringChoice, clustered_selection

    choices = {
        "paper (random init, K=8)": ClusteringChoice(n_clusters=8),
        "paper (random init, K=100)": ClusteringChoice(n_clusters=100),
        "kmeans++ (K=8)": ClusteringChoice(n_clusters=8, init="kmeans++"),
        "kmeans++ n_redo=3 (K=8)": ClusteringChoice(n_clusters=8, init="kmeans++", n_redo=3),
        "kmeans++ n_redo=10 (K=8)  [s2l-kmeanspp]": ClusteringChoice(n_clusters=8, init="kmeans++", n_redo=10),
        "kmeans++ n_redo=10 (K=100)": ClusteringChoice(n_clusters=100, init="kmeans++", n_redo=10),
        "kmeans++ n_redo=10, all points (K=8)": ClusteringChoice(n_clusters=8, init="kmeans++", n_redo=10,
                                                                 max_points_per_centroid=0),
        "random init n_redo=10 (K=8)": ClusteringChoice(n_clusters=8, n_redo=10),
    }
    rows = []
    for label, choice in {"random sampling": None, **choices}.items():
        uplifts = []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            parts = [planted_source(rng) for _ in range(sources)]
            x = np.concatenate([p[0] for p in parts])
            truth = np.concatenate([p[1] for p in parts])
            src = np.repeat(np.arange(sources), [p[0].shape[0] for p in parts]).astype(str)
            budget = int(fraction * x.shape[0])
            if choice is None:
                positions = np.random.default_rng(seed).choice(x.shape[0], size=budget, replace=False)
            else:
                positions, _ = clustered_selection(x, src, budget, seed, choice)
            small = truth < 3
            uplifts.append(small[positions].mean() / small.mean())
        rows.append((label, float(np.mean(uplifts))))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=30_000, help="examples to select (paper: 30K for MathInstruct)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="selector option, e.g. threads=0 (faiss's default thread count) or n_redo=3")
    parser.add_argument("--selector", default="s2l", help="s2l or s2l-kmeanspp (or any selector reading 'loss')")
    parser.add_argument("--planted", action="store_true", help="also print the planted-cluster balance table")
    args = parser.parse_args()

    if args.planted:
        print("planted clusters (8 per source, sizes 30..2000, 3 sources, 10% budget, 3 seeds):")
        print("share of picks in the 3 smallest clusters / their share under random sampling")
        for label, uplift in planted_table():
            print(f"  {label:<40} {uplift:5.2f}x")

    from s2lbench.plugin_manager import get_hooks
    from s2lbench.selection import run_selector
    from s2lbench.signals.signalset import SignalSet

    rng = np.random.default_rng(0)
    trajectories = synthetic_trajectories(N_EXAMPLES, N_CHECKPOINTS, rng)
    sources = skewed_sources(N_EXAMPLES, N_SOURCES, rng)
    pool = make_pool(sources)
    signals = SignalSet({"loss": trajectories}, steps=list(range(N_CHECKPOINTS)))
    selector = get_hooks().selector(args.selector)
    import faiss  # noqa: F401  -- import cost is not selection cost

    start = time.perf_counter()
    options = dict(item.split("=", 1) for item in args.option)
    result = run_selector(selector, pool, args.budget, seed=0, signals=signals, options=options)
    seconds = time.perf_counter() - start
    balance = result.diagnostics.get("balance", {})
    print(f"{args.selector}: {N_EXAMPLES} x {N_CHECKPOINTS}, {N_SOURCES} sources "
          f"(sizes {min(pool.source_counts().values())}..{max(pool.source_counts().values())}), "
          f"budget {args.budget}, options {options or 'default'}; cluster balance {balance}")
    print(f"s2l_seconds {seconds:.3f}")


if __name__ == "__main__":
    main()
