"""The preflight (every input checked before the first stage, and by the dry run) and the dry run's offline
cost estimate."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import yaml

from s2lbench.cli import main
from s2lbench.errors import ConfigError
from s2lbench.grid.cost import GPUS, KNOWN_MODELS, estimate, model_size
from s2lbench.grid.experiment import parse_experiment
from s2lbench.grid.preflight import PreflightError, check_model_name, preflight
from s2lbench.grid.runner import Runner

TRAIN = {"schedule": "steps", "total_steps": 10, "batch_size": 4, "grad_accum": 2, "max_length": 64,
         "n_checkpoints": 1}


@pytest.fixture(autouse=True)
def _online_by_default(monkeypatch):
    """Hub ids are checked for form only unless HF_HUB_OFFLINE is set; tests that need it set it."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def _pool(tmp_path, n=40):
    path = tmp_path / "pool.jsonl"
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": str(i), "instruction": "q" * 40, "output": "a" * 80, "source": "s"}) + "\n")
    return path


def _config(tmp_path, **changes):
    data = {"name": "pf", "pool": {"path": str(_pool(tmp_path))},
            "proxy": {"model": "EleutherAI/pythia-70m-deduped", "train": {**TRAIN, "n_checkpoints": 4}},
            "selectors": ["random", "s2l"], "budgets": [10], "seeds": [0],
            "targets": [{"name": "t", "model": "EleutherAI/pythia-410m", "train": TRAIN}],
            "evaluation": {"tasks": ["gsm8k"], "data_dir": str(tmp_path / "data")}}
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "gsm8k.jsonl").write_text(
        "".join(json.dumps({"question": f"What is {i}+1?", "answer": f"#### {i + 1}"}) + "\n" for i in range(5)))
    data.update(changes)
    return data


def _problems(tmp_path, data, only=None):
    return preflight(Runner(parse_experiment(data), tmp_path / "out"), only).problems


def test_a_clean_config_passes_and_counts_what_it_read(tmp_path):
    report = preflight(Runner(parse_experiment(_config(tmp_path)), tmp_path / "out"))
    assert report.ok, report.problems
    assert report.pool_rows == 40 and report.tasks[0].items == 5
    assert len(report.cell_ids) == 3


def test_a_missing_evaluation_file_is_named(tmp_path, capsys):
    data = _config(tmp_path)
    (tmp_path / "data" / "gsm8k.jsonl").unlink()
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path), "--dry-run", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "gsm8k.jsonl" in err and "dry run FAILED" in err


def test_budget_larger_than_the_pool_is_a_budget_error(tmp_path):
    problems = _problems(tmp_path, _config(tmp_path, budgets=[5000]))
    assert problems == ["budgets[0]: budget 5000 is larger than the pool (40 examples)"]


def test_only_unknown_executor_duplicate_seeds(tmp_path):
    problems = _problems(tmp_path, _config(tmp_path, seeds=[0, 0], executor="slurmm"), only=["nosuchcell", "random"])
    assert any("--only 'nosuchcell' matches no cell" in p for p in problems)
    assert not any("'random'" in p for p in problems)
    assert any(p.startswith("executor:") and "slurmm" in p for p in problems)
    assert any("seeds: 0 appears twice" in p for p in problems)


def test_byo_trajectories_of_the_wrong_shape(tmp_path):
    np.save(tmp_path / "traj.npy", np.ones((39, 5), dtype=np.float32))
    data = _config(tmp_path, proxy={"model": "EleutherAI/pythia-70m-deduped", "train": TRAIN,
                                    "trajectories": str(tmp_path / "traj.npy")})
    problems = _problems(tmp_path, data)
    assert problems == [f"proxy.trajectories: {tmp_path / 'traj.npy'}: 39 rows but the pool has 40 examples "
                        "(one row per pool example, in pool order)"]
    np.save(tmp_path / "traj.npy", np.ones((40, 5), dtype=np.float32))
    assert _problems(tmp_path, data) == []


def test_model_names_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert check_model_name("EleutherAI/pythia-410m", "m") is None  # online: the form is all we check
    assert "no such file or folder" in check_model_name("./models/mine", "m")
    assert "neither a local path nor a hub id" in check_model_name("bad id!", "m")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    message = check_model_name("EleutherAI/pythia-410m", "targets[0].model")
    assert "not in the local hub cache" in message and "HF_HUB_OFFLINE" in message
    snapshot = tmp_path / "hub" / "models--EleutherAI--pythia-410m" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    assert check_model_name("EleutherAI/pythia-410m", "m") is None
    (snapshot / "config.json").write_text(json.dumps({"hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 100,
                                                      "intermediate_size": 256, "tie_word_embeddings": False}))
    size = model_size("EleutherAI/pythia-410m")
    assert size.source == "config.json in the hub cache"
    assert size.params == 2 * (4 * 64 * 64 + 2 * 64 * 256) + 2 * 100 * 64


