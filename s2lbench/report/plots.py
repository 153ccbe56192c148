"""The leaderboard's figures as PNG files (matplotlib, Agg backend, no display needed).

- :func:`plot_scaling`: accuracy vs budget per selector with seed error bars and the full-data line
  (the paper's Fig. 4);
- :func:`plot_trajectory_clusters`: member and mean loss curves of a sample of S2L's trajectory clusters
  (the paper's Fig. 2);
- :func:`plot_source_mix`: the share of each data source in each selected subset.

Selection diagnostics are read from ``<results>/selections/<key>/diagnostics.json``: ``selector``,
``budget``, ``seed`` and ``target`` (when known) label a subset, ``source_mix`` (``{source: count}``) gives its
mix, and an S2L run may add ``cluster_labels`` (one cluster id per pool example) or ``cluster_labels_path``
plus ``trajectories_path`` (``.npy`` files, relative to that diagnostics folder or absolute).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from s2lbench.common.atomic import atomic_path
from s2lbench.common.files import read_json
from s2lbench.errors import DataError
from s2lbench.evaluation.references import is_untrained_reference
from s2lbench.report.compute import UNRECORDED, compute_series
from s2lbench.report.leaderboard import build_leaderboard
from s2lbench.results.store import FULL
from s2lbench.selection.clustering import kmeans
from s2lbench.signals.signalset import load_matrix

log = logging.getLogger(__name__)

SELECTIONS_DIR = "selections"
CELLS_DIR = "cells"
STAGES_SELECTION_DIR = "stages/selection"
STAGES_SIGNALS_DIR = "stages/signals"
DIAGNOSTICS_FILE = "diagnostics.json"
CLUSTER_LABELS_FILE = "cluster_labels.npy"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_png: str | Path) -> Path:
    out_png = Path(out_png)
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
        tmp.chmod(0o644)  # mkstemp makes 0600 files; figures are meant to be shared
    _pyplot().close(fig)
    return out_png


# --------------------------------------------------------------------------------------------- scaling
@dataclass
class ScalingPanel:
    """One target's scaling curves: per selector ``[(budget, mean, std)]`` sorted by budget, display-scaled."""

    target: str
    column: str
    metric: str
    series: dict[str, list[tuple[int, float, float]]]
    reference: list[tuple[int, float, float]]  # the full-data rows
    scale: float
    baseline: str
    #: untrained reference rows (``ref-NAME``): name -> mean score, drawn as horizontal lines
    floors: dict[str, float] = field(default_factory=dict)


def scaling_series(store_dir: str | Path, *, column: str = "avg", target: str | None = None,
                   metric: str | None = None, experiment: str | None = None) -> list[ScalingPanel]:
    """The numbers :func:`plot_scaling` draws: mean and std over seeds per selector and budget."""
    lb = build_leaderboard(store_dir, by="target", metric=metric, experiment=experiment, paired_tests=False)
    tables = [t for t in lb.tables if target is None or t.target == target]
    if not tables:
        raise DataError(f"no finished cells for target {target!r}", path=store_dir)
    panels = []
    for table in tables:
        col = next((c for c in table.columns if c.key == column), None)
        if col is None and column == "avg" and len(table.columns) == 1:  # one task: its column is the average
            col = table.columns[0]
        if col is None:
            raise DataError(f"no column {column!r} for target {table.target}; have "
                            f"{', '.join(c.key for c in table.columns)}", path=store_dir)
        series: dict[str, list[tuple[int, float, float]]] = {}
        reference = []
        floors: dict[str, float] = {}
        for row in table.rows:
            s = row.cells[col.key].summary
            if s is None:
                continue
            point = (row.budget, s.mean * lb.scale, (s.std or 0.0) * lb.scale)
            if is_untrained_reference(row.selector):
                floors.setdefault(row.selector, point[1])
                continue
            (reference if row.is_reference else series.setdefault(row.selector, [])).append(point)
        panels.append(ScalingPanel(table.target, col.label if col.key != "avg" else "average over the sets above the floor",
                                   col.metric.split("+")[0], {k: sorted(v) for k, v in sorted(series.items())},
                                   reference, lb.scale, lb.baseline, floors))
    return panels


