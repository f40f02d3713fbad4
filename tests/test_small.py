"""The small form (kernels.small_forward / small_backward, every call below
api.PARALLEL_MIN_WORK) and its masked vector loads and stores, against the
seed's numpy formulas: widths on both sides of each vector edge, row counts
on both sides of the 6-row block, each part of the backward alone and
accumulating, outputs written exactly where they belong."""

import numpy as np
import pytest
from numba import njit
from reference import DTYPES, assert_matches, backward, forward, make_inputs

from numba_affine import _simd, kernels

WANT_ALL = kernels.WANT_DX | kernels.WANT_DW | kernels.WANT_DB


def lanes(dtype):
    return _simd.VECTOR_BYTES // np.dtype(dtype).itemsize


def widths(dtype):
    """Column counts around the block edges: one vector (12-row blocks),
    two (6-row blocks), and past two, a last vector or less (12-row blocks
    again: 2L + 1, 3L, 4L + 1) or more (3L + 5)."""
    L = lanes(dtype)
    return sorted({1, L - 1, L, L + 1, 2 * L - 1, 2 * L, 2 * L + 1, 3 * L, 3 * L + 5, 4 * L + 1})


def with_tail(shape, dtype, fill=-7.0, tail=40):
    """A C-contiguous array of ``shape`` followed in memory by ``tail`` sentinels."""
    n = int(np.prod(shape))
    buf = np.full(n + tail, fill, dtype)
    return buf[:n].reshape(shape), buf[n:]


@njit
def _load_store(src, n, dst, whole):
    """dst[:n] = src[:n] through one partial vector; whole = that vector."""
    v = _simd.vload_part(src, 0, n)
    _simd.vstore_part(dst, 0, v, n)
    _simd.vstore(whole, 0, v)


@pytest.mark.parametrize("dtype", DTYPES)
def test_partial_vectors_touch_only_their_lanes(dtype):
    """vload_part reads lanes < n (zeros after), vstore_part writes lanes < n only."""
    L = lanes(dtype)
    for n in (-1, 0, 1, L - 1, L, L + 3, 2**32 + 1, -(2**32) + 1):  # no wrap-around when narrowed
        src = np.arange(1, L + 1, dtype=dtype)
        dst, tail = with_tail((L,), dtype)
        whole = np.full(L, -1.0, dtype)
        _load_store(src, n, dst, whole)
        k = max(0, min(n, L))
        np.testing.assert_array_equal(whole[:k], src[:k])
        np.testing.assert_array_equal(whole[k:], 0.0)
        np.testing.assert_array_equal(dst[:k], src[:k])
        np.testing.assert_array_equal(dst[k:], -7.0)
        np.testing.assert_array_equal(tail, -7.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [1, 5, 6, 7, 12, 13, 25])
@pytest.mark.parametrize("D", [0, 1, 3, 50])
def test_small_forward_matches_reference(N, D, dtype):
    for H in widths(dtype):
        check_small_forward(N, D, H, dtype)


def check_small_forward(N, D, H, dtype):
    """small_forward with and without a bias against the seed's formula;
    nothing written past y."""
    x, W, b, _ = make_inputs(N, D, H, dtype)
    ref = forward(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64))
    for bias, want in ((b, ref), (np.empty(0, dtype), ref - b)):
        y, tail = with_tail((N, H), dtype, fill=np.nan)
        kernels.small_forward(x, W, bias, y, np.empty(0, dtype))
        assert_matches(y, want, dtype, D)
        assert np.isnan(tail).all(), (N, D, H)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [1, 5, 6, 7, 20])
@pytest.mark.parametrize("D", [1, 6, 7, 12, 13, 25, 50])
def test_small_backward_matches_reference_part_by_part(N, D, dtype):
    rng = np.random.default_rng(3)
    for H in widths(dtype):
        check_small_backward(N, D, H, dtype, rng, (
            WANT_ALL, kernels.WANT_DX, kernels.WANT_DW, kernels.WANT_DB,
            WANT_ALL | kernels.ACCUMULATE, WANT_ALL | kernels.SHORT_H))


def check_small_backward(N, D, H, dtype, rng, flag_sets):
    """small_backward with each of ``flag_sets`` against the seed's
    formulas: wanted parts right (plus the old dW / db when accumulating),
    others untouched, nothing written past any output."""
    x, W, _, dout = make_inputs(N, D, H, dtype)
    eg = backward(dout.astype(np.float64), x.astype(np.float64), W.astype(np.float64))
    dW0 = rng.standard_normal((D, H)).astype(dtype)
    db0 = rng.standard_normal(H).astype(dtype)
    for flags in flag_sets:
        dx, dx_tail = with_tail((N, D), dtype, fill=np.nan)
        dW, dW_tail = with_tail((D, H), dtype, fill=np.nan)
        db, db_tail = with_tail((H,), dtype, fill=np.nan)
        accumulate = bool(flags & kernels.ACCUMULATE)
        if accumulate and flags & kernels.WANT_DW:
            dW[...] = dW0
        if accumulate and flags & kernels.WANT_DB:
            db[...] = db0
        kernels.small_backward(dout, x, W, dx, dW, db, flags, np.empty(0, dtype))
        if flags & kernels.WANT_DX:
            assert_matches(dx, eg[0], dtype, H)
        else:
            assert np.isnan(dx).all()
        if flags & kernels.WANT_DW:
            assert_matches(dW, eg[1] + (dW0 if accumulate else 0), dtype, N + 1)
        else:
            assert np.isnan(dW).all()
        if flags & kernels.WANT_DB:
            assert_matches(db, eg[2] + (db0 if accumulate else 0), dtype, N + 1)
        else:
            assert np.isnan(db).all()
        for tail in (dx_tail, dW_tail, db_tail):
            assert np.isnan(tail).all(), (N, D, H, flags)


