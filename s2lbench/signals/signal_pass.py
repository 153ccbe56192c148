"""The signal pass: every pool example's loss at every proxy checkpoint, plus the signals baselines need.

One forward pass per checkpoint yields, per example: the mean token loss on the response tokens (the
trajectory entry, prompt masked exactly as in training via ``encode_example``), the mean probability of the
gold token (confidence), the mean L2 norm of softmax minus one-hot (EL2N), and, at the last checkpoint, the
mean-pooled last hidden state (proxy embedding). The optional signals (IFD's response-alone loss, the dev
set's embedding, LESS gradient features: ``signals/extras.py``) are computed in the same loop, on the model
it has loaded. How one checkpoint is scored fast is in ``signals/scoring.py``; finding and loading the
checkpoints in ``signals/checkpoints.py``.

Why it is safe to stop: each finished checkpoint is saved atomically under ``parts/`` keyed by (pool
fingerprint, encoding fingerprint, checkpoint fingerprint, step, dtype), and each optional signal's part by
that key plus what the signal reads, so a rerun skips them; the signal files and ``manifest.json`` are
assembled only when every checkpoint is done.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from s2lbench.common.atomic import atomic_path, save_npy, write_json
from s2lbench.common.files import read_json_object
from s2lbench.common.fingerprint import config_hash
from s2lbench.common.provenance import package_versions
from s2lbench.errors import ConfigError
from s2lbench.pool.encoding import Encoded
from s2lbench.pool.records import Pool
from s2lbench.signals.checkpoints import (
    Checkpoint,
    checkpoint_fingerprint,
    find_checkpoints,
    load_model,
    load_tokenizer,
    resolve_device,
    resolve_dtype,
)
from s2lbench.signals.extras import OPTIONAL_SIGNALS, Extra, Part, optional_signals
from s2lbench.signals.gradients import parse_gradient_config
from s2lbench.signals.scoring import (
    Batched,
    CheckpointScores,
    Scoring,
    encoding_fingerprint,
    head_split_reproduces,
    score_checkpoint,
)
from s2lbench.signals.signalset import (
    CONFIDENCE,
    EL2N,
    FILES,
    LOSS,
    MANIFEST,
    PROXY_EMBEDDING,
    RESPONSE_TOKENS,
    SIGNAL_DESCRIPTIONS,
    TEXT_EMBEDDING,
    SignalSet,
    invalidate,
    read_manifest_or_empty,
)

log = logging.getLogger(__name__)

#: extra file written when ``embed="all"``: the pooled embedding at every checkpoint, n x T x d
EMBEDDING_BY_CHECKPOINT_FILE = "proxy_embedding_by_checkpoint.npy"
PARTS_DIR = "parts"


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
    # set-up: the checkpoints, the device and precision, the tokenizer, the pool's encoding, the extras
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
    run_info = _proxy_run_info(run_dir, pool_fp)
    trained_with = run_info.get("config") or {}
    scoring = Scoring(tok, int(max_length or trained_with.get("max_length") or 512),
                      template or trained_with.get("template") or "alpaca", batch_tokens, batch_size, device, pad_id,
                      progress)
    rows = scoring.encode(pool)
    lengths = rows.lengths
    enc_fp = encoding_fingerprint(rows.encoded)
    log.info("%d examples, %d tokens, %d batches, %d checkpoints, %s on %s", len(pool), sum(lengths),
             len(rows.batches), len(ckpts), dtype_name, device)
    extras = optional_signals(scoring, rows.encoded, len(ckpts), embed=mode != "none", ifd=ifd, dev=dev,
                              gradients=grad_config)

    # the loop over checkpoints: each one's part read back if it is there, else computed and saved
    models = _Models(torch_dtype, device, pad_id, probe=rows.encoded[int(np.argmin(lengths))], full_logits=full_logits)
    passed = []
    for index, ckpt in enumerate(ckpts):
        want_embedding = mode == "all" or (mode == "last" and index == len(ckpts) - 1)
        base_spec = {"pool": pool_fp, "encoding": enc_fp, "checkpoint": checkpoint_fingerprint(ckpt.path),
                     "step": ckpt.step, "dtype": dtype_name}
        passed.append(_pass_checkpoint(ckpts, index, base_spec, out_dir / PARTS_DIR, rows, want_embedding,
                                       extras, models, progress))
    results = [p.scores for p in passed]
    records = [p.record for p in passed]

    # assemble: the signal files, then the manifest (the manifest comes back last: a folder cut short here is
    # never taken as complete)
    manifest_path = out_dir / MANIFEST
    previous = read_manifest_or_empty(manifest_path)
    invalidate(out_dir)
    signals = _write_base_signals(out_dir, rows, results, mode, ckpts[-1].step)
    extra_cost: dict[str, float] = {}
    for extra in extras:
        parts = [p.extras[extra.name] for p in passed if extra.name in p.extras]
        steps = [c.step for c, p in zip(ckpts, passed, strict=True) if extra.name in p.extras]
        written, cost = extra.assemble(out_dir, parts, steps)
        signals.update(written)
        extra_cost.update(cost)
    for name in OPTIONAL_SIGNALS:
        if name not in signals:  # left by an earlier pass with other options: must not pass for this one's
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
        "encoding": {"template": scoring.template, "max_length": scoring.max_length, "fingerprint": enc_fp,
                     "tokens": sum(lengths), "response_tokens": sum(e.n_response_tokens for e in rows.encoded),
                     "truncated_examples": sum(1 for n in lengths if n >= scoring.max_length)},
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
        "versions": package_versions(),
    }
    write_json(manifest_path, manifest)
    return SignalSet.from_dir(out_dir)


# --------------------------------------------------------------------------------------------- set-up


def _embed_mode(embed: bool | str) -> str:
    if embed is True:
        return "last"
    if embed is False or embed is None:
        return "none"
    if embed not in ("last", "all", "none"):
        raise ConfigError(f"embed must be True/False or one of 'last', 'all', 'none' (got {embed!r})")
    return embed


def _proxy_run_info(run_dir: Path | None, pool_fp: str) -> dict[str, Any]:
    """The proxy run's ``run.json`` ({} when there is none); warns when it trained on another pool."""
    if not (run_dir and (run_dir / "run.json").exists()):
        return {}
    run_info = read_json_object(run_dir / "run.json", "proxy run manifest")
    trained_on = run_info.get("pool_fingerprint")
    if trained_on and trained_on != pool_fp:
        log.warning("the proxy run was trained on pool %s but signals are computed for pool %s", trained_on, pool_fp)
    return run_info


