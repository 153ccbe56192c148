"""A tokenizer trained on the pool's own text, for built-in tiny models outside the gym.

A model config names it as ``tokenizer: pool-bpe:VOCAB`` (e.g. ``pool-bpe:2000``): a byte-level BPE with
VOCAB entries (the gym's recipe, ``s2lbench.gym.tokenizer``) trained on every training example rendered with
its prompt template and answer, so the template and the domain's words are a few tokens each. It is a stage
of the run keyed on the pool's fingerprint, the template and the size, computed once and shared by the proxy
and every target. Only the training pool is read: a held-out test set never shapes the vocabulary.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from s2lbench.errors import ConfigError
from s2lbench.gym.tokenizer import save_tokenizer, train_tokenizer
from s2lbench.pool.prompts import render_prompt
from s2lbench.pool.records import Pool

POOL_TOKENIZER = "pool-tokenizer"
PREFIX = "pool-bpe:"
_NAME = re.compile(r"pool-bpe:(\d+)")


def pool_tokenizer_size(name: str | None) -> int | None:
    """The vocabulary size a ``pool-bpe:VOCAB`` tokenizer name asks for; None for any other name."""
    if name is None or not name.startswith(PREFIX):
        return None
    match = _NAME.fullmatch(name)
    if match is None or not 64 <= int(match.group(1)) <= 65536:
        raise ConfigError(f"tokenizer {name!r}: write pool-bpe:VOCAB with VOCAB between 64 and 65536")
    return int(match.group(1))


def pool_tokenizer_spec(pool: Pool, vocab_size: int, template: str) -> dict[str, Any]:
    return {"pool": pool.fingerprint(), "vocab_size": vocab_size, "template": template}


def pool_texts(pool: Pool, template: str) -> list[str]:
    return [render_prompt(template, ex.instruction, ex.input) + ex.output for ex in pool]


def compute_pool_tokenizer(folder: Path, pool: Pool, vocab_size: int, template: str) -> dict[str, Any]:
    tokenizer = train_tokenizer(pool_texts(pool, template), vocab_size=vocab_size)
    save_tokenizer(tokenizer, folder / "tokenizer")
    return {"path": "tokenizer", "vocab_size": len(tokenizer)}
