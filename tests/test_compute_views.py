"""Compute-aware views: score against total recorded FLOPs, and the compute-matched random baseline."""

from __future__ import annotations

import dataclasses
import json

import pytest
from test_leaderboard_store import BUDGET, POOL, add_cell

from s2lbench.cli import main
from s2lbench.common.fingerprint import config_hash
from s2lbench.errors import ConfigError, DataError
from s2lbench.grid.experiment import SelectorSpec, cell_hash, parse_experiment
from s2lbench.report.compute import compute_series, total_flops
from s2lbench.results.store import Cell, ResultsStore
from s2lbench.training.stage import compute_matched_config
from s2lbench.training.trainer import TrainConfig

SELECTION = {"proxy_flops": 4e12, "signals_flops": 1e12}


def _store(folder):
    store = ResultsStore(folder)
    for seed, (acc, finetune) in enumerate([(0.5, 1e12), (0.7, 3e12)]):
        add_cell(store, "s2l", BUDGET, seed, {"gsm8k": acc, "svamp": acc},
                 cost={**SELECTION, "selection_seconds": 1.0, "finetune_flops": finetune})
        add_cell(store, "random", BUDGET, seed, {"gsm8k": 0.4, "svamp": 0.4}, cost={"finetune_flops": 2e12})
    add_cell(store, "full", POOL, 0, {"gsm8k": 0.9, "svamp": 0.9}, cost={"finetune_flops": 2e13})
    add_cell(store, "old", BUDGET, 0, {"gsm8k": 0.1, "svamp": 0.1}, cost={"proxy_flops": 1e12})  # no fine-tune FLOPs
    return store


def test_a_cells_total_is_its_recorded_selection_and_finetune_flops():
    cell = Cell("c", "e", "s2l", 1, 0.1, 0, "t", cost={**SELECTION, "selection_seconds": 9.0, "finetune_flops": 2.0})
    assert total_flops(cell) == 5e12 + 2.0
    assert total_flops(dataclasses.replace(cell, cost={"proxy_flops": 1e12})) is None


def test_compute_series_places_each_row_at_its_mean_total(tmp_path):
    (panel,) = compute_series(_store(tmp_path / "run"))
    points = {(p.selector, p.budget): p for p in panel.points}
    assert set(points) == {("s2l", BUDGET), ("random", BUDGET), ("full", POOL)}  # "old" recorded no fine-tune
    assert points[("s2l", BUDGET)].flops == pytest.approx(5e12 + 2e12)
    assert points[("s2l", BUDGET)].mean == pytest.approx(60.0) and points[("s2l", BUDGET)].std > 0
    assert points[("random", BUDGET)].flops == pytest.approx(2e12)
    assert points[("full", POOL)].is_reference and not points[("s2l", BUDGET)].is_reference
    with pytest.raises(DataError, match="no column"):
        compute_series(tmp_path / "run", column="nope")


