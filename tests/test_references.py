"""Reference rows (answers from the pool, no training): the predictors, the config key, the runner's cells
(stored, resumed, scored by the task's evaluator) and their place on the board and in the plots."""

from __future__ import annotations

import csv

import pytest
from test_leaderboard_store import BUDGET, POOL, TARGET, add_cell, make_store

from s2lbench.errors import ConfigError
from s2lbench.evaluation import EvalItem
from s2lbench.evaluation.references import (
    REFERENCES,
    most_frequent_output,
    nearest_input_copy,
    reference_outputs,
)
from s2lbench.grid.experiment import experiment_hash, parse_experiment
from s2lbench.grid.runner import Runner
from s2lbench.pool.records import Pool, SFTExample
from s2lbench.report.leaderboard import build_leaderboard, render
from s2lbench.report.plots import scaling_series
from s2lbench.results.store import ResultsStore

EPOCHS = {"schedule": "epochs"}


def _pool(rows: list[tuple[str, str]]) -> Pool:
    return Pool([SFTExample(id=f"e{i}", instruction="Summarize.", input=inp, output=out, source="t")
                 for i, (inp, out) in enumerate(rows)])


def _item(i: int, inp: str) -> EvalItem:
    return EvalItem(i, "Summarize.", "gold", inp)


def test_constant_answers_every_item_with_the_most_frequent_output_first_in_pool_order_on_ties():
    pool = _pool([("a", "B"), ("b", "A"), ("c", "A"), ("d", "B"), ("e", "C")])
    assert most_frequent_output(pool, [_item(0, "x"), _item(1, "y")]) == ["B", "B"]  # B and A tie; B comes first
    pool = _pool([("a", "B"), ("b", "A"), ("c", "A")])
    assert most_frequent_output(pool, [_item(0, "x")]) == ["A"]


def test_nearest_copy_takes_the_output_of_the_input_sharing_most_distinct_words():
    pool = _pool([("heart normal size lungs clear", "normal"),
                  ("left pleural effusion and basilar opacity", "effusion"),
                  ("right upper lobe opacity consolidation", "pneumonia")])
    items = [_item(0, "Small LEFT pleural effusion."), _item(1, "Opacity in the right upper lobe, consolidation"),
             _item(2, "lungs clear clear clear, heart normal"), _item(3, "nothing in common")]
    assert nearest_input_copy(pool, items) == ["effusion", "pneumonia", "normal", "normal"]
    # no shared word at all: the first example (ties go to pool order); the instruction is shared by all
    assert reference_outputs("nearest-copy", pool, [_item(0, "zzz")]) == ["normal"]


def test_unknown_and_repeated_references_are_config_errors_naming_the_key():
    base = {"name": "x", "targets": [{"name": "t", "model": "gym-target-s", "train": EPOCHS}], "proxy": {"train": EPOCHS}, "selectors": [], "budgets": [],
            "evaluation": {"tasks": ["gym"]}}
    with pytest.raises(ConfigError, match=r"references\[0\].*'constnt'.*did you mean 'constant'"):
        parse_experiment({**base, "references": ["constnt"]})
    with pytest.raises(ConfigError, match=r"references\[1\]"):
        parse_experiment({**base, "references": ["constant", "constant"]})
    with pytest.raises(ConfigError, match="reference rows"):
        parse_experiment({**base, "selectors": [{"name": "random", "label": "ref-x"}], "budgets": [0.1]})
    # references alone are something to run
    config = parse_experiment({**base, "references": ["constant"], "full_reference": False})
    assert config.references == ["constant"]


def test_an_empty_references_list_leaves_the_experiment_hash_as_before():
    base = {"name": "x", "targets": [{"name": "t", "model": "gym-target-s", "train": EPOCHS}],
            "proxy": {"train": EPOCHS}, "selectors": ["random"], "budgets": [0.1], "evaluation": {"tasks": ["gym"]}}
    plain, empty = parse_experiment(base), parse_experiment({**base, "references": []})
    assert experiment_hash(plain) == experiment_hash(empty)
    assert experiment_hash(parse_experiment({**base, "references": ["constant"]})) != experiment_hash(plain)


