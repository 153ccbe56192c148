"""The baselines pick what their docstrings say, on small hand-checkable signals."""

from __future__ import annotations

import numpy as np
import pytest

from s2lbench.errors import DataError, MissingSignalError
from s2lbench.plugin_manager import get_hooks
from s2lbench.pool.records import Pool, SFTExample
from s2lbench.selection import run_selector
from s2lbench.selection.helpers import facility_location_greedy, rank_select
from s2lbench.signals.signalset import SignalSet

HOOKS = get_hooks()


def pool(n: int, sources=None) -> Pool:
    return Pool([SFTExample(id=f"e{i}", instruction="q", output="a", source=sources[i] if sources else "s")
                 for i in range(n)])


def select(name, signals, budget, n=None, seed=0, **options):
    n = n or next(iter(signals.values())).shape[0]
    return run_selector(HOOKS.selector(name), pool(n), budget, seed=seed,
                        signals=SignalSet(signals, steps=list(range(100, 100 * (1 + 4), 100))), options=options)


def as_set(result):
    return set(result.positions.tolist())


# a 10 x 4 loss matrix whose last column is a shuffled 0..9
LAST = np.array([7, 2, 9, 0, 5, 3, 8, 1, 6, 4], dtype=np.float32)
LOSS = np.column_stack([19 - LAST, LAST * 0.5 + 3, LAST + 1, LAST]).astype(np.float32)


def positions_of(values):
    return {int(np.flatnonzero(LAST == v)[0]) for v in values}


def test_rank_select_modes_and_nan_last():
    scores = np.array([5.0, np.nan, 1.0, 3.0, 4.0, 2.0, 0.0])
    assert rank_select(scores, 2, "lowest").tolist() == [6, 2]
    assert rank_select(scores, 2, "highest").tolist() == [0, 4]
    # finite ascending: 6,2,5,3,4,0 -> window of 2 starting at (6 - 2) // 2 = 2: positions 5 and 3
    assert rank_select(scores, 2, "middle").tolist() == [5, 3]
    assert rank_select(scores, 7, "lowest")[-1] == 1  # NaN only when the finite scores run out


@pytest.mark.parametrize("name,expected", [("perplexity-low", [0, 1, 2]), ("perplexity-high", [9, 8, 7]),
                                           ("perplexity-middle", [3, 4, 5])])
def test_perplexity_selectors_rank_the_last_checkpoint_by_default(name, expected):
    result = select(name, {"loss": LOSS}, 3)  # middle of 10 ranks, 3 wide: ranks (10 - 3) // 2 = 3 .. 5
    assert as_set(result) == positions_of(expected)
    assert result.diagnostics["checkpoint_index"] == 3 and result.diagnostics["checkpoint_step"] == 400


def test_perplexity_checkpoint_option_picks_another_column():
    # column 0 is 19 - LAST: its lowest values are where LAST is highest
    assert as_set(select("perplexity-low", {"loss": LOSS}, 3, checkpoint=0)) == positions_of([9, 8, 7])
    with pytest.raises(DataError, match="checkpoint index 7 is out of range"):
        select("perplexity-low", {"loss": LOSS}, 3, checkpoint=7)


def test_el2n_takes_the_highest_early_scores_and_can_drop_the_top_as_noise():
    el2n = np.column_stack([LAST, LAST[::-1]]).astype(np.float32)
    assert as_set(select("el2n", {"el2n": el2n}, 3)) == positions_of([9, 8, 7])
    dropped = select("el2n", {"el2n": el2n}, 3, drop_top_fraction=0.2)
    assert as_set(dropped) == positions_of([7, 6, 5]) and dropped.diagnostics["dropped_top"] == 2
    # dropping 90% would leave 1 < budget examples: only 7 are dropped
    assert select("el2n", {"el2n": el2n}, 3, drop_top_fraction=0.9).diagnostics["dropped_top"] == 7


def test_confidence_defaults_to_the_mean_over_checkpoints():
    conf = np.zeros((10, 3), dtype=np.float32)
    conf[:, 0] = LAST / 10
    conf[:, 1] = (9 - LAST) / 100  # reversed order, but the mean is dominated by column 0
    conf[:, 2] = np.nan  # missing checkpoints are ignored in the mean
    assert as_set(select("confidence-least", {"confidence": conf}, 2)) == positions_of([0, 1])
    assert as_set(select("confidence-most", {"confidence": conf}, 2)) == positions_of([9, 8])
    assert as_set(select("confidence-middle", {"confidence": conf}, 2)) == positions_of([4, 5])
    # at checkpoint 1 the order is reversed
    assert as_set(select("confidence-most", {"confidence": conf}, 2, checkpoint=1)) == positions_of([0, 1])


