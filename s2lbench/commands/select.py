"""`s2lbench select` (run one selector on a pool from cached signals) and `s2lbench compare-subsets`."""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from s2lbench.commands.base import Command
from s2lbench.commands.data import add_pool_arguments, length_stats, open_pool_from_args
from s2lbench.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def diagnostics_path(out: str | Path) -> Path:
    """``subset.jsonl`` -> ``subset.diagnostics.json`` beside it."""
    out = Path(out)
    return out.with_name(out.name[: -len(out.suffix)] if out.suffix else out.name).with_suffix(".diagnostics.json")


def parse_option_pairs(pairs: list[str] | None) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in pairs or []:
        if "=" not in item:
            raise ConfigError(f"--option {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        options[key.strip()] = value.strip()
    return options


def source_mix(pool, positions: np.ndarray) -> dict[str, dict[str, float]]:
    """Per source: count and share in the pool and in the subset."""
    pool_counts = pool.source_counts()
    picked = np.asarray(pool.sources, dtype=object)[positions]
    sel_values, sel_counts = np.unique(picked.astype(str), return_counts=True) if len(picked) else ([], [])
    selected = dict(zip(sel_values, sel_counts.tolist() if len(picked) else [], strict=True))
    n, k = len(pool), max(1, len(positions))
    return {s: {"pool": c, "pool_share": round(c / n, 4), "selected": int(selected.get(s, 0)),
                "selected_share": round(selected.get(s, 0) / k, 4)} for s, c in pool_counts.items()}


def length_report(pool, positions: np.ndarray) -> dict[str, dict[str, dict[str, float]]]:
    """Character lengths of prompts (instruction + input) and outputs, pool vs subset."""
    prompt = np.array([len(ex.instruction) + len(ex.input) for ex in pool])
    output = np.array([len(ex.output) for ex in pool])
    return {"unit": "characters",
            "prompt": {"pool": length_stats(prompt.tolist()), "selected": length_stats(prompt[positions].tolist())},
            "output": {"pool": length_stats(output.tolist()), "selected": length_stats(output[positions].tolist())}}


def versions() -> dict[str, str]:
    import s2lbench

    found = {"s2lbench": s2lbench.__version__, "python": platform.python_version(), "numpy": np.__version__}
    try:
        import faiss

        found["faiss"] = faiss.__version__
    except ImportError:
        pass
    return found


def load_signals(args: argparse.Namespace, pool):
    from s2lbench.signalset import SignalSet

    if args.signals and args.trajectories:
        raise ConfigError("give either --signals DIR or --trajectories FILE, not both")
    if args.trajectories:
        return SignalSet.from_trajectories(args.trajectories), {"trajectories": str(args.trajectories)}
    if args.signals:
        signals = SignalSet.from_dir(args.signals)
        expected = signals.manifest.get("pool_fingerprint")
        if expected and expected != pool.fingerprint():
            raise DataError(f"signals were computed for pool {expected}, but this pool is {pool.fingerprint()}",
                            path=Path(args.signals) / "manifest.json")
        return signals, {"signals_dir": str(args.signals), "available": signals.available(),
                         "checkpoint_steps": signals.steps}
    return SignalSet(), {}


class SelectCommand(Command):
    name = "select"
    help = "select a subset of a pool with a registered selector, from cached signals"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--pool", required=True, help="the SFT pool: a .jsonl/.json/.csv file or hf://owner/name")
        add_pool_arguments(parser)
        parser.add_argument("--selector", required=True, help="a registered selector (see `s2lbench plugins`)")
        parser.add_argument("--budget", required=True, help="a count (1000) or a fraction of the pool (0.1, 10%%)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--signals", default=None, help="a signals folder written by `s2lbench signals`")
        parser.add_argument("--trajectories", default=None,
                            help="bring-your-own loss matrix (.npy/.pt, examples x checkpoints) instead of --signals")
        parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                            help="a selector option (repeatable); `s2lbench plugins` lists them")
        parser.add_argument("--out", required=True, help="output JSONL (id, position per line); diagnostics "
                            "go to OUT.diagnostics.json beside it")

    def run(self, args: argparse.Namespace) -> int:
        from s2lbench.atomic import save_npy, write_json, write_jsonl
        from s2lbench.plugins import get_hooks
        from s2lbench.selection import run_selector

        start = time.perf_counter()
        pool = open_pool_from_args(args.pool, args)
        selector_cls = get_hooks().selector(args.selector)
        signals, signal_info = load_signals(args, pool)
        options = parse_option_pairs(args.option)
        log.info("selecting %s of %d examples with %s", args.budget, len(pool), args.selector)
        result = run_selector(selector_cls, pool, args.budget, args.seed, signals=signals, options=options)
        positions = result.positions
        ids = pool.ids
        write_jsonl(args.out, ({"id": ids[int(p)], "position": int(p)} for p in positions))
        selector_diag = dict(result.diagnostics)
        labels = selector_diag.pop("labels", None)
        if labels is not None:
            labels_path = diagnostics_path(args.out).with_suffix("").with_suffix(".cluster_labels.npy")
            save_npy(labels_path, np.asarray(labels))
            selector_diag["cluster_labels_path"] = labels_path.name
        diagnostics: dict[str, Any] = {
            "provenance": {"pool": {"spec": str(args.pool), "name": pool.name, "rows": len(pool),
                                    "fingerprint": pool.fingerprint()},
                           "selector": selector_cls.name, "options": selector_diag.pop("options", {}),
                           "seed": int(args.seed), "budget_requested": str(args.budget),
                           "budget": int(selector_diag.pop("budget", len(positions))),
                           "signals": signal_info, "versions": versions()},
            "selection_seconds": selector_diag.pop("selection_seconds", None),
            "source_mix": source_mix(pool, positions),
            "lengths": length_report(pool, positions),
            "selector_diagnostics": selector_diag,
            "total_seconds": round(time.perf_counter() - start, 3),
        }
        out_diag = diagnostics_path(args.out)
        write_json(out_diag, diagnostics)
        print(f"selected {len(positions)} of {len(pool)} examples with {selector_cls.name} "
              f"in {diagnostics['selection_seconds']:.3f} s -> {args.out} (diagnostics: {out_diag})")
        balance = selector_diag.get("balance")
        if balance and "small_cluster_uplift" in balance:
            print(f"cluster balance: {balance['clusters']} clusters, picks entropy ratio "
                  f"{balance['picks_entropy_ratio']} (random {balance['random_entropy_ratio']}), "
                  f"small-cluster uplift {balance['small_cluster_uplift']}x random")
        return 0


