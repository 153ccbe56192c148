"""Benchmark: the naive per-example loss loop (as the official S2L code scores) versus the s2lbench signal pass.

Same model, pool and machine, one process. The naive path is batch 1, full logits, fp32, ``model(...,
labels=...).loss`` per example; it runs on a random subsample of ``--naive-n`` examples and its time is
extrapolated to the whole pool (stated in the output). The s2lbench path is ``compute_signals`` on the whole
pool (one checkpoint; it also computes confidence, EL2N and the pooled embedding). Prints examples/s for
each, achieved FLOP/s against a measured fp32 matmul roof, the loss agreement, the ceiling (the largest
speedup any exact fp32 pass could reach on this machine: naive time / the s2lbench pass's FLOPs at 100% of
the roof), and as its last line ``speedup <X>`` (naive time / s2lbench time, both for the whole pool).

Pool: GSM8K train (~190 BPE tokens per example with the Alpaca prompt) from the shared data folder, else a
synthetic arithmetic pool of similar length. Model: a Pythia-shaped GPT-NeoX (random init; vocab 50,304 as
in Pythia) with a byte-level BPE trained in code on the pool.

    flock /tmp/s2lbench-heavy.lock python benchmarks/bench_signals.py --n 2000 --naive-n 200

``--gym-extras`` instead measures what the optional signals of issue 18 add to the base pass on the gym pool
(gym-proxy, two checkpoints, the gym's dev split of ``--dev-size`` rows per test set): IFD's response-alone
loss, the dev set's embedding, and LESS gradient features (``--gradient-dim``) of the pool and the dev set.
It prints each one's seconds next to the base pass's and their ratio (the cost a selector reading it pays
on top of the base pass).

    flock /tmp/s2lbench-heavy.lock python benchmarks/bench_signals.py --gym-extras --n 3000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPES = {  # Pythia configs (hidden, layers, heads, intermediate)
    "pythia-14m": (128, 6, 4, 512),
    "pythia-70m": (512, 6, 8, 2048),
    "pythia-160m": (768, 12, 12, 3072),
}
PYTHIA_VOCAB = 50304


def find_gsm8k() -> Path | None:
    env = os.environ.get("S2LBENCH_DATA_DIR")
    repo = Path(__file__).resolve().parents[1]
    for root in ([Path(env)] if env else []) + [repo.parent / "shared" / "data", Path("/work/shared/data")]:
        if (root / "train" / "gsm8k_train.jsonl").exists():
            return root / "train" / "gsm8k_train.jsonl"
    return None


def synthetic_pool(n: int, seed: int):
    from s2lbench.pool.records import Pool, SFTExample

    rng = np.random.default_rng(seed)
    names = ["Ann", "Bob", "Carla", "Dev", "Eli", "Fay"]
    items = ["apples", "books", "coins", "marbles", "pencils", "stamps"]
    examples = []
    for i in range(n):
        steps = int(rng.integers(2, 7))
        who, what = rng.choice(names), rng.choice(items)
        total = int(rng.integers(5, 90))
        question = [f"{who} has {total} {what}."]
        answer = []
        for _ in range(steps):
            k = int(rng.integers(2, 40))
            if rng.random() < 0.5:
                question.append(f"Then {who} buys {k} more {what} at the market.")
                answer.append(f"{who} buys {k} more, so {total} + {k} = <<{total}+{k}={total + k}>>{total + k}.")
                total += k
            else:
                question.append(f"Then {who} gives {k} {what} to a friend from school.")
                answer.append(f"{who} gives away {k}, so {total} - {k} = <<{total}-{k}={total - k}>>{total - k}.")
                total -= k
        question.append(f"How many {what} does {who} have now?")
        examples.append(SFTExample(id=f"syn{i}", instruction=" ".join(question),
                                   output="\n".join(answer) + f"\n#### {total}", source="synthetic"))
    return Pool(examples, name="synthetic")


def load_bench_pool(n: int, seed: int, synthetic: bool = False):
    path = None if synthetic else find_gsm8k()
    if path is None:
        why = "forced by --synthetic" if synthetic else "shared data folder absent"
        return synthetic_pool(n, seed), f"synthetic arithmetic ({why})"
    from s2lbench.pool.loaders import load_pool

    pool = load_pool(path, preset="gsm8k")
    if n < len(pool):
        pool = pool.subset(sorted(np.random.default_rng(seed).choice(len(pool), n, replace=False)), name="gsm8k")
    return pool, f"GSM8K train ({path})"


def train_tokenizer(pool, vocab_size: int = 8192):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from s2lbench.pool.prompts import render_prompt

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator((render_prompt("alpaca", ex.instruction, ex.input) + ex.output for ex in pool), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def build_checkpoint(folder: Path, shape: str, tokenizer, seed: int) -> None:
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    hidden, layers, heads, inter = SHAPES[shape]
    torch.manual_seed(seed)
    config = GPTNeoXConfig(vocab_size=PYTHIA_VOCAB, hidden_size=hidden, num_hidden_layers=layers,
                           num_attention_heads=heads, intermediate_size=inter, max_position_embeddings=2048,
                           rotary_pct=0.25, tie_word_embeddings=False, eos_token_id=tokenizer.eos_token_id,
                           bos_token_id=tokenizer.eos_token_id)
    GPTNeoXForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_roof(device: str, seconds: float = 3.0, size: int = 2048) -> float:
    """Best fp32 FLOP/s of a square matmul on this device (the ceiling the passes are compared with)."""
    import torch

    if device.startswith("cuda"):
        size = 8192
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    a @ b
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        _sync(device)
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = max(best, 2 * size**3 / (time.perf_counter() - t))
    return best


def naive_losses(model_dir: Path, pool, positions, max_length: int, device: str) -> tuple[np.ndarray, float]:
    """The official implementation's way: one example at a time, full logits, fp32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from s2lbench.pool.encoding import encode_example

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()
    losses = []
    with torch.no_grad():
        for p in positions:
            enc = encode_example(tokenizer, pool[int(p)], max_length)
            out = model(input_ids=torch.tensor([enc.input_ids], device=device),
                        labels=torch.tensor([enc.labels], device=device))
            losses.append(float(out.loss))  # .item() synchronises, as the official loop does
    return np.asarray(losses, dtype=np.float32), time.perf_counter() - started


