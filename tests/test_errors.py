"""Every bad call raises TypeError / ValueError / RuntimeError with a message
naming the shapes or dtypes at fault, before any kernel runs, and modifies nothing."""

import re

import numpy as np
import pytest

import numba_affine as na

F64 = np.float64


def ones(*shape, dtype=F64):
    return np.ones(shape, dtype)


def snapshot(args):
    return [(a, a.copy()) for a in args if isinstance(a, np.ndarray)]


def check(exc, pattern, fn, *args, **kwargs):
    before = snapshot(list(args) + list(kwargs.values()))
    with pytest.raises(exc, match=pattern):
        fn(*args, **kwargs)
    for a, copy in before:
        np.testing.assert_array_equal(a, copy)


CASES = [
    # (exception, message pattern, function, args, kwargs)
    ("inner mismatch", ValueError, re.escape("x has shape (4, 6) but W has shape (5, 3)"), na.affine_forward, (ones(4, 6), ones(5, 3)), {}),
    ("N-D width", ValueError, re.escape("x has shape (4, 2, 3) (flattened to (4, 6)) but W has shape (5, 3)"), na.affine_forward, (ones(4, 2, 3), ones(5, 3)), {}),
    ("1-D width", ValueError, re.escape("x has shape (6,) but W has shape (5, 3)"), na.affine_forward, (ones(6), ones(5, 3)), {}),
    ("bias length", ValueError, re.escape("b has shape (4,) but W has shape (5, 3)"), na.affine_forward, (ones(2, 5), ones(5, 3), ones(4)), {}),
    ("bias 2-D", ValueError, re.escape("b has shape (1, 3) but W has shape (5, 3)"), na.affine_forward, (ones(2, 5), ones(5, 3), ones(1, 3)), {}),
    ("W 1-D", ValueError, re.escape("W must be 2-D with shape (D, H), got shape (5,)"), na.affine_forward, (ones(2, 5), ones(5)), {}),
    ("W 3-D", ValueError, re.escape("got shape (5, 3, 1)"), na.affine_forward, (ones(2, 5), ones(5, 3, 1)), {}),
    ("x 0-D", ValueError, re.escape("got shape ()"), na.affine_forward, (np.array(1.0), ones(1, 3)), {}),
    ("x list", TypeError, "x must be a numpy.ndarray, got list", na.affine_forward, ([[1.0, 2.0]], ones(2, 3)), {}),
    ("x scalar", TypeError, "x must be a numpy.ndarray, got float", na.affine_forward, (1.0, ones(1, 3)), {}),
    ("W None", TypeError, "W must be a numpy.ndarray, got NoneType", na.affine_forward, (ones(2, 5), None), {}),
    ("x masked", TypeError, "plain numpy.ndarray, got MaskedArray", na.affine_forward, (np.ma.masked_array(ones(2, 5)), ones(5, 3)), {}),
    ("mixed dtypes", TypeError, "x has dtype float32 but W has dtype float64", na.affine_forward, (ones(2, 5, dtype=np.float32), ones(5, 3)), {}),
    ("mixed bias dtype", TypeError, "x has dtype float64 but b has dtype float32", na.affine_forward, (ones(2, 5), ones(5, 3), ones(3, dtype=np.float32)), {}),
    ("float16", TypeError, r"x has dtype float16; numba-affine supports float32 and float64", na.affine_forward, (ones(2, 5, dtype=np.float16), ones(5, 3, dtype=np.float16)), {}),
    ("complex", TypeError, r"x has dtype complex128", na.affine_forward, (ones(2, 5, dtype=np.complex128), ones(5, 3)), {}),
    ("int", TypeError, r"x has dtype int64.*astype", na.affine_forward, (ones(2, 5, dtype=np.int64), ones(5, 3)), {}),
    ("object", TypeError, r"W has dtype object", na.affine_forward, (ones(2, 5), ones(5, 3, dtype=object)), {}),
    ("bool", TypeError, r"x has dtype bool", na.affine_forward, (ones(2, 5, dtype=bool), ones(5, 3)), {}),
    ("out shape", ValueError, re.escape("out has shape (2, 4) and dtype float64 but the result has shape (2, 3)"), na.affine_forward, (ones(2, 5), ones(5, 3)), {"out": ones(2, 4)}),
    ("out dtype", ValueError, re.escape("out has shape (2, 3) and dtype float32 but the result has shape (2, 3) and dtype float64"), na.affine_forward, (ones(2, 5), ones(5, 3)), {"out": ones(2, 3, dtype=np.float32)}),
    ("out list", TypeError, "out must be a numpy.ndarray", na.affine_forward, (ones(2, 5), ones(5, 3)), {"out": [[0.0] * 3] * 2}),
    ("out aliases x", ValueError, "out shares memory with x", na.affine_forward, (ones(3, 3), ones(3, 3)), {}),
    ("bwd dout rows", ValueError, re.escape("dout has shape (3, 3) but x has shape (2, 5) and W has shape (5, 3): expected dout of shape (2, 3)"), na.affine_backward, (ones(3, 3), ones(2, 5), ones(5, 3)), {}),
    ("bwd dout cols", ValueError, re.escape("dout has shape (2, 4) but x has shape (2, 5) and W has shape (5, 3)"), na.affine_backward, (ones(2, 4), ones(2, 5), ones(5, 3)), {}),
    ("bwd dout 3-D", ValueError, re.escape("dout has shape (2, 3, 1)"), na.affine_backward, (ones(2, 3, 1), ones(2, 5), ones(5, 3)), {}),
    ("bwd dout 1-D for batch", ValueError, re.escape("dout has shape (3,) but x has shape (2, 5)"), na.affine_backward, (ones(3), ones(2, 5), ones(5, 3)), {}),
    ("bwd x width", ValueError, re.escape("x has shape (2, 4) but W has shape (5, 3)"), na.affine_backward, (ones(2, 3), ones(2, 4), ones(5, 3)), {}),
    ("bwd mixed", TypeError, "dout has dtype float64 but x has dtype float32", na.affine_backward, (ones(2, 3), ones(2, 5, dtype=np.float32), ones(5, 3)), {}),
    ("bwd dW_out shape", ValueError, re.escape("dW_out has shape (3, 5)"), na.affine_backward, (ones(2, 3), ones(2, 5), ones(5, 3)), {"dW_out": ones(3, 5)}),
    ("bwd dx_out shape", ValueError, re.escape("dx_out has shape (2, 4)"), na.affine_backward, (ones(2, 3), ones(2, 5), ones(5, 3)), {"dx_out": ones(2, 4)}),
    ("bwd db_out dtype", ValueError, re.escape("db_out has shape (3,) and dtype float32"), na.affine_backward, (ones(2, 3), ones(2, 5), ones(5, 3)), {"db_out": ones(3, dtype=np.float32)}),
    ("bwd accumulate without out", ValueError, "accumulate=True needs dW_out=", na.affine_backward, (ones(2, 3), ones(2, 5), ones(5, 3)), {"accumulate": True}),
    ("dx dout cols", ValueError, re.escape("dout has shape (2, 4) but W has shape (5, 3)"), na.affine_dx, (ones(2, 4), ones(5, 3)), {}),
    ("dx dout 3-D", ValueError, re.escape("dout has shape (2, 3, 1) but W has shape (5, 3)"), na.affine_dx, (ones(2, 3, 1), ones(5, 3)), {}),
    ("dx out", ValueError, re.escape("out has shape (2, 3)"), na.affine_dx, (ones(2, 3), ones(5, 3)), {"out": ones(2, 3)}),
    ("dw rows", ValueError, re.escape("dout has shape (3, 3) but x has shape (2, 5)"), na.affine_dw, (ones(2, 5), ones(3, 3)), {}),
    ("dw dout 3-D", ValueError, re.escape("dout has shape (2, 3, 1) but x has shape (2, 5)"), na.affine_dw, (ones(2, 5), ones(2, 3, 1)), {}),
    ("dw mixed", TypeError, "x has dtype float64 but dout has dtype float32", na.affine_dw, (ones(2, 5), ones(2, 3, dtype=np.float32)), {}),
    ("dw accumulate without out", ValueError, "accumulate=True needs out=", na.affine_dw, (ones(2, 5), ones(2, 3)), {"accumulate": True}),
    ("db 3-D", ValueError, re.escape("dout must have shape (N, H) or (H,), got shape (2, 3, 1)"), na.affine_db, (ones(2, 3, 1),), {}),
    ("db int", TypeError, "dout has dtype int32", na.affine_db, (ones(2, 3, dtype=np.int32),), {}),
    ("db out", ValueError, re.escape("out has shape (2,)"), na.affine_db, (ones(2, 3),), {"out": ones(2)}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_error_catalogue(case):
    _, exc, pattern, fn, args, kwargs = case
    if case[0] == "out aliases x":
        x = ones(3, 3)
        check(exc, pattern, fn, x, ones(3, 3), out=x)
        return
    check(exc, pattern, fn, *args, **kwargs)


def test_outputs_that_overlap_each_other_are_refused():
    """Two outputs that share memory would overwrite each other's results."""
    x, W, dout = ones(4, 5), ones(5, 3), ones(4, 3)
    buf = np.zeros(40)
    pairs = [
        ({"dx_out": buf[:20].reshape(4, 5), "dW_out": buf[5:20].reshape(5, 3)}, "dx_out shares memory with dW_out"),
        ({"dW_out": buf[:15].reshape(5, 3), "db_out": buf[14:17]}, "dW_out shares memory with db_out"),
        ({"dx_out": buf[:20].reshape(4, 5), "db_out": buf[::7][:3]}, "dx_out shares memory with db_out"),
    ]
    for outs, message in pairs:
        check(ValueError, message, na.affine_backward, dout, x, W, **outs)
        assert not buf.any()  # nothing written
    # views of one buffer that do not overlap are fine
    dx, dW, db = na.affine_backward(dout, x, W, dx_out=buf[:20].reshape(4, 5), dW_out=buf[20:35].reshape(5, 3), db_out=buf[35:38])
    np.testing.assert_array_equal(buf[20:35], np.full(15, 4.0))


@pytest.mark.parametrize("flag", [1, 0, None, "yes", 1.0, np.int64(1)])
def test_accumulate_must_be_a_bool(flag):
    x, dout = ones(4, 5), ones(4, 3)
    out_w, out_b = np.zeros((5, 3)), np.zeros(3)
    for fn, args, kwargs in (
        (na.affine_dw, (x, dout), {"out": out_w}),
        (na.affine_db, (dout,), {"out": out_b}),
        (na.affine_backward, (dout, x, ones(5, 3)), {"dW_out": out_w, "db_out": out_b}),
    ):
        check(TypeError, "accumulate must be a bool", fn, *args, accumulate=flag, **kwargs)
    assert not out_w.any() and not out_b.any()
    # numpy's bool is a bool
    na.affine_dw(x, dout, out=out_w, accumulate=np.bool_(True))
    np.testing.assert_array_equal(out_w, np.full((5, 3), 4.0))


def test_read_only_out():
    out = np.zeros((2, 3))
    out.flags.writeable = False
    check(ValueError, "out is read-only", na.affine_forward, ones(2, 5), ones(5, 3), out=out)
    db = np.zeros(3)
    db.flags.writeable = False
    check(ValueError, "db_out is read-only", na.affine_backward, ones(2, 3), ones(2, 5), ones(5, 3), db_out=db)


def test_failed_accumulate_leaves_outputs_untouched():
    dW = np.full((5, 3), 7.0)
    db = np.full(3, 7.0)
    with pytest.raises(ValueError):
        na.affine_backward(ones(2, 3), ones(2, 5), ones(5, 3), dW_out=dW, db_out=np.zeros(4), accumulate=True)
    np.testing.assert_array_equal(dW, 7.0)
    np.testing.assert_array_equal(db, 7.0)


def test_layer_errors():
    with pytest.raises(ValueError, match=re.escape("b has shape (4,) but W has shape (5, 3)")):
        na.Affine(ones(5, 3), ones(4))
    with pytest.raises(TypeError, match="W must be a numpy.ndarray"):
        na.Affine([[1.0]])
    layer = na.Affine(ones(5, 3), ones(3))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(ones(2, 3))
    layer.forward(ones(2, 5))
    with pytest.raises(ValueError, match=re.escape("dout has shape (4, 3) but x has shape (2, 5)")):
        layer.backward(ones(4, 3))
    assert layer.dW is None and layer.db is None


def test_warmup_rejects_other_dtypes():
    with pytest.raises(TypeError, match="float32 and float64, got int64"):
        na.warmup((np.int64,))


def test_numerical_gradient_errors():
    with pytest.raises(TypeError, match="floating-point"):
        na.numerical_gradient(lambda v: 0.0, np.ones(3, dtype=np.int64))
    x = np.ones(3)
    x.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        na.numerical_gradient(lambda v: 0.0, x)
