"""Time building the leaderboard (with every paired test) for a store the size of the full gym grid.

    python benchmarks/bench_leaderboard.py            # last line: leaderboard_seconds <X>

The store is synthetic: 13 selectors x 3 budgets x 3 seeds x 2 targets plus a 3-seed full-data reference,
6 tasks x 300 test examples with random 0/1 scores: 504 paired tests. Building the
store is excluded; the time covers reading the store and samples, the tables, the paired tests and rendering
Markdown, then the scaling figure on its own.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from s2lbench.report.leaderboard import build_leaderboard, render
from s2lbench.report.plots import plot_scaling
from s2lbench.results.store import Cell, ResultRow, ResultsStore

SELECTORS = ["random"] + [f"selector_{i:02d}" for i in range(12)]
BUDGETS = [750, 1500, 4500]
POOL = 15_000
TASKS = [(f"task_{i}", i < 2) for i in range(6)]


def build_store(folder: Path, n_examples: int, seed: int = 0) -> ResultsStore:
    store = ResultsStore(folder)
    rng = np.random.default_rng(seed)
    for target in ("target-s", "target-l"):
        for k, selector in enumerate([*SELECTORS, "full"]):
            for budget in [POOL] if selector == "full" else BUDGETS:
                for s in range(3):
                    cid = f"{target}-{selector}-{budget}-{s}"
                    store.upsert_cell(Cell(cid, "bench", selector, budget, budget / POOL, s, target, status="done",
                                           selected_ids_hash=f"h{cid}", cost={"selection_seconds": 1.0}))
                    rows = []
                    for task, in_domain in TASKS:
                        scores = (rng.random(n_examples) < 0.3 + 0.01 * (k % 10)).astype(float)
                        rel = store.write_samples(cid, task, ({"index": i, "scores": {"accuracy": float(v)}}
                                                              for i, v in enumerate(scores)))
                        rows.append(ResultRow(cid, task, "accuracy", float(scores.mean()), True, in_domain,
                                              n_examples, rel))
                    store.add_results(rows)
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300, help="test examples per task")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = build_store(Path(tmp) / "store", args.examples)
        start = time.perf_counter()
        board = build_leaderboard(store)
        text = render(board, "md")
        table_seconds = time.perf_counter() - start
        start = time.perf_counter()
        plot_scaling(store.folder, Path(tmp) / "scaling.png")
        plot_seconds = time.perf_counter() - start
    tested = sum(1 for t in board.tables for r in t.rows for c in r.cells.values() if c.test)
    print(f"tables {len(board.tables)}, paired tests {tested}, markdown {len(text)} chars")
    print(f"scaling_plot_seconds {plot_seconds:.2f}")
    print(f"leaderboard_seconds {table_seconds:.2f}")


if __name__ == "__main__":
    main()
