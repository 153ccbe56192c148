"""`kill -9` a real `s2lbench run` mid-grid, run the same command again: it finishes, recomputing nothing
that had finished, and no artifact is corrupt."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from test_runner import tiny_config

from s2lbench.grid.stages import read_events
from s2lbench.results.store import ResultsStore

S2LBENCH = str(Path(sys.executable).with_name("s2lbench"))


def _finished_finetunes(out: Path) -> int:
    return sum(1 for e in read_events(out / "stages") if e["stage"] == "finetune" and e["status"] == "computed")


@pytest.mark.integration
@pytest.mark.slow
def test_sigkill_mid_grid_then_rerun_completes_without_recomputing(tmp_path):
    config = tmp_path / "grid.yaml"
    data = tiny_config(selectors=["random", {"name": "s2l", "options": {"n_clusters": 4}}, "el2n"])
    data["targets"][0]["train"].update(total_steps=30, n_checkpoints=3)  # checkpoints to resume from
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    cmd = [S2LBENCH, "run", str(config), "--out", str(out)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 300
    try:
        while _finished_finetunes(out) < 2 and time.time() < deadline:  # mid-grid: 2 of 4 cells trained
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.2)
        assert _finished_finetunes(out) >= 2, "the run made no progress in time"
        time.sleep(1.0)  # land inside the next stage's work
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    store = ResultsStore(out)
    deadline = time.time() + 10  # the cell runs in a child process, killed with its parent: a moment later
    while (shown := Counter(store.shown_status(c) for c in store.cells()))["running"] and time.time() < deadline:
        time.sleep(0.1)
    assert shown["interrupted"] == 1 and shown["running"] == 0, shown  # the killed cell, told apart from a live one
    before = read_events(out / "stages")
    computed_before = {(e["stage"], e["key"]) for e in before if e["status"] == "computed"}

    rerun = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = read_events(out / "stages")[len(before):]
    recomputed = {(e["stage"], e["key"]) for e in after if e["status"] == "computed"} & computed_before
    assert not recomputed, f"finished stages were recomputed: {recomputed}"
    assert {(e["stage"], e["key"]) for e in after if e["status"] == "cached"} >= \
        {k for k in computed_before if k[0] in ("gym", "proxy", "signals")}
    twice = [k for k, n in Counter((e["stage"], e["key"]) for e in before + after
                                   if e["status"] == "computed").items() if n > 1]
    assert not twice
    cells = ResultsStore(out).cells()
    assert len(cells) == 4 and all(c.status == "done" for c in cells)
    with sqlite3.connect(out / "results.sqlite") as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # no half-written file survives: temp files are renamed or removed
    assert not [p for p in out.rglob("*.tmp*") if p.is_file()]
