"""LESS gradient features (Xia et al., ICML 2024): per-example gradients, randomly projected, Adam-normalised.

For one checkpoint and a list of encoded examples this computes, as princeton-nlp/LESS
(``less/data_selection/collect_grad_reps.py``) does:

1. the gradient of each example's mean response-token loss (batch of one in LESS; here ``torch.func.vmap``
   over ``grad``, which gives the same per-example gradients for a whole batch at once -- tested against a
   loop of single-example backward passes), over every parameter that requires a gradient (all of them for
   a full-fine-tuned proxy, the LoRA matrices for a PEFT model);
2. for training examples, the Adam update direction LESS uses: with the checkpoint's Adam moments m, v,
   ``m' = b1 m + (1 - b1) g``, ``v' = b2 v + (1 - b2) g^2``, feature = ``m' / sqrt(v' + eps)`` (eps inside
   the square root, as in LESS); dev examples keep the plain (SGD) gradient, as LESS does for validation;
3. a seeded Rademacher random projection to ``dim`` coordinates (TRAK's ``BasicProjector`` with
   ``ProjectionType.rademacher``: entries +-1 / sqrt(dim)), then L2 normalisation (LESS's ``all_orig.pt``),
   so a dot product of two features is their cosine similarity.

Adam moments are read from the checkpoint's ``adam_state.pt`` (kept at every checkpoint when the runner
trains a proxy for a gradient signal) or ``optimizer.pt`` (HF Trainer; s2lbench keeps it only in the newest
checkpoint). Where a checkpoint has neither, its features are SGD-normalised (the projected raw gradient)
and the manifest says so.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from s2lbench.common import console
from s2lbench.common.typed import from_dict
from s2lbench.errors import ConfigError, DataError
from s2lbench.pool.encoding import IGNORE_INDEX, Encoded
from s2lbench.signals.scoring import collate

log = logging.getLogger(__name__)

#: the Adam moments a proxy run keeps at every checkpoint when a gradient signal is requested
ADAM_STATE_FILE = "adam_state.pt"
HF_OPTIMIZER_FILE = "optimizer.pt"
#: materialise the projection matrix when it has at most this many entries (1 GiB in fp32); above it the
#: blocks are regenerated from their seeds for every batch (as TRAK's projectors do on a GPU)
MATERIALISE_ENTRIES = 1 << 28


@dataclass(frozen=True)
class GradientConfig:
    """How the gradient features are computed (keys of ``gradients:`` in ``signals.options``)."""

    #: projection dimension (LESS: 8192; small pools and CPUs: 512-2048 keep the cost down)
    dim: int = 8192
    #: projection seed (LESS: 0)
    seed: int = 0
    #: how many checkpoints get features: evenly spaced, ending at the last (LESS: 4, one per epoch)
    checkpoints: int = 4
    #: "auto": Adam-normalised where the checkpoint has Adam moments, else SGD; "adam": required; "sgd": never
    optimizer: str = "auto"
    #: examples per vmap batch (memory: batch x parameters floats for the gradients)
    batch_size: int = 16
    #: parameter rows per projection block
    block: int = 8192

    def __post_init__(self):
        if self.dim < 1 or self.checkpoints < 1 or self.batch_size < 1 or self.block < 1:
            raise ValueError("dim, checkpoints, batch_size and block must be >= 1")
        if self.optimizer not in ("auto", "adam", "sgd"):
            raise ValueError(f"optimizer must be auto, adam or sgd (got {self.optimizer!r})")


def gradient_checkpoint_indices(n_checkpoints: int, wanted: int) -> list[int]:
    """``wanted`` evenly spaced checkpoint indices ending at the last (all when there are fewer)."""
    if wanted >= n_checkpoints:
        return list(range(n_checkpoints))
    return sorted({round(n_checkpoints * i / wanted) - 1 for i in range(1, wanted + 1)})


class RademacherProjector:
    """x (B x P) -> x R (B x dim), R[i, j] = +-1 / sqrt(dim), generated block by block from ``seed``.

    Block b covers parameter rows [b * block, (b + 1) * block) and is drawn from a generator seeded with
    (seed, b), so the projection is the same whatever the batch size or device, and never needs to exist
    in memory at once for a large model.
    """

    def __init__(self, n_params: int, dim: int, seed: int = 0, block: int = 8192, device: str = "cpu"):
        import torch

        self.n_params, self.dim, self.seed, self.block, self.device = n_params, dim, seed, block, device
        self.scale = 1.0 / float(np.sqrt(dim))
        self._full = None
        if n_params * dim <= MATERIALISE_ENTRIES:
            self._full = torch.cat([self._block(b) for b in range(self.n_blocks)])

    @property
    def n_blocks(self) -> int:
        return -(-self.n_params // self.block)

    def _block(self, b: int):
        import torch

        rows = min(self.block, self.n_params - b * self.block)
        gen = torch.Generator(device="cpu").manual_seed(self.seed * 1_000_003 + b)
        signs = torch.randint(0, 2, (rows, self.dim), generator=gen, dtype=torch.int8)
        return (signs.to(device=self.device, dtype=torch.float32) * 2 - 1) * self.scale

    def project(self, x):
        x = x.float()
        if self._full is not None:
            return x @ self._full
        out = None
        for b in range(self.n_blocks):
            part = x[:, b * self.block:(b + 1) * self.block] @ self._block(b)
            out = part if out is None else out.add_(part)
        return out


def trainable_names(model) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def load_adam_moments(checkpoint: Path, model) -> dict[str, Any] | None:
    """The checkpoint's Adam moments as flat vectors in ``trainable_names`` order, or None when absent.

    HF Trainer's ``optimizer.pt`` numbers parameters by group: weight-decay parameters first, then the rest,
    each in ``named_parameters`` order (``Trainer.get_decay_parameter_names``). Every moment's shape is
    checked against its parameter, so a different grouping is an error, never a silent mix-up.
    """
    import torch

    path = next((checkpoint / f for f in (ADAM_STATE_FILE, HF_OPTIMIZER_FILE) if (checkpoint / f).exists()), None)
    if path is None:
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    groups = state.get("param_groups") or []
    ids = [i for g in groups for i in g["params"]]
    named = dict(model.named_parameters())
    names = trainable_names(model)
    candidates = [names]
    if len(groups) == 2:
        from transformers import Trainer

        decay = set(Trainer.get_decay_parameter_names(None, model))
        candidates.insert(0, [n for n in names if n in decay] + [n for n in names if n not in decay])
    for order in candidates:
        if len(order) != len(ids):
            continue
        entries = [state["state"].get(i) for i in ids]
        if all(e is not None and e["exp_avg"].shape == named[n].shape for e, n in zip(entries, order, strict=True)):
            by_name = dict(zip(order, entries, strict=True))
            group = groups[0]
            b1, b2 = group.get("betas", (0.9, 0.999))
            return {"exp_avg": torch.cat([by_name[n]["exp_avg"].reshape(-1).float() for n in names]),
                    "exp_avg_sq": torch.cat([by_name[n]["exp_avg_sq"].reshape(-1).float() for n in names]),
                    "beta1": float(b1), "beta2": float(b2), "eps": float(group.get("eps", 1e-8)),
                    "file": path.name}
    raise DataError(f"the optimizer state's {len(ids)} entries do not match the model's {len(names)} trainable "
                    "parameters in either HF Trainer grouping", path=path)


def adam_direction(grads, moments: dict[str, Any]):
    """LESS's ``obtain_gradients_with_adam``: the Adam step direction one more update with ``grads`` would take."""
    import torch

    b1, b2, eps = moments["beta1"], moments["beta2"], moments["eps"]
    m = b1 * moments["exp_avg"] + (1 - b1) * grads
    v = b2 * moments["exp_avg_sq"] + (1 - b2) * grads * grads
    return m / torch.sqrt(v + eps)


