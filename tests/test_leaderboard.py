"""Leaderboard tables on a hand-built store: values, std, bold, paired-test marks, renderers and the CLI."""

from __future__ import annotations

import csv
import io
import json

import pytest
from test_leaderboard_store import BUDGET, N_EXAMPLES, POOL, add_cell, make_store

from s2lbench.cli import main
from s2lbench.errors import DataError
from s2lbench.report.leaderboard import build_leaderboard, render
from s2lbench.report.stats import holm_adjust, paired_test
from s2lbench.results.store import ResultsStore


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def board(store):
    return build_leaderboard(store)


def test_one_table_per_budget_with_reference_row_and_column_groups(board):
    assert len(board.tables) == 1
    table = board.tables[0]
    assert table.budget == BUDGET
    # in-domain, out-of-domain, then the in-domain, out-of-domain and overall averages
    assert [c.key for c in table.columns] == ["gsm8k", "svamp", "avg_id", "avg_ood", "avg"]
    assert [c.in_domain for c in table.columns] == [True, False, None, None, None]
    assert [c.tasks for c in table.columns[2:]] == [("gsm8k",), ("svamp",), ("gsm8k", "svamp")]
    assert [r.selector for r in table.rows] == ["random", "bad", "el2n", "s2l", "solo", "full"]
    assert table.row("full").budget == POOL and table.row("full").fraction == 1.0
    assert board.scale == 100.0  # every score lies in [0, 1]


def test_mean_and_sample_std_over_seeds(board):
    table = board.tables[0]
    random_gsm8k = table.row("random").cells["gsm8k"].summary
    assert random_gsm8k.mean == pytest.approx(0.4)
    assert random_gsm8k.std == pytest.approx(0.1)  # ddof=1 over .3 .4 .5
    assert random_gsm8k.n_seeds == 3
    assert table.row("random").cells["svamp"].summary.std == pytest.approx(0.0)
    s2l_avg = table.row("s2l").cells["avg"].summary  # per-seed averages .35 .45 .55
    assert s2l_avg.mean == pytest.approx(0.45) and s2l_avg.std == pytest.approx(0.1)
    solo = table.row("solo").cells["gsm8k"].summary
    assert solo.n_seeds == 1 and solo.std is None


def test_bold_marks_the_best_selector_per_column_never_the_reference(board):
    table = board.tables[0]
    bold = {c.key: [r.selector for r in table.rows if r.cells[c.key].best] for c in table.columns}
    assert bold == {"gsm8k": ["s2l"], "svamp": ["el2n"], "avg_id": ["s2l"], "avg_ood": ["el2n"], "avg": ["s2l"]}
    assert table.row("full").cells["gsm8k"].summary.mean > table.row("s2l").cells["gsm8k"].summary.mean


def test_ties_share_bold_and_a_column_where_all_tie_has_none(tmp_path):
    store = ResultsStore(tmp_path)
    for selector, acc in (("random", 0.2), ("s2l", 0.5), ("el2n", 0.5)):
        add_cell(store, selector, 10, 0, {"gsm8k": acc, "svamp": 0.0})
    table = build_leaderboard(store).tables[0]
    assert [r.selector for r in table.rows if r.cells["gsm8k"].best] == ["el2n", "s2l"]
    assert not any(r.cells["svamp"].best for r in table.rows)


def test_bold_follows_lower_is_better(tmp_path):
    store = ResultsStore(tmp_path)
    for seed, (base, sel) in enumerate([(0.9, 0.1), (0.8, 0.2), (0.9, 0.1)]):
        add_cell(store, "random", 10, seed, {"gsm8k": base}, metric="error_rate", higher_is_better=False)
        add_cell(store, "s2l", 10, seed, {"gsm8k": sel}, metric="error_rate", higher_is_better=False)
    table = build_leaderboard(store).tables[0]
    assert table.row("s2l").cells["gsm8k"].best and not table.row("random").cells["gsm8k"].best
    # lower error than random: the difference is negative, and that is "better"
    assert table.row("s2l").cells["gsm8k"].test.mean_diff == pytest.approx(-2.2 / 3)
    assert table.row("s2l").cells["gsm8k"].test.p_value < 0.05
    assert table.row("s2l").cells["gsm8k"].verdict == "better"


