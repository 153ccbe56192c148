"""The gym generator: determinism, source skew, defect rates and kinds, test/pool deduplication, tokenizer, CLI."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
from conftest import REPO

from s2lbench.errors import ConfigError
from s2lbench.gym import (
    TEST_SETS,
    DefectRates,
    GymConfig,
    build_gym,
    generate_pool,
    generate_test_sets,
)
from s2lbench.gym.build import DEFECT_KINDS, normalize_instruction
from s2lbench.training.models import TINY_CONFIGS

SMALL = GymConfig.small()
FINAL = re.compile(r"The answer is (-?\d+)\.$")
ARITH = re.compile(r"^What is (\d+) ([+\-*]) (\d+)\?$")


@pytest.fixture(scope="module")
def small_pool():
    return generate_pool(SMALL)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_gym(tmp_path_factory.mktemp("gym"), SMALL)


def test_generator_is_deterministic_in_its_seed(small_pool):
    again, defects_again = generate_pool(SMALL)
    assert again.fingerprint() == small_pool[0].fingerprint()
    assert defects_again == small_pool[1]
    other, _ = generate_pool(replace(SMALL, seed=1))
    assert other.fingerprint() != small_pool[0].fingerprint()
    assert generate_test_sets(SMALL, small_pool[0]) == generate_test_sets(SMALL, again)


def test_sources_are_many_and_skewed(small_pool):
    counts = small_pool[0].source_counts()
    assert len(counts) >= 8
    assert max(counts.values()) >= 10 * min(counts.values())


def test_clean_rows_end_in_a_correct_final_answer(small_pool):
    pool, defects = small_pool
    checked = 0
    for ex in pool:
        if ex.id in defects:
            continue
        match = FINAL.search(ex.output)
        assert match, f"{ex.id} does not end in 'The answer is N.': {ex.output[-60:]!r}"
        arith = ARITH.match(ex.instruction)
        if arith:
            a, op, b = int(arith[1]), arith[2], int(arith[3])
            assert int(match[1]) == {"+": a + b, "-": a - b, "*": a * b}[op], ex
            checked += 1
    assert checked > 100
    assert any("```python" in ex.output for ex in pool), "no program-of-thought rows"


def test_defect_counts_follow_the_configured_rates(small_pool):
    pool, defects = small_pool
    rates = SMALL.defects
    for kind in DEFECT_KINDS:
        got = sum(1 for v in defects.values() if v == kind)
        assert got == round(getattr(rates, kind) * len(pool)), kind
    custom = replace(SMALL, defects=DefectRates(wrong_answer=0.2, near_duplicate=0, truncated=0, overlong=0.1,
                                                off_topic=0))
    _, custom_defects = generate_pool(custom)
    assert sorted(set(custom_defects.values())) == ["overlong", "wrong_answer"]
    assert sum(v == "wrong_answer" for v in custom_defects.values()) == 400
    clean, none = generate_pool(replace(SMALL, defects=DefectRates(0, 0, 0, 0, 0)))
    assert none == {} and all(FINAL.search(ex.output) for ex in clean)


def test_each_defect_kind_is_what_it_says(small_pool):
    pool, defects = small_pool
    by_key: dict[str, list] = {}
    for ex in pool:
        by_key.setdefault(normalize_instruction(ex.instruction), []).append(ex)
    for ex in pool:
        kind = defects.get(ex.id)
        if kind == "wrong_answer":
            arith = ARITH.match(ex.instruction)
            if arith:
                a, op, b = int(arith[1]), arith[2], int(arith[3])
                assert int(FINAL.search(ex.output)[1]) != {"+": a + b, "-": a - b, "*": a * b}[op]
        elif kind == "truncated":
            assert "The answer is" not in ex.output
        elif kind == "overlong":
            lines = ex.output.splitlines()
            assert len(lines) > len(set(lines)), "overlong rows repeat their steps"
        elif kind == "near_duplicate":
            twins = by_key[normalize_instruction(ex.instruction)]
            assert any(t.id != ex.id and t.instruction != ex.instruction for t in twins)
        elif kind == "off_topic":
            assert not any(ch.isdigit() for ch in ex.instruction + ex.output)


def test_bad_defect_rates_are_refused():
    with pytest.raises(ConfigError, match="wrong_answer"):
        DefectRates(wrong_answer=1.5)
    with pytest.raises(ConfigError, match="sum"):
        DefectRates(0.4, 0.3, 0.3, 0.0, 0.0)


def test_a_vocabulary_smaller_than_the_byte_alphabet_is_refused():
    """BPE cannot go below its alphabet: a smaller vocab_size would build a 258-token tokenizer silently."""
    from s2lbench.gym import GymConfig
    from s2lbench.gym.build import MIN_VOCAB_SIZE
    from s2lbench.gym.tokenizer import train_tokenizer

    with pytest.raises(ConfigError, match="vocab_size: 100 .*258"):
        GymConfig(vocab_size=100)
    assert GymConfig(vocab_size=MIN_VOCAB_SIZE).vocab_size == MIN_VOCAB_SIZE
    assert len(train_tokenizer(["1 + 2 = 3"], vocab_size=10)) == MIN_VOCAB_SIZE  # what the check guards against


def test_test_sets_follow_the_six_set_protocol_and_miss_the_pool(small_pool):
    pool, _ = small_pool
    sets = generate_test_sets(SMALL, pool)
    assert [s.name for s in TEST_SETS] == list(sets)
    assert sum(s.in_domain for s in TEST_SETS) == 2 and sum(not s.in_domain for s in TEST_SETS) >= 4
    in_pool = {normalize_instruction(ex.instruction) for ex in pool}
    seen = set()
    for name, rows in sets.items():
        assert len(rows) == SMALL.test_size, name
        for row in rows:
            key = normalize_instruction(row["instruction"])
            assert key not in in_pool, f"{name}: {row['instruction']!r} is in the pool"
            assert key not in seen, f"{name}: {row['instruction']!r} repeats"
            seen.add(key)
            assert re.fullmatch(r"-?\d+", row["answer"])
    bignum = sets["ood_bignum"][0]
    a, b = map(int, re.findall(r"\d+", bignum["instruction"]))
    assert int(bignum["answer"]) == a + b and a >= 1000


def test_build_writes_pool_tests_tokenizer_and_manifest(built):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from s2lbench.pool.loaders import load_local

    pool = load_local(built.pool)
    assert len(pool) == SMALL.pool_size
    manifest = json.loads(built.manifest.read_text())
    assert manifest["pool"]["fingerprint"] == pool.fingerprint()
    assert {t["name"]: t["in_domain"] for t in manifest["test_sets"]} == {s.name: s.in_domain for s in TEST_SETS}
    first = json.loads(built.tests["gym_arith"].read_text().splitlines()[0])
    assert set(first) == {"instruction", "answer"}
    tok = AutoTokenizer.from_pretrained(built.tokenizer)
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert tok.eos_token_id is not None and tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    text = pool[0].output
    assert tok.decode(tok(text)["input_ids"]) == text
    assert tok.tokenize("12345")[-5:] == ["1", "2", "3", "4", "5"]


def test_tiny_configs_proxy_is_ten_times_smaller(built):
    from transformers import AutoTokenizer, GPTNeoXForCausalLM

    from s2lbench.training.models import tiny_model

    tok = AutoTokenizer.from_pretrained(built.tokenizer)
    sizes = {name: sum(p.numel() for p in tiny_model(name, tok).parameters()) for name in TINY_CONFIGS}
    targets = [n for n in TINY_CONFIGS if n != "gym-proxy"]
    assert len(targets) >= 2
    assert max(sizes[t] for t in targets) >= 10 * sizes["gym-proxy"]
    model = tiny_model("gym-proxy", tok)
    assert isinstance(model, GPTNeoXForCausalLM) and model.config.vocab_size == len(tok)
    with pytest.raises(ConfigError, match="gym-proxi"):
        tiny_model("gym-proxi", tok)


def test_cli_gym_build(tmp_path, capsys):
    from s2lbench.cli import main

    assert main(["gym", "build", "--out", str(tmp_path), "--size", "300", "--test-size", "20", "--seed", "3",
                 "--defect", "wrong_answer=0.1"]) == 0
    manifest = json.loads((tmp_path / "gym.json").read_text())
    assert manifest["pool"]["rows"] == 300 and manifest["pool"]["defects"]["wrong_answer"] == 30
    assert "tokenizer" in capsys.readouterr().out
    assert main(["gym", "build", "--out", str(tmp_path / "x"), "--defect", "wrong_anwser=0.1"]) == 2
    assert "wrong_answer" in capsys.readouterr().err


def test_cli_gym_build_from_an_experiment_config_builds_the_gym_its_runs_train_on(tmp_path, capsys):
    from s2lbench.cli import main
    from s2lbench.common.typed import from_dict
    from s2lbench.grid.experiment import load_experiment
    from s2lbench.gym import GymConfig, build_gym

    config = REPO / "configs" / "gym.yaml"
    small = {"pool_size": 300, "test_size": 20, "dev_size": 10}
    assert main(["gym", "build", "--out", str(tmp_path / "cli"), "--from-config", str(config), "--size", "300",
                 "--test-size", "20", "--dev-size", "10"]) == 0
    built = json.loads((tmp_path / "cli" / "gym.json").read_text())
    # the runner's gym stage: pool.gym read over GymConfig's defaults (runner._load_pool)
    runner_config = from_dict(GymConfig, {**load_experiment(config).pool.gym, **small}, where="pool.gym")
    assert list(runner_config.level_weights) == [0.5, 0.5, 0.0] and runner_config.version == 2
    reference = json.loads(build_gym(tmp_path / "ref", runner_config).manifest.read_text())
    assert built["config"] == reference["config"] and built["config"]["level_weights"] == [0.5, 0.5, 0.0]
    assert built["pool"] == reference["pool"] and built["test_sets"] == reference["test_sets"]
    assert built["tokenizer"] == reference["tokenizer"] and built["config_hash"] == reference["config_hash"]
    capsys.readouterr()


@pytest.mark.parametrize("argv, named", [
    (["--level-weights", "0.5,x,0"], "--level-weights"),
    (["--level-weights", "0.5,0.5"], "--level-weights"),
    (["--level-weights", "0.5,-1,0"], "level_weights"),
    (["--from-config", "configs/missing.yaml"], "missing.yaml"),
    (["--from-config", "configs/offline_real.yaml"], "not the gym"),
    (["--from-config", "configs/gym.yaml", "--small"], "--from-config"),
])
def test_cli_gym_build_names_a_bad_option_in_one_line(tmp_path, capsys, monkeypatch, argv, named):
    from s2lbench.cli import main

    monkeypatch.chdir(REPO)
    try:
        code = main(["gym", "build", "--out", str(tmp_path / "g"), *argv])
    except SystemExit as exit:  # argparse's own usage error
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "g").exists()
    assert "Traceback" not in err and named in err.strip().splitlines()[-1]
