"""The one place that decides Numba options for every kernel, and the threading layer.

Kernels are plain loops under one of two decorators defined here:

* :func:`helper` -- a serial function (a building block, or a kernel that
  never needs threads).
* :func:`twin_kernels` -- a kernel whose outer loop is ``prange``, compiled
  twice: ``parallel=True`` for large work and a serial twin (``prange`` runs
  as ``range``) for small work, where waking the threads costs more than the
  arithmetic.

Options, and why:

``fastmath = {"contract"}``
    ``a * b + c`` may become one FMA. No ``reassoc``: every sum keeps the
    order the loops give it (results independent of threads and batch), and
    no ``nnan`` / ``ninf``: NaN and Inf propagate as in numpy.
``nogil=True``
    Python threads calling the kernels run them at the same time.
``cache=True``
    Compiled code is stored on disk; turned off, not fatal, when no cache
    directory can be written, and by ``NUMBA_AFFINE_NO_CACHE=1``.
``error_model="numpy"``
    No Python ZeroDivisionError checks in loops.

Numba's cache key ignores target options, so the serial twin is built from a
*copy* of the Python function with its own qualified name; the two variants
never share a cache entry.
"""

from __future__ import annotations

import ctypes
import os
import sys
import types
import warnings
from typing import Callable, NamedTuple

# GNU OpenMP (Numba's fallback layer) is told to spin for a bounded time
# after a parallel loop, then sleep: back-to-back calls find the threads
# awake, and an idle thread gives its core back to a busy machine soon.
# The user's own settings win; they only matter before OpenMP starts.
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "200000")


def _load_tbb() -> str | None:
    """Make the ``tbb`` wheel's ``libtbb.so.12`` visible to Numba; return its path.

    Numba's threading-layer search tries TBB first but finds the library by
    its soname only, and pip puts the wheel's library in ``<prefix>/lib``,
    which is not on the loader path of a virtualenv. Loaded once by full
    path, the soname is known to the process and Numba's lookup finds it.
    Off Linux, or without the wheel, nothing happens (Numba finds TBB by
    itself on Windows, or falls back to OpenMP). ``NUMBA_THREADING_LAYER``
    still decides when the user sets it.
    """
    if not sys.platform.startswith("linux"):
        return None
    for path in _tbb_candidates():
        try:
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError:
            continue
        return path
    return None


def _tbb_candidates():
    """``<prefix>/lib/libtbb.so.12``, else wherever the ``tbb`` distribution put it."""
    path = os.path.join(sys.prefix, "lib", "libtbb.so.12")
    if os.path.exists(path):
        yield path
        return
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        files = distribution("tbb").files or ()
    except PackageNotFoundError:
        return
    for f in files:
        if f.name == "libtbb.so.12":
            yield str(f.locate())


#: Where TBB was loaded from, or None (see :func:`_load_tbb`).
TBB_LIBRARY = _load_tbb()

from numba import njit  # noqa: E402
from numba.core.errors import NumbaWarning  # noqa: E402

FASTMATH = frozenset({"contract"})
_BASE_OPTIONS = {"fastmath": set(FASTMATH), "nogil": True, "error_model": "numpy"}


def _cache_wanted() -> bool:
    return os.environ.get("NUMBA_AFFINE_NO_CACHE", "") in ("", "0")


def _jit(pyfunc: Callable, **options) -> Callable:
    """Compile lazily with the project options; fall back to no cache.

    Numba raises ``RuntimeError`` at decoration time when it finds no
    writable cache location (read-only install and unwritable
    ``NUMBA_CACHE_DIR``). The library must still import then.
    """
    opts = dict(_BASE_OPTIONS, **options)
    if _cache_wanted():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NumbaWarning)
                return njit(cache=True, **opts)(pyfunc)
        except RuntimeError:
            pass
    return njit(cache=False, **opts)(pyfunc)


#: Options of the ``@overload`` implementations that users' jitted code
#: calls (:mod:`numba_affine.jitted`): cached like the kernels.
OVERLOAD_OPTIONS = {"cache": _cache_wanted()}


def helper(pyfunc: Callable) -> Callable:
    """Decorate a serial jitted function (compiled lazily, per dtype)."""
    return _jit(pyfunc)


class KernelPair(NamedTuple):
    """The two compiled variants of one kernel."""

    parallel: Callable
    serial: Callable


def _renamed_copy(pyfunc: Callable, suffix: str) -> Callable:
    clone = types.FunctionType(
        pyfunc.__code__,
        pyfunc.__globals__,
        pyfunc.__name__ + suffix,
        pyfunc.__defaults__,
        pyfunc.__closure__,
    )
    clone.__qualname__ = pyfunc.__qualname__ + suffix
    clone.__doc__ = pyfunc.__doc__
    clone.__module__ = pyfunc.__module__
    return clone


def twin_kernels(pyfunc: Callable) -> KernelPair:
    """Compile ``pyfunc`` as a parallel kernel and as its serial twin."""
    return KernelPair(
        parallel=_jit(pyfunc, parallel=True),
        serial=_jit(_renamed_copy(pyfunc, "_serial"), parallel=False),
    )
