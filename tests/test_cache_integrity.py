"""A cache you can trust (issue 39): stage manifests checked on reuse, damage named, moved aside and healed;
results that cannot be silently wrong; durable atomic writes; values native code cannot digest refused;
one cell's native abort is one failed cell."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from s2lbench.common import atomic
from s2lbench.common.atomic import known_digest, save_npy, write_json
from s2lbench.errors import DataError, OutputError
from s2lbench.grid.stages import DONE, FILES, StageStore, read_events
from s2lbench.results.store import Cell, ResultsStore

S2LBENCH = [sys.executable, "-c", "from s2lbench.cli import main; raise SystemExit(main())"]


# --- durability ------------------------------------------------------------------------------------------
def test_an_atomic_write_syncs_the_file_renames_it_then_syncs_its_folder(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        return real_fsync(fd)

    def replace(src, dst):
        calls.append("rename")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    write_json(tmp_path / "out.json", {"a": 1})
    assert calls == ["fsync file", "rename", "fsync folder"]
    calls.clear()
    with atomic.atomic_dir(tmp_path / "folder") as tmp:
        (tmp / "x.txt").write_text("x")
    assert calls.index("fsync file") < calls.index("rename") < len(calls) - 1 and calls[-1] == "fsync folder"


def test_what_the_atomic_writer_writes_is_hashed_as_written(tmp_path):
    path = save_npy(tmp_path / "m.npy", np.arange(10.0))
    assert known_digest(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_bytes(path.read_bytes()[:-1] + b"!")  # changed behind the writer's back: no longer known
    assert known_digest(path) is None


# --- the stage store ----------------------------------------------------------------------------------------
def _compute(folder: Path) -> dict:
    save_npy(folder / "matrix.npy", np.arange(1000.0))
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 8)  # written by "a library", not by us
    return {"answer": 42}


def _damage(path: Path, fault: str) -> None:
    data = path.read_bytes()
    if fault == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif fault == "flip":
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:])
    else:
        path.unlink()


def test_a_finished_stage_lists_every_file_with_its_size_and_hash(tmp_path):
    store = StageStore(tmp_path)
    result = store.run("kind", {"x": 1}, _compute)
    files = json.loads((result.path / DONE).read_text())[FILES]
    assert set(files) == {"matrix.npy", "sub/weights.bin", "spec.json"}
    for rel, entry in files.items():
        data = (result.path / rel).read_bytes()
        assert entry == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_a_lock_file_is_not_content_a_stage_is_reused_without_it(tmp_path):
    """A writer's lock file left inside a stage (the gym's ``.tokenizer.lock``) is not listed, and a stage
    whose older manifest lists one is reused without it: lock files are neither committed nor packed with a
    run's state, so a restored cache must not count as damaged for lacking them."""
    from s2lbench.common.manifest import build_manifest

    def compute(folder: Path) -> dict:
        _compute(folder)
        (folder / "sub" / ".weights.lock").write_text("")
        return {}

    store = StageStore(tmp_path)
    first = store.run("kind", {"x": 1}, compute)
    assert set(json.loads((first.path / DONE).read_text())[FILES]) == {"matrix.npy", "sub/weights.bin", "spec.json"}
    # a stage finished before lock files were left out: its manifest lists one, and the lock is then lost
    meta = json.loads((first.path / DONE).read_text())
    with_lock = build_manifest(first.path, frozenset({DONE}))
    with_lock["sub/.weights.lock"] = {"size": 0, "sha256": hashlib.sha256(b"").hexdigest()}
    write_json(first.path / DONE, {**meta, FILES: with_lock})
    (first.path / "sub" / ".weights.lock").unlink()
    for verify in (False, True):
        again = StageStore(tmp_path, verify=verify).run("kind", {"x": 1}, lambda folder: pytest.fail("recomputed"))
        assert again.path == first.path
    assert [e["status"] for e in read_events(tmp_path)][-2:] == ["cached", "cached"]


