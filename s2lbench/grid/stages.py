"""Content-addressed stage folders: each stage's output lives under a key hashed from its config slice and
its inputs' keys, appears only when whole (atomic rename), and is computed by one process at a time.

That one idea gives caching, sharing across grid cells, resume after ``kill -9``, and safe concurrent runs.
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

log = logging.getLogger(__name__)

DONE = "stage.json"


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


class StageStore:
    """Folders ``<root>/<stage>/<key>/``; a folder with ``stage.json`` is finished and never recomputed."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.events = self.root / "events.jsonl"

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
        with console.stage(stage), file_lock(self.root / stage / f".{key}.lock"):
            if (folder / DONE).exists():
                meta = json.loads((folder / DONE).read_text())
                self._event(stage, key, "cached", 0.0)
                console.stage_done(log, stage, key, None)
                return StageResult(key, folder, meta, cached=True)
            folder.mkdir(parents=True, exist_ok=True)
            write_json(folder / "spec.json", spec)
            start = time.perf_counter()
            log.info("stage %s %s: computing", stage, key)
            meta = dict(compute(folder) or {})
            meta.setdefault("seconds", round(time.perf_counter() - start, 3))
            write_json(folder / DONE, meta)
            self._event(stage, key, "computed", meta["seconds"])
            console.stage_done(log, stage, key, meta["seconds"])
            return StageResult(key, folder, meta, cached=False)

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
