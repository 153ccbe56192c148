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
from s2lbench.gym.bases import committed_base, pretrain_base
from s2lbench.gym.build import GymConfig, build_gym

log = logging.getLogger(__name__)

GYM = "gym"
BASE = "gym-base"


def gym_spec(config: GymConfig) -> dict[str, Any]:
    return config.stage_spec()


def compute_gym(folder: Path, config: GymConfig) -> dict[str, Any]:
    paths = build_gym(folder / "gym", config)
    return {"pool": str(paths.pool.relative_to(folder))}


def base_spec(name: str, config: GymConfig, gym_dir: Path, gym_key: str) -> dict[str, Any]:
    """What the base of ``gym-base:NAME`` is keyed on (the gym, or its shared tokenizer, and the base recipe)."""
    recipe = config.base.spec()
    if config.tokenizer == "shared":  # one tokenizer for every such gym: one base per model
        return {"tokenizer": file_fingerprint(gym_dir / "tokenizer" / "tokenizer.json"), "model": name,
                "recipe": recipe}
    return {"gym": gym_key, "model": name, "recipe": recipe}


def compute_base(folder: Path, name: str, config: GymConfig, gym_dir: Path) -> dict[str, Any]:
    """The base of ``gym-base:NAME``: a matching committed base copied in (shared tokenizers only: a per-pool
    tokenizer is this gym's alone), else NAME pre-trained on the gym's corpus."""
    tokenizer = gym_dir / "tokenizer"
    committed = committed_base(name, tokenizer, config.base) if config.tokenizer == "shared" else None
    if committed is not None:
        with atomic_dir(folder / "base") as tmp:
            shutil.copytree(committed, tmp, dirs_exist_ok=True)
        log.info("gym base %s: the committed one (%s)", name, committed)
        return {"path": "base", "source": "committed"}
    return {"path": str(pretrain_base(name, tokenizer, folder / "base", config.base).relative_to(folder)),
            "source": "pre-trained"}
