"""Selection: the ``Selector`` contract a plugin implements, the helpers selectors share, and clustering.

Public (a plugin may import these): ``Selector``, ``Selection``, ``SelectionContext``; ``run_selector``,
``resolve_budget``, ``parse_options`` and ``check_seed`` run one selector the way the runner does.
"""

from s2lbench.selection.selector import (
    Selection,
    SelectionContext,
    Selector,
    check_seed,
    parse_options,
    resolve_budget,
    run_selector,
)

__all__ = ["Selection", "SelectionContext", "Selector", "check_seed", "parse_options", "resolve_budget",
           "run_selector"]