def test_a_failed_preflight_stops_the_run_before_any_stage(tmp_path):
    from s2lbench.commands.run import run_experiment

    data = _config(tmp_path, budgets=[5000])
    with pytest.raises(PreflightError, match="budgets\\[0\\]"):
        run_experiment(parse_experiment(data), tmp_path / "out")
    assert not any((tmp_path / "out" / "stages").glob("*/*"))


def test_cost_estimate_arithmetic(tmp_path):
    runner = Runner(parse_experiment(_config(tmp_path)), tmp_path / "out")
    report = preflight(runner)
    est = estimate(runner, report, gpu="H100-80GB", mfu=0.5)
    stages = {s.stage: s for s in est.stages}
    per_example = (40 + 80) / 4 + 30  # characters / 4 + template
    tokens = 10 * 4 * 2 * min(per_example, 64)
    n70, n410 = KNOWN_MODELS["EleutherAI/pythia-70m-deduped"], KNOWN_MODELS["EleutherAI/pythia-410m"]
    assert stages["proxy training"].tokens == tokens
    assert stages["proxy training"].flops == 6 * n70 * tokens
    assert stages["proxy training"].disk_bytes == 4 * n70 * 4  # 4 checkpoints of fp32 weights
    assert stages["signal pass"].flops == 2 * n70 * 4 * 40 * min(per_example, 64)
    finetune = stages["fine-tune t"]
    assert finetune.count == 3 and finetune.flops == 3 * 6 * n410 * tokens
    assert finetune.gpu_hours == pytest.approx(finetune.flops / (GPUS["H100-80GB"] * 0.5) / 3600)
    assert est.total().flops == pytest.approx(sum(s.flops for s in est.stages))


def test_cost_estimate_counts_one_proxy_per_proxy_seed(tmp_path):
    def estimate_of(data, out):
        runner = Runner(parse_experiment(data), out)
        return estimate(runner, preflight(runner))

    one = estimate_of(_config(tmp_path), tmp_path / "a")
    two = estimate_of(_config(tmp_path, selectors=["random", "s2l", {"name": "s2l", "label": "s2l-p1",
                                                                    "proxy_seed": 1}]), tmp_path / "b")
    for stage in ("proxy training", "signal pass"):
        a, b = ({s.stage: s for s in est.stages}[stage] for est in (one, two))
        assert b.count == 2 * a.count and b.flops == 2 * a.flops and b.disk_bytes == 2 * a.disk_bytes


def test_a_proxy_seed_cannot_apply_to_a_given_proxy(tmp_path):
    data = _config(tmp_path, selectors=[{"name": "s2l", "proxy_seed": 1}])
    data["proxy"]["trajectories"] = str(tmp_path / "m.npy")
    with pytest.raises(ConfigError, match="proxy_seed"):
        parse_experiment(data)


@pytest.mark.parametrize("content, says", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"num_hidden_layers": 2, "vocab_size": 100}), "'hidden_size' (or its alias) is None"),
    (json.dumps({"hidden_size": "64", "num_hidden_layers": 2}), "'hidden_size' (or its alias) is '64'"),
    (json.dumps({"hidden_size": 64, "num_hidden_layers": 2, "vocab_size": -5}), "'vocab_size' is -5"),
])
def test_a_malformed_model_config_is_named_in_the_estimate(tmp_path, content, says):
    from s2lbench.errors import DataError

    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text(content)
    with pytest.raises(DataError, match=re.escape(says)) as raised:
        model_size(str(model))
    assert str(model / "config.json") in str(raised.value)
    data = _config(tmp_path, targets=[{"name": "t", "model": str(model), "train": TRAIN}])
    runner = Runner(parse_experiment(data), tmp_path / "out")
    est = estimate(runner, preflight(runner))
    named = [a for a in est.assumptions if a.startswith(f"{model}: size unknown")]
    assert len(named) == 1 and str(model / "config.json") in named[0] and says in named[0], est.assumptions
    assert "\n" not in named[0]
    assert not any(s.stage == "fine-tune t" for s in est.stages)
    assert any(s.stage == "proxy training" for s in est.stages)  # the rest of the estimate is still there


