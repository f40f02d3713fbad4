"""The public functions called inside users' @njit code (numba_affine.jitted).

Every result is compared with the seed's numpy formulas and, bit for bit,
with the same call from Python; errors must be the Python call's.
"""

import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from numba import njit, prange
from numba.core.errors import TypingError

from reference import DTYPES, SHAPES, assert_matches, backward, forward, make_inputs

import numba_affine as na
from numba_affine import affine_backward, affine_db, affine_dw, affine_dx, affine_forward


@njit
def j_forward(x, W, b):
    return affine_forward(x, W, b)


@njit
def j_forward_no_bias(x, W):
    return affine_forward(x, W)


@njit
def j_backward(dout, x, W):
    return affine_backward(dout, x, W)


@njit
def j_parts(dout, x, W):
    return affine_dx(dout, W), affine_dw(x, dout), affine_db(dout)


@njit
def j_into(x, W, b, dout, y, dx, dW, db, accumulate):
    """Every output given, by keyword and positionally."""
    a = affine_forward(x, W, b, out=y)
    r = affine_backward(dout, x, W, dx_out=dx, dW_out=dW, db_out=db, accumulate=accumulate)
    return a, r


@njit
def j_parts_into(x, dout, W, dx, dW, db, accumulate):
    return affine_dx(dout, W, dx), affine_dw(x, dout, dW, accumulate), affine_db(dout, out=db, accumulate=accumulate)


