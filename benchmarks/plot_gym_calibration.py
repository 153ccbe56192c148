"""Draw and tabulate gym calibration runs side by side: the full pool's final exact match per test set, mean and
std over training seeds, one group of bars per run (a model size, a learning rate, a recipe).

Each input is what ``benchmarks/bench_gym_calibration.py`` produced: its ``--json`` file, or the log it printed
(the ``CALIBRATION {...}`` block at its end). Calibration looks at the full pool and random subsets only, so
this reads exactly those runs (``target_full_seed*``; ``--subset`` adds ``target_random_*``).

  python benchmarks/plot_gym_calibration.py /tmp/probe-l.log /tmp/probe-xl.log --out docs/gym-size-probe.png

prints a Markdown table (mean ± std per set, seeds in brackets) and writes the PNG, with the goals of issue #15
drawn as lines (70 % in-domain, 20 % out-of-domain).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

IN_DOMAIN_GOAL, OUT_OF_DOMAIN_GOAL = 70.0, 20.0
IN_DOMAIN = "in-domain"


@dataclass
class RunSummary:
    label: str
    #: test set (and "in-domain", the mean of the in-domain sets) -> final exact match % of each seed
    scores: dict[str, list[float]]
    seconds: list[float]
    #: test set -> in-domain? (the run's ``test_sets``; older outputs lack it: then ``ood_*`` are out of domain)
    in_domain: dict[str, bool]


def read_calibration(path: Path) -> dict:
    """The figures of one calibration run: a JSON object, or the ``CALIBRATION`` block at the end of its log."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SystemExit(f"{path}: cannot read: {e.strerror or e}") from None
    if text.lstrip()[:1] in ("{", "["):
        body = text
    else:
        start = text.rfind("CALIBRATION ")
        if start < 0:
            raise SystemExit(f"{path}: no 'CALIBRATION {{...}}' block (did the run finish?) and not a JSON file")
        body = text[start + len("CALIBRATION "):]
    try:
        figures = json.loads(body)
    except json.JSONDecodeError as e:
        raise SystemExit(f"{path}: the calibration block is not valid JSON: {e.msg} (line {e.lineno})") from None
    if not isinstance(figures, dict):
        raise SystemExit(f"{path}: expected a JSON object of calibration figures, got {type(figures).__name__}")
    return figures


def summarise(figures: dict, path: Path, prefix: str = "target_full_seed") -> RunSummary:
    runs = {k: v for k, v in figures.items() if k.startswith(prefix) and isinstance(v, dict)}
    if not runs:
        raise SystemExit(f"{path}: no '{prefix}*' run in it")
    scores: dict[str, list[float]] = {}
    seconds = []
    for name, run in sorted(runs.items()):
        try:
            final = run["curve"][-1]
            per_set, in_domain = final["exact_match_%"], final["in_domain_mean_%"]
            seconds.append(float(run["wall_seconds"]))
        except (KeyError, IndexError, TypeError, ValueError):
            raise SystemExit(f"{path}: run {name!r} has no final checkpoint scores (curve[-1].exact_match_%, "
                             "in_domain_mean_%) or wall_seconds") from None
        scores.setdefault(IN_DOMAIN, []).append(float(in_domain))
        for test_set, value in per_set.items():
            scores.setdefault(test_set, []).append(float(value))
    args = figures.get("args", {})
    params = next(iter(runs.values())).get("params")
    label = (f"{args.get('target', '?')} ({params / 1e6:.1f}M)" if isinstance(params, (int, float))
             else str(args.get("target", "?")))
    label += f", lr {args.get('lr') or 'default'}, {figures.get('steps', '?')} steps"
    base = figures.get("base")
    if isinstance(base, dict) and isinstance(base.get("recipe"), dict):
        corpus = base["recipe"].get("corpus", {})
        label += (f", base {base['recipe'].get('steps', '?')} steps on {corpus.get('documents', '?')} docs"
                  + (" with compact facts" if corpus.get("compact_facts") else ""))
    seeds = sorted(int(tail) for tail in (name[len(prefix):] for name in runs) if tail.isdigit())
    if seeds:
        label += f", seeds {seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else f", seed {seeds[0]}"
    declared = figures.get("test_sets") if isinstance(figures.get("test_sets"), dict) else {}
    in_domain = {s: bool(declared.get(s, not s.startswith("ood_"))) for s in scores if s != IN_DOMAIN}
    return RunSummary(label, scores, seconds, in_domain)


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def markdown_table(runs: list[RunSummary], sets: list[str]) -> str:
    lines = ["| run | SFT wall (s, per seed) | " + " | ".join(sets) + " |",
             "| --- | --- | " + " | ".join("---" for _ in sets) + " |"]
    for run in runs:
        cells = []
        for test_set in sets:
            values = run.scores.get(test_set)
            if not values:
                cells.append("")
                continue
            mean, std = _mean_std(values)
            cells.append(f"{mean:.1f} ± {std:.1f} ({' / '.join(f'{v:g}' for v in values)})")
        wall = " / ".join(f"{s:.0f}" for s in run.seconds)
        lines.append(f"| {run.label} | {wall} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(runs: list[RunSummary], sets: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from s2lbench.common.atomic import atomic_path

    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(1.3 * len(sets) + 2, 4.2))
    for i, run in enumerate(runs):
        xs, means, stds = [], [], []
        for j, test_set in enumerate(sets):
            if run.scores.get(test_set):
                mean, std = _mean_std(run.scores[test_set])
                xs.append(j + (i - (len(runs) - 1) / 2) * width)
                means.append(mean)
                stds.append(std)
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=f"{run.label} ({len(run.seconds)} seeds)")
    ax.hlines(IN_DOMAIN_GOAL, -0.5, 0.5, color="k", ls="--", lw=1)
    ax.hlines(OUT_OF_DOMAIN_GOAL, 0.5, len(sets) - 0.5, color="k", ls=":", lw=1)
    ax.set_xlim(-0.5, len(sets) - 0.5)
    ax.set_xticks(range(len(sets)), sets, rotation=20)
    ax.set_ylabel("exact match, % (mean ± std over seeds)")
    ax.set_ylim(0, 100)
    ax.set_title("gym calibration, full pool (goals: 70 % in-domain, 20 % on two out-of-domain sets)", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", type=Path, help="bench_gym_calibration.py --json files or logs")
    parser.add_argument("--out", type=Path, help="write the figure here (PNG)")
    parser.add_argument("--subset", action="store_true", help="the random-subset runs instead of the full pool's")
    args = parser.parse_args(argv)
    prefix = "target_random_" if args.subset else "target_full_seed"
    runs = [summarise(read_calibration(p), p, prefix) for p in args.inputs]
    in_domain_sets = sorted({s for r in runs for s, inside in r.in_domain.items() if inside})
    out_of_domain = sorted({s for r in runs for s, inside in r.in_domain.items() if not inside})
    sets = [IN_DOMAIN, *in_domain_sets, *out_of_domain]
    print(markdown_table(runs, sets))
    if args.out:
        plot(runs, [IN_DOMAIN, *out_of_domain], args.out)
        print(f"figure: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
