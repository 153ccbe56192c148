"""Embedding clustering: k-means on per-example embeddings, budget spread evenly over clusters.

The same sampling rule as S2L (clusters visited smallest first, ``floor(remaining / clusters left)`` each,
tiny clusters last) applied to embeddings instead of loss trajectories, so the two differ only in the
representation that is clustered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from s2lbench import hookimpl
from s2lbench.selection import Selection, SelectionContext, Selector
from s2lbench.selection.helpers import ClusteringChoice, clean_matrix, clustered_selection
from s2lbench.selection.regime import clustered_regime
from s2lbench.signals.signalset import PROXY_EMBEDDING


class EmbeddingClusteringSelector(Selector):
    """k-means on embeddings with balanced per-cluster sampling.

    Signal: ``embedding`` = ``proxy_embedding`` (default: the proxy's last-layer hidden state, mean-pooled, at
    the last checkpoint) or ``text_embedding`` (MiniLM sentence embeddings).

    Choices: cosine distance by default (spherical k-means on L2-normalised embeddings, the usual metric for
    sentence embeddings); ``n_clusters`` = 100 and 20 iterations like S2L; no source balancing by default
    (the baseline as usually described clusters the whole pool; ``balance_sources=true`` splits the budget
    across sources first exactly as S2L does).
    """

    name = "embedding-clustering"
    description = "k-means on proxy or MiniLM embeddings, budget spread evenly over clusters"
    requires = (PROXY_EMBEDDING,)  # the default; ``required_signals`` follows the ``embedding`` option

    @dataclass(frozen=True)
    class Options:
        embedding: Literal["proxy_embedding", "text_embedding"] = field(default="proxy_embedding", metadata={
            "help": "which embedding to cluster: the proxy's hidden states or MiniLM's"})
        n_clusters: int = field(default=100, metadata={"help": "k-means clusters (per source if balanced)"})
        n_iter: int = field(default=20, metadata={"help": "k-means iterations"})
        distance: Literal["euclidean", "cosine"] = field(default="cosine", metadata={
            "help": "k-means distance (cosine = spherical k-means on normalised embeddings)"})
        init: Literal["random", "kmeans++"] = field(default="random", metadata={
            "help": "k-means initialisation: random points (faiss default) or k-means++"})
        n_redo: int = field(default=1, metadata={"help": "k-means restarts; the lowest objective wins"})
        threads: int = field(default=1, metadata={
            "help": "faiss k-means threads (1: fastest on a busy 2-core machine, see docs); 0 = faiss default"})
        balance_sources: bool = field(default=False, metadata={
            "help": "split the budget across sources first (as S2L does)"})

        def __post_init__(self):
            if self.n_clusters < 1 or self.n_iter < 1 or self.n_redo < 1:
                raise ValueError("n_clusters, n_iter and n_redo must be >= 1")

    @classmethod
    def required_signals(cls, options) -> tuple[str, ...]:
        return (options.embedding,)

    def select(self, ctx: SelectionContext) -> Selection:
        opts = self.options
        features = clean_matrix(np.asarray(ctx.signals.get(opts.embedding)).reshape(len(ctx.pool), -1))
        clustering = ClusteringChoice(n_clusters=opts.n_clusters, n_iter=opts.n_iter, distance=opts.distance,
                                      init=opts.init, n_redo=opts.n_redo, threads=opts.threads)
        positions, diagnostics = clustered_selection(features, ctx.sources, ctx.budget, ctx.seed, clustering,
                                                     balance_sources=opts.balance_sources)
        diagnostics["signal"] = opts.embedding
        return Selection(positions, diagnostics, regime=clustered_regime(diagnostics, opts.n_clusters))


@hookimpl
def register_selectors(register):
    register(EmbeddingClusteringSelector)
