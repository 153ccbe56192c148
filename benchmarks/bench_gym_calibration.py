"""Calibrate the gym on this machine: prints the figures docs/gym.md reports.

1. time to build the gym and to train the proxy on the full pool;
2. the largest target trained on the full pool: wall time and exact match on all six test sets;
3. the same target on a seeded random 10% subset with the same fixed schedule (same steps, same LR schedule).

Run under the heavy-job lock:  flock /tmp/s2lbench-heavy.lock python benchmarks/bench_gym_calibration.py
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=None, help="default: a fresh temporary folder")
    parser.add_argument("--small", action="store_true", help="GymConfig.small() instead of the default pool")
    parser.add_argument("--target", default="gym-target-l")
    parser.add_argument("--steps", type=int, default=None, help="fixed schedule steps (default GYM_TRAINING)")
    parser.add_argument("--proxy-steps", type=int, default=None)
    parser.add_argument("--subset-fraction", type=float, default=0.1)
    parser.add_argument("--eval-n", type=int, default=200, help="test rows scored per set")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-proxy", action="store_true")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from s2lbench.data import load_local
    from s2lbench.gym import GYM_TRAINING, TEST_SETS, GymConfig, build_gym
    from s2lbench.gym.score import exact_match, read_test_set
    from s2lbench.training import TrainConfig, train

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="gym-calib-"))
    figures: dict = {"threads": args.threads, "workdir": str(work)}

    t0 = time.perf_counter()
    paths = build_gym(work / "gym", GymConfig.small() if args.small else GymConfig())
    figures["build_seconds"] = round(time.perf_counter() - t0, 1)
    pool = load_local(paths.pool)
    base = TrainConfig(model=args.target, tokenizer=str(paths.tokenizer),
                       **{**GYM_TRAINING, **({"total_steps": args.steps} if args.steps else {})})
    figures["pool_rows"], figures["steps"], figures["batch_size"] = len(pool), base.total_steps, base.batch_size

    if not args.skip_proxy:
        proxy_cfg = replace(base, model="gym-proxy", n_checkpoints=10,
                            total_steps=args.proxy_steps or base.total_steps)
        proxy = train(pool, proxy_cfg, work / "proxy")
        figures["proxy"] = {"params": proxy.n_params, "steps": proxy.total_steps,
                            "epochs": round(proxy.epochs, 2), "wall_seconds": round(proxy.wall_seconds, 1),
                            "final_loss": proxy.final_loss}

    rng = random.Random(0)
    subset = pool.subset(sorted(rng.sample(range(len(pool)), round(args.subset_fraction * len(pool)))),
                         name="random-subset")
    tokenizer = AutoTokenizer.from_pretrained(paths.tokenizer)
    tests = {spec.name: read_test_set(paths.tests[spec.name])[: args.eval_n] for spec in TEST_SETS}
    for label, data in (("target_full", pool), (f"target_random_{args.subset_fraction:g}", subset)):
        result = train(data, base, work / label)
        model = AutoModelForCausalLM.from_pretrained(result.model_dir)
        t = time.perf_counter()
        scores = {name: round(100 * exact_match(model, tokenizer, rows), 1) for name, rows in tests.items()}
        in_domain = [scores[s.name] for s in TEST_SETS if s.in_domain]
        figures[label] = {"model": args.target, "params": result.n_params, "examples": len(data),
                          "steps": result.total_steps, "epochs": round(result.epochs, 2),
                          "wall_seconds": round(result.wall_seconds, 1), "final_loss": result.final_loss,
                          "exact_match_%": scores, "in_domain_mean_%": round(sum(in_domain) / len(in_domain), 1),
                          "eval_seconds": round(time.perf_counter() - t, 1)}
        print(json.dumps({label: figures[label]}, indent=2), flush=True)
    print("CALIBRATION", json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
