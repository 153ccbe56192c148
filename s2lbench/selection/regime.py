"""The regime a selection ran in: what a reader needs to judge whether the selector ran as it was designed.

Every selection records the source mix of its subset against the pool's (``source_mix``, ``source_mix_tv``).
A selector may also report its own regime by returning ``Selection(positions, regime=Regime(...))``: a
one-line ``summary``, the ``facts`` behind it (JSON numbers and strings) and ``warnings`` when it ran outside
the regime it was designed for. Third-party selectors need not: the record then holds the source mix alone.
``run_selector`` puts the record in the selection's diagnostics under ``regime``; the runner stores it with
the cell (``cells.regime`` in the results store), ``s2lbench run`` prints its warnings at the end, the
leaderboard shows it in a footnote per selector, and ``s2lbench select`` prints it.

S2L's regime (:func:`clustered_regime`): K, pool rows per cluster, picks per cluster per source, and the
share of clusters that received a pick. The paper (MathInstruct: 262K rows, 14 sources, K = 100, 30K
picks) has about 187 rows and about 21 picks per cluster per source; below one pick per cluster the rule
takes one row from some clusters and none from the rest, so cluster balancing is inactive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: S2L on MathInstruct: 30K picks / 14 sources / K = 100 clusters
PAPER_PICKS_PER_CLUSTER = 21
#: and 262K rows / 14 sources / K = 100
PAPER_ROWS_PER_CLUSTER = 187


@dataclass
class Regime:
    """What a selector reports about the regime it ran in (see the module docstring)."""

    summary: str
    facts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def source_mix(pool_sources: Sequence[str] | np.ndarray, positions: np.ndarray) -> dict[str, dict[str, float]]:
    """Per source of the pool: its count and share in the pool and in the subset at ``positions``."""
    sources = np.asarray(pool_sources, dtype=object).astype(str)
    names, pool_counts = np.unique(sources, return_counts=True)
    picked = sources[np.asarray(positions, dtype=np.int64)]
    selected = dict(zip(*np.unique(picked, return_counts=True), strict=True)) if picked.size else {}
    n, k = max(1, sources.size), max(1, picked.size)
    return {str(s): {"pool": int(c), "pool_share": round(int(c) / n, 4), "selected": int(selected.get(s, 0)),
                     "selected_share": round(int(selected.get(s, 0)) / k, 4)}
            for s, c in zip(names, pool_counts, strict=True)}


def total_variation(mix: Mapping[str, Mapping[str, float]]) -> float:
    """Half the L1 distance between the subset's and the pool's source shares: 0 = the pool's mix, 1 = disjoint."""
    return round(0.5 * sum(abs(m["selected_share"] - m["pool_share"]) for m in mix.values()), 4)


