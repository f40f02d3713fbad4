"""Explicit-loop kernels for the Affine layer.

Nothing here validates anything: :mod:`numba_affine.api` hands every kernel
C-contiguous arrays of one dtype (float32 or float64) with matching shapes,
and scratch buffers of the right size.

Four product shapes do the work. The first two are written so that
LLVM's loop vectorizer turns their innermost loop into AVX2 FMAs; the
other two, the *panel form* and the *small form* (sections at the end),
are written with explicit vectors (:mod:`numba_affine._simd`; 512-bit
with AVX-512, else 256-bit): the panel form serves most parallel
forwards and backwards, the small form every serial call:

*dot form* (:func:`_abt_tile`), ``C[i, j] = sum_k A[i, k] * Bt[j, k]``
    A register block of 4 rows x 3 columns = 12 independent dot products over
    a contiguous ``k``. With ``fastmath`` reassociation each sum becomes one
    SIMD accumulator: 7 vector loads feed 12 FMAs (the inner loop is 22
    instructions: 7 ``vmovupd``, 12 ``vfmadd231pd ymm``, 3 of loop control;
    no spills). ``k`` is cut into blocks of ``KC_BYTES``; tiles of up to
    256 x 24 are visited a row of tiles at a time, so consecutive tiles
    reuse the same rows of A. Measured at 1024^3 float64 (2 threads, kernel
    alone): this layout 55-58 GFLOP/s against 46-52 for 4 KiB blocks and
    128 x 96 tiles visited a column of tiles at a time.
    Used where the summed dimension is long and contiguous in both operands
    and the panel form is not (parallel forwards of short H, float64
    backwards of short sums; the serial twin only in a forked child).

*axpy form* (:func:`_ab_tile`), ``C[i, :] += sum_k a(i, k) * B[k, :]``
    Two rows of C are updated from four rows of B at a time (8 FMAs per 4
    loads of B, 2 loads and 2 stores of C); ``a(i, k)`` is a scalar, read as
    ``A[i, k]`` or, with ``a_trans``, as ``A[k, i]``. Needs no transposed
    copy of the row operand; it serves the products whose dot products
    would be too short (backward, H < 32: dx on a packed W.T, dW built
    transposed).

*panel form* (:func:`_panel_block`), ``C[i:i+6, j:j+2 vectors] += A[i:i+6, k] * B[k, j:...]``
    OpenBLAS's outer-product block: per step of k, 2 vector loads of a
    packed panel of B, 6 broadcasts of A, 12 FMAs into 12 vector sums (``zmm`` / ``ymm``)
    that stay in registers for a whole k block. A is read in place: x's
    rows in the forward pass (:func:`_forward_direct`), dout's rows for dx
    and x.T, packed whole, for dW (:func:`_backward_panels`).

*small form* (:func:`_part_block`), the panel form's block with B read in place
    B's rows with their own stride, the last vector of a row and of C cut
    to the columns that exist by masked loads and stores; 12 rows x one
    vector when the output is one vector wide. The few columns past the
    last whole vector, where a masked vector would cost more, as dot
    products over a contiguous k (forward, dx: :func:`_dot_rows`) or
    vectors down dW's columns (:func:`_dw_columns`). Nothing is packed but
    W.T for dx (and W's last few columns for the forward); every call below
    ``api.PARALLEL_MIN_WORK`` runs it, serially (:func:`small_forward`,
    :func:`small_backward`).

Every top-level kernel is a :func:`~numba_affine._jit.twin_kernels` pair. The
parallel variant runs ``prange`` over fixed tiles of the *output*, never over
the summed dimension: each output element is computed by one thread, by the
same code, in the same order, so results are bitwise identical for any
thread count. Tile sizes depend on the output's shape only (never on the
thread count); ``api`` runs the parallel variants with dynamic scheduling.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import helper, twin_kernels
from ._simd import (
    VECTOR_BYTES,
    prefetch_for_write,
    vadd,
    vbroadcast,
    vfma,
    vgather_part,
    vload,
    vload_part,
    vstore,
    vscatter_part,
    vstore_part,
    vsums6,
    vtranspose,
    vzeros,
)

#: Bytes of the summed dimension handled per block in the dot form.
KC_BYTES = 8192
#: Largest output tile of the dot form: rows (multiple of 4) x columns (multiple of 3).
ABT_ROW_TILE = 256
ABT_COL_TILE = 24
#: Largest output tile of the axpy form: rows (multiple of 2) x columns.
#: Wide: rows of the output written (or of x read) in pieces cost more than
#: the tiles save (2048 x 513 x 10 backward: 512 -> 1024 columns measured
#: 12.3-12.8 -> 14.2-16.1 GFLOP/s float64, 18.9-24.6 -> 21.5-27.9 float32).
AB_ROW_TILE = 32
AB_COL_TILE = 1024
#: Bytes of B (rows of the k block x tile width) per k block of the axpy form:
#: the block stays in L2 while every row pair of the tile reads it.
AB_KC_BYTES = 65536
#: Rows of the source per parallel block of a transpose.
TRANSPOSE_ROWS = 8
#: Source rows written together when the destination's rows alias in L1
#: (:func:`_transpose_rows`): 8 float64 fill a whole cache line of the
#: destination. Serial, median of 9, 4 -> 8 rows: 1024 x 1024 float32
#: 1.91 -> 1.88 ms, float64 2.91 -> 2.85 ms; 4096 x 256 float32 3.76 -> 1.68 ms;
#: 512 x 512 0.37 -> 0.24 ms / 0.34 -> 0.25 ms; but 512 x 2048 float32
#: 3.01 -> 3.46 ms. 16 rows was slower on all but one of 14 shapes.
ALIASED_TRANSPOSE_ROWS = 8
#: Transposes of fewer elements run on the calling thread: a parallel loop
#: costs a thread wake-up (~15 us hot, ~70 us after idle, measured with
#: passive OpenMP waiting), more than copying this many elements
#: (784 x 100 float64: ~47 us on one core).
PARALLEL_TRANSPOSE = 1 << 17
#: Outputs big enough are cut into at least this many tiles (load balance).
MIN_TILES = 8
#: Products smaller than this (multiply-adds) are not cut into tiles.
ONE_TILE_WORK = 1 << 19
#: Columns per tile of the bias gradient.
DB_COL_TILE = 256
#: Bytes of one vector of LLVM's loop vectorizer (AVX2 width; on AVX-512
#: CPUs it prefers 256-bit vectors too). The packed copies of x.T and dout.T
#: (dot-form dW) have their summed batch dimension padded with zeros to a
#: whole number of such vectors: the vectorized dot products then have no
#: scalar remainder. float32 with N = 100 (12 vectors of 8 and 4 scalar
#: steps) measured 16.8 us per 100 x 24 tile against 13.1 us with N = 104.
#: The panel form's explicit vectors are wider where the CPU has AVX-512
#: (:data:`~numba_affine._simd.VECTOR_BYTES`).
LOOP_VECTOR_BYTES = 32
#: Bytes of a cache line: the forward's packed W.T rows start on one, and
#: packed rows of a multiple of 512 bytes get one more (:func:`_packed_length`).
LINE_BYTES = 64


@helper
def _cdiv(a, b):
    return (a + b - 1) // b


@helper
def _abt_tile(A, Bt, C, bias, add_bias, accumulate, i0, i1, j0, j1):
    """Dot form on one output tile: ``C[i0:i1, j0:j1] (+)= A[i0:i1] . Bt[j0:j1].T (+ bias)``.

    Loop order: k blocks of ``KC_BYTES`` / rows in steps of 4 / columns in
    steps of 3 / contiguous k (vectorized). Edges use 4x1, 1x3 and 1x1 blocks.

    Parameters
    ----------
    A : (M, K) C-contiguous array
    Bt : (P, K) C-contiguous array
    C : (M, P) C-contiguous array, written in place
    bias : (P,) array, added when ``add_bias``
    add_bias, accumulate : bool
        ``accumulate`` adds into ``C`` instead of overwriting it.
    i0, i1, j0, j1 : int
        The tile of ``C``.
    """
    K = A.shape[1]
    zero = A.dtype.type(0)
    kc = KC_BYTES // A.itemsize
    n_kblocks = max(1, _cdiv(K, kc))  # K == 0 still stores zeros
    for kb in range(n_kblocks):
        k0 = kb * kc
        k1 = min(K, k0 + kc)
        nk = k1 - k0
        init = kb == 0 and not accumulate
        i = i0
        while i + 4 <= i1:
            a0 = A[i, k0:k1]
            a1 = A[i + 1, k0:k1]
            a2 = A[i + 2, k0:k1]
            a3 = A[i + 3, k0:k1]
            j = j0
            while j + 3 <= j1:
                b0 = Bt[j, k0:k1]
                b1 = Bt[j + 1, k0:k1]
                b2 = Bt[j + 2, k0:k1]
                s00 = s01 = s02 = s10 = s11 = s12 = zero
                s20 = s21 = s22 = s30 = s31 = s32 = zero
                for k in range(nk):
                    x0 = a0[k]
                    x1 = a1[k]
                    x2 = a2[k]
                    x3 = a3[k]
                    y0 = b0[k]
                    y1 = b1[k]
                    y2 = b2[k]
                    s00 += x0 * y0
                    s01 += x0 * y1
                    s02 += x0 * y2
                    s10 += x1 * y0
                    s11 += x1 * y1
                    s12 += x1 * y2
                    s20 += x2 * y0
                    s21 += x2 * y1
                    s22 += x2 * y2
                    s30 += x3 * y0
                    s31 += x3 * y1
                    s32 += x3 * y2
                if init:
                    C[i, j] = s00
                    C[i, j + 1] = s01
                    C[i, j + 2] = s02
                    C[i + 1, j] = s10
                    C[i + 1, j + 1] = s11
                    C[i + 1, j + 2] = s12
                    C[i + 2, j] = s20
                    C[i + 2, j + 1] = s21
                    C[i + 2, j + 2] = s22
                    C[i + 3, j] = s30
                    C[i + 3, j + 1] = s31
                    C[i + 3, j + 2] = s32
                else:
                    C[i, j] += s00
                    C[i, j + 1] += s01
                    C[i, j + 2] += s02
                    C[i + 1, j] += s10
                    C[i + 1, j + 1] += s11
                    C[i + 1, j + 2] += s12
                    C[i + 2, j] += s20
                    C[i + 2, j + 1] += s21
                    C[i + 2, j + 2] += s22
                    C[i + 3, j] += s30
                    C[i + 3, j + 1] += s31
                    C[i + 3, j + 2] += s32
                j += 3
            while j < j1:
                b0 = Bt[j, k0:k1]
                s0 = s1 = s2 = s3 = zero
                for k in range(nk):
                    y0 = b0[k]
                    s0 += a0[k] * y0
                    s1 += a1[k] * y0
                    s2 += a2[k] * y0
                    s3 += a3[k] * y0
                if init:
                    C[i, j] = s0
                    C[i + 1, j] = s1
                    C[i + 2, j] = s2
                    C[i + 3, j] = s3
                else:
                    C[i, j] += s0
                    C[i + 1, j] += s1
                    C[i + 2, j] += s2
                    C[i + 3, j] += s3
                j += 1
            i += 4
        while i < i1:
            a0 = A[i, k0:k1]
            j = j0
            while j + 3 <= j1:
                b0 = Bt[j, k0:k1]
                b1 = Bt[j + 1, k0:k1]
                b2 = Bt[j + 2, k0:k1]
                s0 = s1 = s2 = zero
                for k in range(nk):
                    x0 = a0[k]
                    s0 += x0 * b0[k]
                    s1 += x0 * b1[k]
                    s2 += x0 * b2[k]
                if init:
                    C[i, j] = s0
                    C[i, j + 1] = s1
                    C[i, j + 2] = s2
                else:
                    C[i, j] += s0
                    C[i, j + 1] += s1
                    C[i, j + 2] += s2
                j += 3
            while j < j1:
                b0 = Bt[j, k0:k1]
                s0 = zero
                for k in range(nk):
                    s0 += a0[k] * b0[k]
                if init:
                    C[i, j] = s0
                else:
                    C[i, j] += s0
                j += 1
            i += 1
    if add_bias:  # y = (x . W) + b, in numpy's order
        for i in range(i0, i1):
            c = C[i, j0:j1]
            bb = bias[j0:j1]
            for j in range(j1 - j0):
                c[j] += bb[j]


@helper(inline=True)
def _a(A, a_trans, i, k):
    return A[k, i] if a_trans else A[i, k]


@helper
def _ab_tile(A, a_trans, B, C, accumulate, i0, i1, j0, j1):
    """Axpy form on one output tile: ``C[i0:i1, j0:j1] (+)= a . B[:, j0:j1]``.

    ``a(i, k)`` is ``A[k, i]`` when ``a_trans`` else ``A[i, k]``.
    Loop order: k blocks (``AB_KC_BYTES`` of B) / rows in steps of 2 / k in
    steps of 4 / contiguous columns (vectorized). The two rows of C being
    updated stay in L1 across a k block, the block of B in L2 across the rows.

    Parameters
    ----------
    A : 2-D C-contiguous array, read one scalar at a time
    a_trans : bool
    B : (K, P) C-contiguous array
    C : (M, P) C-contiguous array, written in place
    accumulate : bool
        Add into ``C`` instead of overwriting it.
    i0, i1, j0, j1 : int
        The tile of ``C``.
    """
    K = B.shape[0]
    w = j1 - j0
    zero = C.dtype.type(0)
    if not accumulate:
        for i in range(i0, i1):
            c = C[i, j0:j1]
            for j in range(w):
                c[j] = zero
    kc = max(4, AB_KC_BYTES // max(1, w * B.itemsize))
    for k0 in range(0, K, kc):
        k1 = min(K, k0 + kc)
        i = i0
        while i + 2 <= i1:
            c0 = C[i, j0:j1]
            c1 = C[i + 1, j0:j1]
            k = k0
            while k + 4 <= k1:
                a00 = _a(A, a_trans, i, k)
                a01 = _a(A, a_trans, i, k + 1)
                a02 = _a(A, a_trans, i, k + 2)
                a03 = _a(A, a_trans, i, k + 3)
                a10 = _a(A, a_trans, i + 1, k)
                a11 = _a(A, a_trans, i + 1, k + 1)
                a12 = _a(A, a_trans, i + 1, k + 2)
                a13 = _a(A, a_trans, i + 1, k + 3)
                b0 = B[k, j0:j1]
                b1 = B[k + 1, j0:j1]
                b2 = B[k + 2, j0:j1]
                b3 = B[k + 3, j0:j1]
                for j in range(w):
                    y0 = b0[j]
                    y1 = b1[j]
                    y2 = b2[j]
                    y3 = b3[j]
                    c0[j] += a00 * y0 + a01 * y1 + a02 * y2 + a03 * y3
                    c1[j] += a10 * y0 + a11 * y1 + a12 * y2 + a13 * y3
                k += 4
            while k < k1:
                a00 = _a(A, a_trans, i, k)
                a10 = _a(A, a_trans, i + 1, k)
                b0 = B[k, j0:j1]
                for j in range(w):
                    c0[j] += a00 * b0[j]
                    c1[j] += a10 * b0[j]
                k += 1
            i += 2
        if i < i1:
            c0 = C[i, j0:j1]
            k = k0
            while k + 4 <= k1:
                a00 = _a(A, a_trans, i, k)
                a01 = _a(A, a_trans, i, k + 1)
                a02 = _a(A, a_trans, i, k + 2)
                a03 = _a(A, a_trans, i, k + 3)
                b0 = B[k, j0:j1]
                b1 = B[k + 1, j0:j1]
                b2 = B[k + 2, j0:j1]
                b3 = B[k + 3, j0:j1]
                for j in range(w):
                    c0[j] += a00 * b0[j] + a01 * b1[j] + a02 * b2[j] + a03 * b3[j]
                k += 4
            while k < k1:
                a00 = _a(A, a_trans, i, k)
                b0 = B[k, j0:j1]
                for j in range(w):
                    c0[j] += a00 * b0[j]
                k += 1


@helper
def _colsum_tile(dY, db, accumulate, j0, j1):
    """``db[j0:j1] (+)= sum over n of dY[n, j0:j1]``, rows in order, columns vectorized."""
    d = db[j0:j1]
    w = j1 - j0
    if not accumulate:
        zero = db.dtype.type(0)
        for j in range(w):
            d[j] = zero
    for n in range(dY.shape[0]):
        row = dY[n, j0:j1]
        for j in range(w):
            d[j] += row[j]


@helper
def _transpose_rows(src, dst, r0, r1, accumulate):
    """``dst[:, r0:r1] (+)= src[r0:r1].T``, with plain 2-D indexing (a slice
    per column cost ~1 us on a 50x10 W, measured).

    Source rows are read contiguously, one row at a time, while the lines of
    ``dst`` being filled stay in L1; except when ``dst``'s row stride is a
    multiple of 512 bytes and it has more than 64 rows (more lines than the
    L1 ways left to them): all its rows then map to a few L1 sets (at
    1024 x 1024 float64 a column of ``dst`` is one set), so blocks of
    ``ALIASED_TRANSPOSE_ROWS`` source rows are written a short contiguous run
    of ``dst`` at a time (measured, serial: 512 x 512 float64 2.3 ms -> 0.33 ms
    with blocks of 4; 784 x 100 stays row by row, 47 us against 91 us blocked).
    """
    n = src.shape[1]
    aliased = (dst.shape[1] * dst.itemsize) % 512 == 0 and n > 64
    step = ALIASED_TRANSPOSE_ROWS if aliased else 1
    for q0 in range(r0, r1, step):
        q1 = min(r1, q0 + step)
        if aliased and accumulate:
            for s in range(n):
                for r in range(q0, q1):
                    dst[s, r] += src[r, s]
        elif aliased:
            for s in range(n):
                for r in range(q0, q1):
                    dst[s, r] = src[r, s]
        # row by row, written out: the blocked loops with a step of 1 in
        # their place ran 3-4x slower (784 x 100: 64 -> 226 us, measured)
        elif accumulate:
            for s in range(n):
                dst[s, q0] += src[q0, s]
        else:
            for s in range(n):
                dst[s, q0] = src[q0, s]


@helper
def _no_bias(C):
    """An empty bias of C's dtype (the products without a bias take one)."""
    return C.reshape(C.size)[:0]


