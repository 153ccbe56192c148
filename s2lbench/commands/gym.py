"""`s2lbench gym build --out DIR`: write the embedded benchmark's pool, test sets and tokenizer."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

from s2lbench.commands.base import Command, seed_type
from s2lbench.common import console
from s2lbench.common.atomic import atomic_dir, check_output_path
from s2lbench.common.files import read_json
from s2lbench.common.typed import from_dict
from s2lbench.errors import ConfigError, DataError
from s2lbench.gym import DefectRates, GymConfig, build_gym, pretrain_base
from s2lbench.gym.build import GymPaths
from s2lbench.pool.prompts import TEMPLATES


def level_weights_type(text: str) -> tuple[float, float, float]:
    """argparse type for --level-weights: three comma-separated non-negative numbers."""
    parts = text.split(",")
    try:
        weights = tuple(float(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers like 0.5,0.5,0, got {text!r}") from None
    if len(weights) != 3:
        raise argparse.ArgumentTypeError(f"expected three weights (1-, 2- and 3-digit operands), got {len(weights)}")
    return weights  # type: ignore[return-value]  # the range is GymConfig's check, named with its key


def _experiment_gym(path: str) -> dict:
    """The `pool.gym` settings of an experiment config whose pool is the gym."""
    from s2lbench.grid.experiment import load_experiment

    config = load_experiment(path)
    if config.pool.path != "gym":
        raise ConfigError(f"{path}: pool.path is {config.pool.path!r}, not the gym: there is no gym to build")
    return dict(config.pool.gym)


class GymCommand(Command):
    name = "gym"
    help = "the embedded synthetic benchmark (a MathInstruct-shaped pool that tiny models learn in minutes)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="gym_command", required=True)
        build = sub.add_parser("build", help="write pool.jsonl, tests/*.jsonl, tokenizer/ and gym.json")
        build.add_argument("--out", required=True, help="output folder")
        build.add_argument("--from-config", default=None, metavar="EXPERIMENT.yaml",
                           help="start from the gym an experiment config trains on (its pool.gym), e.g. "
                                "configs/gym.yaml: the same pool, tests and tokenizer its runs build; flags override")
        build.add_argument("--small", action="store_true", help="the small preset (2000 rows, 100 per test set)")
        build.add_argument("--version", type=int, default=None, help="gym design: 1 (default) or 2 (docs/gym.md)")
        build.add_argument("--dev-size", type=int, default=None, help="rows per dev/<set>.jsonl (default 100; 0: none)")
        build.add_argument("--size", type=int, default=None, help="pool rows (default 15000; small 2000)")
        build.add_argument("--test-size", type=int, default=None, help="rows per test set (default 300)")
        build.add_argument("--seed", type=seed_type, default=None, help="generator seed (default 0)")
        build.add_argument("--vocab-size", type=int, default=None, help="BPE vocabulary size (default 512)")
        build.add_argument("--level-weights", type=level_weights_type, default=None, metavar="W1,W2,W3",
                           help="weights of 1-, 2- and 3-digit operands (default 0.15,0.35,0.5; the v2 grid's "
                                "0.5,0.5,0)")
        build.add_argument("--template", default=None, choices=sorted(TEMPLATES),
                           help="prompt template the gym is trained and evaluated with (default: v1 alpaca, v2 qa)")
        build.add_argument("--tokenizer", default=None, choices=["pool", "shared"],
                           help="train the tokenizer on this pool (default) or on the version's shared reference "
                                "(v2: one tokenizer, and so one set of bases, for every pool)")
        build.add_argument("--defect", action="append", default=[], metavar="KIND=RATE",
                           help="override a defect rate, e.g. --defect wrong_answer=0.1 (kinds: wrong_answer, "
                                "near_duplicate, truncated, overlong, off_topic); repeatable")
        base = sub.add_parser("pretrain", help="pre-train a tiny model on the gym's corpus (a base for SFT)")
        base.add_argument("--gym", required=True, help="a gym build folder (its tokenizer/ is used)")
        base.add_argument("--model", required=True, help="a tiny config, e.g. gym-target-l")
        base.add_argument("--out", required=True, help="output model folder (with base.json)")
        base.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the gym's base recipe)")

    def run(self, args: argparse.Namespace) -> int:
        console.log_to(None, f"gym-{args.gym_command}")  # the gym folder appears whole or not at all
        if args.gym_command == "pretrain":
            return self._pretrain(args)
        return self._build(args)

    def _pretrain(self, args: argparse.Namespace) -> int:
        manifest = Path(args.gym) / "gym.json"
        if not manifest.is_file():
            raise DataError("not a gym build folder (no gym.json)", path=args.gym)
        data = read_json(manifest, "gym manifest")
        if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
            raise DataError("no 'config' mapping: not a gym manifest (s2lbench gym build writes one)", path=manifest,
                            field="config")
        config = from_dict(GymConfig, data["config"], f"{manifest}: config")
        recipe = config.base if args.steps is None else replace(config.base, steps=args.steps)
        out = pretrain_base(args.model, Path(args.gym) / "tokenizer", args.out, recipe)
        meta = json.loads((out / "base.json").read_text(encoding="utf-8"))
        print(f"base: {out} ({meta['model']}, {meta['n_params']} parameters, {meta['recipe']['steps']} steps, "
              f"{meta['train_tokens']} tokens, final loss {meta['final_loss']}, {meta['wall_seconds']} s)")
        return 0

    def _build(self, args: argparse.Namespace) -> int:
        if args.from_config is not None and args.small:
            raise ConfigError("--from-config and --small both choose the starting gym: give one")
        data = asdict(GymConfig.small() if args.small else GymConfig())
        if args.from_config is not None:
            data = {**data, **_experiment_gym(args.from_config)}
        for key, value in (("pool_size", args.size), ("test_size", args.test_size), ("seed", args.seed),
                           ("vocab_size", args.vocab_size), ("version", args.version), ("dev_size", args.dev_size),
                           ("template", args.template), ("tokenizer", args.tokenizer),
                           ("level_weights", args.level_weights)):
            if value is not None:
                data[key] = value
        data["defects"] = dict(data["defects"])
        for item in args.defect:
            kind, _, rate = item.partition("=")
            data["defects"][kind.strip()] = rate
        from_dict(DefectRates, data["defects"], "defects")  # names a misspelt kind before anything runs
        config = from_dict(GymConfig, data)
        out = check_output_path(args.out, kind="folder")
        with atomic_dir(out, marker="gym.json") as tmp:  # whole or not at all: gym.json is never without its files
            built = build_gym(tmp, config)
        paths = GymPaths(root=out, **{k: out / Path(getattr(built, k)).relative_to(tmp)
                                      for k in ("pool", "tokenizer", "manifest", "defects")},
                         tests={k: out / Path(v).relative_to(tmp) for k, v in built.tests.items()},
                         dev={k: out / Path(v).relative_to(tmp) for k, v in built.dev.items()})
        manifest = json.loads(paths.manifest.read_text(encoding="utf-8"))
        pool = manifest["pool"]
        print(f"pool: {paths.pool} ({pool['rows']} rows, fingerprint {pool['fingerprint']})")
        print("  sources: " + ", ".join(f"{k} {v}" for k, v in sorted(pool["sources"].items(), key=lambda kv: -kv[1])))
        print("  defects: " + ", ".join(f"{k} {v}" for k, v in pool["defects"].items()))
        for test in manifest["test_sets"]:
            kind = "in-domain" if test["in_domain"] else "out-of-domain"
            print(f"test set: {paths.root / test['path']} ({test['rows']} rows, {kind})")
        print(f"tokenizer: {paths.tokenizer} ({manifest['tokenizer']['vocab_size']} tokens)")
        return 0
