"""dW's speed by how many tasks per thread its parallel cut has (docs/tuning.md, PACKED_TASKS_PER_THREAD).

    python benchmarks/dw_tasks.py [--shape 1024x1024x1024] [--isa avx2]

Times ``affine_dw`` with ``tuning.PACKED_TASKS_PER_THREAD`` set to 4, 2 and 1
(median of 5 interleaved rounds, ``numba_affine.bench.compare``) and
``np.dot(x.T, dout)`` in the same process. ``--isa avx2`` runs it in a child
that builds the AVX2 kernels (``numba_affine.bench.avx2_environment``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="1024x1024x1024")
    parser.add_argument("--isa", choices=("native", "avx2"), default="native")
    args = parser.parse_args(argv)
    if args.isa == "avx2":
        from numba_affine.bench import avx2_environment

        env = dict(os.environ, **avx2_environment())
        return subprocess.call([sys.executable, __file__, "--shape", args.shape], env=env)

    import numba_affine
    from numba_affine import kernels, tuning
    from numba_affine.bench import compare

    N, D, H = map(int, args.shape.split("x"))
    for dt in (np.dtype(np.float64), np.dtype(np.float32)):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((N, D)).astype(dt)
        dout = rng.standard_normal((N, H)).astype(dt)
        dW = np.empty((D, H), dt)
        gfs = {}
        for tasks in (4, 2, 1):
            tuning.PACKED_TASKS_PER_THREAD = tasks
            kernels.clear_plans()
            t = compare({"dW": lambda: numba_affine.affine_dw(x, dout, out=dW)}, rounds=5)["dW"]
            gfs[f"{tasks} per thread"] = 2.0 * N * D * H / t / 1e9
        t = compare({"numpy": lambda: np.dot(x.T, dout, out=dW)}, rounds=5)["numpy"]
        gfs["numpy"] = 2.0 * N * D * H / t / 1e9
        print(f"{dt.name:8s} dW {args.shape}, GF/s: " + ", ".join(f"{k} {v:.1f}" for k, v in gfs.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
