"""Per-example signals that selectors read: loss trajectories, confidence, EL2N, embeddings.

A signal is an array whose first axis is the pool (rows in pool order). Files in a signals folder:
``trajectories.npy`` (loss, n x T), ``confidence.npy`` and ``el2n.npy`` (n x T), ``proxy_embedding.npy``
and ``text_embedding.npy`` (n x d), and ``manifest.json`` (checkpoint steps, pool fingerprint, ...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from s2lbench.errors import DataError, MissingSignalError

LOSS = "loss"
CONFIDENCE = "confidence"
EL2N = "el2n"
PROXY_EMBEDDING = "proxy_embedding"
TEXT_EMBEDDING = "text_embedding"
RESPONSE_TOKENS = "response_tokens"
LOSS_ALONE = "loss_alone"
GRADIENTS = "gradients"
DEV_GRADIENTS = "dev_gradients"
DEV_EMBEDDING = "dev_embedding"
DEV_TASKS = "dev_tasks"
CHECKPOINT_LR = "checkpoint_lr"

#: signals whose first axis is not the pool: the dev set's rows (dev_*), or one value per checkpoint
NOT_POOL_ROWS = frozenset({DEV_GRADIENTS, DEV_EMBEDDING, DEV_TASKS, CHECKPOINT_LR})

#: file name of each known signal inside a signals folder
FILES = {
    LOSS: "trajectories.npy",
    CONFIDENCE: "confidence.npy",
    EL2N: "el2n.npy",
    PROXY_EMBEDDING: "proxy_embedding.npy",
    TEXT_EMBEDDING: "text_embedding.npy",
    RESPONSE_TOKENS: "response_tokens.npy",
    LOSS_ALONE: "loss_alone.npy",
    GRADIENTS: "gradient_features.npy",
    DEV_GRADIENTS: "dev_gradient_features.npy",
    DEV_EMBEDDING: "dev_embedding.npy",
    DEV_TASKS: "dev_tasks.npy",
    CHECKPOINT_LR: "checkpoint_lr.npy",
}

#: how a user computes each signal; quoted in MissingSignalError messages
HOW_TO = {
    LOSS: "run `s2lbench signals --pool POOL --proxy-run RUN_DIR --out DIR` (or pass --trajectories FILE.npy)",
    CONFIDENCE: "run `s2lbench signals --pool POOL --proxy-run RUN_DIR --out DIR`",
    EL2N: "run `s2lbench signals --pool POOL --proxy-run RUN_DIR --out DIR`",
    PROXY_EMBEDDING: "run `s2lbench signals --pool POOL --proxy-run RUN_DIR --out DIR`",
    TEXT_EMBEDDING: "run `s2lbench signals embed --pool POOL --out DIR` (MiniLM or any HF encoder)",
    RESPONSE_TOKENS: "run `s2lbench signals --pool POOL --proxy-run RUN_DIR --out DIR`",
    LOSS_ALONE: "run `s2lbench signals --pool POOL --proxy-run RUN_DIR --out DIR --ifd`",
    GRADIENTS: "run `s2lbench signals --pool POOL --proxy-run RUN_DIR --out DIR --gradients --dev DEV.jsonl`",
    DEV_GRADIENTS: "run `s2lbench signals --pool POOL --proxy-run RUN_DIR --out DIR --gradients --dev DEV.jsonl`",
    DEV_EMBEDDING: "run `s2lbench signals --pool POOL --proxy-run RUN_DIR --out DIR --dev DEV.jsonl`",
    DEV_TASKS: "run `s2lbench signals --pool POOL --proxy-run RUN_DIR --out DIR --dev DEV.jsonl`",
    CHECKPOINT_LR: "run `s2lbench signals --pool POOL --proxy-run RUN_DIR --out DIR --gradients --dev DEV.jsonl`",
}


def load_matrix(path: str | Path) -> np.ndarray:
    """Read a saved loss matrix (.npy or .pt, one row per example, one column per checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path=path)
    if path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
    elif path.suffix in (".pt", ".pth"):
        import torch

        obj = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(obj, Mapping):
            tensors = [v for v in obj.values() if hasattr(v, "shape")]
            if len(tensors) != 1:
                raise DataError(f"expected one tensor, found keys {list(obj)}", path=path)
            obj = tensors[0]
        arr = obj.float().numpy() if hasattr(obj, "numpy") else np.asarray(obj)
    else:
        raise DataError("expected a .npy or .pt file", path=path)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"expected a 2-D matrix (examples x checkpoints), got shape {arr.shape}", path=path)
    return np.asarray(arr, dtype=np.float32)


class SignalSet:
    """A read-only view of the signals available for one pool; arrays load lazily from a folder."""

    def __init__(self, arrays: Mapping[str, np.ndarray] | None = None, directory: str | Path | None = None,
                 steps: Sequence[int] | None = None, n_examples: int | None = None):
        self._arrays: dict[str, np.ndarray] = dict(arrays or {})
        self.directory = Path(directory) if directory else None
        self.manifest: dict = {}
        if self.directory and (self.directory / "manifest.json").exists():
            self.manifest = json.loads((self.directory / "manifest.json").read_text())
        self.steps = list(steps if steps is not None else self.manifest.get("checkpoint_steps", []))
        self.n_examples = n_examples

    @classmethod
    def from_dir(cls, directory: str | Path) -> SignalSet:
        directory = Path(directory)
        if not directory.is_dir():
            raise DataError("signals folder not found", path=directory)
        return cls(directory=directory)

    @classmethod
    def from_trajectories(cls, path: str | Path) -> SignalSet:
        """Bring-your-own loss matrix; NaN entries are kept (selectors that need them set NaN to 0)."""
        matrix = load_matrix(path)
        return cls({LOSS: matrix}, steps=list(range(matrix.shape[1])))

    def available(self) -> list[str]:
        names = set(self._arrays)
        if self.directory:
            names |= {name for name, f in FILES.items() if (self.directory / f).exists()}
        return sorted(names)

    def has(self, name: str) -> bool:
        return name in self.available()

    def get(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            path = self.directory / FILES.get(name, f"{name}.npy") if self.directory else None
            if path is None or not path.exists():
                where = f" in {self.directory}" if self.directory else ""
                hint = HOW_TO.get(name, "compute it and save it as " + FILES.get(name, f"{name}.npy"))
                raise MissingSignalError(f"signal {name!r} is not available{where}; to compute it, {hint}")
            self._arrays[name] = np.load(path, mmap_mode="r", allow_pickle=False)
        arr = self._arrays[name]
        if self.n_examples is not None and name not in NOT_POOL_ROWS and arr.shape[0] != self.n_examples:
            raise DataError(f"signal {name!r} has {arr.shape[0]} rows but the pool has {self.n_examples} examples")
        return arr

    def for_pool(self, n_examples: int) -> SignalSet:
        """The same signals, checked against a pool of ``n_examples`` rows on every access."""
        view = SignalSet(self._arrays, self.directory, self.steps, n_examples)
        view.manifest = self.manifest
        return view
