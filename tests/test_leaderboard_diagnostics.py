"""The selection diagnostics under each table (issue #40): per row, the seeds with a regime record, the source
mix's distance from the pool's, the largest source shift, the share of planted defects and the selector's own
regime, computed from the cells' regime records and regenerated from a board's committed results/."""

from __future__ import annotations

import pytest
from test_leaderboard_store import BUDGET, POOL, cell_id, make_store

from s2lbench.gym.defects import PlantedDefects, defect_shares, planted_defects
from s2lbench.report.diagnostics import TITLE, WARNED
from s2lbench.report.leaderboard import FORMATS, build_leaderboard, render
from s2lbench.results.export import export_results, open_results
from s2lbench.results.store import Cell, ResultsStore

WARNING = "cluster balancing is inactive: test"


def _record(selected_a: float, any_defect: float | None, summary: str | None = None,
            warnings: list[str] | None = None) -> dict:
    """A regime record: two sources, half the pool each; the subset takes ``selected_a`` of its rows from a."""
    record: dict = {"source_mix": {
        "a": {"pool": 500, "pool_share": 0.5, "selected": 0, "selected_share": selected_a},
        "b": {"pool": 500, "pool_share": 0.5, "selected": 0, "selected_share": round(1 - selected_a, 4)}},
        "source_mix_tv": round(abs(selected_a - 0.5), 4)}
    if summary is not None:
        record["selector"] = {"summary": summary, "facts": {}, "warnings": warnings or []}
    if any_defect is not None:
        record["planted_defects"] = {"wrong_answer": any_defect, "clean": round(1 - any_defect, 4),
                                     "any": any_defect, "pool_any": 0.24}
    return record


def _set_regime(store: ResultsStore, cid: str, regime: dict) -> None:
    store.upsert_cell(Cell(**{**store.get_cell(cid).__dict__, "regime": regime}))


def diagnostics_store(folder) -> ResultsStore:
    """make_store's board, with regime records on random (no defects recorded at seed 2), s2l (its own
    summary; seed 1 warned) and the full reference (the pool: its planted defects alone); el2n, bad and solo
    recorded none."""
    store = make_store(folder)
    for seed, (mix, defects) in enumerate([(0.5, 0.2), (0.6, 0.3), (0.7, None)]):
        _set_regime(store, cell_id("random", BUDGET, seed), _record(mix, defects))
    for seed, (mix, defects) in enumerate([(0.9, 0.05), (0.8, 0.10), (0.7, 0.15)]):
        _set_regime(store, cell_id("s2l", BUDGET, seed),
                    _record(mix, defects, f"K=100, seed {seed}", [WARNING] if seed == 1 else []))
    _set_regime(store, cell_id("full", POOL, 0),
                {"planted_defects": {"wrong_answer": 0.24, "clean": 0.76, "any": 0.24, "pool_any": 0.24}})
    return store


def test_the_diagnostics_show_each_rows_means_over_seeds_and_its_lowest_seeds_words(tmp_path):
    table = build_leaderboard(diagnostics_store(tmp_path)).tables[0]
    d = table.diagnostics
    assert d is not None and d.pool_defects_any == (0.24,) and d.has_defects
    lines = {line.selector: line for line in d.lines}
    assert [line.selector for line in d.lines] == [r.selector for r in table.rows]  # the table's order
    random, s2l, full = lines["random"], lines["s2l"], lines["full"]
    assert random.seeds == 3 and random.source_mix_tv == pytest.approx(0.1)
    assert random.defects_any == pytest.approx(0.25)  # the two seeds that recorded defects
    assert random.summary is None and not random.warned and random.largest_shift == "b: 50.0% vs 50.0%"
    assert s2l.seeds == 3 and s2l.source_mix_tv == pytest.approx(0.3) and s2l.defects_any == pytest.approx(0.10)
    assert s2l.summary == "K=100, seed 0" and s2l.warned  # seed 0's words, seed 1's warning
    assert s2l.largest_shift == "b: 10.0% vs 50.0%"
    assert full.seeds == 1 and full.source_mix_tv is None and full.defects_any == pytest.approx(0.24)
    assert lines["el2n"].seeds == 0 and lines["el2n"].defects_any is None

    md = render(build_leaderboard(diagnostics_store(tmp_path / "again")), "md")
    assert TITLE in md
    assert ("| selector | budget | seeds with a record | source mix TV vs pool | largest source shift | "
            "planted defects (pool 24.0%) | selector's regime |") in md
    assert "| random | 100 | 3 | 0.100 | b: 50.0% vs 50.0% | 25.0% | — |" in md
    assert f"| s2l | 100 | 3 | 0.300 | b: 10.0% vs 50.0% | 10.0% | K=100, seed 0 {WARNED} |" in md
    assert "| el2n | 100 | 0 | — | — | — | — |" in md
    assert "| *full (reference)* | 1000 | 1 | — | — | 24.0% | — |" in md
    assert "planted defects = the share of the subset's rows the gym planted a defect in" in md


def test_every_format_renders_the_diagnostics(tmp_path):
    board = build_leaderboard(diagnostics_store(tmp_path))
    html = render(board, "html")
    assert "<th>planted defects (pool 24.0%)</th>" in html and f"<td>K=100, seed 0 {WARNED}</td>" in html
    latex = render(board, "latex")
    assert r"Selection diagnostics, target tiny, budget 100" in latex and r"25.0\%" in latex
    assert latex.count(r"\begin{table}") == 2 * len(board.tables)


def test_a_store_without_regime_records_has_no_diagnostics(tmp_path):
    board = build_leaderboard(make_store(tmp_path))
    assert all(t.diagnostics is None for t in board.tables)
    for fmt in ("md", "html", "latex"):
        assert "Selection diagnostics" not in render(board, fmt)


def test_off_the_gym_the_planted_defects_column_is_left_out(tmp_path):
    store = make_store(tmp_path)
    _set_regime(store, cell_id("s2l", BUDGET, 0), _record(0.9, None, "K=100"))
    board = build_leaderboard(store)
    assert board.tables[0].diagnostics is not None and not board.tables[0].diagnostics.has_defects
    md = render(board, "md")
    assert "| s2l | 100 | 1 | 0.400 | b: 10.0% vs 50.0% | K=100 |" in md
    assert "planted defects" not in md


def test_the_diagnostics_regenerate_from_a_boards_exported_results(tmp_path):
    store = diagnostics_store(tmp_path / "run")
    export_results(store, tmp_path / "export")
    exported = open_results(tmp_path / "export")
    assert exported.get_cell(cell_id("full", POOL, 0)).regime == store.get_cell(cell_id("full", POOL, 0)).regime
    for fmt in FORMATS:
        assert render(build_leaderboard(exported), fmt) == render(build_leaderboard(store), fmt)


def test_the_planted_defects_record_is_the_compare_subsets_share():
    defects = {"1": "truncated", "2": "truncated", "3": "wrong_answer", "9": "wrong_answer"}
    pool = [str(i) for i in range(10)]
    record = planted_defects(["1", "2", "3", "4"], defects, pool)
    shares = defect_shares({"1", "2", "3", "4"}, defects, ["truncated", "wrong_answer"])
    assert record == {**shares, "any": 0.75, "pool_any": 0.4}
    assert PlantedDefects(defects, pool).record(pool)["any"] == 0.4  # the full reference: the pool's share
