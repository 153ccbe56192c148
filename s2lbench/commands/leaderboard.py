"""`s2lbench leaderboard DIR` (tables and figures from a results store) and `s2lbench regress DIR` (regression check)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from s2lbench.commands.base import Command, seed_type
from s2lbench.common.atomic import check_output_path, write_json, write_text
from s2lbench.errors import ConfigError, DataError
from s2lbench.report.leaderboard import (
    BASELINE,
    EXTENSIONS,
    FORMATS,
    GROUPINGS,
    build_leaderboard,
    mixed_precisions,
    provenance,
    render,
    training_environments,
)
from s2lbench.report.seed_variance import given_seed_sd, seed_sd_from_board
from s2lbench.report.stats import DEFAULT_BOOTSTRAP_SEED, DEFAULT_RESAMPLES
from s2lbench.results.export import export_results, open_results, withheld_tasks
from s2lbench.signals.signalset import load_matrix

log = logging.getLogger(__name__)


class LeaderboardCommand(Command):
    name = "leaderboard"
    help = "regenerate paper-style tables (and, with --plots, figures) from a results folder"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("results", help="a results folder: a run's (results.sqlite) or a board's committed "
                                            "export (leaderboards/<board>/results/)")
        parser.add_argument("--format", choices=FORMATS, default="md", help="table format (default md)")
        parser.add_argument("--by", choices=GROUPINGS, default=self.defaults["by"],
                            help="one table per target and budget (default), or one per target spanning budgets")
        parser.add_argument("--out", default=None, help="write the table here instead of printing it")
        parser.add_argument("--tables", default=None, metavar="DIR",
                            help="also write leaderboard.{md,tex,csv,html} and provenance.json into DIR, and what "
                                 "they are computed from into DIR/results/ (cells, scores, per-example samples as "
                                 "text), so `s2lbench leaderboard DIR/results --tables DIR` regenerates them")
        parser.add_argument("--plots", default=None, metavar="DIR",
                            help="write the figures (scaling, source mix, trajectory clusters) as PNGs into DIR")
        parser.add_argument("--metric", default=None,
                            help="metric to tabulate for every task (default: accuracy, else the task's first)")
        parser.add_argument("--baseline", default=self.defaults["baseline"], help=f"selector for the paired tests (default {BASELINE})")
        parser.add_argument("--resamples", type=int, default=self.defaults["resamples"],
                            help="bootstrap resamples of the --transfer table")
        parser.add_argument("--bootstrap-seed", type=seed_type, default=self.defaults["bootstrap_seed"],
                            help="seed of the --transfer table's bootstrap")
        seed_sd = parser.add_mutually_exclusive_group()
        seed_sd.add_argument("--seed-sd-from", default=None, metavar="CSV",
                             help="test rows with one seed using the pooled seed sd of another board's "
                                  "leaderboard.csv (several seeds); named in the footnote (default: no test)")
        seed_sd.add_argument("--seed-sd", type=float, default=None, metavar="SD",
                             help="test rows with one seed using this seed sd (metric units, 0.03 = 3 points)")
        parser.add_argument("--control", action="append", default=None, metavar="ROW",
                            help="an A/A control row (repeatable; default: the run's config lists the baseline "
                                 "selector under another label)")
        parser.add_argument("--experiment", default=None, help="only cells of this experiment name")
        parser.add_argument("--trajectories", default=None,
                            help="loss trajectories (.npy/.pt, examples x checkpoints) for the cluster figure")
        parser.add_argument("--clusters", default=None, help="cluster id per example (.npy) for the cluster figure")
        parser.add_argument("--transfer", action="store_true",
                            help="add the small-to-large transfer table (Kendall's tau between targets' selector "
                                 "rankings per budget) and its scatter figure(s)")
        parser.add_argument("--transfer-order", default=None, metavar="SMALL,LARGE,...",
                            help="targets from smallest to largest (default: by median fine-tune FLOPs)")

    defaults = {"by": "budget", "baseline": BASELINE, "resamples": DEFAULT_RESAMPLES,
                "bootstrap_seed": DEFAULT_BOOTSTRAP_SEED}

    def run(self, args: argparse.Namespace) -> int:
        if args.resamples < 100:
            raise ConfigError(f"--resamples {args.resamples}: use at least 100 for a 95% interval")

        if args.out is not None:  # every output checked before any work: nothing half-written on a bad path
            check_output_path(args.out)
        for folder in (args.tables, args.plots):
            if folder is not None:
                check_output_path(folder, kind="folder")
        # inputs read before anything is written: a bad matrix must not leave tables or figures half made
        given_clusters = _given_clusters(args) if args.plots else None
        seed_sd = (seed_sd_from_board(args.seed_sd_from) if args.seed_sd_from
                   else given_seed_sd(args.seed_sd) if args.seed_sd is not None else None)
        lb = build_leaderboard(args.results, by=args.by, metric=args.metric, baseline=args.baseline,
                               experiment=args.experiment, seed_sd=seed_sd, controls=args.control)
        warn_mixed_precisions(args.results, args.experiment)
        text = render(lb, args.format)
        if args.out:
            write_text(args.out, text)
            print(f"wrote {args.out}", file=sys.stderr)
        else:
            sys.stdout.write(text)
        if args.tables:  # provenance.json goes first and comes back last: tables without it are incomplete
            (Path(args.tables) / "provenance.json").unlink(missing_ok=True)
            for fmt in FORMATS:
                path = write_text(Path(args.tables) / f"leaderboard.{EXTENSIONS[fmt]}", render(lb, fmt))
                print(f"wrote {path}", file=sys.stderr)
            store = open_results(args.results)
            withheld = withheld_tasks(store)
            record = provenance(store, lb, portable_command(args, from_run=bool(withheld)))
            if withheld:
                record["results_withheld"] = (
                    f"{', '.join(withheld)}: per-example scores derive from data that may not be redistributed, "
                    "so no results/ is committed; rerun the grid on the data, then this command on its folder")
            path = write_json(Path(args.tables) / "provenance.json", record)
            print(f"wrote {path}", file=sys.stderr)
            exported = Path(args.tables) / RESULTS_SUBDIR
            if withheld:
                print(f"s2lbench: {', '.join(withheld)}: results/ not written (per-example scores of licensed "
                      "data stay with the run; provenance.json says so)", file=sys.stderr)
            elif Path(args.results).resolve() != exported.resolve():
                # what the tables are computed from, beside them: the board regenerates from the repository
                # the whole store, as provenance.json counts it (--experiment filters the tables, not the inputs)
                print(f"wrote {export_results(store, exported)}/", file=sys.stderr)
        if args.plots:
            for path in write_plots(args.results, Path(args.plots), lb, args, given_clusters):
                print(f"wrote {path}", file=sys.stderr)
        if args.transfer:
            write_transfer(args)
        return 0


#: where ``--tables DIR`` puts the export its tables are computed from
RESULTS_SUBDIR = "results"
#: the options that change what the tables say (paths and output choices do not)
TABLE_OPTIONS = ("by", "metric", "baseline", "resamples", "bootstrap_seed", "experiment", "transfer",
                 "transfer_order")


def portable_command(args: argparse.Namespace, from_run: bool = False) -> list[str]:
    """The command that regenerates the tables, for provenance.json: the board's own results/ as input and
    its folder as output, whatever folders this run read and wrote, so provenance carries no machine's paths
    and a regenerated board is byte-identical (``from_run``: the run's folder instead, where results/ is
    withheld)."""
    source = "<run>" if from_run else f"<tables>/{RESULTS_SUBDIR}"
    command = ["s2lbench", "leaderboard", source, "--tables", "<tables>"]
    for name in TABLE_OPTIONS:
        value = getattr(args, name)
        default = LeaderboardCommand.defaults.get(name)
        flag = f"--{name.replace('_', '-')}"
        if value is True:
            command.append(flag)
        elif value not in (None, False, default):
            command += [flag, str(value)]
    return command


def warn_mixed_precisions(results: str, experiment: str | None) -> None:
    mixed = mixed_precisions(training_environments(open_results(results).cells(experiment)))
    if mixed:
        print(f"s2lbench: warning: {results}: the targets trained in {' and '.join(mixed)} (`bf16: auto` on "
              "machines with and without native bf16): the same seed gives different models, so compare rows "
              "with care (provenance.json: training_environments)", file=sys.stderr)


def write_transfer(args: argparse.Namespace) -> None:
    """Print the transfer table; write transfer.{md,json} with --tables and one scatter per target pair into
    --plots (else the --tables folder; with neither, no scatter)."""
    from s2lbench.report.plots import plot_transfer
    from s2lbench.report.transfer import render_transfer_markdown, transfer_json, transfer_table

    order = [t.strip() for t in args.transfer_order.split(",")] if args.transfer_order else None
    pairs = transfer_table(args.results, metric=args.metric, experiment=args.experiment, order=order,
                           resamples=args.resamples, seed=args.bootstrap_seed)
    text = render_transfer_markdown(pairs)
    sys.stdout.write("\n" + text)
    if args.tables:
        for path in (write_text(Path(args.tables) / "transfer.md", text),
                     write_json(Path(args.tables) / "transfer.json", transfer_json(pairs))):
            print(f"wrote {path}", file=sys.stderr)
    # never into the results folder read (a run's, or a board's committed results/): --plots, else --tables
    folder = args.plots or args.tables
    if folder is None:
        if pairs:
            print("s2lbench: transfer scatter not drawn: give --plots DIR (or --tables DIR)", file=sys.stderr)
        return
    plots = Path(folder)
    for pair in pairs:
        path = plot_transfer(pair, plots / f"transfer-{pair.small}-vs-{pair.large}.png")
        print(f"wrote {path}", file=sys.stderr)


def _given_clusters(args: argparse.Namespace):
    """(trajectories, labels, None) from --trajectories and --clusters, or None when neither is given."""
    if not (args.trajectories or args.clusters):
        return None
    if not (args.trajectories and args.clusters):
        raise ConfigError("--trajectories and --clusters go together")
    import numpy as np

    return load_matrix(args.trajectories), np.load(args.clusters, allow_pickle=False), None


def write_plots(results: str, out_dir: Path, lb, args: argparse.Namespace, clusters=None) -> list[Path]:
    from s2lbench.report.plots import (
        load_clusters,
        load_source_mixes,
        plot_compute,
        plot_scaling,
        plot_source_mix,
        plot_trajectory_clusters,
    )

    written = []
    columns = {c.key for t in lb.tables for c in t.columns}
    if "avg" in columns:
        written.append(plot_scaling(results, out_dir / "scaling.png", metric=args.metric,
                                    experiment=args.experiment))
    try:
        written.append(plot_compute(results, out_dir / "compute.png", column="avg" if "avg" in columns
                                    else sorted(columns)[0], metric=args.metric, experiment=args.experiment))
    except DataError as e:  # stores written before fine-tunes recorded FLOPs
        log.warning("no compute figure: %s", e)
    for key in sorted(columns - {"avg"}):
        written.append(plot_scaling(results, out_dir / f"scaling-{key}.png", column=key, metric=args.metric,
                                    experiment=args.experiment))
    mixes = load_source_mixes(results)
    if mixes:
        written.append(plot_source_mix(mixes, out_dir / "source_mix.png"))
    else:
        log.warning("no selections/*/diagnostics.json with a source_mix under %s: no source-mix figure", results)
    if clusters is None:
        clusters = load_clusters(results)
    if clusters is not None:
        traj, labels, steps = clusters
        written.append(plot_trajectory_clusters(traj, labels, out_dir / "trajectory_clusters.png", steps=steps))
    else:
        log.warning("no cluster labels and trajectories found (pass --trajectories and --clusters): "
                    "no trajectory-cluster figure")
    return written


def _tolerance(value: float, flag: str) -> float:
    from s2lbench.report.regression import check_tolerance

    try:
        check_tolerance(value, flag)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return value


class RegressCommand(Command):
    name = "regress"
    help = "compare a results folder with a committed reference; exit 1 when a score or subset moved too far"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("results", help="a results folder (holds results.sqlite)")
        parser.add_argument("--reference", required=True, help="the reference snapshot (JSON)")
        parser.add_argument("--update", action="store_true",
                            help="rewrite the reference from this results folder (atomically) instead of comparing")
        parser.add_argument("--tolerance", type=float, default=None,
                            help="absolute score tolerance for every metric (default: the reference's, else 0.02)")
        parser.add_argument("--metric-tolerance", action="append", default=[], metavar="METRIC=TOL",
                            help="tolerance for one metric or task/metric (repeatable)")
        parser.add_argument("--experiment", default=None, help="only cells of this experiment name")

    def run(self, args: argparse.Namespace) -> int:
        from s2lbench.report.regression import (
            Tolerances,
            compare,
            failures,
            format_moves,
            load_reference,
            snapshot,
            write_reference,
        )

        if args.update:
            check_output_path(args.reference)
        current = snapshot(args.results, experiment=args.experiment)
        reference, tolerances = (load_reference(args.reference) if Path(args.reference).exists() or not args.update
                                 else ({}, Tolerances()))
        if args.tolerance is not None:
            tolerances.default = _tolerance(args.tolerance, "--tolerance")
        for item in args.metric_tolerance:
            metric, sep, value = item.partition("=")
            try:
                tolerances.per_metric[metric.strip()] = _tolerance(float(value), f"--metric-tolerance {item!r}")
            except ValueError:
                raise ConfigError(f"--metric-tolerance {item!r}: expected METRIC=NUMBER") from None
            if not sep or not metric.strip():
                raise ConfigError(f"--metric-tolerance {item!r}: expected METRIC=NUMBER")
        if args.update:
            write_reference(args.reference, current, tolerances)
            print(f"wrote {args.reference} ({len(current['cells'])} cells)")
            return 0
        moves = compare(current, reference, tolerances)
        bad = failures(moves)
        print(format_moves(moves))
        print(f"\n{len(current['cells'])} cells compared; {len(moves)} moved, {len(bad)} outside tolerance "
              f"(scores ±{tolerances.default:g} unless per-metric; subset hashes exact)")
        return 1 if bad else 0
