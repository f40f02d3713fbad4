"""Each build's GEMM speed next to numpy's and the machine's FMA peak, on 1 and on all threads.

    python benchmarks/peak.py                 # this host's build (AVX-512 where the CPU has it)
    python benchmarks/peak.py --isa avx2      # also the AVX2 build, compiled in a child process

The FMA peak is a pure-FMA loop (twelve independent vector accumulators,
the project's own ``vfma``) at the build's vector width. The product is
``affine_forward`` without bias at 1024 x 1024 x 1024 (numba-affine) against
``np.dot`` (numpy's BLAS), each timed in its own batches with a pause
between them (``numba_affine.bench.compare``: interleaved rounds of ~30 ms
batches after 0.15 s pauses). On an AVX-512 host the AVX2 build's numpy is told to use
OpenBLAS's Haswell kernels too (``OPENBLAS_CORETYPE=Haswell``), so that both
libraries run at the same width, as on an AVX2 CPU.
Prints one table per build; the figures in docs/tuning.md come from it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SHAPE = (1024, 1024, 1024)


def _fma_loop():
    from numba import njit, prange

    from numba_affine._simd import vbroadcast, vfma, vstore

    @njit(parallel=True)
    def fma_loop(x, steps, threads):
        for t in prange(threads):
            a = vbroadcast(x, 0)
            b = vbroadcast(x, 1)
            s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = s9 = s10 = s11 = vbroadcast(x, 2)
            for _ in range(steps):
                s0 = vfma(a, b, s0)
                s1 = vfma(a, b, s1)
                s2 = vfma(a, b, s2)
                s3 = vfma(a, b, s3)
                s4 = vfma(a, b, s4)
                s5 = vfma(a, b, s5)
                s6 = vfma(a, b, s6)
                s7 = vfma(a, b, s7)
                s8 = vfma(a, b, s8)
                s9 = vfma(a, b, s9)
                s10 = vfma(a, b, s10)
                s11 = vfma(a, b, s11)
            s0 = vfma(a, s0, s1)
            s2 = vfma(a, s2, s3)
            s4 = vfma(a, s4, s5)
            s6 = vfma(a, s6, s7)
            s8 = vfma(a, s8, s9)
            s10 = vfma(a, s10, s11)
            s0 = vfma(a, s0, s2)
            s4 = vfma(a, s4, s6)
            s8 = vfma(a, s8, s10)
            vstore(x, 16 * (t + 1), vfma(a, s0, vfma(a, s4, s8)))

    return fma_loop


def inner_loops() -> dict:
    """Per register block and dtype: FMAs, stack accesses and masked accesses of its inner loop."""
    import numba
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import machine_code

    from numba_affine import kernels
    from numba_affine._jit import FASTMATH

    out = {}
    for name in ("register_block", "register_block_narrow"):
        for dtype in ("float32", "float64"):
            dt = np.dtype(dtype)
            block = numba.njit(fastmath=set(FASTMATH), error_model="numpy")(getattr(kernels, name).py_func)
            lanes = kernels.lanes_of(dt.itemsize)
            rows, kc, p = 12, 8, lanes if name.endswith("narrow") else 2 * lanes
            C = np.zeros(rows * p, dt)
            block(np.ones(rows * kc, dt), 0, kc, 6 * kc, 1, rows, 0, False, np.ones(kc * p, dt), 0, p, kc, C, 0, p, p,
                  lanes, False, np.empty(0, dt), 0, False)
            loops = machine_code.fma_loops(block.inspect_asm(block.signatures[0]))
            out[f"{name} {dtype}"] = [
                (len(loop), len(machine_code.fmas(loop)), len(machine_code.stack_accesses(loop)),
                 len(machine_code.masked_accesses(loop))) for loop in loops
            ]
    return out


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure_here(threads: int) -> dict:
    """GF/s of the FMA peak, numba-affine and numpy in this process, per dtype (child side)."""
    import numpy as np

    import numba_affine
    from numba_affine._simd import VECTOR_BYTES
    from numba_affine.bench import compare

    fma_loop = _fma_loop()
    out = {"vector_bytes": VECTOR_BYTES, "threads": threads}
    N, D, H = SHAPE
    for dtype in ("float32", "float64"):
        dt = np.dtype(dtype)
        lanes = VECTOR_BYTES // dt.itemsize
        x = np.full(16 * (threads + 2) * 4, 1.0, dt)
        x[0], x[1] = 1.0, 1e-8
        steps = 10_000_000
        fma_loop(x, steps, threads)
        t = min(_seconds(lambda: fma_loop(x, steps, threads)) for _ in range(5))
        peak = threads * steps * 12 * lanes * 2 / t / 1e9
        rng = np.random.default_rng(0)
        X = rng.standard_normal((N, D)).astype(dt)
        W = rng.standard_normal((D, H)).astype(dt)
        y = np.empty((N, H), dt)
        flops = 2.0 * N * D * H
        t = compare({"ours": lambda: numba_affine.affine_forward(X, W, out=y), "numpy": lambda: np.dot(X, W, out=y)},
                    rounds=5)
        ours, theirs = flops / t["ours"] / 1e9, flops / t["numpy"] / 1e9
        out[dtype] = {"peak": peak, "numba_affine": ours, "numpy": theirs}
    return out


def run_child(threads: int, extra_env: dict[str, str], what: str = "measure_here({threads})") -> dict:
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    env.update(extra_env)
    call = what.format(threads=threads)
    code = f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import peak; print(json.dumps(peak.{call}))"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=1200)
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-3000:])
    return json.loads(run.stdout.strip().splitlines()[-1])


def table(name: str, results: list[dict]) -> str:
    lines = [f"{name} build ({results[0]['vector_bytes'] * 8}-bit vectors), {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]} forward",
             f"{'dtype':>8} {'threads':>7} | {'FMA peak':>9} | {'numba-affine':>12} {'% peak':>7} | {'numpy':>7} {'% peak':>7} | ratio",
             "-" * 80]
    for r in results:
        for dtype in ("float32", "float64"):
            d = r[dtype]
            lines.append(
                f"{dtype:>8} {r['threads']:>7} | {d['peak']:9.1f} | {d['numba_affine']:12.1f} {100 * d['numba_affine'] / d['peak']:6.0f}% "
                f"| {d['numpy']:7.1f} {100 * d['numpy'] / d['peak']:6.0f}% | {d['numba_affine'] / d['numpy']:.2f}x"
            )
    lines.append("GF/s; median of 5 interleaved rounds (numba_affine.bench.compare), 0.15 s pauses")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--isa", choices=("native", "avx2", "both"), default="both")
    args = parser.parse_args(argv)
    # imported here: asv imports every module in benchmarks/ against old commits too
    from numba_affine.bench import avx2_environment

    cores = os.cpu_count() or 1
    builds = []
    from numba_affine._simd import VECTOR_BYTES

    if args.isa in ("native", "both"):
        builds.append(("this host's", {}))
    if args.isa == "avx2" or (args.isa == "both" and VECTOR_BYTES == 64):
        builds.append(("AVX2", avx2_environment()))
    for name, env in builds:
        loops = run_child(1, dict(env, NUMBA_AFFINE_NO_CACHE="1"), "inner_loops()")
        print(f"{name} build: inner loops (instructions, FMAs, stack accesses, masked accesses)")
        for block, found in loops.items():
            print(f"  {block:32s} {found}")
        results = [run_child(t, env) for t in sorted({1, cores})]
        print(table(name, results), flush=True)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
