"""The product driver: ``C (+)= A . B (+ bias)`` by tiles, serial and parallel twins."""

from __future__ import annotations

from numba import prange
from numba.extending import register_jitable

from .._jit import twin_kernels
from .packing import pack_columns_of_a, pack_panel
from .register_block import register_block, register_block_narrow


@register_jitable
def scratch_slot(K, P, lanes, kc_max, mc, ng, pack_a, pack_b):
    """Elements of scratch one task of :func:`product` uses (0: none).

    B's region (the task's packed panels, or the partial last panel) comes
    first, then A's packed block of ``mc`` rows.
    """
    kc = min(kc_max, K)
    a_room = (mc + 11) // 12 * 12 * kc + lanes if pack_a else 0
    if pack_b or pack_a or P % (2 * lanes) != 0:
        return b_room(K, lanes, kc_max, ng, pack_b) + a_room
    return 0


@register_jitable
def b_room(K, lanes, kc_max, ng, pack_b):
    """Elements of a task's scratch slot before A's block: its packed panels of
    B, or the one partial panel."""
    return (ng if pack_b else 1) * min(kc_max, K) * 2 * lanes


@twin_kernels
def product(A, a_rs, a_ks, B, b_rs, b_cs, C, c_rs, M, K, P, bias, add_bias, accumulate, S, slot, pack_a, pack_b, lanes, kc_max, mc, mt, ng, by_rows):
    """``C = A . B (+ bias)``, or ``C += A . B`` with ``accumulate``.

    ``A`` is M x K, ``B`` K x P, ``C`` M x P, all 1-D arrays addressed by
    strides (see :func:`register_block`).

    Parameters
    ----------
    A, a_rs, a_ks : 1-D array, int, int
        Element (i, k) at ``A[i * a_rs + k * a_ks]``; a transposed A
        (``a_rs == 1``, dW's x.T) may be packed (``pack_a``).
    B, b_rs, b_cs : 1-D array, int, int
        Element (k, j) at ``B[k * b_rs + j * b_cs]``; read in place only
        when its columns are contiguous (``b_cs == 1``) and not ``pack_b``.
    C, c_rs : 1-D array, int
        Element (i, j) at ``C[i * c_rs + j]``.
    M, K, P : int
        The shapes.
    bias, add_bias : 1-D array, bool
        Add ``bias[j]`` to column j after the sum.
    accumulate : bool
        Add into C instead of overwriting it.
    S, slot : 1-D array, int
        Scratch: task ``t`` uses slot ``t % (S.size // slot)`` of ``slot``
        elements (see :func:`scratch_slot`); the parallel twin needs one
        slot per task, the serial one a single slot.
    pack_a, pack_b : bool
        Copy A's blocks / all of B's panels into the thread's slot; else
        they are read in place (a partial last panel of B is still packed,
        so that every load of B in the inner loop is a whole vector).
    lanes : int
        Elements per vector; panels are ``2 * lanes`` columns wide.
    kc_max, mc, mt, ng : int
        Blocking: k in blocks of ``kc_max``; a task computes ``mt`` rows
        (a multiple of 12) by ``ng`` panels, ``mc`` rows at a time.
    by_rows : bool
        Run 12 rows across all the task's panels before the next 12 rows
        (when the task's block of B is small enough to stay in L1): C is
        then written along its rows. Else each panel runs down all ``mc``
        rows (the panel stays in L1 while A's block streams from L2).

    Notes
    -----
    One parallel loop over tasks, so a parallel call wakes the threads
    once. Per block of k a task packs the panels of B it uses (BLIS's
    NC x KC block, kept in L2), then per ``mc`` rows (A's block, packed or
    not, in L2) runs the register block down those rows for each panel
    (the panel's block stays in L1). Between blocks of k the partial sums
    are stored in C and loaded again, which continues the same chain of
    FMAs. Nothing is split along k, so each element is summed by one task
    in one order whatever the thread count.
    """
    nr = 2 * lanes
    panels = (P + nr - 1) // nr
    groups = (panels + ng - 1) // ng
    ranges = (M + mt - 1) // mt
    k_blocks = max(1, (K + kc_max - 1) // kc_max)
    edge = P % nr != 0 and not pack_b
    slots = max(1, S.size // max(1, slot))
    a_slot = b_room(K, lanes, kc_max, ng, pack_b)
    for t in prange(ranges * groups):
        base = (t % slots) * slot
        i0 = (t // groups) * mt
        i1 = min(M, i0 + mt)
        q0 = (t % groups) * ng
        q1 = min(panels, q0 + ng)
        for kb in range(k_blocks):
            k0 = kb * kc_max
            kc = min(K, k0 + kc_max) - k0
            load_c = accumulate or kb > 0
            last = add_bias and kb == k_blocks - 1
            if pack_b:
                for q in range(q0, q1):
                    pack_panel(B, b_rs, b_cs, q, k0, kc, P, lanes, S, base + (q - q0) * kc * nr)
            elif edge and q1 == panels:
                pack_panel(B, b_rs, b_cs, panels - 1, k0, kc, P, lanes, S, base)
            for s0 in range(i0, i1, mc):
                rows = min(i1, s0 + mc) - s0
                if pack_a:
                    pack_columns_of_a(A, a_ks, M, s0, rows, k0, kc, lanes, S, base + a_slot)
                    src_a, a0, rs, bs, ks = S, base + a_slot, 1, 6 * kc, 6
                else:
                    src_a, a0, rs, bs, ks = A, s0 * a_rs + k0 * a_ks, a_rs, 6 * a_rs, a_ks
                # (start row, rows) of each call: all mc rows, or 12 at a time
                step = 12 if by_rows else mc
                for r0 in range(0, rows, step):
                    r = min(step, rows - r0)
                    ra = a0 + (r0 // 6) * bs + (r0 % 6) * rs
                    for q in range(q0, q1):
                        jq = q * nr
                        p = min(nr, P - jq)
                        if pack_b:
                            src_b, b0, b_ks = S, base + (q - q0) * kc * nr, nr
                        elif edge and q == panels - 1:
                            src_b, b0, b_ks = S, base, nr
                        else:
                            src_b, b0, b_ks = B, k0 * b_rs + jq, b_rs
                        c0 = (s0 + r0) * c_rs + jq
                        if p <= lanes:
                            register_block_narrow(src_a, ra, rs, bs, ks, r, s0 + r0, pack_a, src_b, b0, b_ks, kc, C, c0, c_rs, p, lanes, load_c, bias, jq, last)
                        else:
                            register_block(src_a, ra, rs, bs, ks, r, s0 + r0, pack_a, src_b, b0, b_ks, kc, C, c0, c_rs, p, lanes, load_c, bias, jq, last)
