"""Per-example signals that selectors read: loss trajectories, confidence, EL2N, embeddings.

A signal is an array whose first axis is the pool (rows in pool order). Files in a signals folder:
``trajectories.npy`` (loss, n x T), ``confidence.npy`` and ``el2n.npy`` (n x T), ``proxy_embedding.npy``
and ``text_embedding.npy`` (n x d), and ``manifest.json`` (checkpoint steps, pool fingerprint, ...).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from s2lbench.common.atomic import write_json
from s2lbench.common.files import check_input_file, read_json_object
from s2lbench.errors import DataError, MissingSignalError

log = logging.getLogger(__name__)

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
#: signals of strings (numpy unicode, never objects): the task name of each dev row
TEXT_SIGNALS = frozenset({DEV_TASKS})

#: signals that selectors cluster or measure distances on (k-means, facility location, k-center, cosine
#: similarity): their values must keep a squared distance finite in float32, or the native code (faiss)
#: computing it aborts the process
DISTANCE_SIGNALS = frozenset({LOSS, PROXY_EMBEDDING, TEXT_EMBEDDING, DEV_EMBEDDING, GRADIENTS, DEV_GRADIENTS})
#: the largest float32
FLOAT32_MAX = float(np.finfo(np.float32).max)

#: a signals folder's manifest: what each file holds, for which pool and checkpoints; written last
MANIFEST = "manifest.json"
#: manifest key marking a signals folder whose write has not finished
INCOMPLETE = "incomplete"

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

#: what each signal the signal pass writes holds (its manifest's ``description``)
SIGNAL_DESCRIPTIONS = {
    LOSS: "mean token cross-entropy over response tokens (prompt masked as in training), n x T",
    CONFIDENCE: "mean over response tokens of p(gold token), n x T",
    EL2N: "mean over response tokens of ||softmax - onehot(gold)||_2, n x T",
    PROXY_EMBEDDING: "mean over the example's non-pad tokens of the last hidden layer at the last checkpoint, n x d",
    RESPONSE_TOKENS: "response tokens (EOS included, after truncation to max_length) of each example, n",
    LOSS_ALONE: "mean token cross-entropy over the same response tokens without the instruction (the template's "
                "response header, then the response), n x T: the denominator of IFD",
    DEV_EMBEDDING: "the dev set's proxy embedding (as proxy_embedding), m x d",
    DEV_TASKS: "the task each dev row stands for, m",
    GRADIENTS: "LESS gradient features: per-example gradient of the response loss, Adam-normalised where the "
               "checkpoint has Adam moments, Rademacher-projected, L2-normalised, n x T_g x dim (float16)",
    DEV_GRADIENTS: "LESS gradient features of the dev set (plain SGD gradients, as LESS), m x T_g x dim (float16)",
    CHECKPOINT_LR: "learning rate of each gradient checkpoint (LESS's checkpoint weights), T_g",
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


def _load_npy(path: Path, mmap: bool = False, text: bool = False) -> np.ndarray:
    """A .npy array without pickles; a pickle, object array, truncated or foreign file is a DataError naming it."""
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as e:
        text = str(e)
        if "pickle" in text.lower() or "object" in text.lower():
            raise DataError("holds Python objects (a pickle or an object array); save a numeric array "
                            "with numpy.save", path=path) from None
        raise DataError(f"not a readable .npy array ({' '.join(text.split())})", path=path) from None
    except (OSError, EOFError) as e:
        raise DataError(f"not a readable .npy array ({type(e).__name__}: {e})", path=path) from None
    if isinstance(arr, np.lib.npyio.NpzFile):  # pragma: no cover - np.load on a .npz named .npy
        arr.close()
        raise DataError("is an .npz archive, expected a single .npy array", path=path)
    if arr.dtype.kind not in ("biufU" if text else "biuf"):
        raise DataError(f"has dtype {arr.dtype}; expected a numeric (float or integer) array", path=path)
    return arr


def load_matrix(path: str | Path) -> np.ndarray:
    """Read a saved loss matrix (.npy or .pt, one row per example, one column per checkpoint).

    Pickles are never loaded (``allow_pickle=False``, ``torch.load(weights_only=True)``); a file that is not
    a numeric array or tensor, a truncated file, or a matrix with no finite value is a DataError naming it.
    NaN entries are kept (S2L sets them to 0, as the official code does); infinite ones are refused."""
    path = check_input_file(path, ".npy or .pt file")
    if path.suffix == ".npy":
        arr = np.asarray(_load_npy(path))
    elif path.suffix in (".pt", ".pth"):
        import torch

        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # whatever torch.load raises on a file that is not a saved tensor
            raise DataError(f"not a readable tensor file (torch.load with weights_only=True: "
                            f"{' '.join(str(e).split())[:200]})", path=path) from None
        if isinstance(obj, Mapping):
            tensors = [v for v in obj.values() if isinstance(v, torch.Tensor)]
            if len(tensors) != 1:
                raise DataError(f"expected one tensor, found keys {list(obj)}", path=path)
            obj = tensors[0]
        if not isinstance(obj, torch.Tensor):
            raise DataError(f"holds a {type(obj).__name__}, expected a tensor (examples x checkpoints)", path=path)
        if obj.is_complex() or obj.dtype == torch.bool:
            raise DataError(f"has dtype {obj.dtype}; expected a real-valued tensor", path=path)
        arr = obj.detach().float().numpy()
    else:
        raise DataError("expected a .npy or .pt file", path=path)
    return check_matrix(arr, path)


def check_matrix(arr: np.ndarray, origin: object) -> np.ndarray:
    """A loss matrix as float32 n x T: 1-D becomes one column; empty, infinite or all-NaN is a DataError."""
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        raise DataError(f"has dtype {arr.dtype}; expected numbers", path=origin)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"expected a 2-D matrix (examples x checkpoints), got shape {arr.shape}", path=origin)
    if arr.size == 0:
        raise DataError(f"the matrix is empty (shape {arr.shape})", path=origin)
    with np.errstate(over="ignore"):
        converted = np.asarray(arr, dtype=np.float32)
    infinite = int(np.isinf(converted).sum())
    if infinite:
        beyond = int(np.isinf(arr).sum()) if arr.dtype.kind == "f" else 0
        overflowed = f" ({infinite - beyond} of them beyond float32's range)" if infinite > beyond else ""
        raise DataError(f"the matrix holds {infinite} infinite values{overflowed}; losses must be finite "
                        "(NaN marks a missing entry)", path=origin)
    arr = check_distance_range(converted, origin)
    nan = np.isnan(arr)
    if nan.all():
        raise DataError("every entry of the matrix is NaN", path=origin)
    return arr


def distance_limit(dim: int) -> float:
    """The largest |value| whose squared distances stay finite in float32 over ``dim`` features: a squared
    distance sums ``dim`` terms of at most (2 * max|x|)^2 (a point and a centre of opposite sign)."""
    return float(np.sqrt(FLOAT32_MAX / (4.0 * max(1, int(dim)))))


def check_distance_range(arr: np.ndarray, origin: object, what: str = "the matrix") -> np.ndarray:
    """``arr`` unchanged if every value is finite (NaN allowed: a missing entry) and small enough that squared
    distances between its rows stay finite in float32; else a DataError naming ``origin`` and how many
    values are out of range. Values beyond that overflow inside k-means and distance kernels (faiss aborts
    the whole process on them), so they are refused like infinite ones. Read in blocks: no full-size copy."""
    arr = np.asarray(arr)
    if arr.dtype.kind != "f" or arr.size == 0:
        return arr
    dim = int(np.prod(arr.shape[1:])) if arr.ndim > 1 else 1
    limit = distance_limit(dim)
    flat = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr.reshape(-1, 1)
    # a dtype that cannot hold a value that large (float16: 65504) has only infinities to find; comparing it
    # with the limit would cast the limit to inf (a RuntimeWarning on every read of fp16 LESS gradients)
    bounded = float(np.finfo(arr.dtype).max) <= limit
    infinite = huge = 0
    rows = max(1, (1 << 22) // max(1, flat.shape[1]))
    for start in range(0, flat.shape[0], rows):
        block = np.asarray(flat[start:start + rows])
        infinite += int(np.isinf(block).sum())
        if not bounded:
            with np.errstate(invalid="ignore"):
                huge += int((np.abs(block) > limit).sum())
    if not bounded:
        huge -= infinite
    if infinite or huge:
        parts = ([f"{infinite} infinite value{'s' * (infinite != 1)}"] if infinite else []) + \
            ([f"{huge} value{'s' * (huge != 1)} with |x| above {limit:.2g} (their squared distances overflow float32)"] if huge else [])
        raise DataError(f"{what} holds {' and '.join(parts)}; selectors cluster and measure distances on it, "
                        "so its values must be finite and in range (NaN marks a missing entry)", path=origin)
    return arr


def nan_entries(arr: np.ndarray) -> int:
    return int(np.isnan(arr).sum())


def nan_to_zero(matrix: np.ndarray) -> np.ndarray:
    """The S2L paper's treatment of missing trajectory entries."""
    return np.where(np.isnan(matrix), 0.0, matrix).astype(np.float32)


