"""The proxy run's checkpoints as the signal pass reads them: finding them, a cheap content key for each,
and loading a checkpoint's tokenizer and model on a device in a precision."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s2lbench.common.files import read_json_object
from s2lbench.common.hub import load_tokenizer as load_hub_tokenizer
from s2lbench.errors import ConfigError, DataError

log = logging.getLogger(__name__)

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path


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
    if tokenizer is not None:
        return load_hub_tokenizer(str(tokenizer))
    candidates = [c.path for c in reversed(checkpoints)] + ([run_dir] if run_dir else [])
    for folder in candidates:
        if any((folder / name).exists() for name in _TOKENIZER_FILES):
            return load_hub_tokenizer(str(folder))
    raise ConfigError(f"no tokenizer found in {candidates[0]} or the run folder; pass one "
                      "(--tokenizer PATH_OR_HUB_ID, or tokenizer=... in compute_signals)")


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
    """A checkpoint's causal LM on ``device`` in ``dtype``, in eval mode."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    return model.to(device).eval()


def count_parameters(model) -> int:
    """Unique parameters (tied input/output embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


__all__ = ["Checkpoint", "checkpoint_fingerprint", "count_parameters", "find_checkpoints", "load_model",
           "load_tokenizer", "resolve_device", "resolve_dtype"]