def test_leaderboard_plots_draw_the_compute_figure(tmp_path):
    _store(tmp_path / "run")
    assert main(["leaderboard", str(tmp_path / "run"), "--resamples", "100", "--plots", str(tmp_path / "plots")]) == 0
    assert (tmp_path / "plots" / "compute.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_signal_pass_flops_are_read_from_what_the_pass_records(tmp_path):
    from s2lbench.signals.stage import signal_costs

    manifest = {"cost": {"base_seconds": 2.0, "flops_estimate": 3.5e11, "extra_seconds": {}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert signal_costs({"seconds": 2.0, "flops": 1e9}, tmp_path)[0] == {"signals_seconds": 2.0, "signals_flops": 1e9}
    # a stage cached when its meta read a key the manifest never had: the manifest beside it has the figure
    assert signal_costs({"seconds": 2.0, "flops": 0.0}, tmp_path)[0]["signals_flops"] == 3.5e11
    assert signal_costs({"seconds": 2.0, "flops": 0.0})[0]["signals_flops"] == 0.0


# --------------------------------------------------------------------------------------- compute matched
def test_compute_matched_adds_the_steps_the_selection_flops_buy():
    config = TrainConfig(model="m", schedule="steps", total_steps=100)
    matched, record = compute_matched_config(config, 400, selection_flops=2.55e8, fixed_flops=1e9)
    assert matched.total_steps == 125 and matched.schedule == "steps"  # 1e7 FLOPs per step, 25.5 -> 25 whole
    assert record == {"matched_selection_flops": 2.55e8, "matched_flops_per_step": 1e7,
                      "matched_base_steps": 100.0, "matched_extra_steps": 25.0}
    assert dataclasses.replace(matched, total_steps=100) == config  # nothing else of the schedule changes
    # an epochs schedule: 2 epochs of 400 rows in batches of 8 = 100 steps, then the extra ones
    by_epochs = TrainConfig(model="m", schedule="epochs", epochs=2.0, batch_size=8)
    assert compute_matched_config(by_epochs, 400, 5e8, 1e9)[0].total_steps == 150
    assert compute_matched_config(config, 400, 0.0, 1e9)[0].total_steps == 100
    with pytest.raises(ConfigError, match="recorded no FLOPs"):
        compute_matched_config(config, 400, 1e9, 0.0)


GRID = {"name": "g", "targets": [{"name": "t", "model": "gym-proxy", "train": {"total_steps": 5}}],
        "proxy": {"train": {"total_steps": 5}}, "budgets": [0.1],
        "evaluation": {"tasks": ["gym"]}}


@pytest.mark.parametrize("selectors,error", [
    (["random", {"name": "random", "label": "random-cm", "compute_matched": "s2lx"}], "'s2lx' is not another row"),
    ([{"name": "random", "compute_matched": "random"}], "is not another row"),
    (["s2l", {"name": "random", "compute_matched": "s2l"},
      {"name": "random", "label": "r2", "compute_matched": "random"}], "itself compute-matched"),
])
def test_compute_matched_must_name_another_selecting_row(selectors, error):
    with pytest.raises(ConfigError, match=error):
        parse_experiment({**GRID, "selectors": selectors})


def test_rows_without_the_option_keep_their_cell_hashes():
    config = parse_experiment({**GRID, "selectors": ["s2l", {"name": "random", "compute_matched": "s2l"}]})
    plain, matched = config.selectors
    target = config.targets[0]
    old_spec = {"name": "s2l", "label": None, "options": {}}  # how a selector was hashed before the option
    spec = {"pool": dataclasses.asdict(config.pool), "proxy": dataclasses.asdict(config.proxy),
            "signals": dataclasses.asdict(config.signals),
            "evaluation": {k: v for k, v in dataclasses.asdict(config.evaluation).items() if k != "in_domain"},
            "selector": old_spec, "budget": 60, "seed": 0, "target": dataclasses.asdict(target)}
    assert cell_hash(config, plain, 60, 0, target) == config_hash(spec)
    assert matched.hashed()["compute_matched"] == "s2l"
    unmatched = SelectorSpec("random")
    assert cell_hash(config, matched, 60, 0, target) != cell_hash(config, unmatched, 60, 0, target)


TRAIN = {"schedule": "steps", "batch_size": 16, "learning_rate": 3.0e-3, "max_length": 128, "logging_steps": 5}


@pytest.mark.integration
def test_the_runner_gives_the_compute_matched_row_the_extra_steps_and_stores_regimes(tmp_path):
    from s2lbench.grid.runner import Runner

    config = parse_experiment({
        "name": "cm", "pool": {"path": "gym", "gym": {"pool_size": 300, "test_size": 6, "seed": 0}},
        "proxy": {"model": "gym-proxy", "train": {**TRAIN, "total_steps": 12, "n_checkpoints": 3}},
        "signals": {"options": {"max_length": 128}},
        "selectors": [{"name": "s2l", "options": {"n_clusters": 4}}, "random",
                      {"name": "random", "label": "random-cm", "compute_matched": "s2l"}],
        "budgets": [0.2], "seeds": [0], "full_reference": False,
        "targets": [{"name": "t", "model": "gym-proxy", "train": {**TRAIN, "total_steps": 8}}],
        "evaluation": {"tasks": ["gym-gym_arith"], "limit": 4,
                       "generation": {"backend": "transformers", "batch_size": 8, "max_new_tokens": 16}}})
    runner = Runner(config, tmp_path)
    summary = runner.run()
    assert summary.ok, summary.failed
    cells = {c.selector: c for c in ResultsStore(tmp_path).cells()}
    s2l, plain, matched = cells["s2l"], cells["random"], cells["random-cm"]
    assert plain.selected_ids_hash == matched.selected_ids_hash  # the same random subset, trained longer
    assert s2l.cost["signals_flops"] > 0 and s2l.cost["proxy_flops"] > 0  # the pass's FLOPs reach the cell
    selection = s2l.cost["proxy_flops"] + s2l.cost["signals_flops"]
    per_step = plain.cost["finetune_flops"] / 8
    assert matched.cost["matched_selection_flops"] == pytest.approx(selection)
    assert matched.cost["matched_flops_per_step"] == pytest.approx(per_step)
    extra = int(selection // per_step)
    assert extra > 0 and matched.cost["matched_extra_steps"] == extra
    # FLOPs count the tokens each step saw (batches differ in length), so the ratio holds to well under a step
    steps = 8 + extra
    assert matched.cost["finetune_flops"] == pytest.approx(plain.cost["finetune_flops"] * steps / 8,
                                                           rel=0.1 / steps)
    assert plain.model_fingerprint != matched.model_fingerprint
    # the regime each selection ran in is stored with its cell (S2L's own report; the source mix for all)
    assert s2l.regime["selector"]["facts"]["K"] == 4 and "source_mix" in s2l.regime
    # random reports no regime of its own: its source mix, and on the gym its planted-defect share
    assert set(plain.regime) == {"source_mix", "source_mix_tv", "planted_defects"}


def test_the_dry_run_estimate_charges_a_matched_row_its_selection_flops(tmp_path):
    from test_preflight import _config

    from s2lbench.grid.cost import estimate
    from s2lbench.grid.preflight import preflight
    from s2lbench.grid.runner import Runner

    def stages(**changes):
        runner = Runner(parse_experiment(_config(tmp_path, **changes)), tmp_path / "out")
        return {s.stage: s for s in estimate(runner, preflight(runner)).stages}

    plain = stages(selectors=["random", "s2l", {"name": "random", "label": "r2"}])
    matched = stages(selectors=["random", "s2l", {"name": "random", "label": "r2", "compute_matched": "s2l"}])
    selection = plain["proxy training"].flops + plain["signal pass"].flops
    assert matched["fine-tune t"].flops == pytest.approx(plain["fine-tune t"].flops + selection)
