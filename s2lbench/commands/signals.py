"""`s2lbench signals`: loss trajectories and per-example signals from a proxy run; text embeddings; imports.

    s2lbench signals --pool POOL --proxy-run RUN_DIR --out DIR       # trajectories, confidence, EL2N, embedding
    s2lbench signals embed --pool POOL --out DIR [--model minilm]    # text_embedding.npy from an encoder
    s2lbench signals import --pool POOL --matrix LOSSES.npy --out DIR  # a loss matrix computed elsewhere
"""

from __future__ import annotations

import argparse

from s2lbench.commands.base import Command
from s2lbench.commands.data import add_pool_arguments, open_pool_from_args
from s2lbench.common import console
from s2lbench.errors import ConfigError


def _summary(sig) -> str:
    lines = [f"signals in {sig.directory}:"]
    for name, info in sorted(sig.manifest.get("signals", {}).items()):
        lines.append(f"  {name:<16} {info['file']:<28} shape {tuple(info['shape'])}")
    cost = sig.manifest.get("cost")
    if cost and "flops_estimate" in cost:
        lines.append(f"cost: {cost['wall_seconds']:.1f} s, ~{cost['flops_estimate']:.3g} FLOPs "
                     f"({cost.get('flops_formula', '')})")
    return "\n".join(lines)


class SignalsCommand(Command):
    name = "signals"
    help = "compute per-example signals (loss trajectories, confidence, EL2N, embeddings) for a pool"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--pool", help="the SFT pool (.jsonl/.json/.csv or hf://owner/name[:split])")
        parser.add_argument("--proxy-run", help="proxy run folder, HF Trainer output (checkpoint-*/) or model folder")
        parser.add_argument("--out", help="signals folder to write (resumes if it holds finished checkpoints)")
        add_pool_arguments(parser)
        parser.add_argument("--tokenizer", default=None,
                            help="tokenizer path or hub id (default: the one saved with the checkpoints or run)")
        parser.add_argument("--max-length", type=int, default=None,
                            help="truncate examples as in training (default: the run's, else 512)")
        parser.add_argument("--template", default=None,
                            help="prompt template (default: the run's, else alpaca)")
        parser.add_argument("--batch-tokens", type=int, default=16384, help="padded tokens per batch")
        parser.add_argument("--batch-size", type=int, default=256, help="examples per batch at most")
        parser.add_argument("--dtype", default="auto", help="auto (bf16 on GPUs that support it, else fp32), "
                                                             "float32, bfloat16, float16")
        parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
        parser.add_argument("--embed", default="last", choices=["last", "all", "none"],
                            help="pooled proxy embedding at the last checkpoint, at all, or none")
        parser.add_argument("--full-logits", action="store_true",
                            help="compute logits at every position (slower; for checking the shortcut)")
        parser.add_argument("--ifd", action="store_true",
                            help="also the response's loss without the instruction (loss_alone, for the ifd selector)")
        parser.add_argument("--dev", default=None,
                            help="a dev set JSONL ({task, instruction, output} rows): its embedding (for rds) "
                                 "and, with --gradients, its gradient features (for less)")
        parser.add_argument("--gradients", action="store_true",
                            help="LESS gradient features of the pool and the dev set (needs --dev)")
        parser.add_argument("--gradient-dim", type=int, default=8192, help="projection dimension (LESS: 8192)")
        parser.add_argument("--gradient-checkpoints", type=int, default=4,
                            help="checkpoints with gradient features, evenly spaced, ending at the last (LESS: 4)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")
        sub = parser.add_subparsers(dest="signals_command", metavar="{embed,import}")
        embed = sub.add_parser("embed", help="text_embedding.npy from a pretrained encoder (MiniLM by default)")
        embed.add_argument("--pool", required=True)
        embed.add_argument("--out", required=True)
        add_pool_arguments(embed)
        embed.add_argument("--model", default="minilm",
                           help="'minilm' (bundled all-MiniLM-L6-v2, offline), a hub id or a local path")
        embed.add_argument("--batch-size", type=int, default=64)
        embed.add_argument("--max-length", type=int, default=256)
        embed.add_argument("--device", default=None)
        embed.add_argument("--no-progress", action="store_true")
        imp = sub.add_parser("import", help="write a loss matrix computed elsewhere (.npy/.pt, NaN allowed)")
        imp.add_argument("--pool", required=True)
        imp.add_argument("--matrix", required=True, help="examples x checkpoints, rows in pool order")
        imp.add_argument("--out", required=True)
        imp.add_argument("--steps", default=None, help="comma-separated checkpoint steps (default 0..T-1)")
        add_pool_arguments(imp)

    def run(self, args: argparse.Namespace) -> int:
        command = getattr(args, "signals_command", None)
        console.log_to(None, "signals" + (f"-{command}" if command else ""))  # the signals folder stays whole
        if command == "embed":
            from s2lbench.signals.embeddings import compute_text_embeddings

            pool = open_pool_from_args(args.pool, args)
            sig = compute_text_embeddings(pool, args.out, model=args.model, batch_size=args.batch_size,
                                          max_length=args.max_length, device=args.device,
                                          progress=not args.no_progress)
        elif command == "import":
            from s2lbench.signals.importing import import_trajectories

            pool = open_pool_from_args(args.pool, args)
            steps = [int(s) for s in args.steps.split(",")] if args.steps else None
            sig = import_trajectories(args.matrix, args.out, pool=pool, steps=steps)
        else:
            missing = [flag for flag, value in (("--pool", args.pool), ("--proxy-run", args.proxy_run),
                                                ("--out", args.out)) if not value]
            if missing:
                raise ConfigError(f"s2lbench signals needs {', '.join(missing)} "
                                  "(or use `signals embed` / `signals import`)")
            from s2lbench.signals.signal_pass import compute_signals

            pool = open_pool_from_args(args.pool, args)
            dev = None
            if args.dev:
                from s2lbench.signals.devsets import read_dev_file

                dev = read_dev_file(args.dev)
            if args.gradients and dev is None:
                raise ConfigError("--gradients needs --dev (LESS matches the pool's gradients to a dev set's)")
            gradients = {"dim": args.gradient_dim, "checkpoints": args.gradient_checkpoints} if args.gradients else None
            sig = compute_signals(pool, args.proxy_run, args.out, tokenizer=args.tokenizer,
                                  max_length=args.max_length, template=args.template,
                                  batch_tokens=args.batch_tokens, batch_size=args.batch_size, dtype=args.dtype,
                                  device=args.device, embed=args.embed, full_logits=args.full_logits,
                                  ifd=args.ifd, dev=dev, gradients=gradients, progress=not args.no_progress)
        print(_summary(sig))
        console.say(f"log: {console.log_file()}")
        return 0
