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
``_nrt=False``
    No reference counting: a kernel only borrows the arrays it is given
    and allocates nothing (its caller passes the scratch). With it, every
    array argument cost an atomic increment and decrement per call, and an
    allocation when called from Python: half of a seed-size call.

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

#: ``NUMBA_THREADING_LAYER`` values under which Numba tries TBB first.
_TBB_FIRST = ("default", "safe", "threadsafe", "forksafe", "tbb")


def _layer_setting() -> str:
    return (os.environ.get("NUMBA_THREADING_LAYER") or "default").lower()


def _load_tbb() -> str | None:
    """Make the ``tbb`` wheel's ``libtbb.so.12`` visible to Numba; return its path.

    Numba's threading-layer search tries TBB first but finds the library by
    its soname only, and pip puts the wheel's library in ``<prefix>/lib``,
    which is not on the loader path of a virtualenv. Loaded once by full
    path, the soname is known to the process and Numba's lookup finds it.
    Off Linux, without the wheel, or when ``NUMBA_THREADING_LAYER`` names a
    layer Numba would not try TBB for (``omp``, ``workqueue``), nothing is
    loaded (Numba finds TBB by itself on Windows, or falls back to OpenMP).
    """
    if not sys.platform.startswith("linux") or _layer_setting() not in _TBB_FIRST:
        return None  # only where TBB is the layer Numba will use
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

import hashlib  # noqa: E402
from pathlib import Path  # noqa: E402

from numba import njit  # noqa: E402
from numba.core.caching import FunctionCache  # noqa: E402
from numba.core.errors import NumbaWarning  # noqa: E402


def _source_digest() -> str:
    """SHA-256 of every source file of the package, in a fixed order."""
    h = hashlib.sha256()
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


#: Part of every cached kernel's key (see :class:`_DigestCache`).
SOURCE_DIGEST = _source_digest()


class _DigestCache(FunctionCache):
    """Numba's on-disk cache, keyed also by :data:`SOURCE_DIGEST`.

    Numba checks only the file of the function it caches (numba#1833), but
    a kernel embeds the helpers it calls from other files (the register
    blocks, the packers, the vector intrinsics). With the digest of every
    source file in the key, editing or upgrading any of them compiles
    afresh instead of loading stale machine code.
    """

    def _index_key(self, sig, codegen):
        return super()._index_key(sig, codegen) + (SOURCE_DIGEST,)

FASTMATH = frozenset({"contract"})
_BASE_OPTIONS = {"fastmath": set(FASTMATH), "nogil": True, "error_model": "numpy", "_nrt": False}


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
                dispatcher = njit(cache=True, **opts)(pyfunc)
        except RuntimeError:
            pass
        else:
            if isinstance(getattr(dispatcher, "_cache", None), FunctionCache):
                dispatcher._cache = _DigestCache(dispatcher.py_func)
            return dispatcher
    return njit(cache=False, **opts)(pyfunc)


def _probe():  # pragma: no cover - never called, only decorated
    return 0


def _cache_usable() -> bool:
    """Whether Numba finds a writable cache location for this package's files."""
    if not _cache_wanted():
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NumbaWarning)
            njit(cache=True)(_probe)
    except RuntimeError:
        return False
    return True


#: Options of the ``@overload`` implementations that users' jitted code
#: calls (:mod:`numba_affine.jitted`): cached like the kernels, and like
#: them not cached where no cache location is writable.
OVERLOAD_OPTIONS = {"cache": _cache_usable()}


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


def fixed_signature(twin: Callable, signature) -> Callable:
    """A new dispatcher of ``twin``'s function and options, compiled now for ``signature`` only.

    Calls whose argument types convert to it (a writeable array where the
    signature says read-only) run that code; any other types raise
    ``TypeError`` at the call instead of compiling another specialization.
    It shares ``twin``'s cache entries (same function, same options).
    """
    dispatcher = _jit(twin.py_func, parallel=bool(twin.targetoptions.get("parallel", False)))
    dispatcher.compile(signature)
    dispatcher.disable_compile()
    return dispatcher


def twin_kernels(pyfunc: Callable) -> KernelPair:
    """Compile ``pyfunc`` as a parallel kernel and as its serial twin."""
    return KernelPair(
        parallel=_jit(pyfunc, parallel=True),
        serial=_jit(_renamed_copy(pyfunc, "_serial"), parallel=False),
    )
