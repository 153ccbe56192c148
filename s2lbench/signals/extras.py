"""The signal pass's optional signals, computed in its loop over checkpoints on the model it has loaded:
IFD's response-alone loss, the dev set's embedding (with the task of each dev row), LESS gradient features.

Each is one small object that says

- ``name``, ``suffix``: how it is named in the manifest's per-checkpoint ``extra_seconds`` and how its part
  files end (``parts/step-<step>-<key><suffix>``, a part per checkpoint it needs);
- ``needs(index)``: which checkpoints it needs;
- ``spec(base)``: its part's key (``config_hash`` of the checkpoint's own spec plus what the signal reads);
- ``compute(model, checkpoints, index, full_logits)``: its arrays (and metadata) from the loaded model;
- ``assemble(out_dir, parts, steps)``: once every checkpoint is done, its signal files, their manifest
  entries and what it cost (seconds, by signal).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from s2lbench.common.atomic import save_npy
from s2lbench.common.fingerprint import config_hash
from s2lbench.errors import DataError
from s2lbench.pool.encoding import Encoded
from s2lbench.pool.records import Pool
from s2lbench.signals.checkpoints import Checkpoint
from s2lbench.signals.gradients import (
    GradientConfig,
    RademacherProjector,
    checkpoint_learning_rate,
    gradient_checkpoint_indices,
    gradient_features,
    load_adam_moments,
    trainable_names,
)
from s2lbench.signals.scoring import Batched, Scoring, encode_response_alone, encoding_fingerprint
from s2lbench.signals.signalset import (
    CHECKPOINT_LR,
    DEV_EMBEDDING,
    DEV_GRADIENTS,
    DEV_TASKS,
    FILES,
    GRADIENTS,
    LOSS_ALONE,
    SIGNAL_DESCRIPTIONS,
)

log = logging.getLogger(__name__)

#: one checkpoint's part of an optional signal: its arrays and its metadata (``cost`` included)
Part = tuple[dict[str, np.ndarray], dict[str, Any]]
#: every file an optional signal may write: a pass that did not write one deletes it (an earlier pass with
#: other options left it, and it must not pass for this one's)
OPTIONAL_SIGNALS = (LOSS_ALONE, DEV_TASKS, DEV_EMBEDDING, GRADIENTS, DEV_GRADIENTS, CHECKPOINT_LR)


class Extra(Protocol):
    name: ClassVar[str]
    suffix: ClassVar[str]

    def needs(self, index: int) -> bool: ...

    def spec(self, base: dict[str, Any]) -> dict[str, Any]: ...

    def compute(self, model, checkpoints: Sequence[Checkpoint], index: int, full_logits: bool) -> Part: ...

    def assemble(self, out_dir: Path, parts: list[Part],
                 steps: list[int]) -> tuple[dict[str, dict[str, Any]], dict[str, float]]: ...


def _signal(name: str, array: np.ndarray, **info: Any) -> dict[str, Any]:
    """A signal's manifest entry."""
    return {"file": FILES[name], "shape": list(array.shape), "description": SIGNAL_DESCRIPTIONS[name], **info}


def _seconds(parts: list[Part]) -> float:
    return sum(meta["cost"]["wall_seconds"] for _, meta in parts)


