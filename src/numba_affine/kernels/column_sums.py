"""db: the column sums of dout."""

from __future__ import annotations

from .._jit import helper
from .._simd import VECTOR_BYTES, vadd, vload_part, vstore_part, vzeros


@helper
def column_sums(D, N, H, out, accumulate):
    """``out[j] (+)= sum_n D[n * H + j]``.

    One vector of columns at a time, rows added in order into a running
    vector sum: every sum is a chain over n in increasing order, fixed by
    the batch. Serial: it reads dout once, at memory speed, a small part of
    any backward pass.
    """
    lanes = VECTOR_BYTES // D.itemsize
    for j in range(0, H, lanes):
        w = H - j
        s = vload_part(out, j, w) if accumulate else vzeros(out)
        for n in range(N):
            s = vadd(s, vload_part(D, n * H + j, w))
        vstore_part(out, j, s, w)
