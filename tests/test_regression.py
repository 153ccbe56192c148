"""Regression snapshots and comparison on hand-built stores, through the API and `s2lbench regress`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_leaderboard_store import BUDGET, add_cell, cell_id, make_store

from s2lbench.cli import main
from s2lbench.common.fingerprint import ids_hash
from s2lbench.errors import DataError
from s2lbench.pool.records import Pool, SFTExample
from s2lbench.report.regression import (
    DEFAULT_SCORE_TOLERANCE,
    Tolerances,
    compare,
    failures,
    format_moves,
    load_reference,
    snapshot,
    write_reference,
)
from s2lbench.results.store import ResultRow, ResultsStore
from s2lbench.selection import run_selector

S2L_SEED1 = f"tiny|s2l|{BUDGET}|1"


def set_value(store: ResultsStore, selector: str, seed: int, task: str, value: float) -> None:
    cid = cell_id(selector, BUDGET, seed)
    row = next(r for r in store.results(cid) if r.task == task)
    store.add_results([ResultRow(cid, task, row.metric, value, row.higher_is_better, row.in_domain, row.n,
                                 row.samples_path)])


def test_snapshot_holds_every_cell_metric_and_subset_hash(tmp_path):
    make_store(tmp_path)
    snap = snapshot(tmp_path)
    assert len(snap["cells"]) == 3 * 4 + 1 + 1
    cell = snap["cells"][S2L_SEED1]
    assert cell["selected_ids_hash"] == f"hash-s2l-{BUDGET}-1"
    assert cell["metrics"] == {"gsm8k/accuracy": pytest.approx(0.7), "svamp/accuracy": pytest.approx(0.2)}
    assert cell["status"] == "done"
    assert compare(snap, snapshot(tmp_path)) == []
    with pytest.raises(DataError, match="no results store"):
        snapshot(tmp_path / "nothing")


def test_a_score_outside_tolerance_fails_and_inside_is_reported_only(tmp_path):
    store = make_store(tmp_path)
    reference = snapshot(tmp_path)
    set_value(store, "s2l", 1, "gsm8k", 0.7 + DEFAULT_SCORE_TOLERANCE / 2)
    moves = compare(snapshot(tmp_path), reference)
    assert len(moves) == 1 and not moves[0].fails
    set_value(store, "s2l", 1, "gsm8k", 0.75)
    (move,) = failures(compare(snapshot(tmp_path), reference))
    assert (move.cell, move.what) == (S2L_SEED1, "gsm8k/accuracy")
    assert move.delta == pytest.approx(0.05) and move.tolerance == DEFAULT_SCORE_TOLERANCE
    table = format_moves([move])
    assert "FAIL" in table and S2L_SEED1 in table and "gsm8k/accuracy" in table and "+0.0500" in table


def test_per_metric_tolerances_override_the_default(tmp_path):
    store = make_store(tmp_path)
    reference = snapshot(tmp_path)
    set_value(store, "s2l", 1, "gsm8k", 0.75)
    assert not failures(compare(snapshot(tmp_path), reference, Tolerances(per_metric={"accuracy": 0.1})))
    assert not failures(compare(snapshot(tmp_path), reference, Tolerances(per_metric={"gsm8k/accuracy": 0.1})))
    assert failures(compare(snapshot(tmp_path), reference, Tolerances(per_metric={"svamp/accuracy": 0.1})))


def test_subset_hash_changes_fail_exactly(tmp_path):
    store = make_store(tmp_path)
    reference = snapshot(tmp_path)
    cell = store.get_cell(cell_id("el2n", BUDGET, 2))
    cell.selected_ids_hash = "something-else"
    store.upsert_cell(cell)
    (move,) = compare(snapshot(tmp_path), reference, Tolerances(default=1.0))
    assert move.what == "selected_ids_hash" and move.fails and move.cell == f"tiny|el2n|{BUDGET}|2"
    assert "exact" in format_moves([move])


def test_missing_and_failed_cells_fail_new_cells_do_not(tmp_path):
    reference = snapshot(make_store(tmp_path / "ref"))
    store = make_store(tmp_path / "cur")
    add_cell(store, "newcomer", BUDGET, 0, {"gsm8k": 0.5})
    moves = compare(snapshot(store.folder), reference)
    assert [(m.cell, m.fails) for m in moves] == [(f"tiny|newcomer|{BUDGET}|0", False)]
    store.set_status(cell_id("s2l", BUDGET, 0), "failed", "boom")
    bad = failures(compare(snapshot(store.folder), reference))
    assert [(m.cell, m.what, m.current) for m in bad] == [(f"tiny|s2l|{BUDGET}|0", "status", "failed")]
    shrunk = snapshot(make_store(tmp_path / "small", with_full=False))
    missing = failures(compare(shrunk, snapshot(tmp_path / "ref")))
    assert [(m.cell, m.what, m.current) for m in missing] == [("tiny|full|1000|0", "cell", "missing")]


def test_cli_passes_on_unchanged_fails_with_a_table_and_updates_atomically(tmp_path, capsys):
    store = make_store(tmp_path / "results")
    ref = tmp_path / "reference.json"
    results = str(tmp_path / "results")
    assert main(["regress", results, "--reference", str(ref), "--update", "--tolerance", "0.03"]) == 0
    data, tolerances = load_reference(ref)
    assert tolerances.default == 0.03 and len(data["cells"]) == 14
    capsys.readouterr()
    assert main(["regress", results, "--reference", str(ref)]) == 0
    assert "nothing moved" in capsys.readouterr().out
    set_value(store, "s2l", 1, "gsm8k", 0.6)
    assert main(["regress", results, "--reference", str(ref)]) == 1
    out = capsys.readouterr().out
    fail_lines = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(fail_lines) == 1 and S2L_SEED1 in fail_lines[0] and "gsm8k/accuracy" in fail_lines[0]
    assert "-0.1000" in fail_lines[0] and "±0.03" in fail_lines[0]
    assert main(["regress", results, "--reference", str(ref), "--metric-tolerance", "gsm8k/accuracy=0.2"]) == 0
    assert main(["regress", results, "--reference", str(ref), "--update"]) == 0  # keeps the reference's 0.03
    assert load_reference(ref)[1].default == 0.03
    assert not list(tmp_path.glob(".reference.json.*"))  # no temp file left behind
    assert main(["regress", results, "--reference", str(ref)]) == 0
    assert main(["regress", results, "--reference", str(tmp_path / "absent.json")]) == 2
    assert main(["regress", results, "--reference", str(ref), "--metric-tolerance", "oops"]) == 2


def test_bad_reference_files_are_named(tmp_path):
    bad = tmp_path / "ref.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="ref.json.*not valid JSON"):
        load_reference(bad)
    bad.write_text(json.dumps({"cells": {}, "format": 99}))
    with pytest.raises(DataError, match="format 99"):
        load_reference(bad)
    write_reference(bad, {"format": 1, "cells": {}}, Tolerances(per_metric={"bleu": 1.5}))
    assert load_reference(bad)[1].per_metric == {"bleu": 1.5}


def _store_selection(store: ResultsStore, pool: Pool, positions: np.ndarray) -> None:
    cell = store.get_cell(cell_id("random", BUDGET, 0))
    cell.selected_ids_hash = ids_hash(pool[int(p)].id for p in positions)
    store.upsert_cell(cell)


def test_a_perturbed_selector_is_caught(tmp_path, monkeypatch):
    """Rerun the real random selector into a store: unchanged code passes, a one-line perturbation fails."""
    from s2lbench.selectors.random_selector import RandomSelector

    pool = Pool([SFTExample(f"ex{i}", f"q{i}", f"a{i}", source="gym") for i in range(500)])
    store = make_store(tmp_path)
    _store_selection(store, pool, run_selector(RandomSelector, pool, BUDGET, seed=0).positions)
    reference = snapshot(tmp_path)
    _store_selection(store, pool, run_selector(RandomSelector, pool, BUDGET, seed=0).positions)
    assert compare(snapshot(tmp_path), reference) == []
    original = RandomSelector.select

    def off_by_one(self, ctx):
        return (np.asarray(original(self, ctx)) + 1) % len(ctx.pool)

    monkeypatch.setattr(RandomSelector, "select", off_by_one)
    _store_selection(store, pool, run_selector(RandomSelector, pool, BUDGET, seed=0).positions)
    (move,) = failures(compare(snapshot(tmp_path), reference))
    assert (move.cell, move.what) == (f"tiny|random|{BUDGET}|0", "selected_ids_hash")
