"""`s2lbench compare-subsets`: how selected subsets differ — overlap, planted defects, hardness for the proxy."""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

from s2lbench.commands.base import Command
from s2lbench.commands.select import check_selection_unit, diagnostics_path
from s2lbench.common.files import iter_jsonl
from s2lbench.errors import ConfigError, DataError
from s2lbench.gym.defects import defect_shares, read_defects
from s2lbench.results.store import FULL
from s2lbench.signals.signalset import LOSS, SignalSet


def read_subset_ids(path: str | Path) -> set[str]:
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path=path)
    ids: set[str] = set()
    for line_no, row in iter_jsonl(path):
        if "id" not in row:
            raise DataError("expected an object with an 'id'", path=path, line=line_no, field="id")
        ids.add(str(row["id"]))
    return ids


def read_subset_positions(path: str | Path, n_rows: int) -> np.ndarray:
    """The pool positions of a subset file (its ``position`` fields), checked against a pool of ``n_rows``."""
    path = Path(path)
    positions = []
    for line_no, row in iter_jsonl(path):
        pos = row.get("position")
        if not isinstance(pos, int) or not 0 <= pos < n_rows:
            raise DataError(f"expected a 'position' in [0, {n_rows}) (the signals have {n_rows} rows), "
                            f"got {pos!r}", path=path, line=line_no, field="position")
        positions.append(pos)
    return np.asarray(positions, dtype=np.int64)


def loss_profile(final_loss: np.ndarray, positions: np.ndarray) -> dict[str, float]:
    """How hard a subset is for the proxy: its mean final-checkpoint loss and its shares of the pool's
    hardest tenth and easiest quarter by that loss (a random subset has about 0.10 and 0.25)."""
    finite = np.isfinite(final_loss)
    hard, easy = np.quantile(final_loss[finite], [0.9, 0.25])
    picked = final_loss[positions]
    picked = picked[np.isfinite(picked)]
    n = max(picked.size, 1)
    return {"mean_final_loss": float(picked.mean()) if picked.size else float("nan"),
            "hardest_tenth": float((picked > hard).sum() / n), "easiest_quarter": float((picked <= easy).sum() / n)}


