"""A quick greedy-decoding exact-match scorer for the gym's test sets (calibration and smoke checks).

The benchmark's real evaluation goes through the gym evaluator plugin; this scorer exists so the gym can
check itself without it (``benchmarks/bench_gym_calibration.py``). It decodes as the runner's transformers
backend does (``greedy_texts``: the same compacting loop, each answer cut where the template's next prompt
would begin), reads the last "The answer is N" of what is left and compares N to the gold.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from s2lbench.common import console
from s2lbench.generation import hf_backend
from s2lbench.generation.config import GenerationConfig
from s2lbench.pool.prompts import NEXT_PROMPT, check_template, render_prompt

ANSWER = re.compile(r"The answer is\s*(-?[\d,]*\.?\d+)")


def final_answer(text: str) -> str | None:
    found = ANSWER.findall(text)
    return found[-1].replace(",", "").rstrip(".") if found else None


def read_test_set(path: str | Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def greedy_completions(model: Any, tokenizer: Any, prompts: list[str], *, batch_size: int = 256,
                       max_new_tokens: int = 160, stop: tuple[str, ...] = (), desc: str = "decoding") -> list[str]:
    """Each prompt's greedy continuation, decoded as the runner's transformers backend decodes (``greedy_texts``,
    left-padded batches of ``batch_size``), cut at ``stop``."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    config = GenerationConfig(backend="transformers", batch_size=batch_size, max_new_tokens=max_new_tokens,
                              stop=stop)
    texts: list[str] = []
    compacting = True
    for start in console.Bar(range(0, len(prompts), batch_size), desc=desc, unit="batch", leave=False):
        batch, compacting = hf_backend.greedy_texts(model, tokenizer, prompts[start:start + batch_size], config,
                                         compacting=compacting)
        texts.extend(batch)
    return texts


def greedy_answers(model: Any, tokenizer: Any, rows: list[dict[str, str]], *, batch_size: int = 256,
                   max_new_tokens: int = 160, template: str = "alpaca") -> list[str]:
    """Each row's greedy answer to its instruction under ``template``, cut where the template's next prompt
    would begin."""
    return greedy_completions(model, tokenizer, [render_prompt(template, r["instruction"]) for r in rows],
                              batch_size=batch_size, max_new_tokens=max_new_tokens,
                              stop=(NEXT_PROMPT[check_template(template)],), desc="exact match")


def exact_match(model: Any, tokenizer: Any, rows: list[dict[str, str]], *, batch_size: int = 256,
                max_new_tokens: int = 160, template: str = "alpaca") -> float:
    """Share of rows whose greedy answer (cut at the template's next prompt) ends in the gold answer."""
    texts = greedy_answers(model, tokenizer, rows, batch_size=batch_size, max_new_tokens=max_new_tokens,
                           template=template)
    return sum(final_answer(t) == r["answer"] for t, r in zip(texts, rows, strict=True)) / max(1, len(rows))
