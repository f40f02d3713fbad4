"""The register block: one ``MR x NR`` tile of ``C = A . B`` in vector registers.

This is the only place that does arithmetic on a product. Every product of
the library (the forward, dx and dW) is a sequence of calls to
:func:`register_block`, so every output element is computed by the same
instructions: a chain of fused multiply-adds over the summed index ``k`` in
increasing order, one rounding per step, starting from zero (or from the
partial sum a previous call stored). That order depends on nothing but the
summed length, which is what makes results independent of the thread count
and of the batch a row is computed in.
"""

from __future__ import annotations

from .._jit import helper
from .._simd import vadd, vbroadcast, vfma, vload_part, vstore_part, vzeros

#: Rows of the register block. With two vectors per row that is twelve
#: accumulators: enough independent FMA chains to cover the FMA latency on
#: two ports, and few enough for the 16 registers of AVX2.
MR = 6


@helper
def register_block(A, a_base, a_rs, a_bs, a_ks, rows, Bp, b0, b_ks, kc, C, c_base, c_rs, p, lanes, load_c, bias, j0, add_bias):
    """``C[i, j] (+)= sum_k A[i, k] * Bp[k, j]`` for ``rows`` rows of one panel, 6 rows at a time.

    Parameters
    ----------
    A : 1-D array
        Row ``i`` of the block starts at
        ``A[a_base + (i // 12) * a_bs + (i % 12) * a_rs]`` and steps by
        ``a_ks`` along k: rows of x or dout read in place
        (``a_bs = 12 * a_rs``), or columns of x packed in blocks of 12 rows.
    a_base, a_rs, a_bs, a_ks : int
        Offset of element (0, 0), row stride, stride between blocks of 12
        rows, stride along k.
    rows : int
        Rows of C to compute. The last tile may be short: its missing rows
        read its last row again and are not stored.
    Bp : 1-D array
        The panel of B: element (k, j) at ``Bp[b0 + k * b_ks + j]``, packed
        (``b_ks = 2 * lanes``) or B itself read in place; loads are masked
        to ``p`` columns.
    b0, b_ks, kc : int
        Offset of the panel, its stride along k, and the summed length of
        this call.
    C : 1-D array
        Output; element (i, j) at ``C[c_base + i * c_rs + j]``.
    c_base, c_rs, p : int
        Offset, row stride, and columns of the tile (1..2 * lanes).
    lanes : int
        Elements per vector.
    load_c : bool
        Start from the tile's values in C (a previous block of k, or
        ``accumulate=True``) instead of zero.
    bias, j0, add_bias : 1-D array, int, bool
        When ``add_bias``, add ``bias[j0 + j]`` after the sum (forward, last
        block of k).

    Notes
    -----
    One call per panel and block of k keeps the call overhead off short
    sums. Per tile of 6 rows, k outermost; per step two vector loads of the panel, one
    broadcast of each of the six rows' ``A[i, k]`` and twelve FMAs into
    accumulators that stay in registers. Stores and loads of C are masked
    to ``p`` columns.
    """
    for i in range(0, rows, MR):
        m = min(MR, rows - i)
        a0 = a_base + (i // 12) * a_bs + (i % 12) * a_rs
        c0 = c_base + i * c_rs
        q = p - lanes
        r1 = a0 + min(1, m - 1) * a_rs
        r2 = a0 + min(2, m - 1) * a_rs
        r3 = a0 + min(3, m - 1) * a_rs
        r4 = a0 + min(4, m - 1) * a_rs
        r5 = a0 + min(5, m - 1) * a_rs
        s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = s40 = s41 = s50 = s51 = vzeros(C)
        if load_c:
            s00 = vload_part(C, c0, p)
            s01 = vload_part(C, c0 + lanes, q)
            if m > 1:
                s10 = vload_part(C, c0 + c_rs, p)
                s11 = vload_part(C, c0 + c_rs + lanes, q)
            if m > 2:
                s20 = vload_part(C, c0 + 2 * c_rs, p)
                s21 = vload_part(C, c0 + 2 * c_rs + lanes, q)
            if m > 3:
                s30 = vload_part(C, c0 + 3 * c_rs, p)
                s31 = vload_part(C, c0 + 3 * c_rs + lanes, q)
            if m > 4:
                s40 = vload_part(C, c0 + 4 * c_rs, p)
                s41 = vload_part(C, c0 + 4 * c_rs + lanes, q)
            if m > 5:
                s50 = vload_part(C, c0 + 5 * c_rs, p)
                s51 = vload_part(C, c0 + 5 * c_rs + lanes, q)
        for k in range(kc):
            bk = b0 + k * b_ks
            v0 = vload_part(Bp, bk, p)
            v1 = vload_part(Bp, bk + lanes, q)
            ak = k * a_ks
            a = vbroadcast(A, a0 + ak)
            s00 = vfma(a, v0, s00)
            s01 = vfma(a, v1, s01)
            a = vbroadcast(A, r1 + ak)
            s10 = vfma(a, v0, s10)
            s11 = vfma(a, v1, s11)
            a = vbroadcast(A, r2 + ak)
            s20 = vfma(a, v0, s20)
            s21 = vfma(a, v1, s21)
            a = vbroadcast(A, r3 + ak)
            s30 = vfma(a, v0, s30)
            s31 = vfma(a, v1, s31)
            a = vbroadcast(A, r4 + ak)
            s40 = vfma(a, v0, s40)
            s41 = vfma(a, v1, s41)
            a = vbroadcast(A, r5 + ak)
            s50 = vfma(a, v0, s50)
            s51 = vfma(a, v1, s51)
        if add_bias:
            b_lo = vload_part(bias, j0, p)
            b_hi = vload_part(bias, j0 + lanes, q)
            s00 = vadd(s00, b_lo)
            s01 = vadd(s01, b_hi)
            s10 = vadd(s10, b_lo)
            s11 = vadd(s11, b_hi)
            s20 = vadd(s20, b_lo)
            s21 = vadd(s21, b_hi)
            s30 = vadd(s30, b_lo)
            s31 = vadd(s31, b_hi)
            s40 = vadd(s40, b_lo)
            s41 = vadd(s41, b_hi)
            s50 = vadd(s50, b_lo)
            s51 = vadd(s51, b_hi)
        vstore_part(C, c0, s00, p)
        vstore_part(C, c0 + lanes, s01, q)
        if m > 1:
            vstore_part(C, c0 + c_rs, s10, p)
            vstore_part(C, c0 + c_rs + lanes, s11, q)
        if m > 2:
            vstore_part(C, c0 + 2 * c_rs, s20, p)
            vstore_part(C, c0 + 2 * c_rs + lanes, s21, q)
        if m > 3:
            vstore_part(C, c0 + 3 * c_rs, s30, p)
            vstore_part(C, c0 + 3 * c_rs + lanes, s31, q)
        if m > 4:
            vstore_part(C, c0 + 4 * c_rs, s40, p)
            vstore_part(C, c0 + 4 * c_rs + lanes, s41, q)
        if m > 5:
            vstore_part(C, c0 + 5 * c_rs, s50, p)
            vstore_part(C, c0 + 5 * c_rs + lanes, s51, q)


#: Rows of the narrow register block (one vector wide): twelve accumulators again.
MR_NARROW = 12


@helper
def register_block_narrow(A, a_base, a_rs, a_bs, a_ks, rows, Bp, b0, b_ks, kc, C, c_base, c_rs, p, lanes, load_c, bias, j0, add_bias):
    """:func:`register_block` for a panel one vector wide (p <= lanes), 12 rows at a time.

    For outputs of at most one vector of columns (a classifier's ten
    classes) the two-vector block would compute mostly padding. Same
    arguments and the same chain of FMAs per element, so results are
    identical to the wide block's.
    """
    for i in range(0, rows, MR_NARROW):
        m = min(MR_NARROW, rows - i)
        a0 = a_base + (i // 12) * a_bs
        c0 = c_base + i * c_rs
        r1 = a0 + min(1, m - 1) * a_rs
        r2 = a0 + min(2, m - 1) * a_rs
        r3 = a0 + min(3, m - 1) * a_rs
        r4 = a0 + min(4, m - 1) * a_rs
        r5 = a0 + min(5, m - 1) * a_rs
        r6 = a0 + min(6, m - 1) * a_rs
        r7 = a0 + min(7, m - 1) * a_rs
        r8 = a0 + min(8, m - 1) * a_rs
        r9 = a0 + min(9, m - 1) * a_rs
        r10 = a0 + min(10, m - 1) * a_rs
        r11 = a0 + min(11, m - 1) * a_rs
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = s9 = s10 = s11 = vzeros(C)
        if load_c:
            s0 = vload_part(C, c0, p)
            if m > 1:
                s1 = vload_part(C, c0 + 1 * c_rs, p)
            if m > 2:
                s2 = vload_part(C, c0 + 2 * c_rs, p)
            if m > 3:
                s3 = vload_part(C, c0 + 3 * c_rs, p)
            if m > 4:
                s4 = vload_part(C, c0 + 4 * c_rs, p)
            if m > 5:
                s5 = vload_part(C, c0 + 5 * c_rs, p)
            if m > 6:
                s6 = vload_part(C, c0 + 6 * c_rs, p)
            if m > 7:
                s7 = vload_part(C, c0 + 7 * c_rs, p)
            if m > 8:
                s8 = vload_part(C, c0 + 8 * c_rs, p)
            if m > 9:
                s9 = vload_part(C, c0 + 9 * c_rs, p)
            if m > 10:
                s10 = vload_part(C, c0 + 10 * c_rs, p)
            if m > 11:
                s11 = vload_part(C, c0 + 11 * c_rs, p)
        for k in range(kc):
            v = vload_part(Bp, b0 + k * b_ks, p)
            ak = k * a_ks
            s0 = vfma(vbroadcast(A, a0 + ak), v, s0)
            s1 = vfma(vbroadcast(A, r1 + ak), v, s1)
            s2 = vfma(vbroadcast(A, r2 + ak), v, s2)
            s3 = vfma(vbroadcast(A, r3 + ak), v, s3)
            s4 = vfma(vbroadcast(A, r4 + ak), v, s4)
            s5 = vfma(vbroadcast(A, r5 + ak), v, s5)
            s6 = vfma(vbroadcast(A, r6 + ak), v, s6)
            s7 = vfma(vbroadcast(A, r7 + ak), v, s7)
            s8 = vfma(vbroadcast(A, r8 + ak), v, s8)
            s9 = vfma(vbroadcast(A, r9 + ak), v, s9)
            s10 = vfma(vbroadcast(A, r10 + ak), v, s10)
            s11 = vfma(vbroadcast(A, r11 + ak), v, s11)
        if add_bias:
            bv = vload_part(bias, j0, p)
            s0 = vadd(s0, bv)
            s1 = vadd(s1, bv)
            s2 = vadd(s2, bv)
            s3 = vadd(s3, bv)
            s4 = vadd(s4, bv)
            s5 = vadd(s5, bv)
            s6 = vadd(s6, bv)
            s7 = vadd(s7, bv)
            s8 = vadd(s8, bv)
            s9 = vadd(s9, bv)
            s10 = vadd(s10, bv)
            s11 = vadd(s11, bv)
        vstore_part(C, c0, s0, p)
        if m > 1:
            vstore_part(C, c0 + 1 * c_rs, s1, p)
        if m > 2:
            vstore_part(C, c0 + 2 * c_rs, s2, p)
        if m > 3:
            vstore_part(C, c0 + 3 * c_rs, s3, p)
        if m > 4:
            vstore_part(C, c0 + 4 * c_rs, s4, p)
        if m > 5:
            vstore_part(C, c0 + 5 * c_rs, s5, p)
        if m > 6:
            vstore_part(C, c0 + 6 * c_rs, s6, p)
        if m > 7:
            vstore_part(C, c0 + 7 * c_rs, s7, p)
        if m > 8:
            vstore_part(C, c0 + 8 * c_rs, s8, p)
        if m > 9:
            vstore_part(C, c0 + 9 * c_rs, s9, p)
        if m > 10:
            vstore_part(C, c0 + 10 * c_rs, s10, p)
        if m > 11:
            vstore_part(C, c0 + 11 * c_rs, s11, p)
