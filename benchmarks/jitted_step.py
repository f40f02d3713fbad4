"""The figures of numba-affine's calls inside users' jitted code (docs/tuning.md).

    python benchmarks/jitted_step.py [--rounds 7] [--skip-epoch]

1. A training step at the seed's 20x50x10 (forward, backward, SGD update
   of W and b) against the seed's numpy class in Python: ``JIT_STEPS``
   steps per jitted call, and one jitted call per step.
2. The digits epoch of ``examples/njit_training.py`` (needs the examples
   extra) against the same network in Python.
3. Allocations per step of ``bench.jitted_sgd_steps`` (outputs given).
4. What runs in a user's ``prange`` on each threading layer: the forward
   of 4 chunks of 512 rows (512x256x64 each) in a parallel user loop against
   a plain loop, and against one library call from Python on all rows.
5. Cold compile (empty cache) and cached load of the jitted step, in fresh
   processes.

Speed is a ratio against numpy (or a plain loop) measured in the same
process, median of rounds. A script, not an asv benchmark.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

PRANGE = textwrap.dedent(
    """
    import time, numpy as np, numba
    from numba import njit, prange
    import numba_affine as na
    from numba_affine.bench import compare

    @njit(parallel=True)
    def chunks_prange(x, W, b, y, chunk):
        for c in prange(x.shape[0] // chunk):
            na.affine_forward(x[c * chunk:(c + 1) * chunk], W, b, out=y[c * chunk:(c + 1) * chunk])

    @njit
    def chunks_loop(x, W, b, y, chunk):
        for c in range(x.shape[0] // chunk):
            na.affine_forward(x[c * chunk:(c + 1) * chunk], W, b, out=y[c * chunk:(c + 1) * chunk])

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2048, 256)); W = rng.standard_normal((256, 64)); b = rng.standard_normal(64)
    y = np.empty((2048, 64))
    t = compare({"loop": lambda: chunks_loop(x, W, b, y, 512), "prange": lambda: chunks_prange(x, W, b, y, 512),
                 "python": lambda: na.affine_forward(x, W, b, out=y)}, rounds=ROUNDS)
    assert np.array_equal(y, na.affine_forward(x, W, b))
    print(numba.threading_layer(), t["loop"] / t["prange"], t["loop"] / t["python"])
    """
)

COMPILE = textwrap.dedent(
    """
    import time
    t0 = time.perf_counter()
    import numpy as np
    from numba_affine.bench import jitted_sgd_steps
    t1 = time.perf_counter()
    x, W, d = np.ones((20, 50), DTYPE), np.ones((50, 10), DTYPE), np.ones((20, 10), DTYPE)
    b = np.ones(10, DTYPE)
    outs = (np.empty((20, 10), DTYPE), np.empty((20, 50), DTYPE), np.empty((50, 10), DTYPE), np.empty(10, DTYPE))
    jitted_sgd_steps(x, W, b, d, DTYPE(1e-4), 1, *outs)
    print(t1 - t0, time.perf_counter() - t1)
    """
)


def _python(code: str, env=None) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return proc.stdout


def seed_step(rounds: int) -> None:
    from numba_affine import bench

    print(f"## Training step at 20x50x10, per step (median of {rounds} rounds)\n")
    print("| dtype | numpy class in Python | jitted, 100 steps per call | speed-up | one jitted call per step | speed-up |")
    print("|---|---|---|---|---|---|")
    for dtype in ("float64", "float32"):
        t = bench.measure_jitted_step((20, 50, 10), dtype, rounds)
        print(f"| {dtype} | {t['numpy step'] * 1e6:.2f} us | {t['jitted loop'] * 1e6:.2f} us | "
              f"{t['numpy step'] / t['jitted loop']:.2f}x | {t['jitted step'] * 1e6:.2f} us | "
              f"{t['numpy step'] / t['jitted step']:.2f}x |")
    print()


def digits_epoch(rounds: int) -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    import njit_training as nt

    print(f"## Digits epoch, batch 32, 64 -> 100 -> 10, Adam (median of {rounds} epochs)\n")
    print("| dtype | jitted step and epoch | numpy network in Python | speed-up | Affine layers in Python | speed-up |")
    print("|---|---|---|---|---|---|")
    args = argparse.Namespace(hidden=100, batch_size=32, lr=1e-3, seed=0)
    for dtype in (np.float64, np.float32):
        x, _, t, _ = nt.load_data(0, dtype)
        r = nt.epoch_times(x, t, args, dtype, rounds)
        print(f"| {np.dtype(dtype).name} | {r['jitted'] * 1e3:.2f} ms | {r['numpy'] * 1e3:.2f} ms | "
              f"{r['numpy'] / r['jitted']:.2f}x | {r['Affine'] * 1e3:.2f} ms | {r['Affine'] / r['jitted']:.2f}x |")
    print()


def allocations() -> None:
    test = (ROOT / "tests" / "test_jitted.py").read_text()
    script = test.split('ALLOCATIONS_SCRIPT = textwrap.dedent(\n    """')[1].split('"""')[0]
    out = _python(textwrap.dedent(script), dict(os.environ, NUMBA_NRT_STATS="1")).split()
    print("## Allocations per step (NRT statistics, NUMBA_NRT_STATS=1)\n")
    print(f"float64: {out[0]} with every output given, {out[1]} without; "
          f"float32: {out[2]} with, {out[3]} without\n")


def prange_layers(rounds: int) -> None:
    print("## A user's prange over independent calls (4 x 512x256x64 forward, float64)\n")
    print("| threading layer | prange / plain loop | one Python call on all rows / plain loop |")
    print("|---|---|---|")
    for layer in ("tbb", "omp", "workqueue"):
        env = dict(os.environ, NUMBA_THREADING_LAYER=layer)
        try:
            name, par, py = _python(f"ROUNDS = {rounds}\n" + PRANGE, env).split()
        except RuntimeError as exc:
            print(f"| {layer} | failed: {str(exc).splitlines()[-1]} | |")
            continue
        print(f"| {name} | {float(par):.2f}x | {float(py):.2f}x |")
    print()


def compile_times() -> None:
    print("## Jitted step: compile (empty cache) and cached load, fresh processes\n")
    print("| dtype | import | first call, cold | first call, cached |")
    print("|---|---|---|---|")
    for dtype in ("float64", "float32"):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            code = COMPILE.replace("DTYPE", f"np.{dtype}")
            cold = [float(v) for v in _python(code, env).split()]
            warm = [float(v) for v in _python(code, env).split()]
        print(f"| {dtype} | {cold[0]:.2f} s | {cold[1]:.2f} s | {warm[1]:.2f} s |")
    print()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--skip-epoch", action="store_true", help="skip the digits epoch (needs scikit-learn)")
    args = parser.parse_args(argv)
    seed_step(args.rounds)
    if not args.skip_epoch:
        digits_epoch(max(3, args.rounds // 2))
    allocations()
    prange_layers(args.rounds)
    compile_times()
    from numba_affine.bench import environment

    print(environment())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
