"""Atomic writes: a temp file in the same folder, fsync, then rename. Readers never see half a file.

Output paths are checked before anything is written: an empty path, an existing folder where a file is
expected, a device or other non-regular file (never replaced, not even ``/dev/full`` as root), or a path
under a regular file are ``OutputError``s naming the path. Text is written as UTF-8; a lone surrogate
(``"\\ud800"``, which UTF-8 cannot hold) is written as its escape ``\\ud800`` -- in JSON that is the
standard escape, so the value reads back unchanged.

Durability: the temp file is fsynced before the rename and its folder after it, so a power cut leaves the
old file or the whole new one, never a renamed but empty file. What :func:`write_json` and its siblings
write is hashed (SHA-256) as it is written and remembered by the file's identity (device, inode, size,
mtime), so a stage manifest listing the file later costs no second read (:func:`known_digest`).

Multi-file outputs (a subset with its diagnostics, a gym folder, a signals folder) are built in a temp
sibling folder and renamed into place as a unit (:func:`atomic_dir`), under a per-output lock
(:func:`output_lock`) so concurrent writers of one output take turns.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from s2lbench.errors import OutputError

#: how text that UTF-8 cannot encode (lone surrogates) is written: as a backslash escape
TEXT_ERRORS = "backslashreplace"


#: SHA-256 of files this process wrote, by (device, inode, size, mtime_ns): survives the renames that move a
#: temp file or folder into place, and misses (so the caller reads the file) once the file is changed
_DIGESTS: dict[tuple[int, int, int, int], str] = {}


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def known_digest(path: str | os.PathLike) -> str | None:
    """The SHA-256 of ``path`` if this process wrote it through this module and it is unchanged since."""
    try:
        return _DIGESTS.get(_identity(os.stat(path)))
    except OSError:
        return None


def fsync_folder(folder: str | os.PathLike) -> None:
    """Make a rename or a new entry in ``folder`` durable (a no-op where the OS cannot open folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems (and Windows) refuse fsync on a folder; the file itself was synced
        pass
    finally:
        os.close(fd)


def fsync_tree(folder: str | os.PathLike) -> None:
    """fsync every file and folder under ``folder`` (before it is renamed into place or marked finished)."""
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                continue
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        fsync_folder(root)


class _HashingWriter(io.RawIOBase):
    """A binary file that hashes every byte written to it."""

    def __init__(self, f: IO[bytes]):
        self.f, self.sha = f, hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        self.sha.update(view)
        self.f.write(view)
        return len(view)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def check_output_path(path: str | os.PathLike, *, kind: str = "file",
                      inputs: tuple[str | os.PathLike, ...] = ()) -> Path:
    """``path`` as a Path if it can be written as a ``kind`` ("file" or "folder") without replacing one of the
    command's ``inputs``; else an OutputError."""
    if path is None or str(path).strip() == "":
        raise OutputError("the output path is empty")
    path = Path(path)
    for source in inputs:
        if path.exists() and Path(source).exists() and os.path.samefile(path, source):
            raise OutputError(f"{path}: is also an input of this command ({source}); writing it would replace "
                              "what is read; give another output path")
    if path.is_symlink() or path.exists():
        try:
            mode = path.stat().st_mode
        except OSError as e:
            raise OutputError(f"{path}: cannot inspect the output path: {_reason(e)}") from None
        if kind == "file":
            if stat.S_ISDIR(mode):
                raise OutputError(f"{path}: is a folder; give a file path for the output")
            if not stat.S_ISREG(mode):
                raise OutputError(f"{path}: is not a regular file (a device, pipe or socket); refusing to replace it")
        elif not stat.S_ISDIR(mode):
            raise OutputError(f"{path}: exists and is not a folder; give a folder path for the output")
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{path}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise OutputError(f"{path}: cannot write in {parent} (permission denied)")
            break
    return path


def _mkdir(folder: Path, target: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{target}: cannot create folder {folder}: {_reason(e)}") from None


def _fail(path: Path, e: OSError) -> OutputError:
    hint = {errno.ENOSPC: " (the disk is full)", errno.EROFS: " (read-only file system)",
            errno.EDQUOT: " (disk quota exceeded)"}.get(e.errno, "")
    return OutputError(f"{path}: cannot write: {_reason(e)}{hint}")


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yield a temporary path beside ``path``; on success rename it over ``path``, on error remove it."""
    path = check_output_path(path)
    _mkdir(path.parent, path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    except OSError as e:
        raise _fail(path, e) from None
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the artifact gets ordinary file permissions
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        check_output_path(path)  # it may have become a folder or device while we wrote
        os.replace(tmp, path)
        fsync_folder(path.parent)  # the rename itself survives a power cut
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise _fail(path, e) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write(path: str | os.PathLike, mode: str, writer: Callable[[IO[Any]], None]) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as raw:
            hashing = _HashingWriter(raw)
            if "b" in mode:
                buffered = io.BufferedWriter(hashing, 1 << 20)
                writer(buffered)
                buffered.flush()
            else:
                text = io.TextIOWrapper(io.BufferedWriter(hashing, 1 << 20), encoding="utf-8", errors=TEXT_ERRORS,
                                        newline="")
                writer(text)
                text.flush()
            raw.flush()
            digest = hashing.sha.hexdigest()
        _DIGESTS[_identity(os.stat(tmp))] = digest
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return _write(path, "w", lambda f: f.write(text))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return _write(path, "w", lambda f: (json.dump(obj, f, indent=2, sort_keys=True, default=str), f.write("\n")))


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> Path:
    def writer(f: IO[str]) -> None:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=str))
            f.write("\n")

    return _write(path, "w", writer)


def save_npy(path: str | os.PathLike, array: Any) -> Path:
    import numpy as np

    return _write(path, "wb", lambda f: np.save(f, array, allow_pickle=False))


@contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock for writing ``path`` (a hidden ``.NAME.lock`` beside it); waits for other writers."""
    path = Path(path)
    _mkdir(path.parent, path)
    lock = path.parent / f".{path.name}.lock"
    try:
        f = open(lock, "a")
    except OSError as e:
        raise _fail(lock, e) from None
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextmanager
def atomic_dir(path: str | os.PathLike, *, keep: Iterable[str] = (), marker: str | None = None):
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` as a unit.

    A previous ``path`` is exchanged with the new folder in one atomic step (Linux ``renameat2``), so an
    interruption at any instant leaves the old folder or the new one; where the OS cannot exchange, the old
    one is renamed aside first (an interruption in between leaves no folder, never a mix). Files named in
    ``keep`` are copied from the previous folder into the new one first (e.g. resumable parts).
    With ``marker`` (the manifest file such a folder holds), an existing non-empty folder without it is
    refused rather than replaced: it is not a previous output but someone's other files.
    """
    path = check_output_path(path, kind="folder")
    with output_lock(path):  # concurrent writers of one folder take turns; stale temp siblings are ours to remove
        with _atomic_dir_locked(path, keep, marker) as tmp:
            yield tmp


@contextmanager
def _atomic_dir_locked(path: Path, keep: Iterable[str], marker: str | None):
    if marker and path.is_dir() and any(path.iterdir()) and not (path / marker).exists():
        raise OutputError(f"{path}: exists, is not empty and holds no {marker}; refusing to replace it "
                          "(choose a new or empty folder)")
    if path.exists() and Path.cwd().resolve().is_relative_to(path.resolve()):
        raise OutputError(f"{path}: is the current folder (or holds it); choose another output folder")
    _mkdir(path.parent, path)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in path.parent.glob(f".{path.name}.old-*"):
        shutil.rmtree(stale, ignore_errors=True)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as e:
        raise _fail(path, e) from None
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        for name in keep:
            src = path / name
            if src.is_dir():
                shutil.copytree(src, tmp / name)
            elif src.is_file():
                shutil.copy2(src, tmp / name)
        yield tmp
        try:
            fsync_tree(tmp)
            _swap_in(tmp, path)
        except OSError as e:
            raise _fail(path, e) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where it is not available."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # file system or kernel without it
        return False
    raise OSError(code, os.strerror(code), str(b))


def _swap_in(tmp: Path, path: Path) -> None:
    """Put ``tmp`` at ``path``. With an old ``path``, both are exchanged atomically where the OS can (readers
    see the old folder or the new one, never none), else the old one is renamed aside first."""
    if path.exists() and _exchange(tmp, path):
        fsync_folder(path.parent)
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old folder
        return
    aside = None
    if path.exists():
        aside = path.parent / f".{path.name}.old-{os.getpid()}"
        os.replace(path, aside)
    os.replace(tmp, path)
    fsync_folder(path.parent)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
