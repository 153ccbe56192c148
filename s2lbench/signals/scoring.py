"""One checkpoint's forward pass over encoded examples: per-example mean token loss, p(gold) and EL2N, and
optionally the mean-pooled last hidden state.

Why it is fast: examples are sorted by length and packed into batches padded only to the batch's own
maximum; the backbone runs once and the LM head is applied only at positions whose label is set (and in
chunks, so a pool never needs all its logits in memory); ``torch.inference_mode``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from s2lbench.common import console
from s2lbench.errors import ConfigError
from s2lbench.pool.encoding import IGNORE_INDEX, Encoded, encode_example
from s2lbench.pool.prompts import RESPONSE_HEADERS
from s2lbench.pool.records import Pool
from s2lbench.signals.checkpoints import count_parameters

log = logging.getLogger(__name__)

#: most logits (rows x vocab) materialised at once when applying the LM head: on a CPU a chunk that stays
#: in cache makes the softmax statistics nearly free next to the head matmul; a GPU wants big launches
LOGIT_CHUNK_ELEMENTS = {"cpu": 1 << 22, "cuda": 1 << 27}


@dataclass
class CheckpointScores:
    """One checkpoint's per-example results (pool order) and what computing them cost."""

    loss: np.ndarray
    confidence: np.ndarray
    el2n: np.ndarray
    embedding: np.ndarray | None = None
    cost: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- encoding


def encode_pool(pool: Pool, tokenizer: Any, max_length: int, template: str = "alpaca") -> list[Encoded]:
    return [encode_example(tokenizer, ex, max_length, template) for ex in pool]


def encode_response_alone(tokenizer: Any, encoded: Encoded, template: str = "alpaca") -> Encoded:
    """The same response tokens behind the template's response header only: IFD's "response alone".

    Cherry LLM (tianyi-lab/Cherry_LLM, ``data_analysis.py``) scores ``"### Response:" + output``; keeping the
    exact response token ids of the conditioned encoding (rather than re-tokenising) makes both losses
    averages over the very same tokens.
    """
    if template not in RESPONSE_HEADERS:
        raise ConfigError(f"IFD needs the response header of template {template!r}; known: {', '.join(RESPONSE_HEADERS)}")
    header = tokenizer(RESPONSE_HEADERS[template], add_special_tokens=False)["input_ids"]
    bos = [tokenizer.bos_token_id] if getattr(tokenizer, "add_bos_token", False) and tokenizer.bos_token_id is not None else []
    response = [t for t in encoded.labels if t != IGNORE_INDEX]
    prefix = bos + header
    return Encoded(input_ids=prefix + response, labels=[IGNORE_INDEX] * len(prefix) + response)


