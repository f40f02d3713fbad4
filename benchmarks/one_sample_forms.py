"""Two one-sample forms measured and not adopted (docs/tuning.md, "One sample from Python").

    python benchmarks/one_sample_forms.py

* forward: ``kernels.row_product`` against a variant whose whole 8-vector
  groups use plain loads (``vload``) and whose tail takes four vectors at a
  time: the kernel is at the rate one core reads W either way;
* one sample's dx (``dx[d] = sum_h dout[h] W[d, h]``, the chain over h of
  the register blocks, so the same bits): 16x16 (float32) or 8x8 (float64)
  tiles of W transposed in registers (``vtranspose``) into a small buffer,
  then one FMA per column, with one or four row blocks at a time, against
  ``affine_dx``. Microseconds per call in a jitted loop, median of 7 rounds.
"""

import sys
import time
import timeit
from pathlib import Path

import numba
import numpy as np

from numba_affine import affine_dx, kernels
from numba_affine._simd import vadd, vbroadcast, vfma, vload, vload_part, vstore_part, vtranspose, vzeros
from numba_affine.kernels import lanes_of

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference import make_inputs  # noqa: E402

OPT = dict(nogil=True, error_model="numpy", boundscheck=False)


@numba.njit(**OPT)
def rp_full(x, x0, B, b_rs, y, K, P, bias, add_bias, lanes):
    """row_product with plain loads for whole 8-vector groups; the tail four vectors at a time, masked."""
    width = 8 * lanes
    j = 0
    while j + width <= P:
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = vzeros(y)
        b = j
        for k in range(K):
            a = vbroadcast(x, x0 + k)
            s0 = vfma(a, vload(B, b), s0)
            s1 = vfma(a, vload(B, b + lanes), s1)
            s2 = vfma(a, vload(B, b + 2 * lanes), s2)
            s3 = vfma(a, vload(B, b + 3 * lanes), s3)
            s4 = vfma(a, vload(B, b + 4 * lanes), s4)
            s5 = vfma(a, vload(B, b + 5 * lanes), s5)
            s6 = vfma(a, vload(B, b + 6 * lanes), s6)
            s7 = vfma(a, vload(B, b + 7 * lanes), s7)
            b += b_rs
        if add_bias:
            s0 = vadd(s0, vload(bias, j)); s1 = vadd(s1, vload(bias, j + lanes)); s2 = vadd(s2, vload(bias, j + 2 * lanes)); s3 = vadd(s3, vload(bias, j + 3 * lanes))
            s4 = vadd(s4, vload(bias, j + 4 * lanes)); s5 = vadd(s5, vload(bias, j + 5 * lanes)); s6 = vadd(s6, vload(bias, j + 6 * lanes)); s7 = vadd(s7, vload(bias, j + 7 * lanes))
        vstore_part(y, j, s0, width); vstore_part(y, j + lanes, s1, width); vstore_part(y, j + 2 * lanes, s2, width); vstore_part(y, j + 3 * lanes, s3, width)
        vstore_part(y, j + 4 * lanes, s4, width); vstore_part(y, j + 5 * lanes, s5, width); vstore_part(y, j + 6 * lanes, s6, width); vstore_part(y, j + 7 * lanes, s7, width)
        j += width
    # tail: up to 8 vectors, 4 at a time
    while j < P:
        w = P - j
        s0 = s1 = s2 = s3 = vzeros(y)
        b = j
        for k in range(K):
            a = vbroadcast(x, x0 + k)
            s0 = vfma(a, vload_part(B, b, w), s0)
            s1 = vfma(a, vload_part(B, b + lanes, w - lanes), s1)
            s2 = vfma(a, vload_part(B, b + 2 * lanes, w - 2 * lanes), s2)
            s3 = vfma(a, vload_part(B, b + 3 * lanes, w - 3 * lanes), s3)
            b += b_rs
        if add_bias:
            s0 = vadd(s0, vload_part(bias, j, w)); s1 = vadd(s1, vload_part(bias, j + lanes, w - lanes))
            s2 = vadd(s2, vload_part(bias, j + 2 * lanes, w - 2 * lanes)); s3 = vadd(s3, vload_part(bias, j + 3 * lanes, w - 3 * lanes))
        vstore_part(y, j, s0, w); vstore_part(y, j + lanes, s1, w - lanes); vstore_part(y, j + 2 * lanes, s2, w - 2 * lanes); vstore_part(y, j + 3 * lanes, s3, w - 3 * lanes)
        j += 4 * lanes


@numba.njit(**OPT)
def coldot1(A, K, M, v, y, S, lanes):
    """``y[i] = sum_k A[i*K + k] v[k]``, the chain over k, one row block (lanes rows) at a time."""
    for i0 in range(0, M, lanes):
        rows = min(lanes, M - i0)
        acc = vzeros(y)
        for k0 in range(0, K, lanes):
            cols = min(lanes, K - k0)
            vtranspose(A, i0 * K + k0, K, rows, cols, S, 0, lanes)
            for c in range(cols):
                acc = vfma(vbroadcast(v, k0 + c), vload(S, c * lanes), acc)
        vstore_part(y, i0, acc, rows)

