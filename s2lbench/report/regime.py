"""The selection regime on the board and in the run's summary, from what each cell recorded (``cells.regime``).

A selection depends on the selector, its options, the budget and the seed, not on the target, so the lines
are per (selector row, budget): the lowest seed's regime (the picks per cluster depend on the budget alone;
the share of clusters picked and the source mix move a little with the seed), and every distinct warning of
any seed. Cells recorded before regimes were (older stores) have none and are left out.
"""

from __future__ import annotations

from collections import defaultdict

from s2lbench.results.store import FULL, Cell
from s2lbench.selection.regime import describe, regime_warnings

WARNING_MARK = "⚠"  # the console's; the board says "Warning:" (LaTeX and plain-text readers lack the glyph)


def _by_row(cells: list[Cell]) -> dict[tuple[str, int], list[Cell]]:
    groups: dict[tuple[str, int], list[Cell]] = defaultdict(list)
    for c in cells:
        if c.status == "done" and c.selector != FULL and c.regime:
            groups[(c.selector, c.budget)].append(c)
    return {key: sorted(group, key=lambda c: (c.seed, c.target)) for key, group in sorted(groups.items())}


def _warnings(group: list[Cell]) -> list[str]:
    return list(dict.fromkeys(w for c in group for w in regime_warnings(c.regime)))


def regime_notes(cells: list[Cell]) -> list[str]:
    """Footnote lines: per selector row and budget that reported a regime of its own or warned, that regime and,
    after "Warning:", what it warned about (every row's source mix is in the board's diagnostics table)."""
    lines = []
    for (selector, budget), group in _by_row(cells).items():
        first = group[0]
        if not (first.regime.get("selector") or {}).get("summary") and not _warnings(group):
            continue
        seeds = sorted({c.seed for c in group})
        which = f", seed {first.seed} of {len(seeds)}" if len(seeds) > 1 else ""
        text = f"Selection regime of {selector} at {budget} rows{which}: {describe(first.regime)}."
        for warning in _warnings(group):
            text += f" Warning: {warning}."
        lines.append(text)
    return lines


def regime_warning_lines(cells: list[Cell]) -> list[str]:
    """The run summary's lines: each selector row and budget that ran outside its regime, and why."""
    lines = []
    for (selector, budget), group in _by_row(cells).items():
        for warning in _warnings(group):
            lines.append(f"{selector} at {budget} rows ({len(group)} cell(s)): {warning}")
    return lines
