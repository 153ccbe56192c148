"""The selection stage: one selector at one budget and seed over the pool, keyed on the signals it reads.

Its folder holds ``selection.jsonl`` (the picked ids with their pool positions, in the selector's order),
``diagnostics.json`` (what the selector reported, plus the subset's and the pool's source mix) and, for
selectors that cluster, ``cluster_labels.npy``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from s2lbench.common.atomic import save_npy, write_json, write_jsonl
from s2lbench.common.fingerprint import ids_hash
from s2lbench.pool.records import Pool
from s2lbench.selection.selector import Selector, run_selector
from s2lbench.signals.signalset import SignalSet

SELECTION = "selection"


def version_spec(selector_cls: type[Selector]) -> dict[str, int]:
    """``{"selector_version": N}`` for a selector whose picks changed (Selector.version), else nothing, so
    the keys of every unchanged selector's selections and cells stay what they were."""
    version = selector_cls.version  # checked at registration: an int >= 1
    return {"selector_version": version} if version != 1 else {}


def selection_spec(pool: Pool, signal_keys: dict[str, str] | None, selector_cls: type[Selector], name: str,
                   options: dict[str, Any], budget: int, seed: int) -> dict[str, Any]:
    """``signal_keys``: the key of each signal the selector reads, so adding a selector to a grid reuses
    every other one's selections."""
    return {"pool": pool.fingerprint(), "signals": signal_keys, "selector": name, "options": options,
            "budget": budget, "seed": seed, **version_spec(selector_cls)}


def compute_selection(folder: Path, selector_cls: type[Selector], pool: Pool, budget: int, seed: int,
                      signals: SignalSet, options: dict[str, Any]) -> dict[str, Any]:
    result = run_selector(selector_cls, pool, budget, seed, signals, options)
    picked = [int(p) for p in result.positions]
    ids = [pool[p].id for p in picked]
    diagnostics = dict(result.diagnostics)
    diagnostics.setdefault("source_mix", dict(sorted(Counter(pool[p].source for p in picked).items())))
    diagnostics["pool_source_mix"] = pool.source_counts()
    diagnostics["pool_fingerprint"] = pool.fingerprint()
    diagnostics["selected_ids_hash"] = ids_hash(ids)
    labels = diagnostics.pop("labels", None)
    if labels is not None:
        save_npy(folder / "cluster_labels.npy", np.asarray(labels))
    write_jsonl(folder / "selection.jsonl", ({"id": i, "position": p} for i, p in zip(ids, picked, strict=True)))
    write_json(folder / "diagnostics.json", diagnostics)
    return {"seconds": diagnostics.get("selection_seconds", 0.0), "selected_ids_hash": ids_hash(ids)}


def read_selection(folder: Path) -> tuple[list[str], dict[str, Any]]:
    """(the selected ids in order, the diagnostics) of a finished selection folder."""
    rows = [json.loads(line) for line in (folder / "selection.jsonl").read_text().splitlines()]
    return [r["id"] for r in rows], json.loads((folder / "diagnostics.json").read_text())
