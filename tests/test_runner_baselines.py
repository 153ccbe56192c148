"""The issue-18 selectors through the runner: one tiny gym grid computes every optional signal in one pass,
keeps the proxy's Adam moments for LESS, builds the dev split, and charges each selector only what it reads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_runner import tiny_config

from s2lbench.grid.experiment import parse_experiment
from s2lbench.grid.runner import Runner
from s2lbench.gym.build import normalize_instruction
from s2lbench.results.store import ResultsStore

NEW = ["random-per-source", "longest", "k-center", "cartography", "ifd", "less", "rds"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    config = tiny_config(selectors=NEW, full_reference=False, dev={"size": 3},
                         signals={"options": {"max_length": 128, "gradients": {"dim": 64, "checkpoints": 2}}})
    config["evaluation"]["limit"] = 3
    runner = Runner(parse_experiment(config), out)
    summary = runner.run()
    assert summary.ok, summary.failed
    return out, runner


@pytest.mark.integration
def test_every_new_selector_runs_through_the_runner(finished):
    out, _ = finished
    cells = {c.selector: c for c in ResultsStore(out).cells()}
    assert set(cells) == set(NEW) and all(c.status == "done" for c in cells.values())
    assert len({c.selected_ids_hash for c in cells.values()}) == len(NEW)
    # each pays for what it reads: random-per-source nothing, ifd the response-alone pass, less the gradients
    assert "proxy_seconds" not in cells["random-per-source"].cost
    assert cells["ifd"].cost["ifd_seconds"] > 0 and "gradient_seconds" not in cells["ifd"].cost
    assert cells["less"].cost["gradient_seconds"] > 0 and "ifd_seconds" not in cells["less"].cost
    assert cells["rds"].cost["dev_embedding_seconds"] > 0
    assert "ifd_seconds" not in cells["cartography"].cost and cells["cartography"].cost["signals_seconds"] > 0


@pytest.mark.integration
def test_less_reads_adam_normalised_features_from_every_checkpoint(finished):
    out, _ = finished
    proxies = list((out / "stages" / "proxy").glob("*/run"))
    assert len(proxies) == 1
    checkpoints = sorted(proxies[0].glob("checkpoint-*"))
    assert len(checkpoints) == 3 and all((c / "adam_state.pt").exists() for c in checkpoints)
    manifests = [json.loads(p.read_text()) for p in (out / "stages" / "signals").glob("*/manifest.json")]
    assert len(manifests) == 1  # one pass for all seven selectors
    grads = manifests[0]["signals"]["gradients"]
    assert grads["normalisation"] == ["adam", "adam"] and grads["checkpoint_steps"] == [8, 12]
    assert all(lr > 0 for lr in grads["learning_rates"])


@pytest.mark.integration
def test_the_gym_dev_split_is_disjoint_from_pool_and_tests(finished):
    _, runner = finished
    dev = runner.dev_set()
    tasks = sorted(set(dev.sources))
    assert tasks == sorted(plan.name for plan in runner.tasks()) and len(dev) == 3 * len(tasks)
    taken = {normalize_instruction(ex.instruction) for ex in runner.pool}
    gym_tests = runner.gym_dir / "tests"
    for path in gym_tests.glob("*.jsonl"):
        taken |= {normalize_instruction(json.loads(line)["instruction"]) for line in path.read_text().splitlines()}
    assert not {normalize_instruction(ex.instruction) for ex in dev} & taken
    assert np.all([ex.output for ex in dev])
