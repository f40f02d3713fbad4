"""Every public function against the seed's numpy formulas, over many shapes,
both dtypes, C / F / strided / negative-stride inputs and both kernel paths."""

import numpy as np
import pytest
from reference import DTYPES, SHAPES, assert_matches, backward, forward, make_inputs

import numba_affine as na
from numba_affine import api, kernels


def layouts(a):
    """The same values in several memory layouts."""
    yield "C", a
    yield "F", np.asfortranarray(a)
    big = np.zeros((a.shape[0] * 2 + 1, a.shape[1] * 3 + 2), a.dtype)
    view = big[1::2, 2::3]
    view[...] = a
    yield "strided", view
    rev = np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1]
    yield "reversed", rev


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_forward_matches_reference(shape, dtype):
    N, D, H = shape
    x, W, b, _ = make_inputs(N, D, H, dtype)
    expected = forward(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64))
    assert_matches(na.affine_forward(x, W, b), expected, dtype, D)
    assert_matches(na.affine_forward(x, W), expected - b, dtype, D)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_backward_matches_reference(shape, dtype):
    N, D, H = shape
    x, W, _, dout = make_inputs(N, D, H, dtype)
    ex, eW, eb = backward(dout.astype(np.float64), x.astype(np.float64), W.astype(np.float64))
    dx, dW, db = na.affine_backward(dout, x, W)
    assert_matches(dx, ex, dtype, H)
    assert_matches(dW, eW, dtype, N)
    assert_matches(db, eb, dtype, N)
    assert_matches(na.affine_dx(dout, W), ex, dtype, H)
    assert_matches(na.affine_dw(x, dout), eW, dtype, N)
    assert_matches(na.affine_db(dout), eb, dtype, N)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(20, 50, 10), (33, 129, 17), (131, 67, 514), (5, 4, 3)],
                         ids=lambda s: "x".join(map(str, s)))
def test_any_layout_gives_the_contiguous_result(shape, dtype):
    N, D, H = shape
    x, W, b, dout = make_inputs(N, D, H, dtype)
    y0 = na.affine_forward(x, W, b)
    g0 = na.affine_backward(dout, x, W)
    for (lx, xl), (lw, Wl), (ld, dl) in zip(layouts(x), layouts(W), layouts(dout)):
        np.testing.assert_array_equal(na.affine_forward(xl, Wl, b), y0, err_msg=f"x {lx}, W {lw}")
        for got, want in zip(na.affine_backward(dl, xl, Wl), g0):
            np.testing.assert_array_equal(got, want, err_msg=f"x {lx}, W {lw}, dout {ld}")
    b_strided = np.repeat(b, 2)[::2]
    np.testing.assert_array_equal(na.affine_forward(x, W, b_strided), y0)


@pytest.mark.parametrize("dtype", DTYPES)
#: (40, 16411, 9): short H with W and dW big enough for the parallel transposes
#: (``kernels.PARALLEL_TRANSPOSE``); (96, 80, 70): just above ``kernels.ONE_TILE_WORK``;
#: (128, 1024, 130): every packed copy (W.T, x.T, dout.T) is parallel and has a row
#: stride that is a multiple of 512 bytes (the blocked branch of ``kernels._transpose_rows``).
@pytest.mark.parametrize(
    "shape",
    [(20, 50, 10), (200, 300, 40), (64, 96, 20), (40, 16411, 9), (96, 80, 70), (128, 1024, 130)],
    ids=lambda s: "x".join(map(str, s)),
)
def test_serial_and_parallel_paths_agree_with_reference(shape, dtype, monkeypatch):
    N, D, H = shape
    x, W, b, dout = make_inputs(N, D, H, dtype)
    ex = forward(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64))
    eg = backward(dout.astype(np.float64), x.astype(np.float64), W.astype(np.float64))
    for threshold in (0, 10**12):  # everything parallel / everything serial
        monkeypatch.setattr(api, "PARALLEL_MIN_WORK", threshold)
        assert_matches(na.affine_forward(x, W, b), ex, dtype, D)
        for got, want, k in zip(na.affine_backward(dout, x, W), eg, (H, N, N)):
            assert_matches(got, want, dtype, k)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reused_scratch_with_stale_contents_does_not_leak(dtype, monkeypatch):
    """Large calls reuse one packing buffer per thread. Fill it with NaN,
    then run shapes whose batch is not a whole number of vectors (the packed
    x.T / dout.T are zero-padded): every result must still be the reference,
    and the buffer must really be the one reused."""
    monkeypatch.setattr(api, "PARALLEL_MIN_WORK", 0)
    dt = np.dtype(dtype)
    stale = np.full(200_000, np.nan, dt)
    monkeypatch.setitem(api._scratch_local.__dict__, dt.char, stale)
    for shape in [(101, 300, 37), (7, 64, 20), (53, 1000, 9), (1, 5, 3)]:
        N, D, H = shape
        x, W, b, dout = make_inputs(N, D, H, dtype)
        eg = backward(dout.astype(np.float64), x.astype(np.float64), W.astype(np.float64))
        for got, want, k in zip(na.affine_backward(dout, x, W), eg, (H, N, N)):
            assert_matches(got, want, dtype, k)
        assert_matches(na.affine_dw(x, dout), eg[1], dtype, N)
        ref = forward(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64))
        assert_matches(na.affine_forward(x, W, b), ref, dtype, D)
        W[...] = 0  # updated in place, as by an optimizer: nothing of the old W.T is reused
        np.testing.assert_array_equal(na.affine_forward(x, W, b), np.broadcast_to(b, (N, H)))
        assert api._scratch(dt, 1) is stale


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(37, 41, 20), (5, 300, 7), (1, 1, 1), (9, 128, 13)])
def test_forward_kernel_stays_inside_its_scratch(shape, dtype):
    """The forward packs W.T into ``forward_scratch_size`` elements of scratch
    and no more; given less, it allocates its own."""
    N, D, H = shape
    x, W, b, _ = make_inputs(N, D, H, dtype)
    ref = forward(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64))
    need = kernels.forward_scratch_size(D, H, x.itemsize)
    assert need >= W.size
    for size in (need, need - 1, 0):
        scratch = np.full(size + 16, -7.0, dtype)
        y = np.empty((N, H), dtype)
        kernels.forward_kernels.parallel(x, W, b, y, scratch[:size])
        np.testing.assert_array_equal(scratch[size:], -7.0)
        assert_matches(y, ref, dtype, D)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(37, 41, 20), (101, 300, 37), (53, 100, 9), (8, 16, 16)])
