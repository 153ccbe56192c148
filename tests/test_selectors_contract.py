"""The selector contract, run over every selector registered through the plugin hook."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from s2lbench.errors import BudgetError, MissingSignalError
from s2lbench.plugin_manager import get_hooks
from s2lbench.pool.records import Pool, SFTExample
from s2lbench.selection import run_selector
from s2lbench.signals.signalset import (
    CHECKPOINT_LR,
    CONFIDENCE,
    DEV_EMBEDDING,
    DEV_GRADIENTS,
    DEV_TASKS,
    EL2N,
    FILES,
    GRADIENTS,
    LOSS,
    LOSS_ALONE,
    PROXY_EMBEDDING,
    RESPONSE_TOKENS,
    TEXT_EMBEDDING,
    SignalSet,
)

#: the names the runner's configs use; every one must be registered
EXPECTED = {"random", "s2l", "s2l-kmeanspp", "perplexity-low", "perplexity-middle", "perplexity-high", "el2n",
            "confidence-least", "confidence-middle", "confidence-most", "learnability", "embedding-clustering",
            "facility-location", "random-per-source", "longest", "k-center", "cartography", "ifd", "less", "rds"}

N = 300
SELECTORS = get_hooks().selectors()


def make_pool(n: int = N) -> Pool:
    return Pool([SFTExample(id=f"e{i}", instruction="q" * (i % 17 + 1), output="a" * (i % 5 + 1),
                            source=("alpha", "beta", "gamma")[i % 3] if i % 10 else "delta") for i in range(n)])


def all_signals(n: int = N, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    loss = np.sort(rng.gamma(2.0, 1.0, (n, 6)), axis=1)[:, ::-1].astype(np.float32)
    return {LOSS: loss, CONFIDENCE: rng.random((n, 6)).astype(np.float32), EL2N: rng.random((n, 6)).astype(np.float32),
            PROXY_EMBEDDING: rng.normal(size=(n, 16)).astype(np.float32),
            TEXT_EMBEDDING: rng.normal(size=(n, 12)).astype(np.float32),
            RESPONSE_TOKENS: rng.integers(1, 40, n).astype(np.int32),
            LOSS_ALONE: (loss * rng.uniform(0.7, 1.3, loss.shape)).astype(np.float32),
            GRADIENTS: _unit_rows(rng.normal(size=(n, 3, 8))).astype(np.float16),
            DEV_GRADIENTS: _unit_rows(rng.normal(size=(6, 3, 8))).astype(np.float16),
            DEV_EMBEDDING: rng.normal(size=(6, 16)).astype(np.float32),
            DEV_TASKS: np.array(["t1", "t1", "t1", "t2", "t2", "t2"]),
            CHECKPOINT_LR: np.array([3e-3, 2e-3, 1e-3], dtype=np.float32)}


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def signalset(names=None) -> SignalSet:
    arrays = all_signals()
    return SignalSet({k: v for k, v in arrays.items() if names is None or k in names}, steps=[10, 20, 30, 40, 50, 60])


def default_options(cls):
    return cls.Options()


def test_every_expected_selector_is_registered():
    missing = EXPECTED - set(SELECTORS)
    assert not missing, f"not registered: {sorted(missing)}"


@pytest.fixture(params=sorted(SELECTORS), scope="module")
def selector(request):
    return SELECTORS[request.param].obj


@pytest.mark.parametrize("budget,expected", [(37, 37), (0.1, 30), ("25%", 75), (N, N)])
def test_returns_exactly_budget_unique_valid_positions(selector, budget, expected):
    result = run_selector(selector, make_pool(), budget, seed=3, signals=signalset())
    positions = result.positions
    assert positions.size == expected
    assert np.unique(positions).size == expected
    assert positions.min() >= 0 and positions.max() < N


def test_budget_larger_than_pool_names_both_numbers(selector):
    with pytest.raises(BudgetError, match=rf"\b{N + 1}\b.*\b{N}\b"):
        run_selector(selector, make_pool(), N + 1, seed=0, signals=signalset())


def test_same_seed_same_subset(selector):
    a = run_selector(selector, make_pool(), 50, seed=7, signals=signalset())
    b = run_selector(selector, make_pool(), 50, seed=7, signals=signalset())
    assert np.array_equal(a.positions, b.positions)


def test_runs_on_exactly_the_signals_it_declares(selector):
    needed = selector.required_signals(default_options(selector))
    assert set(needed) <= set(FILES), f"{selector.name} reads unknown signals {needed}"
    result = run_selector(selector, make_pool(), 40, seed=0, signals=signalset(names=set(needed)))
    assert result.positions.size == 40


def test_missing_signal_names_it_and_how_to_compute_it(selector):
    needed = selector.required_signals(default_options(selector))
    for missing in needed:
        with pytest.raises(MissingSignalError, match=rf"'{missing}'.*s2lbench signals"):
            run_selector(selector, make_pool(), 10, seed=0, signals=signalset(names=set(FILES) - {missing}))


def test_options_are_typed_documented_dataclasses(selector):
    assert dataclasses.is_dataclass(selector.Options)
    assert selector.Options.__dataclass_params__.frozen
    for field in selector.option_fields():
        assert field["help"], f"{selector.name} option {field['name']!r} has no help text"
    assert selector.__doc__ and selector.description