@pytest.mark.parametrize("fault", ["truncate", "flip", "delete"])
@pytest.mark.parametrize("name", ["matrix.npy", "sub/weights.bin"])
def test_a_damaged_stage_is_named_moved_aside_and_recomputed(tmp_path, caplog, fault, name):
    store = StageStore(tmp_path, verify=fault == "flip")  # a flipped byte keeps the size: only hashes see it
    first = store.run("kind", {"x": 1}, _compute)
    original = (first.path / name).read_bytes()
    _damage(first.path / name, fault)
    with caplog.at_level(logging.WARNING, logger="s2lbench"):
        again = store.run("kind", {"x": 1}, _compute)
    assert not again.cached and again.key == first.key
    assert (again.path / name).read_bytes() == original
    (aside,) = (tmp_path / "kind").glob(f"{first.key}.corrupt-*")
    assert (aside / DONE).exists()  # kept whole for inspection, never deleted
    assert f"stage kind {first.key}: {name}" in caplog.text and "moved aside" in caplog.text
    assert [e["status"] for e in read_events(tmp_path)] == ["computed", "damaged", "computed"]
    assert store.run("kind", {"x": 1}, _compute).cached


def test_a_flipped_byte_passes_the_cheap_check_and_fails_the_deep_one(tmp_path):
    store = StageStore(tmp_path)
    first = store.run("kind", {"x": 1}, _compute)
    _damage(first.path / "matrix.npy", "flip")
    assert store.run("kind", {"x": 1}, _compute).cached  # sizes only: the always-on check is cheap
    assert not StageStore(tmp_path, verify=True).run("kind", {"x": 1}, _compute).cached


def test_a_stage_from_before_manifests_is_accepted_once_and_given_one(tmp_path, caplog):
    store = StageStore(tmp_path)
    first = store.run("kind", {"x": 1}, _compute)
    meta = json.loads((first.path / DONE).read_text())
    del meta[FILES]
    (first.path / DONE).write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="s2lbench"):
        assert store.run("kind", {"x": 1}, _compute).cached
    assert "finished before stage manifests existed" in caplog.text
    assert FILES in json.loads((first.path / DONE).read_text())
    _damage(first.path / "matrix.npy", "truncate")  # from now on it is checked like any other
    assert not store.run("kind", {"x": 1}, _compute).cached


def test_a_full_disk_mid_stage_leaves_nothing_that_looks_finished(tmp_path, monkeypatch):
    store = StageStore(tmp_path)
    real_write = atomic._HashingWriter.write

    def full(self, data):  # the disk fills up while the stage writes its matrix
        if ".matrix.npy." in str(self.f.name):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(atomic._HashingWriter, "write", full)
    with pytest.raises(OutputError, match=r"matrix.npy: cannot write: No space left on device \(the disk is full\)"):
        store.run("kind", {"x": 1}, _compute)
    folder = store.path("kind", store.key("kind", {"x": 1}))
    assert not (folder / DONE).exists() and not (folder / "matrix.npy").exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(".matrix")]  # no temp file left either
    monkeypatch.undo()
    assert not store.run("kind", {"x": 1}, _compute).cached  # computed once the disk has room


# --- verify, du, gc on a bare stage cache ---------------------------------------------------------------
def test_verify_names_every_damaged_file_and_moves_the_stage_aside(tmp_path, capsys):
    from s2lbench.cli import main

    out = tmp_path / "run"
    store = StageStore(out / "stages")
    good = store.run("kind", {"x": 1}, _compute)
    bad = store.run("kind", {"x": 2}, _compute)
    _damage(bad.path / "sub" / "weights.bin", "flip")
    assert main(["verify", str(out)]) == 1
    text = capsys.readouterr().out
    assert f"DAMAGED stage kind {bad.key}: sub/weights.bin: SHA-256" in text and "moved aside" in text
    assert good.key not in text and good.path.exists() and not bad.path.exists()
    assert main(["verify", str(out)]) == 0  # what is left is intact
    assert "all intact" in capsys.readouterr().out


