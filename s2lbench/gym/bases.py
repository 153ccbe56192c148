"""Pre-trained bases for the gym's tiny models: plain next-token training on the generated corpus.

A base is what SFT starts from in the paper's regime (a model that already knows the language). Here it is a
tiny GPT-NeoX trained on ``corpus.pretraining_corpus`` with the gym's tokenizer: documents joined by EOS and
packed into fixed blocks (no padding), HF ``Trainer`` with the causal-LM collator. The output folder is an
ordinary HF model dir (weights, config, tokenizer) plus ``base.json`` (recipe, corpus and tokenizer
fingerprints, figures), written whole or not at all. The runner caches it as the ``gym-base`` stage, keyed on
all of that, so every run of one gym shares one base per model; ``s2lbench gym pretrain`` writes one by hand.

A gym built with ``tokenizer: shared`` has the same tokenizer whatever its pool, so its bases are keyed on the
tokenizer rather than the gym, and the ones committed in ``s2lbench/gym/pretrained/<folder>/`` (one per
model and recipe, written by the commands in that folder's README) are copied in instead of pre-trained when their recipe, corpus and tokenizer
match what this run would train; otherwise the base is pre-trained as usual.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from s2lbench.common import console
from s2lbench.common.atomic import atomic_dir, write_json
from s2lbench.common.fingerprint import config_hash, file_fingerprint
from s2lbench.errors import ConfigError
from s2lbench.gym.corpus import CorpusConfig, pretraining_corpus
from s2lbench.training.models import tiny_model
from s2lbench.training.progress import console_trainer

log = logging.getLogger(__name__)

#: prefix that names a base in a model field: ``model: gym-base:gym-target-l``
BASE_PREFIX = "gym-base:"

#: the committed bases, one folder per tiny config and recipe (for gyms with ``tokenizer: shared``)
PRETRAINED_DIR = Path(__file__).parent / "pretrained"


@dataclass(frozen=True)
class BaseRecipe:
    steps: int = 600
    batch_size: int = 32
    block_size: int = 128
    learning_rate: float = 3e-3
    warmup_ratio: float = 0.05
    seed: int = 0
    corpus: CorpusConfig = field(default_factory=CorpusConfig)

    def __post_init__(self):
        for key in ("steps", "batch_size", "block_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"base recipe: {key} {getattr(self, key)} must be >= 1")
        if self.learning_rate <= 0:
            raise ConfigError(f"base recipe: learning_rate {self.learning_rate} must be positive")

    def spec(self) -> dict[str, Any]:
        """The recipe as bases are keyed on it: every field, but corpus fields added later left out at their
        defaults, so bases pre-trained before a field existed (the committed ones, cached stages) keep their keys."""
        spec = asdict(self)
        if not self.corpus.compact_facts:
            spec["corpus"].pop("compact_facts")
        return spec

    @property
    def key(self) -> str:
        """The recipe hash a base.json records (``recipe_hash``)."""
        return config_hash(self.spec())


def base_model_name(model: str) -> str | None:
    """``gym-target-l`` for ``gym-base:gym-target-l``; None for any other model field."""
    return model[len(BASE_PREFIX):] if model.startswith(BASE_PREFIX) else None


def pack_blocks(texts: list[str], tokenizer: Any, block_size: int) -> list[list[int]]:
    """Token ids of ``texts``, each followed by EOS, concatenated and cut into full blocks (the tail is dropped)."""
    stream: list[int] = []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        stream.extend(ids)
        stream.append(tokenizer.eos_token_id)
    return [stream[i:i + block_size] for i in range(0, len(stream) - block_size + 1, block_size)]


def corpus_fingerprint(corpus: list[str]) -> str:
    """A hash of the pre-training documents, in order (what a base learnt from, beyond its recipe)."""
    return config_hash(corpus)


def committed_base(model_name: str, tokenizer_dir: str | Path, recipe: BaseRecipe,
                   root: str | Path | None = None) -> Path | None:
    """The folder under ``root`` (default: PRETRAINED_DIR) whose base is ``model_name`` pre-trained with
    ``recipe`` on this corpus and this tokenizer (base.json's model, recipe hash, corpus and tokenizer
    fingerprints); None, with the reason logged, when no folder holds one. Folders are named freely (one per
    model and recipe: ``gym-target-l``, ``gym-target-l-long``), so several recipes can be committed at once."""
    root = Path(PRETRAINED_DIR if root is None else root)
    candidates = []
    for meta_path in sorted(root.glob("*/base.json")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("model") == model_name:
            candidates.append((meta_path.parent, meta))
    if not candidates:
        return None
    wanted = {"recipe_hash": recipe.key,
              "tokenizer_fingerprint": file_fingerprint(Path(tokenizer_dir) / "tokenizer.json"),
              "corpus_fingerprint": corpus_fingerprint(pretraining_corpus(recipe.corpus))}
    reasons = []
    for folder, meta in candidates:
        differ = [key for key, value in wanted.items() if meta.get(key) != value]
        if not differ:
            return folder
        reasons.append(f"{folder.name} ({', '.join(differ)})")
    log.info("no committed base of %s used; these differ from this run's: %s", model_name, "; ".join(reasons))
    return None


def pretrain_base(model_name: str, tokenizer_dir: str | Path, out_dir: str | Path,
                  recipe: BaseRecipe | None = None, corpus: list[str] | None = None) -> Path:
    """Train the tiny config ``model_name`` on the gym's corpus (or ``corpus``: documents of another domain,
    e.g. the radiology base probe's training-split findings); returns ``out_dir`` (reused when complete)."""
    import torch
    from transformers import AutoTokenizer, DataCollatorForLanguageModeling, Trainer, TrainingArguments

    recipe = recipe or BaseRecipe()
    out = Path(out_dir)
    if (out / "base.json").is_file():
        return out
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    corpus = pretraining_corpus(recipe.corpus) if corpus is None else corpus
    blocks = pack_blocks(corpus, tokenizer, recipe.block_size)
    model = tiny_model(model_name, tokenizer, seed=recipe.seed)
    dataset = [{"input_ids": torch.tensor(b)} for b in blocks]
    started = time.perf_counter()
    with atomic_dir(out) as tmp:
        args = TrainingArguments(
            output_dir=str(tmp / "trainer"), max_steps=recipe.steps, per_device_train_batch_size=recipe.batch_size,
            learning_rate=recipe.learning_rate, lr_scheduler_type="cosine",
            warmup_steps=math.ceil(recipe.steps * recipe.warmup_ratio),
            logging_steps=max(1, recipe.steps // 10), save_strategy="no", report_to=[], seed=recipe.seed,
            use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=dataset,
                          data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False))
        progress = console.Activity(f"pre-train {model_name}", recipe.steps, "steps")
        console_trainer(trainer, progress)
        with console.showing(progress):
            result = trainer.train()
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        write_json(tmp / "base.json", {
            "model": model_name, "recipe": recipe.spec(), "recipe_hash": recipe.key,
            "corpus": {"documents": len(corpus), "blocks": len(blocks), "tokens": len(blocks) * recipe.block_size},
            "corpus_fingerprint": corpus_fingerprint(corpus),
            "tokenizer_fingerprint": file_fingerprint(Path(tokenizer_dir) / "tokenizer.json"),
            "n_params": sum(p.numel() for p in model.parameters()),
            "train_tokens": recipe.steps * recipe.batch_size * recipe.block_size,
            "epochs": recipe.steps * recipe.batch_size / max(1, len(blocks)),
            "wall_seconds": round(time.perf_counter() - started, 1), "final_loss": losses[-1] if losses else None,
            "train_loss": result.training_loss})
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
    log.info("gym base %s -> %s", model_name, out)
    return out