def model_flops(n_params_nonembed: int, head_params: int, layers: int, hidden: int, lengths, head_tokens) -> float:
    """Matmul FLOPs of a forward pass: 2 x non-embedding params x tokens + attention + LM head where applied."""
    lengths = np.asarray(lengths, dtype=np.float64)
    attention = float((4 * layers * hidden * lengths**2).sum())  # QK^T and AV, full square
    return 2 * n_params_nonembed * lengths.sum() + attention + 2 * head_params * head_tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="pool size for the s2lbench pass")
    parser.add_argument("--naive-n", type=int, default=200, help="examples the naive loop scores (extrapolated)")
    parser.add_argument("--model", default="pythia-70m", choices=sorted(SHAPES))
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-tokens", type=int, default=8192)
    parser.add_argument("--dtype", default="float32", help="dtype of the s2lbench pass (naive is always fp32)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both paths run there)")
    parser.add_argument("--synthetic", action="store_true", help="use the synthetic pool even if GSM8K is there")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gym-extras", action="store_true",
                        help="time loss_alone, dev embedding and gradient features against the base pass on the gym")
    parser.add_argument("--dev-size", type=int, default=50, help="--gym-extras: dev rows per gym test set")
    parser.add_argument("--gradient-dim", type=int, default=1024, help="--gym-extras: projection dimension")
    args = parser.parse_args(argv)
    if args.gym_extras:
        return gym_extras(args)

    import torch

    from s2lbench.signals.scoring import encode_pool
    from s2lbench.signals.signal_pass import compute_signals

    if args.threads:
        torch.set_num_threads(args.threads)
    pool, origin = load_bench_pool(args.n, args.seed, args.synthetic)
    tokenizer = train_tokenizer(pool)
    encoded = encode_pool(pool, tokenizer, args.max_length)
    lengths = [len(e.input_ids) for e in encoded]
    response = sum(e.n_response_tokens for e in encoded)
    hidden, layers, _, _ = SHAPES[args.model]
    print(f"pool: {origin}, {len(pool)} examples, tokens per example mean {np.mean(lengths):.0f} "
          f"(p50 {np.median(lengths):.0f}, max {max(lengths)}), response tokens {response / sum(lengths):.0%}")
    print(f"model: {args.model}-shaped GPT-NeoX, random init, vocab {PYTHIA_VOCAB}; tokenizer: byte-level BPE "
          f"({len(tokenizer)} tokens) trained on the pool; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    roof = matmul_roof(args.device)
    print(f"matmul roof (fp32 square matmul on {args.device}): {roof / 1e9:.1f} GFLOP/s")

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        build_checkpoint(run / "checkpoint-1", args.model, tokenizer, args.seed)
        from transformers import AutoModelForCausalLM

        m = AutoModelForCausalLM.from_pretrained(run / "checkpoint-1")
        head_params = m.get_output_embeddings().weight.numel()
        nonembed = sum(p.numel() for p in m.parameters()) - head_params - m.get_input_embeddings().weight.numel()
        del m

        rng = np.random.default_rng(args.seed)
        naive_n = min(args.naive_n, len(pool))
        positions = np.sort(rng.choice(len(pool), naive_n, replace=False))
        naive, naive_time = naive_losses(run / "checkpoint-1", pool, positions, args.max_length, args.device)
        naive_total = naive_time * len(pool) / naive_n
        naive_flops = model_flops(nonembed, head_params, layers, hidden, [lengths[p] for p in positions],
                                  sum(lengths[p] for p in positions))

        started = time.perf_counter()
        sig = compute_signals(pool, run, Path(tmp) / "signals", max_length=args.max_length,
                              batch_tokens=args.batch_tokens, dtype=args.dtype, device=args.device, progress=False)
        fast_time = time.perf_counter() - started
        fast = np.asarray(sig.get("loss"))[:, 0]
        fast_flops = model_flops(nonembed, head_params, layers, hidden, lengths, response)
        cost = sig.manifest["cost"]["per_checkpoint"][0]

    diff = float(np.abs(fast[positions] - naive).max())
    tolerance = 1e-3 if args.dtype in ("float32", "fp32") else 2e-2
    naive_share = naive_flops / naive_time / roof  # of the matmul roof
    print(f"naive   (batch 1, full logits, fp32): {naive_n} of {len(pool)} examples in {naive_time:.1f}s -> "
          f"{naive_n / naive_time:.1f} examples/s, {naive_flops / naive_time / 1e9:.1f} GFLOP/s "
          f"({naive_share:.0%} of roof); whole pool extrapolated: {naive_total:.1f}s")
    print(f"s2lbench (length-grouped batches, head on labels only, {cost['mode']}, {args.dtype}): {len(pool)} "
          f"examples in {fast_time:.1f}s -> {len(pool) / fast_time:.1f} examples/s, "
          f"{fast_flops / fast_time / 1e9:.1f} GFLOP/s ({fast_flops / fast_time / roof:.0%} of roof); "
          f"{cost['batches']} batches, padding {cost['padded_tokens'] / cost['tokens'] - 1:.1%}; "
          "also computed confidence, EL2N, pooled embedding")
    print(f"per-example loss agreement on the {naive_n} shared examples: max |diff| {diff:.2e} "
          f"(tolerance {tolerance:g}) -> {'OK' if diff <= tolerance else 'MISMATCH'}")
    print("FLOPs counted: 2 x non-embedding params x tokens + attention (4 L d T^2) + 2 x head params x tokens "
          "the head is applied to (all tokens naive, response tokens s2lbench)")
    floor = fast_flops / roof  # the s2lbench pass's matmul FLOPs at 100% of the roof
    print(f"ceiling on this machine: the s2lbench pass's FLOPs at 100% of the roof take {floor:.1f}s, so no "
          f"exact fp32 pass can beat the naive loop by more than {naive_total / floor:.2f}x here "
          f"(the naive loop runs at {naive_share:.0%} of the roof)")
    print(f"speedup {naive_total / fast_time:.2f}")
    return 0 if diff <= tolerance else 1


def gym_extras(args: argparse.Namespace) -> int:
    """The optional signals' cost on the gym pool, from one signal pass's manifest (base vs each extra)."""
    import torch

    from s2lbench.gym import GymConfig, build_gym
    from s2lbench.pool.records import Pool
    from s2lbench.signals.devsets import DevConfig, build_dev_set
    from s2lbench.signals.signal_pass import compute_signals
    from s2lbench.training.models import tiny_model

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = GymConfig(pool_size=max(args.n, 1000), seed=args.seed)
        paths = build_gym(root / "gym", config)
        from transformers import AutoTokenizer

        from s2lbench.pool.loaders import load_local

        full = load_local(paths.pool, preset="s2lbench", name="gym")
        pool = Pool(list(full)[: args.n], name="gym")
        tokenizer = AutoTokenizer.from_pretrained(paths.tokenizer)
        steps = (300, 600)
        for i, step in enumerate(steps):
            model = tiny_model("gym-proxy", tokenizer, seed=args.seed + i)
            model.save_pretrained(root / "run" / f"checkpoint-{step}")
            tokenizer.save_pretrained(root / "run" / f"checkpoint-{step}")
        from s2lbench.gym.testsets import TEST_SETS

        dev = build_dev_set([spec.name for spec in TEST_SETS], DevConfig(size=args.dev_size), data_dir=root,
                            gym_config=config, pool=full)
        n_params = sum(p.numel() for p in model.parameters())
        print(f"gym pool: {len(pool)} examples; gym-proxy {n_params} parameters (random init), {len(steps)} "
              f"checkpoints; dev split {len(dev)} rows ({args.dev_size} per test set); torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads; gradient dim {args.gradient_dim}")
        sig = compute_signals(pool, [(s, root / "run" / f"checkpoint-{s}") for s in steps], root / "signals",
                              max_length=256, ifd=True, dev=dev, device=args.device,
                              gradients={"dim": args.gradient_dim, "checkpoints": len(steps)}, progress=False)
        cost = sig.manifest["cost"]
        base = cost["base_seconds"]
        print(f"base pass (loss, confidence, EL2N, proxy embedding, response tokens): {base:.1f} s "
              f"for {len(steps)} checkpoints")
        for name, seconds in cost["extra_seconds"].items():
            rows = {"loss_alone": len(pool) * len(steps), "dev_embedding": len(dev),
                    "gradients": (len(pool) + len(dev)) * len(steps)}.get(name, 0)
            print(f"{name:<15} +{seconds:.1f} s ({seconds / base:.2f}x the base pass; {rows} example-passes)")
        grads = cost["extra_seconds"].get("gradients", 0.0)
        per = grads / max(1, (len(pool) + len(dev)) * len(steps))
        print(f"gradient features: {per * 1e3:.2f} ms per example per checkpoint; "
              f"storage {sig.get('gradients').nbytes / 2**20:.0f} MiB (float16)")
        print(f"gradients_over_base {grads / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