def test_verify_checks_a_shared_cache_behind_a_symlink(tmp_path, capsys):
    from s2lbench.cli import main

    shared = tmp_path / "shared-cache"
    stage = StageStore(shared).run("kind", {"x": 1}, _compute)
    out = tmp_path / "run"
    out.mkdir()
    (out / "stages").symlink_to(shared)
    _damage(stage.path / "matrix.npy", "truncate")
    assert main(["verify", str(out)]) == 1
    text = capsys.readouterr().out
    assert "a shared cache at" in text and f"stage kind {stage.key}: matrix.npy: " in text
    assert list((shared / "kind").glob(f"{stage.key}.corrupt-*"))


# --- results that cannot be silently wrong --------------------------------------------------------------
def test_a_damaged_results_database_is_named_and_left_untouched(tmp_path):
    store = ResultsStore(tmp_path)
    for i in range(400):  # several pages, so damage can land past the header
        store.upsert_cell(Cell(f"cell-{i}", "x", "random", 10, 0.1, 0, "t", error="e" * 200))
    with sqlite3.connect(tmp_path / "results.sqlite") as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db = tmp_path / "results.sqlite"
    data = bytearray(db.read_bytes())
    page = 4096
    for offset in range(3 * page, 3 * page + 64):  # scramble a b-tree page's header
        data[offset] ^= 0xFF
    db.write_bytes(bytes(data))
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    with pytest.raises(DataError, match=r"results.sqlite: the results database is damaged \(SQLite quick_check"):
        ResultsStore(tmp_path)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


# --- values no native library can digest ------------------------------------------------------------------
def _pool(path: Path, n: int = 300) -> Path:
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"r{i}", "instruction": f"q {i}", "output": f"a {i}", "source": "s"}) + "\n")
    return path


