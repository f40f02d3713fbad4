"""The micro-kernels: one ``MR x NR`` tile of ``C = A . B`` in vector registers.

This is the only place that does arithmetic on a product. Every product of
the library (the forward, dx and dW) is a sequence of calls to these blocks,
so every output element is computed by the same instructions: a chain of
fused multiply-adds over the summed index ``k`` in increasing order, one
rounding per step, starting from zero (or from the partial sum a previous
call stored). That order depends on nothing but the summed length, which is
what makes results independent of the tile shape, the vector width, the
thread count and the batch a row is computed in.

The inner loop over ``k`` touches registers, one pointer into A (row ``r``
of the tile at a constant offset ``r * a_rs`` from it) and one into B, and
nothing else: B's loads are whole vectors (the caller packs a partial panel
into zero-padded scratch), and masks appear only where C is loaded and
stored, once per tile. Rows are handled outside the loop too: a tile past
the last row either reads zero padding (packed A), is shifted back to end
at the last row (its overlapping rows are recomputed, not stored), or, for
a batch shorter than the tile, computes one row at a time.
"""

from __future__ import annotations

from .._jit import helper
from .._simd import opaque_index, vadd, vbroadcast, vfma, vload, vload_part, vstore, vstore_part, vzeros
from ..tuning import TILES

#: Rows of the wide block (two vectors of columns): twelve accumulators,
#: two vectors of B and a broadcast fit AVX2's 16 ymm registers.
MR = TILES["wide"][0]

#: Rows of the narrow block (one vector of columns, p <= lanes).
MR_NARROW = TILES["narrow"][0]

# the blocks below are written for these shapes; a new ISA's shape needs its block
if TILES != {"wide": (6, 2), "narrow": (12, 1)}:
    raise ImportError(f"no register block is written for the tile shapes {TILES}")


