"""Content fingerprints and config hashes: the keys that make caching, sharing and resume work."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def stable_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal strings."""

    def default(o: Any) -> Any:
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        if isinstance(o, Path):
            return str(o)
        if isinstance(o, (set, frozenset)):
            return sorted(o)
        if hasattr(o, "tolist"):
            return o.tolist()
        raise TypeError(f"cannot hash object of type {type(o).__name__}")

    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=default, ensure_ascii=False)


def config_hash(obj: Any, length: int = 16) -> str:
    """A short sha256 of an object's stable JSON form."""
    return hashlib.sha256(stable_json(obj).encode()).hexdigest()[:length]


def pool_fingerprint(examples: Iterable[Any]) -> str:
    """sha256 over every example's fields in order; any change to content or order changes it."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(stable_json(ex.to_dict()).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def ids_hash(ids: Iterable[str]) -> str:
    """Order-independent hash of a set of example ids (a selected subset)."""
    h = hashlib.sha256()
    for i in sorted(ids):
        h.update(i.encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def file_fingerprint(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]
