"""`s2lbench select`: run one selector on a pool from cached signals."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from s2lbench.api.diagnostics import length_report, versions
from s2lbench.commands.base import Command, seed_type
from s2lbench.commands.data import add_pool_arguments, open_pool_from_args
from s2lbench.common import console
from s2lbench.common.atomic import (
    atomic_path,
    check_output_path,
    output_lock,
    save_npy,
    write_json,
    write_jsonl,
)
from s2lbench.common.files import read_json
from s2lbench.errors import ConfigError, DataError
from s2lbench.plugin_manager import get_hooks
from s2lbench.report.regime import WARNING_MARK
from s2lbench.selection import check_seed
from s2lbench.selection.regime import describe, regime_warnings
from s2lbench.signals.signalset import SignalSet

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


def load_signals(args: argparse.Namespace, pool):
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
        parser.add_argument("--seed", type=seed_type, default=0, help="selection seed, an integer >= 0 (default 0)")
        parser.add_argument("--check", action="store_true",
                            help="run the selector twice on the seed and refuse if the subsets differ")
        parser.add_argument("--signals", default=None, help="a signals folder written by `s2lbench signals`")
        parser.add_argument("--trajectories", default=None,
                            help="bring-your-own loss matrix (.npy/.pt, examples x checkpoints) instead of --signals")
        parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                            help="a selector option (repeatable); `s2lbench plugins` lists them")
        parser.add_argument("--out", required=True, help="output JSONL (id, position per line); diagnostics "
                            "go to OUT.diagnostics.json beside it")

    def run(self, args: argparse.Namespace) -> int:
        start = time.perf_counter()
        seed = check_seed(args.seed, "--seed")
        out = check_output_path(args.out)
        for sibling in (diagnostics_path(out), labels_path(out)):
            check_output_path(sibling)
        console.log_to(None, "select")  # nothing beside the selection file but what it writes
        from s2lbench.api.select import select  # the Python API's select: this command only reads and writes

        pool = open_pool_from_args(args.pool, args)
        selector_cls = get_hooks().selector(args.selector)
        signals, signal_info = load_signals(args, pool)
        options = parse_option_pairs(args.option)
        log.info("selecting %s of %d examples with %s", args.budget, len(pool), args.selector)
        with console.activity(f"select {args.budget} with {args.selector}", unit="examples"):
            result = select(pool, args.selector, args.budget, seed=seed, signals=signals, options=options,
                            check_determinism=args.check, report=None)
        if signals.nan_entries:
            print(f"note: the loss matrix has {signals.nan_entries} NaN entries; selectors that read "
                  "trajectories set them to 0, as the official S2L code does")
        positions = result.positions
        ids = pool.ids
        selector_diag = dict(result.diagnostics)
        labels = selector_diag.pop("labels", None)
        if labels is not None:
            selector_diag["cluster_labels_path"] = labels_path(out).name
        diagnostics: dict[str, Any] = {
            "provenance": {"pool": {"spec": str(args.pool), "name": pool.name, "rows": len(pool),
                                    "fingerprint": pool.fingerprint()},
                           "selector": selector_cls.name, "selector_version": selector_cls.version,
                           "options": selector_diag.pop("options", {}),
                           "seed": seed, "budget_requested": str(args.budget),
                           "budget": int(selector_diag.pop("budget", len(positions))),
                           "signals": signal_info, "versions": versions()},
            "selection_seconds": selector_diag.pop("selection_seconds", None),
            "source_mix": selector_diag["regime"]["source_mix"],
            "lengths": length_report(pool, positions),
            "selector_diagnostics": selector_diag,
            "determinism_checked": bool(args.check),
            "total_seconds": round(time.perf_counter() - start, 3),
        }
        rows = [{"id": ids[int(p)], "position": int(p)} for p in positions]
        write_selection(out, rows, diagnostics, None if labels is None else np.asarray(labels))
        out_diag = diagnostics_path(out)
        checked = " (determinism checked: two runs agree)" if args.check else ""
        print(f"selected {len(positions)} of {len(pool)} examples with {selector_cls.name} "
              f"in {diagnostics['selection_seconds']:.3f} s -> {args.out} (diagnostics: {out_diag}){checked}")
        print_regime(selector_diag["regime"])
        balance = selector_diag.get("balance")
        if balance and "small_cluster_uplift" in balance:
            print(f"cluster balance: {balance['clusters']} clusters, picks entropy ratio "
                  f"{balance['picks_entropy_ratio']} (random {balance['random_entropy_ratio']}), "
                  f"small-cluster uplift {balance['small_cluster_uplift']}x random")
        console.say(f"log: {console.log_file()}")
        return 0


def print_regime(record: dict[str, Any]) -> None:
    """The regime the selection ran in, and a warning where the selector ran outside its design."""
    described = describe(record)
    if described:  # a selector with no regime of its own on a one-source pool has nothing to say
        print(f"regime: {described}")
    for warning in regime_warnings(record):
        print(f"{WARNING_MARK} {warning} (docs/selectors.md: what you can do)")


def labels_path(out: str | Path) -> Path:
    """``subset.jsonl`` -> ``subset.cluster_labels.npy`` beside it."""
    return diagnostics_path(out).with_suffix("").with_suffix(".cluster_labels.npy")


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_selection(out: Path, rows: list[dict[str, Any]], diagnostics: dict[str, Any],
                    labels: np.ndarray | None) -> None:
    """Write a subset, its cluster labels and its diagnostics as one unit.

    The diagnostics file is the unit's manifest: it is removed first and written last, holding the sha256 of
    the subset (and labels) beside it, so after a kill at any instant either no diagnostics exist (the unit
    is incomplete) or they describe exactly the files beside them. A labels file left by an earlier run with
    another selector is removed. Concurrent writers of one ``--out`` take turns (a lock beside it)."""
    diag_path, lab_path = diagnostics_path(out), labels_path(out)
    with output_lock(out):
        with atomic_path(out) as tmp_subset:
            write_jsonl(tmp_subset, rows)
            files = {"subset": {"file": out.name, "sha256": _sha256(tmp_subset), "rows": len(rows)}}
            diag_path.unlink(missing_ok=True)
        if labels is not None:
            save_npy(lab_path, labels)
            files["cluster_labels"] = {"file": lab_path.name, "sha256": _sha256(lab_path)}
        else:
            lab_path.unlink(missing_ok=True)
        write_json(diag_path, {**diagnostics, "files": files})


def check_selection_unit(out: str | Path) -> dict[str, Any]:
    """The diagnostics of a subset written by ``s2lbench select``, checked to describe the files beside them."""
    out = Path(out)
    diag_path = diagnostics_path(out)
    if not diag_path.is_file():
        raise DataError(f"no {diag_path.name} beside it: the selection is incomplete (interrupted?); "
                        "rerun `s2lbench select`", path=out)
    diag = read_json(diag_path, "diagnostics file")
    for entry in (diag.get("files") or {}).values() if isinstance(diag, dict) else ():
        path = out.with_name(str(entry.get("file")))
        if not path.is_file() or _sha256(path) != entry.get("sha256"):
            raise DataError(f"{path.name} does not match its diagnostics (changed or half-written); "
                            "rerun `s2lbench select`", path=diag_path)
    return diag
