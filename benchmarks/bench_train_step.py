"""Benchmark: what one training step of the gym v2 grid's target costs under each kernel choice.

The #15 goal is one grid fine-tune in <= 90 s; the calibrated recipe (900 steps of 32, packed rows of 256,
bf16 autocast where the CPU has native bf16) takes ~170 s. This measures whether a kernel choice, rather than
a recipe change, closes that gap. The gym v2 pool the grids used until 2026-12-06 (8,000 rows, 1-2 digit
operands, the ``qa`` template; ``configs/gym.yaml`` now draws 6,000 rows from the same generator, and a step's
cost depends on the 32 rows of its batch, not on the pool's size), the same model config (``gym-target-l``,
freshly initialised: a step's cost does not depend on the weights), the same batches for every variant; one
process, variants one after another:

- ``fp32``: no autocast
- ``bf16``: autocast to bf16 (what ``bf16: auto`` picks on a CPU with AVX512-BF16 or AMX)
- ``bf16+fp32-attention``: bf16 matmuls, attention upcast to fp32 (an attention function registered with
  transformers' ``AttentionInterface``)
- ``bf16 eager``: transformers' eager attention instead of SDPA
- ``bf16 rows-128``: packed rows of 128 tokens instead of 256 (less attention per token, wider rows where an
  example is longer)
- ``bf16 compile``: ``torch.compile(model, dynamic=True)``; its compile time is printed apart

Each line: seconds per optimizer step (forward, backward, clip, AdamW; mean over ``--steps`` after
``--warmup``), the implied ``--total-steps`` loop, and how many steps fit in 90 s. Then one profiled
``bf16`` step split into attention, matmul and other ops. Run alone on a quiet machine:

    flock /tmp/s2lbench-heavy.lock python benchmarks/bench_train_step.py

``--attention-layouts`` then times one layer's attention alone (forward + backward, bf16, the target's 4 heads of
40) on the same batches laid out three ways: packed rows under the block-diagonal mask transformers builds from
the position ids (what training does), the same packed rows under a plain causal mask (a lower bound for any
packed kernel), and every example in its own row, padded to the batch's longest, on SDPA's ``is_causal`` path
with no mask (what a per-example, varlen-style attention would cost here).

``--threads N`` pins torch's intra-op threads; ``--concurrent K`` starts K copies of this benchmark at once
(each on ``--threads``, default 1, timing only after all K are ready) and prints their aggregate steps per
second: whether a 2-core machine trains more cells per hour as two 1-thread workers (the ``ray`` executor
with ``torch_threads: 1``) than as one 2-thread process (the ``local`` executor):

    python benchmarks/bench_train_step.py --variants bf16 --threads 2
    python benchmarks/bench_train_step.py --variants bf16 --concurrent 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = ("fp32", "bf16", "bf16+fp32-attention", "bf16 eager", "bf16 rows-128", "bf16 compile")


def register_fp32_attention() -> str:
    """Register SDPA that computes in fp32 whatever the autocast dtype; returns its implementation name."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    def fp32_sdpa(module, query, key, value, attention_mask, **kwargs):
        out, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(), attention_mask,
                                              **kwargs)
        return out.to(query.dtype), weights

    AttentionInterface.register("sdpa_fp32", fp32_sdpa)
    AttentionMaskInterface.register("sdpa_fp32", ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
    return "sdpa_fp32"


def time_variant(variant: str, make_model, batches_by_capacity, steps: int, warmup: int) -> tuple[float, float]:
    """(mean seconds per optimizer step, seconds of the warm-up steps) for one variant."""
    import torch

    bf16 = variant.startswith("bf16")
    attention = ("sdpa_fp32" if "fp32-attention" in variant else "eager" if "eager" in variant else "sdpa")
    batches = batches_by_capacity[128 if "rows-128" in variant else 256]
    model = make_model(attention).train()
    forward = torch.compile(model, dynamic=True) if "compile" in variant else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def step(batch):
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            loss = forward(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    started = time.perf_counter()
    for batch in batches[:warmup]:
        step(batch)
    warm = time.perf_counter() - started
    started = time.perf_counter()
    for batch in batches[warmup:warmup + steps]:
        step(batch)
    return (time.perf_counter() - started) / steps, warm


def time_attention_layouts(batches: list[dict], heads: int, head_dim: int, repeats: int = 5) -> dict[str, float]:
    """Milliseconds per layer (forward + backward, bf16) of each attention layout over ``batches``."""
    import torch
    import torch.nn.functional as F

    def run(shape, mask=None, causal=False) -> float:
        q, k, v = (torch.randn(*shape, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal).sum().backward()  # warm
        started = time.perf_counter()
        for _ in range(repeats):
            F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal).sum().backward()
        return (time.perf_counter() - started) / repeats

    totals = {"packed, block-diagonal mask": 0.0, "packed, causal only": 0.0, "one row per example, is_causal": 0.0}
    for batch in batches:
        positions = batch["position_ids"]
        rows, width = positions.shape
        segment = (positions == 0).cumsum(-1)  # a new example starts wherever positions restart at 0
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        mask = (segment[:, :, None] == segment[:, None, :]) & causal
        lengths = [int(n) for r in range(rows) for n in torch.unique_consecutive(segment[r], return_counts=True)[1]]
        longest = max(lengths)
        totals["packed, block-diagonal mask"] += run((rows, heads, width, head_dim), mask=mask[:, None])
        totals["packed, causal only"] += run((rows, heads, width, head_dim), causal=True)
        totals["one row per example, is_causal"] += run((len(lengths), heads, longest, head_dim), causal=True)
    return {name: 1000 * total / len(batches) for name, total in totals.items()}


def wait_for_peers(barrier: Path | None, peers: int) -> None:
    """Mark this copy ready in ``barrier`` and wait until all ``peers`` are, so their timed steps overlap."""
    if barrier is None:
        return
    (barrier / f"ready-{os.getpid()}").touch()
    while len(list(barrier.glob("ready-*"))) < peers:
        time.sleep(0.05)


def run_concurrent(args: argparse.Namespace) -> int:
    """Start ``args.concurrent`` copies at once and print each one's s/step and their aggregate steps per second."""
    threads = args.threads or 1
    with tempfile.TemporaryDirectory(prefix="bench-train-step-barrier-") as barrier:
        command = [sys.executable, __file__, "--variants", args.variants, "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--batch-size", str(args.batch_size), "--threads", str(threads),
                   "--no-profile", "--barrier", barrier, "--peers", str(args.concurrent), "--json"]
        children = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(args.concurrent)]
        outputs = [child.communicate()[0] for child in children]
    if any(child.returncode for child in children):
        print("a concurrent copy failed; run it alone to see why", file=sys.stderr)
        return 1
    results = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    print(f"{args.concurrent} concurrent copies x {threads} torch thread(s), batch {args.batch_size} packed")
    print(f"{'variant':<22} {'s/step per copy':>16} {'aggregate steps/s':>18} {'s per step, aggregate':>22} "
          f"{f'{args.total_steps}-step fine-tunes per hour':>30}")
    for variant in results[0]:
        per_copy = [r[variant] for r in results]
        aggregate = sum(1 / t for t in per_copy)
        print(f"{variant:<22} {', '.join(f'{t:.3f}' for t in per_copy):>16} {aggregate:>18.2f} "
              f"{1 / aggregate:>22.3f} {3600 * aggregate / args.total_steps:>30.1f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation happens here)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--total-steps", type=int, default=900, help="the recipe's steps, for the implied loop")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {VARIANTS}")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--concurrent", type=int, default=1, help="copies to run at once (aggregate throughput)")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiled step at the end")
    parser.add_argument("--attention-layouts", action="store_true",
                        help="also time one layer's attention under three layouts of the same batches")
    parser.add_argument("--barrier", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--peers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    if args.concurrent > 1:
        return run_concurrent(args)

    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    from transformers import AutoTokenizer

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_training import profile_step

    from s2lbench.gym import GymConfig, build_gym
    from s2lbench.pool.loaders import load_local
    from s2lbench.training.models import tiny_config
    from s2lbench.training.trainer import EncodedPool, PackCollator

    register_fp32_attention()
    with tempfile.TemporaryDirectory(prefix="bench-train-step-") as tmp:
        gym = build_gym(Path(tmp) / "gym", GymConfig(version=2, pool_size=8000, level_weights=(0.5, 0.5, 0.0)))
        tokenizer = AutoTokenizer.from_pretrained(gym.pool.parent / "tokenizer")
        pool = load_local(gym.pool)
        dataset = EncodedPool(pool, tokenizer, 256, "qa")
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0)).tolist()
        n_batches = args.warmup + args.steps
        batches_by_capacity = {}
        for capacity in (128, 256):
            collator = PackCollator(tokenizer.pad_token_id, capacity)
            batches_by_capacity[capacity] = [
                collator([dataset[order[(b * args.batch_size + j) % len(order)]] for j in range(args.batch_size)])
                for b in range(n_batches)]
        real = sum(len(dataset[order[j % len(order)]]["input_ids"])
                   for j in range(args.steps * args.batch_size)) / args.steps

        def make_model(attention: str):
            from transformers import GPTNeoXForCausalLM

            config = tiny_config("gym-target-l", tokenizer)
            config._attn_implementation = attention
            torch.manual_seed(0)
            return GPTNeoXForCausalLM(config)

        n_params = sum(p.numel() for p in make_model("sdpa").parameters())
        wait_for_peers(args.barrier, args.peers)
        if args.json:
            timings = {v: time_variant(v, make_model, batches_by_capacity, args.steps, args.warmup)[0]
                       for v in variants}
            print(json.dumps(timings))
            return 0
        print(f"gym v2 pool ({len(pool)} rows, qa), gym-target-l ({n_params / 1e6:.2f}M params), batch "
              f"{args.batch_size} packed, ~{real:,.0f} real tokens per step, {torch.get_num_threads()} threads; "
              f"native bf16: {any(getattr(torch.cpu, n, lambda: False)() for n in ('_is_avx512_bf16_supported', '_is_amx_tile_supported'))}")
        print(f"{'variant':<22} {'s/step':>7} {'tokens/s':>9} {f'{args.total_steps} steps':>10} "
              f"{'steps in 90 s':>13} {'warm-up':>8}")
        for variant in variants:
            per_step, warm = time_variant(variant, make_model, batches_by_capacity, args.steps, args.warmup)
            print(f"{variant:<22} {per_step:>7.3f} {real / per_step:>9,.0f} {per_step * args.total_steps:>9.0f}s "
                  f"{int(90 / per_step):>13} {warm:>7.1f}s")
        if args.attention_layouts:
            config = tiny_config("gym-target-l", tokenizer)
            heads = config.num_attention_heads
            layouts = time_attention_layouts(batches_by_capacity[256][:10], heads, config.hidden_size // heads)
            print(f"one layer's attention, forward + backward, bf16, mean of 10 batches ({heads} heads of "
                  f"{config.hidden_size // heads}):")
            for name, ms in layouts.items():
                print(f"  {name:<34} {ms:6.1f} ms")
        if args.no_profile:
            return 0
        split = profile_step(make_model("sdpa").train(), batches_by_capacity[256][0], bf16=True)
        total = sum(split.values())
        print(f"bf16 step profile (fwd+bwd {total:.3f} s): " +
              ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in split.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
