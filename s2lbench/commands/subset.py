"""`s2lbench subset`: pool -> proxy -> signals -> selection -> a subset your trainer reads, in one command.

    s2lbench subset --pool data.jsonl --selector s2l --budget 0.1 --proxy gym-proxy --out my-subset \\
        [--proxy-train total_steps=300 ...] [--option n_clusters=50 ...] [--format messages] [--dry-run]

A thin layer over ``s2lbench.api.subset`` (the Python API calls the same function).
"""

from __future__ import annotations

import argparse

from s2lbench.commands.base import Command, seed_type
from s2lbench.commands.data import add_pool_arguments
from s2lbench.common.typed import apply_overrides
from s2lbench.errors import ConfigError
from s2lbench.pool.exports import DEFAULT_NAME, FORMATS
from s2lbench.pool.loaders import parse_columns


def parse_pairs(pairs: list[str], flag: str) -> dict:
    """``key=value`` strings -> a dict, each value read as YAML (``3``, ``0.5``, ``true``), as ``run --set``."""
    for item in pairs:
        if "=" not in item:
            raise ConfigError(f"{flag} {item!r} is not of the form key=value")
    return apply_overrides({}, pairs)


class SubsetCommand(Command):
    name = "subset"
    help = "select a subset of your data in one command (proxy, signals, selection; cached, resumable) and export it"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--pool", required=True, help="your SFT data: a .jsonl/.json/.csv file or "
                                                          "hf://owner/name[:split]")
        add_pool_arguments(parser)
        parser.add_argument("--selector", required=True, help="a registered selector (see `s2lbench plugins`)")
        parser.add_argument("--budget", required=True, help="a count (1000) or a fraction of the pool (0.1, 10%%)")
        parser.add_argument("--proxy", default=None,
                            help="the small proxy model: a built-in tiny config (gym-proxy, CPU) or a hub id / "
                                 "local model folder; needed only by selectors that read proxy signals")
        parser.add_argument("--proxy-tokenizer", default=None,
                            help="tokenizer for the proxy (default: the model's; for a tiny config the "
                                 "tokenizer/ folder beside the pool, else one trained on the pool)")
        parser.add_argument("--proxy-train", action="append", default=[], metavar="KEY=VALUE",
                            help="a proxy training setting (TrainConfig field; repeatable) over the default "
                                 "recipe (tiny config: the gym's; else the S2L paper's, 3 epochs, 12 checkpoints), "
                                 "e.g. total_steps=300, n_checkpoints=5, max_length=512")
        parser.add_argument("--signal-option", action="append", default=[], metavar="KEY=VALUE",
                            help="a signal-pass option (repeatable), e.g. batch_tokens=32768, dtype=bfloat16")
        parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                            help="a selector option (repeatable); `s2lbench plugins` lists them")
        parser.add_argument("--seed", type=seed_type, default=0,
                            help="selection seed (default 0); the proxy's: --proxy-train seed=N")
        parser.add_argument("--out", required=True, help="output folder: the stage cache, the subset, "
                                                          "diagnostics.json (rerunning resumes it)")
        parser.add_argument("--format", default="jsonl", choices=FORMATS,
                            help="jsonl (s2lbench records), hf (datasets.load_from_disk), messages (TRL "
                                 "conversational JSONL), alpaca / sharegpt (LLaMA-Factory, with dataset_info.json)")
        parser.add_argument("--name", default=DEFAULT_NAME,
                            help="the dataset's name in LLaMA-Factory's dataset_info.json (suffixed _alpaca / "
                                 "_sharegpt)")
        parser.add_argument("--dry-run", action="store_true", help="check the inputs, print the cost estimate, "
                                                                   "compute nothing")

    def run(self, args: argparse.Namespace) -> int:
        from s2lbench.api.subset import subset  # the grid and its stages load only when a command runs

        subset(args.pool, args.selector, args.budget, out=args.out, proxy=args.proxy,
               proxy_train=parse_pairs(args.proxy_train, "--proxy-train"), proxy_tokenizer=args.proxy_tokenizer,
               options=parse_pairs(args.option, "--option"), seed=args.seed, format=args.format, name=args.name,
               preset=args.preset, columns=parse_columns(args.columns),
               signal_options=parse_pairs(args.signal_option, "--signal-option"), dry_run=args.dry_run)
        if args.dry_run:
            print("dry run OK: every input checked; nothing computed")
        return 0
