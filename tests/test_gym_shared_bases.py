"""Gym v2's shared tokenizer (one per version and template, whatever the pool) and the committed bases it makes
possible: matched by recipe, corpus and tokenizer, copied in by the runner instead of pre-training."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

from s2lbench.common.typed import from_dict
from s2lbench.errors import ConfigError
from s2lbench.gym import GymConfig, build_gym
from s2lbench.gym import bases as gym_bases
from s2lbench.gym.bases import BaseRecipe, committed_base, corpus_fingerprint, pretrain_base
from s2lbench.gym.corpus import CorpusConfig, pretraining_corpus

SHARED = GymConfig(version=2, pool_size=200, test_size=5, dev_size=0, tokenizer="shared")
TINY_RECIPE = BaseRecipe(steps=2, batch_size=2, block_size=32, corpus=CorpusConfig(documents=30))


@pytest.fixture(scope="module")
def shared_gym(tmp_path_factory):
    return build_gym(tmp_path_factory.mktemp("shared") / "g", SHARED)


def test_the_shared_tokenizer_is_the_same_for_every_pool_and_the_pool_one_is_not(shared_gym, tmp_path):
    other = build_gym(tmp_path / "other", replace(SHARED, pool_size=300, seed=5, level_weights=(1.0, 0.0, 0.0)))
    own = build_gym(tmp_path / "own", replace(SHARED, tokenizer=None))
    shared_json = (shared_gym.tokenizer / "tokenizer.json").read_bytes()
    assert (other.tokenizer / "tokenizer.json").read_bytes() == shared_json
    assert (own.tokenizer / "tokenizer.json").read_bytes() != shared_json
    manifest = json.loads(shared_gym.manifest.read_text())
    assert manifest["tokenizer"]["source"] == "shared" and manifest["config"]["tokenizer"] == "shared"
    assert "source" not in json.loads(own.manifest.read_text())["tokenizer"]


def test_an_unset_tokenizer_keeps_older_stage_keys_and_a_bad_one_is_named():
    assert "tokenizer" not in GymConfig(version=2).stage_spec()
    assert GymConfig(version=2, tokenizer="shared").stage_spec()["tokenizer"] == "shared"
    assert GymConfig(version=2, tokenizer="pool").stage_spec() != GymConfig(version=2).stage_spec()
    with pytest.raises(ConfigError, match="tokenizer: 'sharde'.*pool, shared"):
        GymConfig(version=2, tokenizer="sharde")
    with pytest.raises(ConfigError, match="needs version 2"):
        GymConfig(tokenizer="shared")


def _fake_committed(root, model, tokenizer_dir, recipe, folder_name=None):
    from s2lbench.common.fingerprint import file_fingerprint

    folder = root / (folder_name or model)
    folder.mkdir(parents=True)
    (folder / "base.json").write_text(json.dumps({
        "model": model, "recipe_hash": recipe.key,
        "tokenizer_fingerprint": file_fingerprint(tokenizer_dir / "tokenizer.json"),
        "corpus_fingerprint": corpus_fingerprint(pretraining_corpus(recipe.corpus))}))
    return folder


def test_a_committed_base_is_used_only_for_its_recipe_corpus_and_tokenizer(shared_gym, tmp_path):
    folder = _fake_committed(tmp_path / "pretrained", "gym-proxy", shared_gym.tokenizer, TINY_RECIPE)
    assert committed_base("gym-proxy", shared_gym.tokenizer, TINY_RECIPE, root=tmp_path / "pretrained") == folder
    assert committed_base("gym-target-l", shared_gym.tokenizer, TINY_RECIPE, root=tmp_path / "pretrained") is None
    longer = replace(TINY_RECIPE, steps=3)
    assert committed_base("gym-proxy", shared_gym.tokenizer, longer, root=tmp_path / "pretrained") is None
    other_corpus = replace(TINY_RECIPE, corpus=CorpusConfig(documents=31))
    assert committed_base("gym-proxy", shared_gym.tokenizer, other_corpus, root=tmp_path / "pretrained") is None
    compact = replace(TINY_RECIPE, corpus=CorpusConfig(documents=30, compact_facts=True))
    assert committed_base("gym-proxy", shared_gym.tokenizer, compact, root=tmp_path / "pretrained") is None
    own = build_gym(tmp_path / "own", replace(SHARED, tokenizer=None))
    assert committed_base("gym-proxy", own.tokenizer, TINY_RECIPE, root=tmp_path / "pretrained") is None


def test_one_model_can_have_a_committed_base_per_recipe_and_each_recipe_finds_its_own(shared_gym, tmp_path):
    root = tmp_path / "pretrained"
    longer = replace(TINY_RECIPE, steps=3, corpus=CorpusConfig(documents=40))
    short = _fake_committed(root, "gym-proxy", shared_gym.tokenizer, TINY_RECIPE)
    long = _fake_committed(root, "gym-proxy", shared_gym.tokenizer, longer, folder_name="gym-proxy-long")
    _fake_committed(root, "gym-target-l", shared_gym.tokenizer, longer, folder_name="a-target")
    assert committed_base("gym-proxy", shared_gym.tokenizer, TINY_RECIPE, root=root) == short
    assert committed_base("gym-proxy", shared_gym.tokenizer, longer, root=root) == long
    assert committed_base("gym-proxy", shared_gym.tokenizer, replace(longer, steps=4), root=root) is None


def _committed_config_recipes() -> list[dict]:
    """The base recipes the committed v2 configs with a shared tokenizer ask for (the demo's, the grids', and the
    archived grids', whose committed bases keep them reproducible without pre-training)."""
    from conftest import REPO

    from s2lbench.grid.experiment import load_experiment

    recipes = []
    configs = [REPO / "s2lbench" / "demo.yaml", *sorted((REPO / "configs").glob("*.yaml")),
               *sorted((REPO / "leaderboards" / "archive").glob("*/*.yaml"))]
    for path in configs:
        gym = load_experiment(path).pool.gym
        if gym and gym.get("version") == 2 and gym.get("tokenizer") == "shared":
            recipes.append(from_dict(GymConfig, gym, where=str(path)).base.spec())
    return recipes


def test_every_committed_base_fits_the_shared_v2_tokenizer_and_a_recipe_a_committed_config_uses(tmp_path):
    committed = sorted(p for p in gym_bases.PRETRAINED_DIR.iterdir() if (p / "base.json").is_file())
    metas = {folder.name: json.loads((folder / "base.json").read_text()) for folder in committed}
    assert {"gym-proxy", "gym-target-l"} <= {meta["model"] for meta in metas.values()}
    used = _committed_config_recipes()
    gym = build_gym(tmp_path / "g", replace(SHARED, level_weights=(0.5, 0.5, 0.0)))
    for folder in committed:
        meta = metas[folder.name]
        recipe = from_dict(BaseRecipe, meta["recipe"], where=f"{folder.name}/base.json")
        assert committed_base(meta["model"], gym.tokenizer, recipe) == folder, folder.name
        assert meta["recipe"] in used, f"{folder.name}: no committed config pre-trains with its recipe"


@pytest.mark.integration
def test_runs_of_different_shared_gyms_copy_one_committed_base_and_never_pretrain(shared_gym, tmp_path, monkeypatch):
    from s2lbench.grid.experiment import parse_experiment
    from s2lbench.grid.runner import Runner
    from s2lbench.grid.stages import read_events

    root = tmp_path / "pretrained"
    made = pretrain_base("gym-proxy", shared_gym.tokenizer, root / "gym-proxy", TINY_RECIPE)
    monkeypatch.setattr(gym_bases, "PRETRAINED_DIR", root)

    def refuse(*args, **kwargs):
        raise AssertionError("pre-trained although a committed base matches")

    monkeypatch.setattr(gym_bases, "pretrain_base", refuse)
    base = {"steps": 2, "batch_size": 2, "block_size": 32, "corpus": {"documents": 30}}
    train = {"schedule": "steps", "batch_size": 8, "learning_rate": 1e-3, "max_length": 128, "total_steps": 2,
             "n_checkpoints": 1}
    out = tmp_path / "run"
    for pool_size in (200, 260):
        data = {
            "name": "shared-bases",
            "pool": {"path": "gym", "gym": {"version": 2, "pool_size": pool_size, "test_size": 4, "dev_size": 0,
                                            "tokenizer": "shared", "base": base}},
            "proxy": {"model": "gym-proxy", "train": train},  # not trained: random reads no signal
            "selectors": ["random"], "budgets": [0.5], "seeds": [0], "full_reference": False,
            "targets": [{"name": "t", "model": "gym-base:gym-proxy", "train": train}],
            "evaluation": {"tasks": ["gym"], "limit": 2,
                           "generation": {"backend": "transformers", "batch_size": 4, "max_new_tokens": 8}},
        }
        summary = Runner(parse_experiment(data), out).run()
        assert summary.ok, summary.failed
    events = [e for e in read_events(out / "stages") if e["stage"] == "gym-base"]
    assert [e["status"] for e in events] == ["computed", "cached"]  # two pools, one base stage
    stage = next((out / "stages" / "gym-base").glob("*/stage.json"))
    assert json.loads(stage.read_text())["source"] == "committed"
    copied = stage.parent / "base"
    assert (copied / "model.safetensors").read_bytes() == (made / "model.safetensors").read_bytes()
    shutil.rmtree(root)  # the run's copy stands alone
    assert (copied / "config.json").is_file()
