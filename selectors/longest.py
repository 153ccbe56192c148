"""Long is more for alignment (Zhao et al., ICML 2024): keep the examples with the longest responses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from s2lbench import hookimpl
from s2lbench.selection import Selection, SelectionContext, Selector
from s2lbench.selection.helpers import rank_select
from s2lbench.signals.signalset import RESPONSE_TOKENS


class LongestSelector(Selector):
    """The ``budget`` examples with the longest responses (Zhao et al. 2024 keep the 1,000 longest).

    ``length=tokens`` (default) counts response tokens under the proxy's tokenizer and template, EOS
    included, after truncation to the signal pass's ``max_length`` -- the tokens training sees (signal
    ``response_tokens``, written by every signal pass at no extra cost). ``length=chars`` counts characters of
    the output field and reads no signal. Ties break by pool position.
    """

    name = "longest"
    description = "longest responses in tokens (Long is more for alignment, Zhao et al. 2024)"
    requires = (RESPONSE_TOKENS,)

    @dataclass(frozen=True)
    class Options:
        length: Literal["tokens", "chars"] = field(default="tokens", metadata={
            "help": "response length in proxy tokens (signal response_tokens) or in characters (no signal)"})

    @classmethod
    def required_signals(cls, options) -> tuple[str, ...]:
        return (RESPONSE_TOKENS,) if options.length == "tokens" else ()

    def select(self, ctx: SelectionContext) -> Selection:
        if self.options.length == "tokens":
            lengths = np.asarray(ctx.signals.get(RESPONSE_TOKENS), dtype=np.float64).reshape(len(ctx.pool), -1)[:, 0]
        else:
            lengths = np.array([len(ex.output) for ex in ctx.pool], dtype=np.float64)
        positions = rank_select(lengths, ctx.budget, "highest")
        picked = lengths[positions]
        return Selection(positions, {"length": self.options.length, "picked_length_min": float(picked.min()),
                                     "picked_length_mean": float(picked.mean()),
                                     "pool_length_mean": float(lengths.mean())})


@hookimpl
def register_selectors(register):
    register(LongestSelector)
