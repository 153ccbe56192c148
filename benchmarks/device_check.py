"""Device check: one command on a CUDA machine (torch, transformers, accelerate; no hub, no data folder) that
prints one figure line each, in at most ~8 minutes:

- ``signals <shape>``: the s2lbench signal pass vs the official batch-1 loop (fp32, full logits, one example
  at a time), Pythia-70M- and 160M-shaped models (GPT-NeoX, random init from config); goal >= 10x;
- ``train pythia-410m``: the training component's bf16 throughput (tokens/s, share of the GPU's bf16 peak);
- ``generate pythia-160m``: Hugging Face generation throughput (new tokens/s, greedy, batched);
- ``demo``: the demo grid end to end (needs faiss-cpu too: S2L clusters with it; skipped with a note if absent).

``--quick`` runs the same code paths on CPU with small sizes in under a minute (CI runs it so it never rots).
Each figure imports only what it needs; one that fails prints its error and the others still run.

    python benchmarks/device_check.py            # on the GPU machine
    python benchmarks/device_check.py --quick    # anywhere, CPU
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: dense bf16 tensor-core peaks (FLOP/s) by device-name fragment, from the vendors' data sheets
BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10G": 70e12,
             "A10": 125e12, "4090": 165e12, "3090": 71e12, "A6000": 155e12}
SHAPE_410M = (1024, 24, 16, 4096)  # Pythia-410M: hidden, layers, heads, intermediate


@dataclass(frozen=True)
class Sizes:
    signal_n: int
    naive_n: int
    signal_shapes: tuple[str, ...]
    train_shape: tuple[int, int, int, int]
    train_steps: int
    train_batch: int
    max_length: int
    gen_prompts: int
    gen_tokens: int
    demo_overrides: tuple[str, ...]


FULL = Sizes(signal_n=4000, naive_n=300, signal_shapes=("pythia-70m", "pythia-160m"), train_shape=SHAPE_410M,
             train_steps=40, train_batch=16, max_length=512, gen_prompts=256, gen_tokens=128, demo_overrides=())
QUICK = Sizes(signal_n=120, naive_n=20, signal_shapes=("pythia-14m", "pythia-14m"), train_shape=(64, 2, 4, 256),
              train_steps=3, train_batch=4, max_length=96, gen_prompts=8, gen_tokens=8,
              demo_overrides=("pool.gym.pool_size=200", "pool.gym.test_size=6", "proxy.train.total_steps=6",
                              "proxy.train.n_checkpoints=2", "budgets=[0.2]",
                              "targets=[{name: target-s, model: gym-target-s, train: {schedule: steps, total_steps: 4, "
                              "batch_size: 16, learning_rate: 3.0e-3, max_length: 160, n_checkpoints: 1}}]",
                              "selectors=[random,el2n]", "evaluation.limit=4",
                              "evaluation.generation.max_new_tokens=8"))


def figure(name: str, fn, *args) -> bool:
    started = time.perf_counter()
    try:
        line = fn(*args)
    except ImportError as e:
        print(f"{name}: skipped ({e}; pip install it to get this figure)", flush=True)
        return True
    except Exception as e:  # one broken figure must not hide the others
        print(f"{name}: FAILED {type(e).__name__}: {e}", flush=True)
        return False
    print(f"{name}: {line}  [{time.perf_counter() - started:.0f} s]", flush=True)
    return True


def _pool_and_tokenizer(n: int):
    from bench_signals import synthetic_pool, train_tokenizer

    pool = synthetic_pool(n, seed=0)
    return pool, train_tokenizer(pool)


def signal_speedup(shape: str, sizes: Sizes, device: str) -> str:
    import torch
    from bench_signals import build_checkpoint, naive_losses

    from s2lbench.signals.signal_pass import compute_signals

    pool, tokenizer = _pool_and_tokenizer(sizes.signal_n)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        build_checkpoint(run / "checkpoint-1", shape, tokenizer, seed=0)
        positions = np.sort(np.random.default_rng(0).choice(len(pool), sizes.naive_n, replace=False))
        naive_losses(run / "checkpoint-1", pool, positions[:2], sizes.max_length, device)  # warm-up (CUDA init)
        naive, naive_s = naive_losses(run / "checkpoint-1", pool, positions, sizes.max_length, device)
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        signals = compute_signals(pool, run, Path(tmp) / "signals", max_length=sizes.max_length, device=device,
                                  progress=False)
        fast_s = time.perf_counter() - started
        fast = np.asarray(signals.get("loss"))[:, 0]
        dtype = signals.manifest.get("compute", {}).get("dtype", "auto")
    naive_rate, fast_rate = sizes.naive_n / naive_s, len(pool) / fast_s
    diff = float(np.abs(fast[positions] - naive).max())
    return (f"signal pass {fast_rate:.0f} examples/s ({dtype}) vs batch-1 loop {naive_rate:.1f} examples/s -> "
            f"{fast_rate / naive_rate:.1f}x (goal >= 10x); max |loss diff| {diff:.1e} on {sizes.naive_n} examples")


def training_throughput(sizes: Sizes, device: str) -> str:
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from s2lbench.training.trainer import TrainConfig, train

    pool, tokenizer = _pool_and_tokenizer(max(64, sizes.train_batch * 4))
    hidden, layers, heads, inter = sizes.train_shape
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        torch.manual_seed(0)
        config = GPTNeoXConfig(vocab_size=50304, hidden_size=hidden, num_hidden_layers=layers,
                               num_attention_heads=heads, intermediate_size=inter, max_position_embeddings=2048,
                               rotary_pct=0.25, tie_word_embeddings=False, eos_token_id=tokenizer.eos_token_id,
                               bos_token_id=tokenizer.eos_token_id)
        GPTNeoXForCausalLM(config).save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        bf16 = device == "cuda"
        cfg = TrainConfig(model=str(model_dir), total_steps=sizes.train_steps, batch_size=sizes.train_batch,
                          max_length=sizes.max_length, learning_rate=1e-4, logging_steps=max(1, sizes.train_steps // 4),
                          bf16=bf16, seed=0)
        result = train(pool, cfg, Path(tmp) / "run")
    rate = result.train_tokens / result.wall_seconds
    achieved = 6 * result.n_params * rate
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    peak = next((v for k, v in BF16_PEAK.items() if k in name), None)
    share = f"{achieved / peak:.0%} of the {name} bf16 peak {peak / 1e12:.0f} TFLOP/s" if peak else f"peak unknown for {name}"
    return (f"{result.n_params / 1e6:.0f}M params, {'bf16' if bf16 else 'fp32'}, batch {sizes.train_batch} x "
            f"{sizes.max_length} max tokens: {rate:,.0f} tokens/s, {achieved / 1e12:.2f} TFLOP/s (6 N tokens) = {share}; "
            f"{result.total_steps} steps in {result.wall_seconds:.1f} s (wall time includes the final save)")


def generation_throughput(sizes: Sizes, device: str) -> str:
    from bench_signals import build_checkpoint

    from s2lbench.generation import GenerationConfig, generate

    pool, tokenizer = _pool_and_tokenizer(max(sizes.gen_prompts, 32))
    shape = "pythia-160m" if device == "cuda" else "pythia-14m"
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        build_checkpoint(model_dir, shape, tokenizer, seed=0)
        prompts = [ex.instruction for ex in pool][: sizes.gen_prompts]
        config = GenerationConfig(backend="transformers", max_new_tokens=sizes.gen_tokens, batch_size=64)
        generate(model_dir, prompts[:2], config)  # warm-up: load, CUDA init
        started = time.perf_counter()
        outputs = generate(model_dir, prompts, config)
        seconds = time.perf_counter() - started
    assert len(outputs) == len(prompts)
    # random weights over a 50,304-token vocabulary all but never emit EOS: every prompt decodes max_new_tokens
    new_tokens = len(prompts) * sizes.gen_tokens
    return (f"{shape}-shaped, transformers backend, greedy, batch 64: {len(prompts)} prompts x {sizes.gen_tokens} "
            f"new tokens in {seconds:.1f} s -> {new_tokens / seconds:,.0f} new tokens/s")


def demo_grid(sizes: Sizes) -> str:
    from importlib.resources import files

    import faiss  # noqa: F401  (S2L's k-means; say so up front rather than after the proxy trained)
    import yaml

    from s2lbench.common.typed import apply_overrides
    from s2lbench.grid.experiment import parse_experiment
    from s2lbench.grid.runner import Runner

    data = yaml.safe_load(files("s2lbench").joinpath("demo.yaml").read_text(encoding="utf-8"))
    config = parse_experiment(apply_overrides(data, list(sizes.demo_overrides)), origin="demo")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        summary = Runner(config, tmp).run()
        seconds = time.perf_counter() - started
    if not summary.ok:
        raise RuntimeError(f"{len(summary.failed)} cells failed: {next(iter(summary.failed.values()))}")
    return f"{len(summary.done)} cells end to end in {seconds:.0f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes on CPU (< 1 minute): the code paths only")
    parser.add_argument("--skip", action="append", default=[], choices=["signals", "train", "generate", "demo"])
    args = parser.parse_args(argv)

    import logging

    import torch

    logging.basicConfig(level=logging.WARNING)
    device = "cpu" if args.quick or not torch.cuda.is_available() else "cuda"
    sizes = QUICK if args.quick else FULL
    where = torch.cuda.get_device_name() if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device check on {where}; torch {torch.__version__}{'; --quick sizes' if args.quick else ''}", flush=True)
    if device == "cpu" and not args.quick:
        print("no CUDA device: the figures below are CPU figures, not the GPU ones the check exists for")
    ok = True
    if "signals" not in args.skip:
        for label, shape in zip(("pythia-70m", "pythia-160m"), sizes.signal_shapes, strict=True):
            ok &= figure(f"signals {label}" + (f" (as {shape})" if shape != label else ""), signal_speedup, shape,
                         sizes, device)
    if "train" not in args.skip:
        ok &= figure("train pythia-410m" + (" (tiny shape)" if args.quick else ""), training_throughput, sizes, device)
    if "generate" not in args.skip:
        ok &= figure("generate", generation_throughput, sizes, device)
    if "demo" not in args.skip:
        ok &= figure("demo" + (" (shrunk)" if args.quick else ""), demo_grid, sizes)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
