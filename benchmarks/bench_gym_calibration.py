"""Calibrate the gym on this machine: prints the figures docs/gym.md reports (full pool and random subsets only).

1. time to build the gym (and, with --base, to pre-train the target's base on the generated corpus);
2. the target trained on the full pool: wall time, steps, tokens and exact match on every test set;
3. the same target on a seeded random subset with the same fixed schedule (same steps, same LR schedule);
4. with --seeds N, steps 2-3 for N training seeds from --first-seed (the seed spread), and with --curve K, exact match of
   K evenly spaced checkpoints of each run (accuracy against steps and minutes).

Never point it at a selector: calibration looks at the full pool and random subsets only.

Run under the heavy-job lock, e.g. (v1, as the committed v1 figures were measured):
  flock /tmp/s2lbench-heavy.lock python benchmarks/bench_gym_calibration.py
gym v2 from a pre-trained base:
  flock /tmp/s2lbench-heavy.lock timeout 900 python benchmarks/bench_gym_calibration.py --version 2 \\
      --pool-size 8000 --steps 200 --lr 1e-3 --base 600 --skip-proxy
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
    parser.add_argument("--version", type=int, default=1, help="gym version (pool.gym.version)")
    parser.add_argument("--pool-size", type=int, default=None)
    parser.add_argument("--level-weights", default=None, help="e.g. 0.3,0.4,0.3")
    parser.add_argument("--template", help="pool.gym.template (default: the version's)")
    parser.add_argument("--tokenizer", choices=("pool", "shared"), default=None,
                        help="pool.gym.tokenizer (default: the version's, i.e. trained on this pool); with 'shared' "
                             "a --base recipe that matches a committed base uses it instead of pre-training")
    parser.add_argument("--target", default="gym-target-l")
    parser.add_argument("--shape", metavar="LAYERS,HIDDEN,HEADS",
                        help="probe a model size that is not a registered tiny config: --target then names it, "
                             "with the gym's other GPT-NeoX settings and intermediate size 4 x HIDDEN")
    parser.add_argument("--steps", type=int, default=None, help="fixed schedule steps (default GYM_TRAINING)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--weight-decay", type=float, default=None, help="SFT weight decay (default TrainConfig's, 0)")
    parser.add_argument("--group-by-length", action="store_true")
    parser.add_argument("--base", type=int, default=0, metavar="STEPS",
                        help="pre-train the target on the gym corpus for STEPS first (SFT then starts from it)")
    parser.add_argument("--base-documents", type=int, default=None, metavar="N",
                        help="pre-training corpus documents for the base (default: CorpusConfig's)")
    parser.add_argument("--base-lr", type=float, default=None, help="base pre-training learning rate")
    parser.add_argument("--compact-facts", action="store_true",
                        help="the base's corpus also writes digit facts compactly (CorpusConfig.compact_facts)")
    parser.add_argument("--proxy-steps", type=int, default=None)
    parser.add_argument("--subset-fraction", type=float, default=0.1)
    parser.add_argument("--seeds", type=int, default=1, help="training seeds FIRST..FIRST+N-1 for each run")
    parser.add_argument("--first-seed", type=int, default=42,
                        help="first training seed (default 42, TrainConfig's, as the v1 figures were measured)")
    parser.add_argument("--no-subset", action="store_true", help="full pool only")
    parser.add_argument("--no-full", action="store_true", help="random subset only (its full-pool run done before)")
    parser.add_argument("--curve", type=int, default=1, help="evaluate this many evenly spaced checkpoints")
    parser.add_argument("--eval-n", type=int, default=200, help="test rows scored per set")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-proxy", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here (benchmarks/plot_gym_calibration.py "
                                                  "draws them)")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from s2lbench.gym import GymConfig, build_gym
    from s2lbench.gym.bases import BaseRecipe, committed_base, pretrain_base
    from s2lbench.gym.corpus import CorpusConfig
    from s2lbench.gym.score import exact_match, read_test_set
    from s2lbench.pool.loaders import load_local
    from s2lbench.training.models import GYM_TRAINING
    from s2lbench.training.trainer import TrainConfig, config_key, train

    torch.set_num_threads(args.threads)
    if args.shape:
        from s2lbench.training.models import _COMMON, TINY_CONFIGS

        layers, hidden, heads = (int(v) for v in args.shape.split(","))
        if args.target in TINY_CONFIGS:
            parser.error(f"--shape: {args.target!r} is a registered tiny config; give the probe another --target")
        TINY_CONFIGS[args.target] = dict(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads,
                                         intermediate_size=4 * hidden, **_COMMON)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="gym-calib-"))
    figures: dict = {"threads": args.threads, "workdir": str(work), "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}

    overrides: dict = {"version": args.version}
    if args.pool_size:
        overrides["pool_size"] = args.pool_size
    if args.template:
        overrides["template"] = args.template
    if args.tokenizer:
        overrides["tokenizer"] = args.tokenizer
    if args.level_weights:
        overrides["level_weights"] = tuple(float(w) for w in args.level_weights.split(","))
    gym_config = GymConfig.small(**overrides) if args.small else GymConfig(**overrides)
    t0 = time.perf_counter()
    paths = build_gym(work / "gym", gym_config)
    figures["build_seconds"] = round(time.perf_counter() - t0, 1)
    pool = load_local(paths.pool)
    recipe = dict(GYM_TRAINING)
    for key, value in (("total_steps", args.steps), ("batch_size", args.batch_size), ("learning_rate", args.lr),
                       ("weight_decay", args.weight_decay)):
        if value is not None:
            recipe[key] = value
    model = args.target
    if args.base:
        t = time.perf_counter()
        corpus = CorpusConfig(compact_facts=args.compact_facts)
        if args.base_documents:
            corpus = replace(corpus, documents=args.base_documents)
        base_recipe = BaseRecipe(steps=args.base, corpus=corpus)
        if args.base_lr:
            base_recipe = replace(base_recipe, learning_rate=args.base_lr)
        # named by the whole recipe, so a reused workdir never hands one recipe's base to another
        base_dir = committed_base(args.target, paths.tokenizer, base_recipe) or pretrain_base(
            args.target, paths.tokenizer, work / f"base-{args.target}-{base_recipe.key}", base_recipe)
        figures["base"] = {**json.loads((base_dir / "base.json").read_text()), "folder": str(base_dir),
                           "seconds_here": round(time.perf_counter() - t, 1)}
        print(json.dumps({"base": figures["base"]}, indent=2), flush=True)
        model = str(base_dir)
    base = TrainConfig(model=model, tokenizer=str(paths.tokenizer), group_by_length=args.group_by_length,
                       template=gym_config.prompt_template,
                       n_checkpoints=args.curve, **recipe)
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
    specs = gym_config.design.test_sets
    tests = {spec.name: read_test_set(paths.tests[spec.name])[: args.eval_n] for spec in specs}
    figures["test_sets"] = {spec.name: spec.in_domain for spec in specs}
    runs = ([] if args.no_full else [("target_full", pool)]) + \
        ([] if args.no_subset else [(f"target_random_{args.subset_fraction:g}", subset)])
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for label, data in runs:
            label = f"{label}_seed{seed}"
            run_config = replace(base, seed=seed)
            # named by the whole training config too: a reused workdir adds runs of another recipe or base
            run_dir = work / f"{label}-{config_key(run_config)}"
            result = train(data, run_config, run_dir)
            curve = []
            for step, ckpt in result.checkpoints:
                net = AutoModelForCausalLM.from_pretrained(ckpt)
                t = time.perf_counter()
                scores = {name: round(100 * exact_match(net, tokenizer, rows, template=base.template), 1) for name, rows in tests.items()}
                in_domain = [scores[s.name] for s in specs if s.in_domain]
                curve.append({"step": step, "exact_match_%": scores,
                              "in_domain_mean_%": round(sum(in_domain) / len(in_domain), 1),
                              "eval_seconds": round(time.perf_counter() - t, 1)})
            figures[label] = {"model": args.target, "from_base": bool(args.base), "params": result.n_params,
                              "examples": len(data), "steps": result.total_steps, "epochs": round(result.epochs, 2),
                              "train_tokens": result.train_tokens, "wall_seconds": round(result.wall_seconds, 1),
                              "final_loss": result.final_loss, "run_dir": str(run_dir), "curve": curve}
            print(json.dumps({label: figures[label]}), flush=True)
    print("CALIBRATION", json.dumps(figures, indent=2))
    if args.json:
        from s2lbench.common.atomic import write_json

        write_json(args.json, figures)


if __name__ == "__main__":
    main()
