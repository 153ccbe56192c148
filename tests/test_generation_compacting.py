"""The transformers backend's decoding loop (a finished row leaves the batch) against ``model.generate``."""

from __future__ import annotations

import pytest

from s2lbench.generation import GenerationConfig
from s2lbench.generation.greedy import compacting_greedy

PROMPTS = ["### Instruction:\nWhat is 12 plus 30?\n\n### Response:", "The answer is", "print(3 * 7)",
           "No acute cardiopulmonary abnormality. Below is an instruction.", "12 + 30 =", "def solution():",
           "Summarize the findings", "#### 18", "What is", "Write a response that appropriately completes"]


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from s2lbench.generation.hf_backend import TransformersBackend
    from s2lbench.generation.tiny import build_tiny_model

    model_dir = build_tiny_model(tmp_path_factory.mktemp("tiny"))
    return TransformersBackend(model_dir, GenerationConfig(backend="transformers"))


@pytest.fixture
def frequent_end(backend):
    """Make a token the random model emits often an end token, so rows finish at many different steps."""
    from collections import Counter

    free = backend._generate(PROMPTS, GenerationConfig(max_new_tokens=24))
    token = Counter(t for row in free for t in row[3:]).most_common(1)[0][0]
    config = backend.model.generation_config
    saved = config.eos_token_id
    config.eos_token_id = [saved, token]
    yield token
    config.eos_token_id = saved


@pytest.mark.parametrize("max_new_tokens", [1, 7, 24])
def test_compacting_loop_picks_the_tokens_generate_picks(backend, frequent_end, max_new_tokens):
    cfg = GenerationConfig(max_new_tokens=max_new_tokens)
    want = backend._generate(PROMPTS, cfg)
    got = compacting_greedy(backend.model, backend.tokenizer, PROMPTS, max_new_tokens=max_new_tokens, stop=())
    assert got == want
    if max_new_tokens > 1:
        assert len({len(row) for row in got}) > 2, "rows all ended together: the comparison is vacuous"


def test_stop_strings_end_rows_with_the_text_generate_gives(backend):
    free = backend.generate(PROMPTS, GenerationConfig(max_new_tokens=24))
    stop = next(o for o in free if len(o.strip()) > 6).strip()[3:5]
    cfg = GenerationConfig(max_new_tokens=24, stop=(stop, "\nQ:"))
    backend.compacting = False
    try:
        reference = backend.generate(PROMPTS, cfg)
    finally:
        backend.compacting = True
    assert backend.generate(PROMPTS, cfg) == reference
    assert any(stop in o for o in free) and not any(stop in o for o in reference)


def test_finished_rows_leave_the_batch(backend, frequent_end):
    widths: list[int] = []
    hook = backend.model.register_forward_pre_hook(
        lambda _module, _args, kwargs: widths.append(kwargs["input_ids"].shape[0]), with_kwargs=True)
    try:
        rows = compacting_greedy(backend.model, backend.tokenizer, PROMPTS, max_new_tokens=24, stop=())
    finally:
        hook.remove()
    assert widths[0] == len(PROMPTS)
    assert widths == sorted(widths, reverse=True) and widths[-1] < len(PROMPTS)
    # one forward per step while any row is still open; each row is in a step only until it ends
    assert len(widths) == max(len(r) for r in rows) + (0 if max(len(r) for r in rows) == 24 else 1)
    assert sum(widths) < len(PROMPTS) * len(widths)


def test_a_sliding_window_model_decodes_with_generate(tmp_path, backend):
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    from s2lbench.generation.hf_backend import TransformersBackend

    tokenizer = backend.tokenizer
    config = MistralConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=2, sliding_window=4,
                           eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    MistralForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    mistral = TransformersBackend(tmp_path, GenerationConfig(backend="transformers"))
    assert compacting_greedy(mistral.model, mistral.tokenizer, PROMPTS[:3], max_new_tokens=4, stop=()) is None
    cfg = GenerationConfig(max_new_tokens=6, batch_size=2)
    outputs = mistral.generate(PROMPTS[:3], cfg)
    assert mistral.compacting is False
    assert outputs == [mistral.tokenizer.decode(r, skip_special_tokens=True)
                       for r in mistral._generate(PROMPTS[:3], cfg)]
    assert any(outputs)


@pytest.mark.parametrize(("key", "value"), [("batch_size", 0), ("max_new_tokens", 0), ("gpu_memory_utilization", 1.5)])
def test_bad_decoding_settings_are_named_when_the_config_loads(key, value):
    from pathlib import Path

    import s2lbench
    from s2lbench.errors import ConfigError
    from s2lbench.grid.experiment import load_experiment

    demo = Path(s2lbench.__file__).parent / "demo.yaml"
    with pytest.raises(ConfigError, match=rf"demo\.yaml: evaluation\.generation\.{key}: {value} must be"):
        load_experiment(demo, [f"evaluation.generation.{key}={value}"])


def test_a_checkpoint_that_sets_a_repetition_penalty_decodes_with_generate(tmp_path):
    from s2lbench.generation.greedy import greedy_choice_settings
    from s2lbench.generation.hf_backend import TransformersBackend
    from s2lbench.generation.tiny import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "tiny")
    plain = TransformersBackend(model_dir, GenerationConfig(backend="transformers"))
    cfg = GenerationConfig(max_new_tokens=24)
    unpenalised = plain.generate(PROMPTS, cfg)
    plain.model.generation_config.repetition_penalty = 3.0
    plain.model.generation_config.save_pretrained(model_dir)  # as a checkpoint's generation_config.json ships it
    penalised = TransformersBackend(model_dir, GenerationConfig(backend="transformers"))
    assert greedy_choice_settings(penalised.model) == ["repetition_penalty=3.0"]
    outputs = penalised.generate(PROMPTS, cfg)
    assert penalised.compacting is False
    want = [penalised.tokenizer.decode(r, skip_special_tokens=True) for r in penalised._generate(PROMPTS, cfg)]
    assert outputs == want and outputs != unpenalised
