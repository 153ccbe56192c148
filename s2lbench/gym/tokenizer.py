"""The gym's tokenizer: byte-level BPE trained in code, digits always split into single characters.

Single-digit tokens keep per-digit arithmetic learnable; BPE compresses the long Alpaca prompt template
into a few tokens, which is most of the sequence for these short problems.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from s2lbench.common.atomic import atomic_dir

EOS, PAD = "<|endoftext|>", "<|pad|>"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512):
    """A ``PreTrainedTokenizerFast`` (byte-level BPE, individual digits) trained on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token=EOS, bos_token=EOS, pad_token=PAD,
                                   unk_token=None, model_max_length=1024, clean_up_tokenization_spaces=False)


def save_tokenizer(tokenizer, out_dir: str | Path) -> Path:
    with atomic_dir(out_dir) as tmp:
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)
