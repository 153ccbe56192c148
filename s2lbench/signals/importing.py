"""Bring your own trajectories: a loss matrix computed elsewhere, written as a signals folder."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from s2lbench import __version__
from s2lbench.common.atomic import atomic_dir, save_npy, write_json
from s2lbench.errors import DataError
from s2lbench.pool.records import Pool
from s2lbench.signals.signalset import (
    FILES,
    LOSS,
    MANIFEST,
    TEXT_EMBEDDING,
    SignalSet,
    check_matrix,
    load_matrix,
    read_manifest_or_empty,
)

log = logging.getLogger(__name__)


def import_trajectories(matrix: str | Path | np.ndarray, out_dir: str | Path, *, pool: Pool | None = None,
                        steps: Sequence[int] | None = None) -> SignalSet:
    """Write a loss matrix trained elsewhere (.npy/.pt or an array; rows = examples in pool order, one column
    per checkpoint) as a signals folder. NaN entries are kept and counted in the manifest; selectors that
    cluster trajectories set them to 0, as the S2L paper does. Infinite values and an all-NaN matrix are
    refused (the same checks as ``select --trajectories``). The folder is written as a unit: a text
    embedding already in it is kept, everything else replaced."""
    origin = matrix if isinstance(matrix, (str, Path)) else "<array>"
    array = load_matrix(matrix) if isinstance(matrix, (str, Path)) else check_matrix(matrix, origin)
    if pool is not None and array.shape[0] != len(pool):
        raise DataError(f"the matrix has {array.shape[0]} rows but the pool has {len(pool)} examples "
                        "(rows must be the pool's examples in pool order)", path=origin)
    steps = list(range(array.shape[1])) if steps is None else [int(s) for s in steps]
    if len(steps) != array.shape[1]:
        raise DataError(f"{len(steps)} checkpoint steps given for a matrix with {array.shape[1]} columns",
                        path=origin)
    out_dir = Path(out_dir)
    nan = int(np.isnan(array).sum())
    if nan:
        log.warning("%s: %d NaN entries kept (selectors set them to 0, as in the S2L paper)", origin, nan)
    previous = read_manifest_or_empty(out_dir / MANIFEST)
    same_pool = pool is not None and previous.get("pool_fingerprint") == pool.fingerprint()
    kept = {k: v for k, v in previous.get("signals", {}).items() if k == TEXT_EMBEDDING and same_pool}
    with atomic_dir(out_dir, keep=[FILES[TEXT_EMBEDDING]] if kept else [], marker=MANIFEST) as tmp:
        save_npy(tmp / FILES[LOSS], array.astype(np.float32))
        write_json(tmp / MANIFEST, {
            "kind": "imported_trajectories",
            "source": str(origin),
            "pool": {"name": pool.name, "fingerprint": pool.fingerprint(), "n_examples": len(pool)}
            if pool else None,
            "pool_fingerprint": pool.fingerprint() if pool else None,
            "checkpoint_steps": steps,
            "nan_entries": nan,
            **({TEXT_EMBEDDING: previous[TEXT_EMBEDDING]} if kept and TEXT_EMBEDDING in previous else {}),
            "signals": {**kept, LOSS: {"file": FILES[LOSS], "shape": list(array.shape),
                                       "description": "imported loss matrix, n x T (NaN kept)"}},
            "versions": {"s2lbench": __version__, "numpy": np.__version__},
        })
    return SignalSet.from_dir(out_dir)


__all__ = ["import_trajectories"]
