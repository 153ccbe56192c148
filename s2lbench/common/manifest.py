"""File manifests: the size and SHA-256 of every file of a finished output, and the checks that compare a
folder with its manifest.

A stage folder's ``stage.json`` lists its files this way (``grid/stages.py``); the cheap check (every listed
file exists with its size) runs on every reuse, the deep one (every hash) under ``s2lbench verify`` and
``run --verify``. Hashes of files this process wrote through ``common/atomic.py`` come from the writer
(no second read); other files (model weights saved by a library) are read once, when the output finishes.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s2lbench.common.atomic import fsync_folder, known_digest

#: read size for hashing
BLOCK = 1 << 20


def sha256_file(path: str | os.PathLike, *, sync: bool = False) -> str:
    """SHA-256 of a file's bytes (``sync``: also fsync it, as it is open anyway)."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            sha.update(block)
        if sync:
            os.fsync(f.fileno())
    return sha.hexdigest()


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def is_lock_file(name: str) -> bool:
    """A lock file a writer leaves beside what it wrote (``.<name>.lock``): never content. Lock files are not
    committed (.gitignore) nor packed with a run's state, so no manifest may depend on one."""
    base = name.rsplit("/", 1)[-1]
    return base.startswith(".") and base.endswith(".lock")


def folder_files(folder: Path, skip: frozenset[str] = frozenset()) -> list[Path]:
    """Every regular file under ``folder`` (sorted, symlinks not followed), except top-level names in ``skip``
    and lock files."""
    out: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            if path.is_symlink() or is_lock_file(name) or (Path(root) == folder and name in skip):
                continue
            out.append(path)
    return out


def build_manifest(folder: Path, skip: frozenset[str] = frozenset(), *, sync: bool = True) -> dict[str, dict[str, Any]]:
    """``{relative path: {"size", "sha256"}}`` of every file under ``folder``; with ``sync`` each file (and
    folder) is also fsynced, so what the manifest lists is on disk before whatever marks the output finished."""
    manifest: dict[str, dict[str, Any]] = {}
    for path in folder_files(folder, skip):
        digest = known_digest(path)
        if digest is None:
            digest = sha256_file(path, sync=sync)
        elif sync:
            _fsync(path)
        manifest[path.relative_to(folder).as_posix()] = {"size": path.stat().st_size, "sha256": digest}
    if sync:
        for root, _, _ in os.walk(folder):
            fsync_folder(root)
    return manifest


@dataclass(frozen=True)
class Damage:
    """One file of an output that does not match its manifest."""

    file: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: {self.problem}"


def check_manifest(folder: Path, manifest: dict[str, dict[str, Any]], *, deep: bool = False) -> list[Damage]:
    """What differs between ``folder`` and its ``manifest``: a listed file missing, of another size, or (with
    ``deep``) with another SHA-256. Files not listed are not looked at. Stops at the first damaged file
    unless ``deep`` (verify reports every one). A lock file listed by a manifest written before lock files were
    left out is not looked at either."""
    damage: list[Damage] = []
    for rel, entry in manifest.items():
        if is_lock_file(rel):
            continue
        path = folder / rel
        try:
            st = path.stat()
        except FileNotFoundError:
            damage.append(Damage(rel, "missing"))
        except OSError as e:
            damage.append(Damage(rel, f"unreadable ({e.strerror or e})"))
        else:
            if st.st_size != entry.get("size"):
                damage.append(Damage(rel, f"{st.st_size} bytes, the manifest says {entry.get('size')}"))
            elif deep:
                try:
                    digest = sha256_file(path)
                except OSError as e:
                    damage.append(Damage(rel, f"unreadable ({e.strerror or e})"))
                    continue
                if digest != entry.get("sha256"):
                    damage.append(Damage(rel, f"SHA-256 {digest[:12]}…, the manifest says "
                                              f"{str(entry.get('sha256'))[:12]}… (same size: its bytes changed)"))
        if damage and not deep:
            break
    return damage


def corrupt_name(path: Path) -> Path:
    """Where a damaged output is moved: ``<name>.corrupt-<UTC time>`` beside it (a suffix if that exists)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    candidate = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    return candidate


def move_aside(path: Path) -> Path:
    """Rename a damaged file or folder to :func:`corrupt_name` (kept, never deleted) and return the new path."""
    target = corrupt_name(path)
    os.replace(path, target)
    fsync_folder(path.parent)
    return target