@helper
def _tiling(M, P, row_max, row_align, col_max, col_align):
    """Tile sizes for an (M, P) output: at most ``row_max`` x ``col_max``,
    multiples of the register block, and (when the output is big enough) at
    least ``MIN_TILES`` tiles of near-equal size so that every thread gets
    the same share. Depends on the shape only, never on the thread count.

    Returns ``(row_tile, col_tile, n_row_tiles, n_tiles)``.
    """
    n_ct = _cdiv(P, col_max)
    n_rt = max(_cdiv(M, row_max), min(_cdiv(MIN_TILES, n_ct), _cdiv(M, 4 * row_align)))
    if n_rt * n_ct < MIN_TILES:
        n_ct = max(n_ct, min(_cdiv(MIN_TILES, n_rt), _cdiv(P, 8 * col_align)))
    row_tile = max(row_align, _cdiv(_cdiv(M, max(n_rt, 1)), row_align) * row_align)
    col_tile = max(col_align, _cdiv(_cdiv(P, max(n_ct, 1)), col_align) * col_align)
    n_rt = _cdiv(M, row_tile)
    return row_tile, col_tile, n_rt, n_rt * _cdiv(P, col_tile)


@helper
def _form_tiling(M, P, K, short_h):
    """:func:`_tiling` for the form a product uses: axpy (``short_h``, 2-row
    blocks, vectors of 8) or dot (4x3 register blocks). A product of less
    than ``ONE_TILE_WORK`` multiply-adds is one tile: its operands fit in
    L2, and cutting it only adds loop overhead (such products run serially)."""
    if M * P * K < ONE_TILE_WORK:
        return max(M, 1), max(P, 1), 1, (1 if M * P > 0 else 0)
    if short_h:
        return _tiling(M, P, AB_ROW_TILE, 2, AB_COL_TILE, 8)
    return _tiling(M, P, ABT_ROW_TILE, 4, ABT_COL_TILE, 3)


@helper
def _dwt_tiling(H, D, N):
    """Tiles of dW.T (H x D, short H) for the axpy form over the N rows of x.

    Every tile holds all H rows, so each row of x is read once, a run of up
    to ``AB_COL_TILE`` columns at a time. :func:`_tiling` would also cut the
    rows (to get ``MIN_TILES`` tiles) and read x once per row tile; at
    2048 x 512 x 10 float64 its 6 x 128 tiles (x read twice, in 1 KB pieces
    of 4 KB rows) measured 4.3-4.6 ms for the full backward kernel against
    2.1-3.0 ms with this tiling (2 threads, interleaved in one process).
    The price: dW has only ``ceil(D / AB_COL_TILE)`` tiles (one up to D = 1024),
    so on many cores it is not spread further; the dx tiles, as much work,
    run beside it (:func:`_backward` schedules the dW tiles first).
    Returns ``(row_tile, col_tile, n_row_tiles, n_tiles)`` as :func:`_tiling`.
    """
    if H * D * N < ONE_TILE_WORK:
        return _form_tiling(H, D, N, True)  # one tile
    n = _cdiv(D, AB_COL_TILE)
    col_tile = _cdiv(_cdiv(D, n), 8) * 8
    return H, col_tile, 1, _cdiv(D, col_tile)


