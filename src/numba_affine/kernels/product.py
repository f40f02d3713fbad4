"""The product driver: ``C (+)= A . B (+ bias)`` by tiles, serial and parallel twins."""

from __future__ import annotations

from numba import prange

from .._jit import twin_kernels
from .packing import pack_columns_of_a, pack_unit
from .register_block import register_block, register_block_narrow


@twin_kernels
def product(A, a_rs, a_ks, Ap, B, b_rs, b_cs, Bp, C, c_rs, M, K, P, bias, add_bias, accumulate, lanes, kc_max, mc, ng):
    """``C = A . B (+ bias)``, or ``C += A . B`` with ``accumulate``.

    ``A`` is M x K, ``B`` K x P, ``C`` M x P, all 1-D arrays addressed by
    strides (see :func:`register_block` and :func:`pack_panels`).

    Parameters
    ----------
    A, a_rs, a_ks : 1-D array, int, int
        Read in place: element (i, k) at ``A[i * a_rs + k * a_ks]``.
    Ap : 1-D array
        Scratch for a transposed A (dW's x.T), ``ceil(M / 12) * 12 * K``
        elements (see :func:`pack_columns_of_a`); empty to read A in place.
    B, b_rs, b_cs : 1-D array, int, int
        Element (k, j) at ``B[k * b_rs + j * b_cs]``.
    Bp : 1-D array
        Scratch for the packed B, ``ceil(P / (2 * lanes)) * K * 2 * lanes``
        elements (see :func:`pack_unit`); empty to read B in place (its
        columns must be contiguous, ``b_cs == 1``).
    C, c_rs : 1-D array, int
        Element (i, j) at ``C[i * c_rs + j]``.
    M, K, P : int
        The shapes.
    bias, add_bias : 1-D array, bool
        Add ``bias[j]`` to column j after the sum.
    accumulate : bool
        Add into C instead of overwriting it.
    lanes : int
        Elements per vector; panels are ``2 * lanes`` columns wide.
    kc_max, mc, ng : int
        Blocking: k in blocks of ``kc_max``; a task computes ``mc`` rows
        (a multiple of 6) by ``ng`` panels.

    Notes
    -----
    Two parallel loops. First B is packed into panels of ``2 * lanes``
    columns (by rows of B, or by panels for a transposed B), each read
    once, in order. Then tasks of (mc rows) x (ng panels) of C run the
    register block down the rows of each panel, block of k by block of k
    (the panel's block stays in L1, the task's rows of A in L2). Between
    blocks of k the partial sums are stored in C and loaded again, which
    continues the same chain of FMAs. Nothing is split along k, so each
    element is summed by one task in one order whatever the thread count.
    """
    nr = 2 * lanes
    panels = (P + nr - 1) // nr
    groups = (panels + ng - 1) // ng
    row_blocks = (M + mc - 1) // mc
    k_blocks = max(1, (K + kc_max - 1) // kc_max)
    # B (and a transposed A) in up to 16 chunks of rows (of panels, for a
    # transposed B): few enough that a chunk size of one (api) does not
    # schedule each row alone
    b_step = max(32, (K + 15) // 16) if b_cs == 1 else 1
    b_items = K if b_cs == 1 else panels
    b_units = (b_items + b_step - 1) // b_step if Bp.size > 0 else 0
    a_items = (M + 11) // 12 if Ap.size > 0 else 0
    a_step = max(4, (a_items + 15) // 16)
    a_units = (a_items + a_step - 1) // a_step
    for u in prange(b_units + a_units):
        if u < b_units:
            for r in range(u * b_step, min(b_items, u * b_step + b_step)):
                pack_unit(B, b_rs, b_cs, r, K, P, lanes, Bp)
        else:
            v = u - b_units
            for r in range(v * a_step, min(a_items, v * a_step + a_step)):
                pack_columns_of_a(A, a_ks, r, M, K, lanes, Ap)
    pack_a = Ap.size > 0
    pack_b = Bp.size > 0
    src_b, b_ks = (Bp, nr) if pack_b else (B, b_rs)
    for t in prange(row_blocks * groups):
        i0 = (t // groups) * mc
        i1 = min(M, i0 + mc)
        q0 = (t % groups) * ng
        q1 = min(panels, q0 + ng)
        for kb in range(k_blocks):
            k0 = kb * kc_max
            kc = min(K, k0 + kc_max) - k0
            load_c = accumulate or kb > 0
            last = add_bias and kb == k_blocks - 1
            for q in range(q0, q1):
                jq = q * nr
                p = min(nr, P - jq)
                b0 = (q * K + k0) * nr if pack_b else k0 * b_rs + jq
                c0 = i0 * c_rs + jq
                if pack_a:  # blocks of 12 rows, 12 apart along k
                    src, a0, rs, bs, ks = Ap, (i0 // 12 * K + k0) * 12, 1, 12 * K, 12
                else:
                    src, a0, rs, bs, ks = A, i0 * a_rs + k0 * a_ks, a_rs, 12 * a_rs, a_ks
                if p <= lanes:
                    register_block_narrow(src, a0, rs, bs, ks, i1 - i0, src_b, b0, b_ks, kc, C, c0, c_rs, p, lanes, load_c, bias, jq, last)
                else:
                    register_block(src, a0, rs, bs, ks, i1 - i0, src_b, b0, b_ks, kc, C, c0, c_rs, p, lanes, load_c, bias, jq, last)
