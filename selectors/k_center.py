"""Greedy k-center (Sener & Savarese, ICLR 2018, "core-set" selection) on proxy or text embeddings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from s2lbench import hookimpl
from s2lbench.selection import Selection, SelectionContext, Selector
from s2lbench.signals.signalset import PROXY_EMBEDDING

#: see k_center_greedy: float64's rounding error is ~1e-15 of the largest squared norm, far below this grid
DISTANCE_DIGITS = 12


def on_grid(values: np.ndarray, scale: float) -> np.ndarray:
    """``values`` in units of ``scale`` x 10^-DISTANCE_DIGITS, rounded: what the greedy compares."""
    return np.round(values / (max(scale, 1e-300) * 10.0 ** -DISTANCE_DIGITS))


def k_center_greedy(x: np.ndarray, budget: int, first: int) -> tuple[np.ndarray, np.ndarray]:
    """Sener & Savarese's greedy 2-approximation: start at ``first``, then repeatedly add the point farthest
    (Euclidean) from the chosen centres. Returns the picks in order and the covering radius after each pick
    (the largest distance of any point to its nearest centre). Ties go to the lowest position.

    Distances are float64 and compared on a grid of ``DISTANCE_DIGITS`` digits of the largest squared norm:
    float32 products round differently under each CPU's BLAS kernels, and one flipped near-tie changes every
    later pick, so this is what makes the same embeddings give the same subset on every machine."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    n = x.shape[0]
    norms = np.einsum("ij,ij->i", x, x)
    scale = float(norms.max(initial=0.0))
    order = np.empty(budget, dtype=np.int64)
    radius = np.empty(budget, dtype=np.float64)
    nearest = np.full(n, np.inf, dtype=np.float64)  # squared distance to the nearest chosen centre
    centre = int(first)
    for k in range(budget):
        order[k] = centre
        # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2: one matrix-vector product per pick, O(n d) memory-bound
        d2 = np.maximum(norms - 2.0 * (x @ x[centre]) + norms[centre], 0.0)
        np.minimum(nearest, d2, out=nearest)
        nearest[order[: k + 1]] = 0.0  # rounding must never make a chosen centre look far from itself
        centre = int(np.argmax(on_grid(nearest, scale)))  # first maximum: the lowest position on ties
        radius[k] = float(np.sqrt(nearest[centre]))
    return order, radius


class KCenterSelector(Selector):
    """Greedy k-center: a subset whose largest distance from any pool example to it is (2-approximately) small.

    Signal: ``embedding`` = ``proxy_embedding`` (default; the proxy's mean-pooled last hidden state, as Sener &
    Savarese use the model's own penultimate activations) or ``text_embedding`` (MiniLM). Euclidean distance,
    as in the paper; ``normalize=true`` L2-normalises the embeddings first. The paper starts from an already
    labelled set; with none, the first centre is a seeded random example (``first=random``) or the example
    nearest the pool mean (``first=mean``). Each pick costs one matrix-vector product over the pool (O(n d)),
    so a budget b costs O(b n d): about 30k x 262k x 512 = 4e12 multiply-adds at MathInstruct scale.
    """

    name = "k-center"
    version = 2  # 2: float64 distances on a rounding grid, the same subset on every CPU (1: float32)
    description = "greedy k-center / core-set (Sener & Savarese 2018) on proxy or MiniLM embeddings"
    requires = (PROXY_EMBEDDING,)

    @dataclass(frozen=True)
    class Options:
        embedding: Literal["proxy_embedding", "text_embedding"] = field(default="proxy_embedding", metadata={
            "help": "which embedding: the proxy's hidden states or MiniLM's"})
        normalize: bool = field(default=False, metadata={"help": "L2-normalise embeddings before distances"})
        first: Literal["random", "mean"] = field(default="random", metadata={
            "help": "first centre: a seeded random example, or the one nearest the pool mean"})

    @classmethod
    def required_signals(cls, options) -> tuple[str, ...]:
        return (options.embedding,)

    def select(self, ctx: SelectionContext) -> Selection:
        x = np.nan_to_num(np.asarray(ctx.signals.get(self.options.embedding), dtype=np.float64)
                          .reshape(len(ctx.pool), -1))
        if self.options.normalize:
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        if self.options.first == "random":
            first = int(ctx.rng().integers(len(ctx.pool)))
        else:
            d2 = ((x - x.mean(axis=0)) ** 2).sum(axis=1)
            first = int(np.argmin(on_grid(d2, float(d2.max()))))
        order, radius = k_center_greedy(x, ctx.budget, first)
        return Selection(order, {"signal": self.options.embedding, "first_centre": first,
                                 "covering_radius": float(radius[-1]), "radius_after_first": float(radius[0])})


@hookimpl
def register_selectors(register):
    register(KCenterSelector)
