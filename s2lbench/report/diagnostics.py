"""Selection diagnostics beside every row of the board (issue #40): why a row is where it is.

Under each table, one line per selector row (and the full-data reference), from the regime record each of its
cells stored (``cells.regime``, :mod:`s2lbench.selection.regime`): how many seeds recorded one, how far the
subset's source mix is from the pool's (total variation, mean over seeds) and which source moved most, on the
gym the share of the subset carrying a planted defect (``planted_defects``, :mod:`s2lbench.gym.defects`; mean
over seeds, the pool's own share in the header), and the selector's own regime summary, marked where it warned.
The lowest seed gives the words (the largest shift, the summary), as in the regime footnote
(:mod:`s2lbench.report.regime`). A table whose cells recorded no regime (stores written before regimes were)
has no diagnostics; a column no cell of the table recorded (planted defects off the gym) is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from s2lbench.evaluation.references import is_untrained_reference
from s2lbench.gym.defects import ANY, PLANTED_DEFECTS, POOL_ANY
from s2lbench.results.store import FULL, Cell
from s2lbench.selection.regime import largest_shift, mix_distance, regime_warnings

WARNED = "[warned]"
TITLE = "Selection diagnostics (what each row's subsets were; docs/leaderboards.md):"


def legend(has_defects: bool) -> str:
    """The board's footnote on the diagnostics tables (planted defects named only where a table shows them)."""
    defects = ("planted defects = the share of the subset's rows the gym planted a defect in, mean over seeds, "
               "against the pool's share in the header (the full-data reference trains on the pool itself); "
               if has_defects else "")
    return ("Selection diagnostics, under each table, from the regime each cell recorded: seeds = the cells with a "
            "record; source mix TV = the total variation distance between the subset's and the pool's source "
            "shares, mean over seeds (0: the pool's mix, 1: disjoint); the largest source shift (subset vs pool) and "
            f"the selector's regime are the lowest seed's; {defects}{WARNED}: the selector ran outside the regime "
            "it was designed for (the selection regime note says why).")


@dataclass(frozen=True)
class DiagnosticsLine:
    selector: str
    label: str  # the row as the board names it (an A/A control says so)
    budget: int
    seeds: int  # cells of the row with a regime record
    source_mix_tv: float | None  # mean over seeds
    largest_shift: str | None  # the lowest seed's
    defects_any: float | None  # mean over seeds
    summary: str | None  # the selector's own, the lowest seed's
    warned: bool  # any seed

    @property
    def is_reference(self) -> bool:
        return self.selector == FULL


@dataclass(frozen=True)
class Diagnostics:
    lines: list[DiagnosticsLine]
    pool_defects_any: tuple[float, ...]  # the pool's share with any defect, as the cells recorded it (distinct)

    @property
    def has_defects(self) -> bool:
        return any(line.defects_any is not None for line in self.lines)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def selection_diagnostics(rows: Sequence[tuple[str, int, str]], cells: Sequence[Cell]) -> Diagnostics | None:
    """The diagnostics of one table: ``rows`` are its (selector, budget, label) in the table's order, ``cells``
    the finished cells of its target. None when no cell of these rows recorded a regime."""
    lines, pool_any = [], set()
    for selector, budget, label in rows:
        if is_untrained_reference(selector):
            continue  # answered from the pool without a selection: nothing to diagnose
        group = sorted((c for c in cells if c.selector == selector and c.budget == budget and c.regime),
                       key=lambda c: (c.seed, c.target))
        planted = [c.regime[PLANTED_DEFECTS] for c in group if c.regime.get(PLANTED_DEFECTS)]
        pool_any |= {float(p[POOL_ANY]) for p in planted if POOL_ANY in p}
        first = group[0].regime if group else {}
        lines.append(DiagnosticsLine(
            selector, label, budget, len(group),
            _mean([d for c in group if (d := mix_distance(c.regime)) is not None]),
            largest_shift(first),
            _mean([float(p[ANY]) for p in planted if ANY in p]),
            (first.get("selector") or {}).get("summary") or None,
            any(regime_warnings(c.regime) for c in group)))
    if not any(line.seeds for line in lines):
        return None
    return Diagnostics(lines, tuple(sorted(pool_any)))


# ----------------------------------------------------------------------------------------- rendering
def _pool_share(d: Diagnostics) -> str:
    pool = d.pool_defects_any
    return "" if not pool else f" (pool {100 * pool[0]:.1f}%)" if len(pool) == 1 else \
        f" (pool {100 * pool[0]:.1f}-{100 * pool[-1]:.1f}%)"


def headers(d: Diagnostics) -> list[str]:
    return ["selector", "budget", "seeds with a record", "source mix TV vs pool", "largest source shift",
            *([f"planted defects{_pool_share(d)}"] if d.has_defects else []), "selector's regime"]


def line_texts(d: Diagnostics, line: DiagnosticsLine) -> list[str]:
    """The line's cells, as plain text, aligned with :func:`headers` (— where nothing was recorded)."""
    regime = line.summary or "—"
    if line.warned:
        regime = f"{regime} {WARNED}" if line.summary else WARNED
    return [line.label, str(line.budget), str(line.seeds),
            "—" if line.source_mix_tv is None else f"{line.source_mix_tv:.3f}", line.largest_shift or "—",
            *(["—" if line.defects_any is None else f"{100 * line.defects_any:.1f}%"] if d.has_defects else []),
            regime]


def render_markdown(d: Diagnostics) -> list[str]:
    head = headers(d)
    out = [f"\n{TITLE}\n", "| " + " | ".join(head) + " |",
           "|---|---:|---:|---:|---|" + ("---:|" if d.has_defects else "") + "---|"]
    for line in d.lines:
        cells = line_texts(d, line)
        if line.is_reference:
            cells[0] = f"*{cells[0]}*"
        out.append("| " + " | ".join(cells) + " |")
    return out


def render_html(d: Diagnostics, escape: Callable[[str], str]) -> list[str]:
    out = [f"<p>{escape(TITLE)}</p><table>", "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers(d)) + "</tr>"]
    for line in d.lines:
        cls = ' class="reference"' if line.is_reference else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{escape(t)}</td>" for t in line_texts(d, line)) + "</tr>")
    out.append("</table>")
    return out


def render_latex(d: Diagnostics, title: str, escape: Callable[[str], str]) -> list[str]:
    """A table of its own after the scores' table: the selector's regime wraps in a paragraph column."""
    head = ["Selector", "Budget", "Seeds", "Source TV", "Largest shift", *(["Defects"] if d.has_defects else []),
            "Selector's regime"]
    out = [r"\begin{table}[t]", r"\centering", r"\small",
           r"\begin{tabular}{l r r r l " + ("r " if d.has_defects else "") + r"p{0.35\linewidth}}", r"\toprule",
           " & ".join(head) + r" \\", r"\midrule"]
    for line in d.lines:
        if line.is_reference:
            out.append(r"\midrule")
        out.append(" & ".join(escape(t).replace("—", "--") for t in line_texts(d, line)) + r" \\")
    caption = f"Selection diagnostics, {title}." + (
        f" Defects: the share of the subset with a planted defect{_pool_share(d)}." if d.has_defects else "")
    out += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{escape(caption)}}}", r"\end{table}", ""]
    return out
