"""A complete third-party s2lbench plugin: select the examples with the longest responses.

"Long Is More for Alignment" (Zhao et al., 2024) found that picking the longest responses is a strong,
cheap baseline for instruction tuning. This selector reads no model signal, only the pool's text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import s2lbench
from s2lbench.selection import Selection, SelectionContext, Selector


class LongestResponseSelector(Selector):
    name = "longest-response"
    description = "the examples with the longest responses (Zhao et al., 2024)"
    requires = ()  # no signal: this selector only reads the pool

    @dataclass(frozen=True)
    class Options:
        unit: str = field(default="characters", metadata={"help": "length unit: characters or words"})

    def select(self, ctx: SelectionContext) -> Selection:
        if self.options.unit not in ("characters", "words"):
            raise ValueError(f"unit must be 'characters' or 'words', got {self.options.unit!r}")
        lengths = np.array([len(ex.output) if self.options.unit == "characters" else len(ex.output.split())
                            for ex in ctx.pool], dtype=np.float64)
        # ties broken by a seeded random key, so equal-length examples are not picked by file order
        tiebreak = ctx.rng().random(len(lengths))
        order = np.lexsort((tiebreak, -lengths))
        picked = order[: ctx.budget]
        return Selection(picked, {"mean_length_selected": float(lengths[picked].mean()),
                                  "mean_length_pool": float(lengths.mean())})


@s2lbench.hookimpl
def register_selectors(register):
    register(LongestResponseSelector)
