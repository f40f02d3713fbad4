"""Packing: copy parts of A and B into the contiguous, zero-padded blocks the register blocks read."""

from __future__ import annotations

from .._jit import helper
from .._simd import vload_part, vstore, vtranspose


@helper
def pack_panel(B, b_rs, b_cs, q, k0, kc, P, lanes, S, dst):
    """Copy rows ``k0 .. k0 + kc`` of panel ``q`` of B (``2 * lanes`` columns) to ``S[dst:]``.

    Parameters
    ----------
    B : 1-D array
        Element ``(k, j)`` is ``B[k * b_rs + j * b_cs]``: W (forward), W
        transposed (dx, ``b_rs == 1``) or dout (dW), read in place.
    b_rs, b_cs : int
        Strides along k and along j.
    q, k0, kc : int
        The panel, and the rows of it to copy.
    P : int
        B's columns; columns past P are written as zeros.
    lanes : int
        Elements per vector; a panel is ``nr = 2 * lanes`` columns.
    S, dst : 1-D array, int
        Destination: element (k0 + k, q * nr + j) at ``S[dst + k * nr + j]``.

    Notes
    -----
    A row-major B is copied a row at a time (two masked vector loads: the
    masked-off lanes are the zero padding); a transposed B (dx's W.T) is
    read in square blocks of one vector per row of W, transposed in
    registers (:func:`~numba_affine._simd.vtranspose`, masked at the edges).
    """
    nr = 2 * lanes
    j = q * nr
    if b_cs == 1:
        w = P - j
        src = k0 * b_rs + j
        for k in range(kc):
            vstore(S, dst, vload_part(B, src, w))
            vstore(S, dst + lanes, vload_part(B, src + lanes, w - lanes))
            src += b_rs
            dst += nr
    else:
        for h in range(2):
            jj = j + h * lanes
            rows = min(lanes, max(0, P - jj))
            for k in range(0, kc, lanes):
                vtranspose(B, jj * b_cs + k0 + k, b_cs, rows, min(lanes, kc - k), S, dst + k * nr + h * lanes, nr)


@helper
def pack_columns_of_a(A, a_ks, M, i0, m_rows, k0, kc, lanes, S, dst):
    """Copy rows ``i0 .. i0 + m_rows`` and columns ``k0 .. k0 + kc`` of a
    transposed A (M x K, contiguous along i, stride ``a_ks`` along k) into
    blocks of 6 rows (the wide register block's): element (i0 + 6 t + r, k0 + k)
    at ``S[dst + (t * kc + k) * 6 + r]``; rows from ``m_rows`` up to a
    multiple of 12 (the narrow block's tile) are zero.

    dW's A is x.T: its rows are x's columns, so in place each step of k of a
    register block would be a new cache line far from the last. Packed, the
    block reads one contiguous stream. Each step copies six contiguous
    elements as whole vectors: loads are plain unless they would pass A's
    row (masked there, and for the last rows), and stores may write up to
    ``lanes`` elements past the six, which the next step overwrites (the
    caller leaves ``lanes`` elements of room after the last block).
    """
    for t in range((m_rows + 11) // 12 * 2):
        m = min(6, m_rows - 6 * t)
        left = M - (i0 + 6 * t) if m == 6 else m
        src = i0 + 6 * t + k0 * a_ks
        d = dst + t * kc * 6
        for k in range(kc):
            for h in range(0, 6, lanes):  # 6 / lanes vectors: 1 or 2
                vstore(S, d + h, vload_part(A, src + h, left - h))
            src += a_ks
            d += 6
