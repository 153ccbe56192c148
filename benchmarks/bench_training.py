"""Benchmark: padded versus padding-free (packed) fine-tuning through s2lbench's one training component.

Same model (``gym-target-l``), the same gym pool (the gym builder's default 15,000 rows, or ``--pool``), the
same machine, one process: ``train`` runs ``--steps`` optimizer steps of the gym recipe (batch 64, max length
256, bf16 "auto") with ``padding_free=False`` and then with ``padding_free=True``. Both runs see the same
examples in the same order. Prints, for each path: the training loop's time per step (Trainer's
``train_runtime``, without tokenizing and model set-up), useful (non-pad) tokens/s, useful FLOP/s (6 x
parameters x useful tokens) against a measured matmul roof, the share of computed token slots that are
padding, and one step's profile split into attention, matmul and other ops. Then "loss match OK" if every
step's loss agrees within 1e-3 relative (else "MISMATCH"), and last ``training_speedup X`` (padded loop time
/ packed loop time).

    flock /tmp/s2lbench-heavy.lock python benchmarks/bench_training.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def matmul_roof(bf16: bool, seconds: float = 2.0, size: int = 2048) -> float:
    """Best FLOP/s of a square matmul in the dtype training computes its matmuls in."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    best = 0.0
    with ctx:
        a @ b
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            a @ b
            best = max(best, 2 * size**3 / (time.perf_counter() - t))
    return best


def layout(dataset, collator, batch_size: int, n_batches: int, seed: int) -> tuple[float, float]:
    """(padding share of the computed token slots, mean rows per batch) over random batches of the pool."""
    import torch

    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    slots = real = rows = 0
    for b in range(n_batches):
        features = [dataset[i] for i in order[b * batch_size:(b + 1) * batch_size]]
        ids = collator(features)["input_ids"]
        slots += ids.numel()
        rows += ids.shape[0]
        real += sum(len(f["input_ids"]) for f in features)
    return 1 - real / slots, rows / n_batches


def profile_step(model, batch, bf16: bool) -> dict[str, float]:
    """Seconds of one forward+backward by kind of op: attention, matmul, other."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    def step():
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            loss = model(**batch).loss
        loss.backward()

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    split = {"attention": 0.0, "matmul": 0.0, "other": 0.0}
    for event in prof.key_averages():
        name = event.key
        kind = ("attention" if "scaled_dot_product" in name or "flash_attention" in name
                else "matmul" if name in ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm") else "other")
        split[kind] += event.self_cpu_time_total / 1e6
    return split


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", help="pool.jsonl with tokenizer/ beside it (default: build the default gym)")
    parser.add_argument("--model", default="gym-target-l")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from transformers import AutoTokenizer

    from s2lbench.gym import GymConfig, build_gym
    from s2lbench.pool.loaders import load_local
    from s2lbench.training.models import GYM_TRAINING, tiny_model
    from s2lbench.training.trainer import (
        EncodedPool,
        PackCollator,
        PadCollator,
        TrainConfig,
        resolve_bf16,
        train,
    )

    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        tmp = Path(tmp)
        if args.pool:
            pool_path = Path(args.pool)
        else:
            pool_path = build_gym(tmp / "gym", GymConfig()).pool
        tokenizer_dir = pool_path.parent / "tokenizer"
        pool = load_local(pool_path)
        config = TrainConfig(**{**GYM_TRAINING, "total_steps": args.steps, "batch_size": args.batch_size,
                                "max_length": args.max_length}, model=args.model, tokenizer=str(tokenizer_dir),
                             logging_steps=1, seed=42)
        bf16 = resolve_bf16(config.bf16)
        roof = matmul_roof(bf16)
        print(f"pool {pool_path} ({len(pool)} rows); {args.model}, {args.steps} steps of {args.batch_size}, "
              f"max_length {args.max_length}, bf16 {bf16}; matmul roof {roof / 1e9:.0f} GFLOP/s "
              f"({'bf16' if bf16 else 'fp32'}, 2048^3)")

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        dataset = EncodedPool(pool, tokenizer, args.max_length, config.template)
        collators = {"padded": PadCollator(tokenizer.pad_token_id),
                     "packed": PackCollator(tokenizer.pad_token_id, args.max_length)}
        model = tiny_model(args.model, tokenizer, seed=0).train()
        order = list(range(args.batch_size))
        results = {}
        for name, padding_free in (("padded", False), ("packed", True)):
            result = train(pool, replace(config, padding_free=padding_free), tmp / name)
            manifest = json.loads((tmp / name / "run.json").read_text())
            pad_share, rows = layout(dataset, collators[name], args.batch_size, 20, seed=1)
            split = profile_step(model, collators[name]([dataset[i] for i in order]), bf16)
            results[name] = (result, manifest["loop_seconds"])
            seconds = manifest["loop_seconds"]
            useful = result.train_tokens / seconds
            flops = 6 * result.n_params * result.train_tokens / seconds
            total = sum(split.values())
            print(f"{name}: {seconds / args.steps:.3f} s/step, {useful:,.0f} useful tokens/s, "
                  f"{flops / 1e9:.1f} useful GFLOP/s = {100 * flops / roof:.1f}% of the roof; padding "
                  f"{100 * pad_share:.1f}% of token slots ({rows:.1f} rows per batch); one step's fwd+bwd "
                  f"{total:.2f} s: attention {100 * split['attention'] / total:.0f}%, matmul "
                  f"{100 * split['matmul'] / total:.0f}%, other {100 * split['other'] / total:.0f}%")
        losses = {name: [h["loss"] for h in r.log_history if "loss" in h] for name, (r, _) in results.items()}
        worst = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(losses["padded"], losses["packed"],
                                                                     strict=True))
        match = len(losses["padded"]) == args.steps and worst <= 1e-3
        print(f"per-step losses, largest relative difference {worst:.2e}: "
              f"{'loss match OK' if match else 'MISMATCH'}")
        print(f"training_speedup {results['padded'][1] / results['packed'][1]:.2f}")
    return 0 if match else 1


if __name__ == "__main__":
    sys.exit(main())
