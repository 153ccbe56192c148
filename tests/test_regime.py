"""Selection regime diagnostics: what a selection reports about the regime it ran in, and where it is shown."""

from __future__ import annotations

import json

import numpy as np
import pytest

from s2lbench.cli import main
from s2lbench.commands.run import print_regime_warnings
from s2lbench.commands.select import diagnostics_path
from s2lbench.errors import S2LBenchError
from s2lbench.plugin_manager import get_hooks
from s2lbench.pool.records import Pool, SFTExample
from s2lbench.report.regime import regime_notes, regime_warning_lines
from s2lbench.results.store import Cell, ResultsStore
from s2lbench.selection import Selection, Selector, run_selector
from s2lbench.selection.regime import (
    PAPER_PICKS_PER_CLUSTER,
    Regime,
    describe,
    source_mix,
    total_variation,
)
from s2lbench.signals.signalset import SignalSet

S2L = get_hooks().selector("s2l")


def _pool(sources) -> Pool:
    return Pool([SFTExample(id=f"e{i}", instruction="q", output="a", source=s) for i, s in enumerate(sources)])


def _signals(n: int) -> SignalSet:
    return SignalSet({"loss": np.random.default_rng(3).random((n, 4)).astype(np.float32)})


def test_source_mix_and_its_distance_from_the_pool():
    mix = source_mix(["a", "a", "a", "b"], np.array([0, 3]))
    assert mix == {"a": {"pool": 3, "pool_share": 0.75, "selected": 1, "selected_share": 0.5},
                   "b": {"pool": 1, "pool_share": 0.25, "selected": 1, "selected_share": 0.5}}
    assert total_variation(mix) == 0.25
    assert total_variation(source_mix(["a", "b"], np.array([0, 1]))) == 0.0


@pytest.mark.parametrize("k,budget,picks,rows,warned", [
    (20, 30, 0.75, 5.0, True),  # 15 picks per source over 20 clusters: below one per cluster
    (5, 30, 3.0, 20.0, False),
])
def test_s2l_reports_k_rows_and_picks_per_cluster_and_warns_below_one_pick(k, budget, picks, rows, warned):
    result = run_selector(S2L, _pool(["a"] * 100 + ["b"] * 100), budget, 0, _signals(200), {"n_clusters": k})
    record = result.diagnostics["regime"]
    facts = record["selector"]["facts"]
    assert facts["K"] == k and facts["pool_rows_per_cluster"] == rows
    assert facts["picks_per_cluster"] == {"a": picks, "b": picks}
    labels = result.diagnostics["labels"]
    picked_clusters = np.unique(labels[result.positions]).size
    assert facts["clusters_picked"] == picked_clusters and facts["clusters"] == 2 * k
    assert facts["clusters_picked_share"] == round(picked_clusters / (2 * k), 4)
    if warned:
        assert facts["clusters_picked_share"] < 1.0  # below one pick per cluster some clusters get none
    assert f"K={k}" in record["selector"]["summary"]
    warnings = record["selector"]["warnings"]
    assert bool(warnings) == warned
    if warned:
        assert warnings[0].startswith("cluster balancing is inactive: 2 of 2 source group(s)")
        assert f"~{PAPER_PICKS_PER_CLUSTER} picks per cluster" in warnings[0]


def test_without_source_balancing_the_regime_says_one_group():
    result = run_selector(S2L, _pool(["a"] * 100 + ["b"] * 100), 30, 0, _signals(200),
                          {"n_clusters": 10, "balance_sources": False})
    facts = result.diagnostics["regime"]["selector"]["facts"]
    assert facts["balance_sources"] is False and facts["picks_per_cluster"] == {"(all)": 3.0}
    assert "no source balancing" in result.diagnostics["regime"]["selector"]["summary"]


class _Plain(Selector):
    name = "plain-third-party"

    def select(self, ctx):
        return np.arange(ctx.budget)


class _Reporting(Selector):
    name = "reporting"

    def select(self, ctx):
        return Selection(np.arange(ctx.budget), regime=Regime("window of 4", {"window": 4}, ["too small"]))


class _Broken(Selector):
    name = "broken-regime"

    def select(self, ctx):
        return Selection(np.arange(ctx.budget), regime={"summary": "a dict"})


