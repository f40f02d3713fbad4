"""One row of a product: ``y = x . B (+ bias)`` for a single sample."""

from __future__ import annotations

from .._jit import helper
from .._simd import vadd, vbroadcast, vfma, vload_part, vstore_part, vzeros


@helper
def row_product(x, x0, B, b_rs, y, K, P, bias, add_bias, lanes):
    """``y[j] = sum_k x[x0 + k] * B[k * b_rs + j] (+ bias[j])`` for j < P.

    The register blocks compute six or twelve rows at a time; for one row
    that is six times the multiply-adds, and the product is one pass over
    B anyway (numpy's GEMV). Here one row streams B once, eight vectors of
    columns at a time: per step of k a broadcast of ``x[k]``, eight loads
    along B's row and eight FMAs into eight accumulators. Each output
    element is the same chain of FMAs over k in increasing order as in the
    register blocks, then the bias, so a sample's bits are those of its row
    in a batch (batch invariance). Loads past column P are masked (in the
    last group of columns only), and a last group skips its vectors past
    P (four or fewer left: four vectors; five: five): lanes past P cost as
    much as real ones. Serial: one row is never worth the threads.
    """
    width = 8 * lanes
    for j in range(0, P, width):
        w = P - j
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = vzeros(y)
        b = j
        wide = w > 4 * lanes
        for k in range(K):
            a = vbroadcast(x, x0 + k)
            s0 = vfma(a, vload_part(B, b, w), s0)
            s1 = vfma(a, vload_part(B, b + lanes, w - lanes), s1)
            s2 = vfma(a, vload_part(B, b + 2 * lanes, w - 2 * lanes), s2)
            s3 = vfma(a, vload_part(B, b + 3 * lanes, w - 3 * lanes), s3)
            if wide:
                s4 = vfma(a, vload_part(B, b + 4 * lanes, w - 4 * lanes), s4)
                if w > 5 * lanes:
                    s5 = vfma(a, vload_part(B, b + 5 * lanes, w - 5 * lanes), s5)
                    s6 = vfma(a, vload_part(B, b + 6 * lanes, w - 6 * lanes), s6)
                    s7 = vfma(a, vload_part(B, b + 7 * lanes, w - 7 * lanes), s7)
            b += b_rs
        if add_bias:
            s0 = vadd(s0, vload_part(bias, j, w))
            s1 = vadd(s1, vload_part(bias, j + lanes, w - lanes))
            s2 = vadd(s2, vload_part(bias, j + 2 * lanes, w - 2 * lanes))
            s3 = vadd(s3, vload_part(bias, j + 3 * lanes, w - 3 * lanes))
            s4 = vadd(s4, vload_part(bias, j + 4 * lanes, w - 4 * lanes))
            s5 = vadd(s5, vload_part(bias, j + 5 * lanes, w - 5 * lanes))
            s6 = vadd(s6, vload_part(bias, j + 6 * lanes, w - 6 * lanes))
            s7 = vadd(s7, vload_part(bias, j + 7 * lanes, w - 7 * lanes))
        vstore_part(y, j, s0, w)
        vstore_part(y, j + lanes, s1, w - lanes)
        vstore_part(y, j + 2 * lanes, s2, w - 2 * lanes)
        vstore_part(y, j + 3 * lanes, s3, w - 3 * lanes)
        vstore_part(y, j + 4 * lanes, s4, w - 4 * lanes)
        vstore_part(y, j + 5 * lanes, s5, w - 5 * lanes)
        vstore_part(y, j + 6 * lanes, s6, w - 6 * lanes)
        vstore_part(y, j + 7 * lanes, s7, w - 7 * lanes)
