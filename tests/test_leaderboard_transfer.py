"""The small-to-large transfer table on a hand-built store with two targets and known rankings."""

from __future__ import annotations

import json

import pytest
from test_leaderboard_store import add_cell

from s2lbench.cli import main
from s2lbench.errors import DataError
from s2lbench.report.transfer import render_transfer_markdown, transfer_table
from s2lbench.results.store import ResultsStore

# accuracy per seed on one task. Budget 100: small ranks a > b > c > d, large a > c > b > d (one discordant
# pair of six: tau = (5 - 1) / 6). Budget 200: large reverses small's order (tau = -1), best disagrees.
# Budget 300: a ahead of b on both by less than the seed noise.
SCORES = {
    ("small", 100): {"a": [0.60, 0.65, 0.70], "b": [0.50, 0.50, 0.55], "c": [0.40, 0.45, 0.40], "d": [0.20, 0.25, 0.20]},
    ("large", 100): {"a": [0.80, 0.85, 0.80], "b": [0.55, 0.60, 0.55], "c": [0.70, 0.70, 0.65], "d": [0.30, 0.30, 0.35]},
    ("small", 200): {"a": [0.70, 0.70, 0.75], "b": [0.60, 0.55, 0.60], "c": [0.40, 0.40, 0.45]},
    ("large", 200): {"a": [0.40, 0.45, 0.40], "b": [0.60, 0.60, 0.55], "c": [0.85, 0.80, 0.80]},
    # budget 300: two selectors within noise of each other; resampling seeds flips their order
    ("small", 300): {"a": [0.50, 0.55, 0.475], "b": [0.475, 0.525, 0.50]},
    ("large", 300): {"a": [0.60, 0.625, 0.575], "b": [0.625, 0.55, 0.60]},
}
FLOPS = {"small": 1e12, "large": 1e13}


def make_two_target_store(folder):
    store = ResultsStore(folder)
    for (target, budget), selectors in SCORES.items():
        for selector, per_seed in selectors.items():
            for seed, acc in enumerate(per_seed):
                add_cell(store, selector, budget, seed, {"gsm8k": acc}, target=target,
                         cost={"finetune_flops": FLOPS[target]})
    # the full-data reference never enters a ranking
    add_cell(store, "full", 1000, 0, {"gsm8k": 0.99}, target="small", cost={"finetune_flops": 1e14})
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_two_target_store(tmp_path_factory.mktemp("transfer"))


def test_tau_and_best_selector_agreement_by_hand(store):
    (pair,) = transfer_table(store, resamples=300)
    assert (pair.small, pair.large) == ("small", "large")  # ordered by fine-tune FLOPs, not by name
    by_budget = {b.budget: b for b in pair.budgets}
    b100, b200 = by_budget[100], by_budget[200]
    assert b100.selectors == ["a", "b", "c", "d"] and "full" not in b100.selectors
    assert b100.tau == pytest.approx(4 / 6)
    assert b100.best_small == b100.best_large == "a" and b100.best_agrees
    assert b200.tau == pytest.approx(-1.0)
    assert (b200.best_small, b200.best_large, b200.best_agrees) == ("a", "c", False)
    assert pair.best_agrees == (2, 3)
    assert b100.small_scores[0] == pytest.approx(0.65) and b100.seeds == [0, 1, 2]


def test_bootstrap_interval_brackets_the_estimate_and_is_seeded(store):
    (pair,) = transfer_table(store, resamples=300, seed=1)
    for b in pair.budgets:
        assert b.tau_low <= b.tau <= b.tau_high
        assert b.resamples == 300
    b200 = {b.budget: b for b in pair.budgets}[200]
    assert b200.tau_high < 0 and b200.best_agrees_share < 0.1  # a clear reversal survives resampling
    again = transfer_table(store, resamples=300, seed=1)
    assert [b.tau_low for b in again[0].budgets] == [b.tau_low for b in pair.budgets]
    b300 = {b.budget: b for b in pair.budgets}[300]
    assert b300.tau == pytest.approx(1.0) and b300.tau_low == pytest.approx(-1.0)  # within noise: uncertain
    assert 0.2 < b300.best_agrees_share < 0.9


def test_explicit_order_and_one_target_error(store, tmp_path):
    (pair,) = transfer_table(store, resamples=0, order=["large", "small"])
    assert (pair.small, pair.large) == ("large", "small") and pair.budgets[0].tau_low is None
    with pytest.raises(DataError, match="not in the store"):
        transfer_table(store, order=["small", "huge"])
    single = ResultsStore(tmp_path / "one")
    add_cell(single, "a", 100, 0, {"gsm8k": 0.5}, target="small")
    with pytest.raises(DataError, match="two or more targets"):
        transfer_table(single)


