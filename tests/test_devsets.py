"""Dev sets: the documented GSM8K-train slice for math tasks, the JSONL override, one-line errors."""

from __future__ import annotations

import json

import pytest

from s2lbench.errors import DataError
from s2lbench.signals.devsets import DevConfig, build_dev_set, read_dev_file


def gsm8k_file(folder, n=10):
    path = folder / "train" / "gsm8k_train.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps({"question": f"q{i}", "answer": f"w{i}\n#### {i}"}) + "\n" for i in range(n)))
    return path


def test_math_tasks_share_the_last_rows_of_gsm8k_train(tmp_path):
    gsm8k_file(tmp_path)
    dev = build_dev_set(["gsm8k", "svamp"], DevConfig(size=3), data_dir=tmp_path)
    assert [ex.instruction for ex in dev] == ["q7", "q8", "q9"] * 2
    assert dev.sources == ["gsm8k"] * 3 + ["svamp"] * 3
    with pytest.raises(DataError, match="fewer than dev.size = 30"):
        build_dev_set(["gsm8k"], DevConfig(size=30), data_dir=tmp_path)
    with pytest.raises(DataError, match="no built-in dev split for task 'radiology'"):
        build_dev_set(["radiology"], DevConfig(size=3), data_dir=tmp_path)


def test_dev_file_rows_and_errors_name_file_and_line(tmp_path):
    good = tmp_path / "dev.jsonl"
    good.write_text(json.dumps({"task": "gsm8k", "instruction": "i", "output": "o"}) + "\n")
    dev = build_dev_set(["gsm8k"], DevConfig(path=str(good)), data_dir=tmp_path)
    assert dev.sources == ["gsm8k"] and dev[0].output == "o"
    with pytest.raises(DataError, match="dev set file not found"):
        build_dev_set(["gsm8k"], DevConfig(path=str(tmp_path / "missing.jsonl")), data_dir=tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task": "gsm8k", "instruction": "i", "output": "o"}) + "\n" +
                   json.dumps({"task": "gsm8k", "instruction": "i"}) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl.*2|line 2") as err:
        read_dev_file(bad)
    assert "output" in str(err.value)
    with pytest.raises(DataError, match="not evaluate"):
        build_dev_set(["svamp"], DevConfig(path=str(good)), data_dir=tmp_path)
