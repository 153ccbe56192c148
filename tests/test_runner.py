"""The runner end to end on a tiny gym grid: cells trained, evaluated, stored with provenance; reruns
recompute nothing; a failing cell is recorded while the grid goes on."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import pytest
import yaml

import s2lbench
from s2lbench.cli import main
from s2lbench.common.provenance import training_environment
from s2lbench.grid.experiment import load_experiment, parse_experiment
from s2lbench.grid.runner import Runner
from s2lbench.grid.stages import read_events
from s2lbench.plugin_manager import Hooks, make_plugin_manager
from s2lbench.results.store import Cell, ResultsStore
from s2lbench.selection import Selector
from s2lbench.training.trainer import resolve_bf16

TRAIN = {"schedule": "steps", "batch_size": 16, "learning_rate": 3.0e-3, "max_length": 128, "logging_steps": 5}

TINY = {
    "name": "tiny",
    "pool": {"path": "gym", "gym": {"pool_size": 300, "test_size": 12, "seed": 0}},
    "proxy": {"model": "gym-proxy", "train": {**TRAIN, "total_steps": 12, "n_checkpoints": 3}},
    "signals": {"options": {"max_length": 128}},
    "selectors": ["random", {"name": "s2l", "options": {"n_clusters": 4}}],
    "budgets": [0.2],
    "seeds": [0],
    "targets": [{"name": "t", "model": "gym-proxy", "train": {**TRAIN, "total_steps": 8, "n_checkpoints": 1}}],
    "evaluation": {"tasks": ["gym"], "limit": 6,
                   "generation": {"backend": "transformers", "batch_size": 16, "max_new_tokens": 24}},
}


def tiny_config(**changes):
    data = json.loads(json.dumps(TINY))
    data.update(changes)
    return data


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    summary = Runner(parse_experiment(tiny_config()), out).run()
    assert summary.ok, summary.failed
    return out


@pytest.mark.integration
def test_every_cell_is_stored_with_provenance_and_costs(finished_run):
    store = ResultsStore(finished_run)
    cells = {c.cell_id: c for c in store.cells()}
    assert set(cells) == {"t__full__100%__s0", "t__random__20%__s0", "t__s2l__20%__s0"}
    assert all(c.status == "done" for c in cells.values())
    s2l = cells["t__s2l__20%__s0"]
    assert s2l.budget == 60 and s2l.fraction == pytest.approx(0.2)
    assert s2l.selected_ids_hash and s2l.selected_ids_hash != cells["t__random__20%__s0"].selected_ids_hash
    assert s2l.pool_fingerprint and s2l.model_fingerprint and s2l.config_hash
    assert {"torch", "transformers", "s2lbench"} <= set(s2l.versions)
    # S2L paid for the proxy and the signal pass; random did not
    assert s2l.cost["proxy_flops"] > 0 and s2l.cost["signals_seconds"] > 0 and s2l.cost["finetune_flops"] > 0
    assert "proxy_flops" not in cells["t__random__20%__s0"].cost
    # where each model trained: every target here, and S2L's proxy (random's subset used no proxy)
    here = training_environment(resolve_bf16("auto"))
    assert all(c.environment["finetune"] == [here] for c in cells.values())
    assert s2l.environment["proxy"] == [here]
    assert "proxy" not in cells["t__random__20%__s0"].environment
    results = store.results("t__s2l__20%__s0")
    tasks = {r.task for r in results}
    assert len(tasks) == 6 and all(r.metric == "accuracy" and r.n == 6 for r in results)
    assert {r.in_domain for r in results} == {True, False}
    samples = store.load_samples(results[0].samples_path)
    assert len(samples) == 6 and {"prompt", "output", "extracted", "reference", "scores"} <= set(samples[0])


@pytest.mark.integration
def test_selection_diagnostics_and_selected_ids_are_written(finished_run):
    cell = json.loads((finished_run / "cells" / "t__s2l__20%__s0.json").read_text())
    diag = cell["diagnostics"]
    assert sum(diag["source_mix"].values()) == 60
    assert diag["selected_ids_hash"] == cell["cell"]["selected_ids_hash"]
    rows = (finished_run / diag["selection_dir"] / "selection.jsonl").read_text().splitlines()
    assert len(rows) == 60


@pytest.mark.integration
def test_every_gym_cell_records_the_planted_defect_share_of_its_subset(finished_run):
    """``planted_defects`` in the cell's regime: compare-subsets' shares of the ids it trained on (the full
    reference's are the pool's), beside the selection's own regime record."""
    from s2lbench.common.files import iter_jsonl
    from s2lbench.gym.defects import defect_shares, read_defects

    (gym,) = (finished_run / "stages" / "gym").glob("*/gym")
    defects, _ = read_defects(gym / "defects.json")
    kinds = sorted(set(defects.values()))
    pool_ids = {row["id"] for _, row in iter_jsonl(gym / "pool.jsonl")}
    pool_any = round(1 - defect_shares(pool_ids, defects, kinds)["clean"], 4)
    assert 0 < pool_any < 1
    for cell in ResultsStore(finished_run).cells():
        recorded = json.loads((finished_run / "cells" / f"{cell.cell_id}.json").read_text())["diagnostics"]
        if cell.selector == "full":
            ids = pool_ids
            assert set(cell.regime) == {"planted_defects"}
        else:
            ids = {row["id"] for _, row in iter_jsonl(finished_run / recorded["selection_dir"] / "selection.jsonl")}
            assert cell.regime["source_mix"] == recorded["regime"]["source_mix"]  # the selection's record, kept
        shares = defect_shares(ids, defects, kinds)
        assert cell.regime["planted_defects"] == {**{k: round(v, 4) for k, v in shares.items()},
                                                  "any": round(1 - shares["clean"], 4), "pool_any": pool_any}