def test_cli_prints_the_table_and_writes_files_and_figure(store, tmp_path, capsys):
    tables, plots = tmp_path / "tables", tmp_path / "plots"
    rc = main(["leaderboard", str(store.folder), "--transfer", "--tables", str(tables), "--plots", str(plots),
               "--resamples", "200"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "### small -> large" in out and "| 100 | 4 | +0.67 |" in out and "at 2 of 3 budget(s)" in out
    assert (tables / "transfer.md").read_text() == render_transfer_markdown(transfer_table(store, resamples=200))
    data = json.loads((tables / "transfer.json").read_text())
    assert data[0]["best_agrees"] == [2, 3] and data[0]["budgets"][1]["tau"] == pytest.approx(-1.0)
    png = plots / "transfer-small-vs-large.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_the_scatter_never_lands_in_the_results_folder_it_read(store, tmp_path, capsys):
    before = sorted(p.relative_to(store.folder) for p in store.folder.rglob("*"))
    assert main(["leaderboard", str(store.folder), "--transfer", "--resamples", "200"]) == 0
    assert sorted(p.relative_to(store.folder) for p in store.folder.rglob("*")) == before
    assert "transfer scatter not drawn: give --plots DIR" in capsys.readouterr().err
    tables = tmp_path / "tables"  # with --tables alone, the scatter goes beside the tables
    assert main(["leaderboard", str(store.folder), "--transfer", "--resamples", "200", "--tables", str(tables)]) == 0
    assert (tables / "transfer-small-vs-large.png").is_file()


def _add_score(store: ResultsStore, target: str, selector: str, value: float, seed: int = 0, n: int = 700) -> None:
    from s2lbench.results.store import Cell, ResultRow

    cid = f"{target}-{selector}-s{seed}"
    store.upsert_cell(Cell(cid, "gym", selector, 100, 0.1, seed, target, status="done",
                           cost={"finetune_flops": FLOPS[target]}))
    store.add_results([ResultRow(cid, "gsm8k", "accuracy", value, True, True, n, None)])


def test_equal_counts_tie_even_when_floating_point_noise_separates_them(tmp_path):
    import math

    store = ResultsStore(tmp_path)
    same = 214 / 700
    noisy = math.nextafter(same, 1.0)  # 214/700 reached by another sum: a few 1e-17 apart, the same count
    assert noisy != same and round(noisy * 700) == 214
    for selector, small, large in (("a", same, 0.5), ("b", noisy, 0.6), ("c", 0.2, 0.1)):
        _add_score(store, "small", selector, small)
        _add_score(store, "large", selector, large)
    (pair,) = transfer_table(store, resamples=0)
    (b,) = pair.budgets
    # a and b tie on the small target: tau-b = 2 / sqrt(2 * 3), not the +1.0 a 1e-17 difference would give
    assert b.tau == pytest.approx(2 / math.sqrt(6))
    # decision accuracy: (a, c) and (b, c) ordered alike, (a, b) tied on small counts half
    assert b.decision_accuracy == pytest.approx(2.5 / 3)


def test_decision_accuracy_by_hand_and_its_interval(store):
    (pair,) = transfer_table(store, resamples=300, seed=2)
    by_budget = {b.budget: b for b in pair.budgets}
    assert by_budget[100].decision_accuracy == pytest.approx(5 / 6)  # one discordant pair of six
    assert by_budget[200].decision_accuracy == pytest.approx(0.0)  # reversed
    for b in pair.budgets:
        assert b.decision_low <= b.decision_accuracy <= b.decision_high
    assert by_budget[200].decision_high < 0.5


def test_tau_per_seed_when_several_seeds(store):
    from s2lbench.report.transfer import _kendall

    (pair,) = transfer_table(store, resamples=0)
    b100 = {b.budget: b for b in pair.budgets}[100]
    assert len(b100.tau_per_seed) == 3
    small, large = SCORES[("small", 100)], SCORES[("large", 100)]
    for seed, tau in enumerate(b100.tau_per_seed):
        expected = _kendall([small[s][seed] for s in "abcd"], [large[s][seed] for s in "abcd"], 1 / 40)
        assert tau == pytest.approx(expected)
    md = render_transfer_markdown([pair])
    assert "decision accuracy" in md and "83%" in md


def test_decision_accuracy_follows_lower_is_better():
    from s2lbench.report.transfer import decision_accuracy

    assert decision_accuracy([0.1, 0.2, 0.3], [0.1, 0.2, 0.3], higher=False) == 1.0
    assert decision_accuracy([0.1, 0.2, 0.3], [0.3, 0.2, 0.1]) == 0.0
    assert decision_accuracy([0.1, 0.1], [0.2, 0.2]) is None  # no decided pair on the large target
