"""What the tables claim: in-domain / out-of-domain / overall averages, sets at the floor flagged and left out,
the A/A control row and its footnote, and one-seed boards (no mark, unless a seed sd measured elsewhere)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from test_leaderboard_store import BUDGET, add_cell, make_store

from s2lbench.cli import main
from s2lbench.errors import DataError
from s2lbench.report.leaderboard import FLOOR_LABEL, ONE_SEED_NOTE, build_leaderboard, render
from s2lbench.report.seed_variance import given_seed_sd, seed_sd_from_board
from s2lbench.results.store import ResultsStore


def floor_store(folder):
    """gsm8k in-domain, svamp out-of-domain, bignum (group unknown) at 0 for every row, reference included."""
    store = ResultsStore(folder)
    for seed, (base, sel) in enumerate([(0.3, 0.6), (0.4, 0.7), (0.5, 0.8)]):
        add_cell(store, "random", BUDGET, seed, {"gsm8k": base, "svamp": 0.2, "bignum": 0.0})
        add_cell(store, "s2l", BUDGET, seed, {"gsm8k": sel, "svamp": 0.3, "bignum": 0.0})
    add_cell(store, "full", 1000, 0, {"gsm8k": 0.9, "svamp": 0.5, "bignum": 0.0})
    return store


def test_a_set_at_the_floor_is_flagged_shown_untested_and_left_out_of_the_averages(tmp_path):
    board = build_leaderboard(floor_store(tmp_path))
    table = board.tables[0]
    columns = {c.key: c for c in table.columns}
    assert columns["bignum"].floor and not columns["gsm8k"].floor and not columns["svamp"].floor
    assert columns["avg"].tasks == ("gsm8k", "svamp") and columns["avg_ood"].tasks == ("svamp",)
    s2l = table.row("s2l").cells
    assert s2l["bignum"].summary.mean == 0.0  # shown
    assert s2l["bignum"].test is None and s2l["bignum"].note == FLOOR_LABEL  # not tested
    assert s2l["avg"].summary.mean == pytest.approx((0.7 + 0.3) / 2)  # bignum does not dilute the average
    md = render(board, "md")
    assert f"| bignum ({FLOOR_LABEL}) |" in md  # its group is unknown in this store: the flag alone
    assert f"{FLOOR_LABEL}: on target tiny, every row (the full-data reference included) stays at or below 2% " \
           "on bignum" in md
    rows = list(csv.DictReader(io.StringIO(render(board, "csv"))))
    assert {r["floor"] for r in rows if r["column"] == "bignum"} == {"1"}
    assert r"bignum$^\flat$" in render(board, "latex") and FLOOR_LABEL in render(board, "html")


def test_a_set_where_the_reference_rises_above_the_floor_is_not_at_the_floor(tmp_path):
    store = floor_store(tmp_path)
    add_cell(store, "full", 1000, 1, {"gsm8k": 0.9, "svamp": 0.5, "bignum": 0.05})
    columns = {c.key: c for c in build_leaderboard(store).tables[0].columns}
    assert not columns["bignum"].floor and "bignum" in columns["avg"].tasks


def test_averages_need_both_groups_for_the_id_and_ood_columns(tmp_path):
    store = ResultsStore(tmp_path)
    for seed in range(2):
        add_cell(store, "random", BUDGET, seed, {"gsm8k": 0.4, "svamp": 0.3, "asdiv": 0.2})
    keys = [c.key for c in build_leaderboard(store).tables[0].columns]
    assert keys == ["gsm8k", "svamp", "asdiv", "avg_id", "avg_ood", "avg"]  # asdiv: group unknown, overall only
    assert build_leaderboard(store).tables[0].columns[-1].tasks == ("gsm8k", "svamp", "asdiv")


def aa_store(folder, aa_scores=(0.6, 0.7, 0.8)):
    store = ResultsStore(folder)
    for seed, (base, aa) in enumerate(zip((0.3, 0.4, 0.5), aa_scores, strict=True)):
        add_cell(store, "random", BUDGET, seed, {"gsm8k": base})
        add_cell(store, "random-aa", BUDGET, seed, {"gsm8k": aa})
    return store


def write_config(folder, selectors):
    (folder / "config.json").write_text(json.dumps({"config": {"selectors": selectors}}))


def test_the_aa_control_is_read_from_the_runs_config_and_a_marked_one_flags_its_table(tmp_path):
    store = aa_store(tmp_path)
    write_config(tmp_path, [{"name": "random", "label": None, "options": {}},
                            {"name": "random", "label": "random-aa", "options": {"stream": 1}}])
    board = build_leaderboard(store)
    table = board.tables[0]
    assert table.row("random-aa").control and not table.row("random").control
    assert table.row("random-aa").cells["gsm8k"].verdict == "better"
    assert len(table.notes) == 1 and table.notes[0].startswith("A/A control flagged: random-aa")
    md = render(board, "md")
    assert "| random-aa (A/A control) |" in md and "A/A control flagged" in md
    assert "A/A control flagged" in render(board, "html") and "A/A control flagged" in render(board, "latex")
    assert {r["control"] for r in csv.DictReader(io.StringIO(render(board, "csv")))
            if r["selector"] == "random-aa"} == {"1"}


def test_an_unmarked_aa_control_adds_no_flag_and_controls_can_be_named(tmp_path):
    store = aa_store(tmp_path, aa_scores=(0.3, 0.45, 0.45))
    table = build_leaderboard(store, controls=["random-aa"]).tables[0]
    assert table.row("random-aa").control and table.row("random-aa").cells["gsm8k"].verdict == "tie"
    assert table.notes == []
    assert not build_leaderboard(store).tables[0].row("random-aa").control  # no config, none named
    write_config(tmp_path, "not a list")
    with pytest.raises(DataError, match="config.json"):
        build_leaderboard(store)


def one_seed_store(folder):
    store = ResultsStore(folder)
    add_cell(store, "random", BUDGET, 0, {"gsm8k": 0.30})
    add_cell(store, "s2l", BUDGET, 0, {"gsm8k": 0.90})
    return store


def test_a_one_seed_board_makes_no_mark_and_says_why(tmp_path):
    board = build_leaderboard(one_seed_store(tmp_path))
    cell = board.tables[0].row("s2l").cells["gsm8k"]
    assert cell.test.mean_diff == pytest.approx(0.6) and cell.verdict == "untested" and cell.p_holm is None
    md = render(board, "md")
    assert ONE_SEED_NOTE in md and "†" not in md.split("Mean ±")[0] and "(untested: one seed)" in md


def test_a_seed_sd_measured_elsewhere_tests_one_seed_and_is_named(tmp_path):
    store = one_seed_store(tmp_path / "one")
    big = build_leaderboard(make_store(tmp_path / "several"))  # 3 seeds: gsm8k std 0.1 or 0
    csv_path = tmp_path / "several.csv"
    csv_path.write_text(render(big, "csv"))
    source = seed_sd_from_board(csv_path)
    sd, df = source.per_column["gsm8k"]
    # pooled over the rows with several seeds: random .1, s2l .1, el2n 0, bad 0 (two df each)
    assert sd == pytest.approx(np.sqrt((2 * 0.01 + 2 * 0.01) / 8)) and df == 8
    board = build_leaderboard(store, seed_sd=source)
    cell = board.tables[0].row("s2l").cells["gsm8k"]
    assert cell.test.tested and cell.test.seed_sd_source == source.name and cell.test.df == pytest.approx(8)
    assert cell.verdict == "better"  # +60 points against a seed sd of ~7
    md = render(board, "md")
    assert f"A side with one seed is tested with {source.name}" in md and ONE_SEED_NOTE not in md
    # a huge given sd: the same difference is no longer significant
    assert build_leaderboard(store, seed_sd=given_seed_sd(0.5)).tables[0].row("s2l").cells["gsm8k"].verdict == "tie"


def test_seed_sd_inputs_are_checked(tmp_path):
    with pytest.raises(DataError, match="no such leaderboard CSV"):
        seed_sd_from_board(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="not a leaderboard CSV"):
        seed_sd_from_board(tmp_path / "bad.csv")
    with pytest.raises(DataError, match="positive"):
        given_seed_sd(-1.0)


def test_cli_seed_sd_options(tmp_path, capsys):
    one_seed_store(tmp_path / "one")
    assert main(["leaderboard", str(tmp_path / "one"), "--seed-sd", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "a seed sd of 0.05 given with --seed-sd" in out and "†" in out
    assert main(["leaderboard", str(tmp_path / "one"), "--seed-sd-from", str(tmp_path / "nope.csv")]) == 2


def test_the_full_reference_as_baseline_tests_every_row_against_it_at_every_budget(tmp_path):
    """``--baseline full``: the paper's "a subset beats the full data" question, by the board's own test."""
    store = ResultsStore(tmp_path)
    for seed, (base, sel, full) in enumerate([(0.30, 0.60, 0.50), (0.40, 0.70, 0.55), (0.50, 0.80, 0.55)]):
        add_cell(store, "random", BUDGET, seed, {"gsm8k": base})
        add_cell(store, "s2l", BUDGET, seed, {"gsm8k": sel})
        add_cell(store, "random", BUDGET // 2, seed, {"gsm8k": base - 0.1})
        add_cell(store, "full", 1000, seed, {"gsm8k": full})
    board = build_leaderboard(store, baseline="full")
    assert len(board.tables) == 2
    for table in board.tables:
        for row in table.rows:
            cell = row.cells["gsm8k"]
            if row.selector == "full":
                assert cell.test is None
            else:  # random is tested too: it is not the baseline here
                assert cell.test is not None and cell.test.n_seed_pairs == 3 and cell.test.tested
    s2l = next(t for t in board.tables if t.budget == BUDGET).row("s2l").cells["gsm8k"]
    assert s2l.test.mean_diff == pytest.approx(np.mean([0.10, 0.15, 0.25]))
    assert "difference to the full-data reference (full) of the same target" in render(board, "md")
    assert main(["leaderboard", str(tmp_path), "--baseline", "full"]) == 0