# --------------------------------------------------------------------------------------------- per checkpoint


class _Models:
    """Loads each checkpoint's model; the first one loaded decides, once, whether applying the LM head only
    at labelled positions reproduces the full forward pass (else every checkpoint uses full logits)."""

    def __init__(self, dtype, device: str, pad_id: int, *, probe: Encoded, full_logits: bool):
        self.dtype, self.device, self.pad_id, self.probe = dtype, device, pad_id, probe
        self.forced_full = full_logits
        self.head_split_ok: bool | None = None

    def load(self, ckpt: Checkpoint):
        import torch

        model = load_model(ckpt.path, self.dtype, self.device)
        if self.head_split_ok is None and not self.forced_full:
            tolerance = 1e-3 if self.dtype == torch.float32 else 2e-2
            self.head_split_ok = head_split_reproduces(model, self.probe, self.device, self.pad_id, tolerance)
        return model

    @property
    def full_logits(self) -> bool:
        return self.forced_full or not self.head_split_ok


@dataclass
class _Passed:
    """One checkpoint done: its scores, each optional signal's part (by name) and its manifest record."""

    scores: CheckpointScores
    extras: dict[str, Part]
    record: dict[str, Any]


def _part_path(parts_dir: Path, step: int, spec: dict[str, Any], suffix: str = ".npz") -> Path:
    return parts_dir / f"step-{step:09d}-{config_hash(spec)}{suffix}"