def encoding_fingerprint(encoded: Sequence[Encoded]) -> str:
    """Hash of every example's token ids and labels: covers tokenizer, template and max_length at once."""
    h = hashlib.sha256()
    for e in encoded:
        h.update(np.asarray(e.input_ids, dtype=np.int64).tobytes())
        h.update(np.asarray(e.labels, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------- batching


def length_grouped_batches(lengths: Sequence[int], batch_tokens: int, batch_size: int) -> list[np.ndarray]:
    """Positions grouped into batches of similar length, longest first (an out-of-memory shows up at once).

    A batch holds at most ``batch_size`` examples and at most ``batch_tokens`` padded tokens (count times the
    batch's own longest length); an example longer than ``batch_tokens`` gets a batch of its own.
    """
    if batch_tokens < 1 or batch_size < 1:
        raise ConfigError(f"batch_tokens and batch_size must be positive (got {batch_tokens}, {batch_size})")
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        longest = lengths[order[start]]
        count = max(1, min(batch_size, batch_tokens // max(longest, 1)))
        batches.append(order[start:start + count])
        start += count
    return batches


def collate(encoded: Sequence[Encoded], pad_id: int):
    """(input_ids, labels, attention mask) tensors of a batch, right-padded to its longest example: the
    positions of real tokens are unchanged and padded labels are ``IGNORE_INDEX``."""
    import torch

    width = max(len(e.input_ids) for e in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, e in enumerate(encoded):
        n = len(e.input_ids)
        input_ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        attention[row, :n] = 1
    return input_ids, labels, attention


@dataclass
class Batched:
    """Encoded examples and their length-grouped batches: what ``score_checkpoint`` runs over."""

    encoded: list[Encoded]
    batches: list[np.ndarray]

    @property
    def lengths(self) -> list[int]:
        return [len(e.input_ids) for e in self.encoded]


@dataclass(frozen=True)
class Scoring:
    """How the signal pass encodes, batches and scores examples: the same for the pool and for every
    optional signal (the response-alone encodings, the dev set)."""

    tokenizer: Any
    max_length: int
    template: str
    batch_tokens: int
    batch_size: int
    device: str
    pad_id: int
    progress: bool = True

    def encode(self, pool: Pool) -> Batched:
        return self.batch(encode_pool(pool, self.tokenizer, self.max_length, self.template))

    def batch(self, encoded: list[Encoded]) -> Batched:
        lengths = [len(e.input_ids) for e in encoded]
        return Batched(encoded, length_grouped_batches(lengths, self.batch_tokens, self.batch_size))

    def score(self, model, rows: Batched, *, want_embedding: bool, full_logits: bool, progress: bool,
              desc: str = "signals") -> CheckpointScores:
        return score_checkpoint(model, rows.encoded, rows.batches, device=self.device, pad_id=self.pad_id,
                                want_embedding=want_embedding, full_logits=full_logits, progress=progress,
                                desc=desc)


# --------------------------------------------------------------------------------------------- scoring


def _split_model(model):
    """(backbone, lm_head, logit transform) for the head-only-where-labelled path, or None if not splittable."""
    backbone = getattr(model, "base_model", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if backbone is None or backbone is model or head is None:
        return None
    config = model.config
    softcap = getattr(config, "final_logit_softcapping", None)
    scale = getattr(config, "logit_scale", None)

    def transform(logits):
        import torch

        if scale is not None:
            logits = logits * scale
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        return logits

    return backbone, head, transform


def _token_statistics(logits, gold):
    """Per-token (cross-entropy, p(gold), ||softmax - onehot||_2) from logits, overwriting ``logits``.

    One exponential per logit and no extra vocabulary-sized tensor: with e = exp(logits - max),
    lse = max + log(sum e) and sum p^2 = sum e^2 / (sum e)^2, so ||p - onehot||^2 = sum p^2 - 2 p_gold + 1.
    """
    import torch

    logits = logits.float()
    top = logits.amax(dim=-1, keepdim=True)
    gold_logit = logits.gather(1, gold[:, None]).squeeze(1)
    exps = logits.sub_(top).exp_()
    sum_e = exps.sum(dim=-1)
    sum_sq = torch.linalg.vector_norm(exps, dim=-1).square() / (sum_e * sum_e)
    ce = top.squeeze(1) + sum_e.log() - gold_logit
    p_gold = torch.exp(-ce)
    l2 = torch.sqrt(torch.clamp(sum_sq - 2 * p_gold + 1, min=0))
    return ce, p_gold, l2


class _Scorer:
    """Runs one model on a batch; returns per-example means of the token statistics and pooled embeddings."""

    def __init__(self, model, *, full_logits: bool = False):
        self.model = model
        self.split = None if full_logits else _split_model(model)

    @property
    def mode(self) -> str:
        return "full_logits" if self.split is None else "head_on_labels"

    def __call__(self, input_ids, labels, attention, want_embedding: bool):
        import torch

        shifted = labels[:, 1:]
        mask = shifted != IGNORE_INDEX
        gold = shifted[mask]
        row_of_token = torch.arange(labels.shape[0], device=labels.device)[:, None].expand_as(shifted)[mask]
        if self.split is None:
            out = self.model(input_ids=input_ids, attention_mask=attention, use_cache=False,
                             output_hidden_states=want_embedding)
            hidden = out.hidden_states[-1] if want_embedding else None
            token_stats = _token_statistics(out.logits[:, :-1][mask], gold)
        else:
            backbone, head, transform = self.split
            hidden = backbone(input_ids=input_ids, attention_mask=attention, use_cache=False).last_hidden_state
            selected = hidden[:, :-1][mask]
            budget = LOGIT_CHUNK_ELEMENTS.get(selected.device.type, LOGIT_CHUNK_ELEMENTS["cpu"])
            chunk = max(1, budget // head.weight.shape[0])
            parts = [_token_statistics(transform(head(selected[i:i + chunk])), gold[i:i + chunk])
                     for i in range(0, selected.shape[0], chunk)]
            token_stats = tuple(torch.cat(cols) for cols in zip(*parts, strict=True))
        sums = torch.zeros((3, labels.shape[0]), dtype=torch.float64, device=labels.device)
        for k, values in enumerate(token_stats):
            sums[k].index_add_(0, row_of_token, values.double())
        counts = mask.sum(dim=1).clamp(min=1).double()
        means = (sums / counts).float().cpu().numpy()
        embedding = None
        if want_embedding:
            weights = attention.to(torch.float32)[:, :, None]
            embedding = ((hidden.float() * weights).sum(1) / weights.sum(1).clamp(min=1)).cpu().numpy()
        return means, embedding


def score_checkpoint(model, encoded: Sequence[Encoded], batches: Sequence[np.ndarray], *, device: str,
                     pad_id: int, want_embedding: bool, full_logits: bool = False, progress: bool = True,
                     desc: str = "signals") -> CheckpointScores:
    """Every example's signals under one model, in one forward pass over length-grouped batches."""
    import torch

    scorer = _Scorer(model, full_logits=full_logits)
    n = len(encoded)
    stats = np.full((3, n), np.nan, dtype=np.float32)
    embedding = None
    total_tokens = sum(len(e.input_ids) for e in encoded)
    padded_tokens = 0
    started = time.perf_counter()
    with torch.inference_mode(), console.Bar(total=total_tokens, unit="tok", unit_scale=True, desc=desc,
                                      disable=not progress, leave=False) as bar:
        for batch in batches:
            input_ids, labels, attention = (t.to(device) for t in collate([encoded[i] for i in batch], pad_id))
            means, pooled = scorer(input_ids, labels, attention, want_embedding)
            stats[:, batch] = means
            if pooled is not None:
                if embedding is None:
                    embedding = np.zeros((n, pooled.shape[1]), dtype=np.float32)
                embedding[batch] = pooled
            padded_tokens += input_ids.numel()
            bar.update(int(attention.sum()))
    wall = time.perf_counter() - started
    n_params = count_parameters(model)
    cost = {"wall_seconds": round(wall, 3), "tokens": total_tokens, "padded_tokens": padded_tokens,
            "response_tokens": sum(e.n_response_tokens for e in encoded), "n_parameters": n_params,
            "flops_estimate": 2.0 * n_params * total_tokens, "batches": len(batches), "mode": scorer.mode}
    return CheckpointScores(stats[0], stats[1], stats[2], embedding, cost)


def head_split_reproduces(model, example: Encoded, device: str, pad_id: int, tolerance: float) -> bool:
    """True if the head-on-labels path reproduces the full forward pass on one example (else fall back)."""
    import torch

    if _split_model(model) is None:
        return False
    tensors = tuple(t.to(device) for t in collate([example], pad_id))
    with torch.inference_mode():
        fast, _ = _Scorer(model)(*tensors, want_embedding=False)
        full, _ = _Scorer(model, full_logits=True)(*tensors, want_embedding=False)
    ok = bool(np.allclose(fast, full, atol=tolerance, rtol=tolerance))
    if not ok:
        log.warning("applying the LM head only at labelled positions does not reproduce %s's logits "
                    "(max difference %.3g); using full logits", type(model).__name__, float(np.abs(fast - full).max()))
    return ok


__all__ = ["LOGIT_CHUNK_ELEMENTS", "Batched", "CheckpointScores", "Scoring", "collate", "encode_pool", "encode_response_alone",
           "encoding_fingerprint", "head_split_reproduces", "length_grouped_batches", "score_checkpoint"]
