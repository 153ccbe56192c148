"""Where a model trained is part of its provenance: with ``bf16: auto`` a CPU with native bf16 trains in bf16
and one without in fp32, so one seed gives different models on different machines. Each run folder, each
grid cell and each leaderboard's provenance records the environment; old stores and run folders still read."""

from __future__ import annotations

import json
import logging
import sqlite3

import pytest
import torch
from test_leaderboard_store import make_store

from s2lbench.cli import main
from s2lbench.common.provenance import training_environment
from s2lbench.gym import GymConfig, build_gym
from s2lbench.results.store import SCHEMA, Cell, ResultsStore
from s2lbench.training.trainer import TrainConfig, train, trained_environments


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def gym(tmp_path_factory):
    from s2lbench.pool.loaders import load_local

    paths = build_gym(tmp_path_factory.mktemp("gym"), GymConfig.small(pool_size=100, test_size=5))
    return load_local(paths.pool), str(paths.tokenizer)


def config(gym) -> TrainConfig:
    return TrainConfig(model="gym-proxy", tokenizer=gym[1], total_steps=4, batch_size=4, learning_rate=3e-3,
                       max_length=128, logging_steps=1, bf16=False, save_every=2, seed=7)


def test_a_run_records_the_environment_it_trained_in(gym, tmp_path):
    result = train(gym[0], config(gym), tmp_path / "run")
    environment = training_environment(False)
    assert environment["precision"] == "fp32" and environment["threads"] == torch.get_num_threads()
    assert environment["device"].startswith("cpu: ") and isinstance(environment["cpu_native_bf16"], list)
    assert result.environments == [environment]
    assert trained_environments(tmp_path / "run") == [environment]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["environments"] == [environment]


def test_a_run_resumed_elsewhere_records_both_environments_and_says_so(gym, tmp_path, caplog):
    def kill_at_2(step, checkpoint_dir):
        if step == 2:
            raise Killed

    with pytest.raises(Killed):
        train(gym[0], config(gym), tmp_path / "run", eval_hook=kill_at_2)
    started = training_environment(False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if threads > 1 else 2)  # "another machine": a different thread count
    try:
        with caplog.at_level(logging.WARNING, logger="s2lbench.training.trainer"):
            result = train(gym[0], config(gym), tmp_path / "run")
        resumed = training_environment(False)
    finally:
        torch.set_num_threads(threads)
    assert resumed != started and result.environments == [started, resumed]
    assert "resuming in a different environment" in caplog.text


def test_run_folders_written_before_environments_give_their_precision_or_nothing(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "run.json").write_text(json.dumps({"status": "finished", "bf16": True}))
    assert trained_environments(tmp_path / "old") == [{"precision": "bf16"}]
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "run.json").write_text("{not json")
    assert trained_environments(tmp_path / "broken") == []
    assert trained_environments(tmp_path / "absent") == []


def old_store(folder) -> None:
    """A results store as written before the environment column existed."""
    folder.mkdir()
    con = sqlite3.connect(folder / "results.sqlite")
    con.executescript(SCHEMA.replace("    environment TEXT,\n", ""))
    con.execute("INSERT INTO cells (cell_id, experiment, selector, budget, fraction, seed, target, status, versions, "
                "cost) VALUES ('c', 'e', 'random', 10, 0.1, 0, 't', 'done', '{}', '{}')")
    con.commit()
    con.close()


def test_a_store_written_before_environments_reads_as_it_is_and_upgrades_when_written(tmp_path):
    old_store(tmp_path / "results")
    path = tmp_path / "results" / "results.sqlite"
    before = path.read_bytes()
    (cell,) = ResultsStore(tmp_path / "results", read_only=True).cells()
    assert cell.environment == {} and path.read_bytes() == before  # read-only never writes
    store = ResultsStore(tmp_path / "results")
    store.upsert_cell(Cell("d", "e", "s2l", 10, 0.1, 0, "t", status="done",
                           environment={"finetune": [{"precision": "fp32"}]}))
    assert {c.cell_id: c.environment for c in store.cells()} == {"c": {}, "d": {"finetune": [{"precision": "fp32"}]}}


def test_the_board_lists_the_environments_and_warns_when_precisions_are_mixed(tmp_path, capsys):
    store = make_store(tmp_path / "results")
    bf16 = {"device": "cpu: AVX512", "precision": "bf16", "cpu_native_bf16": ["amx"], "threads": 2}
    fp32 = {**bf16, "precision": "fp32", "cpu_native_bf16": []}
    cells = [c for c in store.cells() if c.status == "done"]
    for i, cell in enumerate(cells[:-1]):  # the last cell: written before environments were recorded
        cell.environment = {"finetune": [bf16 if i % 2 else fp32], "proxy": [bf16]}
        store.upsert_cell(cell)
    assert main(["leaderboard", str(tmp_path / "results"), "--tables", str(tmp_path / "board")]) == 0
    warning = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warning) == 1 and "bf16 and fp32" in warning[0] and str(tmp_path / "results") in warning[0]
    recorded = json.loads((tmp_path / "board" / "provenance.json").read_text())["training_environments"]
    assert recorded["finetune"] == sorted([bf16, fp32], key=lambda e: json.dumps(e, sort_keys=True))
    assert recorded["proxy"] == [bf16] and recorded["done_cells_without_record"] == 1


def test_one_precision_gives_no_warning(tmp_path, capsys):
    store = make_store(tmp_path / "results")
    for cell in store.cells():
        cell.environment = {"finetune": [{"precision": "fp32"}]}
        store.upsert_cell(cell)
    assert main(["leaderboard", str(tmp_path / "results")]) == 0
    assert "warning" not in capsys.readouterr().err
