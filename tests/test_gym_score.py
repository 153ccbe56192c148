"""The gym's quick exact-match scorer (calibration) reads answers the way the runner's evaluation does."""

from __future__ import annotations

import pytest

from s2lbench.generation import GenerationConfig
from s2lbench.generation.config import cut_at_stop
from s2lbench.gym import score
from s2lbench.pool.prompts import render_prompt

RAMBLING = "3+4=7, write 7. The answer is 7.\nQ: What is 2 + 2?\nA: 2+2=4, write 4. The answer is 4."


def fake_decoder(raw: list[str], seen: list[GenerationConfig]):
    def greedy_texts(model, tokenizer, prompts, cfg, *, compacting=True):
        seen.append(cfg)
        return [cut_at_stop(text, cfg.stop) for text in raw[:len(prompts)]], compacting
    return greedy_texts


class _Tokenizer:
    pad_token, eos_token, padding_side = "<pad>", "<eos>", "right"


class _Model:
    def eval(self):
        return self


def test_an_answer_is_read_before_the_next_prompt_the_model_starts(monkeypatch):
    """A row that answers, then invents the next question and answers that too, is graded on its own answer
    (as the runner's stop strings cut it), not on the last "The answer is" of the rambling."""
    import s2lbench.generation.hf_backend as hf_backend

    seen: list[GenerationConfig] = []
    raw = [RAMBLING, "The answer is 1,200.", "I do not know."]
    monkeypatch.setattr(hf_backend, "greedy_texts", fake_decoder(raw, seen))
    rows = [{"instruction": "What is 3 + 4?", "answer": "7"}, {"instruction": "What is 600 + 600?", "answer": "1200"},
            {"instruction": "What is 1 + 2?", "answer": "3"}]
    assert score.exact_match(_Model(), _Tokenizer(), rows, template="qa") == pytest.approx(2 / 3)
    assert seen[-1].stop == ("\nQ:",) and seen[-1].max_new_tokens == 160
    # under the alpaca template the next prompt starts with its own header, so this rambling is not cut
    assert score.exact_match(_Model(), _Tokenizer(), rows, template="alpaca") == pytest.approx(1 / 3)
    assert seen[-1].stop == ("### Instruction",)


def test_batches_cover_every_row_once(monkeypatch):
    import s2lbench.generation.hf_backend as hf_backend

    seen: list[GenerationConfig] = []
    sizes: list[int] = []

    def counting(model, tokenizer, prompts, cfg, *, compacting=True):
        sizes.append(len(prompts))
        return fake_decoder(["The answer is 7."] * len(prompts), seen)(model, tokenizer, prompts, cfg)

    monkeypatch.setattr(hf_backend, "greedy_texts", counting)
    rows = [{"instruction": f"What is {i} + 7?", "answer": "7" if i % 2 else "0"} for i in range(7)]
    assert score.exact_match(_Model(), _Tokenizer(), rows, batch_size=3, template="qa") == pytest.approx(3 / 7)
    assert sizes == [3, 3, 1]


def test_the_scorer_decodes_what_the_transformers_backend_decodes(tmp_path, monkeypatch):
    """Same model, same prompts: the texts the scorer grades are the backend's outputs, stop and all."""
    from s2lbench.generation.hf_backend import TransformersBackend
    from s2lbench.generation.tiny import build_tiny_model

    backend = TransformersBackend(build_tiny_model(tmp_path / "tiny"), GenerationConfig(backend="transformers"))
    rows = [{"instruction": q, "answer": "7"} for q in ("What is 3 + 4?", "The answer is", "print(3 * 7)",
                                                        "How many sheep are there?", "12 + 30 =")]
    want = backend.generate([render_prompt("qa", r["instruction"]) for r in rows],
                            GenerationConfig(backend="transformers", max_new_tokens=12, stop=("\nQ:",)))
    graded: list[str] = []
    monkeypatch.setattr(score, "final_answer", lambda text: graded.append(text))
    score.exact_match(backend.model, backend.tokenizer, rows, batch_size=2, max_new_tokens=12, template="qa")
    assert graded == want
