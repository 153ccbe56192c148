"""Dataset cartography (Swayamdipta et al., EMNLP 2020): confidence and variability across training."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from s2lbench import hookimpl
from s2lbench.errors import DataError
from s2lbench.selection import Selection, SelectionContext, Selector
from s2lbench.selection.helpers import rank_select
from s2lbench.signals.signalset import CONFIDENCE


def cartography_coordinates(confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per example: mean and (population) standard deviation over checkpoints of its gold confidence,
    missing (NaN) checkpoints left out -- the paper's confidence and variability."""
    matrix = np.asarray(confidence, dtype=np.float64)
    with warnings.catch_warnings():  # an all-NaN row is a NaN score, ranked last
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(matrix, axis=1), np.nanstd(matrix, axis=1)


class CartographySelector(Selector):
    """Select a region of the data map: ambiguous (default), hard-to-learn or easy-to-learn.

    Signal: ``confidence`` (n x T, mean p(gold token) over the response at each proxy checkpoint; the paper's
    per-epoch p(gold label), averaged here over the response's tokens). Confidence = mean over checkpoints,
    variability = standard deviation over checkpoints (population, as the paper's code uses ``np.std``).
    ``region=ambiguous`` keeps the highest variability (the paper's best region for generalisation),
    ``hard`` the lowest confidence, ``easy`` the highest confidence. Needs at least two checkpoints for
    variability. Ties break by pool position.
    """

    name = "cartography"
    description = "dataset cartography: ambiguous (high variability), hard or easy examples across checkpoints"
    requires = (CONFIDENCE,)

    @dataclass(frozen=True)
    class Options:
        region: Literal["ambiguous", "hard", "easy"] = field(default="ambiguous", metadata={
            "help": "ambiguous = highest variability; hard = lowest confidence; easy = highest confidence"})

    def select(self, ctx: SelectionContext) -> Selection:
        matrix = np.asarray(ctx.signals.get(CONFIDENCE)).reshape(len(ctx.pool), -1)
        if self.options.region == "ambiguous" and matrix.shape[1] < 2:
            raise DataError(f"cartography region 'ambiguous' needs confidence at >= 2 checkpoints; the signal has "
                            f"{matrix.shape[1]}")
        mean, variability = cartography_coordinates(matrix)
        scores, mode = {"ambiguous": (variability, "highest"), "hard": (mean, "lowest"),
                        "easy": (mean, "highest")}[self.options.region]
        positions = rank_select(scores, ctx.budget, mode)
        return Selection(positions, {"signal": CONFIDENCE, "region": self.options.region,
                                     "checkpoints": int(matrix.shape[1]),
                                     "picked_confidence_mean": float(np.nanmean(mean[positions])),
                                     "picked_variability_mean": float(np.nanmean(variability[positions])),
                                     "pool_confidence_mean": float(np.nanmean(mean)),
                                     "pool_variability_mean": float(np.nanmean(variability))})


@hookimpl
def register_selectors(register):
    register(CartographySelector)