@helper
def register_block(A, a0, a_rs, a_bs, a_ks, rows, row0, padded, B, b0, b_ks, kc, C, c0, c_rs, p, lanes, load_c, bias, j0, add_bias):
    """``C[i, j] (+)= sum_k A[i, k] * B[k, j]`` for ``rows`` rows of one panel, 6 rows at a time.

    Parameters
    ----------
    A : 1-D array
        Row ``i`` of the call starts at ``A[a0 + (i // 6) * a_bs + (i % 6) * a_rs]``
        and steps by ``a_ks`` along k: rows of x or dout read in place
        (``a_bs = 6 * a_rs``), or packed 6-row blocks (``a_rs = 1``).
    a0, a_rs, a_bs, a_ks : int
        Offset of element (0, 0), row stride, stride between blocks of 6
        rows, stride along k.
    rows, row0 : int
        Rows of C to compute, and the index of the first in the whole
        product (a short last tile may reach back that far).
    padded : bool
        A is packed with zero rows up to a multiple of 12 (a short last
        tile reads them, and does not store them); else a short last tile
        is shifted back.
    B, b0, b_ks : 1-D array, int, int
        The panel: element (k, j) at ``B[b0 + k * b_ks + j]``, two whole
        vectors (packed and zero-padded, or B itself read in place).
    kc : int
        The summed length of this call.
    C, c0, c_rs, p : 1-D array, int, int, int
        Element (i, j) of C at ``C[c0 + i * c_rs + j]``; ``p`` columns
        (``lanes < p <= 2 * lanes``: the first vector is whole) are loaded
        and stored.
    lanes : int
        Elements per vector.
    load_c : bool
        Start from the tile's values in C (a previous block of k, or
        ``accumulate=True``) instead of zero.
    bias, j0, add_bias : 1-D array, int, bool
        When ``add_bias``, add ``bias[j0 + j]`` after the sum.

    Notes
    -----
    Per step of k: two vector loads of B, one broadcast of each of the six
    rows' ``A[i, k]``, twelve FMAs into accumulators that stay in registers.
    """
    q = p - lanes
    i = 0
    while i < rows:
        m = min(MR, rows - i)
        t, lo, rs = i, 0, a_rs
        if m < MR and not padded:
            if row0 + rows >= MR:  # end the tile at the last row
                t, lo = rows - MR, MR - m
            else:  # a batch shorter than the tile: one row at a time
                m, rs = 1, 0
        ta = a0 + (t // 6) * a_bs + (t % 6) * a_rs
        tc = c0 + t * c_rs
        hi = lo + m
        r1, r2, r3, r4, r5 = rs, 2 * rs, 3 * rs, 4 * rs, 5 * rs
        s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = s40 = s41 = s50 = s51 = vzeros(C)
        if load_c:
            if lo <= 0:
                s00 = vload(C, tc)
                s01 = vload_part(C, tc + lanes, q)
            if lo <= 1 < hi:
                s10 = vload(C, tc + c_rs)
                s11 = vload_part(C, tc + c_rs + lanes, q)
            if lo <= 2 < hi:
                s20 = vload(C, tc + 2 * c_rs)
                s21 = vload_part(C, tc + 2 * c_rs + lanes, q)
            if lo <= 3 < hi:
                s30 = vload(C, tc + 3 * c_rs)
                s31 = vload_part(C, tc + 3 * c_rs + lanes, q)
            if lo <= 4 < hi:
                s40 = vload(C, tc + 4 * c_rs)
                s41 = vload_part(C, tc + 4 * c_rs + lanes, q)
            if lo <= 5 < hi:
                s50 = vload(C, tc + 5 * c_rs)
                s51 = vload_part(C, tc + 5 * c_rs + lanes, q)
        for k in range(kc):
            bk = b0 + k * b_ks
            v0 = vload(B, bk)
            v1 = vload(B, bk + lanes)
            ak = ta + k * a_ks
            a = vbroadcast(A, ak)
            s00 = vfma(a, v0, s00)
            s01 = vfma(a, v1, s01)
            a = vbroadcast(A, ak + r1)
            s10 = vfma(a, v0, s10)
            s11 = vfma(a, v1, s11)
            a = vbroadcast(A, ak + r2)
            s20 = vfma(a, v0, s20)
            s21 = vfma(a, v1, s21)
            a = vbroadcast(A, ak + r3)
            s30 = vfma(a, v0, s30)
            s31 = vfma(a, v1, s31)
            a = vbroadcast(A, ak + r4)
            s40 = vfma(a, v0, s40)
            s41 = vfma(a, v1, s41)
            a = vbroadcast(A, ak + r5)
            s50 = vfma(a, v0, s50)
            s51 = vfma(a, v1, s51)
        if add_bias:
            b_lo = vload(bias, j0)
            b_hi = vload_part(bias, j0 + lanes, q)
            s00, s01 = vadd(s00, b_lo), vadd(s01, b_hi)
            s10, s11 = vadd(s10, b_lo), vadd(s11, b_hi)
            s20, s21 = vadd(s20, b_lo), vadd(s21, b_hi)
            s30, s31 = vadd(s30, b_lo), vadd(s31, b_hi)
            s40, s41 = vadd(s40, b_lo), vadd(s41, b_hi)
            s50, s51 = vadd(s50, b_lo), vadd(s51, b_hi)
        if lo <= 0:
            vstore(C, tc, s00)
            vstore_part(C, tc + lanes, s01, q)
        if lo <= 1 < hi:
            vstore(C, tc + c_rs, s10)
            vstore_part(C, tc + c_rs + lanes, s11, q)
        if lo <= 2 < hi:
            vstore(C, tc + 2 * c_rs, s20)
            vstore_part(C, tc + 2 * c_rs + lanes, s21, q)
        if lo <= 3 < hi:
            vstore(C, tc + 3 * c_rs, s30)
            vstore_part(C, tc + 3 * c_rs + lanes, s31, q)
        if lo <= 4 < hi:
            vstore(C, tc + 4 * c_rs, s40)
            vstore_part(C, tc + 4 * c_rs + lanes, s41, q)
        if lo <= 5 < hi:
            vstore(C, tc + 5 * c_rs, s50)
            vstore_part(C, tc + 5 * c_rs + lanes, s51, q)
        i += m


@helper
def register_block_narrow(A, a0, a_rs, a_bs, a_ks, rows, row0, padded, B, b0, b_ks, kc, C, c0, c_rs, p, lanes, load_c, bias, j0, add_bias):
    """:func:`register_block` for a panel one vector wide (p <= lanes), 12 rows at a time.

    For outputs of at most one vector of columns (a classifier's ten
    classes) the two-vector block would compute mostly padding. Same
    arguments and the same chain of FMAs per element, so results are
    identical to the wide block's.
    """
    i = 0
    while i < rows:
        m = min(MR_NARROW, rows - i)
        t, lo, rs = i, 0, a_rs
        if m < MR_NARROW and not padded:
            if row0 + rows >= MR_NARROW:
                t, lo = rows - MR_NARROW, MR_NARROW - m
            else:
                m, rs = 1, 0
        ta = a0 + (t // 6) * a_bs + (t % 6) * a_rs
        tc = c0 + t * c_rs
        hi = lo + m
        # rows 6 to 11 are the next block of 6 (packed A) or simply further
        # down, addressed from their own base: two short chains of additions
        r1, r2, r3, r4, r5 = rs, 2 * rs, 3 * rs, 4 * rs, 5 * rs
        th = opaque_index(ta + (a_bs if rs else 0))
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = s9 = s10 = s11 = vzeros(C)
        if load_c:
            if lo <= 0:
                s0 = vload_part(C, tc, p)
            if lo <= 1 < hi:
                s1 = vload_part(C, tc + 1 * c_rs, p)
            if lo <= 2 < hi:
                s2 = vload_part(C, tc + 2 * c_rs, p)
            if lo <= 3 < hi:
                s3 = vload_part(C, tc + 3 * c_rs, p)
            if lo <= 4 < hi:
                s4 = vload_part(C, tc + 4 * c_rs, p)
            if lo <= 5 < hi:
                s5 = vload_part(C, tc + 5 * c_rs, p)
            if lo <= 6 < hi:
                s6 = vload_part(C, tc + 6 * c_rs, p)
            if lo <= 7 < hi:
                s7 = vload_part(C, tc + 7 * c_rs, p)
            if lo <= 8 < hi:
                s8 = vload_part(C, tc + 8 * c_rs, p)
            if lo <= 9 < hi:
                s9 = vload_part(C, tc + 9 * c_rs, p)
            if lo <= 10 < hi:
                s10 = vload_part(C, tc + 10 * c_rs, p)
            if lo <= 11 < hi:
                s11 = vload_part(C, tc + 11 * c_rs, p)
        for k in range(kc):
            v = vload(B, b0 + k * b_ks)
            ak = ta + k * a_ks
            s0 = vfma(vbroadcast(A, ak), v, s0)
            s1 = vfma(vbroadcast(A, ak + r1), v, s1)
            s2 = vfma(vbroadcast(A, ak + r2), v, s2)
            s3 = vfma(vbroadcast(A, ak + r3), v, s3)
            s4 = vfma(vbroadcast(A, ak + r4), v, s4)
            s5 = vfma(vbroadcast(A, ak + r5), v, s5)
            ah = th + k * a_ks
            s6 = vfma(vbroadcast(A, ah), v, s6)
            s7 = vfma(vbroadcast(A, ah + r1), v, s7)
            s8 = vfma(vbroadcast(A, ah + r2), v, s8)
            s9 = vfma(vbroadcast(A, ah + r3), v, s9)
            s10 = vfma(vbroadcast(A, ah + r4), v, s10)
            s11 = vfma(vbroadcast(A, ah + r5), v, s11)
        if add_bias:
            bv = vload_part(bias, j0, p)
            s0, s1, s2, s3 = vadd(s0, bv), vadd(s1, bv), vadd(s2, bv), vadd(s3, bv)
            s4, s5, s6, s7 = vadd(s4, bv), vadd(s5, bv), vadd(s6, bv), vadd(s7, bv)
            s8, s9, s10, s11 = vadd(s8, bv), vadd(s9, bv), vadd(s10, bv), vadd(s11, bv)
        if lo <= 0:
            vstore_part(C, tc, s0, p)
        if lo <= 1 < hi:
            vstore_part(C, tc + 1 * c_rs, s1, p)
        if lo <= 2 < hi:
            vstore_part(C, tc + 2 * c_rs, s2, p)
        if lo <= 3 < hi:
            vstore_part(C, tc + 3 * c_rs, s3, p)
        if lo <= 4 < hi:
            vstore_part(C, tc + 4 * c_rs, s4, p)
        if lo <= 5 < hi:
            vstore_part(C, tc + 5 * c_rs, s5, p)
        if lo <= 6 < hi:
            vstore_part(C, tc + 6 * c_rs, s6, p)
        if lo <= 7 < hi:
            vstore_part(C, tc + 7 * c_rs, s7, p)
        if lo <= 8 < hi:
            vstore_part(C, tc + 8 * c_rs, s8, p)
        if lo <= 9 < hi:
            vstore_part(C, tc + 9 * c_rs, s9, p)
        if lo <= 10 < hi:
            vstore_part(C, tc + 10 * c_rs, s10, p)
        if lo <= 11 < hi:
            vstore_part(C, tc + 11 * c_rs, s11, p)
        i += m
