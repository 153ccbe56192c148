"""Training precision is explicit: fp32 master weights even when a checkpoint's config says float16."""

from __future__ import annotations

import torch

from s2lbench.generation.tiny import build_tiny_model
from s2lbench.training.trainer import TrainConfig, load_model, load_tokenizer


def test_a_float16_checkpoint_trains_in_fp32_weights(tmp_path):
    from transformers import AutoModelForCausalLM

    folder = build_tiny_model(tmp_path / "tiny")
    AutoModelForCausalLM.from_pretrained(folder).half().save_pretrained(folder)  # config.json: float16
    assert AutoModelForCausalLM.from_pretrained(folder).dtype == torch.float16  # what dtype "auto" gives
    config = TrainConfig(model=str(folder), schedule="epochs")
    model = load_model(config, load_tokenizer(config))
    assert {p.dtype for p in model.parameters()} == {torch.float32}
