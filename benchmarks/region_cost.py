"""What one parallel region costs on each threading layer: ``python benchmarks/region_cost.py``.

A product runs in one ``prange`` (one region), so a parallel call wakes the
threads once. This measures that wake-up: a region with nothing to do, and
a region whose two iterations each take about 0.65 ms on one core, both
back to back ("warm") and after a 0.15 s pause ("cold", the threads idle).
Each layer runs in its own child process, with numba_affine imported (so
with the settings it gives OpenMP). Figures in docs/tuning.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

CHILD = r"""
import json, time
import numpy as np
import numba_affine  # noqa: F401  (its OpenMP settings)
import numba
from numba import njit, prange

@njit(parallel=True, nogil=True)
def region(n, out):
    for t in prange(out.size):
        s = 0.0
        for i in range(n):
            s += i * 1e-9
        out[t] = s

@njit(nogil=True)
def serial(n, out):
    s = 0.0
    for i in range(n):
        s += i * 1e-9
    out[0] = s

out = np.zeros(2)
region(1, out); serial(1, out)
n = 1_000_000
t0 = time.perf_counter()
for _ in range(50):
    serial(n, out)
one = (time.perf_counter() - t0) / 50
result = {"layer": numba.threading_layer(), "one_iteration_ms": one * 1e3}
for work, label in ((0, "empty"), (n, "work")):
    for mode in ("warm", "cold"):
        ts = []
        for _ in range(21):
            if mode == "cold":
                time.sleep(0.15)
            t0 = time.perf_counter()
            region(work, out)
            ts.append(time.perf_counter() - t0)
        result[f"{label}_{mode}_us"] = float(np.median(ts) * 1e6)
print(json.dumps(result))
"""


def main() -> int:
    rows = []
    for layer in ("tbb", "omp", "workqueue"):
        env = dict(os.environ, NUMBA_THREADING_LAYER=layer, NUMBA_NUM_THREADS="2")
        run = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=600)
        if run.returncode != 0:
            print(f"{layer}: failed: {run.stderr.strip().splitlines()[-1:]}")
            continue
        rows.append(json.loads(run.stdout.strip().splitlines()[-1]))
    print(f"{'layer':>10} | {'empty warm':>10} {'empty cold':>10} | {'2 x 1 it. warm':>14} {'cold':>8} | one iteration")
    for r in rows:
        print(f"{r['layer']:>10} | {r['empty_warm_us']:8.1f}us {r['empty_cold_us']:8.1f}us | "
              f"{r['work_warm_us']:12.0f}us {r['work_cold_us']:6.0f}us | {r['one_iteration_ms'] * 1e3:.0f}us")
    print("median of 21 calls; 'cold' after a 0.15 s pause; 2 threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
