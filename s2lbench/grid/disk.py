"""``s2lbench du`` and ``s2lbench gc``: where a run folder's disk went, and getting it back.

``du`` sums each stage folder of the stage cache (disk blocks, each hard-linked file once) by stage kind,
and charges each cell its own stages (its selection and its fine-tune, from ``cells/<id>.json``); the
stages cells share (gym, proxy, signals) are listed as shared.

``gc`` finds the stages no cell of the given configs references (default: the folder's own config) by
walking each cell's data path against the cache without computing anything (a stage that is not there ends
that cell's walk: nothing below it can be referenced), and removes them with ``--yes`` (a dry run
otherwise). It never removes a stage whose lock a running process holds, nor a stage the folder's own grid
references (its config, and the stages its finished cells recorded), whatever configs are given. Stages
moved aside as damaged (``.corrupt-*``) are kept unless ``--include-corrupt``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s2lbench.errors import DataError, S2LBenchError
from s2lbench.grid.experiment import parse_experiment
from s2lbench.grid.runner import Runner
from s2lbench.grid.stages import CORRUPT, DONE, StageResult, StageStore, file_lock, lock_path

log = logging.getLogger(__name__)

#: the stage kind and key of a stage folder
StageId = tuple[str, str]


def folder_bytes(folder: Path, seen: set[tuple[int, int]] | None = None) -> int:
    """Disk blocks used under ``folder`` in bytes, each inode counted once (``seen`` shares that across calls)."""
    seen = set() if seen is None else seen
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def stage_folders(root: Path) -> list[tuple[str, str, Path]]:
    """(kind, folder name, path) of every stage folder in a stage cache: finished, unfinished and moved aside."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [(kind.name, folder.name, folder)
            for kind in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
            for folder in sorted(kind.iterdir()) if folder.is_dir() and not folder.name.startswith(".")]


def stages_root(folder: Path) -> Path:
    """The stage cache of a run folder (``stages/``, possibly a symlink to a shared cache)."""
    return Path(folder) / "stages"


def cell_stages(folder: Path) -> dict[str, list[StageId]]:
    """The stages each recorded cell used (its selection and fine-tune), from ``cells/<id>.json``."""
    out: dict[str, list[StageId]] = {}
    for path in sorted((Path(folder) / "cells").glob("*.json")):
        try:
            data = json.loads(path.read_text())
            cell = data["cell"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        used: list[StageId] = []
        selection_dir = (data.get("diagnostics") or {}).get("selection_dir")
        if isinstance(selection_dir, str) and Path(selection_dir).parts[:1] == ("stages",):
            parts = Path(selection_dir).parts
            if len(parts) >= 3:
                used.append((parts[1], parts[2]))
        if cell.get("model_fingerprint"):
            used.append(("finetune", str(cell["model_fingerprint"])))
        out[str(cell.get("cell_id", path.stem))] = used
    return out


@dataclass
class Usage:
    by_kind: dict[str, int] = field(default_factory=dict)
    stages: dict[str, int] = field(default_factory=dict)  # kind -> count of stage folders
    by_cell: dict[str, int] = field(default_factory=dict)
    shared: int = 0
    corrupt: int = 0
    unfinished: int = 0
    total: int = 0


def disk_usage(folder: Path) -> Usage:
    """What ``s2lbench du`` prints (see the module docstring)."""
    root = stages_root(folder)
    usage = Usage()
    sizes: dict[StageId, int] = {}
    seen: set[tuple[int, int]] = set()
    for kind, name, path in stage_folders(root):
        size = folder_bytes(path, seen)
        sizes[(kind, name)] = size
        usage.by_kind[kind] = usage.by_kind.get(kind, 0) + size
        usage.stages[kind] = usage.stages.get(kind, 0) + 1
        usage.total += size
        if CORRUPT in name:
            usage.corrupt += size
        elif not (path / DONE).exists():
            usage.unfinished += size
    charged: set[StageId] = set()
    for cell_id, used in cell_stages(folder).items():
        usage.by_cell[cell_id] = sum(sizes.get(s, 0) for s in used)
        charged.update(used)
    usage.shared = sum(size for sid, size in sizes.items() if sid not in charged and CORRUPT not in sid[1])
    return usage


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


# --- gc ----------------------------------------------------------------------------------------------
class StageMissing(Exception):
    """A stage the walk needs is not in the cache: nothing below it is referenced."""


class ReferenceStore(StageStore):
    """A stage store that computes nothing: it records each stage asked for and hands back finished ones."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.referenced: set[StageId] = set()

    def run(self, stage: str, spec: Any, compute: Any) -> StageResult:
        key = self.key(stage, spec)
        self.referenced.add((stage, key))
        folder = self.path(stage, key)
        try:
            meta = json.loads((folder / DONE).read_text())
        except (OSError, ValueError):
            raise StageMissing(f"{stage} {key}") from None
        return StageResult(key, folder, meta, cached=True)


def referenced_stages(config: Any, root: Path) -> set[StageId]:
    """Every stage a config's cells reference in the cache at ``root``, found without computing anything."""
    with tempfile.TemporaryDirectory(prefix="s2lbench-gc-") as scratch:
        (Path(scratch) / "stages").symlink_to(Path(root).resolve())  # a run folder sharing the cache
        runner = Runner(config, scratch)
        store = ReferenceStore(runner.stages.root)
        runner.stages = store
        try:
            cells = runner.cells()
        except StageMissing:
            return store.referenced
        models = [(config.proxy.model, config.proxy.tokenizer, config.proxy.train),
                  *((t.model, t.tokenizer, t.train) for t in config.targets)]
        for model, tokenizer, train in models:
            try:
                base = runner.base_stage(model, runner.train_config(model, tokenizer, train).tokenizer)
            except (StageMissing, S2LBenchError):
                base = None
            if base is not None:
                store.referenced.add((base[0], store.key(*base)))
        for cell in cells:
            try:
                ids, _, _ = runner.select(cell)
                runner.finetune(cell, ids)
            except StageMissing:
                continue
    return store.referenced


def own_config(folder: Path) -> Any:
    """The experiment config a run folder was last run with (its ``config.json``)."""
    path = Path(folder) / "config.json"
    try:
        data = json.loads(path.read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"cannot read the folder's own config ({type(e).__name__}); is this a run folder?",
                        path=path) from None
    return parse_experiment(data, origin=str(path))


def _locked_by_another(root: Path, kind: str, key: str) -> bool:
    path = lock_path(root, kind, key)
    if not path.exists():
        return False
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES):
                return True
            raise
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


