"""Where a small call's time goes: the Python function, the kernel's dispatch, the kernel's own work.

    python benchmarks/call_cost.py [--shape 20x50x10 ...] [--dtype float64]

Per shape and dtype, microseconds per call (best of 9 batches; the machine
is shared, so compare rows of one run):

* ``api``: ``affine_forward`` / ``affine_backward`` from Python (for one
  sample also with 1-D x and dout, the ``fwd 1-D`` / ``bwd 1-D`` rows);
* ``kernel``: the same kernel call from Python (``kernels.entry``, the
  11 arguments the short path passes; for one sample's forward
  ``kernels.row_product``): the dispatch plus the work;
* ``in jit``: that call from a jitted loop, the work without the dispatch;
* ``numpy``: the seed's formulas.

Not an asv benchmark: it explains one figure of the bench's small table
(docs/tuning.md, "What a seed-size call costs").
"""

from __future__ import annotations

import argparse
import time
import timeit

import numba
import numpy as np

from numba_affine import affine_backward, affine_forward, kernels, warmup
from numba_affine.api import _NO_PLAN


def _per_call(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=9)) / number * 1e6


def measure(shape, dtype) -> dict[str, float]:
    N, D, H = shape
    rng = np.random.default_rng(0)
    x, W, b, d = (rng.standard_normal(s).astype(dtype) for s in ((N, D), (D, H), (H,), (N, H)))
    kernel = kernels.entry(dtype, False)

    @numba.njit
    def loop(n, op, x, W, b, d, y, dx, dW, db, S, plan):
        for _ in range(n):
            kernel(op, x, W, b, d, y, dx, dW, db, S, plan)

    none = np.empty(0, dtype)
    y, dx, dW, db = np.empty((N, H), dtype), np.empty((N, D), dtype), np.empty((D, H), dtype), np.empty(H, dtype)
    calls = {
        "forward": (kernels.FORWARD | kernels.WITH_BIAS, (x, W, b, x, y, y, y, none)),
        "backward": (kernels.BACKWARD, (x, W, none, d, dx, dx, dW, db)),
    }
    number = max(100, int(2e5 / max(1, N * D * H) ** 0.5))
    out = {}
    if N == 1:  # one sample's forward is row_product
        del calls["forward"]
        row = (x.reshape(-1), 0, W.reshape(-1), H, y.reshape(-1), D, H, b, True, kernels.lanes_of(dtype.itemsize))
        row_product = kernels.row_product

        @numba.njit
        def row_loop(n, args):
            for _ in range(n):
                row_product(*args)

        row_loop(1, row)
        out["forward kernel"] = _per_call(lambda: row_product(*row), number)
        out["forward in jit"] = _per_call(lambda: row_loop(100, row), max(1, number // 100)) / 100
    for name, (op, args) in calls.items():
        if kernel(op, *args, none, _NO_PLAN):  # needs more scratch than the stack: not a short call
            continue
        loop(1, op, *args, none, _NO_PLAN)
        out[f"{name} kernel"] = _per_call(lambda: kernel(op, *args, none, _NO_PLAN), number)
        out[f"{name} in jit"] = _per_call(lambda: loop(100, op, *args, none, _NO_PLAN), max(1, number // 100)) / 100
    out["forward api"] = _per_call(lambda: affine_forward(x, W, b), number)
    out["backward api"] = _per_call(lambda: affine_backward(d, x, W), number)
    if N == 1:  # after a 1-D forward, the layer passes 1-D x and dout
        out["bwd 1-D api"] = _per_call(lambda: affine_backward(d[0], x[0], W), number)
        out["fwd 1-D api"] = _per_call(lambda: affine_forward(x[0], W, b), number)
    time.sleep(0.2)  # OpenBLAS's workers spin after a call: numpy apart
    out["forward numpy"] = _per_call(lambda: np.dot(x, W) + b, number)
    out["backward numpy"] = _per_call(lambda: (np.dot(d, W.T), np.dot(x.T, d), np.sum(d, axis=0)), number)
    time.sleep(0.2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", action="append", help="NxDxH (repeatable)")
    parser.add_argument("--dtype", choices=("float32", "float64"), action="append")
    args = parser.parse_args()
    shapes = [tuple(map(int, s.split("x"))) for s in (args.shape or ["20x50x10", "8x64x32", "32x128x10"])]
    dtypes = args.dtype or ["float64", "float32"]
    warmup([np.dtype(d) for d in dtypes])
    print(f"{'shape':>12} {'dtype':>8} | {'':>8} {'api':>7} {'kernel':>7} {'in jit':>7} {'numpy':>7}  (us per call)")
    for shape in shapes:
        for dt in dtypes:
            t = measure(shape, np.dtype(dt))
            for name in ("forward", "backward", "fwd 1-D", "bwd 1-D"):
                if f"{name} api" not in t:
                    continue
                cells = [t.get(f"{name} {what}", float("nan")) for what in ("api", "kernel", "in jit", "numpy")]
                print(f"{'x'.join(map(str, shape)):>12} {dt:>8} | {name:>8} " + " ".join(f"{c:7.2f}" for c in cells))
    print(f"numpy {np.__version__}, numba {numba.__version__}")


if __name__ == "__main__":
    main()
