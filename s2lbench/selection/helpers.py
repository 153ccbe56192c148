"""Pure selection arithmetic shared by the selectors: signals and labels in, positions out.

Nothing here reads files or models. Every function that draws at random takes a ``numpy`` Generator, so
a selector is deterministic for a given seed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from s2lbench.common import console
from s2lbench.common.blas import single_threaded_blas
from s2lbench.errors import BudgetError, ConfigError, DataError
from s2lbench.selection.clustering import kmeans
from s2lbench.selection.regime import thin_quota_warning

log = logging.getLogger(__name__)


def balanced_quotas(sizes: Sequence[int], budget: int) -> np.ndarray:
    """How many to take from each group under the S2L rule (its source and cluster balancing alike).

    Groups are visited from smallest to largest (ties: lower index first); each takes
    ``floor(remaining / groups_left)``, or the whole group when it is smaller, and what it leaves moves on
    to the larger groups. Returns the quota per group, in the input order. Because the visit is ascending,
    the quotas always add up to ``min(budget, sum(sizes))``.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if budget < 0:
        raise BudgetError(f"budget {budget} must not be negative")
    if budget > int(sizes.sum()):
        raise BudgetError(f"budget {budget} is larger than the {int(sizes.sum())} examples available")
    quotas = np.zeros(len(sizes), dtype=np.int64)
    remaining = int(budget)
    order = np.argsort(sizes, kind="stable")
    for visited, group in enumerate(order):
        left = len(order) - visited
        quotas[group] = min(int(sizes[group]), remaining // left)
        remaining -= int(quotas[group])
    if remaining:  # cannot happen with an ascending visit; kept as a guard on the arithmetic above
        raise AssertionError(f"balanced_quotas left {remaining} of {budget} unassigned for sizes {sizes.tolist()}")
    return quotas


@dataclass
class ClusterPicks:
    """What cluster-balanced sampling took: positions, and per cluster its size and how many it gave."""

    positions: np.ndarray
    sizes: np.ndarray
    picks: np.ndarray


def cluster_balanced_sample(labels: np.ndarray, budget: int, rng: np.random.Generator,
                            n_clusters: int | None = None, tiny: int = 2) -> ClusterPicks:
    """S2L's per-source rule: sample ``budget`` positions of ``labels`` evenly across clusters.

    Clusters with more than ``tiny`` members are visited from smallest to largest; each takes
    ``floor(remaining / clusters_left)`` members at random, or all of it when smaller. Whatever budget is
    left is then drawn at random from the union of the tiny clusters (sizes ``1..tiny``). Returned
    positions index into ``labels``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if budget > labels.size:
        raise BudgetError(f"budget {budget} is larger than the {labels.size} examples being clustered")
    k = int(n_clusters if n_clusters is not None else (labels.max() + 1 if labels.size else 0))
    sizes = np.bincount(labels, minlength=k).astype(np.int64)
    members = np.split(np.argsort(labels, kind="stable"), np.cumsum(sizes)[:-1]) if k else []
    picks = np.zeros(k, dtype=np.int64)
    chosen: list[np.ndarray] = []
    regular = [c for c in np.argsort(sizes, kind="stable") if sizes[c] > tiny]
    remaining = int(budget)
    for visited, c in enumerate(regular):
        take = min(int(sizes[c]), remaining // (len(regular) - visited))
        if take:
            chosen.append(rng.choice(members[c], size=take, replace=False))
        picks[c] = take
        remaining -= take
    if remaining:
        tiny_clusters = [c for c in range(k) if 0 < sizes[c] <= tiny]
        pool = np.concatenate([members[c] for c in tiny_clusters]) if tiny_clusters else np.empty(0, np.int64)
        if remaining > pool.size:  # cannot happen: regular clusters were taken whole before we got here
            raise AssertionError("cluster_balanced_sample ran out of examples")
        extra = rng.choice(pool, size=remaining, replace=False)
        chosen.append(extra)
        picks += np.bincount(labels[extra], minlength=k)
    positions = np.concatenate(chosen) if chosen else np.empty(0, dtype=np.int64)
    return ClusterPicks(positions=positions.astype(np.int64), sizes=sizes, picks=picks)


def subsample_checkpoints(matrix: np.ndarray, checkpoints: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep every ``floor(T / checkpoints)``-th column starting at the first (0 or T keeps all; more than T
    is a ConfigError: the option asks for checkpoints the data does not have).

    Returns the reduced matrix and the kept column indices. When ``checkpoints`` does not divide ``T`` this
    keeps slightly more than ``checkpoints`` columns (``T=10, checkpoints=4`` keeps 0, 2, 4, 6, 8), which is
    what slicing with a stride does in the reference code.
    """
    t = matrix.shape[1]
    if checkpoints > t:
        raise ConfigError(f"option checkpoints={checkpoints}, but the loss trajectories have only {t} "
                          f"checkpoint columns (use 1..{t}, or 0 for all)")
    if checkpoints <= 0 or checkpoints >= t:
        return matrix, np.arange(t)
    kept = np.arange(0, t, t // checkpoints)
    return matrix[:, kept], kept


def clean_matrix(matrix: np.ndarray) -> np.ndarray:
    """float32, C-contiguous, NaN/inf -> 0 (as S2L does with missing losses)."""
    return np.ascontiguousarray(np.nan_to_num(np.asarray(matrix, dtype=np.float32), nan=0.0, posinf=0.0,
                                              neginf=0.0))


def column(matrix: np.ndarray, index: int, signal: str) -> np.ndarray:
    """One checkpoint's column of an ``n x T`` signal; negative indices count from the last checkpoint."""
    matrix = np.asarray(matrix)
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    t = matrix.shape[1]
    if not -t <= index < t:
        raise DataError(f"signal {signal!r} has {t} checkpoint(s); checkpoint index {index} is out of range "
                        f"(use 0..{t - 1}, or -1 for the last)")
    return np.asarray(matrix[:, index], dtype=np.float64)


def rank_select(scores: np.ndarray, budget: int, mode: str) -> np.ndarray:
    """Positions of the ``budget`` lowest / highest / middle scores. NaN scores are taken only when needed.

    Ties break by position (stable sort), so the result is deterministic. ``middle`` takes the window of
    ``budget`` consecutive ranks centred on the median of the finite scores.
    """
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(scores))
    missing = np.flatnonzero(~np.isfinite(scores))
    ascending = finite[np.argsort(scores[finite], kind="stable")]
    if mode == "lowest":
        ranked = ascending
    elif mode == "highest":
        ranked = finite[np.argsort(-scores[finite], kind="stable")]
    elif mode == "middle":
        start = max(0, (ascending.size - budget) // 2)
        ranked = np.concatenate([ascending[start:], ascending[:start][::-1]])
    else:
        raise ValueError(f"unknown ranking mode {mode!r}")
    return np.concatenate([ranked, missing])[:budget].astype(np.int64)


def balance_report(sizes: np.ndarray, picks: np.ndarray) -> dict[str, float]:
    """How evenly the budget spread across clusters, next to what uniform random sampling would give.

    - ``picks_entropy_ratio``: entropy of the picks over non-empty clusters / log(#clusters); 1 = perfectly
      even, random sampling gives the (lower) ``random_entropy_ratio`` of the cluster sizes themselves.
    - ``small_cluster_uplift``: share of picks landing in the clusters that together hold the smallest
      10% of the examples, divided by that 10%-ish share of the pool; random sampling gives 1.0.
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    picks = np.asarray(picks, dtype=np.float64)
    keep = sizes > 0
    sizes, picks = sizes[keep], picks[keep]
    k = sizes.size
    if k == 0 or picks.sum() == 0:
        return {"clusters": int(k)}

    def entropy_ratio(counts: np.ndarray) -> float:
        if k < 2:
            return 1.0
        p = counts[counts > 0] / counts.sum()
        return float(-(p * np.log(p)).sum() / np.log(k))

    order = np.argsort(sizes, kind="stable")
    cumulative = np.cumsum(sizes[order]) / sizes.sum()
    small = order[: max(1, int(np.searchsorted(cumulative, 0.10, side="right")))]
    pool_share = sizes[small].sum() / sizes.sum()
    pick_share = picks[small].sum() / picks.sum()
    return {"clusters": int(k), "picks_entropy_ratio": round(entropy_ratio(picks), 4),
            "random_entropy_ratio": round(entropy_ratio(sizes), 4),
            "small_clusters": int(small.size), "small_clusters_pool_share": round(float(pool_share), 4),
            "small_cluster_uplift": round(float(pick_share / pool_share), 3),
            "max_over_min_nonzero_picks": round(float(picks[picks > 0].max() / picks[picks > 0].min()), 3)}


def source_groups(sources: Sequence[str] | np.ndarray) -> tuple[list[str], list[np.ndarray]]:
    """Distinct source labels (sorted) and the positions of each."""
    sources = np.asarray(sources)
    names, inverse = np.unique(sources, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    groups = np.split(order, np.cumsum(np.bincount(inverse, minlength=len(names)))[:-1])
    return [str(n) for n in names], groups


@dataclass(frozen=True)
class ClusteringChoice:
    """How to cluster inside each source (see ``s2lbench.selection.clustering.kmeans``)."""

    n_clusters: int = 100
    n_iter: int = 20
    distance: str = "euclidean"  # or "cosine"
    init: str = "random"  # or "kmeans++"
    n_redo: int = 1
    max_points_per_centroid: int = 256
    tiny_cluster: int = 2
    threads: int = 1  # faiss OpenMP threads; 0 = faiss's default
    #: 0: every group gets ``n_clusters``; N > 0: a group of n rows gets max(2, round(n / N)) clusters, so the
    #: rows per cluster stay near N whatever the pool's size (the paper's MathInstruct regime has ~187)
    rows_per_cluster: int = 0

    def clusters_for(self, group_size: int) -> int:
        """The k-means K for a group of ``group_size`` rows (before ``kmeans`` caps it at the group's size)."""
        if self.rows_per_cluster > 0:
            return max(2, round(group_size / self.rows_per_cluster))
        return self.n_clusters


def clustered_selection(features: np.ndarray, sources: Sequence[str] | np.ndarray | None, budget: int, seed: int,
                        clustering: ClusteringChoice, balance_sources: bool = True) -> tuple[np.ndarray, dict]:
    """S2L's selection: split the budget across sources, k-means each source, sample evenly across clusters.

    ``features`` (n x d) are already cleaned (e.g. trajectories with NaN -> 0). With ``balance_sources``
    the budget goes to sources by ``balanced_quotas`` (smallest source first); without it the pool is one
    group. Inside a group: ``kmeans`` with ``seed``, then ``cluster_balanced_sample`` with a Generator seeded
    by ``seed``. Returns positions into ``features`` and diagnostics (per-source quotas, cluster sizes and
    picks, and ``balance_report`` over all clusters).
    """
    n = features.shape[0]
    if budget > n:
        raise BudgetError(f"budget {budget} is larger than the pool ({n} examples)")
    if balance_sources and sources is not None:
        names, groups = source_groups(sources)
    else:
        names, groups = ["(all)"], [np.arange(n)]
    quotas = balanced_quotas([g.size for g in groups], budget)
    log.info("clustered selection: %d of %d rows over %d group(s), K=%s, init=%s, n_redo=%d", budget, n,
             len(groups), f"n/{clustering.rows_per_cluster}" if clustering.rows_per_cluster else clustering.n_clusters,
             clustering.init, clustering.n_redo)
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    all_sizes: list[np.ndarray] = []
    all_picks: list[np.ndarray] = []
    per_source: dict[str, dict] = {}
    thin_sources: list[str] = []
    labels = np.full(n, -1, dtype=np.int64)  # global cluster id per example; -1: its source was not clustered
    next_label = 0
    for name, group, quota in zip(names, groups, quotas, strict=True):
        info: dict = {"pool": int(group.size), "budget": int(quota)}
        per_source[name] = info
        if quota == 0:
            continue
        if quota == group.size:
            chosen.append(group)
            info["taken_whole"] = True
            continue
        log.debug("source %s: k-means on %d rows, taking %d", name, group.size, quota)
        result = kmeans(features[group], clustering.clusters_for(int(group.size)), n_iter=clustering.n_iter, seed=seed,
                        init=clustering.init, n_redo=clustering.n_redo,
                        spherical=clustering.distance == "cosine",
                        max_points_per_centroid=clustering.max_points_per_centroid, threads=clustering.threads)
        labels[group] = np.asarray(result.labels, dtype=np.int64) + next_label
        next_label += int(result.k)
        picks = cluster_balanced_sample(result.labels, int(quota), rng, n_clusters=result.k,
                                        tiny=clustering.tiny_cluster)
        chosen.append(group[picks.positions])
        all_sizes.append(picks.sizes)
        all_picks.append(picks.picks)
        if quota < result.k:
            thin_sources.append(name)
        info.update({"clusters": int(result.k), "pool_rows_per_cluster": round(int(group.size) / int(result.k), 3),
                     "picks_per_cluster": round(int(quota) / int(result.k), 3),
                     "clusters_picked": int(np.count_nonzero(picks.picks)),
                     "cluster_sizes": picks.sizes.tolist(),
                     "cluster_picks": picks.picks.tolist(), "balance": balance_report(picks.sizes, picks.picks)})
    if thin_sources:
        # the paper's MathInstruct setting draws about 21 rows per cluster; below one, "evenly across
        # clusters" degenerates into one row from some clusters and none from the smallest. The selection's
        # regime (s2lbench.selection.regime) carries this to the run's summary and the board.
        low = min(per_source[name]["picks_per_cluster"] for name in thin_sources)
        k = per_source[thin_sources[0]]["clusters"]
        log.warning("clustered selection: %d of %d group(s) get fewer rows than clusters (K=%d; e.g. %s): %s",
                    len(thin_sources), len(groups), k, thin_sources[0],
                    thin_quota_warning(len(thin_sources), len(groups), k, low))
    positions = np.concatenate(chosen) if chosen else np.empty(0, dtype=np.int64)
    # "labels" is an array, not JSON: the runner and `s2lbench select` save it as cluster_labels.npy
    diagnostics = {"sources": per_source, "balance_sources": bool(balance_sources and sources is not None),
                   "labels": labels}
    if all_sizes:
        diagnostics["balance"] = balance_report(np.concatenate(all_sizes), np.concatenate(all_picks))
    return positions.astype(np.int64), diagnostics


def facility_location_greedy(embeddings: np.ndarray, budget: int, rng: np.random.Generator, *,
                             algorithm: str = "lazy", n_represent: int = 10000, epsilon: float = 0.01,
                             batch: int = 32) -> tuple[np.ndarray, dict]:
    """Greedy maximisation of the facility-location function over embedding similarities.

    F(S) = sum over represented examples r of max_{j in S} sim(r, j), with sim = (1 + cos) / 2 in [0, 1]
    (non-negative, so F is monotone submodular and greedy is a (1 - 1/e) approximation). The represented
    set is the whole pool when it has at most ``n_represent`` examples, else a seeded random sample of that
    size (an unbiased estimate of F scaled down), so memory and time stay linear in the pool.

    ``algorithm="lazy"``: lazy greedy (Minoux 1978) with a max-heap of stale upper bounds; stale candidates
    are re-scored 1, 2, 4, ... up to ``batch`` at a time per matrix product until the best is confirmed. Returns exactly
    the greedy order of plain greedy, equal gains going to the lowest position (gains in float64, rounded to
    ``GAIN_DECIMALS``: the same subset on every CPU, see there).
    ``algorithm="stochastic"``: stochastic greedy (Mirzasoleiman et al. 2015), each step scoring a random
    ``ceil(n / budget * ln(1 / epsilon))`` unselected candidates; (1 - 1/e - epsilon) in expectation.
    """
    x = np.array(embeddings, dtype=np.float64, order="C")  # a float64 copy (see GAIN_DECIMALS), scaled in place
    np.nan_to_num(x, copy=False)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    n = x.shape[0]
    if budget > n:
        raise BudgetError(f"budget {budget} is larger than the pool ({n} examples)")
    represented = np.arange(n) if n_represent <= 0 or n <= n_represent else \
        np.sort(rng.choice(n, size=n_represent, replace=False))
    reps = np.ascontiguousarray(x[represented])
    if algorithm not in ("lazy", "stochastic"):
        raise ValueError(f"unknown facility-location algorithm {algorithm!r}; use 'lazy' or 'stochastic'")
    with single_threaded_blas():
        return _greedy_loop(x, reps, budget, rng, algorithm, epsilon, batch)


#: greedy gains are compared after rounding to this many decimals (they lie in [0, represented examples]).
#: Float32 products round differently under each CPU's BLAS kernels (OpenBLAS picks Haswell, SkylakeX, Zen...
#: code paths), and one flipped near-tie early in the greedy order changes a tenth of a 400-row subset; in
#: float64 those differences are ~1e-12, far below this grid, so the same embeddings give the same subset on
#: every machine, and equal gains go to the lowest position.
GAIN_DECIMALS = 9


def _greedy_loop(x: np.ndarray, reps: np.ndarray, budget: int, rng: np.random.Generator, algorithm: str,
                 epsilon: float, batch: int) -> tuple[np.ndarray, dict]:
    import heapq


    n = x.shape[0]
    coverage = np.zeros(reps.shape[0], dtype=np.float64)
    selected = np.zeros(n, dtype=bool)
    order: list[int] = []

    def gains(candidates: np.ndarray) -> np.ndarray:
        sims = (1.0 + x[candidates] @ reps.T) * 0.5
        return np.round(np.maximum(sims - coverage, 0.0).sum(axis=1), GAIN_DECIMALS)

    progress = console.Bar(total=budget, desc=f"facility location ({algorithm} greedy)", unit="picks")

    def take(j: int) -> None:
        selected[j] = True
        order.append(j)
        np.maximum(coverage, (1.0 + reps @ x[j]) * 0.5, out=coverage)
        progress.update(1)

    evaluations = 0
    if algorithm == "lazy":
        # the first gain of j is sum over reps of (1 + x_j . r) / 2; summed in another order than gains() does,
        # so a margin far above float64's error keeps every bound an upper bound (loose bounds stay exact)
        first = (reps.shape[0] + x @ reps.sum(axis=0)) * 0.5 + 1e-6
        heap = [(-float(g), int(j)) for j, g in enumerate(np.round(first, GAIN_DECIMALS))]
        heapq.heapify(heap)
        width = 1
        while len(order) < budget:
            popped = [heapq.heappop(heap) for _ in range(min(width, len(heap)))]
            ids = np.array([j for _, j in popped], dtype=np.int64)
            fresh = gains(ids)
            evaluations += ids.size
            best = int(np.lexsort((ids, -fresh))[0])  # the largest gain; on ties, the lowest position
            if not heap or (-fresh[best], ids[best]) <= heap[0]:
                take(int(ids[best]))
                rest = [(-float(g), int(j)) for k, (g, j) in enumerate(zip(fresh, ids, strict=True)) if k != best]
                width = 1
            else:  # the bounds were stale: re-score more of them at once next time
                rest = [(-float(g), int(j)) for g, j in zip(fresh, ids, strict=True)]
                width = min(2 * width, batch)
            for item in rest:
                heapq.heappush(heap, item)
    elif algorithm == "stochastic":
        sample = int(np.ceil(n / max(budget, 1) * np.log(1.0 / epsilon)))
        while len(order) < budget:
            free = np.flatnonzero(~selected)
            candidates = free if free.size <= sample else rng.choice(free, size=sample, replace=False)
            fresh = gains(candidates)
            evaluations += candidates.size
            take(int(candidates[np.lexsort((candidates, -fresh))[0]]))
    else:
        raise ValueError(f"unknown facility-location algorithm {algorithm!r}; use 'lazy' or 'stochastic'")
    progress.close()
    objective = float(coverage.sum(dtype=np.float64))
    return np.asarray(order, dtype=np.int64), {"represented": int(reps.shape[0]), "objective": objective,
                                               "objective_per_represented": objective / max(1, reps.shape[0]),
                                               "gain_evaluations": int(evaluations)}
