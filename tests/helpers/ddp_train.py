"""Launched by tests/test_training_ddp.py under ``torchrun --nproc_per_node N`` (or alone): train the gym
proxy on a built gym's pool and record, per rank, every file the training component wrote.

    python tests/helpers/ddp_train.py GYM_DIR OUT_DIR [--stop-at STEP]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import s2lbench.common.atomic
import s2lbench.training.trainer as training
from s2lbench.pool.loaders import load_local

parser = argparse.ArgumentParser()
parser.add_argument("gym")
parser.add_argument("out")
parser.add_argument("--stop-at", type=int, default=None, help="rank 0 dies right after this checkpoint")
args = parser.parse_args()
logging.basicConfig(level=logging.INFO)  # the test reads "resuming from" in the log
rank = int(os.environ.get("RANK", "0"))
writes: list[str] = []

for module in (s2lbench.common.atomic, training):  # training imported write_json / atomic_dir by name
    for name in ("write_json", "atomic_dir"):
        original = getattr(module, name, None)
        if original is not None:
            def spy(path, *a, _original=original, **k):
                writes.append(str(Path(path).relative_to(args.out)) if str(path).startswith(args.out) else str(path))
                return _original(path, *a, **k)
            setattr(module, name, spy)


def stop(step, _checkpoint):
    if step == args.stop_at:
        os._exit(17)  # a kill right after a checkpoint: torchrun tears the other ranks down
    return None


pool = load_local(Path(args.gym) / "pool.jsonl")
config = training.TrainConfig(model="gym-proxy", tokenizer=str(Path(args.gym) / "tokenizer"), total_steps=8,
                              batch_size=8, learning_rate=3e-3, max_length=96, logging_steps=1, bf16=False,
                              seed=3, save_every=4)
result = training.train(pool.subset(list(range(96)), name="ddp"), config, args.out, eval_hook=stop)
losses = [h["loss"] for h in result.log_history if "loss" in h]
with open(Path(args.out).parent / f"{Path(args.out).name}.rank{rank}.json", "w") as f:
    json.dump({"rank": rank, "writes": writes, "losses": losses, "epochs": result.epochs}, f)