def test_every_selection_records_its_source_mix_and_a_selectors_own_regime_where_given():
    pool = _pool(["a"] * 6 + ["b"] * 2)
    plain = run_selector(_Plain, pool, 4, 0).diagnostics["regime"]
    assert set(plain) == {"source_mix", "source_mix_tv"} and plain["source_mix"]["a"]["selected"] == 4
    assert plain["source_mix_tv"] == 0.25 and describe(plain).startswith("source mix vs pool: total variation 0.250")
    own = run_selector(_Reporting, pool, 4, 0).diagnostics["regime"]["selector"]
    assert own == {"summary": "window of 4", "facts": {"window": 4}, "warnings": ["too small"]}
    with pytest.raises(S2LBenchError, match="broke the contract: Selection.regime must be a Regime"):
        run_selector(_Broken, pool, 4, 0)


def _cell(selector: str, seed: int, regime: dict, budget: int = 60, target: str = "t") -> Cell:
    return Cell(f"{target}-{selector}-{budget}-{seed}", "e", selector, budget, 0.1, seed, target, status="done",
                regime=regime)


def _s2l_record(warning: str | None) -> dict:
    return {"source_mix": {"a": {"pool": 5, "pool_share": 0.5, "selected": 1, "selected_share": 0.5}},
            "source_mix_tv": 0.0,
            "selector": {"summary": "K=100, 5.5 pool rows per cluster", "facts": {},
                         "warnings": [warning] if warning else []}}


def test_the_board_footnotes_each_selector_and_budget_once_with_its_warnings():
    inactive = "cluster balancing is inactive: 2 of 2 source group(s); the paper's regime has ~21 picks per cluster"
    cells = [_cell("s2l", 1, _s2l_record(inactive)), _cell("s2l", 0, _s2l_record(inactive)),
             _cell("s2l", 0, _s2l_record(inactive), target="u"),
             _cell("random", 0, {"source_mix": _s2l_record(None)["source_mix"], "source_mix_tv": 0.0}),
             _cell("full", 0, _s2l_record(inactive), budget=600), _cell("old", 0, {})]
    notes = regime_notes(cells)
    # s2l only: random reported no regime of its own (its source mix is in the board's diagnostics table), and
    # the reference and a cell without a record are left out
    assert len(notes) == 1
    [s2l_note] = notes
    assert s2l_note.startswith("Selection regime of s2l at 60 rows, seed 0 of 2: K=100, 5.5 pool rows per cluster")
    assert s2l_note.count("Warning: cluster balancing is inactive") == 1 and "~21 picks per cluster" in s2l_note
    assert regime_warning_lines(cells) == [f"s2l at 60 rows (3 cell(s)): {inactive}"]


def test_a_one_source_pool_has_no_source_shift_to_show():
    from s2lbench.selection.regime import describe, largest_shift

    record = {"source_mix": {"indiana": {"pool": 10, "pool_share": 1.0, "selected": 5, "selected_share": 1.0}},
              "source_mix_tv": 0.0}
    assert largest_shift(record) is None and describe(record) == ""
    assert regime_notes([_cell("random", 0, record)]) == []


def test_the_run_summary_repeats_the_warnings(tmp_path, capsys):
    store = ResultsStore(tmp_path)
    store.upsert_cell(_cell("s2l", 0, _s2l_record("cluster balancing is inactive: x")))
    print_regime_warnings(store, "e")
    out = capsys.readouterr().out
    assert "⚠ selection regime" in out and "s2l at 60 rows (1 cell(s)): cluster balancing is inactive: x" in out
    print_regime_warnings(store, "other-experiment")
    assert capsys.readouterr().out == ""


def test_select_prints_the_regime_and_the_warning(tmp_path, capsys):
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"id": f"x{i}", "instruction": "q", "output": "a",
                                        "source": "s" if i % 2 else "t"}) + "\n" for i in range(200)))
    trajectories = tmp_path / "traj.npy"
    np.save(trajectories, np.random.default_rng(0).random((200, 4)).astype(np.float32))
    out = tmp_path / "subset.jsonl"
    assert main(["select", "--pool", str(pool), "--selector", "s2l", "--budget", "20", "--trajectories",
                 str(trajectories), "--option", "n_clusters=20", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "regime: K=20, 5 pool rows per cluster, 0.5 picks per cluster per source" in printed
    assert "⚠ cluster balancing is inactive" in printed
    assert json.loads(diagnostics_path(out).read_text())["selector_diagnostics"]["regime"]["selector"]["warnings"]
