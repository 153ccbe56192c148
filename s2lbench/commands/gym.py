"""`s2lbench gym build --out DIR`: write the embedded benchmark's pool, test sets and tokenizer."""

from __future__ import annotations

import argparse
import json

from s2lbench.commands.base import Command, seed_type


class GymCommand(Command):
    name = "gym"
    help = "the embedded synthetic benchmark (a MathInstruct-shaped pool that tiny models learn in minutes)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="gym_command", required=True)
        build = sub.add_parser("build", help="write pool.jsonl, tests/*.jsonl, tokenizer/ and gym.json")
        build.add_argument("--out", required=True, help="output folder")
        build.add_argument("--small", action="store_true", help="the small preset (2000 rows, 100 per test set)")
        build.add_argument("--size", type=int, default=None, help="pool rows (default 15000; small 2000)")
        build.add_argument("--test-size", type=int, default=None, help="rows per test set (default 300)")
        build.add_argument("--seed", type=seed_type, default=None, help="generator seed (default 0)")
        build.add_argument("--vocab-size", type=int, default=None, help="BPE vocabulary size (default 512)")
        build.add_argument("--defect", action="append", default=[], metavar="KIND=RATE",
                           help="override a defect rate, e.g. --defect wrong_answer=0.1 (kinds: wrong_answer, "
                                "near_duplicate, truncated, overlong, off_topic); repeatable")

    def run(self, args: argparse.Namespace) -> int:
        from dataclasses import asdict

        from s2lbench.gym import DefectRates, GymConfig, build_gym
        from s2lbench.typed import from_dict

        config = GymConfig.small() if args.small else GymConfig()
        data = asdict(config)
        for key, value in (("pool_size", args.size), ("test_size", args.test_size), ("seed", args.seed),
                           ("vocab_size", args.vocab_size)):
            if value is not None:
                data[key] = value
        for item in args.defect:
            kind, _, rate = item.partition("=")
            data["defects"][kind.strip()] = rate
        from_dict(DefectRates, data["defects"], "defects")  # names a misspelt kind before anything runs
        config = from_dict(GymConfig, data)
        from pathlib import Path

        from s2lbench.atomic import atomic_dir, check_output_path, output_lock
        from s2lbench.gym.build import GymPaths

        out = check_output_path(args.out, kind="folder")
        with output_lock(out), atomic_dir(out, marker="gym.json") as tmp:  # whole or not at all: gym.json is never without its files
            built = build_gym(tmp, config)
        paths = GymPaths(root=out, **{k: out / Path(getattr(built, k)).relative_to(tmp)
                                      for k in ("pool", "tokenizer", "manifest", "defects")},
                         tests={k: out / Path(v).relative_to(tmp) for k, v in built.tests.items()})
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
