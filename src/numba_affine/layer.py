"""The Affine layer of *Deep Learning from Scratch*, on numba-affine's kernels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .api import affine_backward, affine_forward, check_parameters

__all__ = ["Affine"]


@dataclass(eq=False)
class Affine:
    """Fully connected layer ``y = x . W + b`` with the book's API.

    The layer keeps the very arrays it is given (``layer.W is W``): an
    optimizer that updates ``W`` or ``b`` in place (``W -= lr * dW``) is seen
    by the next :meth:`forward`, as in the book. Nothing is copied.

    Parameters
    ----------
    W : ndarray, shape (D, H)
        Weights, float32 or float64.
    b : ndarray, shape (H,), optional
        Bias of W's dtype; ``None`` for a layer without bias (then ``db``
        stays ``None``).

    Attributes
    ----------
    x : ndarray or None
        The last forward input as given (``None`` before the first forward).
    original_x_shape : tuple or None
        Its shape; ``backward`` returns dx in this shape.
    dW, db : ndarray or None
        Gradients from the last :meth:`backward` (``None`` before it).

    Examples
    --------
    >>> import numpy as np
    >>> from numba_affine import Affine
    >>> layer = Affine(np.random.rand(50, 10), np.random.rand(10))
    >>> Y = layer.forward(np.random.rand(20, 50))
    >>> dX = layer.backward(np.random.rand(20, 10))
    >>> Y.shape, dX.shape, layer.dW.shape, layer.db.shape
    ((20, 10), (20, 50), (50, 10), (10,))
    """

    W: np.ndarray
    b: np.ndarray | None = None
    x: np.ndarray | None = field(default=None, init=False)
    original_x_shape: tuple | None = field(default=None, init=False)
    dW: np.ndarray | None = field(default=None, init=False)
    db: np.ndarray | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        check_parameters(self.W, self.b)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Compute ``x . W + b`` and remember x for :meth:`backward`.

        Parameters
        ----------
        x : ndarray, shape (D,), (N, D) or (N, d1, ..., dk)

        Returns
        -------
        out : ndarray, shape (H,) or (N, H)
        """
        out = affine_forward(x, self.W, self.b)
        self.x = x
        self.original_x_shape = x.shape
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Store ``dW`` and ``db`` and return ``dx`` in the forward input's shape.

        Parameters
        ----------
        dout : ndarray, shape (N, H) (or (H,) after a 1-D forward)

        Returns
        -------
        dx : ndarray, shape ``original_x_shape``

        Raises
        ------
        RuntimeError
            If called before :meth:`forward`.
        """
        if self.x is None:
            raise RuntimeError("Affine.backward called before forward: call forward(x) first")
        dx, dW, db = affine_backward(dout, self.x, self.W)
        self.dW = dW
        self.db = None if self.b is None else db
        return dx

    def __repr__(self) -> str:
        b = "None" if self.b is None else f"shape={self.b.shape}"
        return (
            f"Affine(W: shape={self.W.shape} dtype={self.W.dtype}, b: {b}, "
            f"x: {None if self.x is None else self.original_x_shape})"
        )