def plot_scaling(store_dir: str | Path, out_png: str | Path, *, column: str = "avg", target: str | None = None,
                 metric: str | None = None, experiment: str | None = None) -> Path:
    """Score vs budget per selector (mean ± std over seeds), with the full-data reference as a line and band.

    ``column`` is a task name or ``avg`` (the mean over tasks, the leaderboard's average column); with several
    targets there is one panel per target unless ``target`` picks one.
    """
    panels = scaling_series(store_dir, column=column, target=target, metric=metric, experiment=experiment)
    plt = _pyplot()
    selectors = sorted({name for panel in panels for name in panel.series})
    cmap = plt.get_cmap("tab10" if len(selectors) <= 10 else "tab20")
    style = {name: (cmap(i % cmap.N), "osD^v<>pX*hP"[i % 12]) for i, name in enumerate(selectors)}
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels) + 1.6, 4.6), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        series, reference = panel.series, panel.reference
        n = len(series)
        for i, (selector, points) in enumerate(series.items()):
            xs, ys, es = zip(*points, strict=True)
            dodge = 1 + 0.012 * (i - (n - 1) / 2)  # multiplicative, so it works on a log axis too
            color, marker = style[selector]
            is_baseline = selector == panel.baseline
            ax.errorbar([x * dodge for x in xs], ys, yerr=es, marker=marker, capsize=3, markersize=5,
                        linewidth=2.2 if is_baseline or selector.startswith("s2l") else 1.3,
                        color="black" if is_baseline else color, label=selector,
                        linestyle="--" if is_baseline else "-", alpha=0.9)
        budgets = sorted({p[0] for pts in series.values() for p in pts})
        if reference:
            mean = float(np.mean([p[1] for p in reference]))
            std = float(np.mean([p[2] for p in reference]))
            ax.axhline(mean, color="dimgray", linewidth=1.4, linestyle=":", label=f"full data ({reference[0][0]})")
            if std > 0:
                ax.axhspan(mean - std, mean + std, color="gray", alpha=0.12)
        for i, (name, value) in enumerate(sorted(panel.floors.items())):
            ax.axhline(value, color="firebrick", linewidth=1.2, linestyle=("--", "-.", ":")[i % 3], alpha=0.8,
                       label=f"{name} (no training)")
        if len(budgets) > 1 and budgets[-1] / max(budgets[0], 1) >= 8:
            ax.set_xscale("log")
        if budgets:
            ax.set_xticks(budgets, [str(b) for b in budgets])
            ax.minorticks_off()
        if len(budgets) == 1:  # autoscaling would stretch the few-percent dodge across the whole axis
            ax.set_xlim(budgets[0] / 1.25, budgets[0] * 1.25)
        unit = " (%)" if panel.scale == 100.0 else ""
        ax.set_xlabel("selected training examples (budget)")
        ax.set_ylabel(f"{panel.metric}{unit}, {panel.column}")
        ax.set_title(f"Data scaling on target {panel.target}")
        ax.grid(alpha=0.3)
    handles, labels = {}, {}
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    labels = list(handles)
    fig.legend([handles[k] for k in labels], labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
               title="selector")
    fig.tight_layout()
    fig.text(0.5, -0.03, "mean ± std over seeds (points dodged sideways); dotted line and band: full-data "
             "reference", ha="center", fontsize=8)
    return _save(fig, out_png)


