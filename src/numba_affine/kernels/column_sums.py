"""db: the column sums of dout."""

from __future__ import annotations

from .._jit import helper


@helper
def column_sums(D, N, H, out, accumulate):
    """``out[j] (+)= sum_n D[n * H + j]``.

    Rows are added in order, each into all H running sums (contiguous, so
    LLVM vectorizes across columns); every sum is a chain over n in
    increasing order, fixed by the batch. Serial: it reads dout once, at
    memory speed, a small part of any backward pass.
    """
    if not accumulate:
        for j in range(H):
            out[j] = 0
    for n in range(N):
        r = n * H
        for j in range(H):
            out[j] += D[r + j]
