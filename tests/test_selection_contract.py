from __future__ import annotations

import numpy as np
import pytest

from s2lbench.errors import BudgetError, MissingSignalError, S2LBenchError
from s2lbench.pool.records import Pool, SFTExample
from s2lbench.selection import Selector, resolve_budget, run_selector
from s2lbench.signals.signalset import SignalSet


def make_pool(n=20):
    return Pool([SFTExample(id=f"e{i}", instruction=f"q{i}", output=f"a{i}", source="s" + str(i % 3))
                 for i in range(n)])


@pytest.mark.parametrize("budget,expected", [(5, 5), ("5", 5), (0.25, 5), ("25%", 5), (1.0, 20), ("0.5", 10)])
def test_budget_count_or_fraction(budget, expected):
    assert resolve_budget(budget, 20) == expected


def test_budget_larger_than_pool_names_both_numbers():
    with pytest.raises(BudgetError, match=r"budget 21 is larger than the pool \(20 examples\)"):
        resolve_budget(21, 20)
    with pytest.raises(BudgetError):
        resolve_budget("1.5", 20)
    with pytest.raises(BudgetError):
        resolve_budget(0, 20)


class BrokenSelector(Selector):
    name = "broken"

    def select(self, ctx):
        return [0, 0, 1]


class NeedsLoss(Selector):
    name = "needs-loss"
    requires = ("loss",)

    def select(self, ctx):
        return np.argsort(ctx.signals.get("loss")[:, -1])[: ctx.budget]


def test_contract_violations_are_reported():
    with pytest.raises(S2LBenchError, match="broken.*duplicate positions"):
        run_selector(BrokenSelector, make_pool(), 3, seed=0)


def test_missing_signal_says_which_and_how():
    with pytest.raises(MissingSignalError, match=r"signal 'loss' is not available.*s2lbench signals"):
        run_selector(NeedsLoss, make_pool(), 3, seed=0)


def test_signal_rows_must_match_pool():
    with pytest.raises(S2LBenchError, match="has 5 rows but the pool has 20"):
        run_selector(NeedsLoss, make_pool(), 3, seed=0, signals=SignalSet({"loss": np.zeros((5, 2))}))


def test_selector_reads_signals_and_result_is_sorted():
    loss = np.arange(40, dtype=np.float32).reshape(20, 2)[::-1].copy()
    result = run_selector(NeedsLoss, make_pool(), 3, seed=0, signals=SignalSet({"loss": loss}))
    assert result.positions.tolist() == [17, 18, 19]
    assert result.diagnostics["budget"] == 3 and result.diagnostics["selector"] == "needs-loss"


def test_byo_trajectories_keep_nan(tmp_path):
    m = np.array([[1.0, np.nan], [0.5, 0.2]], dtype=np.float32)
    np.save(tmp_path / "t.npy", m)
    sig = SignalSet.from_trajectories(tmp_path / "t.npy")
    assert np.isnan(sig.get("loss")[0, 1]) and sig.steps == [0, 1]