def test_paired_tests_against_random(store, board):
    table = board.tables[0]
    s2l = table.row("s2l").cells
    assert s2l["gsm8k"].test.mean_diff == pytest.approx(0.3)
    assert 0 < s2l["gsm8k"].test.low <= 0.3 <= s2l["gsm8k"].test.high
    assert s2l["gsm8k"].verdict == "better"
    assert s2l["svamp"].test.mean_diff == pytest.approx(0.0) and s2l["svamp"].verdict == "tie"
    # -30 points from 3 seed pairs and 40 examples, concentrated on a dozen of them: not significant at 5%
    assert table.row("bad").cells["gsm8k"].test.mean_diff == pytest.approx(-0.3)
    assert table.row("bad").cells["gsm8k"].verdict == "tie" and s2l["gsm8k"].test.df == pytest.approx(2)
    assert table.row("el2n").cells["gsm8k"].test.pairing == "seeds"
    assert table.row("el2n").cells["gsm8k"].test.n_seed_pairs == 3
    assert table.row("solo").cells["gsm8k"].test.n_seed_pairs == 1  # seed 0 with random's seed 0
    assert table.row("solo").cells["gsm8k"].verdict == "untested"  # one seed: no seed variance, no mark
    assert table.row("random").cells["gsm8k"].test is None
    assert table.row("full").cells["gsm8k"].test is None
    # the table's interval is exactly the documented bootstrap over the samples files
    scores = {}
    for selector in ("s2l", "random"):
        scores[selector] = {}
        for seed in range(3):
            rows = store.load_samples(f"samples/tiny-{selector}-{BUDGET}-s{seed}/gsm8k.jsonl")
            scores[selector][seed] = {r["index"]: r["scores"]["accuracy"] for r in rows}
    direct = paired_test([(scores["s2l"], scores["random"])])
    assert (direct.low, direct.high, direct.p_value) == (s2l["gsm8k"].test.low, s2l["gsm8k"].test.high,
                                                       s2l["gsm8k"].test.p_value)
    assert direct.n_examples == N_EXAMPLES


def test_markdown_shows_bold_marks_seed_counts_and_intervals(board):
    md = render(board, "md")
    main_table = md.split("Difference to random")[0]
    rows = {line.split("|")[1].strip(): line for line in main_table.splitlines() if line.startswith("| ")}
    assert "**70.0 ± 10.0** †" in rows["s2l"]
    assert "**30.0 ± 0.0**" in rows["el2n"]
    assert "10.0 ± 0.0 |" in rows["bad"]  # not significant: no mark
    assert "40.0 (1 seed) |" in rows["solo"]  # one seed: untested, no mark
    assert "40.0 (1 seed)" in rows["solo"]
    assert rows["s2l"].split("|")[4].strip() == "3"  # seeds column
    assert rows["solo"].split("|")[4].strip() == "1"
    assert "12 s / 1e+12 FLOPs" in rows["s2l"]  # proxy 10 s + selection 2 s
    assert "*full (reference)*" in md and "**90.0" not in md
    diff_rows = [line for line in md.splitlines() if line.startswith("| s2l | 100 | 3 |")]
    assert len(diff_rows) == 1 and "+30.0 [" in diff_rows[0]


