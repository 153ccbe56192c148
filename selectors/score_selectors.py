"""Score-ranking baselines: perplexity, EL2N, confidence, learnability.

Each ranks the pool by one per-example score computed from a cached signal at a chosen checkpoint and
takes the ``budget`` lowest, highest or middle ones (ties by pool position; NaN scores only when the
finite ones run out). Checkpoint options are column indices into the signal (0 = first checkpoint saved,
-1 = last); the diagnostics name the training step when the signals record it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from s2lbench import hookimpl
from s2lbench.selection import Selection, SelectionContext, Selector
from s2lbench.selection.helpers import column, rank_select
from s2lbench.signals.signalset import CONFIDENCE, EL2N, LOSS


def _step(ctx: SelectionContext, signal: str, index: int) -> dict[str, Any]:
    """The checkpoint a column index refers to, for the diagnostics."""
    t = np.asarray(ctx.signals.get(signal)).reshape(len(ctx.pool), -1).shape[1]
    info: dict[str, Any] = {"checkpoint_index": index % t, "checkpoints_available": t}
    if len(ctx.signals.steps) == t:
        info["checkpoint_step"] = int(ctx.signals.steps[index % t])
    return info


def _score_summary(scores: np.ndarray, positions: np.ndarray) -> dict[str, float]:
    picked = scores[positions]
    picked = picked[np.isfinite(picked)]
    finite = scores[np.isfinite(scores)]
    if not picked.size or not finite.size:
        return {}
    return {"picked_score_min": float(picked.min()), "picked_score_max": float(picked.max()),
            "picked_score_mean": float(picked.mean()), "pool_score_mean": float(finite.mean()),
            "nan_scores_in_pool": int(scores.size - finite.size)}


class _PerplexitySelector(Selector):
    """Rank by the proxy's loss at one checkpoint (perplexity = exp(loss), the same order).

    Signal: ``loss`` (n x T), column ``checkpoint`` (default -1, the last checkpoint, i.e. the fully trained
    proxy, as in the S2L paper's perplexity baselines).
    """

    requires = (LOSS,)
    mode: ClassVar[str]

    @dataclass(frozen=True)
    class Options:
        checkpoint: int = field(default=-1, metadata={
            "help": "column of the loss trajectory to rank by (0 = first checkpoint, -1 = last)"})

    def select(self, ctx: SelectionContext) -> Selection:
        scores = column(ctx.signals.get(LOSS), self.options.checkpoint, LOSS)
        positions = rank_select(scores, ctx.budget, self.mode)
        return Selection(positions, {"signal": LOSS, "score": "loss (log perplexity)", "rank": self.mode,
                                     **_step(ctx, LOSS, self.options.checkpoint),
                                     **_score_summary(scores, positions)})


class PerplexityLowSelector(_PerplexitySelector):
    __doc__ = "Lowest perplexity (easiest examples). " + _PerplexitySelector.__doc__
    name = "perplexity-low"
    description = "lowest proxy perplexity at a checkpoint (default: last)"
    mode = "lowest"


class PerplexityMiddleSelector(_PerplexitySelector):
    __doc__ = "Middle perplexity: the window of ranks centred on the median. " + _PerplexitySelector.__doc__
    name = "perplexity-middle"
    description = "middle proxy perplexity at a checkpoint (default: last)"
    mode = "middle"


class PerplexityHighSelector(_PerplexitySelector):
    __doc__ = "Highest perplexity (hardest examples). " + _PerplexitySelector.__doc__
    name = "perplexity-high"
    description = "highest proxy perplexity at a checkpoint (default: last)"
    mode = "highest"


class EL2NSelector(Selector):
    """EL2N (Paul et al., 2021): the L2 norm of the error vector early in training; keep the highest.

    Signal: ``el2n`` (n x T, per-example mean over target tokens of ||softmax - onehot||_2), column
    ``checkpoint`` (default 0, the earliest saved checkpoint: Paul et al. score after a few epochs of
    training). ``drop_top_fraction`` drops that fraction of the highest scores first, as noise (Paul et al.
    offset the kept window for the same reason); if dropping would leave fewer than ``budget`` examples,
    fewer are dropped (the diagnostics report how many were).
    """

    name = "el2n"
    description = "highest EL2N score at an early checkpoint, optionally dropping the top x% as noise"
    requires = (EL2N,)

    @dataclass(frozen=True)
    class Options:
        checkpoint: int = field(default=0, metadata={
            "help": "column of the EL2N signal to rank by (0 = earliest checkpoint)"})
        drop_top_fraction: float = field(default=0.0, metadata={
            "help": "fraction of the pool with the very highest scores to skip as noise, in [0, 1)"})

        def __post_init__(self):
            if not 0.0 <= self.drop_top_fraction < 1.0:
                raise ValueError("drop_top_fraction must be in [0, 1)")

    def select(self, ctx: SelectionContext) -> Selection:
        scores = column(ctx.signals.get(EL2N), self.options.checkpoint, EL2N)
        n = scores.size
        dropped = min(int(np.floor(self.options.drop_top_fraction * n)), n - ctx.budget)
        ranked = rank_select(scores, n, "highest")
        positions = ranked[dropped:dropped + ctx.budget]
        return Selection(positions, {"signal": EL2N, "rank": "highest", "dropped_top": int(dropped),
                                     **_step(ctx, EL2N, self.options.checkpoint),
                                     **_score_summary(scores, positions)})


class _ConfidenceSelector(Selector):
    """Rank by the proxy's confidence: mean probability of the gold tokens.

    Signal: ``confidence`` (n x T). By default the score is the mean over all checkpoints, as in dataset
    cartography (Swayamdipta et al., 2020), whose "confidence" is averaged over training; set ``checkpoint``
    to rank by one checkpoint instead (e.g. -1 for the trained proxy).
    """

    requires = (CONFIDENCE,)
    mode: ClassVar[str]

    @dataclass(frozen=True)
    class Options:
        checkpoint: int | None = field(default=None, metadata={
            "help": "column to rank by; none = mean over all checkpoints (dataset cartography)"})

    def select(self, ctx: SelectionContext) -> Selection:
        matrix = np.asarray(ctx.signals.get(CONFIDENCE), dtype=np.float64).reshape(len(ctx.pool), -1)
        if self.options.checkpoint is None:
            finite = np.isfinite(matrix)
            counts = finite.sum(axis=1)
            sums = np.where(finite, matrix, 0.0).sum(axis=1)
            scores = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)  # all-NaN rows rank last
            where: dict[str, Any] = {"aggregate": "mean over checkpoints", "checkpoints_available": matrix.shape[1]}
        else:
            scores = column(matrix, self.options.checkpoint, CONFIDENCE)
            where = _step(ctx, CONFIDENCE, self.options.checkpoint)
        positions = rank_select(scores, ctx.budget, self.mode)
        return Selection(positions, {"signal": CONFIDENCE, "rank": self.mode, **where,
                                     **_score_summary(scores, positions)})


class ConfidenceLeastSelector(_ConfidenceSelector):
    __doc__ = "Least confident examples. " + _ConfidenceSelector.__doc__
    name = "confidence-least"
    description = "lowest mean gold-token probability (default: averaged over checkpoints)"
    mode = "lowest"


class ConfidenceMiddleSelector(_ConfidenceSelector):
    __doc__ = "Middle confidence: the window of ranks centred on the median. " + _ConfidenceSelector.__doc__
    name = "confidence-middle"
    description = "middle mean gold-token probability (default: averaged over checkpoints)"
    mode = "middle"


class ConfidenceMostSelector(_ConfidenceSelector):
    __doc__ = "Most confident examples. " + _ConfidenceSelector.__doc__
    name = "confidence-most"
    description = "highest mean gold-token probability (default: averaged over checkpoints)"
    mode = "highest"


class LearnabilitySelector(Selector):
    """High learnability: the examples whose loss dropped most between an early and a late checkpoint.

    Signal: ``loss`` (n x T). Score = loss[early] - loss[late] (default columns 0 and -1, the first and last
    checkpoints), highest first. ``relative=true`` divides the drop by loss[early] (a fractional drop), which
    stops long, high-loss examples dominating.
    """

    name = "learnability"
    description = "largest loss drop from an early to a late checkpoint"
    requires = (LOSS,)

    @dataclass(frozen=True)
    class Options:
        early: int = field(default=0, metadata={"help": "early checkpoint column (0 = first)"})
        late: int = field(default=-1, metadata={"help": "late checkpoint column (-1 = last)"})
        relative: bool = field(default=False, metadata={"help": "divide the drop by the early loss"})

    def select(self, ctx: SelectionContext) -> Selection:
        loss = ctx.signals.get(LOSS)
        early, late = column(loss, self.options.early, LOSS), column(loss, self.options.late, LOSS)
        scores = early - late
        if self.options.relative:
            with np.errstate(divide="ignore", invalid="ignore"):
                scores = np.where(early > 0, scores / early, np.nan)
        positions = rank_select(scores, ctx.budget, "highest")
        return Selection(positions, {"signal": LOSS, "rank": "highest", "score": "loss[early] - loss[late]",
                                     "early": _step(ctx, LOSS, self.options.early),
                                     "late": _step(ctx, LOSS, self.options.late),
                                     **_score_summary(scores, positions)})


@hookimpl
def register_selectors(register):
    for cls in (PerplexityLowSelector, PerplexityMiddleSelector, PerplexityHighSelector, EL2NSelector,
                ConfidenceLeastSelector, ConfidenceMiddleSelector, ConfidenceMostSelector, LearnabilitySelector):
        register(cls)
