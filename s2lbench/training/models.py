"""Tiny GPT-NeoX (Pythia architecture) configs for the gym, instantiated from config and trained from scratch."""

from __future__ import annotations

from typing import Any

from s2lbench.errors import ConfigError

_COMMON = dict(rotary_pct=0.25, use_parallel_residual=True, max_position_embeddings=512,
               hidden_act="gelu", tie_word_embeddings=False, attention_dropout=0.0, hidden_dropout=0.0)

#: name -> GPTNeoXConfig kwargs (vocab and special-token ids come from the tokenizer)
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    #: a proxy for pools with a larger vocabulary (configs/radiology.yaml: 2,000 BPE tokens), where the embeddings
    #: are most of a small model's parameters: input and output embeddings tied, 62k parameters at 2,000 tokens,
    #: 11.5x below gym-target-s (gym-proxy would be 2.9x)
    "tiny-proxy-xs": dict(num_hidden_layers=2, hidden_size=24, num_attention_heads=2, intermediate_size=96,
                          **{**_COMMON, "tie_word_embeddings": True}),
    "gym-proxy": dict(num_hidden_layers=2, hidden_size=48, num_attention_heads=4, intermediate_size=192, **_COMMON),
    "gym-target-s": dict(num_hidden_layers=3, hidden_size=96, num_attention_heads=4, intermediate_size=384,
                         **_COMMON),
    "gym-target-l": dict(num_hidden_layers=4, hidden_size=160, num_attention_heads=4, intermediate_size=640,
                         **_COMMON),
}


#: the gym's default fine-tuning recipe (TrainConfig fields) for every tiny config: a fixed schedule, as in
#: S2L, so a subset of any size gets the same number of optimizer steps as the full pool
GYM_TRAINING: dict[str, Any] = dict(learning_rate=3e-3, lr_scheduler="cosine", warmup_ratio=0.03, batch_size=64,
                                    grad_accum=1, schedule="steps", total_steps=600, max_length=256, bf16="auto")


def tiny_config(name: str, tokenizer: Any):
    from transformers import GPTNeoXConfig

    if name not in TINY_CONFIGS:
        raise ConfigError(f"unknown tiny model config {name!r}; known: {', '.join(TINY_CONFIGS)}")
    return GPTNeoXConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         **TINY_CONFIGS[name])


def tiny_model(name: str, tokenizer: Any, seed: int = 0):
    """A freshly initialised GPTNeoXForCausalLM of the named tiny config (weights depend only on ``seed``)."""
    import torch
    from transformers import GPTNeoXForCausalLM

    config = tiny_config(name, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPTNeoXForCausalLM(config)
