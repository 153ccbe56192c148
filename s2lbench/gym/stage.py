"""The gym's two stages: the build (pool, test sets, tokenizer) and a tiny model's pre-trained base.

Each stage is a spec (what its folder is keyed on) and a compute (what fills the folder); the runner hands
both to the stage store.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from s2lbench.common.atomic import atomic_dir
from s2lbench.common.fingerprint import file_fingerprint
from s2lbench.gym.bases import base_model_name, committed_base, pretrain_base
from s2lbench.gym.build import GymConfig, build_gym

log = logging.getLogger(__name__)

GYM = "gym"
BASE = "gym-base"


def gym_spec(config: GymConfig) -> dict[str, Any]:
    return config.stage_spec()


def compute_gym(folder: Path, config: GymConfig) -> dict[str, Any]:
    paths = build_gym(folder / "gym", config)
    return {"pool": str(paths.pool.relative_to(folder))}


def base_spec(model: str, config: GymConfig, gym_dir: Path, gym_key: str) -> dict[str, Any] | None:
    """What a ``gym-base:NAME`` model is keyed on (the gym and the base recipe); None for any other model."""
    name = base_model_name(model)
    if name is None:
        return None
    recipe = config.base.spec()
    if config.tokenizer == "shared":  # one tokenizer for every such gym: one base per model
        return {"tokenizer": file_fingerprint(gym_dir / "tokenizer" / "tokenizer.json"), "model": name,
                "recipe": recipe}
    return {"gym": gym_key, "model": name, "recipe": recipe}


def compute_base(folder: Path, model: str, config: GymConfig, gym_dir: Path) -> dict[str, Any]:
    """The base of ``gym-base:NAME``: a matching committed base copied in (shared tokenizers only: a per-pool
    tokenizer is this gym's alone), else NAME pre-trained on the gym's corpus."""
    name, tokenizer = base_model_name(model), gym_dir / "tokenizer"
    committed = committed_base(name, tokenizer, config.base) if config.tokenizer == "shared" else None
    if committed is not None:
        with atomic_dir(folder / "base") as tmp:
            shutil.copytree(committed, tmp, dirs_exist_ok=True)
        log.info("gym base %s: the committed one (%s)", name, committed)
        return {"path": "base", "source": "committed"}
    return {"path": str(pretrain_base(name, tokenizer, folder / "base", config.base).relative_to(folder)),
            "source": "pre-trained"}
