"""What a jitted entry point would cost: cold compile and call time at the seed's size.

    python benchmarks/entry_compile.py

For the issue "One dispatch per call". Each variant runs in a fresh process
with an empty ``NUMBA_CACHE_DIR`` and prints the seconds its first call
takes (compile included), then its time per call next to numpy's
``np.dot(x, W) + b`` (``numba_affine.bench.compare``, median of 7 rounds),
float64, 20x50x10:

* ``python``: ``affine_forward`` from Python as it is (then ``affine_backward``);
* ``overload``: an ``@njit`` function calling ``affine_forward`` (the overload
  in ``jitted.py``: checks with an object-mode fallback for the message,
  three layers of ``register_jitable`` helpers around the product);
* ``direct-str``: an ``@njit`` entry that checks the shapes, builds its
  message with ``str()`` and calls ``kernels.product.serial`` directly;
* ``direct-const``: the same with a constant message.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

VARIANTS = ("python", "overload", "direct-str", "direct-const")

CHILD = r'''
import sys, time
variant = sys.argv[1]
import numpy as np, numba
import numba_affine as na
from numba_affine import kernels, tuning
from numba_affine.bench import compare

lanes, kc_max = kernels.lanes_of(8), kernels.plan(1, 1, 1, 8, 1, False, False).kc_max
product = kernels.product.serial

def direct(const):
    @numba.njit
    def entry(x, W, b, S):
        N, D = x.shape
        H = W.shape[1]
        if D != W.shape[0] or b.shape[0] != H:
            if const:
                raise ValueError("affine_forward: shapes do not fit")
            raise ValueError("affine_forward: x has " + str(D) + " columns but W has " + str(W.shape[0]) + " rows")
        y = np.empty((N, H), x.dtype)
        mt = max(1, (N + 11) // 12) * 12
        mc = min(mt, tuning.MC_MAX // 12 * 12)
        ng = max(1, (H + 2 * lanes - 1) // (2 * lanes))
        slot = kernels.scratch_slot(D, H, lanes, kc_max, mc, ng, False, False)
        by_rows = kernels.rows_first(D, ng, 2 * lanes, 8, kc_max, tuning.ROWS_FIRST_MAX_BYTES)
        product(x.reshape(-1), D, 1, W.reshape(-1), H, 1, y.reshape(-1), H, N, D, H, b, True, False, S, slot,
                False, False, lanes, kc_max, mc, mt, ng, by_rows)
        return y
    S = np.empty(1 << 14)
    return lambda x, W, b: entry(x, W, b, S)

rng = np.random.default_rng(0)
x, W, b = rng.standard_normal((20, 50)), rng.standard_normal((50, 10)), rng.standard_normal(10)
if variant == "python":
    fn = na.affine_forward
elif variant == "overload":
    jf = numba.njit(lambda x, W, b: na.affine_forward(x, W, b))
    fn = jf
else:
    fn = direct(variant == "direct-const")
t0 = time.perf_counter()
fn(x, W, b)
first = time.perf_counter() - t0
assert np.allclose(fn(x, W, b), x @ W + b)
t = compare({"numpy": lambda: np.dot(x, W) + b, "this": lambda: fn(x, W, b)}, rounds=7)
print(f"{variant:13s} first call {first:5.2f} s | {t['this'] * 1e6:5.2f} us per call, numpy {t['numpy'] * 1e6:5.2f} us: {t['numpy'] / t['this']:.2f}x")
'''


def main() -> int:
    for variant in VARIANTS:
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            subprocess.run([sys.executable, "-c", CHILD, variant], env=env, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
