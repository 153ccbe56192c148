"""`s2lbench train --pool FILE --model NAME --out DIR`: fine-tune a causal LM with response-only loss."""

from __future__ import annotations

import argparse
from pathlib import Path

from s2lbench.commands.base import Command, seed_type
from s2lbench.commands.data import add_pool_arguments, open_pool_from_args
from s2lbench.common import console
from s2lbench.common.atomic import check_output_path
from s2lbench.common.typed import from_dict
from s2lbench.gym.evaluators import gym_template
from s2lbench.pool.prompts import TEMPLATES
from s2lbench.training.models import GYM_TRAINING, TINY_CONFIGS


class TrainCommand(Command):
    name = "train"
    help = "fine-tune a causal LM on a pool (HF Trainer, loss on response tokens, checkpoints, resume)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--pool", required=True, help="pool file (.jsonl/.json/.csv) or hf://owner/name")
        add_pool_arguments(parser)
        parser.add_argument("--model", required=True,
                            help="hub id, local model dir, .gguf file, or a built-in tiny config "
                                 "(gym-proxy, gym-target-s, gym-target-l)")
        parser.add_argument("--tokenizer", default=None,
                            help="tokenizer dir or hub id (default: the model's; for tiny configs the "
                                 "tokenizer/ folder beside the pool)")
        parser.add_argument("--out", required=True, help="run folder (re-running resumes it)")
        schedule = parser.add_mutually_exclusive_group()
        schedule.add_argument("--steps", type=int, default=None,
                              help="fixed schedule: this many optimizer steps whatever the pool size")
        schedule.add_argument("--epochs", type=float, default=None, help="train this many passes over the pool")
        saving = parser.add_mutually_exclusive_group()
        saving.add_argument("--save-every", type=int, default=None, help="checkpoint every K steps")
        saving.add_argument("--n-checkpoints", type=int, default=None, help="N evenly spaced checkpoints")
        parser.add_argument("--lr", type=float, default=None, help="learning rate")
        parser.add_argument("--lr-scheduler", default=None, help="HF scheduler name (default cosine)")
        parser.add_argument("--warmup-ratio", type=float, default=None)
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--grad-accum", type=int, default=None)
        parser.add_argument("--max-length", type=int, default=None)
        parser.add_argument("--seed", type=seed_type, default=None)
        parser.add_argument("--bf16", default=None, choices=["auto", "true", "false"])
        parser.add_argument("--logging-steps", type=int, default=None)
        parser.add_argument("--template", default=None, choices=sorted(TEMPLATES),
                            help="prompt template (default: the gym's when the pool is a gym build's, else alpaca)")

    def run(self, args: argparse.Namespace) -> int:
        from s2lbench.training.trainer import TrainConfig, train

        data: dict = dict(GYM_TRAINING) if args.model in TINY_CONFIGS else {}
        data["model"] = args.model
        tokenizer = args.tokenizer
        if tokenizer is None and args.model in TINY_CONFIGS and not str(args.pool).startswith("hf://"):
            beside = Path(args.pool).parent / "tokenizer"
            if beside.is_dir():
                tokenizer = str(beside)
        data["tokenizer"] = tokenizer
        data["template"] = args.template or _gym_template_beside(args.pool) or "alpaca"
        if args.steps is not None:
            data.update(schedule="steps", total_steps=args.steps)
        elif args.epochs is not None:
            data.update(schedule="epochs", epochs=args.epochs)
        elif "total_steps" not in data:
            data.update(schedule="epochs")
        for key, value in (("save_every", args.save_every), ("n_checkpoints", args.n_checkpoints),
                           ("learning_rate", args.lr), ("lr_scheduler", args.lr_scheduler),
                           ("warmup_ratio", args.warmup_ratio), ("batch_size", args.batch_size),
                           ("grad_accum", args.grad_accum), ("max_length", args.max_length), ("seed", args.seed),
                           ("bf16", args.bf16), ("logging_steps", args.logging_steps)):
            if value is not None:
                data[key] = value
        config = from_dict(TrainConfig, data)

        out = check_output_path(args.out, kind="folder")
        pool = open_pool_from_args(args.pool, args)
        existed = out.exists()
        try:
            console.log_to(out, "train")
            result = train(pool, config, out)
        except BaseException:
            _remove_if_nothing_saved(out, existed)
            raise
        print(f"final model: {result.model_dir}")
        print(f"checkpoints: {', '.join(str(step) for step, _ in result.checkpoints) or 'none'}")
        print(f"steps {result.total_steps} ({result.epochs:.2f} epochs), {result.train_tokens} tokens, "
              f"{result.flops:.3g} FLOPs, {result.wall_seconds:.1f}s, final loss {result.final_loss}")
        console.say(f"log: {console.log_file()}")
        return 0


def _gym_template_beside(pool: str) -> str | None:
    """The template of the gym a pool file was built in (its gym.json), so ``train`` prompts as the gym
    evaluator will; None for any other pool."""
    if str(pool).startswith("hf://") or not (Path(pool).parent / "gym.json").is_file():
        return None

    return gym_template(Path(pool).parent)


def _remove_if_nothing_saved(out: Path, existed: bool) -> None:
    """A run folder this command created and that holds no checkpoint or model is removed: a failed or
    interrupted ``train`` leaves nothing that looks like a run (one with checkpoints stays, to resume)."""
    import shutil

    if existed or not out.is_dir():
        return
    kept = [p for p in out.rglob("*") if p.is_dir() and (p.name.startswith("checkpoint-") or p.name == "final")]
    if not kept:
        shutil.rmtree(out, ignore_errors=True)
