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


def test_a_reader_that_goes_away_is_not_reported_as_an_error():
    """`s2lbench plugins | head -1`: the closed pipe ends the command quietly (exit 141, as for SIGPIPE), not
    with the hub-unreachable line a builtin ConnectionError would otherwise map to."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from s2lbench.errors import describe_expected

    read, write = os.pipe()
    os.close(read)  # closed before the command prints anything: its first write breaks the pipe
    try:
        done = subprocess.run([str(Path(sys.executable).with_name("s2lbench")), "plugins"], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert done.returncode == 141, done.stderr
    assert done.stderr == ""
    assert "hub" not in (describe_expected(BrokenPipeError(32, "Broken pipe")) or "")
