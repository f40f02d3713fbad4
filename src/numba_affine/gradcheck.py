"""Numerical gradients by central differences, as in *Deep Learning from Scratch*."""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["numerical_gradient"]


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Gradient of a scalar function by central differences.

    Each element of ``x`` is moved by ``+h`` and ``-h`` in turn, ``f`` is
    called (it may read ``x`` through a closure, as the book's
    ``lambda W: net.loss(x, t)`` does), and the element is restored to its
    exact original value, so ``x`` is unchanged afterwards.

    Parameters
    ----------
    f : callable
        ``f(x) -> float``.
    x : ndarray of float32 or float64, any shape, writeable
    h : float
        Step.

    Returns
    -------
    grad : ndarray, x's shape and dtype

    Examples
    --------
    >>> import numpy as np
    >>> from numba_affine import numerical_gradient
    >>> x = np.array([3.0, 4.0])
    >>> np.round(numerical_gradient(lambda v: float(np.sum(v ** 2)), x), 6)
    array([6., 8.])
    """
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        raise TypeError(f"x must be a floating-point numpy.ndarray, got {type(x).__name__}"
                        + (f" of dtype {x.dtype}" if isinstance(x, np.ndarray) else ""))
    if not x.flags.writeable:
        raise ValueError("x is read-only; numerical_gradient moves its elements in place")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        idx = it.multi_index
        saved = x[idx].copy()
        x[idx] = saved + h
        fxh1 = float(f(x))
        x[idx] = saved - h
        fxh2 = float(f(x))
        x[idx] = saved
        grad[idx] = (fxh1 - fxh2) / (2 * h)
        it.iternext()
    return grad
