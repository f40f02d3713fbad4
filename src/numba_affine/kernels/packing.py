"""Packing: copy B into the contiguous panels the register block reads."""

from __future__ import annotations

from .._jit import helper
from .._simd import vload_part, vstore, vstore_part, vtranspose


@helper
def pack_unit(B, b_rs, b_cs, u, K, P, lanes, Bp):
    """Copy one unit of B into its panels: row ``u`` of B, or for a
    transposed B (``b_cs != 1``) panel ``u``.

    Parameters
    ----------
    B : 1-D array
        Element ``(k, j)`` is ``B[k * b_rs + j * b_cs]``: W (forward), W
        transposed (dx) or dout (dW), read in place.
    b_rs, b_cs : int
        Strides along k and along j; a transposed B is contiguous along k
        (``b_rs == 1``).
    u : int
        The unit: a row k (0 <= u < K), or a panel (0 <= u < ceil(P / nr)).
    K, P : int
        B's shape.
    lanes : int
        Elements per vector; a panel is ``nr = 2 * lanes`` columns.
    Bp : 1-D array
        Destination, ``ceil(P / nr) * K * nr`` elements: element (k, j) of
        panel q at ``Bp[q * K * nr + k * nr + j]``; columns past P are zero.

    Notes
    -----
    A row is read once, whole and in order (two masked vector loads per
    panel: the masked-off lanes are the zero padding), so the hardware
    prefetcher sees one sequential stream; a transposed B (dx's W.T) is
    read in square blocks of one vector per row of W, transposed in
    registers (:func:`~numba_affine._simd.vtranspose`, masked at the edges).
    """
    nr = 2 * lanes
    panels = (P + nr - 1) // nr
    if b_cs == 1:
        src = u * b_rs
        dst = u * nr
        for q in range(panels):
            w = P - q * nr
            vstore(Bp, dst, vload_part(B, src, w))
            vstore(Bp, dst + lanes, vload_part(B, src + lanes, w - lanes))
            src += nr
            dst += K * nr
    else:
        # lanes x lanes blocks of W (contiguous along k) transposed in
        # registers; the ragged edges are masked, columns past P are zero
        base = u * K * nr
        for h in range(2):
            j = u * nr + h * lanes
            rows = min(lanes, max(0, P - j))
            for k in range(0, K, lanes):
                vtranspose(B, j * b_cs + k, b_cs, rows, min(lanes, K - k), Bp, base + k * nr + h * lanes, nr)


@helper
def pack_columns_of_a(A, a_ks, t, M, K, lanes, Ap):
    """Copy rows ``12 t .. 12 t + 12`` of a transposed A (contiguous along i,
    stride ``a_ks`` along k) into ``Ap``: element (12 t + r, k) at
    ``Ap[(t * K + k) * 12 + r]``.

    dW's A is x.T: its rows are x's columns, so in place each step of k of a
    register block would be a new cache line far from the last. Packed, the
    block reads one contiguous stream. Each step copies twelve contiguous
    elements (masked vector loads and stores); rows past M are left
    unwritten (the register block never reads them).
    """
    m = min(12, M - 12 * t)
    src = 12 * t
    dst = t * K * 12
    for k in range(K):
        for h in range(0, 12, lanes):  # 12 / lanes vectors: 1 to 3
            vstore_part(Ap, dst + h, vload_part(A, src + h, m - h), m - h)
        src += a_ks
        dst += 12
