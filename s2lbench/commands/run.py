"""`s2lbench run CONFIG`, `s2lbench demo`, `s2lbench status DIR`: the grid runner's commands."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from importlib.resources import files
from pathlib import Path

from s2lbench.commands.base import Command
from s2lbench.common import console
from s2lbench.common.atomic import write_text
from s2lbench.common.typed import apply_overrides
from s2lbench.errors import DataError
from s2lbench.report.leaderboard import build_leaderboard, render
from s2lbench.results.store import DB_NAME, ResultsStore

log = logging.getLogger(__name__)

DEMO_CONFIG = "demo.yaml"


def run_experiment(config, out: Path, only: list[str] | None = None, dry_run: bool = False,
                   cost_options: dict | None = None, verify: bool = False, command: str = "run",
                   select_only: bool = False) -> int:
    if dry_run:
        from s2lbench.grid.preflight import preflight
        from s2lbench.grid.runner import Runner

        runner = Runner(config, out)
        return dry_run_report(runner, preflight(runner, only), cost_options or {}, only)
    from s2lbench.api.grid import run  # the Python API's run: the CLI only prints around it

    console.log_to(out, command)
    start = time.perf_counter()
    summary = run(config, out, only=only, verify=verify, select_only=select_only).summary
    elapsed = time.perf_counter() - start
    if select_only:
        console.say(f"\n{len(summary.done)} subsets selected, {len(summary.failed)} failed in {elapsed:.0f} s; "
                    f"in {out / 'stages' / 'selection'} (`s2lbench run` without --select-only fine-tunes on them)")
    else:
        skipped = f", {len(summary.skipped)} skipped (another process is running them)" if summary.skipped else ""
        console.say(f"\n{len(summary.done)} cells done, {len(summary.failed)} failed{skipped} in {elapsed:.0f} s; "
                    f"results in {out}")
    for cell_id, error in summary.failed.items():
        print(f"  FAILED {cell_id}: {error}", file=sys.stderr)
    if select_only:
        return 0 if summary.ok else 1
    print_regime_warnings(ResultsStore(out, read_only=True), config.name)
    paths = print_leaderboard(out)
    where = [("log", console.log_file()), ("results", out / DB_NAME), *paths]
    console.say("\n".join(f"  {name + ':':<12} {path}" for name, path in where if path is not None))
    return 0 if summary.ok else 1


def dry_run_report(runner, report, cost_options: dict, only: list[str] | None = None) -> int:
    """Validate everything a real run would (the preflight), list the grid, print the cost estimate. With
    ``only``, list the cells a real run with the same --only would run and estimate those."""
    from s2lbench.grid import cost
    from s2lbench.grid.experiment import chosen_by

    config = runner.config
    print(f"experiment {config.name!r} (config hash {runner.config_hash})")
    print(f"  pool: {config.pool.path}; proxy: {config.proxy.model}; targets: "
          f"{', '.join(t.name + '=' + t.model for t in config.targets)}")
    print(f"  selectors: {', '.join(s.row for s in config.selectors)}; budgets: {config.budgets}; "
          f"seeds: {config.seeds}; tasks: {', '.join(config.evaluation.tasks)}")
    print(f"  signals needed: {', '.join(sorted(runner.needed_signals())) or 'none'}")
    for note in report.notes:
        print(f"  note: {note}")
    print(f"  {len(report.cell_ids)} cells")
    if only:
        chosen = [c for c in report.cell_ids if chosen_by(c, only)]
        print(f"  --only {' '.join(only)}: {len(chosen)} of them would run: {', '.join(chosen) or 'none'}")
        print("  (the estimate below is theirs, plus the stages every cell shares)")
    print(cost.render(cost.estimate(runner, report, only=only, **cost_options)))
    if not report.ok:
        print(f"dry run FAILED: {len(report.problems)} problem(s); a real run would stop before its first stage:",
              file=sys.stderr)
        for problem in report.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    print("dry run OK: every input checked")
    return 0


def print_regime_warnings(store: ResultsStore, experiment: str) -> None:
    """The selections that ran outside their selector's regime (S2L with fewer picks than clusters, ...): the
    log said so once among thousands of lines; the summary says it again, with what it means."""
    from s2lbench.report.regime import WARNING_MARK, regime_warning_lines

    lines = regime_warning_lines(store.cells(experiment))
    if lines:
        print(f"\n{WARNING_MARK} selection regime (the board's footnote repeats it; docs/selectors.md says what to do):")
        for line in lines:
            print(f"  {line}")


def print_leaderboard(out: Path) -> list[tuple[str, Path | None]]:
    """Print the grid's table and write it with the data-scaling plot beside the results; (what, path) of
    each file written."""
    from s2lbench.report.plots import plot_scaling

    try:
        lb = build_leaderboard(out)
        text = render(lb, "md")
        write_text(out / "leaderboard.md", text)
    except Exception as e:  # the grid's results are stored; a table that fails to render must not hide that
        log.warning("could not render the leaderboard: %s: %s", type(e).__name__, e)
        return []
    print(text)
    written: list[tuple[str, Path | None]] = [("leaderboard", out / "leaderboard.md")]
    try:  # e.g. no average to draw when every test set is at the floor: the table above still says so
        written.append(("plot", plot_scaling(out, out / "scaling.png")))
    except Exception as e:
        log.warning("could not draw the scaling plot: %s: %s", type(e).__name__, e)
    return written


class RunCommand(Command):
    name = "run"
    help = "run an experiment grid: select, fine-tune, generate, score, store (resumable)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("config", help="experiment YAML (see configs/)")
        parser.add_argument("--out", default=None, help="output folder (default runs/<experiment name>)")
        parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                            help="override a config key, e.g. --set budgets=[0.1] --set targets.0.train.total_steps=50")
        parser.add_argument("--only", action="append", default=None, help="run only cells whose id contains this")
        parser.add_argument("--dry-run", action="store_true",
                            help="check every input (pool, test files, models, budgets, ...), list the grid and "
                                 "print a cost estimate; train nothing")
        parser.add_argument("--gpu", default=None, help="GPU class for the dry run's estimate (default A100-80GB; "
                                                         "A100-40GB, H100-80GB, H200, L40S, A10G, V100)")
        parser.add_argument("--mfu", type=float, default=None, help="training MFU for the estimate (default 0.40)")
        parser.add_argument("--generation-mfu", type=float, default=None,
                            help="generation MFU for the estimate (default 0.10: decoding is memory-bound)")
        parser.add_argument("--verify", action="store_true",
                            help="check every cached file's SHA-256 first (as `s2lbench verify`) and on each reuse, "
                                 "not only its size; damaged stages are moved aside and recomputed")
        parser.add_argument("--select-only", action="store_true",
                            help="select every cell's subset (proxy, signals, selection) and stop before any "
                                 "fine-tune: read the subsets first (s2lbench compare-subsets); a later run reuses them")

    def run(self, args: argparse.Namespace) -> int:
        from s2lbench.grid.experiment import load_experiment

        config = load_experiment(args.config, args.overrides)
        out = Path(args.out or f"runs/{config.name}")
        cost_options = {k: v for k, v in (("gpu", args.gpu), ("mfu", args.mfu),
                                          ("generation_mfu", args.generation_mfu)) if v is not None}
        return run_experiment(config, out, args.only, args.dry_run, cost_options, verify=args.verify,
                              select_only=args.select_only)


class DemoCommand(Command):
    name = "demo"
    help = "the embedded default: a small gym grid end to end on CPU (about 5 minutes), then its leaderboard"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
        parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
        parser.add_argument("--print-config", action="store_true", help="print the demo's config and exit")

    def run(self, args: argparse.Namespace) -> int:
        import yaml

        from s2lbench.grid.experiment import parse_experiment

        text = files("s2lbench").joinpath(DEMO_CONFIG).read_text(encoding="utf-8")
        if args.print_config:
            print(text)
            return 0
        config = parse_experiment(apply_overrides(yaml.safe_load(text), args.overrides), origin="demo")
        return run_experiment(config, Path(args.out), command="demo")


class StatusCommand(Command):
    name = "status"
    help = "show which cells of a results folder are done, running, interrupted, failed or pending"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dir", help="a results folder (the --out of `s2lbench run`)")
        parser.add_argument("--json", action="store_true")

    def run(self, args: argparse.Namespace) -> int:
        if not (Path(args.dir) / DB_NAME).exists():
            raise DataError("not a results folder (no results.sqlite)", path=args.dir)
        store = ResultsStore(args.dir, read_only=True)
        cells = [(c, store.shown_status(c)) for c in store.cells()]
        if args.json:
            print(json.dumps([{"cell_id": c.cell_id, "status": status, "error": c.error} for c, status in cells],
                             indent=2))
            return 0
        counts = {s: sum(status == s for _, status in cells) for s in ("done", "running", "interrupted", "failed",
                                                                        "pending")}
        print(", ".join(f"{n} {s}" for s, n in counts.items()) + f" ({len(cells)} cells)")
        if counts["interrupted"]:
            print("  interrupted: its run was stopped; rerun the same `s2lbench run` to resume it")
        width = max((len(c.cell_id) for c, _ in cells), default=0)
        for c, status in cells:
            extra = f"  {c.error}" if c.error else ""
            print(f"  {c.cell_id:<{width}}  {status}{extra}")
        return 0
