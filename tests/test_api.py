"""Semantics of the public functions beyond plain products: 1-D and N-D x,
out= buffers, accumulate, no modification of inputs, NaN/Inf, dtypes."""

import numpy as np
import pytest
from reference import DTYPES, assert_matches, backward, forward, make_inputs

import numba_affine as na


def f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_sample_is_1d(dtype):
    x, W, b, dout = make_inputs(1, 7, 5, dtype)
    x1, d1 = x[0], dout[0]
    y = na.affine_forward(x1, W, b)
    assert y.shape == (5,)
    assert_matches(y, np.dot(*f64(x1, W)) + b, dtype, 7)
    dx, dW, db = na.affine_backward(d1, x1, W)
    ex, eW, eb = backward(*f64(d1, x1, W))
    assert dx.shape == (7,)
    assert_matches(dx, ex, dtype, 5)
    assert_matches(dW, eW, dtype, 1)
    assert_matches(db, eb, dtype, 1)
    assert na.affine_dx(d1, W).shape == (7,)
    assert na.affine_dw(x1, d1).shape == (7, 5)
    assert_matches(na.affine_db(d1), d1, dtype, 1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_sample_gives_its_batch_row_whatever_the_layout(dtype):
    """One sample, 1-D or (1, D), takes a short path when every operand is a writeable C-contiguous
    array of one dtype and the general path otherwise: the same bits either way, those of its row in
    a batch, and the general path's errors."""
    x, W, b, dout = make_inputs(3, 37, 19, dtype)
    y_batch = na.affine_forward(x, W, b)
    dx_batch = na.affine_dx(dout, W)
    read_only = [a.copy() for a in (x, W, b, dout)]
    for a in read_only:
        a.flags.writeable = False
    wide = np.zeros((2, 2 * 37), dtype)
    wide[0, ::2] = x[1]
    layouts = {
        "C": (x[1], W, b, dout[1]),
        "read-only": (read_only[0][1], read_only[1], read_only[2], read_only[3][1]),
        "strided x": (wide[0, ::2], W, b, dout[1]),
        "Fortran W": (x[1], np.asfortranarray(W), b, dout[1]),
    }
    for name, (x1, W1, b1, d1) in layouts.items():
        for sample, d in ((x1, d1), (x1.reshape(1, -1), d1.reshape(1, -1))):
            y = na.affine_forward(sample, W1, b1)
            assert y.shape == (19,) if sample.ndim == 1 else (1, 19), name
            np.testing.assert_array_equal(y.reshape(-1), y_batch[1], err_msg=name)
            assert_matches(na.affine_forward(sample, W1).reshape(-1), np.dot(*f64(x[1], W)), dtype, 37)
            dx, dW, db = na.affine_backward(d, sample, W1)
            assert dx.shape == sample.shape, name
            np.testing.assert_array_equal(dx.reshape(-1), dx_batch[1], err_msg=name)
            for got, want in zip((dW, db), backward(*f64(dout[1:2], x[1:2], W))[1:]):
                assert_matches(got, want, dtype, 1)
    other = np.float64 if np.dtype(dtype) == np.float32 else np.float32
    with pytest.raises(TypeError, match="dtype"):
        na.affine_forward(x[1], W.astype(other), b)
    with pytest.raises(TypeError, match="dtype"):
        na.affine_forward(x[1], W, b.astype(other))
    with pytest.raises(ValueError, match=r"\(19,\)"):
        na.affine_forward(x[1], W, b[:5])
    with pytest.raises(ValueError, match=r"\(36,\)"):
        na.affine_forward(x[1, :36], W, b)
    with pytest.raises(ValueError, match=r"\(18,\)"):
        na.affine_backward(dout[1, :18], x[1], W)
    with pytest.raises(ValueError):
        na.affine_forward(np.array(1.0, dtype), W, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 2, 3), (6, 1, 5, 2), (0, 3, 2), (3, 1, 1, 1)])
