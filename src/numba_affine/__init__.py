"""numba-affine: fast fully connected (Affine) layer kernels for the CPU.

Explicit-loop Numba kernels for ``Y = X.W + b`` and its gradients, and the
``Affine`` layer of *Deep Learning from Scratch* on top of them.
"""

from .api import affine_backward, affine_db, affine_dw, affine_dx, affine_forward, warmup
from . import jitted  # noqa: F401  (registers the functions for use inside @njit code)
from .config import show_config
from .gradcheck import numerical_gradient
from .layer import Affine

__version__ = "0.1.0"

__all__ = [
    "Affine",
    "affine_backward",
    "affine_db",
    "affine_dw",
    "affine_dx",
    "affine_forward",
    "numerical_gradient",
    "show_config",
    "warmup",
]
