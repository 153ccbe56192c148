"""The A/A control: random listed again under another label draws from an independent stream, the default
stream picks exactly what random always picked, and the gym and demo configs carry the control row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2lbench.errors import S2LBenchError
from s2lbench.grid.experiment import load_experiment
from s2lbench.plugin_manager import get_hooks
from s2lbench.pool.records import Pool, SFTExample
from s2lbench.selection import run_selector
from s2lbench.signals.signalset import SignalSet

ROOT = Path(__file__).resolve().parents[1]
POOL = Pool([SFTExample(id=f"e{i}", instruction="q", output="a", source="s") for i in range(200)])


def picks(seed: int, **options) -> list[int]:
    result = run_selector(get_hooks().selector("random"), POOL, 20, seed=seed, signals=SignalSet({}, steps=[]),
                          options=options)
    return sorted(result.positions.tolist())


def test_the_default_stream_is_the_baseline_unchanged():
    expected = sorted(np.random.default_rng(3).choice(len(POOL), size=20, replace=False).tolist())
    assert picks(3) == picks(3, stream=0) == expected


def test_another_stream_draws_another_subset_deterministically():
    aa = picks(3, stream=1)
    assert aa != picks(3) and aa == picks(3, stream=1) and aa != picks(3, stream=2) and len(set(aa)) == 20


def test_a_bad_stream_is_refused_with_its_name():
    with pytest.raises(S2LBenchError, match="stream"):
        picks(0, stream=-1)


@pytest.mark.parametrize("config", [ROOT / "configs" / "gym.yaml", ROOT / "s2lbench" / "demo.yaml"])
def test_the_gym_and_demo_configs_carry_the_aa_control(config):
    specs = [s for s in load_experiment(config).selectors if s.name == "random"]
    assert [(s.row, s.options) for s in specs] == [("random", {}), ("random-aa", {"stream": 1})]
