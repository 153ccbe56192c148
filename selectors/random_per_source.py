"""Random with S2L's source split: the fair random baseline for a selector that stratifies by source."""

from __future__ import annotations

import numpy as np

from s2lbench import hookimpl
from s2lbench.selection import Selection, SelectionContext, Selector
from s2lbench.selection.helpers import balanced_quotas, source_groups


class RandomPerSourceSelector(Selector):
    """Uniform random inside each source, with the budget split across sources exactly as S2L splits it.

    Sources are visited from smallest to largest; each takes ``floor(remaining / sources left)``, or all of
    itself when smaller, and what it leaves moves on (``balanced_quotas``, the function ``s2l`` uses). Inside a
    source the quota is drawn uniformly without replacement (seeded). Reads no signal. Because S2L
    stratifies by source, plain ``random`` (which follows the pool's source mix) is not the like-for-like
    comparison for it; this is.
    """

    name = "random-per-source"
    description = "random inside each source, budget split across sources as S2L does (smallest first)"
    requires = ()

    def select(self, ctx: SelectionContext) -> Selection:
        names, groups = source_groups(ctx.sources)
        quotas = balanced_quotas([g.size for g in groups], ctx.budget)
        rng = ctx.rng()
        chosen = [rng.choice(group, size=int(quota), replace=False) for group, quota in zip(groups, quotas, strict=True)]
        positions = np.concatenate(chosen) if chosen else np.empty(0, dtype=np.int64)
        return Selection(positions, {"sources": {name: {"pool": int(g.size), "budget": int(q)}
                                                 for name, g, q in zip(names, groups, quotas, strict=True)}})


@hookimpl
def register_selectors(register):
    register(RandomPerSourceSelector)
