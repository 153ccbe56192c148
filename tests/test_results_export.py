"""A board's committed results/: the text export of a results store, and tables regenerated from it byte for byte."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_leaderboard_store import BUDGET, add_cell, make_store

from s2lbench.cli import main
from s2lbench.errors import DataError
from s2lbench.report.leaderboard import FORMATS, build_leaderboard, render
from s2lbench.results.export import CELLS_FILE, RESULTS_FILE, export_results, is_export, open_results
from s2lbench.results.store import Cell, ResultsStore, record_invocation

RESAMPLES = 200
TABLE_FILES = ("leaderboard.md", "leaderboard.tex", "leaderboard.csv", "leaderboard.html", "provenance.json")


def _store(folder: Path) -> ResultsStore:
    store = make_store(folder, extra_budget=300)
    cell = store.get_cell(f"tiny-s2l-{BUDGET}-s0")
    regime = {"source_mix": {"a": {"pool": 10, "pool_share": 0.5, "selected": 3, "selected_share": 0.3},
                             "b": {"pool": 10, "pool_share": 0.5, "selected": 7, "selected_share": 0.7}},
              "source_mix_tv": 0.2, "selector": {"summary": "K=100, 5 pool rows per cluster", "facts": {"K": 100},
                                                  "warnings": ["cluster balancing is inactive: test"]}}
    store.upsert_cell(Cell(**{**cell.__dict__, "regime": regime}))
    add_cell(store, "s2l", 999, 0, {"gsm8k": 0.5}, status="failed")
    other = add_cell(store, "random", 50, 0, {"gsm8k": 0.25}, target="other-target")
    store.upsert_cell(Cell(**{**store.get_cell(other).__dict__, "experiment": "another-experiment"}))
    record_invocation(store.folder, {"started": 1.5, "finished": 2.25, "wall_seconds": 0.75})
    (store.folder / "config.json").write_text(json.dumps({"config": {"name": "gym"}, "config_hash": "abc"}))
    return store


def test_an_export_reads_back_as_the_store_it_came_from(tmp_path):
    store = _store(tmp_path / "run")
    export_results(store, tmp_path / "export")
    exported = open_results(tmp_path / "export")
    assert is_export(tmp_path / "export") and not is_export(tmp_path / "run")
    assert exported.cells() == store.cells()
    assert exported.cells("gym") == store.cells("gym") and exported.cells("other") == []
    assert exported.results() == store.results()
    cid = f"tiny-s2l-{BUDGET}-s0"
    assert exported.get_cell(cid).regime["selector"]["facts"] == {"K": 100}
    rel = store.results(cid)[0].samples_path
    assert [s["scores"] for s in exported.load_samples(rel)] == [s["scores"] for s in store.load_samples(rel)]
    for fmt in FORMATS:
        assert render(build_leaderboard(exported), fmt) == render(
            build_leaderboard(store), fmt)


def test_the_export_is_text_sorted_and_keeps_no_prompts(tmp_path):
    store = _store(tmp_path / "run")
    out = export_results(store, tmp_path / "export")
    lines = (out / CELLS_FILE).read_text().splitlines()
    assert [json.loads(line)["cell_id"] for line in lines] == [c.cell_id for c in store.cells()]
    assert all(line == json.dumps(json.loads(line), sort_keys=True, ensure_ascii=False) for line in lines)
    assert len((out / RESULTS_FILE).read_text().splitlines()) == len(store.results())
    sample = json.loads((out / f"samples/tiny-s2l-{BUDGET}-s0/gsm8k.jsonl").read_text().splitlines()[0])
    assert sample == {"index": 0, "output": "", "reference": "", "scores": {"accuracy": 1.0}}  # no prompt
    assert (out / "invocations.jsonl").read_text() == (store.folder / "invocations.jsonl").read_text()
    assert not list(out.rglob("*.sqlite"))
    again = export_results(open_results(out), tmp_path / "again")  # an export of an export is the same bytes
    assert {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()} == {
        p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_licensed_radiology_samples_keep_scores_only(tmp_path):
    store = ResultsStore(tmp_path / "run")
    add_cell(store, "random", BUDGET, 0, {"radiology-indiana": 0.5, "gsm8k": 0.5})
    for rel in {r.samples_path for r in store.results()}:
        rows = [{**s, "output": "the lungs are clear", "reference": "no acute disease", "prompt": "findings"}
                for s in store.load_samples(rel)]
        store.write_samples(rel.split("/")[1], Path(rel).stem, rows)
    out = export_results(store, tmp_path / "export")
    radiology = (out / f"samples/tiny-random-{BUDGET}-s0/radiology-indiana.jsonl").read_text()
    assert "lungs" not in radiology and "acute" not in radiology and "findings" not in radiology
    assert json.loads(radiology.splitlines()[0]) == {"index": 0, "scores": {"accuracy": 1.0}}
    gsm8k = json.loads((out / f"samples/tiny-random-{BUDGET}-s0/gsm8k.jsonl").read_text().splitlines()[0])
    assert gsm8k["output"] == "the lungs are clear" and "prompt" not in gsm8k


def test_a_board_of_licensed_data_commits_tables_and_provenance_but_no_results(tmp_path, capsys):
    """The radiology board: its paired tests need per-report scores, which may not be redistributed, so
    --tables writes the tables (marks included, from the run) and a provenance that says how to regenerate
    them from a rerun, and no results/ at all."""
    store = ResultsStore(tmp_path / "run")
    for seed in range(2):
        add_cell(store, "random", BUDGET, seed, {"radiology-indiana": 0.5})
        add_cell(store, "s2l", BUDGET, seed, {"radiology-indiana": 0.6})
    board = tmp_path / "board"
    assert main(["leaderboard", str(tmp_path / "run"), "--metric", "accuracy", "--tables", str(board)]) == 0
    assert not (board / "results").exists()
    assert sorted(p.name for p in board.iterdir()) == ["leaderboard.csv", "leaderboard.html", "leaderboard.md",
                                                       "leaderboard.tex", "provenance.json"]
    record = json.loads((board / "provenance.json").read_text())
    assert record["command"][:5] == ["s2lbench", "leaderboard", "<run>", "--tables", "<tables>"]
    assert record["results_withheld"].startswith("radiology-indiana: per-example scores")
    assert "results/ not written" in capsys.readouterr().err


def test_cli_tables_beside_their_results_regenerate_byte_for_byte(tmp_path, capsys):
    _store(tmp_path / "run")
    board = tmp_path / "board"
    options = ["--resamples", str(RESAMPLES), "--experiment", "gym"]
    assert main(["leaderboard", str(tmp_path / "run"), *options, "--tables", str(board)]) == 0
    assert is_export(board / "results")
    prov = json.loads((board / "provenance.json").read_text())
    assert prov["command"] == ["s2lbench", "leaderboard", "<tables>/results", "--tables", "<tables>", *options]
    assert prov["experiments"] == ["another-experiment", "gym"]  # the export is the whole store
    assert "other-target" not in (board / "leaderboard.md").read_text()
    assert str(tmp_path) not in (board / "provenance.json").read_text()
    again = tmp_path / "again"
    assert main(["leaderboard", str(board / "results"), *options, "--tables", str(again)]) == 0
    for name in TABLE_FILES:
        assert (again / name).read_bytes() == (board / name).read_bytes(), name
    # regenerating in place reads the export it would write: it is left as it was
    before = {p: p.read_bytes() for p in (board / "results").rglob("*") if p.is_file()}
    assert main(["leaderboard", str(board / "results"), *options, "--tables", str(board)]) == 0
    assert {p: p.read_bytes() for p in (board / "results").rglob("*") if p.is_file()} == before
    assert "Selection regime of s2l at 100 rows: K=100" in (board / "leaderboard.md").read_text()


def test_a_bad_export_is_refused_with_its_file_and_line(tmp_path):
    out = export_results(_store(tmp_path / "run"), tmp_path / "export")
    with pytest.raises(DataError, match="read-only"):
        open_results(out).upsert_cell(open_results(out).cells()[0])
    lines = (out / CELLS_FILE).read_text().splitlines()
    (out / CELLS_FILE).write_text("\n".join([lines[0], json.dumps({"cell_id": "x", "colour": "red"})]) + "\n")
    with pytest.raises(DataError, match=r"cells\.jsonl, line 2.*colour"):
        open_results(out)
    (out / CELLS_FILE).write_text(re.sub(r'"budget": \d+', '"budget": "many"', lines[0]) + "\n")
    with pytest.raises(DataError, match="budget"):
        open_results(out)
    with pytest.raises(DataError, match="no results store"):
        open_results(tmp_path / "nothing")
