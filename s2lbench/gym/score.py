"""A quick greedy-decoding exact-match scorer for the gym's test sets (calibration and smoke checks).

The benchmark's real evaluation goes through the math evaluator plugin; this scorer exists so the gym can
check itself without it. It reads the last "The answer is N" of a generation and compares N to the gold.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from s2lbench.prompts import render_prompt

ANSWER = re.compile(r"The answer is\s*(-?[\d,]*\.?\d+)")


def final_answer(text: str) -> str | None:
    found = ANSWER.findall(text)
    return found[-1].replace(",", "").rstrip(".") if found else None


def read_test_set(path: str | Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def exact_match(model: Any, tokenizer: Any, rows: list[dict[str, str]], *, batch_size: int = 100,
                max_new_tokens: int = 160, template: str = "alpaca") -> float:
    """Share of rows whose greedy generation's final answer equals the gold answer string."""
    import torch

    tokenizer.padding_side = "left"
    model.eval()
    correct = 0
    for start in tqdm(range(0, len(rows), batch_size), desc="exact match", unit="batch", leave=False):
        batch = rows[start:start + batch_size]
        prompts = [render_prompt(template, r["instruction"]) for r in batch]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        correct += sum(final_answer(t) == r["answer"] for t, r in zip(texts, batch, strict=True))
    return correct / max(1, len(rows))