def test_csv_latex_html_carry_the_same_numbers(board):
    rows = list(csv.DictReader(io.StringIO(render(board, "csv"))))
    s2l_gsm8k = next(r for r in rows if r["selector"] == "s2l" and r["column"] == "gsm8k")
    assert float(s2l_gsm8k["mean"]) == pytest.approx(0.7) and float(s2l_gsm8k["std"]) == pytest.approx(0.1)
    assert s2l_gsm8k["best"] == "1" and s2l_gsm8k["verdict"] == "better" and s2l_gsm8k["group"] == "in-domain"
    assert float(s2l_gsm8k["diff_vs_baseline"]) == pytest.approx(0.3)
    assert next(r for r in rows if r["selector"] == "solo" and r["column"] == "gsm8k")["std"] == ""
    assert len(rows) == 6 * 5
    latex = render(board, "latex")
    assert r"\textbf{70.0}{\scriptsize$\pm$10.0}$^\dagger$" in latex  # significant, not after Holm
    assert r"\multicolumn{1}{c}{in-domain}" in latex and r"\begin{tabular}" in latex and "Full data" in latex
    html = render(board, "html")
    assert "<b>70.0</b>" in html and "(1 seed)" in html and 'class="reference"' in html


def test_holm_correction_runs_over_every_test_of_a_table(board):
    table = board.tables[0]
    tested = [c for r in table.rows for c in r.cells.values() if c.test is not None and c.test.tested]
    assert len(tested) == 3 * 5  # bad, el2n, s2l x 5 columns; solo has one seed: untested, not in the family
    assert all(c.p_holm is None for c in table.row("solo").cells.values())
    assert [c.p_holm for c in tested] == pytest.approx(holm_adjust([c.test.p_value for c in tested]))
    s2l_gsm8k = table.row("s2l").cells["gsm8k"]
    # significant at 5% on its own, not after fifteen tests
    assert s2l_gsm8k.verdict == "better" and s2l_gsm8k.test.p_value < 0.05 < s2l_gsm8k.p_holm
    md = render(board, "md")
    diff_rows = {line.split("|")[1].strip(): line for line in md.split("Difference to random")[1].splitlines()
                 if line.startswith("| ")}
    assert diff_rows["s2l"].split("|")[4].strip().endswith("] †")
    assert "untested: one seed" in diff_rows["solo"]
    assert "Holm's correction" in md
    rows = list(csv.DictReader(io.StringIO(render(board, "csv"))))
    csv_s2l = next(r for r in rows if r["selector"] == "s2l" and r["column"] == "gsm8k")
    assert float(csv_s2l["p_holm"]) == pytest.approx(s2l_gsm8k.p_holm)
    assert float(csv_s2l["p_value"]) == pytest.approx(s2l_gsm8k.test.p_value)
    assert next(r for r in rows if r["selector"] == "random" and r["column"] == "gsm8k")["p_holm"] == ""


def test_grouping_by_target_bolds_within_each_budget(tmp_path):
    store = make_store(tmp_path, extra_budget=300)
    board = build_leaderboard(store, by="target")
    assert len(board.tables) == 1
    table = board.tables[0]
    assert table.budget is None
    assert table.row("s2l", 100).cells["gsm8k"].best and table.row("s2l", 300).cells["gsm8k"].best
    assert table.row("random", 300).cells["svamp"].best and table.row("el2n", 100).cells["svamp"].best
    assert len(build_leaderboard(store, by="budget").tables) == 2


def test_unfinished_cells_are_left_out_and_counted(tmp_path):
    store = make_store(tmp_path)
    add_cell(store, "crashy", BUDGET, 0, {"gsm8k": 1.0}, status="failed")
    board = build_leaderboard(store)
    assert "crashy" not in [r.selector for r in board.tables[0].rows]
    assert any("1 failed" in note for note in board.notes)
    assert "1 failed" in render(board, "md")


def test_one_seed_rows_are_untested_and_the_footnote_says_why_and_only_then(board, tmp_path):
    from s2lbench.report.leaderboard import ONE_SEED_NOTE

    cell = board.tables[0].row("solo").cells["gsm8k"]
    assert cell.test.n_seed_pairs == 1 and not cell.test.tested and cell.note == "one seed: no seed variance"
    assert ONE_SEED_NOTE in render(board, "md")
    store = ResultsStore(tmp_path)
    for seed in range(2):
        add_cell(store, "random", BUDGET, seed, {"gsm8k": 0.3})
        add_cell(store, "s2l", BUDGET, seed, {"gsm8k": 0.6})
    assert ONE_SEED_NOTE not in render(build_leaderboard(store), "md")