@dataclass
class ResponseAloneLoss:
    """IFD's denominator: at every checkpoint, each response's loss without its instruction."""

    name: ClassVar[str] = "ifd"
    suffix: ClassVar[str] = ".ifd.npz"
    scoring: Scoring
    alone: Batched
    fingerprint: str

    @classmethod
    def of(cls, scoring: Scoring, encoded: Sequence[Encoded]) -> ResponseAloneLoss:
        alone = [encode_response_alone(scoring.tokenizer, e, scoring.template) for e in encoded]
        return cls(scoring, scoring.batch(alone), encoding_fingerprint(alone))

    def needs(self, index: int) -> bool:
        return True

    def spec(self, base: dict[str, Any]) -> dict[str, Any]:
        return {**base, "alone": self.fingerprint}

    def compute(self, model, checkpoints: Sequence[Checkpoint], index: int, full_logits: bool) -> Part:
        scores = self.scoring.score(model, self.alone, want_embedding=False, full_logits=full_logits,
                                    progress=self.scoring.progress, desc=f"response alone {checkpoints[index].step}")
        return {"loss_alone": scores.loss}, {"cost": scores.cost}

    def assemble(self, out_dir: Path, parts: list[Part], steps: list[int]):
        loss_alone = np.stack([arrays["loss_alone"] for arrays, _ in parts], axis=1)
        save_npy(out_dir / FILES[LOSS_ALONE], loss_alone)
        return {LOSS_ALONE: _signal(LOSS_ALONE, loss_alone)}, {LOSS_ALONE: _seconds(parts)}


@dataclass
class DevRows:
    """The dev set as the pass scores it: encoded and batched like the pool, keyed by its rows, their
    tasks and its encoding."""

    pool: Pool
    rows: Batched
    fingerprint: str

    @classmethod
    def of(cls, scoring: Scoring, dev: Pool) -> DevRows:
        rows = scoring.encode(dev)
        key = config_hash({"dev": dev.fingerprint(), "tasks": dev.sources, "encoding": encoding_fingerprint(rows.encoded)})
        return cls(dev, rows, key)


@dataclass
class DevEmbedding:
    """The task of each dev row, and (when the pass embeds) the dev set's proxy embedding at the last
    checkpoint: what targeted selectors match the pool against."""

    name: ClassVar[str] = "dev"
    suffix: ClassVar[str] = ".dev.npz"
    scoring: Scoring
    dev: DevRows
    #: the checkpoint embedded at (the last), None when the pass writes no embedding
    at: int | None

    def needs(self, index: int) -> bool:
        return index == self.at

    def spec(self, base: dict[str, Any]) -> dict[str, Any]:
        return {**base, "dev": self.dev.fingerprint}

    def compute(self, model, checkpoints: Sequence[Checkpoint], index: int, full_logits: bool) -> Part:
        scores = self.scoring.score(model, self.dev.rows, want_embedding=True, full_logits=full_logits,
                                    progress=False)
        return {"dev_embedding": scores.embedding}, {"cost": scores.cost}

    def assemble(self, out_dir: Path, parts: list[Part], steps: list[int]):
        dev = self.dev.pool
        tasks = np.asarray(dev.sources, dtype=str)
        save_npy(out_dir / FILES[DEV_TASKS], tasks)
        signals = {DEV_TASKS: _signal(DEV_TASKS, tasks, tasks=sorted(set(dev.sources)),
                                      dev_fingerprint=dev.fingerprint())}
        cost = {}
        if parts:
            embedding = parts[-1][0]["dev_embedding"]
            save_npy(out_dir / FILES[DEV_EMBEDDING], embedding)
            signals[DEV_EMBEDDING] = _signal(DEV_EMBEDDING, embedding, checkpoint_step=steps[-1])
            cost[DEV_EMBEDDING] = _seconds(parts)
        return signals, cost


