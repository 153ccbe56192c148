"""The two training stages: the proxy (trained on the whole pool, with checkpoints) and a target's
fine-tune on a subset. One trainer serves both; what differs is what the stage is keyed on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from s2lbench.common.fingerprint import ids_hash
from s2lbench.common.typed import from_dict
from s2lbench.errors import ConfigError
from s2lbench.pool.records import Pool
from s2lbench.training.trainer import TrainConfig, train

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