FINDINGS = ["Heart size normal. Lungs are clear.", "Left pleural effusion with basilar opacity.",
            "Lungs clear. Heart normal.", "Right upper lobe consolidation.", "Normal heart. Clear lungs.",
            "Large left pleural effusion.", "Heart and lungs normal.", "Consolidation right upper lobe."]
IMPRESSIONS = ["Normal.", "Effusion.", "Normal.", "Pneumonia.", "Normal.", "Effusion.", "Normal.", "Pneumonia."]


def _reports_dir(tmp_path):
    data = tmp_path / "data"
    (data / "clinical").mkdir(parents=True)
    with open(data / "clinical" / "indiana_reports.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["uid", "findings", "impression"])
        for i in range(40):
            writer.writerow([i, FINDINGS[i % 8] + f" Case {i}.", IMPRESSIONS[i % 8]])
    return data


def _references_config(data, test_size=10):
    return parse_experiment({
        "name": "refs", "pool": {"path": "indiana", "clinical": "indiana"},
        "targets": [{"name": "t", "model": "gym-target-s", "train": EPOCHS}], "proxy": {"train": EPOCHS}, "selectors": [], "budgets": [],
        "full_reference": False, "references": ["constant", "nearest-copy"],
        "evaluation": {"tasks": ["radiology-indiana"], "data_dir": str(data),
                       "task_options": {"radiology-indiana": {"seed": 1, "test_size": test_size,
                                                              "bertscore": False}}}})


def test_the_runner_scores_reference_rows_with_the_tasks_evaluator_once_and_resumes(tmp_path):
    data = _reports_dir(tmp_path)
    runner = Runner(_references_config(data), tmp_path / "run")
    summary = runner.run()
    assert sorted(summary.done) == ["t__ref-constant__0__s0", "t__ref-nearest-copy__0__s0"] and summary.ok
    store = ResultsStore(tmp_path / "run")
    cells = {c.cell_id: c for c in store.cells()}
    assert {c.selector for c in cells.values()} == {"ref-constant", "ref-nearest-copy"}
    assert all(c.status == "done" and c.budget == 0 for c in cells.values())
    scores = {(r.cell_id.split("__")[1], r.metric): r.value for r in store.results()}
    assert set(scores) == {(row, m) for row in ("ref-constant", "ref-nearest-copy") for m in ("bleu", "rouge_l")}
    # the pool has 30 reports: "Normal." is the most frequent impression; the copy finds each report's twin
    samples = store.load_samples(store.results("t__ref-constant__0__s0")[0].samples_path)
    assert len(samples) == 10 and {s["output"] for s in samples} == {"Normal."}
    assert scores[("ref-nearest-copy", "rouge_l")] == pytest.approx(1.0)
    assert scores[("ref-constant", "rouge_l")] < 1.0
    # resumed: nothing recomputed
    assert Runner(_references_config(data), tmp_path / "run").run().done == []
    # another split (test_size) is another evaluation: recomputed
    assert len(Runner(_references_config(data, test_size=12), tmp_path / "run").run().done) == 2


def test_the_clinical_pool_is_the_other_side_of_the_evaluators_configured_split(tmp_path):
    data = _reports_dir(tmp_path)
    runner = Runner(_references_config(data, test_size=12), tmp_path / "run")
    plan = runner.tasks()[0]
    test_ids = {item.meta["id"] for item in plan.evaluator.load(plan.data_dir)}
    pool_ids = {ex.id.removeprefix("indiana-") for ex in runner.pool}
    assert len(test_ids) == 12 and len(pool_ids) == 28 and not test_ids & pool_ids


def test_reference_rows_sit_below_every_budget_table_never_bold_never_tested(tmp_path):
    store = make_store(tmp_path / "store", extra_budget=20)
    for name, value in (("ref-constant", 0.5), ("ref-nearest-copy", 0.99)):
        cid = add_cell(store, name, 0, 0, {"gsm8k": value, "svamp": value}, cost={})
        assert cid
    board = build_leaderboard(store)
    assert sorted(t.budget for t in board.tables) == sorted([BUDGET, 20])
    for table in board.tables:
        rows = [r.selector for r in table.rows]
        assert rows[-3:] == ["full", "ref-constant", "ref-nearest-copy"]
        nearest = table.row("ref-nearest-copy")
        assert nearest.is_reference and nearest.budget == 0
        assert not any(cell.best or cell.test for cell in nearest.cells.values())  # 0.99 beats all, yet not bold
    assert "*ref-constant (reference)*" in render(board, "md")
    panel = scaling_series(tmp_path / "store", column="gsm8k")[0]
    assert panel.target == TARGET and set(panel.floors) == {"ref-constant", "ref-nearest-copy"}
    assert panel.floors["ref-constant"] == pytest.approx(50.0)
    assert all(budget > 0 for points in panel.series.values() for budget, _, _ in points)
    assert [p[0] for p in panel.reference] == [POOL]


def test_every_reference_is_documented():
    from s2lbench.evaluation import references

    for name in REFERENCES:
        assert f"``{name}``" in references.__doc__


def test_only_can_pick_reference_cells_and_the_preflight_knows_their_ids(tmp_path):
    from s2lbench.grid.preflight import cell_ids

    data = _reports_dir(tmp_path)
    config = _references_config(data)
    assert cell_ids(config) == ["t__ref-constant__0__s0", "t__ref-nearest-copy__0__s0"]
    summary = Runner(config, tmp_path / "run").run(only=["__ref-constant"])
    assert summary.done == ["t__ref-constant__0__s0"]


def test_pool_bpe_tokenizers_are_trained_once_on_the_training_pool_only(tmp_path):
    from transformers import AutoTokenizer

    from s2lbench.grid.pool_tokenizer import pool_texts, pool_tokenizer_size
    from s2lbench.grid.preflight import check_model_name

    assert pool_tokenizer_size("pool-bpe:300") == 300 and pool_tokenizer_size("gpt2") is None
    with pytest.raises(ConfigError, match="pool-bpe:VOCAB"):
        pool_tokenizer_size("pool-bpe:12")
    assert check_model_name("pool-bpe:2000", "targets[0].tokenizer", tokenizer=True) is None
    assert "pool-bpe:VOCAB" in check_model_name("pool-bpe:x", "targets[0].tokenizer", tokenizer=True)
    data = _reports_dir(tmp_path)
    runner = Runner(_references_config(data, test_size=12), tmp_path / "run")
    first = runner.train_config("gym-target-s", "pool-bpe:300", EPOCHS).tokenizer
    again = runner.train_config("gym-target-s", "pool-bpe:300", EPOCHS).tokenizer
    assert first == again and len(AutoTokenizer.from_pretrained(first)) <= 300
    plan = runner.tasks()[0]
    test_findings = {item.input for item in plan.evaluator.load(plan.data_dir)}
    texts = pool_texts(runner.pool, "alpaca")
    assert len(texts) == 28 and not any(f in text for f in test_findings for text in texts)


def test_the_scaling_plot_of_a_one_task_board_draws_its_only_column_as_the_average(tmp_path):
    store = ResultsStore(tmp_path / "store")
    for seed in range(2):
        add_cell(store, "random", BUDGET, seed, {"gsm8k": 0.4})
    add_cell(store, "ref-constant", 0, 0, {"gsm8k": 0.3}, cost={})
    [panel] = scaling_series(tmp_path / "store")  # column "avg", the default of `s2lbench run`'s plot
    assert panel.series["random"][0][1] == pytest.approx(40.0) and panel.floors == {"ref-constant": 30.0}


_PARENT_STAYS_CLEAN = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
import torch
from test_references import _references_config, _reports_dir
from s2lbench.executors.isolation import has_openmp_pool
from s2lbench.grid.runner import Runner

scored = Runner._reference_rows
def scored_with_torch(self, cell_id, name):  # what BERTScore's model does: start torch's OpenMP pool
    torch.ones(256, 256) @ torch.ones(256, 256)
    return scored(self, cell_id, name)
Runner._reference_rows = scored_with_torch
tmp = Path({tmp!r})
summary = Runner(_references_config(_reports_dir(tmp)), tmp / "run").run()
print(sorted(summary.done), has_openmp_pool())
"""


def test_reference_rows_are_scored_in_a_child_so_the_grid_can_still_fork_its_cells(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = _PARENT_STAYS_CLEAN.format(tests=str(Path(__file__).parent), tmp=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "['t__ref-constant__0__s0', 't__ref-nearest-copy__0__s0'] False"
