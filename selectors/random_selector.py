"""Uniform random sampling: the baseline every selector must beat."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from s2lbench import hookimpl
from s2lbench.selection import SelectionContext, Selector


class RandomSelector(Selector):
    """Draw ``budget`` examples uniformly at random without replacement (seeded). Reads no signal.

    ``stream`` picks an independent random stream for the same seed: listed a second time under another label
    (``{name: random, label: random-aa, options: {stream: 1}}``), random becomes the board's A/A control, a
    selector known to equal the baseline, which shows what "no difference" looks like on that board.
    """

    name = "random"
    description = "uniform random subset (seeded)"
    requires = ()

    @dataclass(frozen=True)
    class Options:
        stream: int = field(default=0, metadata={
            "help": "independent random stream for the same seed (0: the baseline's; another: an A/A control)"})

        def __post_init__(self):
            if isinstance(self.stream, bool) or not isinstance(self.stream, int) or self.stream < 0:
                raise ValueError(f"stream must be an integer >= 0, got {self.stream!r}")

    def select(self, ctx: SelectionContext):
        rng = ctx.rng() if self.options.stream == 0 else np.random.default_rng([ctx.seed, self.options.stream])
        return rng.choice(len(ctx.pool), size=ctx.budget, replace=False)


@hookimpl
def register_selectors(register):
    register(RandomSelector)
