"""S2L: the balancing arithmetic on hand-computed cases, equivalence to the rule, and planted clusters."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from s2lbench.errors import BudgetError, ConfigError
from s2lbench.plugin_manager import get_hooks
from s2lbench.pool.records import Pool, SFTExample
from s2lbench.selection import run_selector
from s2lbench.selection.clustering import kmeans
from s2lbench.selection.helpers import (
    ClusteringChoice,
    balance_report,
    balanced_quotas,
    clean_matrix,
    cluster_balanced_sample,
    clustered_selection,
    subsample_checkpoints,
)
from s2lbench.signals.signalset import SignalSet

S2L = get_hooks().selector("s2l")
S2L_PP = get_hooks().selector("s2l-kmeanspp")


def pool_with_sources(sources) -> Pool:
    return Pool([SFTExample(id=f"e{i}", instruction="q", output="a", source=str(s)) for i, s in enumerate(sources)])


# --- source balancing -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sizes,budget,expected", [
    # visit 3 (5 each -> takes 3, 17 left), 7 (17//3=5), 10 (12//2=6), 50 (6 left)
    ([10, 3, 50, 7], 20, [6, 3, 6, 5]),
    # equal sizes: 7//3=2, 5//2=2, 3 -> the largest (last visited on ties) gets the remainder
    ([5, 5, 5], 7, [2, 2, 3]),
    # small sources taken whole, the rest moves on: 60//3=20 -> 10 whole; 50//2=25; 25
    ([10, 40, 200], 60, [10, 25, 25]),
    ([4, 4], 8, [4, 4]),
    ([9, 1, 2], 0, [0, 0, 0]),
])
def test_balanced_quotas_hand_computed(sizes, budget, expected):
    quotas = balanced_quotas(sizes, budget)
    assert quotas.tolist() == expected
    assert quotas.sum() == budget


def test_balanced_quotas_never_exceed_a_group_and_always_fill_the_budget():
    rng = np.random.default_rng(0)
    for _ in range(200):
        sizes = rng.integers(1, 60, size=rng.integers(1, 15))
        budget = int(rng.integers(0, sizes.sum() + 1))
        quotas = balanced_quotas(sizes, budget)
        assert quotas.sum() == budget and (quotas <= sizes).all() and (quotas >= 0).all()


def test_balanced_quotas_rejects_a_budget_beyond_the_groups():
    with pytest.raises(BudgetError, match="budget 11 .* 10 examples"):
        balanced_quotas([4, 6], 11)


def test_s2l_splits_the_budget_across_sources_smallest_first():
    sources = ["small"] * 10 + ["mid"] * 40 + ["big"] * 200
    rng = np.random.default_rng(1)
    signals = SignalSet({"loss": rng.random((250, 5)).astype(np.float32)})
    result = run_selector(S2L, pool_with_sources(sources), 60, seed=0, signals=signals,
                          options={"n_clusters": "4"})
    picked = Counter(np.asarray(sources)[result.positions])
    assert picked == {"small": 10, "mid": 25, "big": 25}
    assert result.diagnostics["sources"]["small"]["taken_whole"]


def test_balance_sources_off_treats_the_pool_as_one_group():
    sources = ["small"] * 10 + ["big"] * 190
    signals = SignalSet({"loss": np.random.default_rng(2).random((200, 5)).astype(np.float32)})
    result = run_selector(S2L, pool_with_sources(sources), 40, seed=0, signals=signals,
                          options={"balance_sources": "false", "n_clusters": 5})
    assert list(result.diagnostics["sources"]) == ["(all)"]
    assert result.diagnostics["sources"]["(all)"]["budget"] == 40


def test_a_source_with_fewer_rows_than_clusters_is_reported(caplog):
    sources = ["a"] * 100 + ["b"] * 100
    signals = SignalSet({"loss": np.random.default_rng(3).random((200, 4)).astype(np.float32)})
    result = run_selector(S2L, pool_with_sources(sources), 30, seed=0, signals=signals, options={"n_clusters": 20})
    assert result.diagnostics["sources"]["a"]["picks_per_cluster"] == 0.75  # 15 picks over 20 clusters
    assert result.diagnostics["sources"]["a"]["pool_rows_per_cluster"] == 5.0  # 100 rows over 20 clusters
    assert "2 of 2 group(s) get fewer rows than clusters (K=20" in caplog.text
    caplog.clear()
    result = run_selector(S2L, pool_with_sources(sources), 30, seed=0, signals=signals, options={"n_clusters": 5})
    assert result.diagnostics["sources"]["b"]["picks_per_cluster"] == 3.0
    assert not result.diagnostics["regime"]["selector"]["warnings"]
    assert "fewer rows than clusters" not in caplog.text


def test_rows_per_cluster_gives_each_source_its_own_k():
    # the paper's regime at any pool size: K = max(2, round(source rows / N)), not one K for every source
    sources = ["a"] * 100 + ["b"] * 300 + ["c"] * 20
    signals = SignalSet({"loss": np.random.default_rng(4).random((420, 4)).astype(np.float32)})
    result = run_selector(S2L, pool_with_sources(sources), 45, seed=0, signals=signals,
                          options={"rows_per_cluster": 50})
    clusters = {name: info["clusters"] for name, info in result.diagnostics["sources"].items()}
    assert clusters == {"a": 2, "b": 6, "c": 2}
    assert len(result.positions) == 45
    default = run_selector(S2L, pool_with_sources(sources), 45, seed=0, signals=signals, options={"n_clusters": 6})
    assert {info["clusters"] for info in default.diagnostics["sources"].values()} == {6}
    with pytest.raises(ConfigError, match="rows_per_cluster"):
        run_selector(S2L, pool_with_sources(sources), 45, seed=0, signals=signals, options={"rows_per_cluster": -1})


# --- cluster balancing --------------------------------------------------------------------------------------------

def labels_for(sizes):
    return np.random.default_rng(0).permutation(np.repeat(np.arange(len(sizes)), sizes))


@pytest.mark.parametrize("budget,expected", [
    # regular clusters 2 (4), 3 (10), 4 (30): 20//3=6 -> 4 whole; 16//2=8; 8
    (20, [0, 0, 4, 8, 8]),
    # 44//3 -> 4 whole; 40//2=20 -> 10 whole; 30 -> 30 whole; tiny clusters untouched
    (44, [0, 0, 4, 10, 30]),
    (3, [0, 0, 1, 1, 1]),
    (2, [0, 0, 0, 1, 1]),  # 2//3 = 0 for the smallest regular cluster: the budget moves on
])
def test_cluster_picks_follow_the_rule(budget, expected):
    sizes = [1, 2, 4, 10, 30]
    labels = labels_for(sizes)
    picks = cluster_balanced_sample(labels, budget, np.random.default_rng(5))
    assert picks.picks.tolist() == expected
    assert picks.sizes.tolist() == sizes
    assert Counter(labels[picks.positions].tolist()) == {c: n for c, n in enumerate(expected) if n}
    assert np.unique(picks.positions).size == budget


def test_leftover_budget_is_drawn_from_the_tiny_clusters():
    sizes = [1, 2, 4, 10, 30]
    labels = labels_for(sizes)
    picks = cluster_balanced_sample(labels, 46, np.random.default_rng(5))
    assert picks.picks[2:].tolist() == [4, 10, 30]
    assert picks.picks[:2].sum() == 2 and np.unique(picks.positions).size == 46


def test_cluster_sampling_is_seeded_and_random_within_clusters():
    labels = labels_for([50, 50, 50])
    a = cluster_balanced_sample(labels, 30, np.random.default_rng(1)).positions
    b = cluster_balanced_sample(labels, 30, np.random.default_rng(1)).positions
    c = cluster_balanced_sample(labels, 30, np.random.default_rng(2)).positions
    assert np.array_equal(a, b) and not np.array_equal(np.sort(a), np.sort(c))


def reference_counts(labels_by_source: dict[str, np.ndarray], quotas: dict[str, int]) -> Counter:
    """The rule, written independently: per source, per cluster, how many examples S2L must take."""
    expected = Counter()
    for source, labels in labels_by_source.items():
        remaining = quotas[source]
        sizes = Counter(labels.tolist())
        regular = sorted((size, c) for c, size in sizes.items() if size > 2)
        for i, (size, c) in enumerate(regular):
            take = min(size, remaining // (len(regular) - i))
            expected[(source, c)] += take
            remaining -= take
        if remaining:
            expected[(source, "tiny")] += remaining
    return Counter({k: v for k, v in expected.items() if v})


def test_s2l_selector_is_equivalent_to_the_rule_given_its_clustering():
    rng = np.random.default_rng(3)
    sizes = {"a": 150, "b": 400, "c": 900}
    sources = np.repeat(list(sizes), list(sizes.values()))
    loss = rng.gamma(2.0, 1.0, (sources.size, 8)).astype(np.float32)
    loss[rng.random(loss.shape) < 0.02] = np.nan
    budget, seed, k = 300, 11, 12
    result = run_selector(S2L, pool_with_sources(sources), budget, seed=seed, signals=SignalSet({"loss": loss}),
                          options={"n_clusters": k})
    matrix = clean_matrix(loss)
    quotas = dict(zip(sizes, balanced_quotas(list(sizes.values()), budget).tolist(), strict=True))
    labels_by_source, got = {}, Counter()
    chosen = set(result.positions.tolist())
    for source in sizes:
        rows = np.flatnonzero(sources == source)
        labels = kmeans(matrix[rows], k, n_iter=20, seed=seed, threads=1).labels
        labels_by_source[source] = labels
        small = {c for c, n in Counter(labels.tolist()).items() if n <= 2}
        for row, label in zip(rows, labels, strict=True):
            if row in chosen:
                got[(source, "tiny" if label in small else label)] += 1
    assert got == reference_counts(labels_by_source, quotas)
    diag = result.diagnostics["sources"]["c"]
    assert sum(diag["cluster_picks"]) == quotas["c"] and sum(diag["cluster_sizes"]) == 900


def test_nan_losses_count_as_zero():
    rng = np.random.default_rng(4)
    loss = rng.random((200, 6)).astype(np.float32)
    loss[::7, 2] = np.nan
    zeroed = np.nan_to_num(loss, nan=0.0)
    pool = pool_with_sources(["s"] * 200)
    a = run_selector(S2L, pool, 30, seed=1, signals=SignalSet({"loss": loss}), options={"n_clusters": 6})
    b = run_selector(S2L, pool, 30, seed=1, signals=SignalSet({"loss": zeroed}), options={"n_clusters": 6})
    assert np.array_equal(a.positions, b.positions)


@pytest.mark.parametrize("t,m,kept", [(12, 4, [0, 3, 6, 9]), (10, 4, [0, 2, 4, 6, 8]), (6, 0, list(range(6))),
                                      (6, 6, list(range(6))), (7, 3, [0, 2, 4, 6])])
def test_checkpoint_subsampling_keeps_every_floor_t_over_m_th(t, m, kept):
    matrix = np.arange(3 * t, dtype=np.float32).reshape(3, t)
    reduced, columns = subsample_checkpoints(matrix, m)
    assert columns.tolist() == kept and np.array_equal(reduced, matrix[:, kept])


def test_checkpoints_option_changes_what_is_clustered():
    rng = np.random.default_rng(5)
    loss = rng.random((400, 12)).astype(np.float32)
    pool = pool_with_sources(["s"] * 400)
    full = run_selector(S2L, pool, 40, seed=0, signals=SignalSet({"loss": loss}), options={"n_clusters": 8})
    sub = run_selector(S2L, pool, 40, seed=0, signals=SignalSet({"loss": loss}),
                       options={"n_clusters": 8, "checkpoints": 4})
    assert sub.diagnostics["checkpoint_columns"] == [0, 3, 6, 9]
    assert not np.array_equal(full.positions, sub.positions)


def test_options_parse_from_strings_and_reject_unknown_keys():
    signals = SignalSet({"loss": np.random.default_rng(6).random((100, 4)).astype(np.float32)})
    pool = pool_with_sources(["s"] * 100)
    result = run_selector(S2L, pool, 10, seed=0, signals=signals,
                          options={"n_clusters": "5", "distance": "cosine", "init": "kmeans++", "n_redo": "2"})
    assert result.diagnostics["options"]["distance"] == "cosine"
    with pytest.raises(ConfigError, match="did you mean 'n_clusters'"):
        run_selector(S2L, pool, 10, seed=0, signals=signals, options={"n_cluster": 5})
    with pytest.raises(ConfigError, match="distance"):
        run_selector(S2L, pool, 10, seed=0, signals=signals, options={"distance": "manhattan"})


def test_seed_option_overrides_the_run_seed_and_seeds_matter():
    signals = SignalSet({"loss": np.random.default_rng(7).random((300, 4)).astype(np.float32)})
    pool = pool_with_sources(["s"] * 300)
    a = run_selector(S2L, pool, 30, seed=0, signals=signals, options={"n_clusters": 5})
    b = run_selector(S2L, pool, 30, seed=1, signals=signals, options={"n_clusters": 5})
    c = run_selector(S2L, pool, 30, seed=1, signals=signals, options={"n_clusters": 5, "seed": 0})
    assert not np.array_equal(a.positions, b.positions)
    assert np.array_equal(a.positions, c.positions)


def test_kmeans_thread_setting_is_scoped_to_the_call():
    import faiss

    before = faiss.omp_get_max_threads()
    x = np.random.default_rng(8).random((500, 4)).astype(np.float32)
    one = kmeans(x, 5, seed=0, threads=1)
    assert faiss.omp_get_max_threads() == before
    assert np.array_equal(one.labels, kmeans(x, 5, seed=0, threads=1).labels)


def test_kmeanspp_variant_differs_only_in_clustering_defaults():
    base, improved = S2L.Options(), S2L_PP.Options()
    assert (base.init, base.n_redo, base.max_points_per_centroid) == ("random", 1, 256)
    assert (improved.init, improved.n_redo, improved.max_points_per_centroid) == ("kmeans++", 10, 256)
    assert (base.n_clusters, base.n_iter, base.balance_sources) == (improved.n_clusters, improved.n_iter,
                                                                    improved.balance_sources)


def test_balance_report_against_random():
    sizes = np.array([10, 10, 80, 100])
    assert balance_report(sizes, sizes // 2)["small_cluster_uplift"] == pytest.approx(1.0)
    even = balance_report(sizes, np.array([10, 10, 10, 10]))
    assert even["picks_entropy_ratio"] == pytest.approx(1.0) and even["small_cluster_uplift"] > 4


# --- planted clusters: how each clustering option spreads the budget ----------------------------------------------

PLANTED_SIZES = (30, 60, 120, 250, 500, 1000, 1500, 2000)


def planted(seed: int, n_sources: int = 3):
    rng = np.random.default_rng(seed)
    xs, truth, src = [], [], []
    for s in range(n_sources):
        centres = rng.normal(0, 1.0, (len(PLANTED_SIZES), 12))
        labels = np.repeat(np.arange(len(PLANTED_SIZES)), PLANTED_SIZES)
        xs.append(centres[labels] + rng.normal(0, 0.15, (labels.size, 12)))
        truth.append(labels)
        src.append(np.full(labels.size, f"s{s}"))
    return np.concatenate(xs).astype(np.float32), np.concatenate(truth), np.concatenate(src)


def small_cluster_uplift(positions, truth) -> float:
    """Share of picks in the 3 smallest planted clusters over their share of the pool (random ~ 1)."""
    small = truth < 3
    return float(small[positions].mean() / small.mean())


def test_planted_clusters_budget_spread_by_clustering_option():
    x, truth, src = planted(seed=0)
    budget = x.shape[0] // 10
    choices = {
        "paper K=8": ClusteringChoice(n_clusters=8),
        "paper K=100": ClusteringChoice(n_clusters=100),
        "kmeans++ K=8": ClusteringChoice(n_clusters=8, init="kmeans++"),
        "kmeans++ redo=10 K=8": ClusteringChoice(n_clusters=8, init="kmeans++", n_redo=10),
    }
    uplift = {"random": small_cluster_uplift(np.random.default_rng(0).choice(x.shape[0], budget, replace=False),
                                             truth)}
    for label, choice in choices.items():
        positions, diag = clustered_selection(x, src, budget, seed=0, clustering=choice)
        uplift[label] = small_cluster_uplift(positions, truth)
        assert diag["balance"]["clusters"] == 3 * min(choice.n_clusters, 3960)
    print("\nshare of picks in the 3 smallest planted clusters / random's share:")
    for label, value in uplift.items():
        print(f"  {label:<32} {value:5.2f}x")
    # perfect recovery of the 8 planted clusters gives 30 + 60 + 76 of 546 per source: 7.9x random
    assert 0.5 < uplift["random"] < 1.5
    assert uplift["kmeans++ redo=10 K=8"] > 7.5
    assert uplift["kmeans++ redo=10 K=8"] >= uplift["paper K=8"]
    assert uplift["paper K=8"] > 1.5
    # with K far above the planted 8, each small cluster gets about one centroid's share: little balancing left
    assert uplift["paper K=100"] < 2.5


def test_s2l_kmeanspp_recovers_planted_clusters_and_reports_balance():
    x, truth, src = planted(seed=1)
    pool = pool_with_sources(src)
    signals = SignalSet({"loss": x})
    result = run_selector(S2L_PP, pool, 0.1, seed=0, signals=signals, options={"n_clusters": 8})
    assert small_cluster_uplift(result.positions, truth) > 6.5
    balance = result.diagnostics["balance"]
    assert balance["picks_entropy_ratio"] > balance["random_entropy_ratio"]
    assert balance["small_cluster_uplift"] > 3