@dataclass
class GcPlan:
    remove: list[tuple[str, str, Path, int]] = field(default_factory=list)  # kind, name, path, bytes
    kept: int = 0
    in_use: list[str] = field(default_factory=list)
    corrupt_kept: int = 0

    @property
    def bytes(self) -> int:
        return sum(r[3] for r in self.remove)


def plan_gc(folder: Path, configs: Iterable[Any] = (), *, include_corrupt: bool = False) -> GcPlan:
    """The stages ``gc`` would remove (see the module docstring)."""
    folder = Path(folder)
    root = stages_root(folder)
    if not root.is_dir():
        raise DataError("no stage cache here (no stages/ folder)", path=folder)
    keep: set[StageId] = set()
    if (folder / "config.json").exists():
        keep |= referenced_stages(own_config(folder), root)
    for used in cell_stages(folder).values():
        keep.update(used)
    for config in configs:
        keep |= referenced_stages(config, root)
    plan = GcPlan()
    for kind, name, path in stage_folders(root):
        if CORRUPT in name:
            if not include_corrupt:
                plan.corrupt_kept += 1
                continue
            key = name.split(CORRUPT)[0]
        else:
            key = name
            if (kind, key) in keep:
                plan.kept += 1
                continue
        if _locked_by_another(root, kind, key):
            plan.in_use.append(f"{kind}/{name}")
            continue
        plan.remove.append((kind, name, path, folder_bytes(path)))
    return plan


def collect(root: Path, plan: GcPlan) -> int:
    """Remove the planned stages (each under its lock, skipping any a process took meanwhile); bytes freed."""
    freed = 0
    for kind, name, path, size in plan.remove:
        key = name.split(CORRUPT)[0]
        if _locked_by_another(root, kind, key):
            plan.in_use.append(f"{kind}/{name}")
            continue
        with file_lock(lock_path(root, kind, key)):
            aside = path.with_name(f".{name}.gc-{os.getpid()}")
            os.replace(path, aside)  # one rename: a reader sees the whole stage or none
            shutil.rmtree(aside, ignore_errors=True)
        freed += size
    return freed
