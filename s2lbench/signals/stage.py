"""The signal stages: the signal pass over the proxy's checkpoints, and text embeddings of the pool.

Which signals come from the proxy, and what each optional signal of the pass adds to its cost, live here
too: the runner charges a selector only for the signals it reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from s2lbench.pool.records import Pool
from s2lbench.signals.embeddings import compute_text_embeddings
from s2lbench.signals.signal_pass import compute_signals
from s2lbench.signals.signalset import (
    CHECKPOINT_LR,
    CONFIDENCE,
    DEV_EMBEDDING,
    DEV_GRADIENTS,
    DEV_TASKS,
    EL2N,
    FILES,
    GRADIENTS,
    LOSS,
    LOSS_ALONE,
    PROXY_EMBEDDING,
    RESPONSE_TOKENS,
    TEXT_EMBEDDING,
)

SIGNALS = "signals"
TEXT_EMBEDDINGS = "text-embedding"

#: the signals that need a trained proxy (everything the signal pass writes)
PROXY_SIGNALS = {LOSS, CONFIDENCE, EL2N, PROXY_EMBEDDING, RESPONSE_TOKENS, LOSS_ALONE, DEV_EMBEDDING, DEV_TASKS,
                 GRADIENTS, DEV_GRADIENTS, CHECKPOINT_LR}
#: the signals that read the dev set of the run's tasks
DEV_SIGNALS = {DEV_EMBEDDING, DEV_TASKS, DEV_GRADIENTS, GRADIENTS}
#: optional signals of the pass -> (the manifest's extra_seconds entry that paid for it, the cost key it adds
#: to the base pass's): charged only to the selectors that read it
EXTRA_COSTS = {LOSS_ALONE: (LOSS_ALONE, "ifd_seconds"), DEV_EMBEDDING: (DEV_EMBEDDING, "dev_embedding_seconds"),
               GRADIENTS: (GRADIENTS, "gradient_seconds"), DEV_GRADIENTS: (GRADIENTS, "gradient_seconds"),
               CHECKPOINT_LR: (GRADIENTS, "gradient_seconds")}


def signal_pass_options(options: dict[str, Any], needed: set[str], tokenizer: str | None) -> dict[str, Any]:
    """``compute_signals`` keyword arguments from ``signals.options``: gradients (``true`` or GradientConfig
    fields) only when a selector reads them. What the spec is keyed on; IFD and the dev set are added by
    ``signal_pass_spec``."""
    options = dict(options)
    if tokenizer:
        options.setdefault("tokenizer", tokenizer)
    if GRADIENTS in needed:
        options.setdefault("gradients", True)
    else:
        options.pop("gradients", None)
    return options


def signal_pass_spec(pool: Pool, proxy_key: str, portable_options: dict[str, Any], needed: set[str],
                     dev: Pool | None, dev_config: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"pool": pool.fingerprint(), "proxy": proxy_key, "options": portable_options}
    if LOSS_ALONE in needed:
        spec["ifd"] = True
    if RESPONSE_TOKENS in needed:  # signal folders cached before this signal existed lack it
        spec["response_tokens"] = True
    if dev is not None:
        spec["dev"] = {"fingerprint": dev.fingerprint(), "tasks": sorted(set(dev.sources)), "config": dev_config}
    return spec


def compute_signal_pass(folder: Path, pool: Pool, run_dir: Path, options: dict[str, Any], needed: set[str],
                        dev: Pool | None) -> dict[str, Any]:
    extra = {"ifd": True} if LOSS_ALONE in needed else {}
    if dev is not None:
        extra["dev"] = dev
    compute_signals(pool, run_dir, folder, **options, **extra)
    manifest = json.loads((folder / "manifest.json").read_text())
    cost = manifest.get("cost", {})
    return {"seconds": cost.get("base_seconds", cost.get("wall_seconds", manifest.get("wall_seconds"))),
            "flops": _manifest_flops(manifest), "extra_seconds": cost.get("extra_seconds", {})}


def _manifest_flops(manifest: dict[str, Any]) -> float:
    """The base pass's FLOPs as the signal pass records them (``cost.flops_estimate``: 2 x parameters x tokens
    per checkpoint)."""
    cost = manifest.get("cost", {})
    return float(cost.get("flops_estimate", cost.get("flops", manifest.get("flops", 0.0))) or 0.0)


def signal_costs(meta: dict[str, Any], folder: Path | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """(the base pass's cost, what each optional signal added) from a finished signal pass's stage meta.
    Stages cached before the meta carried the pass's FLOPs (it read a key the manifest never had, so 0) take
    them from the ``manifest.json`` in ``folder``."""
    flops = meta.get("flops") or 0.0
    if not flops and folder is not None and (folder / "manifest.json").is_file():
        flops = _manifest_flops(json.loads((folder / "manifest.json").read_text()))
    return ({"signals_seconds": meta.get("seconds") or 0.0, "signals_flops": flops},
            meta.get("extra_seconds", {}))


def extra_cost(name: str, extra_seconds: dict[str, float]) -> dict[str, float]:
    """What reading signal ``name`` adds to the base pass's cost."""
    paid_by, cost_key = EXTRA_COSTS.get(name, (None, None))
    return {cost_key: float(extra_seconds.get(paid_by, 0.0))} if cost_key else {}


def text_embedding_spec(pool: Pool, encoder: str) -> dict[str, Any]:
    return {"pool": pool.fingerprint(), "encoder": encoder}


def compute_text_embedding(folder: Path, pool: Pool, encoder: str) -> dict[str, Any]:
    compute_text_embeddings(pool, folder, model=encoder)
    return {}


def load_text_embedding(folder: Path) -> np.ndarray:
    return np.load(folder / FILES[TEXT_EMBEDDING], mmap_mode="r")