@helper
def _tile(t, n_row_tiles, row_tile, M, col_tile, P, rows_fastest):
    """Bounds of output tile ``t``. With ``rows_fastest`` (axpy form)
    consecutive tiles share the same columns of the right-hand operand;
    otherwise (dot form) they share the same rows of the left-hand one."""
    if rows_fastest:
        ti = t % n_row_tiles
        tj = t // n_row_tiles
    else:
        n_col_tiles = _cdiv(P, col_tile)
        tj = t % n_col_tiles
        ti = t // n_col_tiles
    i0 = ti * row_tile
    j0 = tj * col_tile
    return i0, min(M, i0 + row_tile), j0, min(P, j0 + col_tile)


#: Flags of :func:`_backward` (one integer argument: each argument of a
#: kernel call costs dispatch time).
WANT_DX = 1
WANT_DW = 2
WANT_DB = 4
ACCUMULATE = 8
SHORT_H = 16


def _forward(x, W, b, y, scratch):
    """Forward pass ``y = x . W + b``.

    Parameters
    ----------
    x : (N, D) C-contiguous
    W : (D, H) C-contiguous
    b : (H,) bias, or a (0,) array for no bias
    y : (N, H) output, overwritten
    scratch : 1-D array of x's dtype
        Room for the packed W.T (:func:`forward_scratch_size` elements),
        overwritten; when it is shorter the kernel allocates its own.
        ``api`` passes one buffer per thread to the parallel kernel, as for
        :func:`_backward`: an 8 MB W.T (1024 x 1024 float64) allocated per
        call took ~2000 page faults per call.

    Notes
    -----
    Two parallel loops. First W.T is packed into a scratch buffer (blocks
    of ``TRANSPOSE_ROWS`` rows of W; on the calling thread when W has fewer
    than ``PARALLEL_TRANSPOSE`` elements), so that every output is a dot product
    of two contiguous rows; then the dot form runs over tiles of y, the bias
    added as each tile is finished. W is packed afresh on every call (the
    buffer may be reused, its contents never are): an optimizer may update
    W in place between calls.
    """
    N, D = x.shape
    H = W.shape[1]
    Dp = packed_row_length(D, x.itemsize)
    Wt = _room(scratch, H * Dp)[: H * Dp].reshape((H, Dp))
    if D * H < PARALLEL_TRANSPOSE:
        _transpose_rows(W, Wt, 0, D, False)
    else:
        for t in prange(_cdiv(D, TRANSPOSE_ROWS)):
            r0 = t * TRANSPOSE_ROWS
            _transpose_rows(W, Wt, r0, min(D, r0 + TRANSPOSE_ROWS), False)
    rt, ct, n_rt, n_tiles = _form_tiling(N, H, D, False)
    add_bias = b.shape[0] > 0
    for t in prange(n_tiles):
        i0, i1, j0, j1 = _tile(t, n_rt, rt, N, ct, H, False)
        _abt_tile(x, Wt, y, b, add_bias, False, i0, i1, j0, j1)


@helper
def _packed_length(n, itemsize, unit_bytes):
    """Length, in elements, of a packed row holding ``n`` elements: rounded up
    to whole units of ``unit_bytes``, plus one cache line when that makes a
    multiple of 512 bytes.

    Rows of a packed copy that long map to a few L1 sets only (a 4 KB row:
    all to one): the dot form's rows then compete for the same 8 ways, and
    a transpose writing a column of them has to block
    (:func:`_transpose_rows`). Packing a 1024 x 1024 W.T as the forward
    does (2 threads, median of 9): float64 1.91 -> 0.82 ms, float32
    1.65 -> 0.59 ms with one line more; the product on it did not change
    measurably.
    """
    lanes = unit_bytes // itemsize
    m = _cdiv(n, lanes) * lanes
    return m + LINE_BYTES // itemsize if m > 0 and (m * itemsize) % 512 == 0 else m


@helper
def packed_row_length(n, itemsize):
    """Row length of the forward's packed W.T for rows of ``n`` elements:
    rows start on a cache line (:func:`_packed_length`). Only the first
    ``n`` elements of a row are written or read."""
    return _packed_length(n, itemsize, LINE_BYTES)


@helper
def forward_scratch_size(D, H, itemsize):
    """Elements of scratch :func:`_forward` needs: W.T with padded rows."""
    return H * packed_row_length(D, itemsize)


@helper
def _room(scratch, need):
    """The caller's scratch when it holds ``need`` elements, else a new
    buffer of that size (the kernels' rule for their packing space)."""
    return scratch if scratch.shape[0] >= need else np.empty(need, scratch.dtype)


@helper
def _padded(n, itemsize):
    """``n`` rounded up to whole ``LOOP_VECTOR_BYTES`` vectors (:func:`_packed_length`;
    the padding is zeros, summed with the rest)."""
    return _packed_length(n, itemsize, LOOP_VECTOR_BYTES)


@helper
def _scratch_shapes(N, D, H, flags, itemsize):
    """Shapes of the packed copies :func:`_backward` makes for these flags:
    W.T (short-H dx), x.T and dout.T with the batch padded by
    :func:`_padded` (dot-form dW), dW.T (short-H dW); (0, 0) when unused."""
    want_dx = (flags & WANT_DX) != 0
    want_dw = (flags & WANT_DW) != 0
    short_h = (flags & SHORT_H) != 0
    n_pad = _padded(N, itemsize)
    unused = (0, 0)
    return (
        (H, D) if want_dx and short_h else unused,
        (D, n_pad) if want_dw and not short_h else unused,
        (H, n_pad) if want_dw and not short_h else unused,
        (H, D) if want_dw and short_h else unused,
    )


@helper
def _backward_sizes(dout, x, W, flags):
    """``(N, D, H)`` of a backward call: D from W when dx is wanted, else
    from x (the partial calls pass stand-ins for the operands they skip)."""
    N, H = dout.shape
    D = W.shape[0] if flags & WANT_DX else x.shape[1]
    return N, D, H


@helper
def _scratch_offsets(shapes):
    """Where each packed copy of :func:`_scratch_shapes` ends in the one
    scratch buffer, in elements; the last offset is the size needed."""
    o1 = shapes[0][0] * shapes[0][1]
    o2 = o1 + shapes[1][0] * shapes[1][1]
    o3 = o2 + shapes[2][0] * shapes[2][1]
    return o1, o2, o3, o3 + shapes[3][0] * shapes[3][1]


@helper
def backward_scratch_size(dout, x, W, flags):
    """Elements of scratch :func:`_backward` needs for this call."""
    N, D, H = _backward_sizes(dout, x, W, flags)
    return _scratch_offsets(_scratch_shapes(N, D, H, flags, dout.itemsize))[3]


@helper
def _zero_columns(a, c0):
    """``a[:, c0:] = 0`` (the padding of a packed copy)."""
    zero = a.dtype.type(0)
    for r in range(a.shape[0]):
        for c in range(c0, a.shape[1]):
            a[r, c] = zero


