"""Plain-numpy oracle: the seed notebook's formulas, and the shapes every test uses.

The benchmarks read the same shapes and input maker (``benchmarks/common.py``).
"""

from __future__ import annotations

import numpy as np

DTYPES = (np.float32, np.float64)

#: (N, D, H): one, primes, the seed, remainders of every block size of the
#: kernels (4x3 register blocks, 128x96 and 32x512 tiles, k blocks of
#: 128/512/1024), empty batch / width / output, and sizes that take the
#: parallel path (N*D*H >= 100_000).
SHAPES = [
    (1, 1, 1),
    (2, 3, 5),
    (7, 13, 5),
    (11, 17, 19),
    (20, 50, 10),  # the seed
    (5, 4, 3),
    (6, 7, 2),
    (33, 129, 17),
    (3, 1031, 7),
    (129, 97, 98),
    (131, 67, 514),
    (257, 513, 13),
    (0, 5, 3),
    (4, 0, 3),
    (4, 5, 0),
    (61, 1, 37),
]


def forward(x, W, b=None):
    """The seed: ``np.dot(x, W) + b`` on x flattened to (N, D) (1-D stays 1-D)."""
    x2 = x if x.ndim <= 2 else x.reshape(x.shape[0], int(np.prod(x.shape[1:])))
    y = np.dot(x2, W)
    return y if b is None else y + b


def backward(dout, x, W):
    """The seed: dx = dout.W^T (in x's shape), dW = x^T.dout, db = sum over the batch."""
    if x.ndim == 2 and dout.ndim == 2:  # exactly the seed's three lines
        return np.dot(dout, W.T), np.dot(x.T, dout), np.sum(dout, axis=0)
    x2 = x.reshape(1, x.size) if x.ndim == 1 else x.reshape(x.shape[0], int(np.prod(x.shape[1:])))
    d2 = dout.reshape(1, -1) if dout.ndim == 1 else dout
    dx = np.dot(d2, W.T).reshape(x.shape)
    dW = np.dot(x2.T, d2)
    db = np.sum(d2, axis=0)
    return dx, dW, db


def make_inputs(N, D, H, dtype, seed=0):
    """x (N, D), W (D, H), b (H,), dout (N, H): standard normal in ``dtype``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D)).astype(dtype)
    W = rng.standard_normal((D, H)).astype(dtype)
    b = rng.standard_normal(H).astype(dtype)
    dout = rng.standard_normal((N, H)).astype(dtype)
    return x, W, b, dout


def tolerance(dtype, k):
    """Absolute tolerance for sums of ``k`` products of standard normals."""
    eps = np.finfo(dtype).eps
    return 8 * eps * (k + 1) ** 0.5 * max(1.0, k ** 0.5)


def assert_matches(actual, expected, dtype, k):
    """``actual`` has ``expected``'s shape and ``dtype``, within sum-of-``k`` rounding."""
    assert actual.dtype == np.dtype(dtype), (actual.dtype, dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance(dtype, k))