def test_nd_input_is_flattened_and_dx_keeps_its_shape(shape, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    D = int(np.prod(shape[1:]))
    W = rng.standard_normal((D, 4)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    dout = rng.standard_normal((shape[0], 4)).astype(dtype)
    assert_matches(na.affine_forward(x, W, b), forward(*f64(x, W, b)), dtype, D)
    dx, dW, db = na.affine_backward(dout, x, W)
    for got, want in zip((dx, dW, db), backward(*f64(dout, x, W))):
        assert_matches(got, want, dtype, max(D, shape[0]))
    assert dx.shape == shape
    assert_matches(na.affine_dw(x, dout), backward(*f64(dout, x, W))[1], dtype, shape[0])


def test_nd_non_contiguous_input():
    x = np.random.default_rng(2).standard_normal((5, 4, 6)).transpose(0, 2, 1)[:, ::2]
    W = np.random.default_rng(3).standard_normal((12, 3))
    assert_matches(na.affine_forward(x, W), forward(x, W), np.float64, 12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_out_buffers_are_written_and_returned(dtype):
    x, W, b, dout = make_inputs(9, 8, 7, dtype)
    out = np.full((9, 7), np.nan, dtype)
    assert na.affine_forward(x, W, b, out=out) is out
    assert_matches(out, forward(*f64(x, W, b)), dtype, 8)
    dx, dW, db = np.empty((9, 8), dtype), np.empty((8, 7), dtype), np.empty(7, dtype)
    res = na.affine_backward(dout, x, W, dx_out=dx, dW_out=dW, db_out=db)
    assert res[0] is dx and res[1] is dW and res[2] is db
    for got, want in zip(res, backward(*f64(dout, x, W))):
        assert_matches(got, want, dtype, 9)
    o = np.empty((9, 8), dtype)
    assert na.affine_dx(dout, W, out=o) is o
    o = np.empty((8, 7), dtype)
    assert na.affine_dw(x, dout, out=o) is o
    o = np.empty(7, dtype)
    assert na.affine_db(dout, out=o) is o


def test_non_contiguous_out_is_filled():
    x, W, b, dout = make_inputs(9, 8, 7, np.float64)
    big = np.zeros((9, 14))
    out = big[:, ::2]
    assert na.affine_forward(x, W, b, out=out) is out
    assert_matches(out, forward(x, W, b), np.float64, 8)
    np.testing.assert_array_equal(big[:, 1::2], 0.0)
    dWT = np.zeros((7, 8)).T
    na.affine_dw(x, dout, out=dWT, accumulate=True)
    na.affine_dw(x, dout, out=dWT, accumulate=True)
    assert_matches(dWT, 2 * backward(dout, x, W)[1], np.float64, 18)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H", [3, 40])
def test_accumulate_adds_into_out(dtype, H):
    x, W, b, dout = make_inputs(13, 11, H, dtype)
    _, eW, eb = backward(*f64(dout, x, W))
    dW = np.ones((11, H), dtype)
    db = np.ones(H, dtype)
    dx, dW2, db2 = na.affine_backward(dout, x, W, dW_out=dW, db_out=db, accumulate=True)
    assert dW2 is dW and db2 is db
    assert_matches(dW, eW + 1, dtype, 13)
    assert_matches(db, eb + 1, dtype, 13)
    na.affine_dw(x, dout, out=dW, accumulate=True)
    na.affine_db(dout, out=db, accumulate=True)
    assert_matches(dW, 2 * eW + 1, dtype, 26)
    assert_matches(db, 2 * eb + 1, dtype, 26)


@pytest.mark.parametrize("dtype", DTYPES)
def test_inputs_are_not_modified(dtype):
    x, W, b, dout = make_inputs(21, 19, 17, dtype)
    copies = [a.copy() for a in (x, W, b, dout)]
    na.affine_forward(x, W, b)
    na.affine_backward(dout, x, W)
    na.affine_dx(dout, W)
    na.affine_dw(x, dout)
    na.affine_db(dout)
    for a, c in zip((x, W, b, dout), copies):
        np.testing.assert_array_equal(a, c)


def test_read_only_inputs_are_fine():
    x, W, b, dout = make_inputs(5, 4, 3, np.float64)
    for a in (x, W, b, dout):
        a.flags.writeable = False
    assert_matches(na.affine_forward(x, W, b), forward(x, W, b), np.float64, 4)
    na.affine_backward(dout, x, W)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_and_inf_propagate_like_numpy(dtype):
    x, W, b, dout = make_inputs(6, 5, 4, dtype)
    x[1, 2] = np.nan
    x[3, 0] = np.inf
    W[4, 1] = -np.inf
    with np.errstate(invalid="ignore"):
        expected = np.dot(x, W) + b
        y = na.affine_forward(x, W, b)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
        np.testing.assert_array_equal(np.isinf(y), np.isinf(expected))
        dx, dW, db = na.affine_backward(dout, x, W)
        edx, edW, edb = backward(dout, x, W)
    for got, want in ((dx, edx), (dW, edW), (db, edb)):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))


def test_no_bias_forward_and_empty_batch():
    x, W, _, dout = make_inputs(0, 4, 3, np.float32)
    y = na.affine_forward(x, W)
    assert y.shape == (0, 3) and y.dtype == np.float32
    dx, dW, db = na.affine_backward(dout, x, W)
    assert dx.shape == (0, 4)
    np.testing.assert_array_equal(dW, 0)
    np.testing.assert_array_equal(db, 0)


def test_warmup_compiles_what_the_calls_use():
    """After warmup() the calls of both dtypes, serial and parallel, one
    sample or a batch, compile nothing more."""
    from numba_affine import kernels

    na.warmup()
    entries = [kernels.entry(dt, parallel) for dt in (np.float32, np.float64) for parallel in (False, True)]
    assert all(len(e.signatures) == 1 for e in entries)  # one signature each, compile disabled
    dispatchers = (*kernels.product, kernels.row_product, kernels.column_sums)
    before = [len(d.signatures) for d in dispatchers]
    assert all(len(d.signatures) >= 2 for d in dispatchers[2:])  # float32 and float64
    for dtype in (np.float32, np.float64):
        for N, D, H in ((20, 50, 10), (1, 30, 7), (600, 400, 300)):  # serial, one sample, parallel
            x, W, b, dout = make_inputs(N, D, H, dtype)
            na.affine_forward(x, W, b)
            na.affine_backward(dout, x, W)
            na.affine_forward(x, W)
            # read-only (np.load(mmap_mode="r"), np.frombuffer), Fortran-order and strided inputs
            ro = [a.copy() for a in (x, W, b, dout)]
            for a in ro:
                a.flags.writeable = False
            na.affine_forward(ro[0], ro[1], ro[2])
            na.affine_backward(ro[3], ro[0], ro[1])
            na.affine_forward(np.asfortranarray(x), np.asfortranarray(W), b)
            na.affine_backward(np.asfortranarray(dout), x[:, ::-1][:, ::-1], W[::1, :])
            big = np.zeros((2 * N, 2 * D), dtype)
            big[::2, ::2] = x
            na.affine_forward(big[::2, ::2], W, b)
            na.affine_dw(big[::2, ::2], dout)
            na.affine_db(dout)
            na.affine_db(ro[3])
    assert [len(d.signatures) for d in dispatchers] == before