@pytest.mark.parametrize("dtype", DTYPES)
def test_small_backward_packs_W_T_inside_its_scratch(dtype):
    """dx packs W.T (H x D) into the caller's scratch when it is long enough,
    else into its own buffer; nothing past H * D is touched."""
    N, D, H = 9, 23, 11
    x, W, _, dout = make_inputs(N, D, H, dtype)
    eg = backward(dout.astype(np.float64), x.astype(np.float64), W.astype(np.float64))
    for size in (H * D, H * D - 1, 0):
        scratch = np.full(size + 16, -7.0, dtype)
        dx, dW, db = np.empty((N, D), dtype), np.empty((D, H), dtype), np.empty(H, dtype)
        kernels.small_backward(dout, x, W, dx, dW, db, WANT_ALL, scratch[:size])
        np.testing.assert_array_equal(scratch[size:], -7.0)
        if size == H * D:
            np.testing.assert_array_equal(scratch[:size].reshape(H, D), W.T)
        for got, want, k in zip((dx, dW, db), eg, (H, N, N)):
            assert_matches(got, want, dtype, k)


@pytest.mark.parametrize("dtype", DTYPES)
def test_small_form_keeps_a_nan_in_its_own_row(dtype):
    """Rows past the last one of a block re-read that row; their sums are
    not stored: a NaN in x's last row reaches y's last row only, and an
    Inf in x's last column reaches dW's last row only. H = 5 runs the
    12-row blocks (one vector wide), H = 3 vectors + 1 the 6-row blocks."""
    N, D = 13, 7  # 13 rows: blocks of 12 and 1, or 6, 6 and 1; D = 7: 7, or 6 and 1
    for H in (5, 3 * lanes(dtype) + 1):
        x, W, b, dout = make_inputs(N, D, H, dtype)
        x[-1, 2] = np.nan
        y = np.empty((N, H), dtype)
        kernels.small_forward(x, W, b, y, np.empty(0, dtype))
        assert np.isnan(y[-1]).all() and np.isfinite(y[:-1]).all()
        x, W, b, dout = make_inputs(N, D, H, dtype)
        x[4, -1] = np.inf
        dx, dW, db = np.empty((N, D), dtype), np.empty((D, H), dtype), np.empty(H, dtype)
        kernels.small_backward(dout, x, W, dx, dW, db, WANT_ALL, np.empty(0, dtype))
        assert np.isinf(dW[-1]).all() and np.isfinite(dW[:-1]).all()
        assert np.isfinite(dx).all()


# ---------------------------------------------------------------- narrow columns
#
# The few columns past the last whole vector (kernels._few_columns): dot
# products for the forward and dx (kernels._dot_rows), vectors down dW's
# columns for dW (kernels._dw_columns). Each case below asserts that it runs
# that path, so the tests cannot pass on the masked-vector path alone.


@njit
def _sums6(a, out):
    L = out.shape[0]
    s0, s1, s2 = _simd.vload(a, 0), _simd.vload(a, L), _simd.vload(a, 2 * L)
    s3, s4, s5 = _simd.vload(a, 3 * L), _simd.vload(a, 4 * L), _simd.vload(a, 5 * L)
    _simd.vstore(out, 0, _simd.vsums6(s0, s1, s2, s3, s4, s5))


@pytest.mark.parametrize("dtype", DTYPES)
def test_vsums6_puts_each_total_in_its_lane(dtype):
    L = lanes(dtype)
    a = np.random.default_rng(1).standard_normal(6 * L).astype(dtype)
    a[3 * L + 1] = np.inf  # an Inf stays in its own total
    out = np.full(L, -1.0, dtype)
    _sums6(a, out)
    want = a.astype(np.float64).reshape(6, L).sum(axis=1)
    np.testing.assert_allclose(out[:6], want, rtol=1e-5 if dtype == np.float32 else 1e-13)
    assert np.isinf(out[3]) and np.isfinite(np.delete(out[:6], 3)).all()
    np.testing.assert_array_equal(out[6:], 0.0)