def jaccard(a: set[str], b: set[str]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def subset_files_of_run(results_dir: str | Path) -> dict[str, Path]:
    """``{label: selection.jsonl}`` for the subsets a runner's finished cells trained on, labelled by row,
    budget and seed; the full-data cells have no subset and are left out."""
    from s2lbench.report.plots import read_diagnostics, subset_label

    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise DataError("not a folder", path=results_dir)
    found = {}
    for key, diag in sorted(read_diagnostics(results_dir).items(),
                            key=lambda kv: (str(kv[1].get("selector")), kv[1].get("budget", 0),
                                            kv[1].get("seed", 0), kv[0])):
        path = Path(diag["_dir"]) / "selection.jsonl"
        if diag.get("selector") != FULL and path.exists():
            found[subset_label(key, diag)] = path
    if not found:
        raise DataError("no selected subsets here (is it a results folder with finished cells?)", path=results_dir)
    return found


def label_of_file(path: str | Path) -> str:
    """A subset file's label: selector, budget and seed from a runner stage's diagnostics beside it, else its
    file name (`s2lbench select` users name their files)."""
    from s2lbench.report.plots import subset_label

    path = Path(path)
    diag_file = path.with_name("diagnostics.json")  # a runner's selection stage
    if diag_file.exists():
        try:
            diag = json.loads(diag_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            diag = None
        if isinstance(diag, dict):
            return subset_label(path.stem, diag)
    return path.stem


class CompareSubsetsCommand(Command):
    name = "compare-subsets"
    help = "pairwise overlap (Jaccard) between selected subsets, and their defect shares on the gym"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("subsets", nargs="*", help="subset JSONL files written by `s2lbench select`")
        parser.add_argument("--run", default=None, metavar="RESULTS_DIR",
                            help="add the subsets a runner's finished cells trained on (`s2lbench run --out`)")
        parser.add_argument("--defects", default=None, metavar="DEFECTS_JSON",
                            help="a gym's defects.json: also print each subset's share of every planted defect")
        parser.add_argument("--signals", default=None, metavar="SIGNALS_DIR",
                            help="a signals folder of the same pool (`s2lbench signals`, or a runner's "
                                 "stages/signals/KEY): also print how hard each subset is for the proxy")
        parser.add_argument("--json", action="store_true", help="print a JSON object instead of tables")

    def run(self, args: argparse.Namespace) -> int:
        files: dict[str, Path] = {}
        for p in args.subsets:
            if diagnostics_path(p).exists():  # written by `s2lbench select`: its manifest must vouch for it
                check_selection_unit(p)
            label = label_of_file(p)
            files[label if label not in files else f"{label} ({p})"] = Path(p)
        if args.run:
            files.update(subset_files_of_run(args.run))
        if len(files) < (1 if args.defects or args.signals else 2):
            raise ConfigError("compare-subsets needs at least two subsets (or one with --defects or --signals)")
        subsets = {label: read_subset_ids(p) for label, p in files.items()}
        pairs = [{"a": a, "b": b, "size_a": len(subsets[a]), "size_b": len(subsets[b]),
                  "intersection": len(subsets[a] & subsets[b]), "jaccard": round(jaccard(subsets[a], subsets[b]), 4)}
                 for a, b in itertools.combinations(subsets, 2)]
        report: dict[str, Any] = {"files": {k: str(v) for k, v in files.items()},
                                  "sizes": {k: len(v) for k, v in subsets.items()}, "pairs": pairs}
        if args.defects:
            defects, pool = read_defects(args.defects)
            kinds = sorted(set(defects.values()))
            report["defect_shares"] = {k: {kind: round(v, 4) for kind, v in defect_shares(ids, defects, kinds).items()}
                                       for k, ids in subsets.items()}
            if pool and pool.get("rows"):
                rows = int(pool["rows"])
                counts = pool.get("defects") or {}
                report["pool_defect_shares"] = {kind: round(counts.get(kind, 0) / rows, 4) for kind in kinds}
                report["pool_defect_shares"]["clean"] = round(1 - sum(counts.get(k, 0) for k in kinds) / rows, 4)
        if args.signals:
            trajectories = SignalSet.from_dir(args.signals).get(LOSS)
            final = np.asarray(trajectories[:, -1], dtype=np.float64)
            report["loss_profile"] = {
                k: {m: round(v, 4) for m, v in loss_profile(final, read_subset_positions(p, final.size)).items()}
                for k, p in files.items()}
            report["pool_loss_profile"] = {m: round(v, 4) for m, v in
                                           loss_profile(final, np.arange(final.size)).items()}
        if args.json:
            print(json.dumps(report, indent=2))
            return 0
        labels = list(subsets)
        if len(labels) >= 2:
            self._print_jaccard(labels, subsets)
        if args.defects:
            self._print_table("defect share (%)", report["defect_shares"], report.get("pool_defect_shares"),
                              percent=True)
        if args.signals:
            self._print_table("proxy's final loss", report["loss_profile"], report["pool_loss_profile"],
                              percent=False)
        return 0

    @staticmethod
    def _print_jaccard(labels: list[str], subsets: dict[str, set[str]]) -> None:
        short = {lab: f"[{i + 1}]" for i, lab in enumerate(labels)}
        width = max(len(x) for x in labels) + 5
        print(" " * width + "  " + "  ".join(f"{short[lab]:>6}" for lab in labels))
        for lab in labels:
            cells = [f"{jaccard(subsets[lab], subsets[other]):6.3f}" for other in labels]
            print(f"{short[lab] + ' ' + lab:<{width}}  " + "  ".join(cells))
        print("(Jaccard = |A ∩ B| / |A ∪ B|; sizes: " + ", ".join(f"{short[lab]} {len(subsets[lab])}"
                                                               for lab in labels) + ")")

    @staticmethod
    def _print_table(title: str, rows: dict[str, dict[str, float]], pool: dict[str, float] | None, *,
                     percent: bool) -> None:
        kinds = list(next(iter(rows.values())))
        rows = {**rows, **({"whole pool": pool} if pool else {})}
        width = max(len(x) for x in [*rows, title])
        print()
        print(f"{title:<{width}}  " + "  ".join(f"{k[:15]:>15}" for k in kinds))
        for label, row in rows.items():
            print(f"{label:<{width}}  " + "  ".join(
                f"{100 * row[k]:15.1f}" if percent or k != "mean_final_loss" else f"{row[k]:15.3f}" for k in kinds))
        if not percent:
            print("(hardest_tenth / easiest_quarter: share of the subset in the pool's top 10% / bottom 25% by the "
                  "proxy's loss at its last checkpoint, in %)")
