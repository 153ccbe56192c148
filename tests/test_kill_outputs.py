"""Interrupting a command at any instant leaves the old complete output or the new one, never a mix.

Two ways: in-process, an interrupt (KeyboardInterrupt, as SIGINT raises) is injected at every file rename
and every write of the command in turn, which covers every boundary between file operations; and in a
subprocess, SIGKILL and SIGINT land at random moments. After each, the output is either accepted by the
command that reads it and equal to the old or the new result, or refused by it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from s2lbench.cli import main
from s2lbench.errors import S2LBenchError

N = 60


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [{"id": f"r{i}", "instruction": f"question {i}", "output": f"answer {i}", "source": f"s{i % 3}"}
            for i in range(N)]
    Path("pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    np.save("old.npy", np.random.default_rng(0).random((N, 6)).astype(np.float32))
    np.save("new.npy", np.random.default_rng(1).random((N, 6)).astype(np.float32))
    return tmp_path


# ------------------------------------------------------------------------------------- what "complete" means

def selection_state(out: str) -> str | None:
    """The selector of a complete selection at ``out`` (checked against its diagnostics), or None if refused."""
    from s2lbench.commands.select import check_selection_unit

    try:
        diag = check_selection_unit(out)
    except S2LBenchError:
        return None
    labels = Path(out).with_name(Path(out).stem + ".cluster_labels.npy")
    has_labels = "cluster_labels" in diag["files"]
    assert labels.exists() == has_labels or not has_labels, "stale labels beside a complete selection"
    if not has_labels:
        assert not labels.exists(), "an earlier run's cluster labels survived beside a later subset"
    return diag["provenance"]["selector"]


def signals_state(out: str) -> str | None:
    """"old" or "new" for a complete signals folder holding that matrix, or None if refused."""
    from s2lbench.signals.signalset import SignalSet

    try:
        loss = np.asarray(SignalSet.from_dir(out).get("loss"))
    except S2LBenchError:
        return None
    for name in ("old", "new"):
        if np.array_equal(loss, np.load(f"{name}.npy")):
            return name
    raise AssertionError("a signals folder accepted as complete holds neither the old nor the new matrix")


def gym_state(out: str) -> int | None:
    """The pool size of a complete gym folder (every listed file present and the right size), or None."""
    from s2lbench.gym.evaluators import gym_test_sets

    try:
        sets = gym_test_sets(out)
    except S2LBenchError:
        return None
    manifest = json.loads((Path(out) / "gym.json").read_text())
    for s in sets:
        rows = Path(out, "tests", f"{s.name}.jsonl").read_text().splitlines()
        assert len(rows) == manifest["config"]["test_size"]
    assert (Path(out) / "tokenizer").is_dir() and any((Path(out) / "tokenizer").iterdir())
    pool_rows = len(Path(out, "pool.jsonl").read_text().splitlines())
    assert pool_rows == manifest["pool"]["rows"]
    return pool_rows


def tables_state(out: str) -> bool:
    """Whether a tables folder is complete: provenance.json (written last) beside every table."""
    folder = Path(out)
    if not (folder / "provenance.json").exists():
        return False
    for ext in ("md", "tex", "csv", "html"):
        assert (folder / f"leaderboard.{ext}").exists()
    return True


# ------------------------------------------------------------------------------------- in-process interrupts

class Interrupt:
    """Raise KeyboardInterrupt at the n-th call of the patched file operations (as SIGINT would there)."""

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def wrap(self, fn):
        def wrapped(*args, **kwargs):
            self.calls += 1
            if self.calls == self.n:
                raise KeyboardInterrupt
            return fn(*args, **kwargs)
        return wrapped


def interrupt_everywhere(monkeypatch, argv: list[str], check, max_points: int = 60) -> set:
    """Run ``argv`` once per file operation, interrupted at that operation; collect the states seen."""
    import s2lbench.common.atomic as atomic

    seen = set()
    for n in range(1, max_points):
        interrupt = Interrupt(n)
        with monkeypatch.context() as m:
            m.setattr(atomic.os, "replace", interrupt.wrap(os.replace))
            m.setattr(atomic.os, "fsync", interrupt.wrap(os.fsync))
            m.setattr(Path, "unlink", interrupt.wrap(Path.unlink))
            rc = main(argv)
        seen.add(check())
        if interrupt.calls < n:  # ran to the end without reaching the n-th operation
            assert rc == 0
            return seen
        assert rc == 130
    raise AssertionError("the command did more file operations than expected")


def test_select_interrupted_at_every_file_operation(work, monkeypatch):
    base = ["select", "--pool", "pool.jsonl", "--budget", "12", "--out", "sub.jsonl"]
    assert main([*base, "--selector", "s2l", "--trajectories", "old.npy", "--option", "n_clusters=3"]) == 0
    assert selection_state("sub.jsonl") == "s2l"
    seen = interrupt_everywhere(monkeypatch, [*base, "--selector", "random"], lambda: selection_state("sub.jsonl"))
    assert seen <= {"s2l", "random", None} and "random" in seen


def test_signals_import_interrupted_at_every_file_operation(work, monkeypatch):
    base = ["signals", "import", "--pool", "pool.jsonl", "--out", "sig"]
    assert main([*base, "--matrix", "old.npy"]) == 0
    seen = interrupt_everywhere(monkeypatch, [*base, "--matrix", "new.npy"], lambda: signals_state("sig"))
    assert seen <= {"old", "new"} and "new" in seen  # the folder is swapped whole: never refused, never mixed


def test_gym_build_interrupted_at_every_file_operation(work, monkeypatch):
    base = ["gym", "build", "--small", "--test-size", "10", "--out", "gym"]
    assert main([*base, "--size", "200"]) == 0
    seen = interrupt_everywhere(monkeypatch, [*base, "--size", "300"], lambda: gym_state("gym"))
    assert seen <= {200, 300} and 300 in seen


def test_leaderboard_tables_interrupted_at_every_file_operation(work, monkeypatch):
    from test_leaderboard_store import make_store

    make_store(work / "res")
    # the tables, then their results/ export beside them (a file and an fsync per samples file)
    seen = interrupt_everywhere(monkeypatch, ["leaderboard", "res", "--tables", "tables"],
                                lambda: tables_state("tables"), max_points=400)
    assert seen == {False, True}


# ------------------------------------------------------------------------------------- real signals

COMMANDS = {
    "select": (["select", "--pool", "pool.jsonl", "--selector", "s2l", "--trajectories", "new.npy", "--option",
                "n_clusters=3", "--budget", "12", "--out", "sub.jsonl"],
               ["select", "--pool", "pool.jsonl", "--selector", "random", "--budget", "12", "--out", "sub.jsonl"],
               lambda: selection_state("sub.jsonl"), {"random", "s2l", None}),
    "signals import": (["signals", "import", "--pool", "pool.jsonl", "--matrix", "old.npy", "--out", "sig"],
                       ["signals", "import", "--pool", "pool.jsonl", "--matrix", "new.npy", "--out", "sig"],
                       lambda: signals_state("sig"), {"old", "new"}),
    "gym build": (["gym", "build", "--small", "--size", "200", "--test-size", "10", "--out", "gym"],
                  ["gym", "build", "--small", "--size", "300", "--test-size", "10", "--out", "gym"],
                  lambda: gym_state("gym"), {200, 300}),
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_kill_at_random_moments_leaves_old_or_new(work, name):
    first, second, check, allowed = COMMANDS[name]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cli = [sys.executable, "-m", "s2lbench.cli"]
    subprocess.run([*cli, *first], check=True, capture_output=True, env=env)
    started = time.perf_counter()
    subprocess.run([*cli, *second], check=True, capture_output=True, env=env)
    duration = time.perf_counter() - started
    rng = random.Random(17)
    for i in range(3):
        proc = subprocess.Popen([*cli, *(first if i % 2 else second)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env)
        time.sleep(rng.uniform(0.5, 1.0) * duration)
        proc.send_signal(signal.SIGKILL if i != 1 else signal.SIGINT)
        proc.wait()
        assert check() in allowed


def test_concurrent_selects_to_one_out_leave_one_consistent_unit(work):
    from s2lbench.commands.select import check_selection_unit

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cli = [sys.executable, "-m", "s2lbench.cli", "select", "--pool", "pool.jsonl", "--budget", "12",
           "--out", "sub.jsonl"]
    procs = [subprocess.Popen([*cli, "--selector", "s2l", "--trajectories", "new.npy", "--option", "n_clusters=3",
                               "--seed", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env),
             subprocess.Popen([*cli, "--selector", "random", "--seed", "2"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=env)]
    assert [p.wait() for p in procs] == [0, 0]
    diag = check_selection_unit("sub.jsonl")  # the subset beside the diagnostics is the one they describe
    seed = diag["provenance"]["seed"]
    assert (diag["provenance"]["selector"], seed) in {("s2l", 1), ("random", 2)}
    assert Path("sub.cluster_labels.npy").exists() == (seed == 1)