def test_paper_config_dry_run_prints_the_estimate_offline(capsys, monkeypatch, tmp_path):
    from conftest import REPO, find_shared_data

    data_dir = find_shared_data()
    if data_dir is None:
        pytest.skip("needs the shared data folder for the six test sets")
    monkeypatch.setenv("S2LBENCH_DATA_DIR", str(data_dir))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert main(["run", str(REPO / "configs/paper/mathinstruct.yaml"), "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for stage in ("proxy training", "signal pass", "fine-tune pythia-410m", "fine-tune phi-2",
                  "generation phi-2", "total"):
        assert stage in out
    assert "GPU-days on one A100-80GB" in out and "built-in table" in out and "dry run OK" in out
    # offline, with nothing in the hub cache, the same dry run still prints the estimate, then names each id
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    assert main(["run", str(REPO / "configs/paper/mathinstruct.yaml"), "--dry-run", "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "GPU-days" in captured.out
    assert "microsoft/phi-2 is not in the local hub cache" in captured.err


def test_mimic_config_checks_its_file_and_evaluates_on_it(capsys, tmp_path):
    from conftest import REPO

    assert main(["run", str(REPO / "configs/paper/mimic.yaml"), "--dry-run", "--out", str(tmp_path / "a")]) == 2
    assert "mimic_radiology.csv" in capsys.readouterr().err
    reports = tmp_path / "mimic.csv"
    reports.write_text("ROW_ID,findings,impression\n" + "".join(
        f"{i},Lungs clear {i}.,No acute process {i}.\n" for i in range(700)))
    assert main(["run", str(REPO / "configs/paper/mimic.yaml"), "--dry-run", "--out", str(tmp_path / "b"),
                 "--set", f"pool.path={reports}"]) == 0
    assert "dry run OK" in capsys.readouterr().out
    runner = Runner(parse_experiment(yaml.safe_load((REPO / "configs/paper/mimic.yaml").read_text())
                                     | {"pool": {"path": str(reports), "clinical": "mimic"}}), tmp_path / "c")
    [plan] = [p for p in runner.tasks()]
    assert plan.data_dir == reports  # the evaluator reads the file, not the data folder


def test_in_domain_is_a_per_task_config_value(tmp_path):
    data = _config(tmp_path)
    runner = Runner(parse_experiment(data), tmp_path / "out")
    assert runner.tasks()[0].in_domain is True  # the paper's default for GSM8K
    data["evaluation"]["in_domain"] = {"gsm8k": False}
    runner = Runner(parse_experiment(data), tmp_path / "out2")
    assert runner.tasks()[0].in_domain is False


def test_offline_real_config_passes_once_its_models_exist(tmp_path, capsys, monkeypatch):
    from conftest import REPO, find_shared_data

    from s2lbench.generation.tiny import build_tiny_model

    data_dir = find_shared_data()
    if data_dir is None:
        pytest.skip("needs the shared data folder")
    monkeypatch.setenv("S2LBENCH_DATA_DIR", str(data_dir))
    data = yaml.safe_load((REPO / "configs/offline_real.yaml").read_text())
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path), "--dry-run", "--out", str(tmp_path / "a")]) == 2
    assert "SmolLM2-135M-Instruct.gguf: no such file or folder" in capsys.readouterr().err
    model = build_tiny_model(tmp_path / "tiny")
    data["proxy"]["model"] = str(model)
    data["targets"][0]["model"] = str(shutil.copytree(model, tmp_path / "tiny2"))
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path), "--dry-run", "--out", str(tmp_path / "b")]) == 0
    assert "config.json in" in capsys.readouterr().out


def test_hybrid_runs_through_the_runner_with_one_cache_variant_per_pass(tmp_path, monkeypatch):
    import s2lbench.generation as generation

    data = _config(tmp_path)
    data["evaluation"]["task_options"] = {"gsm8k": {"prompting": "hybrid"}}
    runner = Runner(parse_experiment(data), tmp_path / "out")
    calls = []

    def fake(model_dir, task, prompts, config, cache_dir, variant=""):
        calls.append((variant, len(prompts), config.max_new_tokens))
        if variant == "hybrid":  # programs: items 0-2 print their answer, 3-4 print nothing
            return [f"print({i} + 1)" if i < 3 else "y = 2\nprint()" for i in range(len(prompts))]
        return ["The answer is 4.", "The answer is 0."]

    monkeypatch.setattr(generation, "cached_generate", fake)
    rows, _ = runner.evaluate(runner.cells()[0], tmp_path / "model")
    assert calls == [("hybrid", 5, 1500), ("hybrid-backup", 2, 1500)]
    [row] = rows
    assert row.task == "gsm8k" and row.value == 0.8 and row.in_domain is True  # 3 programs + backup "4" right


