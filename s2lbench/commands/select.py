"""`s2lbench select`: run one selector on a pool from cached signals."""

from __future__ import annotations

import argparse
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