def _pass_checkpoint(ckpts: Sequence[Checkpoint], index: int, base_spec: dict[str, Any], parts_dir: Path,
                     rows: Batched, want_embedding: bool, extras: Sequence[Extra], models: _Models,
                     progress: bool) -> _Passed:
    """One checkpoint's scores and optional signals: read back from their parts, or computed (the model is
    loaded only if something is missing) and saved."""
    ckpt = ckpts[index]
    part = _part_path(parts_dir, ckpt.step, base_spec)
    wanted = {e.name: (e, _part_path(parts_dir, ckpt.step, e.spec(base_spec), e.suffix)) for e in extras
              if e.needs(index)}
    scores = _load_part(part) if part.exists() else None
    cached = scores is not None and (scores.embedding is not None or not want_embedding)
    done = {name: _load_arrays(path) for name, (_, path) in wanted.items() if path.exists()}
    model = None
    if not cached or len(done) < len(wanted):
        log.info("checkpoint %d (%d/%d): %s", ckpt.step, index + 1, len(ckpts), ckpt.path)
        model = models.load(ckpt)
    if not cached:
        scores = score_checkpoint(model, rows.encoded, rows.batches, device=models.device, pad_id=models.pad_id,
                                  want_embedding=want_embedding, full_logits=models.full_logits,
                                  progress=progress, desc=f"checkpoint {ckpt.step} [{index + 1}/{len(ckpts)}]")
        _save_part(part, scores, {"step": ckpt.step, "checkpoint_fingerprint": base_spec["checkpoint"],
                                  "key": config_hash(base_spec)})
        log.info("checkpoint %d done in %.1fs (%.0f tokens/s)", ckpt.step, scores.cost["wall_seconds"],
                 scores.cost["tokens"] / max(scores.cost["wall_seconds"], 1e-9))
    else:
        log.info("checkpoint %d: cached in %s", ckpt.step, part.name)
    for name, (extra, path) in wanted.items():
        if name in done:
            continue
        started = time.perf_counter()
        arrays, meta = extra.compute(model, ckpts, index, models.full_logits)
        meta.setdefault("cost", {})["wall_seconds"] = round(time.perf_counter() - started, 3)
        _save_arrays(path, arrays, meta)
        done[name] = (arrays, meta)
    del model
    record = {"step": ckpt.step, "path": str(ckpt.path), "fingerprint": base_spec["checkpoint"], "part": part.name,
              "cached": cached, **scores.cost,
              "extra_seconds": {name: meta["cost"]["wall_seconds"] for name, (_, meta) in done.items()}}
    return _Passed(scores, done, record)


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


def _save_arrays(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays, meta=np.array(json.dumps(meta)))


def _load_arrays(path: Path) -> Part:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "meta"}, json.loads(str(z["meta"]))


# --------------------------------------------------------------------------------------------- assemble


def _write_base_signals(out_dir: Path, rows: Batched, results: list[CheckpointScores], mode: str,
                        last_step: int) -> dict[str, dict[str, Any]]:
    """Write the base pass's signal files (loss, confidence, EL2N, response tokens, the embeddings asked
    for); return their manifest entries. Embeddings an earlier pass left that this one did not ask for go."""
    n, steps = len(rows.encoded), len(results)
    for name, attr in ((LOSS, "loss"), (CONFIDENCE, "confidence"), (EL2N, "el2n")):
        save_npy(out_dir / FILES[name], np.stack([getattr(r, attr) for r in results], axis=1).astype(np.float32))
    signals = {name: {"file": FILES[name], "shape": [n, steps], "description": SIGNAL_DESCRIPTIONS[name]}
               for name in (LOSS, CONFIDENCE, EL2N)}
    response_tokens = np.array([e.n_response_tokens for e in rows.encoded], dtype=np.int32)
    save_npy(out_dir / FILES[RESPONSE_TOKENS], response_tokens)
    signals[RESPONSE_TOKENS] = {"file": FILES[RESPONSE_TOKENS], "shape": [n],
                                "description": SIGNAL_DESCRIPTIONS[RESPONSE_TOKENS]}
    if mode != "none":
        last = results[-1].embedding
        save_npy(out_dir / FILES[PROXY_EMBEDDING], last)
        signals[PROXY_EMBEDDING] = {"file": FILES[PROXY_EMBEDDING], "shape": list(last.shape),
                                    "description": SIGNAL_DESCRIPTIONS[PROXY_EMBEDDING], "checkpoint_step": last_step}
        if mode == "all":
            save_npy(out_dir / EMBEDDING_BY_CHECKPOINT_FILE, np.stack([r.embedding for r in results], axis=1))
    else:  # an embedding left by an earlier pass may describe other checkpoints: do not let it pass for ours
        for stale in (FILES[PROXY_EMBEDDING], EMBEDDING_BY_CHECKPOINT_FILE):
            (out_dir / stale).unlink(missing_ok=True)
    if mode != "all":
        (out_dir / EMBEDDING_BY_CHECKPOINT_FILE).unlink(missing_ok=True)
    return signals


__all__ = ["EMBEDDING_BY_CHECKPOINT_FILE", "PARTS_DIR", "compute_signals"]
