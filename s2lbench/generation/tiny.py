"""A tiny GPT-NeoX model with a byte-level BPE tokenizer built in code: for tests and offline demos."""

from __future__ import annotations

from pathlib import Path

_CORPUS = [
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.",
    "### Instruction:\nWhat is 12 plus 30?\n\n### Response: 12 + 30 = 42. The answer is 42.",
    "Summarize the findings of this radiology report into an impression. No acute cardiopulmonary abnormality.",
    "print(3 * 7) def solution(): return 0.5 * 8 #### 18 The answer is 7",
]


def build_tiny_model(out_dir: str | Path, *, seed: int = 0, hidden_size: int = 64, num_layers: int = 2,
                     num_heads: int = 2, vocab_size: int = 400) -> Path:
    """Save a randomly initialised GPT-NeoX (head_dim = hidden/heads, >= 32 for vLLM) and its tokenizer."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    # the alphabet is the corpus's ASCII characters only, so every token decodes to whole characters and
    # incremental (vLLM) and one-shot (transformers) detokenization cannot differ on split UTF-8 bytes
    tok = Tokenizer(models.BPE(unk_token="<|unk|>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|pad|>", "<|unk|>"],
                                  show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>", unk_token="<|unk|>",
                                        bos_token="<|endoftext|>")
    config = GPTNeoXConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
                           num_attention_heads=num_heads, intermediate_size=4 * hidden_size,
                           max_position_embeddings=1024, eos_token_id=tokenizer.eos_token_id,
                           bos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                           tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(config)
    with torch.no_grad():  # larger logits than the default init, so greedy choices are not near-ties
        model.get_output_embeddings().weight.mul_(20.0)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