def _backward(dout, x, W, dx, dW, db, flags, scratch):
    """The backward pass in one call: ``dx = dout . W.T``, ``dW (+)= x.T . dout``,
    ``db (+)= dout.sum(axis=0)``; each part runs only when its flag is set.

    Parameters
    ----------
    dout : (N, H) C-contiguous
    x : (N, D) C-contiguous (read only for dW)
    W : (D, H) C-contiguous (read only for dx)
    dx, dW, db : (N, D), (D, H), (H,) outputs
    flags : int
        ``WANT_DX | WANT_DW | WANT_DB`` select the parts; ``ACCUMULATE`` adds
        into dW and db; ``SHORT_H`` selects the short-H forms below.
    scratch : 1-D array of dout's dtype
        Room for the packed copies (:func:`backward_scratch_size` elements);
        its contents are overwritten. When it is shorter, the kernel allocates
        its own. ``api`` reuses one buffer per thread for large calls: fresh
        pages cost a page fault each (1024^3 float64: 16 MB of packed
        x.T and dout.T, 4064 faults per call; see ``api.SCRATCH_KEEP_BYTES``).

    Notes
    -----
    dx, dot form: rows of dout and rows of W are both contiguous over the
    summed H, so nothing is packed. With ``SHORT_H`` those dot products are
    too short to vectorize: W.T is packed and rows of dx are built by the
    axpy form instead.

    dW: the sum runs over the batch, the row axis of both operands; x.T and
    dout.T are packed (the batch padded with zeros to whole vectors,
    :data:`LOOP_VECTOR_BYTES`) and dW is built by the dot form. With ``SHORT_H`` the
    dot form's blocks do not fill and packing x would cost more than the
    product: ``dWt[h, :] += dout[n, h] * x[n, :]`` (axpy form, no packing)
    is built in a small buffer and transposed into dW.

    db: tiles of columns, each column summed over the batch in row order.

    Parallel loops: (1) packing, over blocks of ``TRANSPOSE_ROWS`` source
    rows (on the calling thread when all the packed copies together have
    fewer than ``PARALLEL_TRANSPOSE`` elements); (2) one loop
    over the tiles of dW, dx and db together, so all three products share
    one parallel region and balance across threads (``api`` schedules
    tiles dynamically, one at a time, in order: a thread's consecutive
    tiles share rows of the left operand; a stride through the tiles that
    mixed dx and dW tiles cost 25 % at 1024^3, measured). dW comes first:
    with ``SHORT_H`` its tiles are few and long (all H rows each), and the
    shorter dx tiles then fill in around them;
    (3) with ``SHORT_H``, the transpose of dWt into dW (on the calling
    thread below ``PARALLEL_TRANSPOSE`` elements). Each
    output element is computed by one thread; never split over the batch.
    """
    N, D, H = _backward_sizes(dout, x, W, flags)
    want_dx = (flags & WANT_DX) != 0
    want_dw = (flags & WANT_DW) != 0
    accumulate = (flags & ACCUMULATE) != 0
    short_h = (flags & SHORT_H) != 0
    nob = _no_bias(dout)
    shapes = _scratch_shapes(N, D, H, flags, dout.itemsize)
    shape_wt, shape_xt, shape_dt, shape_dwt = shapes
    o1, o2, o3, need = _scratch_offsets(shapes)
    buf = _room(scratch, need)
    Wt = buf[:o1].reshape(shape_wt)
    xt = buf[o1:o2].reshape(shape_xt)
    doutt = buf[o2:o3].reshape(shape_dt)
    dWt = buf[o3:need].reshape(shape_dwt)
    _zero_columns(xt, N)
    _zero_columns(doutt, N)

    pack_here = Wt.size + xt.size + doutt.size < PARALLEL_TRANSPOSE  # small: on this thread
    if pack_here:
        _transpose_rows(W, Wt, 0, Wt.shape[1], False)
        _transpose_rows(x, xt, 0, N if xt.size else 0, False)
        _transpose_rows(dout, doutt, 0, N if doutt.size else 0, False)
    n_pack_w = _cdiv(D, TRANSPOSE_ROWS) if Wt.shape[0] > 0 and not pack_here else 0
    n_pack_x = _cdiv(N, TRANSPOSE_ROWS) if xt.shape[0] > 0 and not pack_here else 0
    for t in prange(n_pack_w + n_pack_x):
        if t < n_pack_w:
            r0 = t * TRANSPOSE_ROWS
            _transpose_rows(W, Wt, r0, min(D, r0 + TRANSPOSE_ROWS), False)
        else:
            r0 = (t - n_pack_w) * TRANSPOSE_ROWS
            r1 = min(N, r0 + TRANSPOSE_ROWS)
            _transpose_rows(x, xt, r0, r1, False)
            _transpose_rows(dout, doutt, r0, r1, False)

    # tiles of each output; a form's tiling depends on its register block
    n_dx = n_dw = 0
    dx_rt = dx_ct = dx_nrt = dw_rt = dw_ct = dw_nrt = 1
    # dW is built transposed (H x D) in the short-H form
    dw_m, dw_p = (H, D) if short_h else (D, H)
    if want_dx:
        dx_rt, dx_ct, dx_nrt, n_dx = _form_tiling(N, D, H, short_h)
    if want_dw and short_h:
        dw_rt, dw_ct, dw_nrt, n_dw = _dwt_tiling(H, D, N)
    elif want_dw:
        dw_rt, dw_ct, dw_nrt, n_dw = _form_tiling(D, H, N, False)
    n_db = _cdiv(H, DB_COL_TILE) if flags & WANT_DB else 0
    n_all = n_dx + n_dw + n_db
    for t in prange(n_all):  # dW tiles, then dx tiles, then db tiles
        if t >= n_dw + n_dx:
            j0 = (t - n_dw - n_dx) * DB_COL_TILE
            _colsum_tile(dout, db, accumulate, j0, min(H, j0 + DB_COL_TILE))
            continue
        if t < n_dw:
            i0, i1, j0, j1 = _tile(t, dw_nrt, dw_rt, dw_m, dw_ct, dw_p, short_h)
            if short_h:  # dWt = dout.T . x
                A = dout
                B = x
                C = dWt
                a_trans = True
                acc = False
            else:  # dW (+)= x.T . dout, both packed
                A = xt
                B = doutt
                C = dW
                a_trans = False
                acc = accumulate
        else:  # dx = dout . W.T
            A = dout
            B = Wt if short_h else W
            C = dx
            a_trans = False
            acc = False
            i0, i1, j0, j1 = _tile(t - n_dw, dx_nrt, dx_rt, N, dx_ct, D, short_h)
        if short_h:
            _ab_tile(A, a_trans, B, C, acc, i0, i1, j0, j1)
        else:
            _abt_tile(A, B, C, nob, False, acc, i0, i1, j0, j1)

    if dWt.size < PARALLEL_TRANSPOSE:
        _transpose_rows(dWt, dW, 0, dWt.shape[0], accumulate)
    else:
        for t in prange(_cdiv(H, TRANSPOSE_ROWS)):
            r0 = t * TRANSPOSE_ROWS
            _transpose_rows(dWt, dW, r0, min(H, r0 + TRANSPOSE_ROWS), accumulate)


# ---------------------------------------------------------------- panel form
#
# The outer-product register block of OpenBLAS and BLIS, on packed panels
# of B, with the vectors of numba_affine._simd. api runs it for parallel
# forward passes and parallel backward passes (api's SHORT_H and
# PANEL_BACKWARD_MIN_H_F64 say where it was measured faster than the dot
# form, and where not).

#: Rows of the panel form's register block; its columns are two vectors
#: (32 float32 / 16 float64 with AVX-512, else 16 / 8): 6 x 2 = 12 vector
#: accumulators, 2 vector loads and 6 broadcasts per step of k.
PANEL_ROWS = 6
#: Rows of A^T per task of :func:`_pack_transposed` (one parallel iteration).
TRANSPOSED_ROWS = 64
#: Rows of A per run of :func:`_pack_transposed`: a run reads a block of
#: this many rows x ``TRANSPOSED_ROWS`` columns of A (16 KB of float64),
#: which stays in L1 while it is written out as rows of A^T.
TRANSPOSED_RUN = 32


