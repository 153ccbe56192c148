"""Where s2lbench reads data from: ``--data-dir`` beats ``$S2LBENCH_DATA_DIR`` beats ``./data``."""

from __future__ import annotations

import os
from pathlib import Path

ENV_DATA_DIR = "S2LBENCH_DATA_DIR"


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_DATA_DIR):
        return Path(os.environ[ENV_DATA_DIR])
    return Path("data")
