"""The transformers backend: batched greedy ``generate`` with left padding. Always available."""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm import tqdm

from s2lbench.generation.config import GenerationConfig, cut_at_stop

log = logging.getLogger(__name__)


def _torch_dtype(name: str, cuda: bool):
    import torch

    if name == "auto":
        return torch.bfloat16 if cuda else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


class TransformersBackend:
    name = "transformers"

    def __init__(self, model_dir: str | Path, config: GenerationConfig):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(
            str(model_dir), dtype=_torch_dtype(config.dtype, self.device == "cuda")).to(self.device)
        self.model.eval()

    def generate(self, prompts: list[str], cfg: GenerationConfig) -> list[str]:
        import torch

        outputs: list[str] = []
        for start in tqdm(range(0, len(prompts), cfg.batch_size), desc="generate (transformers)", unit="batch",
                          disable=len(prompts) <= cfg.batch_size):
            batch = prompts[start:start + cfg.batch_size]
            enc = self.tokenizer(batch, return_tensors="pt", padding=True).to(self.device)
            kwargs = {}
            if cfg.stop:  # lets finished rows stop early; the text is still cut below, as vLLM cuts it
                kwargs.update(stop_strings=list(cfg.stop), tokenizer=self.tokenizer)
            with torch.inference_mode():
                out = self.model.generate(**enc, max_new_tokens=cfg.max_new_tokens, do_sample=False,
                                          num_beams=1, pad_token_id=self.tokenizer.pad_token_id, **kwargs)
            new_tokens = out[:, enc["input_ids"].shape[1]:]
            for row in new_tokens.tolist():
                if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id in row:
                    row = row[:row.index(self.tokenizer.eos_token_id)]
                text = self.tokenizer.decode(row, skip_special_tokens=True)
                outputs.append(cut_at_stop(text, cfg.stop))
        return outputs
