"""The product driver, as the one kernel every public call runs: ``C (+)= A . B (+ bias)`` by tiles.

One call of :func:`product` is one public call (the forward, the whole
backward, or dx / dW / db alone), so that a call from Python is one
dispatch and the driver's code is compiled once for all of them, in a
serial and a parallel twin.
"""

from __future__ import annotations

import numpy as np
from numba import prange
from numba.extending import register_jitable

from .. import tuning
from .._jit import twin_kernels
from .._simd import VECTOR_BYTES
from .column_sums import column_sums
from .packing import pack_columns_of_a, pack_panel
from .register_block import register_block, register_block_narrow
from .views import stack_plan, stack_scratch, view

#: ``op`` of :func:`product`: what the call computes (the low bits) ...
FORWARD, BACKWARD, DX, DW, DB = range(5)
#: ... and flags on it.
WITH_BIAS, ACCUMULATE = 8, 16

#: Columns of a plan row (one row per product of a call: forward, dx, dW).
PLAN_FIELDS = ("kc_max", "mc", "mt", "ng", "pack_a", "pack_b", "by_rows")

#: k runs in blocks of at most this many steps (a panel of B, ``PANEL_BYTES``, stays in L1).
KC_MAX = max(16, tuning.PANEL_BYTES // (2 * VECTOR_BYTES))
#: A task's panels of B fill at most ``B_BLOCK_BYTES``.
NG_MAX = max(1, tuning.B_BLOCK_BYTES // tuning.PANEL_BYTES)
#: Rows of A packed together at most (a multiple of the narrow block's 12).
MC_MAX = tuning.MC_MAX // 12 * 12


@register_jitable
def scratch_slot(K, P, lanes, kc_max, mc, ng, pack_a, pack_b):
    """Elements of scratch one task of :func:`product` uses (0: none).

    B's region (the task's packed panels, or the partial last panel) comes
    first, then A's packed block of ``mc`` rows.
    """
    kc = min(kc_max, K)
    a_room = (mc + 11) // 12 * 12 * kc + lanes if pack_a else 0
    if pack_b or pack_a or P % (2 * lanes) != 0:
        return (ng if pack_b else 1) * kc * 2 * lanes + a_room
    return 0


@register_jitable
def rows_first(K, P, ng, nr, itemsize, kc_max):
    """Whether a task walks 12 rows across all its panels at a time: when its
    block of B (``min(K, kc_max) x ng`` panels) fits ``ROWS_FIRST_MAX_BYTES``.
    Rows of C are then written left to right, not down their columns, which
    with C's rows 4 KiB apart (a power of two) conflict in the caches. A sum
    shorter than 16 with C's rows not a multiple of 1 KiB apart (so spread
    over the cache's sets) walks all ``mc`` rows per call instead: a call
    would cost more than its FMAs (one sample's dW: 10 x fewer calls)."""
    if K < 16 and P * itemsize % 1024 != 0:
        return False
    return min(K, kc_max) * ng * nr * itemsize <= tuning.ROWS_FIRST_MAX_BYTES


@twin_kernels
def product(op, x, W, b, dout, y, dx, dW, db, S, plan):
    """One public call, by tiles: the forward, the backward, or dx / dW / db.

    ==========  ======================  =========================================
    ``op``      reads                   writes
    ==========  ======================  =========================================
    FORWARD     x (N, D), W (D, H), b   y (N, H) = x . W (+ b with ``WITH_BIAS``)
    BACKWARD    dout (N, H), x, W       dx, dW and db
    DX          dout, W                 dx (N, D) = dout . W.T
    DW          x, dout                 dW (D, H) (+)= x.T . dout
    DB          dout                    db (H,) (+)= dout summed over its rows
    ==========  ======================  =========================================

    ``ACCUMULATE`` adds dW and db into their arrays. Every array is
    C-contiguous and of one dtype; the shapes fit (the caller checked);
    arguments an operation does not use stand in for any array of their
    type.

    Each product is M x K by K x P, addressed by strides in flat arrays:

    =======  ==================  ==================  =======
    product  A (M x K)           B (K x P)           C
    =======  ==================  ==================  =======
    forward  x: (N, D)           W: (D, H)           y
    dx       dout: (N, H)        W.T: (H, D), packed dx
    dW       x.T: (D, N)         dout: (N, H)        dW
    =======  ==================  ==================  =======

    Parameters
    ----------
    S : 1-D array
        Scratch for packed operands: task ``t`` uses slot ``t % slots`` of
        :func:`scratch_slot` elements. Too small (e.g. empty): a call of
        one task per product uses the stack when that is enough; else
        the call computes nothing and returns the size it needs.
    plan : 2-D int array
        One row per product (forward, dx, dW) of ``PLAN_FIELDS``: k in
        blocks of ``kc_max``; a task computes ``mt`` rows (a multiple of
        12) by ``ng`` panels, ``mc`` rows at a time; whether A's rows and
        B's panels are packed; ``by_rows``: 12 rows across all the task's
        panels before the next 12 rows (when the task's block of B stays
        in L1), else each panel down all ``mc`` rows. Empty: the serial
        plan (``kernels.plan`` with one thread). A plan only changes who computes an
        element and where its operands are read from, never the arithmetic.

    Returns
    -------
    int
        0; or, when ``S`` is too small, the scratch elements the call
        needs (nothing is computed: call again with that much). The
        kernels allocate nothing themselves.

    Notes
    -----
    One parallel loop over tasks per product, so a parallel product wakes
    the threads once. Per block of k a task packs the panels of B it uses
    (BLIS's NC x KC block, kept in L2), then per ``mc`` rows (A's block,
    packed or not, in L2) runs the register block down those rows for each
    panel (the panel's block stays in L1). Between blocks of k the partial
    sums are stored in C and loaded again, which continues the same chain
    of FMAs. Nothing is split along k, so each element is summed by one
    task in one order whatever the thread count.
    """
    kind = op & 7
    lanes = VECTOR_BYTES // y.itemsize
    nr = 2 * lanes
    if kind == FORWARD:
        first, last = 0, 1
    else:
        first = 2 if kind == DW else 1
        last = 2 if kind == DX else (1 if kind == DB else 3)
    # the call's sizes, read from the operands it uses (the others stand in)
    N = x.shape[0] if kind == FORWARD else dout.shape[0]
    D = x.shape[1] if kind == FORWARD or kind == DW else W.shape[0]
    H = W.shape[1] if kind == FORWARD else dout.shape[1]
    own = stack_scratch(y)
    # each product's plan row and scratch, worked out before anything is written
    chosen = stack_plan()
    need = 0
    for step in range(first, last):
        M, K, P = (N, D, H) if step == 0 else ((N, H, D) if step == 1 else (D, N, H))
        if step == 1 and N == 1:  # one sample's dx, as dx.T = W . dout.T (below)
            M, K, P = D, H, 1
        if plan.shape[0] == 0:
            # the serial plan: kernels.plan's rules for one thread, written out
            # here (as a function of its own it compiles and links apart: +0.2 s
            # on a first call); a plan never changes the bits, only the speed
            itemsize = y.itemsize
            panels = max(1, (P + nr - 1) // nr)
            pack_b = (step == 1 and N > 1) or (P * itemsize >= tuning.PACK_B_MIN_ROW_BYTES and M >= tuning.PACK_B_MIN_ROWS)
            pack_a = step == 2 and M > 1 and panels >= tuning.PACK_A_MIN_PANELS
            mt = max(1, (M + 11) // 12) * 12
            groups = (panels + NG_MAX - 1) // NG_MAX
            ng = (panels + groups - 1) // groups
            kc_max, mc = KC_MAX, min(mt, MC_MAX)
            by_rows = rows_first(K, P, ng, nr, itemsize, kc_max)
        else:
            kc_max, mc, mt, ng = plan[step, 0], plan[step, 1], plan[step, 2], plan[step, 3]
            pack_a, pack_b, by_rows = plan[step, 4] != 0, plan[step, 5] != 0, plan[step, 6] != 0
        # scratch_slot, written out as the plan above: B's room, then A's block
        slot = (ng if pack_b else 1) * min(kc_max, K) * nr if (pack_a or pack_b or P % nr != 0) else 0
        if pack_a:
            slot += (mc + 11) // 12 * 12 * min(kc_max, K) + lanes
        tasks = (M + mt - 1) // mt * (((P + nr - 1) // nr + ng - 1) // ng)
        c = 8 * step
        chosen[c], chosen[c + 1], chosen[c + 2], chosen[c + 3] = kc_max, mc, mt, ng
        chosen[c + 4], chosen[c + 5], chosen[c + 6], chosen[c + 7] = pack_a, pack_b, by_rows, slot
        # one slot per task (tasks may run at once); one task may use the stack
        if slot * tasks > S.size and (tasks > 1 or slot > own.size):
            need = max(need, slot * tasks)
    if need > 0:
        return need
    x1, W1, d1 = view(x, (x.size,)), view(W, (W.size,)), view(dout, (dout.size,))
    bias = view(b, (b.size,))
    for step in range(first, last):
        if step == 0:  # y = x . W (+ b)
            A, a_rs, a_ks, B, b_rs, b_cs, C, M, K, P = x1, D, 1, W1, H, 1, view(y, (y.size,)), N, D, H
            accumulate, add_bias = False, (op & WITH_BIAS) != 0
        elif step == 1 and N == 1:  # one sample: dx.T = W . dout.T, W read in place (no W.T to pack)
            A, a_rs, a_ks, B, b_rs, b_cs, C, M, K, P = W1, H, 1, d1, 1, 1, view(dx, (dx.size,)), D, H, 1
            accumulate, add_bias = False, False
        elif step == 1:  # dx = dout . W.T
            A, a_rs, a_ks, B, b_rs, b_cs, C, M, K, P = d1, H, 1, W1, 1, H, view(dx, (dx.size,)), N, H, D
            accumulate, add_bias = False, False
        else:  # dW (+)= x.T . dout
            A, a_rs, a_ks, B, b_rs, b_cs, C, M, K, P = x1, 1, D, d1, H, 1, view(dW, (dW.size,)), D, N, H
            accumulate, add_bias = (op & ACCUMULATE) != 0, False
        c = 8 * step
        kc_max, mc, mt, ng = chosen[c], chosen[c + 1], chosen[c + 2], chosen[c + 3]
        pack_a, pack_b, by_rows, slot = chosen[c + 4] != 0, chosen[c + 5] != 0, chosen[c + 6] != 0, chosen[c + 7]
        a_slot = (ng if pack_b else 1) * min(kc_max, K) * nr
        panels = (P + nr - 1) // nr
        groups = (panels + ng - 1) // ng
        ranges = (M + mt - 1) // mt
        T = S if slot * ranges * groups <= S.size else own
        k_blocks = max(1, (K + kc_max - 1) // kc_max)
        edge = P % nr != 0 and not pack_b
        slots = max(1, T.size // max(1, slot))
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
                last_k = add_bias and kb == k_blocks - 1
                if pack_b:
                    for q in range(q0, q1):
                        pack_panel(B, b_rs, b_cs, q, k0, kc, P, lanes, T, base + (q - q0) * kc * nr)
                elif edge and q1 == panels:
                    pack_panel(B, b_rs, b_cs, panels - 1, k0, kc, P, lanes, T, base)
                for s0 in range(i0, i1, mc):
                    rows = min(i1, s0 + mc) - s0
                    if pack_a:
                        pack_columns_of_a(A, a_ks, M, s0, rows, k0, kc, lanes, T, base + a_slot)
                        src_a, a0, rs, bs, ks = T, base + a_slot, 1, 6 * kc, 6
                    else:
                        src_a, a0, rs, bs, ks = A, s0 * a_rs + k0 * a_ks, a_rs, 6 * a_rs, a_ks
                    # (start row, rows) of each call: all mc rows, or 12 at a time
                    step_rows = 12 if by_rows else mc
                    for r0 in range(0, rows, step_rows):
                        r = min(step_rows, rows - r0)
                        ra = a0 + (r0 // 6) * bs + (r0 % 6) * rs
                        for q in range(q0, q1):
                            jq = q * nr
                            p = min(nr, P - jq)
                            if pack_b:
                                src_b, b0, b_ks = T, base + (q - q0) * kc * nr, nr
                            elif edge and q == panels - 1:
                                src_b, b0, b_ks = T, base, nr
                            else:
                                src_b, b0, b_ks = B, k0 * b_rs + jq, b_rs
                            c0 = (s0 + r0) * P + jq
                            if p <= lanes:
                                register_block_narrow(src_a, ra, rs, bs, ks, r, s0 + r0, pack_a, src_b, b0, b_ks, kc, C, c0, P, p, lanes, load_c, bias, jq, last_k)
                            else:
                                register_block(src_a, ra, rs, bs, ks, r, s0 + r0, pack_a, src_b, b0, b_ks, kc, C, c0, P, p, lanes, load_c, bias, jq, last_k)
    if kind == BACKWARD or kind == DB:
        column_sums(d1, N, H, db, (op & ACCUMULATE) != 0)
    return 0
