"""``pool-base:NAME`` models: a tiny config pre-trained on the training pool's inputs (never an output, never a
test report), a stage computed once and shared, keyed on its recipe; the cells that start from it say so."""

from __future__ import annotations

import json

import pytest
from test_references import EPOCHS, _reports_dir

from s2lbench.errors import ConfigError
from s2lbench.grid.experiment import cell_hash, experiment_hash, parse_experiment
from s2lbench.grid.pool_base import PoolBaseRecipe, pool_base_name, pool_documents
from s2lbench.grid.preflight import check_model_name
from s2lbench.grid.runner import Runner

TINY_RECIPE = {"steps": 3, "batch_size": 4, "block_size": 32}


def _config(data, model="pool-base:gym-target-s", pool_base=TINY_RECIPE):
    raw = {"name": "base", "pool": {"path": "indiana", "clinical": "indiana"},
           "targets": [{"name": "t", "model": model, "tokenizer": "pool-bpe:300",
                        "train": {**EPOCHS, "epochs": 1, "batch_size": 8, "max_length": 128, "bf16": False}}],
           "proxy": {"train": EPOCHS}, "selectors": [], "budgets": [], "full_reference": True,
           "evaluation": {"tasks": ["radiology-indiana"], "data_dir": str(data),
                          "task_options": {"radiology-indiana": {"seed": 1, "test_size": 10, "bertscore": False}},
                          "generation": {"backend": "transformers", "max_new_tokens": 4}}}
    if pool_base is not None:
        raw["pool_base"] = pool_base
    return parse_experiment(raw)


def test_names_recipes_and_the_preflight():
    assert pool_base_name("pool-base:gym-target-s") == "gym-target-s" and pool_base_name("gym-target-s") is None
    assert check_model_name("pool-base:gym-target-s", "targets[0].model") is None
    assert "tiny configs" in check_model_name("pool-base:gpt2", "targets[0].model")
    with pytest.raises(ConfigError, match="steps 0 must be >= 1"):
        PoolBaseRecipe(steps=0)


def test_the_base_reads_inputs_only_and_configs_without_one_keep_their_hashes(tmp_path):
    data = _reports_dir(tmp_path)
    runner = Runner(_config(data), tmp_path / "run")
    docs = pool_documents(runner.pool)
    outputs = {ex.output for ex in runner.pool}
    assert len(docs) == len(runner.pool) and not any(d in outputs for d in docs)
    assert all(d == " ".join(ex.input.split()) for d, ex in zip(docs, runner.pool, strict=True))
    plain = _config(data, model="gym-target-s", pool_base=None)
    # a pool_base block no model uses changes nothing a config without it had
    unused = _config(data, model="gym-target-s")
    assert cell_hash(plain, None, 30, 0, plain.targets[0]) == cell_hash(unused, None, 30, 0, unused.targets[0])
    assert experiment_hash(plain) == experiment_hash(_config(data, model="gym-target-s", pool_base=None))
    # where a model starts from the base, its recipe is part of what a cell is recognised by
    a, b = _config(data), _config(data, pool_base={**TINY_RECIPE, "steps": 4})
    assert cell_hash(a, None, 30, 0, a.targets[0]) != cell_hash(b, None, 30, 0, b.targets[0])


def _stages(run, kind):
    return sorted(p for p in (run / "stages" / kind).iterdir() if not p.name.startswith("."))


def test_the_full_reference_starts_from_the_pool_base_computed_once(tmp_path):
    data = _reports_dir(tmp_path)
    run = tmp_path / "run"
    summary = Runner(_config(data), run).run()
    assert summary.ok and summary.done == ["t__full__100%__s0"], summary
    [base] = _stages(run, "pool-base")
    meta = json.loads((base / "base" / "base.json").read_text())
    assert meta["model"] == "gym-target-s" and meta["recipe"]["steps"] == 3 and meta["corpus"]["documents"] == 30
    [finetune] = _stages(run, "finetune")
    assert base.name in (finetune / "run" / "run.json").read_text()  # trained from the base's folder
    # another recipe: another base and another fine-tune; the first base is kept
    summary = Runner(_config(data, pool_base={**TINY_RECIPE, "steps": 4}), run).run()
    assert summary.ok and summary.done == ["t__full__100%__s0"]
    assert len(_stages(run, "pool-base")) == 2 and base in _stages(run, "pool-base")
    assert len(_stages(run, "finetune")) == 2
    # the cache's garbage collector keeps the base the folder's own config starts from, and only that one
    from s2lbench.grid.disk import plan_gc

    doomed = {(kind, name) for kind, name, _, _ in plan_gc(run).remove}
    assert ("pool-base", base.name) in doomed  # the first recipe's base: no longer the config's
    assert not {(k, key) for k, key in doomed if k == "pool-base"} - {("pool-base", base.name)}

