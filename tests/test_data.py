from __future__ import annotations

import json

import pytest

from s2lbench.errors import DataError
from s2lbench.pool.loaders import load_local, load_pool, parse_columns

MATHINSTRUCT_ROWS = [
    {"source": "data/CoT/gsm_rft.json", "instruction": "Tom has 3 apples and buys 2. How many?",
     "output": "3 + 2 = 5. The answer is 5"},
    {"source": "data/PoT/mathqa.json", "instruction": "Compute 7*6.", "output": "print(7*6)"},
    {"source": "data/CoT/gsm_rft.json", "instruction": "Tom has 3 apples and buys 2. How many?",
     "output": "3 + 2 = 5. The answer is 5"},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_gsm8k_train_loads_with_stable_ids(shared_data):
    path = shared_data / "train" / "gsm8k_train.jsonl"
    pool = load_local(path)
    assert len(pool) == 7473
    first = pool[0]
    assert first.instruction.startswith("Natalia sold clips")
    assert first.output.rstrip().endswith("#### 72")
    assert first.source == "gsm8k_train"
    again = load_local(path)
    assert again.ids == pool.ids and again.fingerprint() == pool.fingerprint()


def test_mathinstruct_schema_keeps_sources_and_disambiguates_exact_duplicates(tmp_path):
    pool = load_local(write_jsonl(tmp_path / "mi.jsonl", MATHINSTRUCT_ROWS))
    assert pool.sources == ["data/CoT/gsm_rft.json", "data/PoT/mathqa.json", "data/CoT/gsm_rft.json"]
    assert len(set(pool.ids)) == 3 and pool.ids[2] == pool.ids[0] + "-2"
    assert pool.source_counts() == {"data/CoT/gsm_rft.json": 2, "data/PoT/mathqa.json": 1}


def test_fingerprint_changes_with_content(tmp_path):
    a = load_local(write_jsonl(tmp_path / "a.jsonl", MATHINSTRUCT_ROWS))
    rows = [dict(r) for r in MATHINSTRUCT_ROWS]
    rows[1]["output"] = "print(42)"
    b = load_local(write_jsonl(tmp_path / "b.jsonl", rows))
    assert a.fingerprint() != b.fingerprint()


def test_csv_with_column_mapping(tmp_path):
    path = tmp_path / "reports.csv"
    path.write_text("uid,findings,impression\n1,Clear lungs.,Normal.\n2,Small effusion.,Effusion.\n")
    pool = load_local(path, columns={"id": "uid", "instruction": "findings", "output": "impression"})
    assert pool.ids == ["1", "2"] and pool[1].output == "Effusion."


def test_hub_spec_calls_datasets(monkeypatch):
    import datasets

    calls = {}

    def fake_load_dataset(name, config, split, revision, **kw):
        calls.update(name=name, split=split)
        return datasets.Dataset.from_list(MATHINSTRUCT_ROWS)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    pool = load_pool("hf://TIGER-Lab/MathInstruct")
    assert calls == {"name": "TIGER-Lab/MathInstruct", "split": "train"}
    assert pool.sources[1] == "data/PoT/mathqa.json"


# --- bad input: every message names the file, the line and the field ---

def test_malformed_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(MATHINSTRUCT_ROWS[0]) + "\n{\"instruction\": \"x\",\n")
    with pytest.raises(DataError, match=r"bad\.jsonl, line 2: malformed JSON"):
        load_local(path)


def test_missing_required_field_names_line_and_field(tmp_path):
    rows = [MATHINSTRUCT_ROWS[0], {"source": "s", "instruction": "only a question"}]
    with pytest.raises(DataError, match=r"mi\.jsonl, line 2, field 'output': missing required value"):
        load_local(write_jsonl(tmp_path / "mi.jsonl", rows), preset="mathinstruct")


def test_empty_value_is_an_error(tmp_path):
    rows = [{"instruction": "q", "output": "   "}]
    with pytest.raises(DataError, match=r"line 1, field 'output': empty value"):
        load_local(write_jsonl(tmp_path / "e.jsonl", rows))


def test_empty_pool_is_an_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(DataError, match=r"empty\.jsonl: the pool is empty"):
        load_local(path)


def test_duplicate_ids_name_both_lines(tmp_path):
    rows = [{"id": "a", "instruction": "q1", "output": "o1"}, {"id": "b", "instruction": "q2", "output": "o2"},
            {"id": "a", "instruction": "q3", "output": "o3"}]
    with pytest.raises(DataError, match=r"line 3, field 'id': duplicate id 'a' \(first seen on line 1\)"):
        load_local(write_jsonl(tmp_path / "d.jsonl", rows))


def test_unknown_column_lists_available_columns(tmp_path):
    path = write_jsonl(tmp_path / "g.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(DataError, match=r"column 'questoin' not found; the file has columns \['answer', 'question'\]"):
        load_local(path, columns={"instruction": "questoin", "output": "answer"})


def test_unknown_record_field_in_mapping(tmp_path):
    path = write_jsonl(tmp_path / "g.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(DataError, match="unknown record field"):
        load_local(path, columns={"instruction": "question", "output": "answer", "prompt": "question"})


def test_unguessable_format_asks_for_a_mapping(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"foo": "q", "bar": "a"}])
    with pytest.raises(DataError, match="cannot guess the format"):
        load_local(path)


def test_missing_file_and_bad_suffix(tmp_path):
    with pytest.raises(DataError, match="nope.jsonl: file not found"):
        load_local(tmp_path / "nope.jsonl")
    (tmp_path / "x.parquet").write_text("")
    with pytest.raises(DataError, match="unsupported file type"):
        load_local(tmp_path / "x.parquet")


def test_parse_columns():
    assert parse_columns("instruction=question, output=answer") == {"instruction": "question", "output": "answer"}
    with pytest.raises(DataError, match="field=column"):
        parse_columns("instruction")
