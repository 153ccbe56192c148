"""Prompt templates: the compact ``qa`` template of gym v2 reaches the tokenizer, training, signals and evaluation."""

from __future__ import annotations

import json

import pytest

from s2lbench.errors import ConfigError
from s2lbench.gym import GymConfig, build_gym
from s2lbench.gym.evaluators import gym_evaluators
from s2lbench.pool.prompts import NEXT_PROMPT, RESPONSE_HEADERS, TEMPLATES, render_prompt

TINY_V2 = GymConfig.small(version=2, pool_size=200, test_size=4, dev_size=0)


def test_qa_template_renders_with_and_without_input():
    assert render_prompt("qa", "What is 2 + 3?") == "Q: What is 2 + 3?\nA:"
    assert render_prompt("qa", "Add them.", "2 and 3") == "Q: Add them.\n2 and 3\nA:"
    for name in TEMPLATES:  # every template says where its response starts and what starts the next prompt
        assert render_prompt(name, "x").endswith(RESPONSE_HEADERS[name])
        assert NEXT_PROMPT[name].strip() in TEMPLATES[name][0]
    with pytest.raises(ConfigError, match="nope"):
        render_prompt("nope", "x")


def test_gym_template_is_validated_and_part_of_the_stage_key():
    with pytest.raises(ConfigError, match="prompt template 'nope'"):
        GymConfig(version=2, template="nope")
    assert TINY_V2.prompt_template == "qa" and GymConfig.small().prompt_template == "alpaca"
    assert TINY_V2.stage_spec()["template"] == "qa"
    assert GymConfig.small(version=2, template="alpaca").stage_spec() != GymConfig.small(version=2).stage_spec()
    assert "template" not in GymConfig.small().stage_spec()  # v1 keeps the key it had before templates
    assert GymConfig.small(template="qa").stage_spec()["template"] == "qa"


@pytest.mark.parametrize("version, template, stop", [(2, "qa", "\nQ:"), (1, "alpaca", "### Instruction")])
def test_built_gym_declares_its_template_and_its_evaluators_prompt_with_it(tmp_path, version, template, stop):
    from transformers import AutoTokenizer

    from s2lbench.gym.evaluators import GymEvaluator, GymOptions

    config = TINY_V2 if version == 2 else GymConfig.small(pool_size=200, test_size=4)
    paths = build_gym(tmp_path / "g", config)
    manifest = json.loads(paths.manifest.read_text())
    assert manifest["template"] == template
    for evaluator, _ in gym_evaluators(paths.root).values():
        assert (evaluator.template, evaluator.stop) == (template, (stop,))
    loaded = GymEvaluator(GymOptions(set="gym_arith"))  # the runner's path: options, then load
    item = loaded.load(paths.root)[0]
    assert loaded.prompt(item) == render_prompt(template, item.instruction) and loaded.stop == (stop,)
    if version == 2:
        tokenizer = AutoTokenizer.from_pretrained(str(paths.tokenizer))
        qa = len(tokenizer(render_prompt("qa", item.instruction))["input_ids"])
        alpaca = len(tokenizer(render_prompt("alpaca", item.instruction))["input_ids"])
        assert qa + 15 < alpaca  # the header the qa template drops is most of a short prompt


def test_a_gym_manifest_naming_an_unknown_template_is_refused(tmp_path):
    from s2lbench.errors import DataError

    paths = build_gym(tmp_path / "g", TINY_V2)
    manifest = json.loads(paths.manifest.read_text())
    paths.manifest.write_text(json.dumps({**manifest, "template": "chatml"}))
    with pytest.raises(DataError, match="chatml"):
        gym_evaluators(paths.root)


def test_runner_gives_training_the_gyms_template_and_refuses_another(tmp_path):
    from s2lbench.grid.experiment import parse_experiment
    from s2lbench.grid.runner import Runner

    data = {
        "name": "templates", "pool": {"path": "gym", "gym": {"version": 2, "pool_size": 200, "test_size": 4}},
        "proxy": {"model": "gym-proxy", "train": {"total_steps": 2}},
        "selectors": ["random"], "budgets": [0.5], "seeds": [0],
        "targets": [{"name": "t", "model": "gym-proxy", "train": {"total_steps": 2}}],
        "evaluation": {"tasks": ["gym"]},
    }
    runner = Runner(parse_experiment(data), tmp_path)
    assert runner.train_config("gym-proxy", None, {"total_steps": 2}).template == "qa"
    with pytest.raises(ConfigError, match="pool.gym.template"):
        runner.train_config("gym-proxy", None, {"template": "alpaca"})


def test_ifd_response_alone_keeps_the_qa_header():
    from s2lbench.gym.tokenizer import train_tokenizer
    from s2lbench.pool.encoding import encode_example
    from s2lbench.pool.records import SFTExample
    from s2lbench.signals.scoring import encode_response_alone

    tokenizer = train_tokenizer([render_prompt("qa", "What is 2 + 3?"), "Add 2 and 3. The answer is 5."], 300)
    example = SFTExample(id="a", instruction="What is 2 + 3?", output="The answer is 5.")
    encoded = encode_example(tokenizer, example, 64, "qa")
    alone = encode_response_alone(tokenizer, encoded, "qa")
    header = tokenizer("A:", add_special_tokens=False)["input_ids"]
    response = [t for t in encoded.labels if t != -100]
    assert alone.input_ids == header + response and alone.labels[len(header):] == response


def test_cli_builds_a_gym_with_a_chosen_template_and_train_prompts_as_the_gym_does(tmp_path):
    from s2lbench.cli import main

    assert main(["gym", "build", "--out", str(tmp_path / "a"), "--small", "--version", "2", "--size", "200",
                 "--test-size", "4", "--dev-size", "0", "--template", "alpaca"]) == 0
    assert json.loads((tmp_path / "a" / "gym.json").read_text())["template"] == "alpaca"
    assert main(["gym", "build", "--out", str(tmp_path / "q"), "--small", "--version", "2", "--size", "200",
                 "--test-size", "4", "--dev-size", "0"]) == 0
    common = ["--model", "gym-proxy", "--steps", "1", "--batch-size", "4", "--max-length", "64"]
    assert main(["train", "--pool", str(tmp_path / "q" / "pool.jsonl"), "--out", str(tmp_path / "r"), *common]) == 0
    assert json.loads((tmp_path / "r" / "run.json").read_text())["config"]["template"] == "qa"
    assert main(["train", "--pool", str(tmp_path / "q" / "pool.jsonl"), "--out", str(tmp_path / "r2"),
                 "--template", "alpaca", *common]) == 0  # an explicit choice wins
    assert json.loads((tmp_path / "r2" / "run.json").read_text())["config"]["template"] == "alpaca"
