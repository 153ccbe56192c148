"""The signal pass: every pool example's loss at every proxy checkpoint, plus the signals baselines need.

One forward pass per checkpoint yields, per example: the mean token loss on the response tokens (the
trajectory entry, prompt masked exactly as in training via ``encode_example``), the mean probability of the
gold token (confidence), the mean L2 norm of softmax minus one-hot (EL2N), and, at the last checkpoint, the
mean-pooled last hidden state (proxy embedding).

Why it is fast: examples are sorted by length and packed into batches padded only to the batch's own
maximum; the backbone runs once and the LM head is applied only at positions whose label is set (and in
chunks, so a pool never needs all its logits in memory); ``torch.inference_mode``; bf16 where the device
supports it natively.

Why it is safe to stop: each finished checkpoint is saved atomically under ``parts/`` keyed by (pool
fingerprint, encoding fingerprint, checkpoint fingerprint, step, dtype), so a rerun skips it; the signal
files and ``manifest.json`` are assembled only when every checkpoint is done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from s2lbench import __version__
from s2lbench.atomic import atomic_path, save_npy, write_json
from s2lbench.data import read_json_object
from s2lbench.encoding import IGNORE_INDEX, Encoded, encode_example
from s2lbench.errors import ConfigError, DataError
from s2lbench.fingerprint import config_hash
from s2lbench.prompts import RESPONSE_HEADERS
from s2lbench.records import Pool
from s2lbench.signalset import (
    CHECKPOINT_LR,
    CONFIDENCE,
    DEV_EMBEDDING,
    DEV_GRADIENTS,
    DEV_TASKS,
    EL2N,
    FILES,
    GRADIENTS,
    INCOMPLETE,
    LOSS,
    LOSS_ALONE,
    PROXY_EMBEDDING,
    RESPONSE_TOKENS,
    TEXT_EMBEDDING,
    SignalSet,
    load_matrix,
)

log = logging.getLogger(__name__)

#: extra file written when ``embed="all"``: the pooled embedding at every checkpoint, n x T x d
EMBEDDING_BY_CHECKPOINT_FILE = "proxy_embedding_by_checkpoint.npy"
PARTS_DIR = "parts"
MANIFEST = "manifest.json"
#: most logits (rows x vocab) materialised at once when applying the LM head: on a CPU a chunk that stays
#: in cache makes the softmax statistics nearly free next to the head matmul; a GPU wants big launches
LOGIT_CHUNK_ELEMENTS = {"cpu": 1 << 22, "cuda": 1 << 27}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")

SIGNAL_DESCRIPTIONS = {
    LOSS: "mean token cross-entropy over response tokens (prompt masked as in training), n x T",
    CONFIDENCE: "mean over response tokens of p(gold token), n x T",
    EL2N: "mean over response tokens of ||softmax - onehot(gold)||_2, n x T",
    PROXY_EMBEDDING: "mean over the example's non-pad tokens of the last hidden layer at the last checkpoint, n x d",
    RESPONSE_TOKENS: "response tokens (EOS included, after truncation to max_length) of each example, n",
    LOSS_ALONE: "mean token cross-entropy over the same response tokens without the instruction (the template's "
                "response header, then the response), n x T: the denominator of IFD",
    DEV_EMBEDDING: "the dev set's proxy embedding (as proxy_embedding), m x d",
    DEV_TASKS: "the task each dev row stands for, m",
    GRADIENTS: "LESS gradient features: per-example gradient of the response loss, Adam-normalised where the "
               "checkpoint has Adam moments, Rademacher-projected, L2-normalised, n x T_g x dim (float16)",
    DEV_GRADIENTS: "LESS gradient features of the dev set (plain SGD gradients, as LESS), m x T_g x dim (float16)",
    CHECKPOINT_LR: "learning rate of each gradient checkpoint (LESS's checkpoint weights), T_g",
}


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path


@dataclass
class CheckpointScores:
    """One checkpoint's per-example results (pool order) and what computing them cost."""

    loss: np.ndarray
    confidence: np.ndarray
    el2n: np.ndarray
    embedding: np.ndarray | None = None
    cost: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- checkpoints


def _step_of(folder: Path) -> int | None:
    prefix = "checkpoint-"
    if folder.is_dir() and folder.name.startswith(prefix) and folder.name[len(prefix):].isdigit():
        return int(folder.name[len(prefix):])
    return None


