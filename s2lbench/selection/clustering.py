"""k-means for selectors: faiss, seeded, with the paper's defaults and the options that fix its weak spots.

The S2L reference code calls ``faiss.Kmeans(d, K, niter=20)``: centroids start at random points and,
when there are more than ``256 * K`` points, faiss trains on a random sample of ``256 * K`` of them. Both
are kept as defaults here. On clusters of very different sizes random starts merge small clusters and
split large ones, so two remedies are options: k-means++ seeding (``init="kmeans++"``) and several
restarts keeping the lowest objective (``n_redo``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from s2lbench.common.blas import single_threaded_blas
from s2lbench.signals.signalset import check_distance_range


@dataclass(frozen=True)
class KMeansResult:
    labels: np.ndarray  # (n,) cluster id per row
    centroids: np.ndarray  # (k, d)
    objective: float  # sum of squared distances (or of similarities, for spherical k-means), last iteration
    k: int


def normalize_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def kmeanspp_init(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each next centre drawn with prob. ~ squared distance."""
    n = x.shape[0]
    centres = np.empty((k, x.shape[1]), dtype=np.float32)
    norms = np.einsum("ij,ij->i", x, x)

    def sq_dist(c: np.ndarray) -> np.ndarray:
        return np.maximum(norms - 2.0 * (x @ c) + float(c @ c), 0.0)

    centres[0] = x[rng.integers(n)]
    closest = sq_dist(centres[0]).astype(np.float64)
    for i in range(1, k):
        cumulative = np.cumsum(closest)
        total = cumulative[-1]
        pick = int(np.searchsorted(cumulative, rng.random() * total, side="right")) if total > 0 else \
            int(rng.integers(n))
        centres[i] = x[min(pick, n - 1)]
        np.minimum(closest, sq_dist(centres[i]), out=closest)
    return centres


def kmeans(x: np.ndarray, k: int, *, n_iter: int = 20, seed: int = 0, init: str = "random", n_redo: int = 1,
           spherical: bool = False, max_points_per_centroid: int = 256, threads: int = 0) -> KMeansResult:
    """Cluster the rows of ``x`` into ``min(k, n)`` clusters with faiss; deterministic for a given seed.

    ``init``: ``"random"`` (faiss's default: random training points) or ``"kmeans++"``.
    ``n_redo``: run this many times with seeds ``seed, seed+1, ...`` and keep the best objective.
    ``spherical``: normalise rows and centroids (cosine k-means).
    ``max_points_per_centroid``: faiss trains on at most this many points per centroid (256 = faiss default;
    0 = train on every point).
    ``threads``: OpenMP threads faiss may use for this call (restored afterwards); 0 = faiss's default.
    """
    import faiss

    with np.errstate(over="ignore"):
        x = np.ascontiguousarray(x, dtype=np.float32)
    # faiss aborts the process (not an exception) on distances that overflow; refuse such features here
    check_distance_range(x, "k-means features", "the features")
    if spherical:
        x = normalize_rows(x)
    n, d = x.shape
    k = int(min(k, n))
    if k <= 1:
        return KMeansResult(np.zeros(n, dtype=np.int64), x.mean(axis=0, keepdims=True), 0.0, 1)
    if init not in ("random", "kmeans++"):
        raise ValueError(f"unknown k-means init {init!r}; use 'random' or 'kmeans++'")
    previous_threads = faiss.omp_get_max_threads()
    if threads > 0:
        faiss.omp_set_num_threads(int(threads))
    try:
        return _best_of_restarts(x, k, n_iter, seed, init, n_redo, spherical, max_points_per_centroid)
    finally:
        faiss.omp_set_num_threads(previous_threads)


def _best_of_restarts(x: np.ndarray, k: int, n_iter: int, seed: int, init: str, n_redo: int, spherical: bool,
                      max_points_per_centroid: int) -> KMeansResult:
    import faiss

    n, d = x.shape
    best: KMeansResult | None = None
    for attempt in range(max(1, n_redo)):
        run_seed = int(seed) + attempt
        km = faiss.Kmeans(d, k, niter=int(n_iter), seed=run_seed, spherical=spherical, verbose=False,
                          max_points_per_centroid=int(max_points_per_centroid) or n,
                          min_points_per_centroid=1)  # only silences faiss's "too few points" warning
        init_centroids = None
        if init == "kmeans++":
            with single_threaded_blas():
                init_centroids = kmeanspp_init(x, k, np.random.default_rng(run_seed))
            if spherical:
                init_centroids = normalize_rows(init_centroids)
        km.train(x, init_centroids=init_centroids)
        _, assigned = km.index.search(x, 1)
        labels = assigned.ravel().astype(np.int64)
        if spherical:
            objective = -float((x * km.centroids[labels]).sum())  # lower is better, like the L2 case
        else:
            objective = float(((x - km.centroids[labels]) ** 2).sum(dtype=np.float64))
        if best is None or objective < best.objective:
            best = KMeansResult(labels, np.array(km.centroids), objective, k)
    assert best is not None
    return best