class SignalSet:
    """A read-only view of the signals available for one pool; arrays load lazily from a folder."""

    def __init__(self, arrays: Mapping[str, np.ndarray] | None = None, directory: str | Path | None = None,
                 steps: Sequence[int] | None = None, n_examples: int | None = None):
        self._arrays: dict[str, np.ndarray] = dict(arrays or {})
        self.directory = Path(directory) if directory else None
        self.manifest: dict = {}
        if self.directory and (self.directory / MANIFEST).exists():
            self.manifest = _read_manifest(self.directory / MANIFEST)
        self.steps = list(steps if steps is not None else self.manifest.get("checkpoint_steps", []))
        self.n_examples = n_examples
        self.nan_entries = int(self.manifest.get("nan_entries") or 0)

    @classmethod
    def from_dir(cls, directory: str | Path) -> SignalSet:
        """A signals folder. Writers mark its ``manifest.json`` incomplete first and write the real one last;
        a marked folder, or a manifest listing a missing file, is refused. A folder without any manifest is
        a bring-your-own folder of arrays, read as it is."""
        directory = Path(directory)
        if not directory.is_dir():
            raise DataError("signals folder not found", path=directory)
        signals = cls(directory=directory)
        if signals.manifest.get(INCOMPLETE):
            raise DataError("the signals folder is incomplete (its last write was interrupted); rerun the "
                            "command that writes it", path=directory / MANIFEST)
        for name, info in signals.manifest.get("signals", {}).items():
            if not (directory / info["file"]).is_file():
                raise DataError(f"the manifest lists {info['file']} for signal {name!r}, but it is missing",
                                path=directory)
        return signals

    @classmethod
    def from_trajectories(cls, path: str | Path) -> SignalSet:
        """Bring-your-own loss matrix; NaN entries are kept (selectors that need them set NaN to 0)."""
        matrix = load_matrix(path)
        signals = cls({LOSS: matrix}, steps=list(range(matrix.shape[1])))
        signals.nan_entries = nan_entries(matrix)
        return signals

    def available(self) -> list[str]:
        names = set(self._arrays)
        listed = self.manifest.get("signals") if isinstance(self.manifest.get("signals"), dict) else None
        if self.directory and listed is not None:  # a written folder: what its manifest lists, nothing stale
            names |= {name for name, info in listed.items() if (self.directory / info["file"]).exists()}
        elif self.directory:  # a bring-your-own folder of arrays
            names |= {name for name, f in FILES.items() if (self.directory / f).exists()}
        return sorted(names)

    def has(self, name: str) -> bool:
        return name in self.available()

    def get(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            path = path_of(self, name)
            if path is None or not path.exists() or name not in self.available():
                where = f" in {self.directory}" if self.directory else ""
                hint = HOW_TO.get(name, "compute it and save it as " + FILES.get(name, f"{name}.npy"))
                raise MissingSignalError(f"signal {name!r} is not available{where}; to compute it, {hint}")
            arr = _load_npy(path, mmap=True, text=name in TEXT_SIGNALS)
            if name in DISTANCE_SIGNALS:
                check_distance_range(arr, path, f"signal {name!r}")
            self._arrays[name] = arr
        arr = self._arrays[name]
        if arr.ndim == 0:
            raise DataError(f"signal {name!r} is a scalar, expected one row per example", path=path_of(self, name))
        if self.n_examples is not None and name not in NOT_POOL_ROWS and arr.shape[0] != self.n_examples:
            raise DataError(f"signal {name!r} has {arr.shape[0]} rows but the pool has {self.n_examples} examples",
                            path=path_of(self, name))
        return arr

    def for_pool(self, n_examples: int) -> SignalSet:
        """The same signals, checked against a pool of ``n_examples`` rows on every access."""
        view = SignalSet(self._arrays, self.directory, self.steps, n_examples)
        view.manifest = self.manifest
        return view


def path_of(signals: SignalSet, name: str) -> Path | None:
    if not signals.directory:
        return None
    listed = signals.manifest.get("signals") or {}
    if isinstance(listed, dict) and isinstance(listed.get(name), dict):
        return signals.directory / listed[name]["file"]
    return signals.directory / FILES.get(name, f"{name}.npy")


def _read_manifest(path: Path) -> dict:
    """A signals manifest: a JSON object whose ``signals`` maps names to ``{"file", "shape"}``."""
    data = read_json_object(path, "signals manifest")
    steps = data.get("checkpoint_steps", [])
    if not isinstance(steps, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in steps):
        raise DataError("'checkpoint_steps' must be a list of integers", path=path, field="checkpoint_steps")
    signals = data.get("signals", {})
    if not isinstance(signals, dict):
        raise DataError("'signals' must be an object (name -> {file, shape})", path=path, field="signals")
    for name, info in signals.items():
        if not isinstance(info, dict) or not isinstance(info.get("file"), str):
            raise DataError(f"signal {name!r} needs a 'file' name", path=path, field=f"signals.{name}")
        if Path(info["file"]).name != info["file"] or info["file"] in ("", ".", ".."):
            raise DataError(f"signal {name!r}: file {info['file']!r} must be a plain name inside the folder",
                            path=path, field=f"signals.{name}.file")
        shape = info.get("shape", [])
        if not isinstance(shape, list) or not all(isinstance(d, int) for d in shape):
            raise DataError(f"signal {name!r}: 'shape' must be a list of integers", path=path,
                            field=f"signals.{name}.shape")
    return data


def read_manifest_or_empty(path: Path) -> dict[str, Any]:
    """A signals folder's manifest, or {} when there is none (or it is unreadable: it will be rewritten)."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("%s is unreadable; it will be replaced", path)
        return {}
    return data if isinstance(data, dict) and not data.get(INCOMPLETE) else {}


def invalidate(out_dir: Path) -> None:
    """Mark a signals folder incomplete before rewriting its arrays; the real manifest is written last.
    Readers (``SignalSet.from_dir``) refuse a folder so marked, so a write cut short is never taken as whole."""
    write_json(Path(out_dir) / MANIFEST, {INCOMPLETE: True, "note": "being written; an interrupted write "
                                          "leaves this mark: rerun the command that writes this folder"})