def find_checkpoints(source: str | Path | Sequence[tuple[int, str | Path]]) -> list[Checkpoint]:
    """The checkpoints of a proxy run, ascending by step.

    ``source`` is a list of (step, folder) pairs; an s2lbench proxy run (``run.json`` lists the steps);
    a HF Trainer output folder (``checkpoint-<step>/`` sub-folders, as the official S2L code writes); or a
    single HF model folder (one checkpoint, step 0).
    """
    if not isinstance(source, (str, Path)):
        checkpoints = [Checkpoint(int(step), Path(path)) for step, path in source]
    else:
        run_dir = Path(source)
        if not run_dir.is_dir():
            raise DataError("proxy run folder not found", path=run_dir)
        run_json = run_dir / "run.json"
        steps = None
        if run_json.exists():
            steps = read_json_object(run_json, "proxy run manifest").get("checkpoint_steps")
        if steps:
            checkpoints = [Checkpoint(int(s), run_dir / f"checkpoint-{int(s)}") for s in steps]
        else:
            checkpoints = [Checkpoint(step, d) for d in run_dir.iterdir() if (step := _step_of(d)) is not None]
            if not checkpoints and (run_dir / "config.json").exists():
                log.info("%s is a single model folder; using it as the only checkpoint (step 0)", run_dir)
                checkpoints = [Checkpoint(0, run_dir)]
        if not checkpoints:
            raise DataError("no checkpoints found: expected checkpoint-<step>/ folders (HF Trainer layout), "
                            "a run.json listing checkpoint_steps, or a model folder with config.json",
                            path=run_dir)
    checkpoints.sort(key=lambda c: c.step)
    seen = set()
    for c in checkpoints:
        if c.step in seen:
            raise DataError(f"checkpoint step {c.step} is listed twice", path=c.path)
        seen.add(c.step)
        if not (c.path / "config.json").exists():
            raise DataError("not a HF model folder (no config.json)", path=c.path)
    return checkpoints


def checkpoint_fingerprint(path: Path, sample: int = 1 << 20) -> str:
    """A cheap content key for a model folder: its config plus each weight file's size and first/last MiB.

    Reading whole multi-GB weight files only to key a cache would cost more than some passes; size plus
    head and tail bytes changes whenever a checkpoint is retrained or replaced.
    """
    h = hashlib.sha256((path / "config.json").read_bytes())
    for f in sorted(p for p in path.iterdir() if p.suffix in _WEIGHT_SUFFIXES and p.is_file()):
        if f.name.startswith(("optimizer", "scheduler", "rng_state", "training_args")):
            continue
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(sample))
            if size > sample:
                fh.seek(max(size - sample, sample))
                h.update(fh.read(sample))
    return h.hexdigest()[:16]


def load_tokenizer(tokenizer: Any, checkpoints: Sequence[Checkpoint], run_dir: Path | None = None) -> Any:
    """The tokenizer object: the one given (object, hub id or path), else one saved with the run."""
    if tokenizer is not None and not isinstance(tokenizer, (str, Path)):
        return tokenizer
    from s2lbench.hub import load_tokenizer as load

    if tokenizer is not None:
        return load(str(tokenizer))
    candidates = [c.path for c in reversed(checkpoints)] + ([run_dir] if run_dir else [])
    for folder in candidates:
        if any((folder / name).exists() for name in _TOKENIZER_FILES):
            return load(str(folder))
    raise ConfigError(f"no tokenizer found in {candidates[0]} or the run folder; pass one "
                      "(--tokenizer PATH_OR_HUB_ID, or tokenizer=... in compute_signals)")


# --------------------------------------------------------------------------------------------- batching


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


