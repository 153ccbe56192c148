"""What trusting the cache costs (issue 39): the always-on manifest check on a cached rerun, the deep check
(`s2lbench verify`), and finishing a stage (its manifest), measured on a finished run; scaled to the gym
grid's cache by counting its stages.

    OMP_NUM_THREADS=1 python benchmarks/bench_cache_integrity.py                 # runs configs/regression.yaml first
    python benchmarks/bench_cache_integrity.py --run runs/regression             # an existing finished run

Prints one JSON object. ``check_share_of_cached_rerun`` is the goal's figure (< 1 %): the time the always-on
check of every stage takes, over the wall time of a cached rerun in which every cell runs again over the
cache (results removed, every stage reused: the case where the check runs on every stage).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
S2LBENCH = [sys.executable, "-c", "from s2lbench.cli import main; raise SystemExit(main())"]


def best_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(S2LBENCH + args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    from s2lbench.common.manifest import build_manifest
    from s2lbench.grid.experiment import grid_cells, load_experiment
    from s2lbench.grid.stages import DONE, StageStore
    from s2lbench.grid.verify import finished_stages

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=str(REPO / "configs" / "regression.yaml"))
    parser.add_argument("--run", default=None, help="a finished run folder of --config (default: run it now)")
    parser.add_argument("--gym-config", default=str(REPO / "configs" / "gym.yaml"))
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    try:
        out = scratch / "run"
        first_run = None
        if args.run:
            shutil.copytree(args.run, out, symlinks=True)
        else:
            first_run = run(["run", args.config, "--out", str(out)])
        store = StageStore(out / "stages")
        stages = finished_stages(store.root)
        files_by_kind: dict[str, int] = {}
        bytes_by_kind: dict[str, int] = {}
        for kind, key in stages:
            listed = json.loads((store.path(kind, key) / DONE).read_text())["files"]
            files_by_kind[kind] = files_by_kind.get(kind, 0) + len(listed)
            bytes_by_kind[kind] = bytes_by_kind.get(kind, 0) + sum(e["size"] for e in listed.values())
        n_files = sum(files_by_kind.values())

        cheap = best_of(lambda: [store.check(k, key, deep=False) for k, key in stages])
        deep = best_of(lambda: [store.check(k, key, deep=True) for k, key in stages], repeats=3)
        # finishing a stage without the writer's digests: one read of every file (page cache warm, as right
        # after writing); with them, the small files the atomic writer wrote cost a stat
        rehash = best_of(lambda: [build_manifest(store.path(k, key), frozenset({DONE}), sync=False)
                                  for k, key in stages], repeats=3)

        done_rerun = run(["run", args.config, "--out", str(out)])  # every cell done: nothing runs
        for name in ("results.sqlite", "results.sqlite-wal", "results.sqlite-shm"):
            (out / name).unlink(missing_ok=True)
        for name in ("cells", "samples"):
            shutil.rmtree(out / name, ignore_errors=True)
        cached_rerun = run(["run", args.config, "--out", str(out)])  # every cell again, every stage reused

        gym = load_experiment(args.gym_config)
        gym_cells = grid_cells(gym)
        # the gym grid's cache: one fine-tune and one selection per cell (at most), one gym, proxy, signal pass
        # and base; per-stage file counts as measured here
        per_stage = {kind: files_by_kind[kind] / sum(1 for k, _ in stages if k == kind) for kind in files_by_kind}
        gym_stages = {"finetune": len(gym_cells), "selection": sum(1 for c in gym_cells if c.selector is not None)}
        gym_stages.update({k: 1 for k in per_stage if k not in gym_stages})
        gym_files = sum(per_stage.get(k, 0) * n for k, n in gym_stages.items())
        per_file = cheap / n_files
        print(json.dumps({
            "config": args.config, "first_run_seconds": first_run and round(first_run, 1),
            "stages": len(stages), "files": n_files, "files_by_kind": files_by_kind,
            "megabytes_by_kind": {k: round(v / 1e6, 2) for k, v in bytes_by_kind.items()},
            "cheap_check_seconds": round(cheap, 5), "cheap_check_us_per_file": round(per_file * 1e6, 2),
            "deep_check_seconds": round(deep, 4),
            "deep_check_mb_per_s": round(sum(bytes_by_kind.values()) / 1e6 / deep, 1),
            "manifest_by_rereading_seconds": round(rehash, 4),
            "rerun_all_done_seconds": round(done_rerun, 2), "cached_rerun_seconds": round(cached_rerun, 2),
            "check_share_of_cached_rerun": f"{100 * cheap / cached_rerun:.4f} %",
            "gym_grid": {"cells": len(gym_cells), "stages": gym_stages, "files_estimated": round(gym_files),
                         "cheap_check_seconds_estimated": round(gym_files * per_file, 4)},
            "cpu_count": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        }, indent=2))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
