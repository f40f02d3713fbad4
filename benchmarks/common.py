"""Shapes, dtypes and inputs of the asv suite, and the numpy reference.

The input maker and the seed's numpy formulas are the tests' own
(``tests/reference.py``), so benchmarks and tests exercise the same data.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from reference import backward as numpy_backward  # noqa: E402
from reference import forward as numpy_forward  # noqa: E402
from reference import make_inputs  # noqa: E402

#: label -> (N, D, H)
SHAPES = {
    "seed 20x50x10": (20, 50, 10),
    "mnist 100x784x100": (100, 784, 100),
    "head 2048x512x10": (2048, 512, 10),
    "square 1024x1024x1024": (1024, 1024, 1024),
}
DTYPES = ["float32", "float64"]

#: label -> (N, D, H): the small-call table of ``python -m numba_affine.bench``
#: (the seed's size, one sample, two small batches).
SMALL_SHAPES = {
    "seed 20x50x10": (20, 50, 10),
    "one sample 1x784x100": (1, 784, 100),
    "batch 8x64x32": (8, 64, 32),
    "batch 32x128x10": (32, 128, 10),
}


def flops(shape: tuple[int, int, int]) -> float:
    """Floating-point operations of one product N x D x H (multiply + add)."""
    N, D, H = shape
    return 2.0 * N * D * H


def require(*names: str):
    """The numba_affine attributes, or NotImplementedError so asv skips an
    old commit that lacks one (skipped, not failed)."""
    try:
        import numba_affine
    except ImportError as exc:  # pragma: no cover - a commit before the package
        raise NotImplementedError(str(exc)) from exc
    found = []
    for name in names:
        obj = getattr(numba_affine, name, None)
        if obj is None:
            raise NotImplementedError(f"numba_affine.{name} does not exist at this commit")
        found.append(obj)
    return found[0] if len(found) == 1 else found


def inputs(label: str, dtype: str, shapes: dict = SHAPES):
    """x, W, b, dout for a labelled shape."""
    return make_inputs(*shapes[label], np.dtype(dtype))


#: The method of ``python -m numba_affine.bench`` (``numba_affine.bench.compare``),
#: copied here so that every commit of the history is measured the same way
#: whatever its own bench module does: batches of ~30 ms, each after a
#: 0.15 s pause (OpenBLAS's workers spin ~0.1 s after a call), the libraries
#: interleaved, the median of the rounds.
SETTLE_SECONDS = 0.15
BATCH_SECONDS = 0.03


def _calls_per_batch(fn) -> int:
    time.sleep(SETTLE_SECONDS)
    fn()
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < BATCH_SECONDS:
        fn()
        count += 1
    return max(1, count)


def compare(fns: dict, rounds: int = 7) -> dict:
    """Median seconds per call of each function, timed in interleaved rounds (as the bench CLI)."""
    numbers = {name: _calls_per_batch(fn) for name, fn in fns.items()}
    times: dict = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(SETTLE_SECONDS)
            t0 = time.perf_counter()
            for _ in range(numbers[name]):
                fn()
            times[name].append((time.perf_counter() - t0) / numbers[name])
    return {name: float(np.median(ts)) for name, ts in times.items()}


class SeedNumpyAffine:
    """The seed notebook's Affine class, verbatim in behaviour."""

    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.dW = None
        self.db = None

    def forward(self, x):
        self.x = x
        return np.dot(x, self.W) + self.b

    def backward(self, dout):
        dx = np.dot(dout, self.W.T)
        self.dW = np.dot(self.x.T, dout)
        self.db = np.sum(dout, axis=0)
        return dx


__all__ = ["SHAPES", "SMALL_SHAPES", "DTYPES", "compare", "flops", "require", "inputs", "numpy_forward", "numpy_backward", "SeedNumpyAffine"]