def checkpoint_learning_rate(checkpoint: Path, step: int, previous_step: int) -> float | None:
    """Mean learning rate logged in (previous_step, step] (LESS weights a checkpoint by its epoch's mean lr),
    else the last one logged at or before ``step``; None when the checkpoint has no ``trainer_state.json``."""
    path = checkpoint / "trainer_state.json"
    if not path.exists():
        return None
    try:
        history = json.loads(path.read_text()).get("log_history", [])
    except json.JSONDecodeError as e:
        raise DataError(f"malformed JSON ({e.msg})", path=path, line=e.lineno) from None
    logged = [(int(h["step"]), float(h["learning_rate"])) for h in history if "learning_rate" in h and "step" in h]
    window = [lr for s, lr in logged if previous_step < s <= step]
    if window:
        return float(np.mean(window))
    before = [lr for s, lr in logged if s <= step]
    return before[-1] if before else None


def per_example_gradients(model, input_ids, labels):
    """B x P: each row the gradient of one example's mean response-token loss (all trainable parameters,
    flattened in ``trainable_names`` order). Padding is on the right and unlabelled, so under the causal mask
    it changes no real token's output: the batch needs no attention mask (which vmap cannot trace)."""
    import torch
    from torch.func import functional_call, grad, vmap

    names = trainable_names(model)
    params = {n: p.detach() for n, p in model.named_parameters() if n in set(names)}
    frozen = {n: p.detach() for n, p in model.named_parameters() if n not in params}
    buffers = dict(model.named_buffers())

    def loss(p, ids, lab):
        out = functional_call(model, {**p, **frozen, **buffers}, (), {"input_ids": ids[None], "use_cache": False})
        return torch.nn.functional.cross_entropy(out.logits[0, :-1].float(), lab[1:], ignore_index=IGNORE_INDEX)

    with warnings.catch_warnings():  # sdpa's CPU backward has no vmap rule yet: correct, just slower
        warnings.filterwarnings("ignore", message=".*performance drop.*")
        grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, input_ids, labels)
    return torch.cat([grads[n].reshape(input_ids.shape[0], -1) for n in names], dim=1)


