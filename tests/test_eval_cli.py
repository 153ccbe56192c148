"""`s2lbench evaluate`: grades any model's predictions file, writes per-example records, --json last line."""

from __future__ import annotations

import json

import pytest

from s2lbench.cli import main


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_evaluate_gsm8k_predictions(shared_data, tmp_path, capsys):
    preds = _write(tmp_path / "preds.jsonl", [
        {"index": 0, "output": "16 - 3 - 4 = 9 eggs; 9 * 2 = 18. The answer is 18."},
        {"index": 1, "output": "It takes 2 + 1 = 3 bolts.\n#### 3"},
        {"index": 2, "output": "The answer is 1."},
    ])
    out = tmp_path / "graded.jsonl"
    assert main(["evaluate", "--task", "gsm8k", "--predictions", str(preds), "--data-dir", str(shared_data),
                 "--out", str(out), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["task"] == "gsm8k" and summary["n"] == 3 and summary["accuracy"] == pytest.approx(2 / 3)
    assert any("accuracy" in line and "0.6667" in line for line in lines[:-1])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["index"], r["extracted"], r["gold"], r["correct"]) for r in records] == [
        (0, "18", "18", True), (1, "3", "3", True), (2, "1", "70000", False)]


def test_grading_option_changes_deepmind_scores(shared_data, tmp_path, capsys):
    preds = _write(tmp_path / "p.jsonl", [{"index": 1, "output": "The answer is [3]."}])
    results = {}
    for grading in ("mammoth-v1", "s2lbench"):
        assert main(["evaluate", "--task", "deepmind", "--predictions", str(preds), "--data-dir", str(shared_data),
                     "--grading", grading, "--json"]) == 0
        results[grading] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["accuracy"]
    assert results == {"mammoth-v1": 0.0, "s2lbench": 1.0}
    assert (tmp_path / "p.deepmind.graded.jsonl").is_file()


@pytest.mark.parametrize("rows, message", [
    ([{"index": 0}], "p.jsonl, line 1, field 'output'"),
    ([{"index": 0, "output": "a"}, {"index": 0, "output": "b"}], "duplicate index 0"),
    ([{"index": 99999, "output": "a"}], "beyond the 1319 rows"),
    ([{"index": -1, "output": "a"}], "non-negative"),
])
def test_bad_predictions_name_file_and_row(shared_data, tmp_path, capsys, rows, message):
    preds = _write(tmp_path / "p.jsonl", rows)
    assert main(["evaluate", "--task", "gsm8k", "--predictions", str(preds), "--data-dir", str(shared_data)]) == 2
    assert message in capsys.readouterr().err


def test_unknown_task_and_option_are_clear_errors(shared_data, tmp_path, capsys):
    preds = _write(tmp_path / "p.jsonl", [{"index": 0, "output": "1"}])
    assert main(["evaluate", "--task", "gsm8kk", "--predictions", str(preds)]) == 2
    assert "did you mean 'gsm8k'" in capsys.readouterr().err
    assert main(["evaluate", "--task", "gsm8k", "--predictions", str(preds), "--data-dir", str(shared_data),
                 "--option", "promting=pot"]) == 2
    assert "did you mean 'prompting'" in capsys.readouterr().err


def test_evaluate_radiology_predictions(shared_data, tmp_path, capsys):
    from s2lbench.evaluators.radiology import IndianaRadiology, RadiologyOptions

    items = IndianaRadiology(RadiologyOptions(test_size=50)).load(shared_data)
    preds = _write(tmp_path / "r.jsonl", [{"index": i, "output": items[i].reference if i < 5 else "Fracture."}
                                          for i in range(10)])
    assert main(["evaluate", "--task", "radiology-indiana", "--predictions", str(preds), "--data-dir",
                 str(shared_data), "--option", "test_size=50", "--option", "bertscore=false", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n"] == 10 and summary["of"] == 50 and "accuracy" not in summary
    assert 0.45 < summary["rouge_l"] < 0.65 and 20 < summary["bleu"] < 80