def regime_record(regime: Regime | None, mix: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """The JSON record of one selection's regime: the source mix for every selector, the selector's own
    regime where it reports one."""
    record: dict[str, Any] = {"source_mix": dict(mix), "source_mix_tv": total_variation(mix)}
    if isinstance(regime, Regime):
        record["selector"] = asdict(regime)
    elif regime is not None:
        raise TypeError(f"Selection.regime must be a Regime (s2lbench.selection.regime), got {type(regime).__name__}")
    return record


def regime_warnings(record: Mapping[str, Any] | None) -> list[str]:
    return list(((record or {}).get("selector") or {}).get("warnings") or [])


def largest_shift(record: Mapping[str, Any]) -> str | None:
    """The source whose share moved most, subset vs pool: ``"word_add_cot: 18.2% vs 12.2%"``; None without a mix
    or with one source (nothing can move)."""
    mix = record.get("source_mix") or {}
    if len(mix) < 2:
        return None
    shifted = max(mix, key=lambda s: (abs(mix[s]["selected_share"] - mix[s]["pool_share"]), s))
    m = mix[shifted]
    return f"{shifted}: {100 * m['selected_share']:.1f}% vs {100 * m['pool_share']:.1f}%"


def mix_distance(record: Mapping[str, Any]) -> float | None:
    """The record's total variation between the subset's and the pool's source mix; None without a mix."""
    mix = record.get("source_mix") or {}
    return float(record.get("source_mix_tv", total_variation(mix))) if mix else None


def describe(record: Mapping[str, Any]) -> str:
    """One line: the selector's summary (if any) and how far the subset's source mix is from the pool's."""
    parts = []
    own = record.get("selector") or {}
    if own.get("summary"):
        parts.append(str(own["summary"]))
    shift = largest_shift(record)
    if shift is not None:
        parts.append(f"source mix vs pool: total variation {mix_distance(record):.3f} (largest shift {shift})")
    return "; ".join(parts)


# ------------------------------------------------------------------------------------ S2L's regime
def clustered_regime(diagnostics: Mapping[str, Any], n_clusters: int | None) -> Regime:
    """The regime of S2L's rule from ``clustered_selection``'s diagnostics (``sources``: per source its pool
    rows, budget, clusters and the picks of each cluster). Sources taken whole or with no budget were not clustered
    and are left out. ``n_clusters``: the K asked for; None when K follows each source's size
    (``rows_per_cluster``), and the summary then shows the range of K the sources got."""
    per_source = {name: info for name, info in (diagnostics.get("sources") or {}).items() if "clusters" in info}
    ks = sorted({int(info["clusters"]) for info in per_source.values()})
    k: int | str = n_clusters if n_clusters is not None else \
        "per source" if not ks else str(ks[0]) if len(ks) == 1 else f"{ks[0]}-{ks[-1]} by source"
    facts: dict[str, Any] = {"K": k, "balance_sources": bool(diagnostics.get("balance_sources")),
                             "clustered_sources": len(per_source),
                             "paper_picks_per_cluster": PAPER_PICKS_PER_CLUSTER,
                             "paper_rows_per_cluster": PAPER_ROWS_PER_CLUSTER}
    if not per_source:
        return Regime(f"K={k}, no source was clustered (each taken whole or not at all)", facts)
    rows = {name: info["pool"] / info["clusters"] for name, info in per_source.items()}
    picks = {name: info["budget"] / info["clusters"] for name, info in per_source.items()}
    clusters = sum(int(info["clusters"]) for info in per_source.values())
    picked = sum(int(np.count_nonzero(info.get("cluster_picks") or [])) for info in per_source.values())
    thin = sorted(name for name, info in per_source.items() if info["budget"] < info["clusters"])
    facts.update({"pool_rows_per_cluster": round(float(np.mean(list(rows.values()))), 3),
                  "picks_per_cluster": {name: round(v, 3) for name, v in sorted(picks.items())},
                  "clusters": clusters, "clusters_picked": picked,
                  "clusters_picked_share": round(picked / clusters, 4), "thin_sources": thin})
    low, high = min(picks.values()), max(picks.values())
    per = f"{low:.2g}" if abs(high - low) < 0.005 else f"{low:.2g}-{high:.2g}"
    scope = "per source" if facts["balance_sources"] else "(one group: no source balancing)"
    summary = (f"K={k}, {facts['pool_rows_per_cluster']:.3g} pool rows per cluster, {per} picks per cluster "
               f"{scope}, {100 * facts['clusters_picked_share']:.0f}% of clusters picked")
    warnings = [thin_quota_warning(len(thin), len(per_source), k, low)] if thin else []
    return Regime(summary, facts, warnings)


def thin_quota_warning(thin: int, groups: int, n_clusters: int | str, picks_per_cluster: float) -> str:
    """What a per-source quota below K means, in the words the run summary and the board use."""
    return (f"cluster balancing is inactive: {thin} of {groups} source group(s) get fewer picks than K={n_clusters} "
            f"clusters (down to {picks_per_cluster:.2g} per cluster), so S2L's rule takes one row from some clusters and "
            f"none from the rest (the smallest first go empty), close to a random draw inside the source; the "
            f"paper's regime has ~{PAPER_PICKS_PER_CLUSTER} picks per cluster")