def _collate(encoded: Sequence[Encoded], pad_id: int):
    import torch

    width = max(len(e.input_ids) for e in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, e in enumerate(encoded):  # right padding: positions of real tokens are unchanged
        n = len(e.input_ids)
        input_ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        attention[row, :n] = 1
    return input_ids, labels, attention


# --------------------------------------------------------------------------------------------- model


def resolve_device(device: str | None = None) -> str:
    import torch

    if device and device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: Any, device: str):
    """``auto``: bf16 on a GPU that supports it natively, else fp32 (CPUs without bf16 units run it slower)."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype in (None, "auto"):
        if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype not in names:
        raise ConfigError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16")
    return names[dtype]


def load_model(path: Path, dtype, device: str):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    return model.to(device).eval()


def count_parameters(model) -> int:
    """Unique parameters (tied input/output embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


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
    from tqdm.auto import tqdm

    scorer = _Scorer(model, full_logits=full_logits)
    n = len(encoded)
    stats = np.full((3, n), np.nan, dtype=np.float32)
    embedding = None
    total_tokens = sum(len(e.input_ids) for e in encoded)
    padded_tokens = 0
    started = time.perf_counter()
    with torch.inference_mode(), tqdm(total=total_tokens, unit="tok", unit_scale=True, desc=desc,
                                      disable=not progress, leave=False) as bar:
        for batch in batches:
            input_ids, labels, attention = (t.to(device) for t in _collate([encoded[i] for i in batch], pad_id))
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


def _check_head_split(model, example: Encoded, device: str, pad_id: int, tolerance: float) -> bool:
    """True if the head-on-labels path reproduces the full forward pass on one example (else fall back)."""
    import torch

    if _split_model(model) is None:
        return False
    tensors = tuple(t.to(device) for t in _collate([example], pad_id))
    with torch.inference_mode():
        fast, _ = _Scorer(model)(*tensors, want_embedding=False)
        full, _ = _Scorer(model, full_logits=True)(*tensors, want_embedding=False)
    ok = bool(np.allclose(fast, full, atol=tolerance, rtol=tolerance))
    if not ok:
        log.warning("applying the LM head only at labelled positions does not reproduce %s's logits "
                    "(max difference %.3g); using full logits", type(model).__name__, float(np.abs(fast - full).max()))
    return ok


# --------------------------------------------------------------------------------------------- the pass


def _embed_mode(embed: bool | str) -> str:
    if embed is True:
        return "last"
    if embed is False or embed is None:
        return "none"
    if embed not in ("last", "all", "none"):
        raise ConfigError(f"embed must be True/False or one of 'last', 'all', 'none' (got {embed!r})")
    return embed


def _save_part(path: Path, scores: CheckpointScores, meta: dict[str, Any]) -> None:
    arrays = {"loss": scores.loss, "confidence": scores.confidence, "el2n": scores.el2n,
              "meta": np.array(json.dumps({**meta, "cost": scores.cost}))}
    if scores.embedding is not None:
        arrays["embedding"] = scores.embedding
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _load_part(path: Path) -> CheckpointScores:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        return CheckpointScores(z["loss"], z["confidence"], z["el2n"],
                                z["embedding"] if "embedding" in z.files else None, meta.get("cost", {}))


def _versions() -> dict[str, str]:
    from s2lbench.provenance import package_versions

    return package_versions()


def _save_arrays(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays, meta=np.array(json.dumps(meta)))


def _load_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "meta"}, json.loads(str(z["meta"]))


