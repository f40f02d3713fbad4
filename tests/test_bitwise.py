"""Same bits on every x86-64 CPU: every output of a fixed problem set matches
the SHA-256 digests committed in ``tests/data/digests.json`` (recorded before
the AVX2 micro-kernel rewrite, so this also proves the rewrite kept every bit)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bitwise
import numba_affine as na
from numba_affine._simd import VECTOR_BYTES
from numba_affine.bench import avx2_environment


def test_outputs_match_the_committed_digests():
    now, then = bitwise.compute(), bitwise.recorded()
    assert now.keys() == then.keys()
    assert [k for k in then if now[k] != then[k]] == []


def test_a_changed_bit_changes_the_digest():
    # the comparison above can fail: one ulp in one element is seen
    x, W, b, *_ = bitwise.problem(20, 50, 10, np.float64)
    y = na.affine_forward(x, W, b)
    y.flat[7] = np.nextafter(y.flat[7], np.inf)
    assert bitwise._sha(y) != bitwise.recorded()["20x50x10 float64 forward+b"]


def test_inputs_are_platform_independent_integers_scaled():
    x = bitwise.uniform(np.random.default_rng(1), (1000,), np.float64)
    assert x.min() >= -1 and x.max() < 1
    assert np.all(np.abs(x * 2.0**52 - np.round(x * 2.0**52)) == 0)  # multiples of 2^-52


@pytest.mark.skipif(VECTOR_BYTES != 64, reason="no AVX-512 here: the AVX2 build is the only build this machine runs")
def test_the_avx2_build_gives_the_same_bits():
    env = dict(os.environ, **avx2_environment())
    here = Path(__file__).parent
    code = "import bitwise, numba_affine._simd as s; assert s.VECTOR_BYTES == 32; raise SystemExit(bitwise.main())"
    run = subprocess.run([sys.executable, "-c", code], env=env, cwd=here, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "140 of 140 digests match" in run.stdout


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(20, 50, 10), (97, 31, 45), (300, 257, 130)], ids=lambda s: "x".join(map(str, s)))
def test_accumulating_micro_batches_in_order_gives_the_whole_batch_bit_for_bit(shape, dtype):
    """dW and db are chains over the batch index: micro-batches summed with
    accumulate=True, in order, continue the same chains. (300x257x130 takes
    the parallel path.)"""
    N, D, H = shape
    x, W, b, dout, *_ = bitwise.problem(N, D, H, dtype)
    _, dW_all, db_all = na.affine_backward(dout, x, W)
    rng = np.random.default_rng(N)
    for _ in range(10):
        cuts = np.sort(rng.choice(np.arange(1, N), size=rng.integers(1, 5), replace=False))
        dW = np.zeros((D, H), dtype)
        db = np.zeros(H, dtype)
        for lo, hi in zip([0, *cuts], [*cuts, N]):
            na.affine_backward(dout[lo:hi], x[lo:hi], W, dW_out=dW, db_out=db, accumulate=True)
        np.testing.assert_array_equal(dW, dW_all, err_msg=f"cuts {cuts}")
        np.testing.assert_array_equal(db, db_all, err_msg=f"cuts {cuts}")
    # the functions one at a time accumulate the same way
    dW = np.zeros((D, H), dtype)
    db = np.zeros(H, dtype)
    for lo, hi in ((0, N // 3), (N // 3, N)):
        na.affine_dw(x[lo:hi], dout[lo:hi], out=dW, accumulate=True)
        na.affine_db(dout[lo:hi], out=db, accumulate=True)
    np.testing.assert_array_equal(dW, dW_all)
    np.testing.assert_array_equal(db, db_all)


def test_adding_separate_partial_gradients_is_not_promised_to_be_exact():
    # what the guarantee does not cover, shown so that the README's caveat stays true
    x, W, b, dout, *_ = bitwise.problem(300, 257, 130, np.float32)
    _, whole, _ = na.affine_backward(dout, x, W)
    _, first, _ = na.affine_backward(dout[:150], x[:150], W)
    _, second, _ = na.affine_backward(dout[150:], x[150:], W)
    assert not np.array_equal(first + second, whole)
    np.testing.assert_allclose(first + second, whole, rtol=0, atol=1e-4)