def test_learnability_takes_the_largest_loss_drop():
    loss = np.array([[3.0, 2.9], [3.0, 0.5], [1.0, 0.9], [2.0, 0.1], [0.5, 0.4]], dtype=np.float32)
    assert as_set(select("learnability", {"loss": loss}, 2)) == {1, 3}  # drops 2.5 and 1.9
    # relative drop: 1.9/2 = 0.95 beats 2.5/3 = 0.83
    assert select("learnability", {"loss": loss}, 1, relative=True).positions.tolist() == [3]


def blobs(n_blobs=5, per=40, d=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (n_blobs, d)) * 5
    truth = np.repeat(np.arange(n_blobs), per)
    return (centres[truth] + rng.normal(0, 0.1, (truth.size, d))).astype(np.float32), truth


def test_embedding_clustering_spreads_picks_over_embedding_clusters():
    x, truth = blobs()
    result = select("embedding-clustering", {"proxy_embedding": x}, 10, n_clusters=5, init="kmeans++", n_redo=3)
    assert np.bincount(truth[result.positions], minlength=5).tolist() == [2, 2, 2, 2, 2]


def test_embedding_option_selects_which_signal_is_read():
    x, _ = blobs()
    ok = select("embedding-clustering", {"text_embedding": x}, 10, embedding="text_embedding", n_clusters=5)
    assert ok.diagnostics["signal"] == "text_embedding"
    with pytest.raises(MissingSignalError, match="'text_embedding'"):
        select("facility-location", {"proxy_embedding": x}, 5, embedding="text_embedding")


def naive_greedy(x, budget):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = (1 + x @ x.T) / 2
    coverage, order = np.zeros(len(x)), []
    for _ in range(budget):
        gains = np.maximum(sims - coverage[None, :], 0).sum(axis=1)
        gains[order] = -1
        j = int(np.argmax(gains))
        order.append(j)
        coverage = np.maximum(coverage, sims[j])
    return order


def test_lazy_greedy_matches_plain_greedy():
    x = np.random.default_rng(3).normal(size=(80, 6)).astype(np.float32)
    order, info = facility_location_greedy(x, 15, np.random.default_rng(0), algorithm="lazy", batch=4)
    assert order.tolist() == naive_greedy(x, 15)
    assert info["represented"] == 80


def test_stochastic_greedy_is_near_lazy_greedy():
    x = np.random.default_rng(4).normal(size=(400, 6)).astype(np.float32)
    _, lazy = facility_location_greedy(x, 20, np.random.default_rng(0), algorithm="lazy")
    order, fast = facility_location_greedy(x, 20, np.random.default_rng(0), algorithm="stochastic")
    assert np.unique(order).size == 20
    assert fast["objective"] >= 0.97 * lazy["objective"]
    assert fast["gain_evaluations"] < lazy["gain_evaluations"]


def test_facility_location_covers_every_blob():
    x, truth = blobs(seed=1)
    result = select("facility-location", {"proxy_embedding": x}, 5)
    assert sorted(truth[result.positions].tolist()) == [0, 1, 2, 3, 4]
    sampled = select("facility-location", {"proxy_embedding": x}, 5, n_represent=100, algorithm="stochastic")
    assert sampled.diagnostics["represented"] == 100


def near_tied_embeddings():
    """Clustered embeddings with exact duplicates: many gains within float32's rounding of each other."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((40, 48)).astype(np.float32)
    x = (centres[rng.integers(0, 40, 3000)] + 0.3 * rng.standard_normal((3000, 48))).astype(np.float32)
    x[2500:2700] = x[:200]
    return x


@pytest.mark.parametrize("name, options", [
    ("facility-location", {"algorithm": "lazy"}),
    ("facility-location", {"algorithm": "stochastic"}),
    ("facility-location", {"n_represent": 1000}),
    ("k-center", {}),
    ("k-center", {"normalize": True, "first": "mean"}),
])
def test_greedy_selectors_pick_the_same_rows_whatever_the_summation_order(name, options):
    # Permuting the embedding's columns changes nothing mathematically, only the order every dot product is
    # summed in: what another CPU's BLAS kernels do. Float32 greedy orders moved by 20-30 of 300 picks here.
    x = near_tied_embeddings()
    reference = select(name, {"proxy_embedding": x}, 300, **options).positions
    assert np.unique(reference).size == 300
    for k in range(3):
        columns = np.random.default_rng(k + 1).permutation(x.shape[1])
        permuted = select(name, {"proxy_embedding": np.ascontiguousarray(x[:, columns])}, 300, **options).positions
        assert permuted.tolist() == reference.tolist()


def test_facility_location_gives_equal_gains_to_the_lowest_position():
    x = np.random.default_rng(5).normal(size=(60, 5)).astype(np.float32)
    doubled = np.concatenate([x, x])  # row j and row 60 + j always tie
    order, _ = facility_location_greedy(doubled, 10, np.random.default_rng(0))
    assert order.tolist() == naive_greedy(x, 10)  # every pick is the lower copy
