"""The one place that decides Numba options for every kernel.

Kernels in :mod:`numba_affine.kernels` are plain loops under one of two
decorators defined here:

* :func:`helper` -- a serial building block called from kernels (a tile of a
  product; with ``inline=True`` a store or a scalar load, inlined).
* :func:`twin_kernels` -- a top-level kernel whose outer loop is ``prange``.
  It is compiled twice: a ``parallel=True`` variant for large work and a
  serial variant (``prange`` runs as ``range``) for small work, where the
  thread launch would cost more than the arithmetic.

Options, and why:

``fastmath = {"reassoc", "contract"}``
    ``reassoc`` lets LLVM's loop vectorizer split a dot product into SIMD
    lanes; ``contract`` lets it fuse ``a * b + c`` into one FMA. No ``nnan`` /
    ``ninf``: NaN and Inf must propagate as they do in numpy.
``nogil=True``
    Python threads calling the kernels run them at the same time.
``cache=True``
    Compiled code is stored on disk (first call ~0.4 s instead of ~1.5 s per
    kernel). The cache is turned off, not fatal, when no cache directory can
    be written; ``NUMBA_AFFINE_NO_CACHE=1`` also turns it off.
``error_model="numpy"``
    Division follows numpy (no Python ZeroDivisionError checks in loops).

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

# GNU OpenMP (Numba's default threading layer here) lets idle threads spin
# at the end of a parallel loop. When another process holds one of the
# cores, a spinning thread steals time from the one the loop is waiting
# for: measured slow-downs of 2.5-4.8x for a 100x784x100 step with one
# core busy, against 1.2-2.0x with passive waiting. Passive waiting costs
# a thread wake-up per parallel loop: nothing measurable in a tight
# training loop, up to 2x on medium products in the interleaved benchmark
# (README, Reliability). The user's own setting wins (OMP_WAIT_POLICY=ACTIVE
# for the spinning default); it only takes effect if OpenMP has not
# started yet in this process.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _load_tbb() -> str | None:
    """Make the ``tbb`` wheel's ``libtbb.so.12`` visible to Numba; return its path.

    Numba's default threading layer search tries TBB first, but it finds the
    library by its soname only, and pip puts the ``tbb`` wheel's library in
    ``<prefix>/lib``, which is not on the loader path of a virtualenv (or of
    the base interpreter here). Loaded once by its full path, the soname is
    known to the process and Numba's own lookup finds it. TBB's idle workers
    spin for about a millisecond after a parallel loop and then sleep, so
    back-to-back calls find them awake (GNU OpenMP's passive threads sleep
    at once and on this host take ~150 ms of calls to run at two-thread
    speed again; README, Performance). Without the ``tbb`` package (the
    ``[tbb]`` extra) or off Linux nothing happens, and Numba picks GNU OpenMP
    as before. ``NUMBA_THREADING_LAYER=omp`` (or any other value) still
    decides when set.
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

FASTMATH = frozenset({"reassoc", "contract"})
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


def helper(pyfunc: Callable | None = None, *, inline: bool = False):
    """Decorate a serial building block that kernels call.

    ``inline=True`` inlines it into every caller at the Numba IR level
    (``inline="always"``). Numba does not reliably let LLVM inline one
    jitted function into another, and a call passes each array as a
    struct of a dozen fields: a tiny helper called in an inner loop (one
    store of a result, one scalar load) must be inlined or it dominates the
    loop (measured: 2-3.5x slower tiles).
    """
    if pyfunc is None:
        return lambda f: helper(f, inline=inline)
    return _jit(pyfunc, inline="always") if inline else _jit(pyfunc)


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