@pytest.mark.integration
def test_rerun_recomputes_nothing(finished_run):
    before = read_events(finished_run / "stages")
    summary = Runner(parse_experiment(tiny_config()), finished_run).run()
    assert summary.ok and len(summary.done) == 3
    after = read_events(finished_run / "stages")[len(before):]
    assert not [e for e in after if e["status"] == "computed"]


@pytest.mark.integration
def test_each_run_is_recorded_and_the_board_sums_them_into_the_grid_wall_time(finished_run, tmp_path):
    from s2lbench.errors import DataError
    from s2lbench.results.store import read_invocations

    runs = read_invocations(finished_run)
    assert runs and runs[0]["cells"] == 3 and runs[0]["done"] == 3 and runs[0]["failed"] == 0
    assert all(r["finished"] >= r["started"] and r["wall_seconds"] >= 0 for r in runs)
    assert main(["leaderboard", str(finished_run), "--tables", str(tmp_path / "board")]) == 0
    recorded = json.loads((tmp_path / "board" / "provenance.json").read_text())
    assert recorded["grid_wall_seconds"] == pytest.approx(sum(r["wall_seconds"] for r in runs), abs=0.1)
    assert len(recorded["invocations"]) == len(runs)
    here = training_environment(resolve_bf16("auto"))
    assert recorded["training_environments"] == {"finetune": [here], "proxy": [here], "done_cells_without_record": 0}
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "invocations.jsonl").write_text(json.dumps(runs[0]) + "\n{not json\n")
    with pytest.raises(DataError, match="invocations.jsonl.*2"):
        read_invocations(broken)


@pytest.mark.integration
@pytest.mark.parametrize("how", ["moved", "shared"])
def test_stage_keys_do_not_depend_on_where_the_folder_lives(finished_run, tmp_path, how):
    """A copied/moved stage cache, or one symlinked into a new output folder, is found whole: the gym
    tokenizer's path inside the cache must not leak into the proxy, signal and fine-tune keys."""
    import shutil

    out = tmp_path / "elsewhere" / "new-run"
    out.mkdir(parents=True)
    if how == "moved":
        shutil.copytree(finished_run / "stages", out / "stages")
    else:
        (out / "stages").symlink_to((finished_run / "stages").resolve())
    before = len(read_events(out / "stages"))
    summary = Runner(parse_experiment(tiny_config()), out.resolve() if how == "moved" else out).run()
    assert summary.ok and len(summary.done) == 3
    events = read_events(out / "stages")[before:]
    assert not [e for e in events if e["status"] == "computed"], events
    assert {e["stage"] for e in events} >= {"gym", "proxy", "signals", "selection", "finetune"}


@pytest.mark.integration
def test_a_new_budget_reuses_the_proxy_and_signals(finished_run):
    before = len(read_events(finished_run / "stages"))
    summary = Runner(parse_experiment(tiny_config(budgets=[0.2, 0.1], selectors=["random"])), finished_run).run()
    assert summary.ok
    computed = {e["stage"] for e in read_events(finished_run / "stages")[before:] if e["status"] == "computed"}
    assert computed == {"selection", "finetune"}


