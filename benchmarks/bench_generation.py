"""Benchmark: the transformers backend's decoding loop against ``model.generate`` on a gym v2 model.

The demo and the gym grid score every cell by greedy generation over seven test sets on the CPU; with
``model.generate`` a batch decodes until its last row stops, so one rambling answer costs the whole batch
``max_new_tokens`` steps. ``s2lbench.generation.greedy.compacting_greedy`` drops finished rows from the batch.
This times both loops over the same prompts, at each ``--batch-sizes``, and checks that they give identical
outputs. One process, one loop after another; run it alone on a quiet machine:

    flock /tmp/s2lbench-heavy.lock python benchmarks/bench_generation.py

Without ``--model`` it builds the demo's gym as ``s2lbench/demo.yaml`` configures it, copies the committed base
of its first target and fine-tunes it with the demo's recipe for ``--steps`` (the model then answers like a
partly trained grid cell: most rows stop, some ramble). ``--model DIR`` times a model folder instead (a
run's ``stages/finetune/<key>/run/final``), with ``--tests DIR`` the gym's ``tests/`` folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path


def fine_tuned_demo_model(work: Path, steps: int) -> tuple[Path, Path]:
    """(model folder, tests folder): the demo's gym and first target (``s2lbench/demo.yaml``), fine-tuned from
    the committed base with the demo's recipe for ``steps`` steps instead of its own."""
    import s2lbench
    from s2lbench.common.typed import from_dict
    from s2lbench.grid.experiment import load_experiment
    from s2lbench.gym import GymConfig, build_gym
    from s2lbench.gym.bases import base_model_name, committed_base
    from s2lbench.pool.loaders import load_local
    from s2lbench.training.trainer import TrainConfig, train

    demo = load_experiment(Path(s2lbench.__file__).parent / "demo.yaml")
    config = from_dict(GymConfig, demo.pool.gym, where="pool.gym")
    target = demo.targets[0]
    gym = build_gym(work / "gym", config)
    tokenizer = gym.pool.parent / "tokenizer"
    name = base_model_name(target.model)
    base = committed_base(name, tokenizer, config.base) if name else None
    if base is None:
        raise SystemExit(f"the committed {target.model} base does not match the demo's gym (see the log); "
                         "pass --model")
    recipe = {**target.train, "total_steps": steps, "n_checkpoints": 1}
    train(load_local(gym.pool), from_dict(TrainConfig, {"model": str(base), "tokenizer": str(tokenizer),
                                                       "template": config.prompt_template, **recipe}),
          work / "run")
    return work / "run" / "final", gym.pool.parent / "tests"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a model folder (default: fine-tune the demo's target)")
    parser.add_argument("--tests", type=Path, help="the gym's tests/ folder (with --model)")
    parser.add_argument("--steps", type=int, default=150, help="fine-tuning steps without --model")
    parser.add_argument("--batch-sizes", default="64,256")
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if (args.model is None) != (args.tests is None):
        parser.error("--model and --tests go together")

    import torch

    from s2lbench.generation.config import GenerationConfig
    from s2lbench.generation.hf_backend import TransformersBackend
    from s2lbench.gym.evaluators import gym_template
    from s2lbench.pool.prompts import NEXT_PROMPT, render_prompt

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-generation-") as tmp:
        model, tests = (args.model, args.tests) if args.model else fine_tuned_demo_model(Path(tmp), args.steps)
        template = gym_template(tests.parent)  # the gym's prompt template, as its evaluator prompts
        sets = {path.stem: [render_prompt(template, json.loads(line)["instruction"])
                            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
                for path in sorted(tests.glob("*.jsonl"))}
        n = sum(len(p) for p in sets.values())
        print(f"{model}: {n} prompts in {len(sets)} sets, one generate call per set (as the runner calls it), "
              f"max_new_tokens {args.max_new_tokens}, stop {NEXT_PROMPT[template]!r}, "
              f"{torch.get_num_threads()} threads")
        print(f"{'loop':<22} {'batch':>5} {'seconds':>8} {'answers/s':>10} {'identical':>10}")
        backend = TransformersBackend(model, GenerationConfig(backend="transformers"))
        reference = None
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            for compacting in (False, True):
                backend.compacting = compacting
                cfg = GenerationConfig(backend="transformers", batch_size=batch_size,
                                       max_new_tokens=args.max_new_tokens, stop=(NEXT_PROMPT[template],))
                started = time.perf_counter()
                outputs = [o for prompts in sets.values() for o in backend.generate(prompts, cfg)]
                seconds = time.perf_counter() - started
                reference = reference or outputs
                same = sum(a == b for a, b in zip(outputs, reference, strict=True))
                name = "compacting (default)" if compacting else "model.generate"
                print(f"{name:<22} {batch_size:>5} {seconds:>8.2f} {n / seconds:>10.1f} {same:>6}/{n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
