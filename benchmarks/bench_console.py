"""Benchmark: what the console's live view costs a training step (issue #41: "keep it negligible").

Two measurements, one process:

1. **Bounds from the parts.** Per training step the console adds one ``Activity.update`` and one
   ``console.tick`` on the training thread (timed over many calls), and rich's refresh thread redraws the live
   view ``REFRESH_PER_SECOND`` times a second whatever the steps do (one redraw timed, into ``/dev/null`` as if
   it were a terminal). The thread's share of a core is ``redraw x rate``; on a machine whose cores training
   already fills, that share is the most it can take from training.
2. **Training with and without it.** ``train`` runs ``--steps`` steps of the demo's target (``gym-target-l``,
   batch 32, max length 256, on a small gym built here) with the live view drawing to ``/dev/null`` as a
   terminal, and with the console quiet (no view), alternating ``--repeats`` times; each line is Trainer's
   loop time per step (``train_runtime``: without model set-up). On a shared machine the difference is
   within noise; the bound in (1) is the figure to quote.

Run alone (it trains):

    flock /tmp/cpu.lock .venv/bin/python benchmarks/bench_console.py
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def time_per_call(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def parts(console) -> tuple[float, float]:
    """(seconds per update + tick on the training thread, seconds per redraw of the live view)."""
    devnull = open(os.devnull, "w")
    console.configure(console.NORMAL, stream=devnull, interactive=True)
    with console.grid(4), console.cell("t__s2l__10%__s0", "target-l · s2l · 10% · seed 0"), \
            console.stage("finetune"), console.activity(total=10**9) as work:
        step = [0]

        def one_step():
            step[0] += 1
            work.update(step[0])
            console.tick()

        work.update(0, loss=0.114)
        per_update = time_per_call(one_step, 200_000)
        live = console.get()._live
        per_redraw = time_per_call(live.refresh, 300)
    console.get().reset()
    return per_update, per_redraw


def build_pool(folder: Path, rows: int):
    from s2lbench.gym.build import GymConfig, build_gym
    from s2lbench.pool.loaders import load_local

    build_gym(folder, GymConfig(pool_size=rows, test_size=10, seed=0))
    return load_local(folder / "pool.jsonl", preset="s2lbench", name="gym"), folder / "tokenizer"


def train_once(console, pool, tokenizer: Path, steps: int, live: bool, out: Path) -> float:
    from s2lbench.training.trainer import TrainConfig, train

    devnull = open(os.devnull, "w")
    console.configure(console.NORMAL if live else console.QUIET, stream=devnull, interactive=live)
    config = TrainConfig(model="gym-target-l", tokenizer=str(tokenizer), schedule="steps", total_steps=steps,
                         batch_size=32, learning_rate=2e-3, max_length=256, n_checkpoints=0, logging_steps=10,
                         template="qa")
    with console.grid(1), console.cell("t__s2l__10%__s0", "target-l · s2l · 10% · seed 0"), console.stage("finetune"):
        result = train(pool, config, out)
    console.get().reset()
    import json

    loop = json.loads((out / "run.json").read_text())["loop_seconds"]
    assert result.total_steps == steps
    return loop / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rows", type=int, default=1200)
    parser.add_argument("--parts-only", action="store_true", help="only the bounds from the parts (no training)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from s2lbench.common import console

    per_update, per_redraw = parts(console)
    share = per_redraw * console.REFRESH_PER_SECOND
    print(f"update + tick per training step: {per_update * 1e6:.2f} us (training thread)")
    print(f"one redraw of the live view: {per_redraw * 1e3:.3f} ms; at {console.REFRESH_PER_SECOND}/s the "
          f"refresh thread uses {100 * share:.2f}% of one core")
    if args.parts_only:
        return 0
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        pool, tokenizer = build_pool(Path(tmp) / "gym", args.rows)
        seconds: dict[str, list[float]] = {"quiet": [], "live view": []}
        for repeat in range(args.repeats):
            for name in ("quiet", "live view") if repeat % 2 == 0 else ("live view", "quiet"):
                out = Path(tmp) / f"{name.replace(' ', '-')}-{repeat}"
                seconds[name].append(train_once(console, pool, tokenizer, args.steps, name == "live view", out))
                print(f"  {name:<9} repeat {repeat}: {seconds[name][-1] * 1e3:.1f} ms/step", file=sys.stderr)
    quiet, live = statistics.median(seconds["quiet"]), statistics.median(seconds["live view"])
    bound = per_update + share * quiet
    print(f"training step ({args.steps} steps, median of {args.repeats}): quiet {quiet * 1e3:.1f} ms, "
          f"live view {live * 1e3:.1f} ms (measured difference {100 * (live - quiet) / quiet:+.1f}%, noise "
          "included)")
    print(f"console overhead per training step (bound from the parts): {bound * 1e3:.3f} ms of "
          f"{quiet * 1e3:.1f} ms = {100 * bound / quiet:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
