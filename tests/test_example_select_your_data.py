"""examples/select_your_data.py runs top to bottom, as a user would run it: S2L selects 10 % of the GSM8K
train file with a tiny proxy, the subset is exported for TRL, and TRL's SFTTrainer fine-tunes a small model
on it, outside s2lbench's runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

EXAMPLE = REPO / "examples" / "select_your_data.py"


@pytest.mark.integration
def test_the_example_selects_exports_and_trains_with_trl(shared_data, tmp_path):
    pytest.importorskip("trl")
    if not (shared_data / "train" / "gsm8k_train.jsonl").is_file():
        pytest.skip("the GSM8K train file is not in the shared data folder")
    env = {**os.environ, "S2LBENCH_DATA_DIR": str(shared_data)}
    done = subprocess.run([sys.executable, str(EXAMPLE), "--out", str(tmp_path), "--cpu", "--train-steps", "6"],
                          capture_output=True, text=True, env=env, timeout=1200, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = (tmp_path / "subset" / "subset.messages.jsonl").read_text().splitlines()
    pool_rows = (shared_data / "train" / "gsm8k_train.jsonl").read_text().splitlines()
    assert len(rows) == round(0.1 * len(pool_rows))
    first = json.loads(rows[0])
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    assert "S2L picked" in done.stdout and "fine-tuned on" in done.stdout
    assert (tmp_path / "sft" / "final" / "config.json").is_file()
    diag = json.loads((tmp_path / "subset" / "diagnostics.json").read_text())
    assert diag["provenance"]["selector"] == "s2l" and diag["provenance"]["proxy"]["model"] == "gym-proxy"
