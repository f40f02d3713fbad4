"""Hypothesis property tests and thread-count determinism."""

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import assert_matches, backward, forward, make_inputs

import numba_affine as na
from numba_affine import api

dims = st.integers(0, 40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(N=dims, D=dims, H=dims, dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**31), bias=st.booleans(), fortran=st.booleans())
def test_forward_and_backward_match_reference(N, D, H, dtype, seed, bias, fortran):
    x, W, b, dout = make_inputs(N, D, H, dtype, seed)
    if fortran:
        x, W = np.asfortranarray(x), np.asfortranarray(W)
    b = b if bias else None
    ref = [a.astype(np.float64) for a in (x, W)]
    assert_matches(na.affine_forward(x, W, b), forward(*ref, None if b is None else b.astype(np.float64)), dtype, D)
    got = na.affine_backward(dout, x, W)
    want = backward(dout.astype(np.float64), *ref)
    for g, w, k in zip(got, want, (H, N, N)):
        assert_matches(g, w, dtype, k)


@settings(max_examples=60, deadline=None)
@given(N=st.integers(1, 30), D=st.integers(1, 30), H=st.integers(1, 30), scale=st.floats(-3, 3))
def test_forward_is_the_linear_map_of_W(N, D, H, scale):
    """Homogeneous and additive, and the unit vectors pick W's rows exactly:
    only the map x -> x . W passes all three (any other linear map fails the last)."""
    x, W, b, _ = make_inputs(N, D, H, np.float64)
    x2 = make_inputs(N, D, H, np.float64, seed=1)[0]
    y1 = na.affine_forward(scale * x, W)
    y2 = scale * na.affine_forward(x, W)
    np.testing.assert_allclose(y1, y2, atol=1e-12 * (1 + abs(scale)) * D)
    np.testing.assert_allclose(na.affine_forward(x + x2, W), na.affine_forward(x, W) + na.affine_forward(x2, W),
                               atol=1e-12 * D)
    np.testing.assert_array_equal(na.affine_forward(np.eye(D), W), W)
    np.testing.assert_array_equal(na.affine_forward(np.eye(D), W, b), W + b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(257, 301, 129), (100, 784, 100), (2048, 64, 10), (31, 1500, 40)])
def test_results_are_bitwise_identical_for_any_thread_count(shape, dtype, set_tuning):
    set_tuning(PARALLEL_MIN_WORK=0)
    x, W, b, dout = make_inputs(*shape, dtype)
    results = []
    default = numba.get_num_threads()
    try:
        for threads in sorted({1, 2, default}):
            numba.set_num_threads(threads)
            results.append((na.affine_forward(x, W, b),) + na.affine_backward(dout, x, W))
    finally:
        numba.set_num_threads(default)
    for other in results[1:]:
        for a, c in zip(results[0], other):
            np.testing.assert_array_equal(a, c)
