"""Facility location: a greedy submodular subset that covers the pool in embedding space."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from s2lbench import hookimpl
from s2lbench.selection import Selection, SelectionContext, Selector
from s2lbench.selection.helpers import facility_location_greedy
from s2lbench.signals.signalset import PROXY_EMBEDDING


class FacilityLocationSelector(Selector):
    """Greedy facility-location maximisation over embedding similarities (as in CRAIG / the S2L baselines).

    Signal: ``embedding`` = ``proxy_embedding`` (default: the proxy's last-layer hidden states at the last
    checkpoint, as the S2L paper's facility-location baseline uses the proxy's representations) or
    ``text_embedding`` (MiniLM).

    Choices: similarity (1 + cosine) / 2, which is non-negative so the objective is monotone submodular;
    the objective is evaluated on at most ``n_represent`` examples (a seeded random sample for larger pools),
    which keeps the cost O(n * n_represent * d) instead of O(n^2 d); ``algorithm`` = lazy greedy (exact
    greedy) or stochastic greedy (faster for large budgets, controlled by ``epsilon``). Greedy picks are
    deterministic; the seed only drives the represented sample and stochastic greedy.
    """

    name = "facility-location"
    version = 2  # 2: float64 gains on a rounding grid, the same subset on every CPU (1: float32)
    description = "greedy facility-location (submodular coverage) over proxy or MiniLM embeddings"
    requires = (PROXY_EMBEDDING,)  # the default; ``required_signals`` follows the ``embedding`` option

    @dataclass(frozen=True)
    class Options:
        embedding: Literal["proxy_embedding", "text_embedding"] = field(default="proxy_embedding", metadata={
            "help": "which embedding's cosine similarities to cover: the proxy's hidden states or MiniLM's"})
        algorithm: Literal["lazy", "stochastic"] = field(default="lazy", metadata={
            "help": "lazy greedy (exact greedy) or stochastic greedy (Mirzasoleiman et al. 2015)"})
        n_represent: int = field(default=10000, metadata={
            "help": "evaluate coverage on at most this many examples (seeded sample); 0 = the whole pool"})
        epsilon: float = field(default=0.01, metadata={
            "help": "stochastic greedy: candidates per step = n / budget * ln(1 / epsilon)"})
        batch: int = field(default=32, metadata={"help": "lazy greedy: stale candidates re-scored per product"})

        def __post_init__(self):
            if not 0 < self.epsilon < 1:
                raise ValueError("epsilon must be in (0, 1)")
            if self.batch < 1 or self.n_represent < 0:
                raise ValueError("batch must be >= 1 and n_represent >= 0")

    @classmethod
    def required_signals(cls, options) -> tuple[str, ...]:
        return (options.embedding,)

    def select(self, ctx: SelectionContext) -> Selection:
        opts = self.options
        embeddings = np.asarray(ctx.signals.get(opts.embedding)).reshape(len(ctx.pool), -1)
        positions, info = facility_location_greedy(embeddings, ctx.budget, ctx.rng(), algorithm=opts.algorithm,
                                                   n_represent=opts.n_represent, epsilon=opts.epsilon,
                                                   batch=opts.batch)
        return Selection(positions, {"signal": opts.embedding, **info})


@hookimpl
def register_selectors(register):
    register(FacilityLocationSelector)
