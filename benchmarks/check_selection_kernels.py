"""Does a selector pick the same rows under every BLAS kernel this CPU can run? One subprocess per
OpenBLAS core type (``OPENBLAS_CORETYPE``, read when numpy loads), each hashing the selector's picks.

    python benchmarks/check_selection_kernels.py                          # facility location, synthetic
    python benchmarks/check_selection_kernels.py --embeddings RUN/stages/signals/KEY/proxy_embedding.npy \\
        --selector k-center --budget 400 --coretypes Haswell,SkylakeX,Zen

Prints one line per core type (order hash, set hash, seconds), then how many distinct subsets came out. The
embeddings are also run with their columns permuted, the same sums in another order, which needs no
particular CPU. A core type the CPU cannot run (e.g. SkylakeX without AVX-512) fails in its subprocess and is
reported as such. docs/selectors.md, "Greedy selectors give the same subset on every CPU", says why this matters.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = """
import hashlib, json, sys, time
import numpy as np
from s2lbench.selection.helpers import facility_location_greedy
from s2lbench.selectors.k_center import k_center_greedy
x = np.load(sys.argv[1]); budget = int(sys.argv[3])
if sys.argv[4] == "permuted":
    x = np.ascontiguousarray(x[:, np.random.default_rng(1).permutation(x.shape[1])])
t = time.perf_counter()
if sys.argv[2] == "facility-location":
    order, _ = facility_location_greedy(x, budget, np.random.default_rng(0))
else:
    order, _ = k_center_greedy(x, budget, first=0)
order = np.asarray(order, dtype=np.int64)
print(json.dumps({"order": hashlib.md5(order.tobytes()).hexdigest()[:12],
                  "set": hashlib.md5(np.sort(order).tobytes()).hexdigest()[:12],
                  "seconds": round(time.perf_counter() - t, 2)}))
"""


def near_tied_embeddings(n: int = 4000, dim: int = 48) -> np.ndarray:
    """Clustered rows with exact duplicates: many gains within float32's rounding of each other."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((40, dim)).astype(np.float32)
    x = (centres[rng.integers(0, 40, n)] + 0.3 * rng.standard_normal((n, dim))).astype(np.float32)
    x[n - n // 8:] = x[: n // 8]
    return x


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embeddings", type=Path, default=None, help=".npy, examples x dims (default: synthetic)")
    parser.add_argument("--selector", choices=["facility-location", "k-center"], default="facility-location")
    parser.add_argument("--budget", type=int, default=400)
    parser.add_argument("--coretypes", default="Haswell,SkylakeX,Zen",
                        help="comma-separated OPENBLAS_CORETYPE values ('' = the library's own choice)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.npy"
        if args.embeddings is None:
            np.save(path, near_tied_embeddings())
        else:
            try:
                x = np.load(args.embeddings)
            except (OSError, ValueError) as e:
                raise SystemExit(f"{args.embeddings}: not a readable .npy array ({e})") from None
            if x.ndim != 2 or x.shape[0] < args.budget:
                raise SystemExit(f"{args.embeddings}: shape {x.shape} is not examples x dims with at least "
                                 f"{args.budget} examples")
            np.save(path, x)
        runs = [("default", "", "plain"), ("default", "", "permuted")]
        runs += [(c, c, "plain") for c in args.coretypes.split(",") if c]
        subsets = set()
        print(f"{args.selector}, budget {args.budget}, embeddings {args.embeddings or 'synthetic near-tied 4000 x 48'}")
        for label, coretype, layout in runs:
            env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
            if coretype:
                env["OPENBLAS_CORETYPE"] = coretype
            done = subprocess.run([sys.executable, "-c", CHILD, str(path), args.selector, str(args.budget), layout],
                                  env=env, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"  {label:<9} {layout:<9} failed (this CPU cannot run it?): "
                      f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            subsets.add(result["order"])
            print(f"  {label:<9} {layout:<9} order {result['order']}  set {result['set']}  {result['seconds']} s")
        print(f"distinct greedy orders: {len(subsets)}")
    return 0 if len(subsets) <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
