"""Instruction-Following Difficulty (Li et al., NAACL 2024, "From Quantity to Quality", Cherry LLM)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from s2lbench import hookimpl
from s2lbench.selection import Selection, SelectionContext, Selector
from s2lbench.selection.helpers import column
from s2lbench.signals.signalset import LOSS, LOSS_ALONE


def ifd_scores(conditioned: np.ndarray, alone: np.ndarray) -> np.ndarray:
    """IFD = loss(response | instruction) / loss(response alone), per example; NaN where undefined."""
    conditioned = np.asarray(conditioned, dtype=np.float64)
    alone = np.asarray(alone, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(alone > 0, conditioned / alone, np.nan)


class IFDSelector(Selector):
    """Highest IFD among the examples whose IFD does not exceed ``max_ifd`` (default 1, as Cherry LLM filters).

    Signals: ``loss`` (mean response-token loss with the instruction) and ``loss_alone`` (the same response
    tokens after only the template's response header), both at column ``checkpoint`` (default -1, the
    trained proxy: Cherry LLM scores with its "pre-experienced" model, briefly trained on the data). IFD > 1
    means the instruction makes the response *harder* to predict -- a misaligned pair -- and Cherry LLM drops
    those before taking the highest IFD (``cherry_seletion/data_by_IFD.py``). If fewer than ``budget``
    examples pass the filter, the rest are the filtered-out ones closest to the threshold (reported as
    ``filled_above_max_ifd``), so the budget is always met.
    """

    name = "ifd"
    description = "Instruction-Following Difficulty (Cherry LLM): highest loss ratio with/without instruction, <= 1"
    requires = (LOSS, LOSS_ALONE)

    @dataclass(frozen=True)
    class Options:
        checkpoint: int = field(default=-1, metadata={"help": "proxy checkpoint column (-1 = last)"})
        max_ifd: float = field(default=1.0, metadata={
            "help": "drop examples with IFD above this before ranking (Cherry LLM: 1)"})

    def select(self, ctx: SelectionContext) -> Selection:
        conditioned = column(ctx.signals.get(LOSS), self.options.checkpoint, LOSS)
        alone = column(ctx.signals.get(LOSS_ALONE), self.options.checkpoint, LOSS_ALONE)
        scores = ifd_scores(conditioned, alone)
        finite = np.isfinite(scores)
        kept = np.flatnonzero(finite & (scores <= self.options.max_ifd))
        above = np.flatnonzero(finite & (scores > self.options.max_ifd))
        ranked = np.concatenate([kept[np.argsort(-scores[kept], kind="stable")],
                                 above[np.argsort(scores[above], kind="stable")],
                                 np.flatnonzero(~finite)])
        positions = ranked[: ctx.budget].astype(np.int64)
        filled = int(max(0, ctx.budget - kept.size))
        picked = scores[positions]
        picked = picked[np.isfinite(picked)]
        return Selection(positions, {"signals": [LOSS, LOSS_ALONE], "max_ifd": self.options.max_ifd,
                                     "pool_at_or_below_max_ifd": int(kept.size), "filled_above_max_ifd": filled,
                                     "picked_ifd_min": float(picked.min()) if picked.size else None,
                                     "picked_ifd_max": float(picked.max()) if picked.size else None,
                                     "pool_ifd_mean": float(np.nanmean(scores)) if finite.any() else None})


@hookimpl
def register_selectors(register):
    register(IFDSelector)
