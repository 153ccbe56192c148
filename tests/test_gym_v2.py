"""Gym versions: v1 reproduces bit for bit; v2's worked steps, sources, test and dev sets; its corpus and bases."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from s2lbench.common.fingerprint import config_hash
from s2lbench.errors import ConfigError
from s2lbench.gym import GymConfig, build_gym, generate_pool, generate_test_sets
from s2lbench.gym import tasks_v2 as t
from s2lbench.gym.build import generate_dev_sets, normalize_instruction, tokenizer_corpus
from s2lbench.gym.corpus import CorpusConfig, pretraining_corpus

V2 = GymConfig.small(version=2)
FINAL = re.compile(r"The answer is (-?\d+)\.$")


@pytest.fixture(scope="module")
def v2_pool():
    return generate_pool(V2)


def test_v1_is_unchanged_by_the_versioned_design():
    # fingerprints of GymConfig.small() as built before versions existed (main at 78bfbca)
    pool, _ = generate_pool(GymConfig.small())
    assert pool.fingerprint() == "cef6d6207e4f9ceb"
    assert config_hash(generate_test_sets(GymConfig.small(), pool)) == "fdfa3eb73221654a"


def test_v1_keeps_its_stage_key_and_has_no_dev_sets_unless_asked():
    from dataclasses import asdict

    v1 = GymConfig.small()
    legacy = {k: v for k, v in asdict(v1).items() if k not in ("version", "dev_size", "base", "template", "tokenizer")}
    assert v1.stage_spec() == legacy and v1.dev_rows == 0
    assert GymConfig.small(dev_size=50).stage_spec()["dev_size"] == 50 and V2.dev_rows == 100
    assert V2.stage_spec()["version"] == 2 and "base" not in V2.stage_spec()


def test_unknown_version_is_refused():
    with pytest.raises(ConfigError, match="version"):
        GymConfig(version=3)


@pytest.mark.parametrize("a,b", [(347, 285), (999, 1), (5, 7), (100, 100), (9, 0)])
def test_v2_addition_steps_read_back_the_sum(a, b):
    lines = t.addition_steps(a, b)
    assert lines[-1] == "Digits " + " ".join(str(a + b)) + "."
    assert not any("+0=" in line and line.count("+") == 2 for line in lines)  # a zero carry is never written


@pytest.mark.parametrize("a,b", [(302, 185), (1000, 1), (91, 53), (7, 7), (450, 49)])
def test_v2_subtraction_steps_never_go_negative(a, b):
    lines = t.subtraction_steps(a, b)
    assert lines[-1] == "Digits " + " ".join(str(a - b)) + "."
    for line in lines[:-1]:
        for x, y, z in re.findall(r"(\d+)-(\d+)=(-?\d+)", line):
            assert int(z) >= 0 and int(x) - int(y) == int(z), line


def test_v2_number_words():
    assert t.number_words(0) == "zero" and t.number_words(47) == "forty-seven"
    assert t.number_words(305) == "three hundred five" and t.number_words(9012) == "nine thousand twelve"


def test_v2_pool_has_the_mathinstruct_shape_and_right_answers(v2_pool):
    pool, defects = v2_pool
    counts = pool.source_counts()
    assert len(counts) >= 10 and max(counts.values()) >= 10 * min(counts.values())
    assert any("```python" in ex.output for ex in pool) and any("Digits" in ex.output for ex in pool)
    checked = 0
    for ex in pool:
        arith = re.fullmatch(r"What is (\d+) ([+\-*]) (\d+)\?", ex.instruction)
        if ex.id in defects or not arith:
            continue
        a, op, b = int(arith[1]), arith[2], int(arith[3])
        assert int(FINAL.search(ex.output)[1]) == {"+": a + b, "-": a - b, "*": a * b}[op], ex
        checked += 1
    assert checked > 100
    wrong = [ex for ex in pool if defects.get(ex.id) == "wrong_answer" and "Digits" in ex.output]
    assert wrong
    for ex in wrong:  # label noise is self-consistent: the read-back line agrees with the wrong final answer
        digits = re.findall(r"Digits ([\d ]+)\.", ex.output)[-1].replace(" ", "")
        assert digits == FINAL.search(ex.output)[1]


def test_v2_test_and_dev_sets_are_disjoint_from_the_pool_and_each_other(v2_pool):
    pool, _ = v2_pool
    tests = generate_test_sets(V2, pool)
    dev = generate_dev_sets(V2, pool, tests=tests)
    assert list(tests) == list(dev) == [s.name for s in V2.design.test_sets]
    assert sum(s.in_domain for s in V2.design.test_sets) == 2 and len(tests) >= 6
    seen = {normalize_instruction(ex.instruction) for ex in pool}
    for split in (tests, dev):
        for name, rows in split.items():
            assert len(rows) == (V2.test_size if split is tests else V2.dev_rows), name
            for row in rows:
                key = normalize_instruction(row["instruction"])
                assert key not in seen, f"{name}: {row['instruction']!r} repeats the pool or another set"
                seen.add(key)
    words = tests["ood_words"][0]
    assert not re.search(r"\d", words["instruction"]) and re.fullmatch(r"\d+", words["answer"])


def test_build_writes_dev_sets_beside_tests(tmp_path):
    paths = build_gym(tmp_path / "g", replace(V2, pool_size=400, test_size=10, dev_size=7))
    manifest = json.loads(paths.manifest.read_text())
    assert manifest["config"]["version"] == 2
    assert [d["name"] for d in manifest["dev_sets"]] == [s["name"] for s in manifest["test_sets"]]
    assert all(len(p.read_text().splitlines()) == 7 for p in paths.dev.values())
    assert paths.dev["gym_arith"].parent == paths.tests["gym_arith"].parent.parent / "dev"
    none = build_gym(tmp_path / "h", replace(V2, pool_size=400, test_size=10, dev_size=0))
    assert none.dev == {} and not (tmp_path / "h" / "dev").exists()


# ------------------------------------------------------------------------------------------- the corpus

STEP_FORMATS = (
    re.compile(r"\d[+\-*]\d(\+\d)?=\d+, write"),  # v2 and v1 digit steps
    re.compile(r"\b(write \d|carry \d|borrow \d|Digits \d)"),
    re.compile(r"The answer is|The program prints|```|### (Instruction|Response)"),
    re.compile(r"\b(What is|How many|Which is larger|Write a program|Write [a-z-]+ in digits)\b"),
)


def test_corpus_is_deterministic_and_never_shows_templates_steps_or_test_items(v2_pool):
    docs = pretraining_corpus(CorpusConfig(documents=3000))
    assert docs == pretraining_corpus(CorpusConfig(documents=3000))
    assert docs != pretraining_corpus(CorpusConfig(documents=3000, seed=1))
    text = "\n".join(docs)
    for pattern in STEP_FORMATS:
        assert not pattern.search(text), pattern.search(text)[0]
    pool, _ = v2_pool
    normalized = " " + " ".join(normalize_instruction(d) for d in docs) + " "
    tests = generate_test_sets(V2, pool)
    items = [r["instruction"] for rows in (*tests.values(), *generate_dev_sets(V2, pool, tests=tests).values()) for r in rows]
    items += [ex.instruction for ex in pool]
    leaked = [i for i in items if f" {normalize_instruction(i)} " in normalized]
    assert not leaked, leaked[:5]
    # what it must teach: number words up to 4 digits, facts, comparisons, the unseen stories' nouns, code
    assert re.search(r"thousand", text) and re.search(r"\d \+ \d = \d", text) and "more than" in text
    assert "train" in text and "sheep" in text and "def " in text


def test_compact_facts_add_compact_digit_facts_and_nothing_of_the_steps_or_tests(v2_pool):
    """compact_facts writes every kind of digit fact the worked steps compose (a+b, a+b+1, teen minus digit,
    a*b) as lines of their own, and still no step format or test item; off, the corpus is the one every earlier
    base was pre-trained on, so their recipe keys stay as they were."""
    from s2lbench.gym.bases import BaseRecipe

    plain = pretraining_corpus(CorpusConfig(documents=3000))
    compact = pretraining_corpus(CorpusConfig(documents=3000, compact_facts=True))
    assert not re.search(r"\d[+\-*]\d", "\n".join(plain))
    lines = {line for doc in compact for line in doc.split("\n")}
    facts = {line for line in lines if re.fullmatch(r"\d+[+\-*]\d(\+1)?=\d+\.", line)}
    for fact in facts:
        left, value = fact[:-1].split("=")
        assert eval(left) == int(value), fact  # noqa: S307 - digits and operators only (matched above)
    assert {"9+4=13.", "17-8=9.", "7+3+1=11.", "6*7=42."} <= facts
    text = "\n".join(compact)
    for pattern in STEP_FORMATS:
        assert not pattern.search(text), pattern.search(text)[0]
    pool, _ = v2_pool
    normalized = " " + " ".join(normalize_instruction(d) for d in compact) + " "
    items = [r["instruction"] for rows in generate_test_sets(V2, pool).values() for r in rows]
    assert not [i for i in items if f" {normalize_instruction(i)} " in normalized]
    assert "compact_facts" not in BaseRecipe().spec()["corpus"]
    assert BaseRecipe(corpus=CorpusConfig(compact_facts=True)).key != BaseRecipe().key


def test_v2_tokenizer_learns_the_corpus_words_v1_does_not_change(v2_pool):
    pool, _ = v2_pool
    assert len(tokenizer_corpus(pool, 2)) > len(tokenizer_corpus(pool, 1))


# ------------------------------------------------------------------------------------------- bases


def test_pack_blocks_fills_full_blocks_with_eos_between_documents():
    from s2lbench.gym.bases import base_model_name, pack_blocks

    class Tok:
        eos_token_id = 0

        def __call__(self, texts, add_special_tokens=False):
            return {"input_ids": [[len(s)] * len(s) for s in texts]}

    blocks = pack_blocks(["aaa", "bb", "cccc"], Tok(), 4)
    assert blocks == [[3, 3, 3, 0], [2, 2, 0, 4], [4, 4, 4, 0]]
    assert base_model_name("gym-base:gym-target-l") == "gym-target-l" and base_model_name("gym-target-l") is None


def test_pretrain_base_writes_a_loadable_model_with_its_recipe(tmp_path):
    from transformers import AutoModelForCausalLM

    from s2lbench.gym.bases import BaseRecipe, pretrain_base

    paths = build_gym(tmp_path / "g", replace(V2, pool_size=200, test_size=5, dev_size=0))
    recipe = BaseRecipe(steps=2, batch_size=2, block_size=32, corpus=CorpusConfig(documents=40))
    out = pretrain_base("gym-proxy", paths.tokenizer, tmp_path / "base", recipe)
    meta = json.loads((out / "base.json").read_text())
    assert meta["model"] == "gym-proxy" and meta["recipe"]["steps"] == 2 and meta["train_tokens"] == 2 * 2 * 32
    assert AutoModelForCausalLM.from_pretrained(out).config.num_hidden_layers == 2
    mtime = (out / "base.json").stat().st_mtime
    assert pretrain_base("gym-proxy", paths.tokenizer, out, recipe) == out  # a finished base is reused
    assert (out / "base.json").stat().st_mtime == mtime


@pytest.mark.integration
def test_runner_trains_targets_from_one_cached_base_per_model(tmp_path):
    from s2lbench.grid.experiment import parse_experiment
    from s2lbench.grid.runner import Runner
    from s2lbench.grid.stages import read_events

    train = {"schedule": "steps", "batch_size": 8, "learning_rate": 1e-3, "max_length": 128, "logging_steps": 5}
    base = {"steps": 2, "batch_size": 2, "block_size": 32, "corpus": {"documents": 30}}
    data = {
        "name": "v2-bases",
        "pool": {"path": "gym", "gym": {"version": 2, "pool_size": 200, "test_size": 4, "dev_size": 3, "base": base}},
        "proxy": {"model": "gym-base:gym-proxy", "train": {**train, "total_steps": 4, "n_checkpoints": 2}},
        "selectors": ["random"], "budgets": [0.5], "seeds": [0, 1],
        "targets": [{"name": "t", "model": "gym-base:gym-proxy", "train": {**train, "total_steps": 2,
                                                                           "n_checkpoints": 1}}],
        "evaluation": {"tasks": ["gym"], "limit": 2,
                       "generation": {"backend": "transformers", "batch_size": 4, "max_new_tokens": 8}},
    }
    summary = Runner(parse_experiment(data), tmp_path).run()
    assert summary.ok, summary.failed
    events = [e for e in read_events(tmp_path / "stages") if e["stage"] == "gym-base"]
    assert [e["status"] for e in events].count("computed") == 1 and len({e["key"] for e in events}) == 1
    base_dir = next((tmp_path / "stages" / "gym-base").glob("*/base"))
    assert json.loads((base_dir / "base.json").read_text())["recipe"]["steps"] == 2
    runs = list((tmp_path / "stages" / "finetune").glob("*/run/run.json"))
    assert len(runs) == 4  # random and the full reference x 2 seeds, all from the one base
    for run in runs:
        trained = json.loads(run.read_text())["config"]
        assert trained["model"].endswith("/base") and "gym-base" in trained["model"]
        assert trained["template"] == "qa"  # v2's template reaches every fine-tune without a train key
    gym_dir = next((tmp_path / "stages" / "gym").glob("*/gym"))
    assert len((gym_dir / "dev" / "gym_arith.jsonl").read_text().splitlines()) == 3


def test_cli_pretrain_names_a_bad_gym_folder_or_model(tmp_path, capsys):
    from s2lbench.cli import main

    assert main(["gym", "pretrain", "--gym", str(tmp_path / "nope"), "--model", "gym-proxy",
                 "--out", str(tmp_path / "b")]) == 2
    assert "nope" in capsys.readouterr().err
    build_gym(tmp_path / "g", replace(V2, pool_size=200, test_size=5, dev_size=0))
    assert main(["gym", "pretrain", "--gym", str(tmp_path / "g"), "--model", "gym-proxi",
                 "--out", str(tmp_path / "b")]) == 2
    assert "gym-proxi" in capsys.readouterr().err and not (tmp_path / "b").exists()


def test_dry_run_checks_base_names_and_never_pretrains(tmp_path, capsys, monkeypatch):
    import yaml

    from s2lbench.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = {"name": "v2-dry", "pool": {"path": "gym", "gym": {"version": 2, "pool_size": 200, "test_size": 4}},
              "proxy": {"model": "gym-base:gym-proxy", "train": {"schedule": "steps", "total_steps": 2}},
              "selectors": ["random"], "budgets": [0.5], "seeds": [0],
              "targets": [{"name": "t", "model": "gym-base:gym-target-s",
                           "train": {"schedule": "steps", "total_steps": 2}}],
              "evaluation": {"tasks": ["gym"]}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    assert not (tmp_path / "out" / "stages" / "gym-base").exists()
    config["targets"][0]["model"] = "gym-base:gym-target-xl"
    path.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["run", str(path), "--dry-run", "--out", str(tmp_path / "out")]) != 0
    assert "gym-target-xl" in capsys.readouterr().out