@pytest.mark.integration
def test_a_row_with_a_proxy_seed_trains_a_second_proxy_and_selects_from_its_signals(finished_run):
    selectors = [{"name": "s2l", "options": {"n_clusters": 4}},
                 {"name": "s2l", "label": "s2l-proxy1", "options": {"n_clusters": 4}, "proxy_seed": 1}]
    config = parse_experiment(tiny_config(selectors=selectors))
    # a row without proxy_seed keeps the cell hash it had before the field existed
    runner = Runner(config, finished_run)
    before_hash = ResultsStore(finished_run).get_cell("t__s2l__20%__s0").config_hash
    assert runner._cell_hash(next(c for c in runner.cells() if c.cell_id == "t__s2l__20%__s0")) == before_hash
    before = len(read_events(finished_run / "stages"))
    summary = runner.run()
    assert summary.ok, summary.failed
    events = read_events(finished_run / "stages")[before:]
    computed = [e["stage"] for e in events if e["status"] == "computed"]
    assert sorted(computed) == ["finetune", "proxy", "selection", "signals"]  # only the new row's stages
    store = ResultsStore(finished_run)
    first, second = store.get_cell("t__s2l__20%__s0"), store.get_cell("t__s2l-proxy1__20%__s0")
    assert first.selected_ids_hash != second.selected_ids_hash
    both = [json.loads((finished_run / "cells" / f"{c}.json").read_text())["diagnostics"]["selection_dir"]
            for c in ("t__s2l__20%__s0", "t__s2l-proxy1__20%__s0")]
    assert both[0] != both[1]


class BoomSelector(Selector):
    name = "boom"

    def select(self, ctx):
        raise RuntimeError("this selector always fails")


class BoomPlugin:
    @s2lbench.hookimpl
    def register_selectors(self, register):
        register(BoomSelector)


@pytest.mark.integration
def test_select_only_selects_every_subset_and_a_later_run_fine_tunes_on_them(tmp_path, capsys):
    """``run --select-only``: every cell's subset, no fine-tune and no cell stored; its time counts in the
    invocation log; the run that follows reads the same selections (and recomputes none)."""
    from s2lbench.results.store import read_invocations

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config()))
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--select-only"]) == 0
    assert "2 subsets selected, 0 failed" in capsys.readouterr().out
    stages = out / "stages"
    events = read_events(stages)
    assert {e["stage"] for e in events if e["status"] == "computed"} >= {"selection", "proxy", "signals"}
    assert not (stages / "finetune").exists() and not ResultsStore(out).cells()
    (invocation,) = read_invocations(out)
    assert invocation["select_only"] and invocation["cells"] == 2 and invocation["done"] == 2
    selections = sorted(p.name for p in (stages / "selection").iterdir() if p.is_dir())
    assert len(selections) == 2

    summary = Runner(parse_experiment(tiny_config()), out).run()
    assert summary.ok and len(summary.done) == 3
    after = read_events(stages)[len(events):]
    assert [e for e in after if e["stage"] == "selection"] and \
        all(e["status"] == "cached" for e in after if e["stage"] in ("selection", "proxy", "signals"))
    assert sorted(p.name for p in (stages / "selection").iterdir() if p.is_dir()) == selections


