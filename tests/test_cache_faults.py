"""Fault injection on a finished grid (issue 39): for every stage kind (gym, proxy, signals, selection,
fine-tune) and the generation cache, a file truncated, a byte flipped or a file deleted; the rerun names the
damage, moves it aside, recomputes it, and ends with the undamaged run's results. One finished run is shared
by every case through copies. A byte flip keeps the size, so those cases rerun with ``--verify``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from test_cache_integrity import _damage
from test_runner import tiny_config

from s2lbench.cli import main
from s2lbench.grid.stages import DONE, read_events
from s2lbench.results.store import ResultsStore

FAULTS = ["truncate", "flip", "delete"]


def _config() -> dict:
    data = tiny_config(selectors=[{"name": "s2l", "options": {"n_clusters": 4}}], full_reference=False)
    data["targets"][0]["train"]["total_steps"] = 4
    data["evaluation"]["limit"] = 3
    return data


def _stage(out: Path, kind: str) -> Path:
    (folder,) = [p for p in (out / "stages" / kind).iterdir() if (p / DONE).exists() and ".corrupt-" not in p.name]
    return folder


def _largest(folder: Path, pattern: str) -> Path:
    return max(folder.rglob(pattern), key=lambda p: (p.stat().st_size, str(p)))


#: the file each case damages: the one each stage exists to produce
VICTIMS = {
    "gym": lambda out: _stage(out, "gym") / json.loads((_stage(out, "gym") / DONE).read_text())["pool"],
    "proxy": lambda out: _largest(_stage(out, "proxy"), "model.safetensors"),
    "signals": lambda out: _stage(out, "signals") / "trajectories.npy",
    "selection": lambda out: _stage(out, "selection") / "selection.jsonl",
    "finetune": lambda out: _largest(_stage(out, "finetune"), "model.safetensors"),
    "generation": lambda out: _largest(out / "generations", "*.jsonl"),
}


def _snapshot(out: Path) -> dict:
    store = ResultsStore(out, read_only=True)
    return {"cells": [(c.cell_id, c.status, c.selected_ids_hash, c.model_fingerprint) for c in store.cells()],
            "results": [(r.cell_id, r.task, r.metric, r.value, r.n) for r in store.results()],
            "samples": {r.samples_path: store.load_samples(r.samples_path) for r in store.results()}}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    config = root / "grid.yaml"
    config.write_text(yaml.safe_dump(_config()))
    out = root / "run"
    assert main(["run", str(config), "--out", str(out)]) == 0
    return config, out, _snapshot(out)


def _forget_results(out: Path) -> None:
    """What the issue did: results removed, so every cell runs again over the (damaged) cache."""
    for name in ("results.sqlite", "results.sqlite-wal", "results.sqlite-shm"):
        (out / name).unlink(missing_ok=True)
    for name in ("cells", "samples"):
        shutil.rmtree(out / name, ignore_errors=True)


@pytest.mark.integration
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("kind", list(VICTIMS))
def test_a_damaged_file_is_named_recomputed_and_the_results_are_the_undamaged_runs(pristine, tmp_path, kind,
                                                                                      fault, capsys):
    config, finished, expected = pristine
    out = tmp_path / "run"
    shutil.copytree(finished, out, symlinks=True)
    victim = VICTIMS[kind](out)
    original = victim.read_bytes()
    _damage(victim, fault)
    _forget_results(out)
    before = len(read_events(out / "stages"))
    capsys.readouterr()
    assert main(["run", str(config), "--out", str(out), *(["--verify"] if fault == "flip" else [])]) == 0
    printed = capsys.readouterr()
    assert _snapshot(out) == expected
    assert victim.read_bytes() == original  # recomputed, bit for bit
    if kind == "generation":
        assert list(victim.parent.glob(f"{victim.name if fault != 'delete' else victim.stem + '.meta.json'}"
                                       ".corrupt-*")), "the damaged cache was not moved aside"
        if fault == "flip":
            assert f"DAMAGED generation cache {victim}" in printed.err
    else:
        stage = victim.relative_to(out / "stages").parts
        damaged = [e for e in read_events(out / "stages")[before:] if e["status"] == "damaged"]
        assert [(e["stage"], e["key"]) for e in damaged] == [stage[:2]]
        assert list((out / "stages" / kind).glob(f"{stage[1]}.corrupt-*"))  # kept for inspection
        if fault == "flip":
            assert f"DAMAGED stage {kind} {stage[1]}: {'/'.join(stage[2:])}: SHA-256" in printed.err


@pytest.mark.integration
def test_a_full_disk_during_a_stage_fails_the_cell_in_one_line_and_leaves_nothing_finished(pristine, tmp_path,
                                                                                            monkeypatch, capsys):
    import errno

    from s2lbench.common import atomic

    config, finished, _ = pristine
    out = tmp_path / "run"
    shutil.copytree(finished, out, symlinks=True)
    selection = _stage(out, "selection")
    shutil.rmtree(selection)
    _forget_results(out)
    real_write = atomic._HashingWriter.write

    def full(self, data):
        if ".selection.jsonl." in str(self.f.name):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(atomic._HashingWriter, "write", full)
    assert main(["run", str(config), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if x.startswith("  FAILED")]
    assert "selection.jsonl: cannot write: No space left on device (the disk is full)" in line
    assert not (selection / DONE).exists()
    assert not [p for p in (out / "stages").rglob(DONE) if "selection" in p.parts]


# --- du and gc on a finished grid -------------------------------------------------------------------------
def _orphan(folder: Path) -> dict:
    (folder / "orphan.bin").write_bytes(b"x" * 100_000)
    return {}


@pytest.mark.integration
def test_du_lists_disk_use_by_stage_kind_and_by_cell(pristine, capsys):
    _, out, _ = pristine
    assert main(["du", str(out)]) == 0
    text = capsys.readouterr().out
    for kind in ("gym", "proxy", "signals", "selection", "finetune"):
        assert f"\n  {kind} " in text
    assert "by cell" in text and "t__s2l__20%__s0" in text


@pytest.mark.integration
def test_gc_removes_only_what_no_cell_references_and_never_a_locked_or_own_stage(pristine, tmp_path, capsys):
    import fcntl

    from s2lbench.grid.experiment import parse_experiment
    from s2lbench.grid.runner import Runner
    from s2lbench.grid.stages import StageStore, lock_path

    config, finished, _ = pristine
    out = tmp_path / "run"
    shutil.copytree(finished, out, symlinks=True)
    store = StageStore(out / "stages")
    orphan = store.run("finetune", {"an": "old fine-tune"}, _orphan)
    held = store.run("selection", {"a": "stage another run is checking"}, _orphan)
    # another config's selection over the same cache (budget 10 %): referenced by it, not by this folder's grid
    other = _config()
    other["budgets"] = [0.1]
    other_yaml = tmp_path / "other.yaml"
    other_yaml.write_text(yaml.safe_dump(other))
    with_other = tmp_path / "other-run"
    with_other.mkdir()
    (with_other / "stages").symlink_to(out / "stages")
    runner = Runner(parse_experiment(other), with_other)
    runner.select(runner.cells()[0])
    other_selection = {p.name for p in (out / "stages" / "selection").iterdir() if not p.name.startswith(".")} - \
        {held.key, _stage(finished, "selection").name}
    assert len(other_selection) == 1
    before = {p.relative_to(out) for p in (out / "stages").glob("*/*") if p.is_dir()}

    capsys.readouterr()
    assert main(["gc", str(out)]) == 0  # a dry run
    text = capsys.readouterr().out
    assert f"would remove finetune/{orphan.key}" in text and f"would remove selection/{held.key}" in text
    assert f"would remove selection/{next(iter(other_selection))}" in text
    assert "Dry run" in text and {p.relative_to(out) for p in (out / "stages").glob("*/*") if p.is_dir()} == before

    with open(lock_path(store.root, "selection", held.key), "a") as lock:  # a running grid holds this one
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert main(["gc", str(out), "--config", str(other_yaml), "--yes"]) == 0
    text = capsys.readouterr().out
    assert f"kept selection/{held.key}: a running process holds its lock" in text
    assert not orphan.path.exists() and held.path.exists()
    assert (out / "stages" / "selection" / next(iter(other_selection))).exists()  # --config keeps its stages
    before_events = len(read_events(out / "stages"))
    assert main(["run", str(config), "--out", str(out)]) == 0  # the folder's own grid lost nothing
    assert not [e for e in read_events(out / "stages")[before_events:] if e["status"] == "computed"]


@pytest.mark.integration
def test_gc_on_a_shared_cache_asks_for_every_config_that_uses_it(pristine, tmp_path, capsys):
    _, finished, _ = pristine
    out = tmp_path / "run"
    out.mkdir()
    (out / "stages").symlink_to(finished / "stages")
    shutil.copy(finished / "config.json", out / "config.json")
    assert main(["gc", str(out), "--yes"]) == 2
    assert "the stage cache is shared" in capsys.readouterr().err


@pytest.mark.integration
@pytest.mark.parametrize("fault", FAULTS)
def test_damaged_samples_are_named_by_verify_and_their_cell_evaluated_again(pristine, tmp_path, fault, capsys):
    config, finished, expected = pristine
    out = tmp_path / "run"
    shutil.copytree(finished, out, symlinks=True)
    victim = sorted((out / "samples").rglob("*.jsonl"))[0]
    original = victim.read_bytes()
    _damage(victim, fault)
    capsys.readouterr()
    assert main(["verify", str(out)]) == 1
    text = capsys.readouterr().out
    assert f"DAMAGED samples {victim}" in text and "set to pending" in text
    assert main(["run", str(config), "--out", str(out)]) == 0
    assert victim.read_bytes() == original and _snapshot(out) == expected


class AbortingPlugin:
    """A selector whose native code aborts the process (what faiss does on overflowing distances)."""

    @staticmethod
    def _cls():
        from s2lbench.selection import Selector

        class AbortSelector(Selector):
            name = "native-abort"

            def select(self, ctx):
                import os

                os.abort()

        return AbortSelector

    import s2lbench as _s2lbench

    @_s2lbench.hookimpl
    def register_selectors(self, register):
        register(self._cls())


@pytest.mark.integration
def test_a_cell_whose_process_aborts_is_recorded_failed_and_the_grid_goes_on(tmp_path):
    from s2lbench.grid.experiment import parse_experiment
    from s2lbench.grid.runner import Runner
    from s2lbench.plugin_manager import Hooks, make_plugin_manager

    pm = make_plugin_manager()
    pm.register(AbortingPlugin(), name="abort-plugin")
    try:
        data = tiny_config(selectors=["native-abort", "random"], full_reference=False)
        data["targets"][0]["train"]["total_steps"] = 4
        data["evaluation"]["limit"] = 2
        # fork named: with `auto`, a process that has already trained (this one) runs cells in-process
        data["executor_options"] = {"isolate": "fork"}
        hooks = Hooks(pm)
        summary = Runner(parse_experiment(data, hooks=hooks), tmp_path, hooks=hooks).run()
    finally:
        pm.unregister(name="abort-plugin")
    assert list(summary.failed) == ["t__native-abort__20%__s0"] and summary.done == ["t__random__20%__s0"]
    reason = summary.failed["t__native-abort__20%__s0"]
    assert reason.startswith("CellProcessDied: the cell's process died of SIGABRT") and "\n" not in reason
    cell = ResultsStore(tmp_path).get_cell("t__native-abort__20%__s0")
    assert cell.status == "failed" and cell.error == reason
