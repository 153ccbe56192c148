"""Executors: local, ray and slurm (submitit) registered like plugins; options checked; shared stages computed
once under concurrency; failures, dead workers and Ctrl-C handled per cell; the output folder checked."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import pickle
import sys
import threading
import time
from pathlib import Path

import pytest

from s2lbench.errors import ConfigError
from s2lbench.executors.base import CellTask, Grid, check_shared_folder, sees_token
from s2lbench.executors.local import LocalExecutor
from s2lbench.grid.stages import StageStore, read_events

# the grids below run functions of this module in other processes, which cannot import a test module
cloudpickle = pytest.importorskip("cloudpickle")
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_ray_and_slurm_are_registered_through_entry_points_like_any_plugin():
    from s2lbench.commands.plugins import describe_registry

    executors = {e["name"]: e["plugin"] for e in describe_registry()["executors"]}
    assert executors == {"local": "local-executor", "ray": "ray-executor", "slurm": "slurm-executor"}


def test_executor_options_are_checked_against_the_executor(tmp_path):
    from test_runner import tiny_config

    from s2lbench.grid.experiment import parse_experiment

    ok = parse_experiment(tiny_config(executor="ray", executor_options={"address": "auto", "gpus_per_cell": 1}))
    assert ok.executor_options["address"] == "auto"
    with pytest.raises(ConfigError, match=r"executor_options.*gpus_per_cel"):
        parse_experiment(tiny_config(executor="ray", executor_options={"gpus_per_cel": 1}))
    with pytest.raises(ConfigError, match="cpus_per_task"):
        parse_experiment(tiny_config(executor="slurm", executor_options={"cpus_per_task": 0}))
    with pytest.raises(ConfigError, match=r"unknown key 'executor_options.address' \(valid keys: isolate\)"):
        parse_experiment(tiny_config(executor_options={"address": "auto"}))  # local's one option: cell isolation


def test_the_runner_pickles_without_its_caches_and_rebuilds_its_plugins(tmp_path):
    from test_runner import tiny_config

    from s2lbench.grid.experiment import parse_experiment
    from s2lbench.grid.runner import Runner

    runner = Runner(parse_experiment(tiny_config()), tmp_path)
    _ = runner.pool
    clone = pickle.loads(pickle.dumps(runner._run_one)).__self__
    assert clone._pool is None and clone.out == runner.out and clone.config == runner.config
    assert clone.hooks.executor("ray").name == "ray"
    assert len(clone.pool) == len(runner.pool)  # the gym stage is found finished, not rebuilt
    assert [e["status"] for e in read_events(tmp_path / "stages")] == ["computed", "cached"]


def test_a_damaged_event_log_is_named_by_file_and_line(tmp_path):
    from s2lbench.errors import DataError

    store = StageStore(tmp_path / "stages")
    store.run("probe", {"n": 1}, lambda folder: {})
    store.run("probe", {"n": 1}, lambda folder: {})
    with store.events.open("a") as f:
        f.write('{"stage": "probe", "status": \n')  # a run killed mid-write on a filesystem without O_APPEND
    with pytest.raises(DataError, match=r"events\.jsonl.*line 3.*malformed JSON"):
        read_events(tmp_path / "stages")


# --- the stage store under concurrency ---------------------------------------------------------------


def _stage_worker(root: str, marks: str, start: float) -> None:
    def compute(folder: Path) -> dict:
        with open(marks, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # long enough that every other worker arrives while this one computes
        (folder / "out.txt").write_text("whole")
        return {"by": os.getpid()}

    time.sleep(max(0.0, start - time.time()))
    result = StageStore(Path(root)).run("proxy", {"pool": "p", "train": {"steps": 3}}, compute)
    assert (result.path / "out.txt").read_text() == "whole"
    with open(marks + ".seen", "a") as f:
        f.write(json.dumps(result.meta) + "\n")


def test_a_shared_stage_is_computed_once_while_concurrent_cells_wait(tmp_path):
    marks = tmp_path / "computed"
    start = time.time() + 1.0
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_stage_worker, args=(str(tmp_path / "stages"), str(marks), start)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert len(marks.read_text().split()) == 1  # one process computed it
    seen = [json.loads(line) for line in (tmp_path / "computed.seen").read_text().splitlines()]
    assert len(seen) == 4 and len({s["by"] for s in seen}) == 1  # every waiter read the one result
    statuses = sorted(e["status"] for e in read_events(tmp_path / "stages"))
    assert statuses == ["cached", "cached", "cached", "computed"]


# --- the shared-folder check ---------------------------------------------------------------------------


def test_the_output_folder_must_be_visible_from_every_node(tmp_path):
    def probe(path, token):
        assert sees_token(path, token) and not sees_token(path + ".other", token)
        return [("10.0.0.1", True), ("10.0.0.2", False)]

    with pytest.raises(ConfigError, match=r"not visible from worker node\(s\) 10.0.0.2.*NFS"):
        check_shared_folder(tmp_path, probe)
    assert not list(tmp_path.glob(".shared-fs-check-*"))  # the token is cleaned up
    check_shared_folder(tmp_path, lambda path, token: [("here", sees_token(path, token))])


# --- a fake grid: functions that log what ran, in which order ------------------------------------------


def _log(folder: str, what: str) -> None:
    with open(Path(folder) / "log.jsonl", "a") as f:
        f.write(json.dumps({"what": what, "pid": os.getpid(), "t": time.time()}) + "\n")


class FakeGrid:
    """Picklable grid functions: cells named ``fail*`` return an error, ``die*`` kill their process,
    ``slow*`` sleep long (to be interrupted), the rest succeed."""

    def __init__(self, folder: Path):
        self.folder = str(folder)

    def shared(self):
        time.sleep(0.3)
        _log(self.folder, "shared")
        return None

    def cpu_stages(self, cell_id):
        _log(self.folder, f"select {cell_id}")
        return None

    def run_cell(self, cell_id):
        if cell_id.startswith("slow"):
            time.sleep(60)
        _log(self.folder, f"cell {cell_id}")
        if cell_id.startswith("die"):
            os._exit(3)
        return "RuntimeError: planted" if cell_id.startswith("fail") else None

    def grid(self, ids):
        return Grid([CellTask(i, i) for i in ids], self.run_cell, shared=self.shared, cpu_stages=self.cpu_stages)

    def events(self):
        path = Path(self.folder) / "log.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _check_order(events, ids):
    names = [e["what"] for e in events]
    assert names.count("shared") == 1 and names[0] == "shared"  # shared once, before any cell work
    for i in ids:
        if f"select {i}" in names and f"cell {i}" in names:
            assert names.index(f"select {i}") < names.index(f"cell {i}")


def test_local_executor_runs_cells_in_turn(tmp_path):
    fake = FakeGrid(tmp_path)
    results = dict(LocalExecutor().run(fake.grid(["a", "fail-b"])))
    assert results == {"a": None, "fail-b": "RuntimeError: planted"}


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    from ray import cloudpickle as ray_cloudpickle  # Ray pickles with its own copy

    ray_cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def test_ray_runs_shared_stages_once_first_and_records_each_failure(ray_cluster, tmp_path):
    from s2lbench.executors.ray_executor import RayExecutor, RayOptions

    fake = FakeGrid(tmp_path)
    ids = ["a", "b", "fail-c", "die-d"]
    results = dict(RayExecutor(RayOptions(torch_threads=1), tmp_path).run(fake.grid(ids)))
    assert results["a"] is None and results["b"] is None and results["fail-c"] == "RuntimeError: planted"
    assert results["die-d"].startswith("ray: ")  # the worker died: an error, not a hang or a crash
    events = fake.events()
    _check_order(events, ids)
    assert len({e["pid"] for e in events if e["what"].startswith("cell")}) >= 2  # two workers
    assert ray_cluster.is_initialized()  # a Ray it did not start is left running


def test_ctrl_c_cancels_the_unfinished_ray_tasks(ray_cluster, tmp_path):
    import _thread
    import signal

    from s2lbench.executors.ray_executor import RayExecutor

    fake = FakeGrid(tmp_path)
    finished = []
    # a shell that starts pytest in the background (`cmd &` without job control) hands it SIGINT ignored, and
    # then interrupt_main does nothing; Ctrl-C is what this test is about, so give it Python's own handler
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(10.0, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            for cell_id, error in RayExecutor(None, tmp_path).run(fake.grid(["quick", "slow-1", "slow-2"])):
                finished.append((cell_id, error))
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert finished == [("quick", None)]
    time.sleep(1.0)
    assert not any(e["what"].startswith("cell slow") for e in fake.events())  # cancelled, not left to finish


def test_slurm_executor_under_submitits_local_backend(tmp_path):
    pytest.importorskip("submitit")
    from s2lbench.executors.slurm_executor import SlurmExecutor, SlurmOptions

    fake = FakeGrid(tmp_path)
    ids = ["a", "fail-b", "die-c"]
    options = SlurmOptions(cluster="local", max_parallel=2, poll_seconds=0.2, timeout_min=5)
    results = dict(SlurmExecutor(options, tmp_path).run(fake.grid(ids)))
    assert results["a"] is None and results["fail-b"] == "RuntimeError: planted"
    assert results["die-c"].startswith("slurm job ")
    names = [e["what"] for e in fake.events()]
    assert names[0] == "shared" and names.count("shared") == 1
    for cell_id in ids:  # each cell's job logs, linked beside the others under <out>/slurm/
        assert (tmp_path / "slurm" / f"{cell_id}.out").resolve().exists()


def test_slurm_without_sbatch_says_how_to_run_locally(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    from s2lbench.executors.slurm_executor import SlurmExecutor

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="cluster: local"):
        list(SlurmExecutor(None, tmp_path).run(FakeGrid(tmp_path).grid(["a"])))


# --- a real grid: local and ray give the same subsets and scores; status watches the ray run -----------


@pytest.mark.integration
def test_a_grid_under_ray_matches_local_and_status_watches_it(tmp_path):
    pytest.importorskip("ray")
    import subprocess

    import torch
    import yaml
    from test_runner import tiny_config

    from s2lbench.cli import main
    from s2lbench.grid.experiment import parse_experiment
    from s2lbench.grid.runner import Runner
    from s2lbench.report.regression import snapshot

    data = tiny_config()
    data["targets"][0]["train"]["total_steps"] = 4
    assert Runner(parse_experiment(data), tmp_path / "local").run().ok
    threads = torch.get_num_threads()  # CPU bits depend on the thread count: give the workers this run's
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(data))
    out = tmp_path / "ray"
    proc = subprocess.Popen([sys.executable, "-c", "from s2lbench.cli import main; raise SystemExit(main())",
                             "run", str(tmp_path / "grid.yaml"), "--out", str(out), "--set", "executor=ray",
                             "--set", "executor_options.num_cpus=2", "--set", f"executor_options.torch_threads={threads}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: set[str] = set()
    while proc.poll() is None:
        if (out / "results.sqlite").exists():
            try:
                with open(os.devnull, "w") as sink:
                    stdout, sys.stdout = sys.stdout, sink
                    try:
                        assert main(["status", str(out)]) == 0
                    finally:
                        sys.stdout = stdout
                from s2lbench.results.store import ResultsStore

                store = ResultsStore(out)
                seen |= {store.shown_status(c) for c in store.cells()}
            except Exception as e:  # noqa: BLE001 - a status that fails while the run goes on is the bug
                proc.kill()
                raise AssertionError(f"status failed during the run: {e}") from e
        time.sleep(0.3)
    assert proc.returncode == 0, proc.stderr.read()[-3000:]
    assert "running" in seen or "pending" in seen, seen  # it watched the run, not only its end
    local, ray = snapshot(tmp_path / "local")["cells"], snapshot(out)["cells"]
    assert all(c["status"] == "done" for c in ray.values()), ray
    assert local == ray


class _LostWorkers:
    """An executor whose workers all die before recording anything: it can only say so."""

    name = "lost"
    Options = None

    def __init__(self, options=None, out_dir=None):
        pass

    @classmethod
    def parse_options(cls, data, where="executor_options"):
        return None

    def run(self, grid):
        for task in grid.tasks:
            yield task.cell_id, "ray: WorkerCrashedError: the worker died"


class _LostPlugin:
    import s2lbench as _s2lbench

    @_s2lbench.hookimpl
    def register_executors(self, register):
        register(_LostWorkers)


def test_a_cell_whose_worker_died_is_recorded_as_failed(tmp_path):
    from test_runner import tiny_config

    from s2lbench.grid.experiment import parse_experiment
    from s2lbench.grid.runner import Runner
    from s2lbench.plugin_manager import Hooks, make_plugin_manager

    pm = make_plugin_manager()
    pm.register(_LostPlugin(), name="lost-plugin")
    hooks = Hooks(pm)
    config = parse_experiment(tiny_config(executor="lost", selectors=["random"]), hooks=hooks)
    summary = Runner(config, tmp_path, hooks=hooks).run()
    assert len(summary.failed) == 2 and not summary.done
    from s2lbench.results.store import ResultsStore

    cells = ResultsStore(tmp_path).cells()
    assert {c.status for c in cells} == {"failed"} and all("worker died" in c.error for c in cells)