@pytest.mark.parametrize("value", [1e30, 3e19, -1e25])
def test_a_matrix_that_overflows_a_squared_distance_is_refused_not_an_abort(tmp_path, value):
    matrix = np.random.default_rng(0).random((300, 4)).astype(np.float32)
    matrix[5, 2] = value
    matrix[7, 1] = value
    np.save(tmp_path / "M.npy", matrix)
    pool = _pool(tmp_path / "pool.jsonl")
    for args in (["select", "--pool", str(pool), "--selector", "s2l", "--budget", "30", "--trajectories",
                  str(tmp_path / "M.npy"), "--option", "n_clusters=3", "--out", str(tmp_path / "s.jsonl")],
                 ["signals", "import", "--pool", str(pool), "--matrix", str(tmp_path / "M.npy"), "--out",
                  str(tmp_path / "sig")]):
        proc = subprocess.run(S2LBENCH + args, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, proc.stderr[-2000:]  # not 134 (faiss's abort)
        (line,) = [x for x in proc.stderr.splitlines() if "error" in x]
        assert "M.npy" in line and "2 values with |x| above" in line and "overflow float32" in line


@pytest.mark.parametrize("signal", ["proxy_embedding", "text_embedding", "gradients"])
def test_distance_signals_in_a_folder_are_refused_naming_the_file(tmp_path, signal):
    from s2lbench.signals.signalset import FILES as SIGNAL_FILES
    from s2lbench.signals.signalset import SignalSet

    shape = (50, 2, 16) if signal == "gradients" else (50, 16)
    array = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    array.reshape(-1)[17] = 1e30
    np.save(tmp_path / SIGNAL_FILES[signal], array)
    with pytest.raises(DataError, match=rf"{SIGNAL_FILES[signal]}: signal '{signal}' holds 1 value with \|x\| above"):
        SignalSet.from_dir(tmp_path).get(signal)
    array.reshape(-1)[17] = np.inf
    np.save(tmp_path / SIGNAL_FILES[signal], array)
    with pytest.raises(DataError, match="holds 1 infinite value"):
        SignalSet.from_dir(tmp_path).get(signal)


def test_kmeans_itself_refuses_features_that_would_abort_faiss():
    from s2lbench.selection.clustering import kmeans

    x = np.random.default_rng(0).random((100, 4)).astype(np.float32)
    assert kmeans(x * 1e17, 3).k == 3  # large but in range: clustered
    x[3, 3] = 1e30
    with pytest.raises(DataError, match="k-means features: the features holds 1 value with"):
        kmeans(x, 3)


# --- a native abort is one failed cell ----------------------------------------------------------------
def _cell(payload):
    if payload == "abort":
        os.abort()
    if payload == "killed":
        os.kill(os.getpid(), 9)
    return "RuntimeError: planted" if payload == "fail" else None


# ``auto`` is ``fork`` in a process without an OpenMP pool (below); this test process may have one by now
@pytest.mark.parametrize("isolate", ["fork", "spawn"])
def test_a_cell_whose_process_dies_is_a_failed_cell_and_the_grid_goes_on(isolate):
    from s2lbench.executors.base import CellTask, Grid
    from s2lbench.executors.local import LocalExecutor, LocalOptions

    grid = Grid([CellTask(i, i) for i in ("ok", "abort", "fail", "killed", "ok2")], _cell)
    results = dict(LocalExecutor(LocalOptions(isolate=isolate)).run(grid))
    assert results["ok"] is None and results["ok2"] is None and results["fail"] == "RuntimeError: planted"
    assert results["abort"].startswith("CellProcessDied: the cell's process died of SIGABRT")
    assert results["killed"].startswith("CellProcessDied: the cell's process died of SIGKILL")


_AUTO_PROBE = """
import os
from s2lbench.executors.isolation import run_isolated
print(run_isolated(lambda _: str(os.getpid()), None) != str(os.getpid()))  # a child answered
import torch
torch.ones(256, 256) @ torch.ones(256, 256)  # an OpenMP pool now runs here
print(run_isolated(lambda _: str(os.getpid()), None) == str(os.getpid()))  # so the cell ran here
"""


def test_auto_forks_a_cell_unless_an_openmp_pool_runs_in_this_process():
    out = subprocess.run([sys.executable, "-c", _AUTO_PROBE], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["True", "True"]
    assert "cells run in this process" in out.stderr  # said once, as a warning


def test_the_isolation_option_is_checked():
    from s2lbench.errors import ConfigError
    from s2lbench.executors.local import LocalExecutor

    with pytest.raises(ConfigError, match="executor_options.isolate: 'threads' is not one of auto"):
        LocalExecutor.parse_options({"isolate": "threads"})


_POOL_PROBE = """
import sys, tempfile
from s2lbench.executors.isolation import has_openmp_pool
from s2lbench.gym.build import GymConfig, build_gym
build_gym(tempfile.mkdtemp(), GymConfig(pool_size=200, test_size=10, version=2, tokenizer="shared"))
after_gym = has_openmp_pool()  # tokenizers' Rust pool is running now: forking past it is safe
import torch
torch.ones(256, 256) @ torch.ones(256, 256)
print(after_gym, has_openmp_pool())
"""


def test_only_an_openmp_pool_keeps_cells_from_forking_not_the_tokenizers_pool():
    # `s2lbench run` builds the gym (training a tokenizer) before its first cell: its cells must still fork
    out = subprocess.run([sys.executable, "-c", _POOL_PROBE], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["False", "True"]


def test_float16_gradients_are_checked_without_a_warning(tmp_path):
    """LESS gradients are stored in float16: no float16 value can overflow a squared distance, so only
    infinities are refused, and reading them is silent (the check once cast its limit to float16: a
    RuntimeWarning on every signal-based cell of a grid)."""
    import warnings

    from s2lbench.signals.signalset import FILES as SIGNAL_FILES
    from s2lbench.signals.signalset import SignalSet

    array = np.random.default_rng(0).standard_normal((50, 2, 16)).astype(np.float16)
    array.reshape(-1)[3] = np.finfo(np.float16).max
    np.save(tmp_path / SIGNAL_FILES["gradients"], array)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert SignalSet.from_dir(tmp_path).get("gradients").dtype == np.float16
    array.reshape(-1)[17] = np.inf
    np.save(tmp_path / SIGNAL_FILES["gradients"], array)
    with pytest.raises(DataError, match="holds 1 infinite value"):
        SignalSet.from_dir(tmp_path).get("gradients")