@dataclass
class GradientFeatures:
    """LESS gradient features of the pool and of the dev set at ``config.checkpoints`` evenly spaced
    checkpoints, and each one's learning rate (LESS's checkpoint weights)."""

    name: ClassVar[str] = "gradients"
    suffix: ClassVar[str] = ".grad.npz"
    scoring: Scoring
    config: GradientConfig
    encoded: list[Encoded]
    dev: DevRows
    indices: list[int]

    def needs(self, index: int) -> bool:
        return index in self.indices

    def spec(self, base: dict[str, Any]) -> dict[str, Any]:
        return {**base, "dev": self.dev.fingerprint, "gradients": dataclasses.asdict(self.config)}

    def compute(self, model, checkpoints: Sequence[Checkpoint], index: int, full_logits: bool) -> Part:
        config, ckpt = self.config, checkpoints[index]
        moments = None if config.optimizer == "sgd" else load_adam_moments(ckpt.path, model)
        if moments is None and config.optimizer == "adam":
            raise DataError("gradients.optimizer=adam but the checkpoint has no Adam moments (adam_state.pt "
                            "or optimizer.pt); train the proxy through the runner with a gradient signal "
                            "requested, or use optimizer=auto / sgd", path=ckpt.path)
        if moments is None:
            log.warning("checkpoint %d has no Adam moments: its gradient features are SGD-normalised", ckpt.step)
        n_params = sum(p.numel() for n, p in model.named_parameters() if n in set(trainable_names(model)))
        projector = RademacherProjector(n_params, config.dim, config.seed, config.block, self.scoring.device)
        pad_id = self.scoring.pad_id
        features = gradient_features(model, self.encoded, pad_id=pad_id, projector=projector, moments=moments,
                                     batch_size=config.batch_size, progress=self.scoring.progress,
                                     desc=f"gradients {ckpt.step}")
        dev_features = gradient_features(model, self.dev.rows.encoded, pad_id=pad_id, projector=projector,
                                         moments=None, batch_size=config.batch_size, progress=False)
        previous = checkpoints[index - 1].step if index else 0
        arrays = {"features": features.astype(np.float16), "dev_features": dev_features.astype(np.float16)}
        meta = {"normalisation": "adam" if moments is not None else "sgd",
                "optimizer_file": moments["file"] if moments else None,
                "learning_rate": checkpoint_learning_rate(ckpt.path, ckpt.step, previous), "n_parameters": n_params}
        return arrays, meta

    def assemble(self, out_dir: Path, parts: list[Part], steps: list[int]):
        features = np.stack([arrays["features"] for arrays, _ in parts], axis=1)
        dev_features = np.stack([arrays["dev_features"] for arrays, _ in parts], axis=1)
        lrs = [meta["learning_rate"] for _, meta in parts]
        if any(lr is None for lr in lrs):
            log.warning("no learning rate logged for some gradient checkpoints: equal checkpoint weights")
            lrs = [1.0] * len(lrs)
        learning_rates = np.asarray(lrs, dtype=np.float32)
        save_npy(out_dir / FILES[GRADIENTS], features)
        save_npy(out_dir / FILES[DEV_GRADIENTS], dev_features)
        save_npy(out_dir / FILES[CHECKPOINT_LR], learning_rates)
        block = {"checkpoint_steps": steps, "config": dataclasses.asdict(self.config),
                 "normalisation": [meta["normalisation"] for _, meta in parts],
                 "learning_rates": lrs, "n_parameters": parts[0][1]["n_parameters"]}
        signals = {name: _signal(name, array, **block) for name, array in
                   ((GRADIENTS, features), (DEV_GRADIENTS, dev_features), (CHECKPOINT_LR, learning_rates))}
        return signals, {GRADIENTS: _seconds(parts)}


def optional_signals(scoring: Scoring, encoded: list[Encoded], n_checkpoints: int, *, embed: bool, ifd: bool,
                     dev: Pool | None, gradients: GradientConfig | None) -> list[Extra]:
    """The optional signals asked for, in the order they are computed at each checkpoint."""
    extras: list[Extra] = []
    if ifd:
        extras.append(ResponseAloneLoss.of(scoring, encoded))
    if dev is not None:
        rows = DevRows.of(scoring, dev)
        extras.append(DevEmbedding(scoring, rows, at=n_checkpoints - 1 if embed else None))
        if gradients is not None:
            indices = gradient_checkpoint_indices(n_checkpoints, gradients.checkpoints)
            extras.append(GradientFeatures(scoring, gradients, encoded, rows, indices))
    return extras


__all__ = ["OPTIONAL_SIGNALS", "DevEmbedding", "DevRows", "Extra", "GradientFeatures", "Part", "ResponseAloneLoss",
           "optional_signals"]
