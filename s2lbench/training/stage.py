"""The two training stages: the proxy (trained on the whole pool, with checkpoints) and a target's
fine-tune on a subset. One trainer serves both; what differs is what the stage is keyed on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from s2lbench.common.fingerprint import ids_hash
from s2lbench.common.typed import from_dict
from s2lbench.errors import ConfigError
from s2lbench.pool.records import Pool
from s2lbench.training.trainer import TrainConfig, planned_steps, train

PROXY = "proxy"
FINETUNE = "finetune"


def train_config(model: str, tokenizer: str | None, train: dict[str, Any], seed: int | None = None, *,
                 template: str | None = None) -> TrainConfig:
    """A model's TrainConfig from its config block. ``template``: the prompt template the pool's rows are
    prompted with where the pool fixes one (the gym), refused if the block names another."""
    data = {"model": model, "tokenizer": tokenizer, **train}
    if template is not None and data.setdefault("template", template) != template:
        raise ConfigError(f"train.template: {data['template']!r}, but this gym is prompted with {template!r} "
                          "(its evaluation uses that too); set pool.gym.template instead")
    if seed is not None:
        data["seed"] = seed
    return from_dict(TrainConfig, data, where="train")


def proxy_spec(pool: Pool, train: dict[str, Any], base: dict[str, Any] | None,
               keep_adam_state: bool = False) -> dict[str, Any]:
    """``train``: the TrainConfig as a dict, paths into the stage cache made portable by the caller."""
    spec: dict[str, Any] = {"pool": pool.fingerprint(), "train": train}
    if base is not None:
        spec["base"] = base
    if keep_adam_state:
        spec["keep_adam_state"] = True
    return spec


def compute_proxy(folder: Path, pool: Pool, config: TrainConfig,
                  eval_hook: Callable[[int, Path], Any] | None = None, label: str | None = None) -> dict[str, Any]:
    result = train(pool, config, folder / "run", eval_hook=eval_hook, label=label)
    return {"seconds": result.wall_seconds, "flops": result.flops,
            "checkpoints": [[s, str(Path(p).relative_to(folder))] for s, p in result.checkpoints]}


def finetune_spec(pool: Pool, ids: list[str], train: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"pool": pool.fingerprint(), "ids": ids_hash(ids), "train": train}
    if base is not None:
        spec["base"] = base
    return spec


def compute_finetune(folder: Path, subset: Pool, config: TrainConfig, label: str | None = None) -> dict[str, Any]:
    result = train(subset, config, folder / "run", label=label)
    return {"seconds": result.wall_seconds, "flops": result.flops,
            "model_dir": str(Path(result.model_dir).relative_to(folder))}


def compute_matched_config(config: TrainConfig, n_examples: int, selection_flops: float,
                           fixed_flops: float) -> tuple[TrainConfig, dict[str, float]]:
    """The fine-tune of a compute-matched row: the fixed schedule's steps plus the optimizer steps that
    ``selection_flops`` (another selector's proxy training + signal pass + selection, as recorded) buys on
    the target, at the FLOPs per step the fixed-schedule fine-tune of the same subset recorded
    (``fixed_flops`` over its steps). Extra steps are whole steps (rounded down); the schedule stretches
    over the longer run (warmup and decay follow ``total_steps``). Returns the config and what it added."""
    base_steps = planned_steps(config, n_examples)
    if fixed_flops <= 0:
        raise ConfigError("compute_matched: the fixed-schedule fine-tune recorded no FLOPs, so the steps the "
                          "selection's compute buys cannot be computed")
    per_step = fixed_flops / base_steps
    extra = int(max(0.0, selection_flops) // per_step)
    matched = dataclasses.replace(config, schedule="steps", total_steps=base_steps + extra)
    return matched, {"matched_selection_flops": float(selection_flops), "matched_flops_per_step": per_step,
                     "matched_base_steps": float(base_steps), "matched_extra_steps": float(extra)}
