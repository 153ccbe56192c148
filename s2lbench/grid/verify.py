"""``s2lbench verify DIR``: every byte of a run folder checked against its manifests.

What it checks: each finished stage of the folder's stage cache (a shared cache behind a ``stages`` symlink
included) against the ``files`` table of its ``stage.json`` (size and SHA-256); each generation cache file
against its ``.meta.json``; each cell's samples against its ``samples/<cell>/manifest.json``; and the
results database with SQLite's ``PRAGMA quick_check``. What it does with damage: a stage or generation
cache is moved aside (``.corrupt-<UTC time>``, never deleted), so the next run computes it again; a damaged
samples file is moved aside and its cell set back to pending, so the next run evaluates it again (its
stages are cached); a damaged database is only named (it is never written).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from s2lbench.common.manifest import move_aside, sha256_file
from s2lbench.generation.cache import cache_damage
from s2lbench.grid.stages import CORRUPT, DONE, FILES, StageDamaged, StageStore, file_lock, lock_path
from s2lbench.results.store import DB_NAME, SAMPLES_DIR, ResultsStore, quick_check, read_samples_manifest

log = logging.getLogger(__name__)


@dataclass
class VerifyReport:
    checked: dict[str, int] = field(default_factory=dict)  # what was checked: kind -> count
    damaged: list[str] = field(default_factory=list)  # one line per damaged item, with where it went
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damaged

    def count(self, kind: str) -> None:
        self.checked[kind] = self.checked.get(kind, 0) + 1


def finished_stages(root: Path) -> list[tuple[str, str]]:
    """(stage kind, key) of every finished stage folder under a stage cache root (moved-aside ones excluded)."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for kind in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for folder in sorted(kind.iterdir()):
            if folder.is_dir() and not folder.name.startswith(".") and CORRUPT not in folder.name \
                    and (folder / DONE).exists():
                out.append((kind.name, folder.name))
    return out


def verify_stages(store: StageStore, report: VerifyReport, *, deep: bool = True) -> None:
    for kind, key in finished_stages(store.root):
        with file_lock(lock_path(store.root, kind, key)):
            if not (store.path(kind, key) / DONE).exists():  # another process moved it aside meanwhile
                continue
            legacy = not _has_manifest(store.path(kind, key))
            try:
                store.check(kind, key, deep=deep)
            except StageDamaged as e:
                aside = move_aside(store.path(kind, key))
                store._event(kind, key, "damaged", 0.0)
                report.damaged.append(f"{e}; moved aside to {aside}")
            else:
                if legacy:
                    report.notes.append(f"stage {kind} {key}: finished before manifests; given one")
        report.count("stages")


def _has_manifest(folder: Path) -> bool:
    try:
        return FILES in json.loads((folder / DONE).read_text())
    except (OSError, ValueError):
        return True  # unreadable: check() names it


def verify_generations(folder: Path, report: VerifyReport) -> None:
    for path in sorted((folder / "generations").glob("*/*.jsonl")):
        if CORRUPT in path.name:
            continue
        problem = cache_damage(path, deep=True)
        if problem:
            aside = move_aside(path)
            meta = path.with_suffix(".meta.json")
            if meta.exists():
                move_aside(meta)
            report.damaged.append(f"generation cache {path}: {problem}; moved aside to {aside}")
        report.count("generation caches")


def verify_samples(folder: Path, report: VerifyReport) -> None:
    samples_root = folder / SAMPLES_DIR
    if not samples_root.is_dir():
        return
    store = None
    for cell_dir in sorted(p for p in samples_root.iterdir() if p.is_dir()):
        for name, entry in read_samples_manifest(cell_dir).items():
            path = cell_dir / name
            report.count("samples files")
            if not path.is_file():
                problem = "missing"
            elif path.stat().st_size != entry.get("size"):
                problem = f"{path.stat().st_size} bytes, its manifest says {entry.get('size')}"
            elif entry.get("sha256") and sha256_file(path) != entry["sha256"]:
                problem = "SHA-256 differs from its manifest (same size: its bytes changed)"
            else:
                continue
            where = f"; moved aside to {move_aside(path)}" if path.exists() else ""
            store = store or ResultsStore(folder)
            if store.get_cell(cell_dir.name) is not None:
                store.set_status(cell_dir.name, "pending")
            report.damaged.append(f"samples {path}: {problem}{where}; cell {cell_dir.name} set to pending "
                                  "(the next run evaluates it again)")


def verify_folder(folder: str | Path, *, deep: bool = True) -> VerifyReport:
    """Check a run folder (or a bare stage cache) against its manifests; see the module docstring."""
    folder = Path(folder)
    report = VerifyReport()
    db = folder / DB_NAME
    db_ok = True
    if db.is_file() and db.stat().st_size:
        problem = quick_check(db)
        report.count("results databases")
        if problem:
            db_ok = False
            report.damaged.append(f"results database {db}: damaged (SQLite quick_check: {problem}); left untouched")
    stages_root = folder / "stages" if (folder / "stages").exists() else folder
    if stages_root.is_symlink():
        report.notes.append(f"stages: a shared cache at {stages_root.resolve()}")
    verify_stages(StageStore(stages_root), report, deep=deep)
    verify_generations(folder, report)
    if db_ok:
        verify_samples(folder, report)
    return report