@helper
def panel_width(itemsize):
    """Columns of one packed panel: two vectors of ``itemsize``-byte elements."""
    return 2 * (VECTOR_BYTES // itemsize)


@helper
def panels_size(K, P, itemsize):
    """Elements of the packed panels of a K x P right-hand operand (the
    scratch :func:`_forward_direct` needs for W, K = D and P = H)."""
    nr = panel_width(itemsize)
    return _cdiv(P, nr) * nr * K


@helper
def _pack_panel(B, Bp, p):
    """Pack panel ``p`` of B (K x P, C-contiguous) into ``Bp``: its columns
    ``p * nr ...`` for every k, k-major (``Bp[p*K*nr + k*nr + jj]``), zeros
    past P. Full panels are two vector copies per row of B."""
    K, P = B.shape
    nr = panel_width(Bp.itemsize)
    L = nr // 2
    j0 = p * nr
    base = p * K * nr
    w = min(nr, P - j0)
    Bf = B.reshape(K * P)
    if w == nr:
        for k in range(K):
            vstore(Bp, base + k * nr, vload(Bf, k * P + j0))
            vstore(Bp, base + k * nr + L, vload(Bf, k * P + j0 + L))
        return
    zero = Bp.dtype.type(0)
    for k in range(K):
        for jj in range(w):
            Bp[base + k * nr + jj] = B[k, j0 + jj]
        for jj in range(w, nr):
            Bp[base + k * nr + jj] = zero


@helper
def _pack_panel_t(B, Bp, p):
    """Pack panel ``p`` of B.T into ``Bp`` as :func:`_pack_panel` packs B's
    (B is P x K here: the panel's columns of B.T are rows ``p * nr ...`` of
    B). Full panels move in square blocks of one vector's lanes
    (:func:`~numba_affine._simd.vtranspose`: one vector load, shuffles
    and one vector store per lane); the last steps of k (K not a multiple of the
    lanes) and a narrow last panel are copied element by element."""
    P, K = B.shape
    nr = panel_width(Bp.itemsize)
    L = nr // 2
    j0 = p * nr
    base = p * K * nr
    w = min(nr, P - j0)
    Bf = B.reshape(P * K)
    kv = (K // L) * L if w == nr else 0
    for k in range(0, kv, L):
        vtranspose(Bf, j0 * K + k, K, Bp, base + k * nr, nr)
        vtranspose(Bf, (j0 + L) * K + k, K, Bp, base + k * nr + L, nr)
    zero = Bp.dtype.type(0)
    for k in range(kv, K):
        for jj in range(w):
            Bp[base + k * nr + jj] = B[j0 + jj, k]
        for jj in range(w, nr):
            Bp[base + k * nr + jj] = zero


@helper
def _pack_transposed(A, At, d0, d1):
    """``At[d0:d1, :] = A[:, d0:d1].T`` (A is N x D, At is D x N, both
    C-contiguous): square blocks of one vector's lanes
    (:func:`~numba_affine._simd.vtranspose`), ``TRANSPOSED_RUN`` rows of A
    at a time; the remainders element by element."""
    N, D = A.shape
    L = VECTOR_BYTES // A.itemsize
    Af = A.reshape(N * D)
    Atf = At.reshape(D * N)
    nv = (N // L) * L
    dv = d0 + ((d1 - d0) // L) * L
    for n0 in range(0, nv, TRANSPOSED_RUN):
        n1 = min(nv, n0 + TRANSPOSED_RUN)
        for d in range(d0, dv, L):
            for n in range(n0, n1, L):
                vtranspose(Af, n * D + d, D, Atf, d * N + n, N)
    for d in range(dv, d1):
        for n in range(nv):
            At[d, n] = A[n, d]
    for d in range(d0, d1):
        for n in range(nv, N):
            At[d, n] = A[n, d]


@helper(inline=True)
def _zero_sums(C):
    """Twelve vectors of zeros of C's dtype: the sums of a register block."""
    z = vzeros(C)
    return z, z, z, z, z, z, z, z, z, z, z, z


@helper(inline=True)
def _row_offsets(a0, a_rs, first, last):
    """Where rows ``first ... first + 5`` of a register block start in A
    (row 0 at ``a0``, ``a_rs`` apart); rows past ``last`` re-read row
    ``last`` (never past A's end; their sums are not stored)."""
    return (
        a0 + min(first, last) * a_rs,
        a0 + min(first + 1, last) * a_rs,
        a0 + min(first + 2, last) * a_rs,
        a0 + min(first + 3, last) * a_rs,
        a0 + min(first + 4, last) * a_rs,
        a0 + min(first + 5, last) * a_rs,
    )


@helper
def _panel_block(kc, A, a0, a_ks, a_rs, rows, Bp, b0, ldb, C, c0, ldc, overwrite, bias, j0):
    """The register block: 6 rows x 2 vectors of C at flat offset ``c0``
    (row stride ``ldc``) ``(+)= A block . B block`` over ``kc`` steps.

    Row ``r`` of the A block at step ``k`` is ``A[a0 + r * a_rs + k * a_ks]``
    (rows of x read in place: ``a_ks = 1``, ``a_rs = D``); rows past
    ``rows`` re-read the last row (never past A's end; their sums are not
    stored by the callers). B's two vectors at step ``k`` start at
    ``Bp[b0 + k * ldb]``. :func:`_direct_tile` passes ``rows`` as a
    variable (see there); LLVM inlines the block into the call and the k
    loop is unrolled x2, 24 FMAs, no spills (checked with ``inspect_asm``).

    With ``overwrite`` C becomes the sum plus ``bias[j0:j0+2 vectors]``,
    else the sum is added to C. The twelve sums stay in registers for the
    whole k loop; C is touched once, after it (its lines are prefetched
    before it, so the loads after a long k loop do not wait on L3).
    """
    nr = panel_width(C.itemsize)
    L = nr // 2
    for r in range(PANEL_ROWS):
        prefetch_for_write(C, c0 + r * ldc)
        prefetch_for_write(C, c0 + r * ldc + nr - 1)
    c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51 = _zero_sums(C)
    a0, a1, a2, a3, a4, a5 = _row_offsets(a0, a_rs, 0, rows - 1)
    for k in range(kc):
        b = b0 + k * ldb
        v0 = vload(Bp, b)
        v1 = vload(Bp, b + L)
        o = k * a_ks
        s = vbroadcast(A, a0 + o)
        c00 = vfma(s, v0, c00)
        c01 = vfma(s, v1, c01)
        s = vbroadcast(A, a1 + o)
        c10 = vfma(s, v0, c10)
        c11 = vfma(s, v1, c11)
        s = vbroadcast(A, a2 + o)
        c20 = vfma(s, v0, c20)
        c21 = vfma(s, v1, c21)
        s = vbroadcast(A, a3 + o)
        c30 = vfma(s, v0, c30)
        c31 = vfma(s, v1, c31)
        s = vbroadcast(A, a4 + o)
        c40 = vfma(s, v0, c40)
        c41 = vfma(s, v1, c41)
        s = vbroadcast(A, a5 + o)
        c50 = vfma(s, v0, c50)
        c51 = vfma(s, v1, c51)
    _panel_store(C, c0, L, overwrite, bias, j0, c00, c01)
    _panel_store(C, c0 + ldc, L, overwrite, bias, j0, c10, c11)
    _panel_store(C, c0 + 2 * ldc, L, overwrite, bias, j0, c20, c21)
    _panel_store(C, c0 + 3 * ldc, L, overwrite, bias, j0, c30, c31)
    _panel_store(C, c0 + 4 * ldc, L, overwrite, bias, j0, c40, c41)
    _panel_store(C, c0 + 5 * ldc, L, overwrite, bias, j0, c50, c51)


@helper(inline=True)
def _panel_store(C, o, L, overwrite, bias, j0, s0, s1):
    """One row of a register block: ``C[o : o + 2L] = s + bias`` or ``+= s``."""
    if overwrite:
        vstore(C, o, vadd(s0, vload(bias, j0)))
        vstore(C, o + L, vadd(s1, vload(bias, j0 + L)))
    else:
        vstore(C, o, vadd(s0, vload(C, o)))
        vstore(C, o + L, vadd(s1, vload(C, o + L)))


@helper
def _panel_edge(T, C, i, rows, j0, w, first, bias):
    """Copy an edge block's ``rows x w`` sums from the buffer ``T`` (rows of
    one panel's width) into ``C[i:, j0:]``: ``= T + bias`` when ``first``,
    else ``+= T``."""
    nr = panel_width(C.itemsize)
    for r in range(rows):
        for jj in range(w):
            if first:
                C[i + r, j0 + jj] = T[r * nr + jj] + bias[j0 + jj]
            else:
                C[i + r, j0 + jj] += T[r * nr + jj]


#: Rows per tile of the in-place panel forward (:func:`_forward_direct`): a
#: tile reads all of its rows of x for a k block (100 x 784 float32 is
#: 313 KB, in L2) against one panel of W. 100 x 784 x 100 float32 (2
#: threads): one tile per panel with all 100 rows 1.06-1.27x numpy, tiles
#: of 36 rows x 3 panels 1.08x, 18 rows x 4 panels 1.04-1.07x.
DIRECT_ROW_TILE = 128
#: Steps of k per block of the in-place form: whole rows of x up to this
#: many (100 x 784 float32 forward, 2 threads: k in one block of 784
#: measured 1.06-1.27x numpy against 1.02-1.07x in blocks of 392).
DIRECT_KC = 1024


@helper(inline=True)
def _direct_rows(af, K, a_ks, a_rs, Bp, C, bias, accumulate, i0, i1, p):
    """Rows ``i0:i1`` x panel ``p`` of ``C = A . B + bias`` (``C += A . B``
    with ``accumulate``): A read in place from the flat ``af``, its row
    ``i`` at step ``k`` at ``af[i * a_rs + k * a_ks]``, K steps; B in
    packed panels (``Bp``). Inlined into :func:`_direct_tile` and
    :func:`_direct_tile_t` at Numba's IR level, so that each one's strides
    are constants in its calls of the register block."""
    M, P = C.shape
    nr = panel_width(C.itemsize)
    Cf = C.reshape(M * P)
    T = np.empty(PANEL_ROWS * nr, C.dtype)
    zeros = np.zeros(nr, C.dtype)
    j0 = p * nr
    w = min(nr, P - j0)
    kc_max = _equal_blocks(K, DIRECT_KC)
    for k0 in range(0, max(K, 1), kc_max):  # K = 0: one block of 0 steps, C = bias
        kc = min(kc_max, K - k0)
        first = k0 == 0 and not accumulate
        b0 = p * K * nr + k0 * nr
        for i in range(i0, i1, PANEL_ROWS):
            rows = min(PANEL_ROWS, i1 - i)
            a0 = i * a_rs + k0 * a_ks
            if rows == PANEL_ROWS and w == nr:
                # `rows`, not the constant: with 6 rows known LLVM derives
                # the rows' addresses from one another and its schedule of
                # the unrolled loop spilled half the sums (inspect_asm: 49
                # stack accesses per 2 steps of k, 1.6x slower); this way
                # the rows are six independent streams (no spills)
                _panel_block(kc, af, a0, a_ks, a_rs, rows, Bp, b0, nr, Cf, i * P + j0, P, first, bias, j0)
                continue
            _panel_block(kc, af, a0, a_ks, a_rs, rows, Bp, b0, nr, T, 0, nr, True, zeros, 0)
            _panel_edge(T, C, i, rows, j0, w, first, bias)


@helper
def _direct_tile(x, Wp, y, bias, accumulate, i0, i1, p):
    """Rows ``i0:i1`` x panel ``p`` of ``y = x . W + b`` (``y += x . W`` with
    ``accumulate``) with x's rows read in place (no packed copy): the
    register block broadcasts ``x[i + r, k]`` straight from x (6 rows,
    stride D) and reads W's packed panel ``p``. The backward runs it too:
    dx on (dout, W.T's panels), dW on (x.T packed, dout's panels; or x's
    columns in place, :func:`_direct_tile_t`)."""
    N, D = x.shape
    _direct_rows(x.reshape(N * D), D, 1, D, Wp, y, bias, accumulate, i0, i1, p)


@helper
def _direct_tile_t(x, Bp, C, bias, accumulate, i0, i1, p):
    """Rows ``i0:i1`` x panel ``p`` of ``C (+)= x.T . B`` (x is N x D, C is
    D x H; ``bias`` as in :func:`_direct_tile`) with x's columns read in place:
    the block's six rows at step ``k`` are ``x[k, i:i+6]``, neighbours in
    one row of x."""
    N, D = x.shape
    _direct_rows(x.reshape(N * D), N, D, 1, Bp, C, bias, accumulate, i0, i1, p)


@helper
def _panel_split(P, itemsize):
    """``(n_panels, w)``: columns of a P-column output in whole panels plus
    ``w`` remainder columns for :func:`_remainder_tile` (0 < w <= half a
    panel), or all in panels with a zero-padded last one (``w = 0``). A
    narrow last panel computes a whole panel's FMAs for its few columns
    (2048 x 512 x 17 float32: 32 columns for 17, the forward at 60
    GFLOP/s against 104 at H = 16, measured); the dot form
    computes just them."""
    nr = panel_width(itemsize)
    w = P % nr
    if 0 < w <= nr // 2:
        return P // nr, w
    return _cdiv(P, nr), 0


@helper
def _pack_columns_t(B, j0, Bt):
    """``Bt[:, :] = B[:, j0 : j0 + w].T`` (w = Bt's rows): the remainder
    columns of B as rows, for the dot form. B is read row by row."""
    w = Bt.shape[0]
    for k in range(B.shape[0]):
        for jj in range(w):
            Bt[jj, k] = B[k, j0 + jj]


@helper
def _remainder_tile(A, Bt, C, bias, accumulate, i0, i1, j0, Cr):
    """Rows ``i0:i1`` of the remainder columns ``j0:`` of ``C = A . B (+ bias)``
    (``C += A . B`` with ``accumulate``) in the dot form
    (:func:`_abt_tile`), on ``Bt`` (the columns as rows, w x K); the sums
    go through ``Cr`` (rows of C x w)."""
    w = Bt.shape[0]
    _abt_tile(A, Bt, Cr, _no_bias(Cr), False, False, i0, i1, 0, w)
    for i in range(i0, i1):
        for jj in range(w):
            if accumulate:
                C[i, j0 + jj] += Cr[i, jj]
            else:
                C[i, j0 + jj] = Cr[i, jj] + bias[j0 + jj]


@helper
def _column_tile(A, Bp, Br, C, bias, accumulate, i0, i1, p, n_pan, Cr):
    """Rows ``i0:i1`` x column tile ``p`` of ``C = A . B (+ bias)`` (``C += A . B``
    with ``accumulate``), A read in place: panel ``p`` of ``Bp``
    (:func:`_direct_tile`) while ``p < n_pan``, else the remainder columns
    ``Br`` (:func:`_remainder_tile`, sums through ``Cr``)."""
    if p < n_pan:
        _direct_tile(A, Bp, C, bias, accumulate, i0, i1, p)
    else:
        _remainder_tile(A, Br, C, bias, accumulate, i0, i1, n_pan * panel_width(C.itemsize), Cr)


@helper
def _equal_blocks(n, most):
    """Size of ``n`` cut into the fewest equal blocks of at most ``most``
    (1 for n = 0)."""
    return max(1, _cdiv(n, max(1, _cdiv(n, most))))


@helper
def _row_tile(M, most):
    """Rows per tile: M cut into equal tiles of at most ``most`` rows, each a
    multiple of ``PANEL_ROWS``."""
    n_rt = _cdiv(M, most)
    return max(PANEL_ROWS, _cdiv(_cdiv(M, max(n_rt, 1)), PANEL_ROWS) * PANEL_ROWS)


@helper
def _padded_bias(b, P, itemsize):
    """``b`` (or zeros when it is empty) padded with zeros to whole panels."""
    nr = panel_width(itemsize)
    out = np.zeros(_cdiv(P, nr) * nr, b.dtype)
    for j in range(b.shape[0]):
        out[j] = b[j]
    return out


@helper
def _panel_tile_bounds(t, n_ct, M, row_tile):
    """Rows ``i0:i1`` and column tile ``p`` (a panel, or the remainder
    columns after the last one) of tile ``t`` of an output with ``n_ct``
    column tiles; consecutive tiles share rows of A."""
    ti = t // n_ct
    i0 = ti * row_tile
    return i0, min(M, i0 + row_tile), t - ti * n_ct


@helper
def _pack_column_tile(W, Wp, Wr, p, n_pan):
    """Pack what column tile ``p`` of the forward reads: W's panel ``p``,
    or the remainder columns as rows after the last panel."""
    if p < n_pan:
        _pack_panel(W, Wp, p)
    else:
        _pack_columns_t(W, n_pan * panel_width(Wp.itemsize), Wr)


def _forward_direct(x, W, b, y, scratch):
    """Forward pass ``y = x . W + b`` in the panel form, x read in place.

    Parameters are as :func:`_forward`; ``scratch`` has room for the packed
    panels of W (:func:`panels_size` ``(D, H)`` elements) or is replaced by
    a new buffer.

    Notes
    -----
    The backward's panel form packs a tile's rows of its left operand for
    every k block; for a forward of few rows a tile serves few panels and
    that packing cost as much as the products (100 x 784 x 100: 1.6x slower
    than the dot form). Here the register block broadcasts x's elements
    where they are (:func:`_direct_tile`); only W is packed, as a straight
    vector copy. With many rows it also beat packing x (the bench's
    method, 11 rounds, speed-up over numpy, in place / packed, float32:
    1024^3 1.01 / 0.92 and 1.00 / 0.97, 512^3 1.07 / 1.03, 2048x300x256
    1.13 / 1.13, 257x784x300 0.97 / 0.79), so the forward has no packed-x
    variant. Two parallel loops: W's panels, then tiles of up to
    ``DIRECT_ROW_TILE`` rows x one panel; when one tile covers all rows,
    each tile packs its own panel and the first loop is empty (one thread
    wake-up less: 100x784x100 forward, same process, interleaved, median of
    15 / 21 rounds, 1.08x / 1.24x faster in float64, 1.15x / 1.02x in
    float32; 128x256x64 float32 unchanged). Each element of y is summed by
    one thread in a fixed order: bitwise identical for any thread count.
    """
    N, D = x.shape
    H = W.shape[1]
    nr = panel_width(x.itemsize)
    n_pan, w = _panel_split(H, x.itemsize)
    Wp = _room(scratch, n_pan * nr * D)
    Wr = np.empty((w, D), x.dtype)  # remainder columns of W, as rows
    yr = np.empty((N if w else 0, w), x.dtype)
    bias = _padded_bias(b, H, x.itemsize)
    row_tile = _row_tile(N, DIRECT_ROW_TILE)
    n_ct = n_pan + (w > 0)  # column tiles: panels, then the remainder
    one_row = row_tile >= N  # one row of tiles: each panel serves one tile
    for p in prange(0 if one_row else n_ct):
        _pack_column_tile(W, Wp, Wr, p, n_pan)
    for t in prange(_cdiv(N, row_tile) * n_ct):
        i0, i1, p = _panel_tile_bounds(t, n_ct, N, row_tile)
        if one_row:
            _pack_column_tile(W, Wp, Wr, p, n_pan)
        _column_tile(x, Wp, Wr, y, bias, False, i0, i1, p, n_pan, yr)


#: Batches of at most this many rows: the panel backward's dW reads x's
#: columns in place (:func:`_direct_tile_t`: the block's six
#: rows are six neighbouring elements of one row of x, one row of x per step
#: of the sum) and its last panel is zero-padded, instead of packing x.T
#: (:func:`_pack_transposed`) and the dot form's remainder columns. Whole
#: backward, packed / in place time (same process, interleaved, median of
#: 15): 100x784x100 1.05 (float64) 1.06 (float32), 64x512x100 1.08 / 1.02,
#: 128x1024x256 float64 1.10, 512x512x64 float32 1.04; but 200x784x300
#: float32 0.92, 256x1024x256 float32 0.93, 1024^3 dW alone 0.45 (float64)
#: 0.58 (float32): long columns of x read with a stride of a row
#: (a page per step at D = 1024 float64) lose to the packed copy.
DW_IN_PLACE_MAX_N = 128


@helper
def backward_panels_size(dout, x, W, flags):
    """Elements of scratch :func:`_backward_panels` needs: W.T in panels
    (dx), dout in panels and x.T (dW)."""
    N, D, H = _backward_sizes(dout, x, W, flags)
    n_wt, n_dp, n_xt = _backward_panel_sizes(N, D, H, flags, dout.itemsize)
    return n_wt + n_dp + n_xt


@helper
def _backward_panel_sizes(N, D, H, flags, itemsize):
    """Elements of W.T in panels (dx: K = H, D columns), of dout in panels
    (dW: K = N, H columns) and of x.T (dW: D x N); 0 for a part not wanted."""
    n_wt = panels_size(H, D, itemsize) if flags & WANT_DX else 0
    n_dp = panels_size(N, H, itemsize) if flags & WANT_DW else 0
    n_xt = D * N if flags & WANT_DW and N > DW_IN_PLACE_MAX_N else 0
    return n_wt, n_dp, n_xt


def _backward_panels(dout, x, W, dx, dW, db, flags, scratch):
    """The backward pass of :func:`_backward` (same arguments, no ``SHORT_H``)
    with dx and dW in the panel form, the left operand read in place.

    Notes
    -----
    ``dx = dout . W.T`` is the forward's product (:func:`_direct_tile`) on
    dout's rows, read in place, and W.T packed into panels
    (:func:`_pack_panel_t`). ``dW (+)= x.T . dout`` is the same product on
    x.T, packed whole into scratch (:func:`_pack_transposed`), and dout's
    panels (a straight copy of its rows); for a batch of at most
    ``DW_IN_PLACE_MAX_N`` rows it reads x's columns in place instead
    (no x.T). Both packings move square blocks
    of vectors; an earlier form packed x's columns for every tile, element
    by element, and measured 0.80-0.93x numpy's backward at 1024^3
    (README, Performance). One parallel loop packs, one runs the tiles of
    dW, then dx, then db. Each output element is summed by one thread, in a
    fixed order: bitwise identical for any thread count.
    """
    N, D, H = _backward_sizes(dout, x, W, flags)
    want_dx = (flags & WANT_DX) != 0
    want_dw = (flags & WANT_DW) != 0
    accumulate = (flags & ACCUMULATE) != 0
    itemsize = dout.itemsize
    nr = panel_width(itemsize)
    n_pd, w_d = _panel_split(D, itemsize) if want_dx else (0, 0)
    in_place = N <= DW_IN_PLACE_MAX_N  # dW reads x's columns in place
    if not want_dw:
        n_ph, w_h = 0, 0
    elif in_place:  # no remainder columns: the last panel is padded
        n_ph, w_h = _cdiv(H, nr), 0
    else:
        n_ph, w_h = _panel_split(H, itemsize)
    n_tr = _cdiv(D, TRANSPOSED_ROWS) if want_dw and not in_place else 0  # tasks packing x.T
    n_wt, n_dp, n_xt = _backward_panel_sizes(N, D, H, flags, itemsize)
    buf = _room(scratch, n_wt + n_dp + n_xt)
    Wtp = buf[:n_wt]
    Dp = buf[n_wt : n_wt + n_dp]
    xT = buf[n_wt + n_dp : n_wt + n_dp + n_xt].reshape(D if n_xt else 0, N)
    # remainder columns (:func:`_panel_split`) as rows: of W.T (rows of W)
    # for dx, of dout for dW; and their sums
    Wr = np.empty((w_d, H), dout.dtype)
    Dr = np.empty((w_h, N), dout.dtype)
    dxr = np.empty((N if w_d else 0, w_d), dout.dtype)
    dwr = np.empty((D if w_h else 0, w_h), dout.dtype)
    n_pack = n_pd + n_ph + n_tr
    for t in prange(n_pack + (w_d + w_h > 0)):  # the last task packs the remainders
        if t < n_pd:
            _pack_panel_t(W, Wtp, t)
        elif t < n_pd + n_ph:
            _pack_panel(dout, Dp, t - n_pd)
        elif t < n_pack:
            d0 = (t - n_pd - n_ph) * TRANSPOSED_ROWS
            _pack_transposed(x, xT, d0, min(D, d0 + TRANSPOSED_ROWS))
        else:
            Wr[:, :] = W[n_pd * nr : n_pd * nr + w_d, :]  # W's rows are W.T's columns
            _pack_columns_t(dout, n_ph * nr, Dr)
    zeros = _padded_bias(_no_bias(dout), max(D, H), itemsize)
    dw_rt = _row_tile(D, DIRECT_ROW_TILE)
    dx_rt = _row_tile(N, DIRECT_ROW_TILE)
    dw_ct = n_ph + (w_h > 0)  # column tiles: panels, then the remainder
    dx_ct = n_pd + (w_d > 0)
    n_dw = _cdiv(D, dw_rt) * dw_ct
    n_dx = _cdiv(N, dx_rt) * dx_ct
    n_db = _cdiv(H, DB_COL_TILE) if flags & WANT_DB else 0
    for t in prange(n_dw + n_dx + n_db):  # dW tiles, then dx tiles, then db tiles
        if t < n_dw:
            i0, i1, p = _panel_tile_bounds(t, dw_ct, D, dw_rt)
            if in_place:
                _direct_tile_t(x, Dp, dW, zeros, accumulate, i0, i1, p)
            else:
                _column_tile(xT, Dp, Dr, dW, zeros, accumulate, i0, i1, p, n_ph, dwr)
        elif t < n_dw + n_dx:
            i0, i1, p = _panel_tile_bounds(t - n_dw, dx_ct, N, dx_rt)
            _column_tile(dout, Wtp, Wr, dx, zeros, False, i0, i1, p, n_pd, dxr)
        else:
            j0 = (t - n_dw - n_dx) * DB_COL_TILE
            _colsum_tile(dout, db, accumulate, j0, min(H, j0 + DB_COL_TILE))


# ---------------------------------------------------------------- small form
#
# The panel form's register block with every operand read where it is:
# no packing, no scratch, no edge buffers. B's rows are read with their own
# stride and its last vector, and C's, are cut to the columns that exist
# (masked loads and stores, :func:`~numba_affine._simd.vload_part`); a few
# columns past the last whole vector go to narrower forms instead
# (:func:`_few_columns`). api runs it for every call below
# ``api.PARALLEL_MIN_WORK``: at such sizes packing and the call's fixed
# costs are most of the time.


@helper(inline=True)
def _part_store(C, o, n, s, bias, jb, nb, n_old):
    """One vector of a small-form block: ``C.flat[o : o + n] = s +
    bias[jb : jb + nb] + C.flat[o : o + n_old]``, lanes past ``nb`` /
    ``n_old`` read as zeros (``n_old = n`` accumulates, 0 overwrites; no
    branch)."""
    vstore_part(C, o, vadd(vadd(s, vload_part(bias, jb, nb)), vload_part(C, o, n_old)), n)


@helper(inline=True)
def _part_block(K, A, a0, a_ks, a_rs, rows, B, b0, ldb, n, C, c0, ldc, bias, jb, nb, accumulate, tall):
    """``rows`` rows x ``n`` columns of ``C (+)= A . B (+ bias)``, every
    operand flat and read in place: 6 rows x two vectors of columns, or
    with ``tall`` 12 rows x one vector (for outputs one vector wide).

    Row ``r`` of A at step ``k`` is ``A[a0 + r * a_rs + k * a_ks]``; B's row
    ``k`` starts at ``B[b0 + k * ldb]``; C's row ``r`` at ``C[c0 + r * ldc]``.
    Rows past ``rows`` re-read the last row and are not stored; B's and C's
    lanes from ``n`` on are neither read nor written (masked). The bias of
    the block's columns starts at ``bias[jb]`` and has ``nb`` lanes (0 or
    less: none). Per step of k: 12 FMAs into 12 vector sums, as
    :func:`_panel_block`; the first six are rows 0-5 on B's first vector,
    the other six the next vector of the same rows, or (``tall``) the same
    vector for rows 6-11. Callers pass ``tall`` as a constant: LLVM then
    merges the loads the two halves share (one load of B and 12 broadcasts
    per step when tall, two loads and 6 broadcasts when not).
    """
    L = VECTOR_BYTES // C.itemsize
    dr = PANEL_ROWS if tall else 0  # rows and columns of the second half
    dc = 0 if tall else L
    c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51 = _zero_sums(C)
    e0, e1, e2, e3, e4, e5 = _row_offsets(a0, a_rs, dr, rows - 1)  # before a0 is replaced
    a0, a1, a2, a3, a4, a5 = _row_offsets(a0, a_rs, 0, rows - 1)
    for k in range(K):
        b = b0 + k * ldb
        v0 = vload_part(B, b, n)
        v1 = vload_part(B, b + dc, n - dc)
        o = k * a_ks
        c00 = vfma(vbroadcast(A, a0 + o), v0, c00)
        c01 = vfma(vbroadcast(A, e0 + o), v1, c01)
        c10 = vfma(vbroadcast(A, a1 + o), v0, c10)
        c11 = vfma(vbroadcast(A, e1 + o), v1, c11)
        c20 = vfma(vbroadcast(A, a2 + o), v0, c20)
        c21 = vfma(vbroadcast(A, e2 + o), v1, c21)
        c30 = vfma(vbroadcast(A, a3 + o), v0, c30)
        c31 = vfma(vbroadcast(A, e3 + o), v1, c31)
        c40 = vfma(vbroadcast(A, a4 + o), v0, c40)
        c41 = vfma(vbroadcast(A, e4 + o), v1, c41)
        c50 = vfma(vbroadcast(A, a5 + o), v0, c50)
        c51 = vfma(vbroadcast(A, e5 + o), v1, c51)
    h = c0 + dr * ldc + dc  # the second half's first element in C
    # accumulate: add the old C, no bias; else the bias (branch-free masks)
    n_old = n if accumulate else 0
    n_old1 = n - dc if accumulate else 0
    nb0 = 0 if accumulate else nb
    nb1 = 0 if accumulate else nb - dc
    _part_store(C, c0, n, c00, bias, jb, nb0, n_old)
    if dr + 0 < rows:
        _part_store(C, h, n - dc, c01, bias, jb + dc, nb1, n_old1)
    if rows > 1:
        _part_store(C, c0 + ldc, n, c10, bias, jb, nb0, n_old)
    if dr + 1 < rows:
        _part_store(C, h + ldc, n - dc, c11, bias, jb + dc, nb1, n_old1)
    if rows > 2:
        _part_store(C, c0 + 2 * ldc, n, c20, bias, jb, nb0, n_old)
    if dr + 2 < rows:
        _part_store(C, h + 2 * ldc, n - dc, c21, bias, jb + dc, nb1, n_old1)
    if rows > 3:
        _part_store(C, c0 + 3 * ldc, n, c30, bias, jb, nb0, n_old)
    if dr + 3 < rows:
        _part_store(C, h + 3 * ldc, n - dc, c31, bias, jb + dc, nb1, n_old1)
    if rows > 4:
        _part_store(C, c0 + 4 * ldc, n, c40, bias, jb, nb0, n_old)
    if dr + 4 < rows:
        _part_store(C, h + 4 * ldc, n - dc, c41, bias, jb + dc, nb1, n_old1)
    if rows > 5:
        _part_store(C, c0 + 5 * ldc, n, c50, bias, jb, nb0, n_old)
    if dr + 5 < rows:
        _part_store(C, h + 5 * ldc, n - dc, c51, bias, jb + dc, nb1, n_old1)


@helper
def _part_product(M, P, ld, K, A, a_ks, a_rs, B, C, bias, nb, accumulate, r, Bt, ldbt, narrow):
    """``C (+)= A . B (+ bias)`` for columns ``0 : P + r`` of an M-row
    output: the first P in small-form blocks (:func:`_part_block`), the
    last ``r`` (few, :func:`_few_columns`; 0 for none) as dot products
    (:func:`_dot_rows`). A's row ``i`` at step ``k`` is
    ``A[i * a_rs + k * a_ks]``; B (K rows) and C (M rows) are row-major
    with rows of ``ld`` elements (all flat); column ``P + j`` of B is
    ``Bt[j * ldbt :][:K]``, computed only with ``narrow`` (a constant),
    which needs A's rows contiguous (``a_ks == 1``) and overwrites
    (``accumulate`` False).

    Columns go in blocks of two vectors, 6 rows at a time; the last one
    or two vectors' worth, when it is at most one vector (or P is), in
    blocks of 12 rows x one vector, so that a column past a block edge
    costs one vector more, not two (64x128x17 float64: 16 + 8 columns
    computed instead of 32). The dot-product columns are computed in the
    last pass over the rows, right after each row block's last register
    block, while its rows of A are still in L1 (computed after the whole
    product, they read all of x again from L2: 20-45 % of the register
    blocks' time for 1 column of 64x128x17). Two places inline the
    register block, as before the dot-product columns: each inlined copy
    of it costs seconds of compile time. Not inlined itself: Numba copies
    an inlined function's IR into every caller, and the small kernels then
    took 3-4x as long to compile (17 s for the forward, measured); one
    call per product costs nothing measurable.
    """
    L = VECTOR_BYTES // C.itemsize
    rest = P % (2 * L)
    j_tall = P - rest if 0 < rest <= L else P  # columns from here on: tall blocks
    for j0 in range(0, j_tall, 2 * L):
        last_pass = j_tall == P and j0 + 2 * L >= P
        for i in range(0, M, PANEL_ROWS):
            rows = min(PANEL_ROWS, M - i)
            _part_block(K, A, i * a_rs, a_ks, a_rs, rows, B, j0, ld, P - j0, C, i * ld + j0, ld, bias, j0, nb - j0, accumulate, False)
            if narrow:  # (a constant: callers without narrow columns compile none of this)
                if last_pass:
                    _dot_rows(K, A, a_rs, i, rows, Bt, ldbt, r, C, ld, P, bias, nb)
    if j_tall < P:
        for i in range(0, M, 2 * PANEL_ROWS):
            rows = min(2 * PANEL_ROWS, M - i)
            _part_block(K, A, i * a_rs, a_ks, a_rs, rows, B, j_tall, ld, P - j_tall, C, i * ld + j_tall, ld, bias, j_tall, nb - j_tall, accumulate, True)
            if narrow:
                _dot_rows(K, A, a_rs, i, rows, Bt, ldbt, r, C, ld, P, bias, nb)
    if narrow and P == 0:  # no register block: the dot products alone
        for i in range(0, M, PANEL_ROWS):
            _dot_rows(K, A, a_rs, i, min(PANEL_ROWS, M - i), Bt, ldbt, r, C, ld, P, bias, nb)


#: Fixed cost of one dot-product column per 6 rows of the small form
#: (:func:`_dot_rows`: the sums' reduction, the scatter, the masked tail,
#: the call), in cycles of a vector FMA pair; fitted to same-process timings
#: against the masked vector it replaces (float64 forward): 20x50x10 (K = 50,
#: 2 columns) 0.79 -> 0.90 us, 100x50x9 (1 column) 2.70 -> 2.55 us, 64x128x19
#: (K = 128, 3 columns) 6.34 -> 6.15 us, 64x128x17 6.34 -> 5.08 us.
DOT_COLUMN_COST = 64


@helper(inline=True)
def _few_columns(P, K, itemsize):
    """Columns of a P-column output (sums of K terms) that the small form
    computes as dot products (:func:`_dot_rows`): the ``r = P % lanes`` past
    the last whole vector when that costs less than the masked vector
    would, else 0.

    Per 6 rows, a masked vector costs 12 FMAs per step of k (3 cycles at two
    FMAs a cycle), ``3 K``; a dot-product column about 4 cycles per vector
    of k and :data:`DOT_COLUMN_COST`. Without this, a column past a vector
    edge costs a whole vector of FMAs (64x128x16 -> 17 float64 read 28.7 ->
    19.5 GFLOP/s, 64x128x32 -> 33 float32 62.8 -> 29.1, 0f168b6).
    """
    shift = _lane_shift(itemsize)  # (no division: it is on every call's path)
    r = P & ((1 << shift) - 1)
    return r if r * (DOT_COLUMN_COST + ((4 * K) >> shift)) < 3 * K else 0


#: log2 of a vector's lanes of float64 / float32 (:func:`_lane_shift`).
_LANE_SHIFT_8 = (VECTOR_BYTES // 8).bit_length() - 1
_LANE_SHIFT_4 = (VECTOR_BYTES // 4).bit_length() - 1


@helper(inline=True)
def _lane_shift(itemsize):
    """log2 of the lanes of a vector of this itemsize (8 or 4): kernels
    that step through k a vector at a time shift and mask by it, since a
    division by a run-time lane count costs tens of cycles (``idiv``)."""
    return _LANE_SHIFT_8 if itemsize == 8 else _LANE_SHIFT_4


@helper
def _dot_rows(K, A, a_rs, i, rows, Bt, ldbt, r, C, ld, P, bias, nb):
    """Columns ``P : P + r`` of rows ``i : i + rows`` of ``C (+)= A . B (+
    bias)`` (:func:`_part_product`'s arguments) as dot products over a
    contiguous k, 6 rows x two columns at a time (the last of an odd ``r``
    alone): per vector of k, 2 + 6 loads and 12 FMAs into 12 vector sums
    (1 + 6 and 6 for a lone column); the last ``K % lanes`` steps as one
    masked vector (:func:`~numba_affine._simd.vload_part`); then each
    column's six sums' lanes added together
    (:func:`~numba_affine._simd.vsums6`) and the six totals stored down
    the column in one masked scatter (lanes past the block's rows neither
    read nor written). They overwrite C: the forward and dx, its only
    callers, never accumulate."""
    shift = _lane_shift(C.itemsize)
    k_end = (K >> shift) << shift
    n_tail = K - k_end
    for g in range(i, i + rows, PANEL_ROWS):
        last = min(PANEL_ROWS, i + rows - g) - 1
        a0, a1, a2, a3, a4, a5 = _row_offsets(g * a_rs, a_rs, 0, last)
        for j in range(0, r, 2):
            b = j * ldbt
            s0 = s1 = s2 = s3 = s4 = s5 = vzeros(C)
            t0 = t1 = t2 = t3 = t4 = t5 = vzeros(C)
            if j + 1 < r:
                for v in range(K >> shift):
                    k = v << shift
                    u = vload(Bt, b + k)
                    w = vload(Bt, b + ldbt + k)
                    x = vload(A, a0 + k)
                    s0 = vfma(x, u, s0)
                    t0 = vfma(x, w, t0)
                    x = vload(A, a1 + k)
                    s1 = vfma(x, u, s1)
                    t1 = vfma(x, w, t1)
                    x = vload(A, a2 + k)
                    s2 = vfma(x, u, s2)
                    t2 = vfma(x, w, t2)
                    x = vload(A, a3 + k)
                    s3 = vfma(x, u, s3)
                    t3 = vfma(x, w, t3)
                    x = vload(A, a4 + k)
                    s4 = vfma(x, u, s4)
                    t4 = vfma(x, w, t4)
                    x = vload(A, a5 + k)
                    s5 = vfma(x, u, s5)
                    t5 = vfma(x, w, t5)
                if n_tail > 0:
                    u = vload_part(Bt, b + k_end, n_tail)
                    w = vload_part(Bt, b + ldbt + k_end, n_tail)
                    x = vload_part(A, a0 + k_end, n_tail)
                    s0 = vfma(x, u, s0)
                    t0 = vfma(x, w, t0)
                    x = vload_part(A, a1 + k_end, n_tail)
                    s1 = vfma(x, u, s1)
                    t1 = vfma(x, w, t1)
                    x = vload_part(A, a2 + k_end, n_tail)
                    s2 = vfma(x, u, s2)
                    t2 = vfma(x, w, t2)
                    x = vload_part(A, a3 + k_end, n_tail)
                    s3 = vfma(x, u, s3)
                    t3 = vfma(x, w, t3)
                    x = vload_part(A, a4 + k_end, n_tail)
                    s4 = vfma(x, u, s4)
                    t4 = vfma(x, w, t4)
                    x = vload_part(A, a5 + k_end, n_tail)
                    s5 = vfma(x, u, s5)
                    t5 = vfma(x, w, t5)
            else:
                for v in range(K >> shift):
                    k = v << shift
                    u = vload(Bt, b + k)
                    s0 = vfma(vload(A, a0 + k), u, s0)
                    s1 = vfma(vload(A, a1 + k), u, s1)
                    s2 = vfma(vload(A, a2 + k), u, s2)
                    s3 = vfma(vload(A, a3 + k), u, s3)
                    s4 = vfma(vload(A, a4 + k), u, s4)
                    s5 = vfma(vload(A, a5 + k), u, s5)
                if n_tail > 0:
                    u = vload_part(Bt, b + k_end, n_tail)
                    s0 = vfma(vload_part(A, a0 + k_end, n_tail), u, s0)
                    s1 = vfma(vload_part(A, a1 + k_end, n_tail), u, s1)
                    s2 = vfma(vload_part(A, a2 + k_end, n_tail), u, s2)
                    s3 = vfma(vload_part(A, a3 + k_end, n_tail), u, s3)
                    s4 = vfma(vload_part(A, a4 + k_end, n_tail), u, s4)
                    s5 = vfma(vload_part(A, a5 + k_end, n_tail), u, s5)
            c = g * ld + P + j
            for q in range(min(2, r - j)):  # the column's six totals, stored down it
                tot = vsums6(s0, s1, s2, s3, s4, s5) if q == 0 else vsums6(t0, t1, t2, t3, t4, t5)
                if P + j + q < nb:
                    tot = vadd(tot, vbroadcast(bias, P + j + q))
                vscatter_part(C, c + q, ld, tot, last + 1)


@helper
def _dw_columns(N, D, H, r, x, dout, dW, accumulate):
    """``dW[:, H - r :] (+)= x.T . dout[:, H - r :]`` (all flat, row-major)
    for the few columns past the small form's last whole vector of dW
    (:func:`_few_columns`), vectors running down dW's columns: x's rows
    are contiguous in d.

    Blocks of four vectors of rows of dW x two columns: per step of the
    batch, 4 (masked) loads of x's row, 2 broadcasts of dout, 8 FMAs into 8
    sums; each sum then goes down its column of dW in one masked scatter
    (the old values gathered first when accumulating). The second column
    of an odd ``r``'s last pair re-reads the first and is not stored.
    Written out, not as an inlined block: an inlined function's array
    arguments cost reference counting per block.
    """
    L = VECTOR_BYTES // dW.itemsize
    for d0 in range(0, D, 4 * L):
        n = D - d0
        for j in range(0, r, 2):
            c0 = H - r + j
            c1 = H - r + min(j + 1, r - 1)
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = vzeros(dW)
            for k in range(N):
                o = k * D + d0
                v0 = vload_part(x, o, n)
                v1 = vload_part(x, o + L, n - L)
                v2 = vload_part(x, o + 2 * L, n - 2 * L)
                v3 = vload_part(x, o + 3 * L, n - 3 * L)
                u = vbroadcast(dout, k * H + c0)
                s00 = vfma(v0, u, s00)
                s01 = vfma(v1, u, s01)
                s02 = vfma(v2, u, s02)
                s03 = vfma(v3, u, s03)
                u = vbroadcast(dout, k * H + c1)
                s10 = vfma(v0, u, s10)
                s11 = vfma(v1, u, s11)
                s12 = vfma(v2, u, s12)
                s13 = vfma(v3, u, s13)
            for q in range(min(2, r - j)):
                for p in range(4):
                    if q == 0:
                        t = s00 if p == 0 else s01 if p == 1 else s02 if p == 2 else s03
                    else:
                        t = s10 if p == 0 else s11 if p == 1 else s12 if p == 2 else s13
                    o = (d0 + p * L) * H + c0 + q
                    m = n - p * L
                    if accumulate:
                        t = vadd(t, vgather_part(dW, o, H, m))
                    vscatter_part(dW, o, H, t, m)


@helper
def small_forward(x, W, b, y, scratch):
    """Forward pass ``y = x . W + b`` in the small form (arguments as
    :func:`_forward`; ``scratch`` is not used): x's rows and W's rows read
    in place; the few columns past the last whole vector
    (:func:`_few_columns`) as dot products on x's rows and those columns
    of W, copied into a new r x D buffer."""
    N, D = x.shape
    H = W.shape[1]
    r = _few_columns(H, D, y.itemsize)
    fx = x.reshape(N * D)
    fy = y.reshape(N * H)
    fW = W.reshape(D * H)
    # two variants of _part_product, compiled once each (narrow, a constant, prunes the dot products)
    if r == 0:
        _part_product(N, H, H, D, fx, 1, D, fW, fy, b, b.shape[0], False, r, fW, D, False)
    else:
        _part_product(N, H - r, H, D, fx, 1, D, fW, fy, b, b.shape[0], False, r, _last_columns(fW, D, H, r), D, True)


@helper
def _last_columns(fW, D, H, r):
    """W's last ``r`` columns as the rows of a new r x D buffer (flat),
    gathered a vector at a time."""
    Wr = np.empty(r * D, fW.dtype)
    L = VECTOR_BYTES // fW.itemsize
    for j in range(r):
        for k in range(0, D, L):
            vstore_part(Wr, j * D + k, vgather_part(fW, k * H + H - r + j, H, D - k), D - k)
    return Wr


@helper
def small_backward(dout, x, W, dx, dW, db, flags, scratch):
    """The backward pass of :func:`_backward` (same arguments; ``SHORT_H``
    is ignored) in the small form: ``dx = dout . W.T`` on dout's rows in
    place and W.T (packed into ``scratch``, or a new buffer when it is
    shorter, H x D); ``dW (+)= x.T . dout`` with x's columns and dout's
    rows in place; ``db`` as the other kernels sum it (:func:`_colsum_tile`).

    The few columns past the last whole vector (:func:`_few_columns`): of
    dx as dot products of dout's rows and W's rows (W.T's columns); of dW
    with vectors down its columns (:func:`_dw_columns`).
    """
    N, D, H = _backward_sizes(dout, x, W, flags)
    accumulate = (flags & ACCUMULATE) != 0
    fd = dout.reshape(N * H)
    if flags & WANT_DX:
        Wt = _room(scratch, H * D)[: H * D]
        _pack_transposed(W, Wt.reshape((H, D)), 0, H)
        fdx = dx.reshape(N * D)
        r_d = _few_columns(D, H, dout.itemsize)
        if r_d == 0:
            _part_product(N, D, D, H, fd, 1, H, Wt, fdx, Wt, 0, False, r_d, Wt, H, False)
        else:  # W.T's last r_d columns are W's last rows
            _part_product(N, D - r_d, D, H, fd, 1, H, Wt, fdx, Wt, 0, False, r_d, W.reshape(D * H)[(D - r_d) * H :], H, True)
    if flags & WANT_DW:
        fx = x.reshape(N * D)
        fW = dW.reshape(D * H)
        r_h = _few_columns(H, N, dout.itemsize)
        _part_product(D, H - r_h, H, N, fx, D, 1, fd, fW, fd, 0, accumulate, r_h, fd, 0, False)
        if r_h > 0:
            _dw_columns(N, D, H, r_h, fx, fd, fW, accumulate)
    if flags & WANT_DB:
        _colsum_tile(dout, db, accumulate, 0, H)


forward_kernels = twin_kernels(_forward)
backward_kernels = twin_kernels(_backward)
forward_direct_kernels = twin_kernels(_forward_direct)
backward_panel_kernels = twin_kernels(_backward_panels)