@numba.njit(**OPT)
def coldot4(A, K, M, v, y, S, lanes):
    """As coldot1, four row blocks at a time: four independent chains."""
    step = 4 * lanes
    i0 = 0
    while i0 < M:
        r0 = min(lanes, M - i0); r1 = min(lanes, M - i0 - lanes); r2 = min(lanes, M - i0 - 2 * lanes); r3 = min(lanes, M - i0 - 3 * lanes)
        a0 = a1 = a2 = a3 = vzeros(y)
        t = lanes * lanes
        for k0 in range(0, K, lanes):
            cols = min(lanes, K - k0)
            vtranspose(A, i0 * K + k0, K, r0, cols, S, 0, lanes)
            if r1 > 0:
                vtranspose(A, (i0 + lanes) * K + k0, K, r1, cols, S, t, lanes)
            if r2 > 0:
                vtranspose(A, (i0 + 2 * lanes) * K + k0, K, r2, cols, S, 2 * t, lanes)
            if r3 > 0:
                vtranspose(A, (i0 + 3 * lanes) * K + k0, K, r3, cols, S, 3 * t, lanes)
            for c in range(cols):
                a = vbroadcast(v, k0 + c)
                a0 = vfma(a, vload(S, c * lanes), a0)
                a1 = vfma(a, vload(S, t + c * lanes), a1)
                a2 = vfma(a, vload(S, 2 * t + c * lanes), a2)
                a3 = vfma(a, vload(S, 3 * t + c * lanes), a3)
        vstore_part(y, i0, a0, r0)
        if r1 > 0: vstore_part(y, i0 + lanes, a1, r1)
        if r2 > 0: vstore_part(y, i0 + 2 * lanes, a2, r2)
        if r3 > 0: vstore_part(y, i0 + 3 * lanes, a3, r3)
        i0 += step



def _loop(fn, nargs):
    if nargs == 10:
        @numba.njit(**OPT)
        def loop(n, x, B, y, K, P, bias, lanes):
            for _ in range(n):
                fn(x, 0, B, P, y, K, P, bias, True, lanes)
    else:
        @numba.njit(**OPT)
        def loop(n, A, K, M, v, y, S, lanes):
            for _ in range(n):
                fn(A, K, M, v, y, S, lanes)
    return loop


def _time(f, *a, n=2000, rounds=7):
    f(1, *a)
    ts = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        f(n, *a)
        ts.append((time.perf_counter() - t0) / n)
    return float(np.median(ts)) * 1e6


def main() -> None:
    current, plain = _loop(numba.njit(**OPT)(kernels.row_product.py_func), 10), _loop(rp_full, 10)
    print("forward of one sample (us): row_product | plain loads for whole groups | same bits")
    for K, P in [(784, 100), (784, 128), (512, 64), (50, 10)]:
        for dt in (np.float32, np.float64):
            x, W, b, _ = make_inputs(1, K, P, dt)
            lanes = lanes_of(np.dtype(dt).itemsize)
            y0, y1 = np.empty(P, dt), np.empty(P, dt)
            t0 = _time(current, x.reshape(-1), W.reshape(-1), y0, K, P, b, lanes)
            t1 = _time(plain, x.reshape(-1), W.reshape(-1), y1, K, P, b, lanes)
            print(f"  {K}x{P} {np.dtype(dt).name}: {t0:.2f} | {t1:.2f} | {np.array_equal(y0.view(np.uint8), y1.view(np.uint8))}")
    one, four = _loop(coldot1, 7), _loop(coldot4, 7)
    print("dx of one sample (us): affine_dx from Python | transposed tiles, 1 chain | 4 chains | same bits")
    for D, H in [(784, 100), (333, 37), (50, 10)]:
        for dt in (np.float32, np.float64):
            _, W, _, d = make_inputs(1, D, H, dt)
            lanes = lanes_of(np.dtype(dt).itemsize)
            S = np.zeros(4 * lanes * lanes, dt)
            ref = affine_dx(d, W).reshape(-1)
            y1, y4 = np.empty(D, dt), np.empty(D, dt)
            t1 = _time(one, W.reshape(-1), H, D, d.reshape(-1), y1, S, lanes, n=500)
            t4 = _time(four, W.reshape(-1), H, D, d.reshape(-1), y4, S, lanes, n=500)
            tk = min(timeit.repeat(lambda: affine_dx(d, W), number=200, repeat=5)) / 200 * 1e6
            same = np.array_equal(y1.view(np.uint8), ref.view(np.uint8)) and np.array_equal(y4.view(np.uint8), ref.view(np.uint8))
            print(f"  {D}x{H} {np.dtype(dt).name}: {tk:.2f} | {t1:.2f} | {t4:.2f} | {same}")


if __name__ == "__main__":
    main()
