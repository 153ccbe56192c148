"""What a subset looks like next to its pool: prompt and output lengths, library versions (its source mix:
``s2lbench.selection.regime.source_mix``)."""

from __future__ import annotations

import platform

import numpy as np

from s2lbench import __version__
from s2lbench.pool.records import Pool


def length_stats(lengths: list[int]) -> dict[str, float]:
    a = np.asarray(lengths)
    return {"min": int(a.min()), "mean": round(float(a.mean()), 1), "p50": float(np.percentile(a, 50)),
            "p90": float(np.percentile(a, 90)), "max": int(a.max())}


def length_report(pool: Pool, positions: np.ndarray) -> dict[str, dict[str, dict[str, float]]]:
    """Character lengths of prompts (instruction + input) and outputs, pool vs subset."""
    prompt = np.array([len(ex.instruction) + len(ex.input) for ex in pool])
    output = np.array([len(ex.output) for ex in pool])
    return {"unit": "characters",
            "prompt": {"pool": length_stats(prompt.tolist()), "selected": length_stats(prompt[positions].tolist())},
            "output": {"pool": length_stats(output.tolist()), "selected": length_stats(output[positions].tolist())}}


def versions() -> dict[str, str]:
    found = {"s2lbench": __version__, "python": platform.python_version(), "numpy": np.__version__}
    try:
        import faiss

        found["faiss"] = faiss.__version__
    except ImportError:
        pass
    return found