def test_a_running_cell_nobody_runs_is_counted_as_interrupted(tmp_path):
    store = make_store(tmp_path)
    live = add_cell(store, "live", BUDGET, 0, {"gsm8k": 1.0}, status="running")
    add_cell(store, "killed", BUDGET, 0, {"gsm8k": 1.0}, status="running")
    with store.cell_lock(live):
        board = build_leaderboard(store)
    assert "not shown: 1 interrupted, 1 running cell(s)" in board.notes
    assert "killed" not in [r.selector for r in board.tables[0].rows]


def test_a_metric_without_per_example_scores_is_shown_untested(tmp_path):
    store = ResultsStore(tmp_path)
    for selector in ("random", "s2l"):
        cid = add_cell(store, selector, 10, 0, {"gsm8k": 0.5})
        store.write_samples(cid, "gsm8k", [{"index": 0, "scores": {"exact": 1.0}}])  # no "accuracy" per example
    cell = build_leaderboard(store).tables[0].row("s2l").cells["gsm8k"]
    assert cell.summary.mean == pytest.approx(0.5)
    assert cell.test is None and cell.note == "no per-example scores"


def test_no_random_row_means_no_test_and_says_why(tmp_path):
    store = ResultsStore(tmp_path)
    add_cell(store, "s2l", 10, 0, {"gsm8k": 0.5})
    cell = build_leaderboard(store).tables[0].row("s2l").cells["gsm8k"]
    assert cell.test is None and cell.note == "no random row at this budget"


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no results store"):
        build_leaderboard(tmp_path / "nowhere")
    store = ResultsStore(tmp_path / "empty")
    with pytest.raises(DataError, match="no finished"):
        build_leaderboard(store)
    store = make_store(tmp_path / "broken")
    path = store.folder / f"samples/tiny-s2l-{BUDGET}-s1/gsm8k.jsonl"
    path.write_text(json.dumps({"index": 0, "scores": {"accuracy": 1.0}}) + "\n" + json.dumps({"index": 1}) + "\n")
    with pytest.raises(DataError, match=r"gsm8k\.jsonl, line 2.*scores\['accuracy'\]"):
        build_leaderboard(store)
    with pytest.raises(DataError, match="--by"):
        build_leaderboard(make_store(tmp_path / "ok"), by="selector")


def test_cli_writes_tables_and_plots(tmp_path, capsys):
    make_store(tmp_path / "results", extra_budget=300)
    out = tmp_path / "board.tex"
    rc = main(["leaderboard", str(tmp_path / "results"), "--format", "latex", "--out", str(out),
               "--resamples", "200", "--tables", str(tmp_path / "tables"), "--plots", str(tmp_path / "plots")])
    assert rc == 0
    assert r"\textbf{" in out.read_text()
    assert sorted(p.name for p in (tmp_path / "tables").iterdir() if not p.name.startswith(".")) == [
        "leaderboard.csv", "leaderboard.html", "leaderboard.md", "leaderboard.tex", "provenance.json", "results"]
    prov = json.loads((tmp_path / "tables" / "provenance.json").read_text())
    assert prov["cells_by_status"] == {"done": 3 * 4 + 1 + 6 + 1}
    assert prov["paired_test"]["method"].startswith("seed-level paired t")
    assert prov["paired_test"]["one_seed"] == "untested"
    assert prov["paired_test"]["multiple_comparisons"] == "holm over each table's tests, family-wise 0.05"
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["scaling-avg_id.png", "scaling-avg_ood.png", "scaling-gsm8k.png", "scaling-svamp.png",
                    "scaling.png"]
    assert all((tmp_path / "plots" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert main(["leaderboard", str(tmp_path / "results"), "--format", "csv", "--resamples", "200"]) == 0
    assert capsys.readouterr().out.startswith("table,target,selector")
    assert main(["leaderboard", str(tmp_path / "missing")]) == 2