# -------------------------------------------------------------------------------- trajectory clusters
def plot_trajectory_clusters(trajectories: np.ndarray, labels: np.ndarray, out_png: str | Path, *,
                             n_clusters: int = 6, members_per_cluster: int = 25, steps: Sequence[int] | None = None,
                             seed: int = 0, title: str = "Loss trajectories of a sample of S2L clusters") -> Path:
    """A panel per sampled cluster: thin member curves and the bold mean loss curve over checkpoints."""
    traj = np.asarray(trajectories, dtype=float)
    labels = np.asarray(labels).ravel()
    if traj.ndim != 2 or traj.shape[0] != labels.shape[0]:
        raise DataError(f"trajectories {traj.shape} and labels {labels.shape} do not match "
                        "(expected examples x checkpoints and one label per example)")
    if steps is not None and len(steps) != traj.shape[1]:
        raise DataError(f"{len(steps)} checkpoint steps for {traj.shape[1]} trajectory columns")
    xs = np.asarray(steps) if steps is not None else np.arange(1, traj.shape[1] + 1)
    rng = np.random.default_rng(seed)
    clusters = np.unique(labels)
    picked = rng.choice(clusters, size=min(n_clusters, clusters.size), replace=False)
    means = {int(c): traj[labels == c].mean(axis=0) for c in picked}
    picked = sorted(means, key=lambda c: means[c][-1])  # easiest (lowest final loss) first
    ncols = min(3, len(picked))
    nrows = math.ceil(len(picked) / ncols)
    plt = _pyplot()
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), sharex=True, sharey=True,
                             squeeze=False)
    for ax, c in zip(axes.ravel(), picked, strict=False):
        members = np.flatnonzero(labels == c)
        shown = rng.choice(members, size=min(members_per_cluster, members.size), replace=False)
        for i in shown:
            ax.plot(xs, traj[i], color="tab:blue", alpha=0.25, linewidth=0.8)
        ax.plot(xs, means[c], color="tab:red", linewidth=2.4, label="cluster mean")
        ax.set_title(f"cluster {c} ({members.size} examples)", fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(picked):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("proxy checkpoint step" if steps is not None else "proxy checkpoint")
    for ax in axes[:, 0]:
        ax.set_ylabel("training loss")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{title}\n({len(picked)} of {clusters.size} clusters; thin lines: up to "
                 f"{members_per_cluster} members each)", fontsize=11)
    fig.tight_layout()
    return _save(fig, out_png)


# ----------------------------------------------------------------------------------------- source mix
def plot_source_mix(source_mix: Mapping[str, Mapping[str, int]], out_png: str | Path, *,
                    title: str = "Data-source mix of each selected subset") -> Path:
    """Horizontal stacked bars: each subset's share of every source, with the subset size on the right."""
    if not source_mix:
        raise DataError("no source mix to plot")
    sources = sorted({s for mix in source_mix.values() for s in mix})
    labels = list(source_mix)
    counts = np.asarray([[float(source_mix[k].get(s, 0)) for s in sources] for k in labels])
    totals = counts.sum(axis=1)
    shares = counts / np.where(totals == 0, 1, totals)[:, None]
    plt = _pyplot()
    cmap = plt.get_cmap("tab20" if len(sources) > 10 else "tab10")
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.38 * len(labels)))
    left = np.zeros(len(labels))
    ys = np.arange(len(labels))
    for j, source in enumerate(sources):
        ax.barh(ys, shares[:, j] * 100, left=left * 100, color=cmap(j % cmap.N), label=source, edgecolor="white",
                linewidth=0.5)
        left += shares[:, j]
    for y, total in zip(ys, totals, strict=True):
        ax.text(101, y, f"n={int(total)}", va="center", fontsize=8)
    ax.set_yticks(ys, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of the subset (%)")
    ax.set_title(title)
    ax.legend(title="source", fontsize=8, bbox_to_anchor=(1.1, 1), loc="upper left")
    return _save(fig, out_png)


# -------------------------------------------------------------------------------- reading diagnostics
def _diagnostics_files(results_dir: Path) -> list[Path]:
    patterns = (f"{SELECTIONS_DIR}/*/{DIAGNOSTICS_FILE}", f"{STAGES_SELECTION_DIR}/*/{DIAGNOSTICS_FILE}")
    return sorted(p for pattern in patterns for p in results_dir.glob(pattern))


def _runner_rows(results_dir: Path) -> dict[str, str] | None:
    """For a runner's results folder: ``{selection stage folder name: table row}`` of its finished cells.

    The stage cache may hold selections no cell of this store uses (an interrupted cell's, or another
    experiment's when output folders share one cache), and one selector may appear as several rows with
    different options; the cells say which selections belong here and under which row name.
    """
    files = sorted((results_dir / CELLS_DIR).glob("*.json"))
    if not files:
        return None
    rows = {}
    for path in files:
        record = read_json(path)
        selection_dir = (record.get("diagnostics") or {}).get("selection_dir")
        if selection_dir:
            rows[Path(selection_dir).name] = record["cell"]["selector"]
    return rows


def read_diagnostics(results_dir: str | Path) -> dict[str, dict[str, Any]]:
    """``{folder name: diagnostics}`` for the selections of a results folder: ``s2lbench select``'s folders,
    and the runner's selection stages that its finished cells used (``selector`` set to the cell's row)."""
    results_dir = Path(results_dir)
    rows = _runner_rows(results_dir)
    out = {}
    for path in _diagnostics_files(results_dir):
        is_stage = path.parent.parent.name == Path(STAGES_SELECTION_DIR).name
        if is_stage and rows is not None and path.parent.name not in rows:
            continue
        diag = {**read_json(path), "_dir": str(path.parent)}
        if is_stage and rows is not None:
            diag["selector"] = rows[path.parent.name]
        out[path.parent.name] = diag
    return out


def subset_label(key: str, diag: Mapping[str, Any]) -> str:
    if "selector" in diag and "budget" in diag:
        parts = [str(diag["selector"]), f"n={diag['budget']}"]
        if "seed" in diag:
            parts.append(f"seed {diag['seed']}")
        if diag.get("target"):
            parts.insert(0, str(diag["target"]))
        return " · ".join(parts)
    return key


def load_source_mixes(results_dir: str | Path, *, first_seed_only: bool = True) -> dict[str, dict[str, int]]:
    """Source mixes of the selected subsets, labelled ``selector · n=budget · seed s``; sorted by selector, budget.

    ``first_seed_only`` keeps one subset per (selector, budget): the lowest seed, so the figure stays legible.
    """
    diags = read_diagnostics(results_dir)
    chosen: dict[tuple, tuple[str, dict[str, Any]]] = {}
    for key, d in diags.items():
        if not isinstance(d.get("source_mix"), Mapping) or d.get("selector") == FULL:
            continue
        group = (d.get("selector", key), d.get("budget", 0), d.get("target") or "")
        group_key = group if first_seed_only else (*group, d.get("seed", 0), key)
        if group_key not in chosen or d.get("seed", 0) < chosen[group_key][1].get("seed", 0):
            chosen[group_key] = (key, d)
    ordered = sorted(chosen.items(), key=lambda kv: (str(kv[0][2]), str(kv[0][0]), kv[0][1]))
    return {subset_label(k, d): {str(s): int(n) for s, n in d["source_mix"].items()} for _, (k, d) in ordered}


def _resolve(diag_dir: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else diag_dir / p


def _find_trajectories(results_dir: Path, n_examples: int) -> tuple[Path, list[int] | None] | None:
    """The first ``stages/signals/*/trajectories.npy`` with one row per pool example, and its checkpoint steps."""
    for path in sorted(results_dir.glob(f"{STAGES_SIGNALS_DIR}/*/trajectories.npy")):
        if np.load(path, mmap_mode="r").shape[0] != n_examples:
            continue
        manifest = path.parent / "manifest.json"
        steps = json.loads(manifest.read_text()).get("checkpoint_steps") if manifest.exists() else None
        return path, steps
    return None


def load_clusters(results_dir: str | Path, *, recluster: bool = True
                  ) -> tuple[np.ndarray, np.ndarray, list[int] | None] | None:
    """(trajectories, cluster labels, checkpoint steps) from the first selection that saved cluster labels.

    Labels: ``cluster_labels`` in the diagnostics, or the ``cluster_labels_path`` / ``cluster_labels.npy`` file
    beside them. Trajectories: ``trajectories_path`` in the diagnostics, else the results folder's
    ``stages/signals/*/trajectories.npy`` with as many rows as there are labels. When no selection saved
    labels but an S2L selection and its trajectories exist (and ``recluster``), the trajectories are clustered
    again for the figure with S2L's k-means (its ``n_clusters`` and ``n_iter`` options, over the whole pool
    rather than per source).
    """
    root = Path(results_dir)
    diagnostics = read_diagnostics(root)
    for _key, d in diagnostics.items():
        if not str(d.get("selector", "")).startswith("s2l"):
            continue  # other clusterers (embedding clustering) label embeddings, not loss trajectories
        diag_dir = Path(d["_dir"])
        labels = d.get("cluster_labels")
        if labels is None:
            path = _resolve(diag_dir, d.get("cluster_labels_path") or CLUSTER_LABELS_FILE)
            labels = np.load(path, allow_pickle=False) if path.exists() else None
        if labels is None:
            continue
        labels = np.asarray(labels).ravel()
        steps = d.get("checkpoint_steps")
        if d.get("trajectories_path"):
            traj_path = _resolve(diag_dir, d["trajectories_path"])
        else:
            found = _find_trajectories(root, labels.size)
            if found is None:
                log.warning("%s has cluster labels but no matching trajectories.npy was found", diag_dir)
                continue
            traj_path, steps = found[0], steps or found[1]
        traj = load_matrix(traj_path)
        if steps is not None and len(steps) != traj.shape[1]:
            steps = None
        return traj, labels, steps
    s2l = [d for d in diagnostics.values() if str(d.get("selector", "")).startswith("s2l")]
    if not recluster or not s2l:
        return None
    d = min(s2l, key=lambda d: (d.get("seed", 0), d.get("budget", 0)))
    pool_size = sum((d.get("pool_source_mix") or {}).values())
    found = _find_trajectories(root, pool_size) if pool_size else None
    if found is None:
        return None
    traj = load_matrix(found[0])
    options = d.get("options") or {}
    log.info("re-clustering %s for the trajectory-cluster figure (no saved cluster labels)", found[0])
    result = kmeans(traj, int(options.get("n_clusters", 100)), n_iter=int(options.get("n_iter", 20)),
                    seed=int(d.get("seed", 0)))
    steps = found[1] if found[1] is not None and len(found[1]) == traj.shape[1] else None
    return traj, result.labels, steps


# --------------------------------------------------------------------------------------------- transfer
def plot_transfer(pair, out_png: str | Path, *, scale: float = 100.0) -> Path:
    """Score on the smaller target (x) vs the larger (y): one point per selector x budget, one colour per
    budget, the diagonal for reference; the title carries Kendall's tau per budget (``s2lbench.report.transfer``)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    values = []
    for k, b in enumerate(pair.budgets):
        xs = [v * scale for v in b.small_scores]
        ys = [v * scale for v in b.large_scores]
        values += xs + ys
        tau = "n/a" if b.tau is None else f"{b.tau:+.2f}"
        accuracy = "" if b.decision_accuracy is None else f", decision acc. {b.decision_accuracy:.0%}"
        ax.scatter(xs, ys, color=colours[k % len(colours)], label=f"budget {b.budget} (tau {tau}{accuracy})",
                   zorder=3)
        for name, x, y in zip(b.selectors, xs, ys, strict=True):
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    if values:
        low, high = min(values), max(values)
        pad = (high - low) * 0.05 or 1.0
        ax.plot([low - pad, high + pad], [low - pad, high + pad], color="0.7", linestyle="--", linewidth=1, zorder=1)
    ax.set_xlabel(f"score on {pair.small}")
    ax.set_ylabel(f"score on {pair.large}")
    agree, total = pair.best_agrees
    accuracies = [b.decision_accuracy for b in pair.budgets if b.decision_accuracy is not None]
    overall = f"; decision accuracy {np.mean(accuracies):.0%}" if accuracies else ""
    ax.set_title(f"{pair.small} -> {pair.large}: best selector agrees at {agree}/{total} budget(s){overall}",
                 fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, out_png)


# ---------------------------------------------------------------------------------------------- compute
def plot_compute(store_dir: str | Path, out_png: str | Path, *, column: str = "avg", metric: str | None = None,
                 experiment: str | None = None) -> Path:
    """Score against total compute (selection + fine-tune FLOPs as recorded), one point per board row (mean ±
    std over seeds), budgets of a selector joined; the full-data reference is a star. See report/compute.py."""
    panels = compute_series(store_dir, column=column, metric=metric, experiment=experiment)
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels) + 1.6, 4.6), squeeze=False)
    selectors = sorted({p.selector for panel in panels for p in panel.points if not p.is_reference})
    cmap = plt.get_cmap("tab10" if len(selectors) <= 10 else "tab20")
    style = {name: (cmap(i % cmap.N), "osD^v<>pX*hP"[i % 12]) for i, name in enumerate(selectors)}
    for ax, panel in zip(axes[0], panels, strict=True):
        for selector in selectors:
            points = sorted((p for p in panel.points if p.selector == selector), key=lambda p: p.flops)
            if points:
                color, marker = style[selector]
                ax.errorbar([p.flops for p in points], [p.mean for p in points], yerr=[p.std for p in points],
                            marker=marker, color=color, capsize=3, markersize=5, linewidth=1.3, label=selector)
        for p in (p for p in panel.points if p.is_reference):
            ax.errorbar([p.flops], [p.mean], yerr=[p.std], marker="*", markersize=12, color="dimgray",
                        linestyle="none", capsize=3, label="full data")
        ax.set_xscale("log")
        ax.set_xlabel("total compute per cell (FLOPs: proxy + signal pass + selection + fine-tune)")
        ax.set_ylabel(f"{panel.metric}{panel.unit}, {panel.column}")
        ax.set_title(f"Score vs compute on target {panel.target}")
        ax.grid(alpha=0.3, which="both")
    handles = {}
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    fig.legend(list(handles.values()), list(handles), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
               title="selector")
    fig.tight_layout()
    fig.text(0.5, -0.03, "mean ± std over seeds; FLOPs as recorded (not recorded, counted 0: "
             + ", ".join(UNRECORDED) + ")", ha="center", fontsize=8)
    return _save(fig, out_png)