def read_subset_ids(path: str | Path) -> set[str]:
    from s2lbench.data import iter_jsonl

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
    from s2lbench.data import iter_jsonl

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


def defect_shares(ids: set[str], defects: dict[str, str], kinds: list[str]) -> dict[str, float]:
    """Share of ``ids`` carrying each defect kind, plus ``clean`` (no defect)."""
    counts = dict.fromkeys(kinds, 0)
    for ex_id in ids:
        kind = defects.get(ex_id)
        if kind is not None:
            counts[kind] += 1
    n = max(len(ids), 1)
    shares = {kind: counts[kind] / n for kind in kinds}
    shares["clean"] = (len(ids) - sum(counts.values())) / n
    return shares


def read_defects(path: str | Path) -> tuple[dict[str, str], dict[str, Any] | None]:
    """``{example id: defect kind}`` from a gym's ``defects.json``, and the pool's row and defect counts
    from the ``gym.json`` beside it (None where there is none)."""
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path=path)
    try:
        defects = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON: {e}", path=path) from e
    if not isinstance(defects, dict) or not all(isinstance(v, str) for v in defects.values()):
        raise DataError("expected an object {example id: defect kind}", path=path)
    manifest = path.with_name("gym.json")
    pool = None
    if manifest.exists():
        pool = json.loads(manifest.read_text(encoding="utf-8")).get("pool")
    return {str(k): v for k, v in defects.items()}, pool


def subset_files_of_run(results_dir: str | Path) -> dict[str, Path]:
    """``{label: selection.jsonl}`` for the subsets a runner's finished cells trained on, labelled by row,
    budget and seed; the full-data cells have no subset and are left out."""
    from s2lbench.plots import read_diagnostics, subset_label
    from s2lbench.store import FULL

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
    from s2lbench.plots import subset_label

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
            from s2lbench.signalset import LOSS, SignalSet

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
            self._print_jaccard(labels, subsets, files)
        if args.defects:
            self._print_table("defect share (%)", report["defect_shares"], report.get("pool_defect_shares"),
                              percent=True)
        if args.signals:
            self._print_table("proxy's final loss", report["loss_profile"], report["pool_loss_profile"],
                              percent=False)
        return 0

    @staticmethod
    def _print_jaccard(labels: list[str], subsets: dict[str, set[str]], files: dict[str, Path]) -> None:
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
