"""Calibration probe for configs/radiology.yaml: does a base pre-trained on the training split's text help?

Pre-trains the target's tiny config (from scratch, the grid's 2,000-token pool tokenizer) as a plain language
model on the training side of the seeded split only: each training report's indication and findings (never an
impression, never a test report), packed into blocks of 128 tokens. Prints the base's folder and the command
that fine-tunes and scores the full-pool reference from it, to compare with the from-scratch full reference
(docs/radiology.md, "Base pre-training or from scratch"). Nothing derived from the reports leaves --out.

    flock /tmp/cpu.lock python benchmarks/probe_radiology_base.py --out /work/wt/runs/radiology-base --steps 300
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from s2lbench.common.files import read_json
from s2lbench.grid.experiment import load_experiment
from s2lbench.grid.runner import Runner
from s2lbench.gym.bases import BaseRecipe, pretrain_base

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "radiology.yaml"


def training_documents(runner: Runner) -> list[str]:
    """Indication + findings of every report in the training pool (the split the grid trains on)."""
    train_ids = {ex.id.split("-", 1)[1] for ex in runner.pool}
    docs = []
    with open(runner.pool_path(), newline="") as f:
        for row in csv.DictReader(f):
            if row.get("uid") in train_ids:
                text = " ".join(" ".join((row.get(k) or "").split()) for k in ("indication", "findings")).strip()
                if text:
                    docs.append(text)
    return docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for the probe's stages and the base")
    parser.add_argument("--steps", type=int, default=300, help="pre-training steps (batch 32 x 128 tokens)")
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    args = parser.parse_args()
    config = load_experiment(CONFIG)
    target = config.targets[0]
    runner = Runner(config, Path(args.out) / "stages-run")
    tokenizer = runner.train_config(target.model, target.tokenizer, target.train).tokenizer
    docs = training_documents(runner)
    started = time.perf_counter()
    recipe = BaseRecipe(steps=args.steps, batch_size=32, block_size=128, learning_rate=args.learning_rate)
    base = pretrain_base(target.model, tokenizer, Path(args.out) / f"base-{args.steps}", recipe, corpus=docs)
    meta = read_json(base / "base.json")
    print(f"base {base}: {len(docs)} training-split documents, {meta['corpus']['tokens']:,} tokens "
          f"({meta['epochs']:.1f} epochs), final loss {meta['final_loss']}, {time.perf_counter() - started:.0f} s")
    print("fine-tune and score its full reference (seed 0):\n  s2lbench run configs/radiology.yaml "
          f"--out {args.out}/run --only __full__100%__s0 --set targets.0.model={base}")


if __name__ == "__main__":
    main()