def compute_signals(pool: Pool, checkpoints: str | Path | Sequence[tuple[int, str | Path]], out_dir: str | Path, *,
                    tokenizer: Any = None, max_length: int | None = None, template: str | None = None,
                    batch_tokens: int = 16384, batch_size: int = 256, dtype: Any = "auto",
                    device: str | None = None, embed: bool | str = True, full_logits: bool = False,
                    ifd: bool = False, dev: Pool | None = None, gradients: Any = None,
                    progress: bool = True) -> SignalSet:
    """Compute loss trajectories, confidence, EL2N and the proxy embedding for ``pool``; write them to ``out_dir``.

    ``checkpoints``: a proxy run folder, a HF Trainer output folder (``checkpoint-*/``) or (step, folder)
    pairs. ``embed``: ``"last"`` (or True) pools hidden states at the last checkpoint only, ``"all"`` also
    writes ``proxy_embedding_by_checkpoint.npy`` (n x T x d), False skips them. ``max_length`` and
    ``template`` default to the ones the proxy was trained with (``run.json``), else 512 and alpaca. ``full_logits`` disables the
    head-on-labels shortcut (for checking). Optional, in the same per-checkpoint pass: ``ifd=True`` adds
    ``loss_alone`` (the response's loss without the instruction, IFD's denominator); ``dev`` (a Pool whose
    ``source`` is the task) adds the dev set's embedding at the last checkpoint; ``gradients`` (True or a
    ``GradientConfig`` mapping) adds LESS gradient features of the pool and ``dev``. Resumable: each finished
    checkpoint's results are read back from ``parts/``. Returns ``SignalSet.from_dir(out_dir)``.
    """
    import torch

    from s2lbench.gradients import (
        RademacherProjector,
        checkpoint_learning_rate,
        gradient_checkpoint_indices,
        gradient_features,
        load_adam_moments,
        parse_gradient_config,
        trainable_names,
    )

    out_dir = Path(out_dir)
    run_dir = Path(checkpoints) if isinstance(checkpoints, (str, Path)) else None
    ckpts = find_checkpoints(checkpoints)
    mode = _embed_mode(embed)
    grad_config = parse_gradient_config(gradients)
    if grad_config is not None and dev is None:
        raise ConfigError("gradient features are matched against a dev set: pass dev= (a Pool, source = task)")
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    dtype_name = str(torch_dtype).removeprefix("torch.")
    tok = load_tokenizer(tokenizer, ckpts, run_dir)
    pad_id = next((i for i in (tok.pad_token_id, tok.eos_token_id) if i is not None), 0)

    pool_fp = pool.fingerprint()
    run_info = {}
    if run_dir and (run_dir / "run.json").exists():
        run_info = read_json_object(run_dir / "run.json", "proxy run manifest")
        trained_on = run_info.get("pool_fingerprint")
        if trained_on and trained_on != pool_fp:
            log.warning("the proxy run was trained on pool %s but signals are computed for pool %s",
                        trained_on, pool_fp)
    trained_with = run_info.get("config") or {}
    max_length = int(max_length or trained_with.get("max_length") or 512)
    template = template or trained_with.get("template") or "alpaca"

    encoded = encode_pool(pool, tok, max_length, template)
    lengths = [len(e.input_ids) for e in encoded]
    enc_fp = encoding_fingerprint(encoded)
    batches = length_grouped_batches(lengths, batch_tokens, batch_size)
    log.info("%d examples, %d tokens, %d batches, %d checkpoints, %s on %s", len(pool), sum(lengths),
             len(batches), len(ckpts), dtype_name, device)
    alone = alone_batches = alone_fp = None
    if ifd:
        alone = [encode_response_alone(tok, e, template) for e in encoded]
        alone_batches = length_grouped_batches([len(e.input_ids) for e in alone], batch_tokens, batch_size)
        alone_fp = encoding_fingerprint(alone)
    dev_encoded = dev_batches = dev_fp = None
    if dev is not None:
        dev_encoded = encode_pool(dev, tok, max_length, template)
        dev_batches = length_grouped_batches([len(e.input_ids) for e in dev_encoded], batch_tokens, batch_size)
        dev_fp = config_hash({"dev": dev.fingerprint(), "tasks": dev.sources, "encoding": encoding_fingerprint(dev_encoded)})
    grad_indices = gradient_checkpoint_indices(len(ckpts), grad_config.checkpoints) if grad_config else []

    parts_dir = out_dir / PARTS_DIR
    results: list[CheckpointScores] = []
    extras: list[dict[str, tuple[dict[str, np.ndarray], dict[str, Any]]]] = []
    records = []
    head_split_ok: bool | None = None
    for index, ckpt in enumerate(ckpts):
        want_embedding = mode == "all" or (mode == "last" and index == len(ckpts) - 1)
        ckpt_fp = checkpoint_fingerprint(ckpt.path)
        base_spec = {"pool": pool_fp, "encoding": enc_fp, "checkpoint": ckpt_fp, "step": ckpt.step,
                     "dtype": dtype_name}
        key = config_hash(base_spec)
        part = parts_dir / f"step-{ckpt.step:09d}-{key}.npz"
        # optional signals of this checkpoint, each in its own part: name -> (file, spec)
        wanted: dict[str, Path] = {}
        if ifd:
            wanted["ifd"] = parts_dir / f"step-{ckpt.step:09d}-{config_hash({**base_spec, 'alone': alone_fp})}.ifd.npz"
        if dev is not None and mode != "none" and index == len(ckpts) - 1:
            wanted["dev"] = parts_dir / f"step-{ckpt.step:09d}-{config_hash({**base_spec, 'dev': dev_fp})}.dev.npz"
        if grad_config is not None and index in grad_indices:
            spec = {**base_spec, "dev": dev_fp, "gradients": dataclasses.asdict(grad_config)}
            wanted["gradients"] = parts_dir / f"step-{ckpt.step:09d}-{config_hash(spec)}.grad.npz"
        scores = _load_part(part) if part.exists() else None
        cached = scores is not None and (scores.embedding is not None or not want_embedding)
        done = {name: _load_arrays(path) for name, path in wanted.items() if path.exists()}
        model = None
        if not cached or len(done) < len(wanted):
            log.info("checkpoint %d (%d/%d): %s", ckpt.step, index + 1, len(ckpts), ckpt.path)
            model = load_model(ckpt.path, torch_dtype, device)
            if head_split_ok is None and not full_logits:
                tolerance = 1e-3 if torch_dtype == torch.float32 else 2e-2
                head_split_ok = _check_head_split(model, encoded[int(np.argmin(lengths))], device, pad_id, tolerance)
        use_full = full_logits or not head_split_ok
        if not cached:
            scores = score_checkpoint(model, encoded, batches, device=device, pad_id=pad_id,
                                      want_embedding=want_embedding, full_logits=use_full,
                                      progress=progress, desc=f"checkpoint {ckpt.step} [{index + 1}/{len(ckpts)}]")
            _save_part(part, scores, {"step": ckpt.step, "checkpoint_fingerprint": ckpt_fp, "key": key})
            log.info("checkpoint %d done in %.1fs (%.0f tokens/s)", ckpt.step, scores.cost["wall_seconds"],
                     scores.cost["tokens"] / max(scores.cost["wall_seconds"], 1e-9))
        else:
            log.info("checkpoint %d: cached in %s", ckpt.step, part.name)
        for name, path in wanted.items():
            if name in done:
                continue
            started = time.perf_counter()
            if name == "ifd":
                alone_scores = score_checkpoint(model, alone, alone_batches, device=device, pad_id=pad_id,
                                                want_embedding=False, full_logits=use_full, progress=progress,
                                                desc=f"response alone {ckpt.step}")
                arrays, meta = {"loss_alone": alone_scores.loss}, {"cost": alone_scores.cost}
            elif name == "dev":
                dev_scores = score_checkpoint(model, dev_encoded, dev_batches, device=device, pad_id=pad_id,
                                              want_embedding=True, full_logits=use_full, progress=False)
                arrays, meta = {"dev_embedding": dev_scores.embedding}, {"cost": dev_scores.cost}
            else:
                moments = None if grad_config.optimizer == "sgd" else load_adam_moments(ckpt.path, model)
                if moments is None and grad_config.optimizer == "adam":
                    raise DataError("gradients.optimizer=adam but the checkpoint has no Adam moments (adam_state.pt "
                                    "or optimizer.pt); train the proxy through the runner with a gradient signal "
                                    "requested, or use optimizer=auto / sgd", path=ckpt.path)
                if moments is None:
                    log.warning("checkpoint %d has no Adam moments: its gradient features are SGD-normalised",
                                ckpt.step)
                n_params = sum(p.numel() for n, p in model.named_parameters() if n in set(trainable_names(model)))
                projector = RademacherProjector(n_params, grad_config.dim, grad_config.seed, grad_config.block, device)
                feats = gradient_features(model, encoded, pad_id=pad_id, projector=projector, moments=moments,
                                          batch_size=grad_config.batch_size, progress=progress,
                                          desc=f"gradients {ckpt.step}")
                dev_feats = gradient_features(model, dev_encoded, pad_id=pad_id, projector=projector, moments=None,
                                              batch_size=grad_config.batch_size, progress=False)
                previous = ckpts[index - 1].step if index else 0
                lr = checkpoint_learning_rate(ckpt.path, ckpt.step, previous)
                arrays = {"features": feats.astype(np.float16), "dev_features": dev_feats.astype(np.float16)}
                meta = {"normalisation": "adam" if moments is not None else "sgd",
                        "optimizer_file": moments["file"] if moments else None, "learning_rate": lr,
                        "n_parameters": n_params}
            meta.setdefault("cost", {})["wall_seconds"] = round(time.perf_counter() - started, 3)
            _save_arrays(path, arrays, meta)
            done[name] = (arrays, meta)
        del model
        results.append(scores)
        extras.append(done)
        records.append({"step": ckpt.step, "path": str(ckpt.path), "fingerprint": ckpt_fp, "part": part.name,
                        "cached": cached, **scores.cost,
                        "extra_seconds": {name: meta["cost"]["wall_seconds"] for name, (_, meta) in done.items()}})

    manifest_path = out_dir / MANIFEST
    previous = read_manifest_or_empty(manifest_path)
    invalidate(out_dir)  # the manifest comes back last: a folder cut short here is never taken as complete
    for name, attr in ((LOSS, "loss"), (CONFIDENCE, "confidence"), (EL2N, "el2n")):
        save_npy(out_dir / FILES[name], np.stack([getattr(r, attr) for r in results], axis=1).astype(np.float32))
    signals = {name: {"file": FILES[name], "shape": [len(pool), len(ckpts)], "description": SIGNAL_DESCRIPTIONS[name]}
               for name in (LOSS, CONFIDENCE, EL2N)}
    response_tokens = np.array([e.n_response_tokens for e in encoded], dtype=np.int32)
    save_npy(out_dir / FILES[RESPONSE_TOKENS], response_tokens)
    signals[RESPONSE_TOKENS] = {"file": FILES[RESPONSE_TOKENS], "shape": [len(pool)],
                                "description": SIGNAL_DESCRIPTIONS[RESPONSE_TOKENS]}
    if mode != "none":
        last = results[-1].embedding
        save_npy(out_dir / FILES[PROXY_EMBEDDING], last)
        signals[PROXY_EMBEDDING] = {"file": FILES[PROXY_EMBEDDING], "shape": list(last.shape),
                                    "description": SIGNAL_DESCRIPTIONS[PROXY_EMBEDDING],
                                    "checkpoint_step": ckpts[-1].step}
        if mode == "all":
            save_npy(out_dir / EMBEDDING_BY_CHECKPOINT_FILE, np.stack([r.embedding for r in results], axis=1))
    else:  # an embedding left by an earlier pass may describe other checkpoints: do not let it pass for ours
        for stale in (FILES[PROXY_EMBEDDING], EMBEDDING_BY_CHECKPOINT_FILE):
            (out_dir / stale).unlink(missing_ok=True)
    if mode != "all":
        (out_dir / EMBEDDING_BY_CHECKPOINT_FILE).unlink(missing_ok=True)
    extra_cost: dict[str, float] = {}
    written: set[str] = set()
    if ifd:
        save_npy(out_dir / FILES[LOSS_ALONE], np.stack([e["ifd"][0]["loss_alone"] for e in extras], axis=1))
        signals[LOSS_ALONE] = {"file": FILES[LOSS_ALONE], "shape": [len(pool), len(ckpts)],
                               "description": SIGNAL_DESCRIPTIONS[LOSS_ALONE]}
        extra_cost[LOSS_ALONE] = sum(e["ifd"][1]["cost"]["wall_seconds"] for e in extras)
        written.add(LOSS_ALONE)
    if dev is not None:
        save_npy(out_dir / FILES[DEV_TASKS], np.asarray(dev.sources, dtype=str))
        signals[DEV_TASKS] = {"file": FILES[DEV_TASKS], "shape": [len(dev)], "description": SIGNAL_DESCRIPTIONS[DEV_TASKS],
                              "tasks": sorted(set(dev.sources)), "dev_fingerprint": dev.fingerprint()}
        written.add(DEV_TASKS)
        if mode != "none":
            save_npy(out_dir / FILES[DEV_EMBEDDING], extras[-1]["dev"][0]["dev_embedding"])
            signals[DEV_EMBEDDING] = {"file": FILES[DEV_EMBEDDING], "shape": [len(dev), int(results[-1].embedding.shape[1])],
                                      "description": SIGNAL_DESCRIPTIONS[DEV_EMBEDDING], "checkpoint_step": ckpts[-1].step}
            extra_cost[DEV_EMBEDDING] = extras[-1]["dev"][1]["cost"]["wall_seconds"]
            written.add(DEV_EMBEDDING)
    if grad_config is not None:
        grads = [extras[i]["gradients"] for i in grad_indices]
        save_npy(out_dir / FILES[GRADIENTS], np.stack([a["features"] for a, _ in grads], axis=1))
        save_npy(out_dir / FILES[DEV_GRADIENTS], np.stack([a["dev_features"] for a, _ in grads], axis=1))
        lrs = [m["learning_rate"] for _, m in grads]
        if any(lr is None for lr in lrs):
            log.warning("no learning rate logged for some gradient checkpoints: equal checkpoint weights")
            lrs = [1.0] * len(lrs)
        save_npy(out_dir / FILES[CHECKPOINT_LR], np.asarray(lrs, dtype=np.float32))
        block = {"checkpoint_steps": [ckpts[i].step for i in grad_indices], "config": dataclasses.asdict(grad_config),
                 "normalisation": [m["normalisation"] for _, m in grads],
                 "learning_rates": lrs, "n_parameters": grads[0][1]["n_parameters"]}
        for name in (GRADIENTS, DEV_GRADIENTS, CHECKPOINT_LR):
            rows = len(pool) if name == GRADIENTS else len(dev) if name == DEV_GRADIENTS else None
            shape = [rows, len(grad_indices), grad_config.dim] if rows is not None else [len(grad_indices)]
            signals[name] = {"file": FILES[name], "shape": shape, "description": SIGNAL_DESCRIPTIONS[name], **block}
            written.add(name)
        extra_cost[GRADIENTS] = sum(m["cost"]["wall_seconds"] for _, m in grads)
    for name in (LOSS_ALONE, DEV_TASKS, DEV_EMBEDDING, GRADIENTS, DEV_GRADIENTS, CHECKPOINT_LR):
        if name not in written:  # left by an earlier pass with other options: must not pass for this one's
            (out_dir / FILES[name]).unlink(missing_ok=True)
    if previous.get("pool_fingerprint") not in (None, pool_fp):
        log.warning("%s held signals for pool %s; replacing them", out_dir, previous.get("pool_fingerprint"))
        (out_dir / FILES[TEXT_EMBEDDING]).unlink(missing_ok=True)
        previous = {}
    base_seconds = round(sum(r["wall_seconds"] for r in records), 3)
    manifest = {
        **{k: v for k, v in previous.items() if k in ("text_embedding",)},  # written by compute_text_embeddings
        "kind": "proxy_signals",
        "pool": {"name": pool.name, "fingerprint": pool_fp, "n_examples": len(pool)},
        "pool_fingerprint": pool_fp,
        "checkpoint_steps": [c.step for c in ckpts],
        "model": {"run_dir": str(run_dir) if run_dir else None, "run_config": run_info.get("config"),
                  "checkpoints": [{"step": c.step, "path": str(c.path), "fingerprint": r["fingerprint"]}
                                  for c, r in zip(ckpts, records, strict=True)],
                  "n_parameters": records[-1]["n_parameters"]},
        "tokenizer": getattr(tok, "name_or_path", None) or type(tok).__name__,
        "encoding": {"template": template, "max_length": max_length, "fingerprint": enc_fp,
                     "tokens": sum(lengths), "response_tokens": sum(e.n_response_tokens for e in encoded),
                     "truncated_examples": sum(1 for n in lengths if n >= max_length)},
        "compute": {"device": device, "dtype": dtype_name, "batch_tokens": batch_tokens, "batch_size": batch_size,
                    "embed": mode, "ifd": bool(ifd), "dev_examples": len(dev) if dev is not None else 0,
                    "gradients": dataclasses.asdict(grad_config) if grad_config else None},
        "signals": {**{k: v for k, v in previous.get("signals", {}).items() if k == TEXT_EMBEDDING}, **signals},
        "cost": {"wall_seconds": round(base_seconds + sum(extra_cost.values()), 3),
                 "base_seconds": base_seconds,
                 # what each optional signal added on top of the base pass: charged only to selectors reading it
                 "extra_seconds": {k: round(v, 3) for k, v in extra_cost.items()},
                 "flops_estimate": sum(r["flops_estimate"] for r in records),
                 "flops_formula": "2 x parameters x tokens per checkpoint (base pass)",
                 "per_checkpoint": records},
        "versions": _versions(),
    }
    write_json(manifest_path, manifest)
    return SignalSet.from_dir(out_dir)