def gradient_features(model, encoded: Sequence[Encoded], *, pad_id: int, projector: RademacherProjector,
                      moments: dict[str, Any] | None, batch_size: int, progress: bool = True,
                      desc: str = "gradients") -> np.ndarray:
    """n x dim float32 unit vectors: projected (Adam-normalised when ``moments`` is given) gradients."""
    import torch

    model.eval()  # dropout off: a gradient feature must not depend on a random mask
    n = len(encoded)
    out = np.zeros((n, projector.dim), dtype=np.float32)
    order = np.argsort([-len(e.input_ids) for e in encoded], kind="stable")  # similar lengths share a batch
    with console.Bar(total=n, unit="ex", desc=desc, disable=not progress, leave=False) as bar:
        for start in range(0, n, batch_size):
            batch = order[start:start + batch_size]
            ids, labels, _ = collate([encoded[i] for i in batch], pad_id)
            ids, labels = ids.to(projector.device), labels.to(projector.device)
            grads = per_example_gradients(model, ids, labels)
            if moments is not None:
                grads = adam_direction(grads, moments)
            projected = projector.project(grads)
            projected = torch.nn.functional.normalize(projected, dim=1)
            out[batch] = projected.cpu().numpy()
            bar.update(len(batch))
    return out


def parse_gradient_config(value: Any) -> GradientConfig | None:
    """``gradients`` option of the signal pass: None/False = off, True = defaults, a dict = fields."""
    if value in (None, False):
        return None
    if value is True:
        return GradientConfig()
    if isinstance(value, GradientConfig):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"signals option gradients must be true/false or a mapping, got {value!r}")
    return from_dict(GradientConfig, value, where="signals option gradients")


def keep_adam_state(step: int, checkpoint: Path) -> None:
    """A training ``eval_hook``: copy the checkpoint's optimizer state to ``adam_state.pt`` while it is there.

    s2lbench's training keeps ``optimizer.pt`` only in the newest checkpoint (what resuming needs); LESS
    needs the Adam moments at every checkpoint it reads. For a tiny proxy the copy is two floats per
    parameter; for a LoRA proxy, two per adapter parameter.
    """
    source = Path(checkpoint) / HF_OPTIMIZER_FILE
    if source.exists():
        target = Path(checkpoint) / ADAM_STATE_FILE
        shutil.copyfile(source, target.with_suffix(".tmp"))
        target.with_suffix(".tmp").replace(target)
    else:
        log.warning("checkpoint %d has no %s to keep for LESS", step, HF_OPTIMIZER_FILE)
    return None