def assert_same(jitted, python):
    for j, p in zip(jitted, python):
        assert j.dtype == p.dtype and j.shape == p.shape
        np.testing.assert_array_equal(j, p)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_numpy_and_the_python_call_bitwise(shape, dtype):
    N, D, H = shape
    x, W, b, dout = make_inputs(N, D, H, dtype)
    y = j_forward(x, W, b)
    assert_matches(y, forward(x, W, b), dtype, D)
    assert_same([y, j_forward_no_bias(x, W)], [affine_forward(x, W, b), affine_forward(x, W)])
    got = j_backward(dout, x, W)
    for g, want, k in zip(got, backward(dout, x, W), (H, N, N)):
        assert_matches(g, want, dtype, k)
    assert_same(got, affine_backward(dout, x, W))
    assert_same(j_parts(dout, x, W), got)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_sample_and_nd_input(dtype):
    x, W, b, dout = make_inputs(6, 12, 5, dtype)
    for xs in (x[2], x.reshape(6, 3, 4), x.reshape(6, 2, 3, 2)):
        d = dout[2] if xs.ndim == 1 else dout
        y = j_forward(xs, W, b)
        assert y.shape == ((5,) if xs.ndim == 1 else (6, 5))
        assert_same([y], [affine_forward(xs, W, b)])
        got = j_backward(d, xs, W)
        assert got[0].shape == xs.shape
        assert_same(got, affine_backward(d, xs, W))
        for g, want in zip(got, backward(d, xs, W)):
            assert_matches(g, want, dtype, 12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs_and_outputs(dtype):
    x, W, b, dout = make_inputs(9, 26, 14, dtype)
    xs, Ws, bs, ds = x[:, ::2], W[::2, ::2], b[::2], dout[:, ::2]  # 9x13, 13x7, 7, 9x7
    x0, W0, b0, d0 = (np.array(a) for a in (xs, Ws, bs, ds))
    assert_same([j_forward(xs, Ws, bs)], [affine_forward(x0, W0, b0)])
    assert_same(j_backward(ds, xs, Ws), affine_backward(d0, x0, W0))
    y, dx, dW, db = (np.zeros((2 * n, 2 * m), dtype)[::2, ::2] for n, m in ((9, 7), (9, 13), (13, 7), (1, 7)))
    db = db[0]
    a, r = j_into(xs, Ws, bs, ds, y, dx, dW, db, False)
    assert a is y and all(o is g for o, g in zip(r, (dx, dW, db)))
    assert_same([y, dx, dW, db], [affine_forward(x0, W0, b0), *affine_backward(d0, x0, W0)])


@pytest.mark.parametrize("dtype", DTYPES)
def test_outputs_are_written_returned_and_accumulated(dtype):
    x, W, b, dout = make_inputs(20, 50, 10, dtype)
    outs = [np.full(s, np.nan, dtype) for s in ((20, 10), (20, 50), (50, 10), (10,))]
    a, r = j_into(x, W, b, dout, *outs, False)
    assert a is outs[0] and all(o is g for o, g in zip(r, outs[1:]))
    assert_same(outs, [affine_forward(x, W, b), *affine_backward(dout, x, W)])
    before = [o.copy() for o in outs]
    j_into(x, W, b, dout, *outs, True)
    want_dW = affine_dw(x, dout, out=before[2].copy(), accumulate=True)
    want_db = affine_db(dout, out=before[3].copy(), accumulate=True)
    assert_same(outs[1:], [before[1], want_dW, want_db])  # dx is not accumulated
    parts = [np.full(s, np.nan, dtype) for s in ((20, 50), (50, 10), (10,))]
    j_parts_into(x, dout, W, *parts, False)
    assert_same(parts, before[1:])


def test_inputs_are_not_modified():
    x, W, b, dout = make_inputs(7, 13, 5, np.float64)
    copies = [a.copy() for a in (x, W, b, dout)]
    j_forward(x, W, b)
    j_backward(dout, x, W)
    for a, c in zip((x, W, b, dout), copies):
        np.testing.assert_array_equal(a, c)


def test_rows_do_not_depend_on_the_batch_in_jitted_code():
    for dtype in DTYPES:
        x, W, b, dout = make_inputs(300, 77, 19, dtype)
        y, dx = j_forward(x, W, b), j_parts(dout, x, W)[0]
        for i in (0, 13, 299):
            np.testing.assert_array_equal(j_forward(x[i], W, b), y[i])
            np.testing.assert_array_equal(j_parts(dout[i], x[i], W)[0], dx[i])
            np.testing.assert_array_equal(j_forward(x[i:i + 5], W, b), y[i:i + 5])


# ----------------------------------------------------------------------------- errors


def python_error(fn, *args, **kwargs):
    with pytest.raises(ValueError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def test_wrong_shapes_raise_the_python_message():
    x, W, b, dout = make_inputs(4, 5, 3, np.float64)
    cases = [
        (j_forward, affine_forward, (x, W[:4], b)),
        (j_forward, affine_forward, (x, W, b[:2])),
        (j_forward_no_bias, affine_forward, (x[:, :2], W)),
        (j_backward, affine_backward, (dout[:, :2], x, W)),
        (j_backward, affine_backward, (dout[:3], x, W)),
        (j_backward, affine_backward, (dout, x, W[:4])),
        (j_parts, None, (dout, x, W[:, :2])),
    ]
    for jitted, python, args in cases:
        with pytest.raises(ValueError) as info:
            jitted(*args)
        if python is not None:
            assert str(info.value) == python_error(python, *args)
        assert "(" in str(info.value)  # the message prints the shapes


def test_wrong_outputs_raise_the_python_message():
    x, W, b, dout = make_inputs(4, 5, 3, np.float64)
    good = [np.empty(s) for s in ((4, 3), (4, 5), (5, 3), (3,))]
    for i, bad in enumerate([np.empty((3, 4)), np.empty((4, 4)), np.empty((3, 5)), np.empty(4)]):
        outs = list(good)
        outs[i] = bad
        with pytest.raises(ValueError) as info:
            j_into(x, W, b, dout, *outs, False)
        if i == 0:
            want = python_error(affine_forward, x, W, b, out=bad)
        else:
            want = python_error(affine_backward, dout, x, W, dx_out=outs[1], dW_out=outs[2], db_out=outs[3])
        assert str(info.value) == want
    with pytest.raises(ValueError) as info:  # an output that is an input
        j_into(x, W, b, dout, good[0], x, good[2], good[3], False)
    assert str(info.value) == python_error(affine_backward, dout, x, W, dx_out=x, dW_out=good[2], db_out=good[3])
    shared = np.zeros(20)
    dx_out, dW_out = shared.reshape(4, 5), shared[5:].reshape(5, 3)
    with pytest.raises(ValueError) as info:  # two outputs that overlap
        j_into(x, W, b, dout, good[0], dx_out, dW_out, good[3], False)
    assert str(info.value) == python_error(affine_backward, dout, x, W, dx_out=dx_out, dW_out=dW_out, db_out=good[3])
    assert "dx_out shares memory with dW_out" in str(info.value)


def test_accumulate_without_out_raises_the_python_message():
    @njit
    def f(x, dout):
        return affine_dw(x, dout, accumulate=True)

    x, _, _, dout = make_inputs(4, 5, 3, np.float64)
    with pytest.raises(ValueError) as info:
        f(x, dout)
    assert str(info.value) == python_error(affine_dw, x, dout, accumulate=True)


@pytest.mark.parametrize(
    "args, words",
    [
        ((np.ones((2, 3), np.int64), np.ones((3, 2)), np.ones(2)), ["x", "int64", "float32 and float64"]),
        ((np.ones((2, 3), np.float32), np.ones((3, 2)), np.ones(2, np.float32)), ["x", "float32", "W", "float64"]),
        ((np.ones((2, 3)), np.ones((3, 2)), np.ones(2, np.float16)), ["b", "float16"]),
        ((np.ones((2, 3)), np.ones((3, 2)), np.ones(2, np.complex128)), ["b", "complex128"]),
    ],
)
def test_wrong_dtypes_fail_at_compile_time_naming_them(args, words):
    with pytest.raises(TypingError) as info:
        j_forward(*args)
    for w in words:
        assert w in str(info.value)


def test_read_only_output_and_non_bool_flag_fail_at_compile_time():
    x, W, b, dout = make_inputs(4, 5, 3, np.float64)
    out = np.empty((4, 3))
    out.flags.writeable = False
    with pytest.raises(TypingError, match="out is read-only"):
        njit(lambda x, W, out: affine_forward(x, W, out=out))(x, W, out)
    with pytest.raises(TypingError, match="accumulate must be a bool"):
        njit(lambda d, out: affine_db(d, out=out, accumulate=1))(dout, np.empty(3))


# ----------------------------------------------------------------------------- threads


@njit(parallel=True)
def forward_per_chunk(x, W, b, y, chunk):
    """The user's prange over independent calls (each runs the serial kernels)."""
    for c in prange((x.shape[0] + chunk - 1) // chunk):
        lo = c * chunk
        hi = min(lo + chunk, x.shape[0])
        affine_forward(x[lo:hi], W, b, out=y[lo:hi])


@pytest.mark.parametrize("dtype", DTYPES)
def test_calls_inside_a_users_prange(dtype):
    x, W, b, _ = make_inputs(1000, 64, 33, dtype)
    y = np.full((1000, 33), np.nan, dtype)
    forward_per_chunk(x, W, b, y, 37)
    np.testing.assert_array_equal(y, affine_forward(x, W, b))


PRANGE_SCRIPT = textwrap.dedent(
    """
    import numpy as np, numba
    from numba import njit, prange
    import numba_affine as na

    @njit(parallel=True)
    def steps(x, W, dout, dW):
        for i in prange(x.shape[0]):
            na.affine_dw(x[i], dout[i], out=dW[i])

    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 30, 20)); W = rng.standard_normal((20, 7)); dout = rng.standard_normal((8, 30, 7))
    dW = np.empty((8, 20, 7))
    steps(x, W, dout, dW)
    want = np.stack([na.affine_dw(x[i], dout[i]) for i in range(8)])
    assert np.array_equal(dW, want)
    print(numba.threading_layer())
    """
)


@pytest.mark.parametrize("layer", ["omp", "workqueue", "default"])
def test_prange_works_on_every_threading_layer(layer):
    env = dict(os.environ)
    if layer != "default":
        env["NUMBA_THREADING_LAYER"] = layer
    proc = subprocess.run([sys.executable, "-c", PRANGE_SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    if layer != "default":
        assert proc.stdout.strip() == layer


# ----------------------------------------------------------------------------- cache and memory


CACHED_MODULE = textwrap.dedent(
    """
    import numpy as np
    from numba import njit
    import numba_affine as na

    @njit(cache=True)
    def step(x, W, b, dout):
        y = na.affine_forward(x, W, b)
        dx, dW, db = na.affine_backward(dout, x, W)
        return y, dx, dW, db
    """
)


def test_users_cache_true_function(tmp_path):
    (tmp_path / "usermod.py").write_text(CACHED_MODULE)
    run = textwrap.dedent(
        """
        import numpy as np, usermod
        x, W, b, d = (np.ones(s) for s in ((4, 5), (5, 3), (3,), (4, 3)))
        y, dx, dW, db = usermod.step(x, W, b, d)
        assert (y == 6).all() and (dx == 3).all() and (dW == 4).all() and (db == 4).all()
        print(sum(usermod.step.stats.cache_hits.values()))
        """
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(tmp_path))
    hits = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True, env=env, cwd=tmp_path,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        hits.append(int(proc.stdout.split()[-1]))
    assert hits == [0, 1]  # compiled once, loaded from the cache the second time


ALLOCATIONS_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from numba import njit
    from numba.core.runtime import rtsys
    import numba_affine as na
    from numba_affine.bench import jitted_sgd_steps

    @njit
    def allocating_steps(x, W, b, dout, lr, steps):
        for _ in range(steps):
            na.affine_forward(x, W, b)
            dx, dW, db = na.affine_backward(dout, x, W)
            W -= lr * dW
            b -= lr * db

    def count(fn, steps):
        before = rtsys.get_allocation_stats().alloc
        fn(steps)
        return rtsys.get_allocation_stats().alloc - before

    def allocations(fn):
        # per step: a call from Python also counts one for each array it unboxes
        fn(1)
        return (count(fn, 101) - count(fn, 1)) / 100

    for dtype in (np.float64, np.float32):
        rng = np.random.default_rng(0)
        x, W, dout = (rng.standard_normal(s).astype(dtype) for s in ((20, 50), (50, 10), (20, 10)))
        b = np.zeros(10, dtype)
        lr = dtype(1e-3)
        outs = (np.empty((20, 10), dtype), np.empty((20, 50), dtype), np.empty((50, 10), dtype), np.empty(10, dtype))
        print(allocations(lambda n: jitted_sgd_steps(x, W, b, dout, lr, n, *outs)),
              allocations(lambda n: allocating_steps(x, W, b, dout, lr, n)))
    """
)


def test_a_step_with_outputs_allocates_nothing():
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    proc = subprocess.run([sys.executable, "-c", ALLOCATIONS_SCRIPT], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for line in proc.stdout.split("\n")[:2]:
        with_outs, without = map(float, line.split())
        assert with_outs == 0
        assert without >= 4  # the counter works: y, dx, dW, db are new arrays on every step


def test_python_calls_are_unchanged_by_the_overloads():
    # registering the overloads must leave the Python functions themselves in place
    assert na.affine_forward is affine_forward and not isinstance(affine_forward, numba.core.dispatcher.Dispatcher)


def test_readme_jitted_example_runs_and_matches_python_steps(tmp_path, monkeypatch):
    import runpy
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = readme.split("### Inside your own `@njit` code")[1].split("```python\n")[1].split("```")[0]
    (tmp_path / "readme_example.py").write_text(code)  # cache=True needs a source file
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    space = runpy.run_path(str(tmp_path / "readme_example.py"))
    rng = np.random.default_rng(0)
    x, W, dout = (rng.standard_normal(s) for s in ((20, 50), (50, 10), (20, 10)))
    b = np.zeros(10)
    for _ in range(100):
        _, dW, db = affine_backward(dout, x, W)
        W -= 1e-3 * dW
        b -= 1e-3 * db
    np.testing.assert_array_equal(space["W"], W)
    np.testing.assert_array_equal(space["b"], b)
