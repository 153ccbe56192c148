"""Content-addressed stage folders: each stage's output lives under a key hashed from its config slice and
its inputs' keys, appears only when whole (atomic rename), and is computed by one process at a time.

That one idea gives caching, sharing across grid cells, resume after ``kill -9``, and safe concurrent runs.

A finished stage's ``stage.json`` also lists every file of the folder with its size and SHA-256 (``files``),
so a cache is trusted only as far as it checks out: each reuse checks that every listed file exists with its
size (cheap, always on), and with ``verify`` every hash too. A stage that fails its check is named (stage,
key, file, what differs), moved aside to ``<stage>/<key>.corrupt-<UTC time>/`` (kept for inspection, never
deleted) and computed again. A stage finished before manifests existed is accepted once and given one.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s2lbench.common import console
from s2lbench.common.atomic import write_json
from s2lbench.common.files import iter_jsonl
from s2lbench.common.fingerprint import config_hash
from s2lbench.common.manifest import Damage, build_manifest, check_manifest, move_aside

log = logging.getLogger(__name__)

DONE = "stage.json"
#: the key of ``stage.json`` listing the folder's files: {relative path: {"size", "sha256"}}
FILES = "files"
#: what a damaged stage folder is renamed to: ``<key>.corrupt-<UTC time>``
CORRUPT = ".corrupt-"


@dataclass(frozen=True)
class StageResult:
    key: str
    path: Path
    meta: dict[str, Any]
    cached: bool


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def lock_path(root: Path, stage: str, key: str) -> Path:
    """The lock a process holds while it checks, reuses or computes a stage."""
    return Path(root) / stage / f".{key}.lock"


class StageDamaged(RuntimeError):
    """A finished stage whose files no longer match its manifest."""

    def __init__(self, stage: str, key: str, damage: list[Damage]):
        self.stage, self.key, self.damage = stage, key, damage
        super().__init__(f"stage {stage} {key}: {'; '.join(str(d) for d in damage)}")


class StageStore:
    """Folders ``<root>/<stage>/<key>/``; a folder with ``stage.json`` whose files match its manifest is
    finished and never recomputed. ``verify``: check every file's SHA-256 on reuse, not only its size."""

    def __init__(self, root: Path, verify: bool = False):
        self.root = Path(root)
        self.events = self.root / "events.jsonl"
        self.verify = verify

    def key(self, stage: str, spec: Any) -> str:
        return config_hash({"stage": stage, "spec": spec})

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def finished(self, stage: str, key: str) -> bool:
        return (self.path(stage, key) / DONE).exists()

    def run(self, stage: str, spec: Any, compute: Callable[[Path], dict[str, Any]]) -> StageResult:
        """Run ``compute(folder) -> meta`` unless the stage is finished. ``compute`` may resume inside the folder
        (training does); ``stage.json`` is written last, atomically, and marks the stage finished."""
        key = self.key(stage, spec)
        folder = self.path(stage, key)
        with console.stage(stage), file_lock(lock_path(self.root, stage, key)):
            if (folder / DONE).exists():
                meta = self.checked_meta(stage, key, deep=self.verify)
                if meta is not None:
                    self._event(stage, key, "cached", 0.0)
                    console.stage_done(log, stage, key, None)
                    return StageResult(key, folder, meta, cached=True)
            folder.mkdir(parents=True, exist_ok=True)
            write_json(folder / "spec.json", spec)
            start = time.perf_counter()
            log.info("stage %s %s: computing", stage, key)
            meta = dict(compute(folder) or {})
            meta.setdefault("seconds", round(time.perf_counter() - start, 3))
            meta[FILES] = build_manifest(folder, frozenset({DONE}))  # fsyncs them too: on disk before stage.json
            write_json(folder / DONE, meta)
            self._event(stage, key, "computed", meta["seconds"])
            console.stage_done(log, stage, key, meta["seconds"])
            return StageResult(key, folder, meta, cached=False)

    def checked_meta(self, stage: str, key: str, *, deep: bool) -> dict[str, Any] | None:
        """A finished stage's ``stage.json`` if its files match its manifest; else the damage is logged, the
        folder moved aside, and None returned (the caller recomputes). Call with the stage's lock held."""
        try:
            return self.check(stage, key, deep=deep)
        except StageDamaged as e:
            aside = move_aside(self.path(stage, key))
            log.warning("%s; moved aside to %s and computed again", e, aside)
            self._event(stage, key, "damaged", 0.0)
            return None

    def check(self, stage: str, key: str, *, deep: bool) -> dict[str, Any]:
        """The stage's ``stage.json``, checked against its folder (sizes; hashes too with ``deep``); raises
        StageDamaged naming what differs. A stage finished before manifests is given one (noted once)."""
        folder = self.path(stage, key)
        try:
            meta = json.loads((folder / DONE).read_text())
            if not isinstance(meta, dict) or not isinstance(meta.get(FILES, {}), dict):
                raise ValueError("not a JSON object with a files table")
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise StageDamaged(stage, key, [Damage(DONE, f"unreadable ({' '.join(str(e).split())[:120]})")]) from None
        if FILES not in meta:
            meta[FILES] = build_manifest(folder, frozenset({DONE}))
            write_json(folder / DONE, meta)
            log.warning("stage %s %s: finished before stage manifests existed; accepted as it is and given one "
                        "(%d files)", stage, key, len(meta[FILES]))
            return meta
        damage = check_manifest(folder, meta[FILES], deep=deep)
        if damage:
            raise StageDamaged(stage, key, damage)
        return meta

    def _event(self, stage: str, key: str, status: str, seconds: float) -> None:
        line = json.dumps({"time": time.time(), "pid": os.getpid(), "stage": stage, "key": key,
                           "status": status, "seconds": seconds}) + "\n"
        self.events.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())  # one small O_APPEND write: lines from concurrent runs never interleave
        finally:
            os.close(fd)


def read_events(root: Path) -> list[dict[str, Any]]:
    """The stage store's event log (one object per computed or cached stage); a bad line is named by file and line."""
    path = Path(root) / "events.jsonl"
    if not path.exists():
        return []
    return [event for _, event in iter_jsonl(path, "stage event log")]