@pytest.mark.integration
def test_failing_cell_is_recorded_and_the_grid_goes_on(tmp_path, capsys):
    pm = make_plugin_manager()
    pm.register(BoomPlugin(), name="boom-plugin")
    try:
        data = tiny_config(selectors=["boom", "random"], full_reference=False)
        data["targets"][0]["train"]["total_steps"] = 4
        hooks = Hooks(pm)
        summary = Runner(parse_experiment(data, hooks=hooks), tmp_path, hooks=hooks).run()
    finally:
        pm.unregister(name="boom-plugin")
    assert list(summary.failed) == ["t__boom__20%__s0"] and "always fails" in summary.failed["t__boom__20%__s0"]
    assert summary.done == ["t__random__20%__s0"]
    assert main(["status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 done, 0 running, 0 interrupted, 1 failed, 0 pending" in out and "RuntimeError: this selector always fails" in out


class FirstRowsSelector(Selector):
    name = "first-rows"

    def select(self, ctx):
        return list(range(ctx.budget))


class LastRowsSelector(FirstRowsSelector):
    version = 2  # the same name, new picks: what a fixed selector looks like to a run folder

    def select(self, ctx):
        return list(range(len(ctx.pool) - ctx.budget, len(ctx.pool)))


def _run_with(selector_cls, out):
    class Plugin:
        @s2lbench.hookimpl
        def register_selectors(self, register):
            register(selector_cls)

    pm = make_plugin_manager()
    pm.register(Plugin(), name="versioned-plugin")
    try:
        data = tiny_config(selectors=["first-rows"], full_reference=False)
        data["targets"][0]["train"]["total_steps"] = 4
        hooks = Hooks(pm)
        summary = Runner(parse_experiment(data, hooks=hooks), out, hooks=hooks).run()
    finally:
        pm.unregister(name="versioned-plugin")
    assert summary.ok, summary.failed
    return ResultsStore(out).get_cell(summary.done[0])


@pytest.mark.integration
def test_a_selector_whose_version_changed_is_reselected_not_read_from_the_cache(tmp_path):
    first = _run_with(FirstRowsSelector, tmp_path)
    specs = [json.loads(p.read_text()) for p in (tmp_path / "stages" / "selection").glob("*/spec.json")]
    assert len(specs) == 1 and "selector_version" not in specs[0]  # version 1: keys as they always were
    before = len(read_events(tmp_path / "stages"))
    again = _run_with(FirstRowsSelector, tmp_path)
    assert not [e for e in read_events(tmp_path / "stages")[before:] if e["status"] == "computed"]
    assert again.config_hash == first.config_hash

    before = len(read_events(tmp_path / "stages"))
    changed = _run_with(LastRowsSelector, tmp_path)
    computed = {e["stage"] for e in read_events(tmp_path / "stages")[before:] if e["status"] == "computed"}
    assert computed == {"selection", "finetune"}
    assert changed.config_hash != first.config_hash and changed.selected_ids_hash != first.selected_ids_hash
    specs = [json.loads(p.read_text()) for p in (tmp_path / "stages" / "selection").glob("*/spec.json")]
    assert sorted(s.get("selector_version", 1) for s in specs) == [1, 2]


def test_status_tells_a_live_cell_from_an_interrupted_one(tmp_path, capsys):
    store = ResultsStore(tmp_path)
    for cid in ("alive", "killed", "waiting"):
        store.upsert_cell(Cell(cid, "x", "random", 10, 0.1, 0, "t"))
    store.set_status("alive", "running")
    store.set_status("killed", "running")
    with store.cell_lock("alive"):
        assert main(["status", str(tmp_path)]) == 0
        assert main(["status", str(tmp_path), "--json"]) == 0
    text, listing = capsys.readouterr().out.split("\n[", 1)
    assert "0 done, 1 running, 1 interrupted, 0 failed, 1 pending" in text and "rerun the same" in text
    assert {c["cell_id"]: c["status"] for c in json.loads("[" + listing)} == \
        {"alive": "running", "killed": "interrupted", "waiting": "pending"}
    assert store.shown_status(store.get_cell("alive")) == "interrupted"  # the lock went with its holder


@pytest.mark.integration
def test_a_cell_another_process_holds_is_skipped_not_rerun(tmp_path):
    config = parse_experiment(tiny_config(selectors=["random"], full_reference=False))
    runner = Runner(config, tmp_path)
    (busy,) = [c.cell_id for c in runner.cells()]
    with runner.store.cell_lock(busy):
        summary = runner.run()
    assert summary.skipped == [busy] and not summary.done and not summary.failed
    assert runner.store.get_cell(busy).status == "pending"
    assert not (tmp_path / "stages" / "finetune").exists()


def test_store_survives_concurrent_writers(tmp_path):
    import multiprocessing as mp

    procs = [mp.get_context("spawn").Process(target=_write_cells, args=(str(tmp_path), w)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = ResultsStore(tmp_path)
    assert len(store.cells()) == 100 and len(store.results()) == 100
    with sqlite3.connect(tmp_path / "results.sqlite") as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _write_cells(folder: str, worker: int) -> None:
    from s2lbench.results.store import Cell, ResultRow, ResultsStore

    store = ResultsStore(folder)
    for i in range(50):
        cell_id = f"w{worker}-c{i}"
        store.upsert_cell(Cell(cell_id, "x", "random", 10, 0.1, i, "t"))
        store.add_results([ResultRow(cell_id, "task", "accuracy", i / 50, True)])
        store.set_status(cell_id, "done")


# the paper configs and offline_real need inputs from elsewhere (hub models, MIMIC, GGUF files): their dry
# runs are tested with those inputs in tests/test_preflight.py
@pytest.mark.parametrize("config", ["configs/gym.yaml", "configs/gym-large.yaml", "configs/gym-transfer.yaml",
                                    "leaderboards/archive/gym-v1/gym.yaml",
                                    "leaderboards/archive/gym-v2-900/gym.yaml",
                                    "leaderboards/archive/gym-v2-900/gym-transfer.yaml",
                                    "leaderboards/archive/gym-v2-long/gym.yaml",
                                    "leaderboards/archive/gym-v2-long/gym-transfer.yaml",
                                    "leaderboards/archive/gym-v2-compact-8000/gym.yaml",
                                    "leaderboards/archive/gym-v2-compact-8000/gym-transfer.yaml",
                                    "leaderboards/archive/gym-v1/s2l-sources/gym-s2l-sources.yaml",
                                    "leaderboards/archive/regression-v1/regression.yaml", "configs/regression.yaml",
                                    "leaderboards/archive/demo-v2-default/demo.yaml"])
def test_shipped_configs_pass_a_dry_run_offline(config, tmp_path, capsys, monkeypatch):
    from conftest import REPO

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["run", str(REPO / config), "--dry-run", "--out", str(tmp_path)]) == 0
    assert "dry run OK" in capsys.readouterr().out


def test_config_errors_name_the_key(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(tiny_config(budgest=[0.1])))
    assert main(["run", str(path), "--dry-run"]) == 2
    assert "unknown key 'budgest' (did you mean 'budgets'?)" in capsys.readouterr().err
    path.write_text(yaml.safe_dump(tiny_config()))
    assert main(["run", str(path), "--dry-run", "--set", "proxy.train.totl_steps=5"]) == 2
    assert "proxy.train.totl_steps" in capsys.readouterr().err
    assert main(["run", str(path), "--dry-run", "--set", "selectors=[s2lx]"]) == 2
    assert "did you mean 's2l'" in capsys.readouterr().err


def test_the_embedded_demo_config_is_the_grid_the_issue_names():
    from importlib.resources import files

    data = yaml.safe_load(files("s2lbench").joinpath("demo.yaml").read_text())
    config = parse_experiment(data, origin="demo")
    rows = [s.row for s in config.selectors]
    assert {"s2l", "random"} <= set(rows) and len(rows) >= 3
    assert config.full_reference and config.pool.path == "gym" and config.evaluation.tasks == ["gym"]


@pytest.mark.parametrize("config_path", ["s2lbench/demo.yaml", "configs/gym.yaml", "configs/gym-transfer.yaml",
                                         "configs/gym-large.yaml"])
def test_the_demo_and_the_gym_grids_never_pretrain_a_base_on_a_cold_machine(config_path, tmp_path):
    """Every ``gym-base:`` model the demo and the v2 grids name has a committed base that fits its gym (shared
    tokenizer, recipe, corpus), so a newcomer's first run copies bases instead of spending minutes pre-training
    them, and a grid's wall time is its fine-tunes."""
    from conftest import REPO

    from s2lbench.common.typed import from_dict
    from s2lbench.gym import GymConfig, build_gym
    from s2lbench.gym.bases import base_model_name, committed_base

    config = load_experiment(REPO / config_path)
    gym_config = from_dict(GymConfig, config.pool.gym, where="pool.gym")
    assert gym_config.version == 2 and gym_config.tokenizer == "shared"
    models = [config.proxy.model] + [t.model for t in config.targets]
    bases = [base_model_name(m) for m in models]
    assert all(bases), models
    gym = build_gym(tmp_path / "g", dataclasses.replace(gym_config, pool_size=200, test_size=2, dev_size=0))
    for name in bases:
        assert committed_base(name, gym.tokenizer, gym_config.base) is not None, name


def test_the_gym_grids_hold_what_issue_15_asks():
    """configs/gym.yaml: >= 8 selector families (S2L and random among them) x 2 budgets x 3 seeds plus the
    full reference on its largest target; configs/gym-large.yaml: every selector the package registers."""
    from conftest import REPO

    from s2lbench.plugin_manager import get_hooks

    grid = load_experiment(REPO / "configs" / "gym.yaml")
    rows = {s.name for s in grid.selectors}
    assert {"s2l", "random"} <= rows and len(rows) >= 8
    assert len(grid.budgets) == 2 and len(grid.seeds) == 3 and grid.full_reference
    shipped = {name for name, r in get_hooks().selectors().items()
               if r.plugin in {ep.name for ep in _package_entry_points()}}
    large = load_experiment(REPO / "configs" / "gym-large.yaml")
    assert len(shipped) >= 13 and shipped <= {s.name for s in large.selectors}, shipped


@pytest.mark.parametrize("config_path", ["configs/gym.yaml", "configs/gym-transfer.yaml", "configs/gym-large.yaml",
                                         "configs/regression.yaml"])
def test_the_gym_grids_train_in_the_precision_they_were_calibrated_in(config_path):
    """The grids' recipe was calibrated in fp32; with ``bf16: auto`` a CPU with native bf16 (AMX, AVX512-BF16)
    autocasts to bf16 and one without trains in fp32, so one config would train two precisions across machines
    (docs/gym.md, "The compact-facts grid"). Every training run of a grid, the proxy's included, pins fp32, so every
    CPU trains the recipe that was calibrated and boards from different machines stay comparable."""
    from conftest import REPO

    config = load_experiment(REPO / config_path)
    precisions = [config.proxy.train.get("bf16")] + [t.train.get("bf16") for t in config.targets]
    assert precisions and all(p is False for p in precisions), precisions


def test_the_transfer_and_large_grids_train_the_grids_pool_and_recipe():
    """configs/gym-transfer.yaml shares configs/gym.yaml's caches and gym-large.yaml extends it: both must build the
    same gym and fine-tune every target, and the proxy, with the recipe the grid was calibrated with. A change to one
    config alone (a pool size, a learning rate) would silently retrain everything and mix two recipes in one board."""
    from conftest import REPO

    grid = load_experiment(REPO / "configs" / "gym.yaml")
    (recipe,) = [t.train for t in grid.targets]
    for other in (load_experiment(REPO / "configs" / name) for name in ("gym-transfer.yaml", "gym-large.yaml")):
        assert other.pool.gym == grid.pool.gym, other.name
        assert {t.name for t in grid.targets} <= {t.name for t in other.targets}, other.name
        for target in other.targets:
            assert target.train == recipe, (other.name, target.name)
        ignore = {"n_checkpoints"}  # gym-large keeps 12 proxy checkpoints, as the paper
        assert ({k: v for k, v in other.proxy.train.items() if k not in ignore}
                == {k: v for k, v in grid.proxy.train.items() if k not in ignore}), other.name


def _package_entry_points():
    from importlib.metadata import entry_points

    return [ep for ep in entry_points(group="s2lbench") if ep.value.startswith("s2lbench.")]


def test_an_interrupted_run_still_records_its_wall_time(tmp_path):
    """Ctrl-C (or a scheduler's SIGTERM) part-way through a grid: the invocation line is still written, with
    what stopped it, so a grid finished by resuming sums every part of its wall time."""
    from s2lbench.results.store import read_invocations

    # cells in this process (not one child each): the test counts the calls in its own memory
    runner = Runner(parse_experiment(tiny_config(selectors=["random"], executor_options={"isolate": "none"})), tmp_path)
    calls = []

    def first_cell_then_ctrl_c(cell):
        calls.append(cell.cell_id)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return None

    runner._run_one = first_cell_then_ctrl_c  # the grid's cells, without training anything
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    (line,) = read_invocations(tmp_path)
    assert line["stopped_by"] == "KeyboardInterrupt" and line["cells"] == 2 and line["wall_seconds"] >= 0
    assert calls == ["t__full__100%__s0", "t__random__20%__s0"]


def test_sigterm_ends_a_run_through_its_finally_blocks():
    import os
    import signal

    from s2lbench.api.grid import sigterm_as_exit

    before = signal.getsignal(signal.SIGTERM)
    cleaned = []
    with pytest.raises(SystemExit) as stopped:
        with sigterm_as_exit():
            try:
                os.kill(os.getpid(), signal.SIGTERM)  # the handler raises at the next bytecode
            finally:
                cleaned.append(True)
    assert stopped.value.code == 128 + signal.SIGTERM and cleaned == [True]
    assert signal.getsignal(signal.SIGTERM) is before  # the caller's handler is back
