"""Batch invariance: a row of the forward or of dx does not depend on the batch it is in.

For fixed D, H, dtype and bias, row i of ``affine_forward(x, W, b)`` and of
``affine_dx(dout, W)`` must be bitwise identical whatever N, the row's
offset, the rows around it, the thread count, ``out=`` and x's layout.
The shapes cross every threshold that changes the plan: the serial and
the parallel twin (``PARALLEL_MIN_WORK``), the narrow and the wide register
block (H up to one vector or more), several blocks of k (D above
``PANEL_BYTES`` / 128 elements), W packed or read in place.
"""

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference import make_inputs

import numba_affine as na

FLOATS = [np.float32, np.float64]


def with_threads(n, fn):
    old = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        return fn()
    finally:
        numba.set_num_threads(old)


def assert_rows_equal(batch, rows, offset, what):
    """batch[j] == rows[offset + j] bit for bit (NaN-free inputs)."""
    want = rows[offset:offset + batch.shape[0]]
    bad = np.flatnonzero(np.any(batch != want, axis=1))
    assert bad.size == 0, f"{what}: rows {list(bad[:5] + offset)} differ from the same rows computed alone"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    data=st.data(),
    D=st.one_of(st.integers(1, 40), st.integers(250, 600)),
    H=st.one_of(st.integers(1, 20), st.integers(30, 300)),
    dtype=st.sampled_from(FLOATS),
    threads=st.sampled_from([1, 2]),
    bias=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_forward_and_dx_rows_do_not_depend_on_the_batch(data, D, H, dtype, threads, bias, seed):
    # the reference: every row computed alone (one-row batches: the serial twin, nothing packed)
    total = data.draw(st.integers(1, 3000), label="rows")
    x, W, b, dout = make_inputs(total, D, H, dtype, seed)
    b = b if bias else None
    start = data.draw(st.integers(0, total - 1), label="offset")
    stop = data.draw(st.integers(start + 1, total), label="end")
    probe = sorted({start, stop - 1, (start + stop) // 2})
    alone_y = {i: na.affine_forward(x[i], W, b) for i in probe}
    alone_dx = {i: na.affine_dx(dout[i], W) for i in probe}

    def batch():
        return na.affine_forward(x[start:stop], W, b), na.affine_dx(dout[start:stop], W)

    y, dx = with_threads(threads, batch)
    for i in probe:
        assert np.array_equal(y[i - start], alone_y[i]), f"forward row {i} of x[{start}:{stop}]"
        assert np.array_equal(dx[i - start], alone_dx[i]), f"dx row {i} of dout[{start}:{stop}]"


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("D,H", [(50, 10), (784, 100), (512, 10), (517, 259), (300, 520), (64, 1030)])
def test_probe_batch_sizes(D, H, dtype):
    """Rows 0-7 of x[:n] against x[:8], n from 8 to 4096; and every row against its 1-row batch."""
    x, W, b, dout = make_inputs(4096, D, H, dtype, 7)
    y8, dx8 = na.affine_forward(x[:8], W, b), na.affine_dx(dout[:8], W)
    alone = np.stack([na.affine_forward(x[i], W, b) for i in range(8)])
    assert np.array_equal(y8, alone)
    for n in (9, 13, 21, 34, 57, 94, 155, 256, 421, 693, 1141, 1877, 4096):
        for threads in (1, 2):
            y, dx = with_threads(threads, lambda: (na.affine_forward(x[:n], W, b), na.affine_dx(dout[:n], W)))
            assert_rows_equal(y[:8], y8, 0, f"forward, batch of {n}, {threads} threads")
            assert_rows_equal(dx[:8], dx8, 0, f"dx, batch of {n}, {threads} threads")


@pytest.mark.parametrize("dtype", FLOATS)
def test_one_sample_against_a_batch_of_two_torch_issue(dtype):
    """pytorch/pytorch#136338's case: D = H = 1000, x[:1] against x[:2] (and up to 64)."""
    x, W, b, _ = make_inputs(64, 1000, 1000, dtype)
    one = na.affine_forward(x[:1], W, b)
    assert np.array_equal(na.affine_forward(x[0], W, b), one[0])
    for n in (2, 3, 8, 17, 64):
        assert np.array_equal(na.affine_forward(x[:n], W, b)[:1], one), f"x[:1] against x[:{n}]"


@pytest.mark.parametrize("dtype", FLOATS)
def test_layout_out_and_nd_input_do_not_change_rows(dtype):
    D, H, N = 300, 70, 500
    x, W, b, dout = make_inputs(N, D, H, dtype, 3)
    ref = np.stack([na.affine_forward(x[i], W, b) for i in range(N)])
    fortran = np.asfortranarray(x)
    strided = np.repeat(x, 2, axis=0)[::2]
    reversed_cols = x[:, ::-1].copy()[:, ::-1]
    for name, xx in (("fortran", fortran), ("strided", strided), ("negative strides", reversed_cols)):
        assert np.array_equal(na.affine_forward(xx, W, b), ref), name
    out = np.empty((N, H), dtype, order="F")
    assert np.array_equal(na.affine_forward(x, W, b, out=out), ref)
    x4 = x.reshape(N, 3, 10, 10)
    assert np.array_equal(na.affine_forward(x4, W, b), ref)
    # the layer's dx, for a 4-D input, row by row
    dx_alone = np.stack([na.affine_dx(dout[i], W) for i in range(N)])
    dx, _, _ = na.affine_backward(dout, x4, W)
    assert np.array_equal(dx.reshape(N, D), dx_alone)
    layer = na.Affine(W, b)
    assert np.array_equal(layer.forward(x4), ref)
    assert np.array_equal(layer.backward(dout).reshape(N, D), dx_alone)


def test_tuning_changes_do_not_change_rows(set_tuning):
    """Another plan (thresholds, tile sizes, packing) gives the same bits."""
    D, H, N = 600, 130, 700
    x, W, b, _ = make_inputs(N, D, H, np.float32, 5)
    ref = na.affine_forward(x, W, b)
    set_tuning(PARALLEL_MIN_WORK=0, PANEL_BYTES=2048, MC_MAX=12, MIN_TASK_ROWS=12, B_BLOCK_BYTES=2048, PACK_B_MIN_ROW_BYTES=1, PACK_B_MIN_ROWS=1)
    assert np.array_equal(na.affine_forward(x, W, b), ref)
    assert np.array_equal(na.affine_forward(x[:1], W, b), ref[:1])
