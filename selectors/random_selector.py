"""Uniform random sampling: the baseline every selector must beat."""

from __future__ import annotations

from s2lbench import hookimpl
from s2lbench.selection import SelectionContext, Selector


class RandomSelector(Selector):
    """Draw ``budget`` examples uniformly at random without replacement (seeded). Reads no signal."""

    name = "random"
    description = "uniform random subset (seeded)"
    requires = ()

    def select(self, ctx: SelectionContext):
        return ctx.rng().choice(len(ctx.pool), size=ctx.budget, replace=False)


@hookimpl
def register_selectors(register):
    register(RandomSelector)