def test_the_in_domain_key_leaves_existing_hashes_alone(tmp_path):
    import dataclasses

    from s2lbench.common.fingerprint import config_hash

    runner = Runner(parse_experiment(_config(tmp_path)), tmp_path / "out")
    as_dict = dataclasses.asdict(runner.config)
    del as_dict["evaluation"]["in_domain"]  # what the config hashed to before the key existed
    del as_dict["executor_options"]  # (likewise for #19's executor options)
    for selector in as_dict["selectors"]:
        del selector["compute_matched"]  # (and #36's compute-matched rows, while unset)
        del selector["proxy_seed"], selector["seeds"]  # (and the rows' proxy seeds and seeds)
    del as_dict["references"]  # (and #37's reference rows, hashed only when some are asked for)
    del as_dict["pool_base"]  # (and the pool-base recipe, hashed only when given)
    assert runner.config_hash == config_hash(as_dict)


GYM = {"name": "gympf", "pool": {"path": "gym", "gym": {"pool_size": 300, "test_size": 12, "seed": 0}},
       "proxy": {"model": "gym-proxy", "train": {**TRAIN, "n_checkpoints": 2}},
       "selectors": ["random"], "budgets": [0.2], "seeds": [0],
       "targets": [{"name": "t", "model": "gym-proxy", "train": TRAIN}],
       "evaluation": {"tasks": ["gym"], "limit": 5, "generation": {"backend": "transformers", "max_new_tokens": 24}}}


def test_a_gym_dry_run_sizes_the_pool_and_every_test_set_it_will_generate_for(tmp_path):
    runner = Runner(parse_experiment(json.loads(json.dumps(GYM))), tmp_path / "out")
    report = preflight(runner)
    assert report.ok, report.problems
    pool = runner.pool
    assert report.pool_rows == 300 and report.pool_chars == pytest.approx(
        sum(len(r.instruction) + len(r.input) + len(r.output) for r in pool) / 300)
    built = json.loads((runner.gym_dir / "gym.json").read_text())["test_sets"]
    assert len(built) >= 6 and [t.name for t in report.tasks] == [f"gym-{s['name']}" for s in built]
    assert {t.items for t in report.tasks} == {5} and all(t.prompt_chars > 10 for t in report.tasks)
    stages = {s.stage: s for s in estimate(runner, report).stages}
    n_cells = 2  # random at 20 % and the full reference
    prompt_tokens = sum(t.prompt_chars for t in report.tasks) / 4 * 5
    assert stages["generation t"].tokens == pytest.approx((prompt_tokens + len(report.tasks) * 5 * 24) * n_cells)
    assert "not readable here" not in " ".join(estimate(runner, report).assumptions)


def test_a_gym_dry_run_names_an_unknown_gym_set_or_option(tmp_path):
    data = json.loads(json.dumps(GYM))
    data["evaluation"]["tasks"] = ["gym-nope"]
    report = preflight(Runner(parse_experiment(data), tmp_path / "a"))
    assert any("gym-nope" in p and "gym-gym_arith" in p for p in report.problems), report.problems
    data["evaluation"]["tasks"] = ["gym"]
    data["evaluation"]["task_options"] = {"gym": {"grading": "nope"}}
    report = preflight(Runner(parse_experiment(data), tmp_path / "b"))
    assert any("task_options.gym" in p and "'nope' is not one of" in p for p in report.problems), report.problems


def test_a_dry_run_with_only_lists_and_estimates_the_cells_a_real_run_would_run(tmp_path, capsys):
    """--only in a dry run names the cells it picks (here the full reference, not random's cell) and the
    estimate counts their fine-tunes and generations only."""
    config = tmp_path / "gym.yaml"
    config.write_text(yaml.safe_dump(GYM))
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--only", "full", "--dry-run"]) == 0
    out = capsys.readouterr().out
    picked = re.search(r"--only full: (\d+) of them would run: (.*)", out)
    assert picked and picked.group(1) == "1" and "full" in picked.group(2) and "random" not in picked.group(2)
    assert re.search(r"fine-tune \S+\s+1\s", out) and re.search(r"generation \S+\s+1\s", out), out


def test_the_estimate_under_only_is_the_chosen_cells_share_of_the_grid(tmp_path):
    runner = Runner(parse_experiment(_config(tmp_path)), tmp_path / "out")
    report = preflight(runner)
    whole = {s.stage: s for s in estimate(runner, report).stages}
    some = {s.stage: s for s in estimate(runner, report, only=["full"]).stages}
    assert whole["fine-tune t"].count == 3 and some["fine-tune t"].count == 1
    assert some["fine-tune t"].flops == pytest.approx(whole["fine-tune t"].flops / 3)  # fixed steps per cell
    assert some["generation t"].tokens == pytest.approx(whole["generation t"].tokens / 3)
    assert some["proxy training"] == whole["proxy training"]  # shared stages run whatever --only picks
    none = {s.stage for s in estimate(runner, report, only=["nothing-matches"]).stages}
    assert not {"fine-tune t", "generation t"} & none