def test_backward_kernel_stays_inside_its_scratch(shape, dtype):
    """The kernel uses ``backward_scratch_size`` elements and no more; given
    less, it allocates its own; either way the results are the reference."""
    N, D, H = shape
    x, W, _, dout = make_inputs(N, D, H, dtype)
    eg = backward(dout.astype(np.float64), x.astype(np.float64), W.astype(np.float64))
    flags = api._ALL[H < api.BACKWARD_SHORT_H]
    need = kernels.backward_scratch_size(dout, x, W, flags)
    assert need > 0
    for size in (need, need - 1, 0):
        scratch = np.full(size + 16, -7.0, dtype)
        dx, dW, db = np.empty((N, D), dtype), np.empty((D, H), dtype), np.empty(H, dtype)
        kernels.backward_kernels.parallel(dout, x, W, dx, dW, db, flags, scratch[:size])
        np.testing.assert_array_equal(scratch[size:], -7.0)
        for got, want, k in zip((dx, dW, db), eg, (H, N, N)):
            assert_matches(got, want, dtype, k)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H", [1, 2, 15, 16, 17])
def test_both_product_forms_around_the_short_H_switch(H, dtype):
    x, W, b, dout = make_inputs(37, 41, H, dtype)
    eg = backward(dout.astype(np.float64), x.astype(np.float64), W.astype(np.float64))
    for got, want, k in zip(na.affine_backward(dout, x, W), eg, (H, 37, 37)):
        assert_matches(got, want, dtype, k)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(20, 50, 10), (100, 784, 100), (2048, 64, 10), (40, 16411, 9), (131, 67, 514)])
def test_serial_and_parallel_kernels_give_bitwise_identical_results(shape, dtype):
    """The twins differ only in which thread runs a tile: same tiles, same code, same bits."""
    N, D, H = shape
    x, W, b, dout = make_inputs(N, D, H, dtype)
    flags = api._ALL[H < api.BACKWARD_SHORT_H]
    out = {}
    for name in ("serial", "parallel"):
        y = np.empty((N, H), dtype)
        dx, dW, db = np.empty((N, D), dtype), np.empty((D, H), dtype), np.empty(H, dtype)
        getattr(kernels.forward_kernels, name)(x, W, b, y, np.empty(0, dtype))
        getattr(kernels.backward_kernels, name)(dout, x, W, dx, dW, db, flags, np.empty(0, dtype))
        out[name] = (y, dx, dW, db)
    for a, c in zip(out["serial"], out["parallel"]):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (50, 10), (64, 100), (128, 70), (256, 65), (9, 256)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_transpose_rows_every_branch(shape, accumulate, dtype):
    """Row-by-row and blocked (destination stride a multiple of 512 bytes), on
    part of the rows and on all of them, overwriting and accumulating."""
    rng = np.random.default_rng(7)
    src = rng.standard_normal(shape).astype(dtype)
    dst0 = rng.standard_normal(shape[::-1]).astype(dtype)
    for r0, r1 in ((0, shape[0]), (shape[0] // 3, shape[0] - shape[0] // 4)):
        dst = dst0.copy()
        kernels._transpose_rows(src, dst, r0, r1, accumulate)
        want = dst0.copy()
        want[:, r0:r1] = src[r0:r1].T + (dst0[:, r0:r1] if accumulate else 0)
        np.testing.assert_array_equal(dst, want)


@pytest.mark.parametrize("itemsize", [4, 8])
@pytest.mark.parametrize("n", [0, 1, 7, 8, 16, 50, 64, 100, 127, 128, 784, 1000, 1024, 4096])
def test_packed_rows_start_on_a_line_and_avoid_512_byte_strides(n, itemsize):
    m = kernels.packed_row_length(n, itemsize)
    assert n <= m < n + 2 * kernels.LINE_BYTES // itemsize
    assert (m * itemsize) % kernels.LINE_BYTES == 0
    assert m == 0 or (m * itemsize) % 512 != 0
