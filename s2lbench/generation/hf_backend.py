"""The transformers backend: batched greedy decoding with left padding. Always available.

Batches decode in ``greedy.compacting_greedy`` (a finished row leaves the batch); a model that loop does not
support falls back to ``model.generate``, with the same outputs either way.
"""

from __future__ import annotations

import logging
from pathlib import Path

from s2lbench.common import console
from s2lbench.generation.config import GenerationConfig, cut_at_stop
from s2lbench.generation.greedy import compacting_greedy, end_token_ids, greedy_choice_settings

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
        #: decode in ``compacting_greedy`` until a batch shows the model needs ``model.generate``
        self.compacting = True

    def generate(self, prompts: list[str], cfg: GenerationConfig) -> list[str]:
        outputs: list[str] = []
        for start in console.Bar(range(0, len(prompts), cfg.batch_size), desc="generate", unit="batch",
                          disable=len(prompts) <= cfg.batch_size):
            texts, self.compacting = greedy_texts(self.model, self.tokenizer, prompts[start:start + cfg.batch_size],
                                                  cfg, compacting=self.compacting)
            outputs.extend(texts)
        return outputs

    def _generate(self, batch: list[str], cfg: GenerationConfig) -> list[list[int]]:
        return generate_rows(self.model, self.tokenizer, batch, cfg)


def greedy_texts(model, tokenizer, batch: list[str], cfg: GenerationConfig, *,
                 compacting: bool = True) -> tuple[list[str], bool]:
    """(each prompt's greedy continuation, cut at ``cfg.stop``; whether ``compacting_greedy`` can decode this
    model's next batch too). One batch, left-padded by ``tokenizer``; the same texts either way."""
    rows = None
    if compacting:
        rows = compacting_greedy(model, tokenizer, batch, max_new_tokens=cfg.max_new_tokens, stop=cfg.stop)
        if rows is None:
            compacting = False
            why = ", ".join(greedy_choice_settings(model)) or "its cache is not a plain DynamicCache"
            log.info("%s: decoding with model.generate (%s)", type(model).__name__, why)
    if rows is None:
        rows = generate_rows(model, tokenizer, batch, cfg)
    return [cut_at_stop(tokenizer.decode(row, skip_special_tokens=True), cfg.stop) for row in rows], compacting


def generate_rows(model, tokenizer, batch: list[str], cfg: GenerationConfig) -> list[list[int]]:
    """``model.generate``'s greedy continuations, each cut before its first end token."""
    import torch

    device = next(model.parameters()).device
    enc = tokenizer(batch, return_tensors="pt", padding=True).to(device)
    kwargs = {}
    if cfg.stop:  # lets finished rows stop early; the text is still cut at the stop, as vLLM cuts it
        kwargs.update(stop_strings=list(cfg.stop), tokenizer=tokenizer)
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=cfg.max_new_tokens, do_sample=False,
                             num_beams=1, pad_token_id=tokenizer.pad_token_id, **kwargs)
    ends = end_token_ids(model, tokenizer)
    rows = []
    for row in out[:, enc["input_ids"].shape[1]:].tolist():
        cut = next((i for i, token in enumerate(row) if token in ends), len(row))
        rows.append(row[:cut])
    return rows
