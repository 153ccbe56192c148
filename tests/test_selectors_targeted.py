"""The issue-18 baselines pick what their papers prescribe, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from s2lbench.errors import DataError
from s2lbench.plugin_manager import get_hooks
from s2lbench.pool.records import Pool, SFTExample
from s2lbench.selection import run_selector
from s2lbench.selection.helpers import balanced_quotas
from s2lbench.signals.signalset import SignalSet

HOOKS = get_hooks()


def pool(n, sources=None, outputs=None):
    return Pool([SFTExample(id=f"e{i}", instruction="q", output=outputs[i] if outputs else "a",
                            source=sources[i] if sources else "s") for i in range(n)])


def select(name, signals, budget, n, seed=0, sources=None, outputs=None, **options):
    return run_selector(HOOKS.selector(name), pool(n, sources, outputs), budget, seed=seed,
                        signals=SignalSet(signals), options=options)


def picks(result):
    return set(result.positions.tolist())


def test_random_per_source_uses_s2l_quotas_smallest_source_first():
    sources = ["a"] * 2 + ["b"] * 5 + ["c"] * 10
    # a: min(2, 9 // 3) = 2, leaving 7; b: min(5, 7 // 2) = 3, leaving 4; c: 4
    assert balanced_quotas([2, 5, 10], 9).tolist() == [2, 3, 4]
    for seed in range(5):
        result = select("random-per-source", {}, 9, 17, seed=seed, sources=sources)
        counts = {s: sum(1 for p in result.positions if sources[p] == s) for s in "abc"}
        assert counts == {"a": 2, "b": 3, "c": 4}
        assert result.diagnostics["sources"]["c"] == {"pool": 10, "budget": 4}
    draws = {tuple(select("random-per-source", {}, 9, 17, seed=s, sources=sources).positions) for s in range(5)}
    assert len(draws) > 1  # random inside the sources


def test_longest_takes_the_most_response_tokens_ties_by_position():
    tokens = np.array([3, 9, 1, 9, 5], dtype=np.int32)
    assert picks(select("longest", {"response_tokens": tokens}, 2, 5)) == {1, 3}
    assert picks(select("longest", {"response_tokens": tokens}, 3, 5)) == {1, 3, 4}
    by_chars = select("longest", {}, 2, 4, outputs=["abc", "a", "abcdef", "ab"], length="chars")
    assert picks(by_chars) == {0, 2}


def test_k_center_greedy_farthest_point_by_hand():
    from s2lbench.selectors.k_center import k_center_greedy

    x = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [20.0]])
    order, radius = k_center_greedy(x, 3, first=0)
    # from 0 the farthest is 20; then distances to {0, 20} are 1, 2, 10, 9 -> 10 (position 3)
    assert order.tolist() == [0, 5, 3]
    assert radius.tolist() == pytest.approx([20.0, 10.0, 2.0])
    # first=mean: the mean 7.33 is nearest 10 (position 3); 0 and 20 are both 10 away -> lowest position 0
    result = select("k-center", {"proxy_embedding": x.astype(np.float32)}, 3, 6, first="mean")
    assert result.positions.tolist() == [0, 3, 5] and result.diagnostics["first_centre"] == 3


def test_cartography_regions_by_hand():
    conf = np.array([[0.1, 0.1, 0.1],    # mean .1, sd 0      -> hard
                     [0.2, 0.8, 0.2],    # mean .4, sd .283   -> most ambiguous
                     [0.9, 0.9, 0.9],    # mean .9, sd 0      -> easy
                     [0.5, 0.7, 0.6]],   # mean .6, sd .0816  -> second most ambiguous
                    dtype=np.float32)
    assert picks(select("cartography", {"confidence": conf}, 2, 4)) == {1, 3}
    assert picks(select("cartography", {"confidence": conf}, 1, 4, region="hard")) == {0}
    assert picks(select("cartography", {"confidence": conf}, 1, 4, region="easy")) == {2}
    with pytest.raises(DataError, match="needs confidence at >= 2 checkpoints"):
        select("cartography", {"confidence": conf[:, :1]}, 1, 4)


def test_ifd_highest_ratio_at_or_below_one_then_fills_closest_above():
    loss = np.array([[2.0], [1.0], [3.0], [0.5]], dtype=np.float32)
    alone = np.array([[4.0], [0.5], [3.3], [1.0]], dtype=np.float32)
    # IFD = 0.5, 2.0, 0.909, 0.5: position 1 (IFD 2 > 1) is dropped; highest remaining: 2, then 0 (tie with 3)
    result = select("ifd", {"loss": loss, "loss_alone": alone}, 2, 4)
    assert picks(result) == {2, 0} and result.diagnostics["filled_above_max_ifd"] == 0
    full = select("ifd", {"loss": loss, "loss_alone": alone}, 4, 4)
    assert full.diagnostics["filled_above_max_ifd"] == 1
    assert picks(select("ifd", {"loss": loss, "loss_alone": alone}, 1, 4, max_ifd=5.0)) == {1}


def _less_signals(lrs):
    features = np.array([[[1, 0], [1, 0]],          # aligned with task A at both checkpoints
                         [[0, 1], [0, 1]],          # aligned with task B
                         [[0.6, 0.8], [1, 0]]],     # half-way at checkpoint 0, A at checkpoint 1
                        dtype=np.float16)
    dev = np.array([[[1, 0], [1, 0]], [[0, 1], [0, 1]]], dtype=np.float16)
    return {"gradients": features, "dev_gradients": dev, "dev_tasks": np.array(["A", "B"]),
            "checkpoint_lr": np.array(lrs, dtype=np.float32)}


def test_less_learning_rate_weighted_cosine_max_over_tasks():
    from s2lbench.selectors.less import less_scores

    sig = _less_signals([1.0, 3.0])  # checkpoint weights .25 and .75
    scores, tasks = less_scores(sig["gradients"], sig["dev_gradients"], sig["dev_tasks"], sig["checkpoint_lr"])
    # example 2: A = .25 * .6 + .75 * 1 = .9, B = .25 * .8 + .75 * 0 = .2
    assert tasks == ["A", "B"]
    np.testing.assert_allclose(scores, [[1.0, 0.0], [0.0, 1.0], [0.9, 0.2]], atol=1e-3)
    assert picks(select("less", sig, 2, 3)) == {0, 1}          # max over tasks: 1, 1, .9
    assert picks(select("less", sig, 1, 3, aggregate="mean")) == {2}  # means: .5, .5, .55


def test_rds_round_robin_over_tasks_differs_from_global_top():
    emb = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [1, 1], [0.95, 0.05]], dtype=np.float32)
    sig = {"proxy_embedding": emb, "dev_embedding": np.array([[1, 0], [0, 1]], dtype=np.float32),
           "dev_tasks": np.array(["A", "B"])}
    # A's ranking: 0, 5, 1, ...; B's: 2, 3, ... -> turns A, B, A, B take 0, 2, 5, 3 (global top-4 would take 1)
    result = select("rds", sig, 4, 6)
    assert result.positions.tolist() == [0, 2, 3, 5]


@pytest.mark.parametrize("name", ["random-per-source", "longest", "k-center", "cartography", "ifd", "less", "rds"])
def test_each_new_selector_through_s2lbench_select(name, tmp_path):
    import json

    from test_selectors_contract import all_signals

    from s2lbench.cli import main
    from s2lbench.signals.signalset import FILES

    n = 300
    pool_file = tmp_path / "pool.jsonl"
    pool_file.write_text("".join(json.dumps({"id": f"ex{i}", "instruction": "q", "output": "a" * (i % 9 + 1),
                                             "source": "small" if i % 5 == 0 else "big"}) + "\n" for i in range(n)))
    signals = tmp_path / "signals"
    signals.mkdir()
    for signal, array in all_signals(n).items():
        np.save(signals / FILES[signal], array)
    out = tmp_path / f"{name}.jsonl"
    assert main(["select", "--pool", str(pool_file), "--selector", name, "--budget", "0.1", "--seed", "1",
                 "--signals", str(signals), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 30 and len({r["id"] for r in rows}) == 30
    diag = json.loads((tmp_path / f"{name}.diagnostics.json").read_text())
    assert diag["provenance"]["selector"] == name
    if name == "random-per-source":  # 30 over a 60-row and a 240-row source: 15 each
        assert diag["source_mix"]["small"]["selected"] == 15
