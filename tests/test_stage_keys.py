"""Stage keys and cell hashes of the shipped configs, pinned: a run folder made by an earlier version
resumes with nothing recomputed only while every stage's spec hashes as it did.

``tests/stage_keys.json`` was written before the layout moved to one package per stage (issue #35) and must
never be regenerated to make this test pass: a key that moves means every user's cache is invalidated. The
grid is walked without training or selecting anything: the gym is built for real (the pool's fingerprint is
in every key), every other stage is recorded instead of computed.
"""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from s2lbench.common import settings
from s2lbench.grid.experiment import load_experiment
from s2lbench.grid.runner import Runner
from s2lbench.grid.stages import StageResult, StageStore
from s2lbench.signals.signalset import TEXT_EMBEDDING, SignalSet

ROOT = Path(__file__).resolve().parents[1]
PINNED = json.loads((Path(__file__).parent / "stage_keys.json").read_text())
CONFIGS = {"demo.yaml": ROOT / "s2lbench" / "demo.yaml", "regression.yaml": ROOT / "configs" / "regression.yaml",
           "gym.yaml": ROOT / "configs" / "gym.yaml", "gym-transfer.yaml": ROOT / "configs" / "gym-transfer.yaml",
           "gym-large.yaml": ROOT / "configs" / "gym-large.yaml",
           "offline_real.yaml": ROOT / "configs" / "offline_real.yaml",
           # the gym board v3 grid (issue #40) runs across sessions: its keys must not move while it does
           "gym-v3.yaml": ROOT / "configs" / "gym-v3.yaml",
           "gym-v3-transfer.yaml": ROOT / "configs" / "gym-v3-transfer.yaml"}
#: what later code reads from a stage's meta, for the stages that are recorded instead of computed
FAKE_META = {"gym-base": {"path": "base"}, "proxy": {"seconds": 0.0, "flops": 0.0, "checkpoints": []},
             "signals": {"seconds": 0.0, "flops": 0.0, "extra_seconds": {}},
             "finetune": {"seconds": 0.0, "flops": 0.0, "model_dir": "run/final"}, "text-embedding": {}}


class _Recorded(Exception):
    """A selection's key is recorded; reading its (never written) output is skipped."""


def stage_keys(config_path: Path, out: Path) -> dict:
    config = load_experiment(config_path)
    keys: dict[str, list[str]] = {}
    real_run = StageStore.run

    def record(self, stage, spec, compute):
        if stage == "gym":
            result = real_run(self, stage, spec, compute)
        else:
            key = self.key(stage, spec)
            result = StageResult(key, self.path(stage, key), FAKE_META.get(stage, {}), True)
        if result.key not in keys.setdefault(stage, []):
            keys[stage].append(result.key)
        if stage == "selection":
            raise _Recorded
        return result

    def signals_of(directory):
        return SignalSet({name: np.zeros((len(runner.pool), 2), dtype=np.float32)
                          for name in sorted(runner.needed_signals()) if name != TEXT_EMBEDDING}, steps=[1, 2])

    with mock.patch.object(StageStore, "run", record), \
            mock.patch.object(SignalSet, "from_dir", staticmethod(signals_of)), \
            mock.patch("numpy.load", lambda *a, **k: np.zeros((1, 2), dtype=np.float32)):
        runner = Runner(config, out)
        if runner.needed_signals():
            runner.signals()
        cells = {}
        for cell in runner.cells():
            cells[cell.cell_id] = runner._cell_hash(cell)
            if cell.selector is None:
                runner.finetune(cell, runner.pool.ids)
            else:
                with pytest.raises(_Recorded):
                    runner.select(cell)
    return {"stages": {k: sorted(v) for k, v in sorted(keys.items())}, "cells": cells}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_shipped_configs_keep_their_stage_keys_and_cell_hashes(name, tmp_path_factory):
    if name == "offline_real.yaml" and not (settings.data_dir(None) / "train" / "gsm8k_train.jsonl").is_file():
        pytest.skip("needs the shared data directory (train/gsm8k_train.jsonl)")
    # one output folder for all configs: the grids that build the same gym build it once
    out = tmp_path_factory.getbasetemp() / "stage-keys"
    assert stage_keys(CONFIGS[name], out) == PINNED[name]
