"""Figures: the numbers behind the scaling plot, diagnostics discovery, input checks, and real PNG output."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.image import imread
from test_leaderboard_store import make_store

from s2lbench.errors import DataError
from s2lbench.report.plots import (
    load_clusters,
    load_source_mixes,
    plot_scaling,
    plot_source_mix,
    plot_trajectory_clusters,
    scaling_series,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_scaling_series_has_mean_std_per_budget_and_the_full_line(tmp_path):
    make_store(tmp_path, extra_budget=300)
    (panel,) = scaling_series(tmp_path)
    assert panel.target == "tiny" and panel.scale == 100.0
    assert [p[0] for p in panel.series["s2l"]] == [100, 300]
    budget, mean, std = panel.series["s2l"][0]
    assert mean == pytest.approx(45.0) and std == pytest.approx(10.0)  # avg column, x100
    assert panel.series["solo"] == [(100, pytest.approx(30.0), 0.0)]  # one seed: no error bar
    assert panel.reference == [(1000, pytest.approx(90.0), 0.0)]
    (gsm8k,) = scaling_series(tmp_path, column="gsm8k")
    assert gsm8k.series["random"][1][1] == pytest.approx(60.0)
    with pytest.raises(DataError, match="no column 'nope'"):
        scaling_series(tmp_path, column="nope")
    out = plot_scaling(tmp_path, tmp_path / "fig" / "scaling.png")
    assert out.read_bytes()[:8] == PNG_MAGIC and imread(out).shape[0] > 300


def test_one_budget_keeps_the_dodged_points_together(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    make_store(tmp_path)  # every selector at the one budget of 100
    closed = []
    monkeypatch.setattr(plt, "close", closed.append)
    plot_scaling(tmp_path, tmp_path / "scaling.png")
    (ax,) = closed[0].axes
    lo, hi = ax.get_xlim()
    assert lo == pytest.approx(80) and hi == pytest.approx(125)  # not zoomed onto the ±2 % dodge


def _clusters(n=600, t=6, k=20, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    start = rng.random(k) * 3 + 0.5
    traj = np.stack([start[labels] * np.exp(-0.3 * j) for j in range(t)], axis=1) + 0.01 * rng.random((n, t))
    return traj, labels


def test_trajectory_cluster_figure_grows_with_the_clusters_shown(tmp_path):
    traj, labels = _clusters()
    six = imread(plot_trajectory_clusters(traj, labels, tmp_path / "six.png", n_clusters=6))
    two = imread(plot_trajectory_clusters(traj, labels, tmp_path / "two.png", n_clusters=2))
    assert six.shape[0] > two.shape[0] and six.shape[1] > two.shape[1]  # 2x3 panels vs 1x2
    again = plot_trajectory_clusters(traj, labels, tmp_path / "again.png", n_clusters=6)
    assert again.read_bytes() == (tmp_path / "six.png").read_bytes()  # same seed, same figure


def test_trajectory_inputs_are_checked(tmp_path):
    traj, labels = _clusters()
    with pytest.raises(DataError, match="do not match"):
        plot_trajectory_clusters(traj, labels[:-1], tmp_path / "x.png")
    with pytest.raises(DataError, match="3 checkpoint steps for 6"):
        plot_trajectory_clusters(traj, labels, tmp_path / "x.png", steps=[1, 2, 3])


def _write_diag(folder, **diag):
    folder.mkdir(parents=True)
    (folder / "diagnostics.json").write_text(json.dumps(diag))


def test_source_mix_reads_selection_diagnostics_one_seed_per_subset(tmp_path):
    _write_diag(tmp_path / "selections" / "a", selector="s2l", budget=100, seed=1, source_mix={"gsm8k": 60, "pot": 40})
    _write_diag(tmp_path / "selections" / "b", selector="s2l", budget=100, seed=0, source_mix={"gsm8k": 50, "pot": 50})
    _write_diag(tmp_path / "stages" / "selection" / "c", selector="random", budget=100, seed=0,
                source_mix={"gsm8k": 70, "camel": 30})
    _write_diag(tmp_path / "selections" / "d", selector="random", budget=200, seed=0)  # no mix: skipped
    mixes = load_source_mixes(tmp_path)
    assert mixes == {"random · n=100 · seed 0": {"gsm8k": 70, "camel": 30},
                     "s2l · n=100 · seed 0": {"gsm8k": 50, "pot": 50}}
    assert len(load_source_mixes(tmp_path, first_seed_only=False)) == 3
    out = plot_source_mix(mixes, tmp_path / "mix.png")
    assert out.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(DataError, match="no source mix"):
        plot_source_mix({}, tmp_path / "empty.png")


def test_a_runner_folder_shows_its_own_cells_selections_under_their_row_names(tmp_path):
    stages = tmp_path / "stages" / "selection"
    _write_diag(stages / "k1", selector="s2l", budget=100, seed=0, source_mix={"gsm8k": 50, "pot": 50})
    _write_diag(stages / "k2", selector="s2l", budget=100, seed=0, source_mix={"gsm8k": 90, "pot": 10})
    _write_diag(stages / "k3", selector="random", budget=100, seed=0, source_mix={"gsm8k": 70})  # no cell
    (tmp_path / "cells").mkdir()
    for row, key in (("s2l", "k1"), ("s2l-pooled", "k2")):
        (tmp_path / "cells" / f"t__{row}__10%__s0.json").write_text(json.dumps(
            {"cell": {"selector": row}, "diagnostics": {"selection_dir": f"stages/selection/{key}"}}))
    assert load_source_mixes(tmp_path) == {"s2l · n=100 · seed 0": {"gsm8k": 50, "pot": 50},
                                           "s2l-pooled · n=100 · seed 0": {"gsm8k": 90, "pot": 10}}


def test_clusters_are_found_beside_the_runner_selection_stage(tmp_path):
    traj, labels = _clusters(n=50, t=4)
    assert load_clusters(tmp_path) is None
    signals = tmp_path / "stages" / "signals" / "k1"
    signals.mkdir(parents=True)
    np.save(signals / "trajectories.npy", traj)
    (signals / "manifest.json").write_text(json.dumps({"checkpoint_steps": [10, 20, 30, 40]}))
    selection = tmp_path / "stages" / "selection" / "k2"
    _write_diag(selection, selector="s2l", budget=10, seed=0, source_mix={"gym": 10})
    np.save(selection / "cluster_labels.npy", labels)
    found_traj, found_labels, steps = load_clusters(tmp_path)
    np.testing.assert_allclose(found_traj, traj.astype(np.float32))
    np.testing.assert_array_equal(found_labels, labels)
    assert steps == [10, 20, 30, 40]
