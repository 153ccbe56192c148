"""A base pre-trained on the pool's own inputs, for built-in tiny models outside the gym.

A model config names it as ``model: pool-base:NAME`` (``NAME`` a built-in tiny config, e.g.
``pool-base:gym-target-s``): NAME pre-trained as a plain language model on the training pool's inputs -- each
row's ``input`` (the instruction where a row has none), never a response and never a test example -- with the
experiment's tokenizer, packed into blocks. It plays the part a pre-trained checkpoint plays in the paper
(Pythia is pre-trained before anyone fine-tunes it) for tiny models that have never seen the domain's language:
on the radiology reports it is the training split's findings. The recipe is the experiment's ``pool_base``
block (defaults: :class:`PoolBaseRecipe`). It is a stage of the run keyed on the pool's fingerprint, the
tokenizer's file, the model and the recipe, computed once and shared by every fine-tune that starts from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from s2lbench.common.fingerprint import file_fingerprint
from s2lbench.errors import ConfigError
from s2lbench.gym.bases import BaseRecipe, pretrain_base
from s2lbench.pool.records import Pool

POOL_BASE = "pool-base"
PREFIX = "pool-base:"


@dataclass(frozen=True)
class PoolBaseRecipe:
    """How ``pool-base:NAME`` bases are pre-trained (steps of ``batch_size`` blocks of ``block_size`` tokens)."""

    steps: int = 300
    batch_size: int = 32
    block_size: int = 128
    learning_rate: float = 3e-3
    warmup_ratio: float = 0.05
    seed: int = 0

    def __post_init__(self):
        self.base_recipe()  # the same checks as a gym base's recipe

    def base_recipe(self) -> BaseRecipe:
        return BaseRecipe(steps=self.steps, batch_size=self.batch_size, block_size=self.block_size,
                          learning_rate=self.learning_rate, warmup_ratio=self.warmup_ratio, seed=self.seed)


def pool_base_name(model: str | None) -> str | None:
    """``gym-target-s`` for ``pool-base:gym-target-s``; None for any other model field."""
    return model[len(PREFIX):] if model and model.startswith(PREFIX) else None


def pool_documents(pool: Pool) -> list[str]:
    """What a pool base reads: each row's input (its instruction where it has none); never an output."""
    docs = [" ".join((ex.input or ex.instruction).split()) for ex in pool]
    docs = [d for d in docs if d]
    if not docs:
        raise ConfigError(f"pool-base: pool {pool.name!r} has no input or instruction text to pre-train on")
    return docs


def pool_base_spec(pool: Pool, name: str, tokenizer_dir: str | Path, recipe: PoolBaseRecipe) -> dict[str, Any]:
    return {"pool": pool.fingerprint(), "model": name,
            "tokenizer": file_fingerprint(Path(tokenizer_dir) / "tokenizer.json"), "recipe": asdict(recipe)}


def compute_pool_base(folder: Path, pool: Pool, name: str, tokenizer_dir: str | Path,
                      recipe: PoolBaseRecipe) -> dict[str, Any]:
    base = pretrain_base(name, tokenizer_dir, folder / "base", recipe.base_recipe(), corpus=pool_documents(pool))
    return {"path": str(base.relative_to(folder))}