@njit
def _gather_scatter(src, i, stride, n, dst, whole):
    v = _simd.vgather_part(src, i, stride, n)
    _simd.vscatter_part(dst, i, stride, v, n)
    _simd.vstore(whole, 0, v)


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_gather_and_scatter_touch_only_their_lanes(dtype):
    """vgather_part reads src[i + l * stride] for l < n (zeros after),
    vscatter_part writes those elements only."""
    L = lanes(dtype)
    stride, i = 5, 3
    size = i + stride * L + 4
    for n in (-1, 0, 1, L - 1, L, L + 3, 2**32 + 1):
        src = np.arange(1, size + 1, dtype=dtype)
        dst, tail = with_tail((size,), dtype)
        whole = np.full(L, -1.0, dtype)
        _gather_scatter(src, i, stride, n, dst, whole)
        k = max(0, min(n, L))
        picked = i + stride * np.arange(k)
        np.testing.assert_array_equal(whole[:k], src[picked])
        np.testing.assert_array_equal(whole[k:], 0.0)
        np.testing.assert_array_equal(dst[picked], src[picked])
        np.testing.assert_array_equal(np.delete(dst, picked), -7.0)
        np.testing.assert_array_equal(tail, -7.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_few_columns_only_past_the_last_whole_vector(dtype):
    L = lanes(dtype)
    itemsize = np.dtype(dtype).itemsize
    for P in range(0, 5 * L):
        for K in (0, 1, 7, 50, 128, 784, 4096):
            r = kernels._few_columns(P, K, itemsize)
            assert r in (0, P % L), (P, K, r)
    assert kernels._few_columns(2 * L + 1, 128, itemsize) == 1  # 64x128x17 float64: the cliff it mends
    assert kernels._few_columns(4 * L, 4096, itemsize) == 0
    assert kernels._few_columns(L + 1, 0, itemsize) == 0  # nothing to sum: the masked vector


def _narrow_widths(dtype, K):
    """Widths past a vector edge whose last columns take the narrow path for sums of K terms."""
    L = lanes(dtype)
    itemsize = np.dtype(dtype).itemsize
    out = [P for P in (1, 2, L + 1, L + 2, 2 * L + 1, 2 * L + 3, 3 * L + 1, 4 * L + 2)
           if kernels._few_columns(P, K, itemsize) > 0]
    assert len(out) >= 4, (dtype, K, out)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [1, 5, 6, 7, 12, 13, 19])
@pytest.mark.parametrize("D", [128, 131])  # the last vector of k whole / masked
def test_narrow_forward_matches_reference(N, D, dtype):
    for H in _narrow_widths(dtype, D):
        check_small_forward(N, D, H, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [1, 6, 7, 13, 40, 64])
def test_narrow_backward_matches_reference(N, dtype):
    """dx's narrow columns (D past a vector edge, sums of H terms) and dW's
    (H past one, sums of N terms), alone and accumulating; D runs over
    the edge of dW's four-vector blocks too."""
    rng = np.random.default_rng(5)
    L = lanes(dtype)
    itemsize = np.dtype(dtype).itemsize
    cases = [(D, 131) for D in _narrow_widths(dtype, 131)]  # dx: D narrow
    if N >= 40:  # dW: enough terms for the narrow path
        cases += [(D, H) for H in _narrow_widths(dtype, N) for D in (1, 5, 4 * L + 3)]
    for D, H in cases:
        assert kernels._few_columns(D, H, itemsize) > 0 or kernels._few_columns(H, N, itemsize) > 0
        check_small_backward(N, D, H, dtype, rng, (
            WANT_ALL, kernels.WANT_DX, kernels.WANT_DW, kernels.WANT_DW | kernels.ACCUMULATE))


@pytest.mark.parametrize("dtype", DTYPES)
def test_narrow_columns_keep_a_nan_in_its_own_row(dtype):
    """The dot-product columns re-read a block's last row for the rows past
    it and scatter only the rows that exist: a NaN in x's last row reaches
    y's last row only; an Inf in x's last column reaches dW's last row only
    (through dW's narrow columns too)."""
    L = lanes(dtype)
    N, D, H = 13, 128, 2 * L + 1
    itemsize = np.dtype(dtype).itemsize
    assert kernels._few_columns(H, D, itemsize) == 1
    x, W, b, _ = make_inputs(N, D, H, dtype)
    x[-1, 2] = np.nan
    y = np.empty((N, H), dtype)
    kernels.small_forward(x, W, b, y, np.empty(0, dtype))
    assert np.isnan(y[-1]).all() and np.isfinite(y[:-1]).all()
    N, D = 64, 4 * L + 3
    assert kernels._few_columns(H, N, itemsize) == 1
    x, W, _, dout = make_inputs(N, D, H, dtype)
    x[4, -1] = np.inf
    dx, dW, db = np.empty((N, D), dtype), np.empty((D, H), dtype), np.empty(H, dtype)
    kernels.small_backward(dout, x, W, dx, dW, db, WANT_ALL, np.empty(0, dtype))
    assert np.isinf(dW[-1]).all() and np.isfinite(dW[:-1]).all()
