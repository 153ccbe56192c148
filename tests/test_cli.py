from __future__ import annotations

import json

from s2lbench.cli import main


def test_help_lists_commands(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "plugins" in out and "data" in out


def test_data_inspect_reports_rows_sources_and_lengths(tmp_path, capsys):
    path = tmp_path / "mi.jsonl"
    rows = [{"source": "a", "instruction": "q" * 10, "output": "o" * 30}] * 3 + \
           [{"source": "b", "instruction": "q" * 20, "output": "o" * 10}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["data", "inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["rows"] == 4 and info["sources"] == {"a": 3, "b": 1}
    assert info["output_length"]["max"] == 30 and info["output_length"]["min"] == 10
    assert main(["data", "inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "4 rows" in text and "a" in text


def test_bad_input_prints_a_clear_error_not_a_traceback(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text("{oops\n")
    assert main(["data", "inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl, line 1: malformed JSON" in err and "Traceback" not in err
