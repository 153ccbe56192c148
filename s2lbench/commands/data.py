"""`s2lbench data inspect FILE`: rows, sources with counts, length statistics."""

from __future__ import annotations

import argparse
import json

from s2lbench.api.diagnostics import length_stats
from s2lbench.commands.base import Command
from s2lbench.common.hub import load_tokenizer
from s2lbench.pool.loaders import load_pool, parse_columns
from s2lbench.pool.prompts import render_prompt


def add_pool_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments every command that reads a pool shares."""
    parser.add_argument("--preset", default=None, help="column preset: alpaca, mathinstruct, gsm8k, s2lbench")
    parser.add_argument("--columns", default=None,
                        help="column mapping field=column,... (fields: id, instruction, input, output, source)")


def open_pool_from_args(spec: str, args: argparse.Namespace):
    return load_pool(spec, preset=args.preset, columns=parse_columns(args.columns))


def inspect_pool(pool, tokenizer=None) -> dict:
    if tokenizer is not None:
        def measure(texts):
            return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
        unit = "tokens"
    else:
        def measure(texts):
            return [len(t) for t in texts]
        unit = "characters"
    prompts = [render_prompt("alpaca", ex.instruction, ex.input) for ex in pool]
    outputs = [ex.output for ex in pool]
    return {"name": pool.name, "rows": len(pool), "fingerprint": pool.fingerprint(),
            "sources": pool.source_counts(), "unit": unit,
            "prompt_length": length_stats(measure(prompts)), "output_length": length_stats(measure(outputs))}


class DataCommand(Command):
    name = "data"
    help = "inspect SFT data files"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="data_command", required=True)
        inspect = sub.add_parser("inspect", help="rows, sources with counts, length statistics")
        inspect.add_argument("file", help="a .jsonl/.json/.csv file, or hf://owner/name[:split]")
        add_pool_arguments(inspect)
        inspect.add_argument("--tokenizer", default=None,
                             help="measure lengths in tokens of this tokenizer (path or hub id); default characters")
        inspect.add_argument("--json", action="store_true")

    def run(self, args: argparse.Namespace) -> int:
        pool = open_pool_from_args(args.file, args)
        tokenizer = None
        if args.tokenizer:
            tokenizer = load_tokenizer(args.tokenizer)
        info = inspect_pool(pool, tokenizer)
        if args.json:
            print(json.dumps(info, indent=2))
            return 0
        print(f"{info['name']}: {info['rows']} rows, fingerprint {info['fingerprint']}")
        print("sources:")
        width = max(len(s) for s in info["sources"])
        for source, count in sorted(info["sources"].items(), key=lambda kv: -kv[1]):
            print(f"  {source:<{width}}  {count:>8}  {100 * count / info['rows']:5.1f}%")
        for key in ("prompt_length", "output_length"):
            s = info[key]
            print(f"{key.replace('_', ' ')} ({info['unit']}): min {s['min']}  mean {s['mean']}  "
                  f"p50 {s['p50']:.0f}  p90 {s['p90']:.0f}  max {s['max']}")
        return 0
