"""``python -m numba_affine``: the seed notebook's walk-through on this library.

Replays *Deep Learning from Scratch* ch. 5's Affine notebook (transposes,
the forward and backward formulas, the Affine class) with numba-affine's
``Affine`` and functions, checks every result against the notebook's numpy
formulas, then prints a short speed table against the notebook's numpy layer.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from . import Affine, affine_backward, affine_forward, show_config, warmup
from .bench import format_table, measure


def walkthrough(seed: int = 0) -> None:
    """Print the seed's shapes, computed by numba-affine, checked against numpy."""
    A = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    print(A)
    print(A.shape)
    print(A.T)
    print(A.T.shape)

    N, D, H = 20, 50, 10  # batch, neurons of the previous layer, of the next
    rng = np.random.default_rng(seed)
    X = rng.random((N, D))
    W = rng.random((D, H))
    b = rng.random(H)
    print(X.shape)
    print(W.shape)
    print(b.shape)

    Y = affine_forward(X, W, b)
    print(Y.shape)
    np.testing.assert_allclose(Y, np.dot(X, W) + b, rtol=1e-12)

    dY = rng.random((N, H))
    print(dY.shape)
    dX, dW, db = affine_backward(dY, X, W)
    print(dX.shape)
    print(dW.shape)
    print(db.shape)
    np.testing.assert_allclose(dX, np.dot(dY, W.T), rtol=1e-12)
    np.testing.assert_allclose(dW, np.dot(X.T, dY), rtol=1e-12)
    np.testing.assert_allclose(db, np.sum(dY, axis=0), rtol=1e-12)

    layer = Affine(W, b)
    print(layer.x)
    print(layer.W.shape)
    print(layer.b.shape)
    Y = layer.forward(X)
    print(Y.shape)
    dX = layer.backward(dY)
    print(dX.shape)
    print(layer.dW.shape)
    print(layer.db.shape)
    np.testing.assert_allclose(dX, np.dot(dY, W.T), rtol=1e-12)
    np.testing.assert_allclose(layer.dW, np.dot(X.T, dY), rtol=1e-12)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--config"]:
        show_config()
        return 0
    if args:
        print("usage: python -m numba_affine [--config]", file=sys.stderr)
        return 2
    print("== The seed notebook's Affine walk-through, on numba-affine ==")
    t0 = time.perf_counter()
    warmup((np.float64, np.float32))
    compile_s = time.perf_counter() - t0
    walkthrough()
    print("every result above matches the notebook's numpy formulas")
    print(f"\n(kernels compiled or loaded from the cache in {compile_s:.1f} s)")
    print("\n== Speed against the seed's numpy layer (this machine, now) ==")
    rows = []
    shapes = [(20, 50, 10), (100, 784, 100)]
    for dtype in ("float64", "float32"):
        for shape in shapes:
            print(f"  timing {dtype} {'x'.join(map(str, shape))} ...", file=sys.stderr, flush=True)
            rows.append(measure(shape, dtype, rounds=5, with_torch=False, settle=0.12))
    print(format_table(rows))
    print("full table: python -m numba_affine.bench")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
