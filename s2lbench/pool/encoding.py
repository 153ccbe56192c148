"""Turn an SFT example into model inputs: prompt + response + EOS, with the prompt masked out of the loss.

Training and the signal pass both call ``encode_example`` so the loss a trajectory records is exactly the
loss the proxy was trained on (S2L / Alpaca convention: labels = -100 on prompt tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from s2lbench.pool.prompts import render_prompt
from s2lbench.pool.records import SFTExample

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]

    @property
    def n_response_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE_INDEX)


def encode_example(tokenizer: Any, example: SFTExample, max_length: int, template: str = "alpaca") -> Encoded:
    """Tokenize prompt and response separately (so the boundary is exact), append EOS, truncate to max_length.

    If the prompt alone fills ``max_length`` the prompt is cut from the left so at least one response token
    stays; an example never ends up with no supervised token.
    """
    prompt = render_prompt(template, example.instruction, example.input)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    bos = [tokenizer.bos_token_id] if getattr(tokenizer, "add_bos_token", False) and tokenizer.bos_token_id is not None else []
    response_ids = tokenizer(example.output, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        response_ids = response_ids + [tokenizer.eos_token_id]
    prompt_ids = bos + prompt_ids
    if len(prompt_ids) >= max_length:
        prompt_ids = prompt_ids[-(max_length - 1):]
    input_ids = (prompt_ids + response_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + response_ids)[:max_length]
    return Encoded(input_ids=input_ids, labels=labels)
