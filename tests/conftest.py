"""Shared fixtures. Tests never touch the network: the hub is forced offline for the whole session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# the logs of commands without a results folder (select, signals) and crash reports: not the user's /tmp folder
os.environ.setdefault("S2LBENCH_LOG_DIR", tempfile.mkdtemp(prefix="s2lbench-test-logs-"))

REPO = Path(__file__).resolve().parents[1]


def find_shared_data() -> Path | None:
    """``$S2LBENCH_DATA_DIR`` if set, else ``../shared/data`` beside the checkout."""
    env = os.environ.get("S2LBENCH_DATA_DIR")
    for candidate in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if (candidate / "eval").is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = find_shared_data()
    if path is None:
        pytest.skip("the shared data folder is absent: set S2LBENCH_DATA_DIR or place it at ../shared/data "
                    "beside the checkout (see README, 'Data directory')")
    return path

