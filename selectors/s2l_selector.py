"""SmallToLarge (S2L; Yang et al., NeurIPS 2024): cluster loss trajectories, sample evenly across clusters.

Registered twice: ``s2l`` is the paper's algorithm with the paper's defaults; ``s2l-kmeanspp`` is the same
rule with a clustering that keeps small trajectory clusters apart (k-means++ seeding, 10 restarts), so a grid can compare "S2L (paper)" with the improved variant honestly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from s2lbench import hookimpl
from s2lbench.selection import Selection, SelectionContext, Selector
from s2lbench.selection.helpers import (
    ClusteringChoice,
    clean_matrix,
    clustered_selection,
    subsample_checkpoints,
)
from s2lbench.selection.regime import clustered_regime
from s2lbench.signals.signalset import LOSS


class S2LSelector(Selector):
    """S2L as in the reference code (BigML-CS-UCLA/S2L, ``schedules/s2l.py``).

    Reads the ``loss`` signal (n x T loss trajectories, checkpoints in training order; NaN -> 0), keeping every
    ``floor(T / checkpoints)``-th checkpoint when ``checkpoints`` is set (0 = all).

    1. Source balancing (``balance_sources``, default on as for MathInstruct): sources are visited from
       smallest to largest; each takes ``floor(remaining budget / sources left)``, or all of itself when
       smaller, and the rest of the budget moves on.
    2. Inside a source: faiss k-means on the trajectories (``n_clusters`` = 100, ``n_iter`` = 20, seeded;
       ``min(n_clusters, source size)`` clusters for small sources; ``rows_per_cluster=N`` instead gives each
       source max(2, round(its rows / N)) clusters, the paper's regime at any pool size). Clusters are visited
       from smallest to largest, skipping clusters of <= 2 examples; each takes ``floor(remaining / clusters left)`` at
       random (seeded), or all of it when smaller; what remains is drawn at random from the tiny clusters.

    Choices where the paper is silent, each an option: faiss trains on at most 256 points per centroid
    (faiss's default, which the reference code inherits; ``max_points_per_centroid=0`` trains on all);
    ``distance=cosine`` runs spherical k-means on L2-normalised trajectories; the k-means seed is the
    selection seed. A source whose budget equals its size is taken whole without clustering.

    Reports its regime (``s2lbench.selection.regime.clustered_regime``): K, pool rows and picks per cluster
    per source, the share of clusters that got a pick, and a warning when a source's quota is below K (cluster
    balancing is then inactive). Diagnostics only: the picks are the reference code's.
    """

    name = "s2l"
    description = "SmallToLarge: k-means on loss trajectories, budget spread evenly over clusters and sources"
    requires = (LOSS,)

    @dataclass(frozen=True)
    class Options:
        n_clusters: int = field(default=100, metadata={"help": "k-means clusters per source (paper: 100)"})
        rows_per_cluster: int = field(default=0, metadata={
            "help": "0: n_clusters per source; N: K = max(2, round(source rows / N)) per source, keeping ~N rows "
                    "per cluster at any pool size (the paper's MathInstruct regime: ~187)"})
        n_iter: int = field(default=20, metadata={"help": "k-means iterations (paper: 20)"})
        balance_sources: bool = field(default=True, metadata={
            "help": "split the budget evenly across the pool's sources, smallest first (paper: on)"})
        checkpoints: int = field(default=0, metadata={
            "help": "use every floor(T/checkpoints)-th checkpoint of the trajectory; 0 = all"})
        distance: Literal["euclidean", "cosine"] = field(default="euclidean", metadata={
            "help": "k-means distance: euclidean (paper) or cosine (spherical k-means on normalised rows)"})
        init: Literal["random", "kmeans++"] = field(default="random", metadata={
            "help": "k-means initialisation: random points (faiss/paper) or k-means++"})
        n_redo: int = field(default=1, metadata={"help": "k-means restarts; the lowest objective wins"})
        max_points_per_centroid: int = field(default=256, metadata={
            "help": "faiss trains on at most this many points per centroid (256 = faiss default); 0 = all"})
        threads: int = field(default=1, metadata={
            "help": "faiss k-means threads (1: fastest on a busy 2-core machine, see docs); 0 = faiss default"})
        seed: int | None = field(default=None, metadata={
            "help": "seed for k-means and sampling; default: the run's --seed"})

        def __post_init__(self):
            if self.n_clusters < 1 or self.n_iter < 1 or self.n_redo < 1:
                raise ValueError("n_clusters, n_iter and n_redo must be >= 1")
            if self.checkpoints < 0 or self.max_points_per_centroid < 0 or self.threads < 0 \
                    or self.rows_per_cluster < 0:
                raise ValueError("checkpoints, max_points_per_centroid, threads and rows_per_cluster must be >= 0")

    def select(self, ctx: SelectionContext) -> Selection:
        opts = self.options
        seed = ctx.seed if opts.seed is None else opts.seed
        matrix = clean_matrix(ctx.signals.get(LOSS))
        matrix, kept = subsample_checkpoints(matrix, opts.checkpoints)
        clustering = ClusteringChoice(n_clusters=opts.n_clusters, n_iter=opts.n_iter, distance=opts.distance,
                                      init=opts.init, n_redo=opts.n_redo,
                                      max_points_per_centroid=opts.max_points_per_centroid,
                                      threads=opts.threads, rows_per_cluster=opts.rows_per_cluster)
        positions, diagnostics = clustered_selection(matrix, ctx.sources, ctx.budget, seed, clustering,
                                                     balance_sources=opts.balance_sources)
        steps = ctx.signals.steps
        diagnostics["signal"] = LOSS
        diagnostics["checkpoint_columns"] = kept.tolist()
        if steps and len(steps) == ctx.signals.get(LOSS).shape[1]:
            diagnostics["checkpoint_steps"] = [int(steps[i]) for i in kept]
        asked_k = None if opts.rows_per_cluster else opts.n_clusters  # None: K follows each source's size
        return Selection(np.asarray(positions), diagnostics, regime=clustered_regime(diagnostics, asked_k))


class S2LKMeansPPSelector(S2LSelector):
    """S2L with a clustering that keeps small trajectory clusters apart: k-means++ seeding, 10 restarts.

    Same selection rule and options as ``s2l``; only the clustering defaults differ (``init=kmeans++``,
    ``n_redo=10``: the restart with the lowest k-means objective wins). See docs/selectors.md for the
    planted-cluster measurement that motivates it.
    """

    name = "s2l-kmeanspp"
    description = "S2L with k-means++ seeding and 10 restarts (keeps small trajectory clusters apart)"

    @dataclass(frozen=True)
    class Options(S2LSelector.Options):
        init: Literal["random", "kmeans++"] = field(default="kmeans++", metadata={
            "help": "k-means initialisation: random points (faiss/paper) or k-means++"})
        n_redo: int = field(default=10, metadata={"help": "k-means restarts; the lowest objective wins"})


@hookimpl
def register_selectors(register):
    register(S2LSelector)
    register(S2LKMeansPPSelector)
