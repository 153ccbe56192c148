"""`s2lbench verify DIR`, `s2lbench du DIR`, `s2lbench gc DIR`: a run folder's cache checked, measured, pruned."""

from __future__ import annotations

import argparse
from pathlib import Path

from s2lbench.commands.base import Command
from s2lbench.errors import DataError


def _folder(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise DataError("folder not found", path=path)
    return path


class VerifyCommand(Command):
    name = "verify"
    help = ("check a run folder against its manifests (every stage file's SHA-256, shared cache included; "
            "generations; samples; the results database); damaged parts are moved aside for recompute")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dir", help="a run folder (the --out of `s2lbench run`) or a stage cache")
        parser.add_argument("--sizes-only", action="store_true",
                            help="check that each listed file exists with its size, not its hash (fast)")

    def run(self, args: argparse.Namespace) -> int:
        from s2lbench.grid.verify import verify_folder

        report = verify_folder(_folder(args.dir), deep=not args.sizes_only)
        for note in report.notes:
            print(f"note: {note}")
        for line in report.damaged:
            print(f"DAMAGED {line}")
        checked = ", ".join(f"{n} {kind}" for kind, n in report.checked.items()) or "nothing"
        verdict = "all intact" if report.ok else f"{len(report.damaged)} damaged (moved aside: rerun to recompute)"
        print(f"verified {checked}: {verdict}")
        return 0 if report.ok else 1


class DuCommand(Command):
    name = "du"
    help = "disk use of a run folder's stage cache by stage kind and by cell"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dir", help="a run folder (the --out of `s2lbench run`)")
        parser.add_argument("--cells", action="store_true", help="list every cell (default: the 10 largest)")

    def run(self, args: argparse.Namespace) -> int:
        from s2lbench.grid.disk import disk_usage, human, stages_root

        folder = _folder(args.dir)
        usage = disk_usage(folder)
        root = stages_root(folder)
        where = f" (a shared cache at {root.resolve()})" if root.is_symlink() else ""
        print(f"stage cache {root}{where}: {human(usage.total)}")
        for kind, size in sorted(usage.by_kind.items(), key=lambda kv: -kv[1]):
            print(f"  {kind:<16} {human(size):>11}  {usage.stages[kind]} stage(s)")
        if usage.corrupt:
            print(f"  of which moved aside as damaged (.corrupt-*): {human(usage.corrupt)}")
        if usage.unfinished:
            print(f"  of which unfinished (interrupted or running): {human(usage.unfinished)}")
        cells = sorted(usage.by_cell.items(), key=lambda kv: -kv[1])
        if cells:
            shown = cells if args.cells else cells[:10]
            print(f"by cell (its selection and fine-tune; {human(usage.shared)} shared by all or by no cell):")
            for cell_id, size in shown:
                print(f"  {cell_id:<40} {human(size):>11}")
            if len(shown) < len(cells):
                print(f"  ... {len(cells) - len(shown)} more (--cells lists them all)")
        return 0


class GcCommand(Command):
    name = "gc"
    help = ("remove stages no cell of the given configs references (default: the folder's own); "
            "a dry run unless --yes")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dir", help="a run folder (the --out of `s2lbench run`)")
        parser.add_argument("--config", action="append", default=[], metavar="C",
                            help="an experiment YAML whose stages to keep as well (repeatable); the folder's own "
                                 "grid is always kept")
        parser.add_argument("--yes", action="store_true", help="delete (default: only list what would go)")
        parser.add_argument("--include-corrupt", action="store_true",
                            help="also remove stages moved aside as damaged (.corrupt-*)")

    def run(self, args: argparse.Namespace) -> int:
        from s2lbench.grid.disk import collect, human, plan_gc, stages_root
        from s2lbench.grid.experiment import load_experiment

        folder = _folder(args.dir)
        root = stages_root(folder)
        if root.is_symlink() and not args.config:
            raise DataError(f"the stage cache is shared (a symlink to {root.resolve()}): name every config "
                            "that uses it with --config, or gc could remove another grid's stages", path=root)
        configs = [load_experiment(c) for c in args.config]
        plan = plan_gc(folder, configs, include_corrupt=args.include_corrupt)
        for kind, name, _, size in plan.remove:
            print(f"{'removing' if args.yes else 'would remove'} {kind}/{name} ({human(size)})")
        for name in plan.in_use:
            print(f"kept {name}: a running process holds its lock")
        if plan.corrupt_kept:
            print(f"kept {plan.corrupt_kept} stage(s) moved aside as damaged (--include-corrupt removes them)")
        if args.yes:
            freed = collect(root, plan)
            print(f"freed {human(freed)}; kept {plan.kept} referenced stage(s)")
        else:
            print(f"{len(plan.remove)} stage(s), {human(plan.bytes)} reclaimable; kept {plan.kept} referenced "
                  "stage(s). Dry run: --yes deletes.")
        return 0
