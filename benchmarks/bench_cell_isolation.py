"""What running each grid cell in its own process costs (issue 39): the start of a child per start method,
with the modules a cell imports already loaded in the parent, as `s2lbench run`'s runner has them.

    python benchmarks/bench_cell_isolation.py

Prints seconds per cell start for fork, forkserver and spawn (median of --repeats), to set against a
fine-tune (~95 s in the gym grid).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time


def child(queue) -> None:
    import s2lbench.grid.runner  # noqa: F401 -- what a cell needs: torch, transformers, the stages

    queue.put(time.perf_counter())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import s2lbench.grid.runner  # noqa: F401

    figures = {}
    for method in ("fork", "forkserver", "spawn"):
        ctx = mp.get_context(method)
        if method == "forkserver":
            ctx.set_forkserver_preload(["s2lbench.grid.runner"])
        times = []
        for _ in range(args.repeats):
            queue = ctx.Queue()
            start = time.perf_counter()
            process = ctx.Process(target=child, args=(queue,))
            process.start()
            times.append(queue.get() - start)
            process.join()
        figures[f"{method}_seconds_per_cell"] = round(statistics.median(times), 3)
    figures["share_of_a_95s_finetune"] = {k.split("_")[0]: f"{100 * v / 95:.2f} %" for k, v in figures.items()}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