# --------------------------------------------------------------------------------------------- bring your own


def import_trajectories(matrix: str | Path | np.ndarray, out_dir: str | Path, *, pool: Pool | None = None,
                        steps: Sequence[int] | None = None) -> SignalSet:
    """Write a loss matrix trained elsewhere (.npy/.pt or an array; rows = examples in pool order, one column
    per checkpoint) as a signals folder. NaN entries are kept and counted in the manifest; selectors that
    cluster trajectories set them to 0, as the S2L paper does. Infinite values and an all-NaN matrix are
    refused (the same checks as ``select --trajectories``). The folder is written as a unit: a text
    embedding already in it is kept, everything else replaced."""
    from s2lbench.atomic import atomic_dir
    from s2lbench.signalset import check_matrix

    origin = matrix if isinstance(matrix, (str, Path)) else "<array>"
    array = load_matrix(matrix) if isinstance(matrix, (str, Path)) else check_matrix(matrix, origin)
    if pool is not None and array.shape[0] != len(pool):
        raise DataError(f"the matrix has {array.shape[0]} rows but the pool has {len(pool)} examples "
                        "(rows must be the pool's examples in pool order)", path=origin)
    steps = list(range(array.shape[1])) if steps is None else [int(s) for s in steps]
    if len(steps) != array.shape[1]:
        raise DataError(f"{len(steps)} checkpoint steps given for a matrix with {array.shape[1]} columns",
                        path=origin)
    out_dir = Path(out_dir)
    nan = int(np.isnan(array).sum())
    if nan:
        log.warning("%s: %d NaN entries kept (selectors set them to 0, as in the S2L paper)", origin, nan)
    previous = read_manifest_or_empty(out_dir / MANIFEST)
    same_pool = pool is not None and previous.get("pool_fingerprint") == pool.fingerprint()
    kept = {k: v for k, v in previous.get("signals", {}).items() if k == TEXT_EMBEDDING and same_pool}
    with atomic_dir(out_dir, keep=[FILES[TEXT_EMBEDDING]] if kept else [], marker=MANIFEST) as tmp:
        save_npy(tmp / FILES[LOSS], array.astype(np.float32))
        write_json(tmp / MANIFEST, {
            "kind": "imported_trajectories",
            "source": str(origin),
            "pool": {"name": pool.name, "fingerprint": pool.fingerprint(), "n_examples": len(pool)}
            if pool else None,
            "pool_fingerprint": pool.fingerprint() if pool else None,
            "checkpoint_steps": steps,
            "nan_entries": nan,
            **({TEXT_EMBEDDING: previous[TEXT_EMBEDDING]} if kept and TEXT_EMBEDDING in previous else {}),
            "signals": {**kept, LOSS: {"file": FILES[LOSS], "shape": list(array.shape),
                                       "description": "imported loss matrix, n x T (NaN kept)"}},
            "versions": {"s2lbench": __version__, "numpy": np.__version__},
        })
    return SignalSet.from_dir(out_dir)


def read_manifest_or_empty(path: Path) -> dict[str, Any]:
    """A signals folder's manifest, or {} when there is none (or it is unreadable: it will be rewritten)."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("%s is unreadable; it will be replaced", path)
        return {}
    return data if isinstance(data, dict) and not data.get(INCOMPLETE) else {}


def invalidate(out_dir: Path) -> None:
    """Mark a signals folder incomplete before rewriting its arrays; the real manifest is written last.
    Readers (``SignalSet.from_dir``) refuse a folder so marked, so a write cut short is never taken as whole."""
    write_json(Path(out_dir) / MANIFEST, {INCOMPLETE: True, "note": "being written; an interrupted write "
                                          "leaves this mark: rerun the command that writes this folder"})


def nan_to_zero(matrix: np.ndarray) -> np.ndarray:
    """The S2L paper's treatment of missing trajectory entries."""
    return np.where(np.isnan(matrix), 0.0, matrix).astype(np.float32)


__all__ = ["Checkpoint", "CheckpointScores", "compute_signals", "find_checkpoints", "import_trajectories",
           "length_grouped_batches", "score_checkpoint", "nan_to_zero"]
