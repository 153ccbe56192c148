"""What a subset looks like next to its pool: source mix, prompt and output lengths, library versions."""

from __future__ import annotations

import platform

import numpy as np

from s2lbench import __version__
from s2lbench.pool.records import Pool


def length_stats(lengths: list[int]) -> dict[str, float]:
    a = np.asarray(lengths)
    return {"min": int(a.min()), "mean": round(float(a.mean()), 1), "p50": float(np.percentile(a, 50)),
            "p90": float(np.percentile(a, 90)), "max": int(a.max())}


def source_mix(pool: Pool, positions: np.ndarray) -> dict[str, dict[str, float]]:
    """Per source: count and share in the pool and in the subset."""
    pool_counts = pool.source_counts()
    picked = np.asarray(pool.sources, dtype=object)[positions]
    sel_values, sel_counts = np.unique(picked.astype(str), return_counts=True) if len(picked) else ([], [])
    selected = dict(zip(sel_values, sel_counts.tolist() if len(picked) else [], strict=True))
    n, k = len(pool), max(1, len(positions))
    return {s: {"pool": c, "pool_share": round(c / n, 4), "selected": int(selected.get(s, 0)),
                "selected_share": round(selected.get(s, 0) / k, 4)} for s, c in pool_counts.items()}


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
