"""Public functions: validate, flatten N-D input, pick a kernel, own ``out=`` buffers.

Every check happens here, in Python, before any kernel runs, so a bad call
raises a clean ``TypeError`` / ``ValueError`` naming the shapes or dtypes at
fault and leaves every argument untouched. The shape checks are
:mod:`numba_affine._checks`, which users' jitted code runs too (the
overloads in :mod:`numba_affine.jitted`): both raise the same
:class:`~numba_affine._checks.ShapeError` with the same message. Kernels receive C-contiguous
arrays of one dtype; any other memory layout is copied into a contiguous
buffer for the duration of the call (the caller's arrays are never copied
into anything that outlives the call, and never modified).

All three products are one kernel, :func:`kernels.product`, with strides:

=========  ===========  ==========  ============  ===========
product    A (M x K)    B (K x P)   C (M x P)     summed over
=========  ===========  ==========  ============  ===========
forward    x            W           y             D
dx         dout         W.T         dx            H
dW         x.T          dout        dW            N
=========  ===========  ==========  ============  ===========
"""

from __future__ import annotations

import os
import threading

import numba
import numpy as np
from numba import get_num_threads, set_parallel_chunksize

from . import _checks, kernels, tuning
from ._checks import NAMES, SHARES, ShapeError

__all__ = [
    "affine_forward",
    "affine_backward",
    "affine_dx",
    "affine_dw",
    "affine_db",
    "warmup",
]

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_FLOATS = (_F32, _F64)
_ndarray = np.ndarray
#: An empty array per dtype, passed as the bias when there is none.
_EMPTY = {dt: np.empty(0, dt) for dt in _FLOATS}

_LANES = {dt: kernels.lanes_of(dt.itemsize) for dt in _FLOATS}


def _flat(a: np.ndarray, read_only: bool) -> np.ndarray:
    """C-contiguous ``a`` as a flat view; read-only when ``read_only``.

    For :func:`kernels.row_product` (one sample) and
    :func:`kernels.column_sums` (``affine_db``), which Numba compiles once
    per argument type: a call with any read-only input passes all its
    inputs read-only, so it has two specializations, not one per mix, and
    :func:`warmup` compiles both. (The product kernel has one signature
    that takes both, see :func:`kernels.entry`.)
    """
    v = a.reshape(-1)
    if read_only:
        v.flags.writeable = False
    return v


def _any_read_only(*arrays) -> bool:
    for a in arrays:
        if a is not None and not a.flags.writeable:
            return True
    return False


#: The empty bias, writeable and read-only, per dtype.
_NO_BIAS = {ro: {dt: _flat(e, ro) for dt, e in _EMPTY.items()} for ro in (False, True)}

# A process forked after a parallel kernel ran on GNU OpenMP must not start
# a parallel region again (the child is killed: "fork() called from a
# process already using GNU OpenMP"). Such children run the serial twin;
# it gives the same results, on one core. TBB and workqueue children keep
# their threads.
_in_forked_child = False


def _running_layer() -> str | None:
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run in this process
        return None


def _mark_forked_child() -> None:
    global _in_forked_child
    if _running_layer() == "omp":
        _in_forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mark_forked_child)

# Numba's workqueue layer terminates the process when two threads run
# parallel regions at once; there (and until the first region shows which
# layer runs) parallel calls take this lock, one at a time.
_workqueue_lock = threading.Lock()
_concurrent_layer = False


def _run_parallel(kernel, args) -> int:
    global _concurrent_layer
    old = set_parallel_chunksize(1)
    try:
        if _concurrent_layer:
            return kernel(*args)
        with _workqueue_lock:
            need = kernel(*args)
        _concurrent_layer = _running_layer() in ("tbb", "omp")
        return need
    finally:
        set_parallel_chunksize(old)


_scratch_local = threading.local()


def _scratch(dt: np.dtype, n: int) -> np.ndarray:
    """A 1-D buffer of at least ``n`` elements of ``dt``, owned by this thread.

    Only the calling thread's call uses it and every call overwrites what it
    uses (operands are packed afresh each time), so nothing leaks from one
    call into the next.
    """
    kept = _scratch_local.__dict__
    key = dt.char
    buf = kept.get(key)
    if buf is not None and buf.shape[0] >= n:
        return buf
    buf = np.empty(max(n, 1), dt)
    if n * dt.itemsize <= tuning.SCRATCH_KEEP_BYTES:
        kept[key] = buf
    return buf


#: An empty plan: the kernel plans a serial call itself (``kernels.plan``'s rules for one thread).
_NO_PLAN = np.zeros((0, len(kernels.PLAN_FIELDS)), np.int64)
#: Writeable empty 2-D arrays per dtype: outputs an operation does not write.
_NO_OUT = {dt: np.empty((0, 0), dt) for dt in _FLOATS}
#: Serial calls below this much work (bytes multiplied) take the short path (no plan, no threads).
_SERIAL_WORK = tuning.PARALLEL_MIN_WORK * 8
# (the short paths' names, bound once: each attribute read is a share of a seed-size call)
_empty = np.empty
_FORWARD, _FORWARD_BIAS, _BACKWARD = kernels.FORWARD, kernels.FORWARD | kernels.WITH_BIAS, kernels.BACKWARD


def _serial(dt: np.dtype):
    """The serial twin for ``dt`` (compiled on first use), also kept for the short paths."""
    short = _SHORT.get(dt)
    if short is None:
        short = _SHORT[dt] = kernels.entry(dt, False), _EMPTY[dt]
    return short[0]


#: dtype -> (serial twin, an empty 1-D array): the short paths' one lookup,
#: filled by the first call of the dtype (or :func:`warmup`).
_SHORT: dict = {}


def _again_with_scratch(kernel, dt: np.dtype, need: int, *args) -> None:
    """Call a serial ``kernel`` again, with this thread's kept scratch: it asked for ``need`` elements (more than its stack)."""
    kernel(*args, _scratch(dt, need), _NO_PLAN)


def _call(op, x2, W, b, d2, y, dx, dW, db, N, D, H):
    """Run one public call: ``kernels.product(op, ...)``, every array C-contiguous and checked.

    Small work (:func:`kernels.wants_threads`) and every call in a forked
    child run the serial twin on this thread, which plans itself. Parallel
    calls run with a chunk size of one task, so that when another process
    holds a core the free thread takes the tasks the slow one has not
    started.
    """
    dt = db.dtype
    if _in_forked_child or not kernels.wants_threads(N, D, H, dt.itemsize):
        kernel = _serial(dt)
        need = kernel(op, x2, W, b, d2, y, dx, dW, db, _EMPTY[dt], _NO_PLAN)
        if need:
            _again_with_scratch(kernel, dt, need, op, x2, W, b, d2, y, dx, dW, db)
        return
    plan, scratch = kernels.call_plan(op & 7, N, D, H, dt.itemsize, get_num_threads())
    if _run_parallel(kernels.entry(dt, True), (op, x2, W, b, d2, y, dx, dW, db, _scratch(dt, scratch), plan)):
        raise RuntimeError("numba-affine: kernels.call_plan's scratch is smaller than the kernel's plan needs")


def _forward(x2, W, b, y2):
    """y2 = x2 . W (+ b), all C-contiguous and checked; b may be None."""
    N, D = x2.shape
    H = W.shape[1]
    dt = y2.dtype
    if N == 1:  # one sample: one pass over W, no rows computed in vain
        ro = _any_read_only(x2, W, b)
        bias = _NO_BIAS[ro][dt] if b is None else _flat(b, ro)
        kernels.row_product(_flat(x2, ro), 0, _flat(W, ro), H, y2.reshape(-1), D, H, bias, b is not None, _LANES[dt])
        return
    op = kernels.FORWARD if b is None else kernels.FORWARD | kernels.WITH_BIAS
    _call(op, x2, W, _EMPTY[dt] if b is None else b, x2, y2, y2, y2, _EMPTY[dt], N, D, H)


def _sample_forward(x, W, b):
    """One sample's forward on the short path (x of shape (D,) or (1, D), W 2-D), or None.

    None when anything the general path checks or converts could matter:
    another dtype, a read-only or non-contiguous operand, a bias that is
    not an (H,) array. Then the general path decides, with its messages.
    """
    dt = x.dtype
    lanes = _LANES.get(dt)
    D, H = W.shape
    if lanes is None or W.dtype != dt or x.shape[-1] != D:
        return None
    fx, fW = x.flags, W.flags
    if not (fx.c_contiguous and fx.writeable and fW.c_contiguous and fW.writeable):
        return None
    if b is None:
        bias = _EMPTY[dt]
    elif type(b) is _ndarray and b.shape == (H,) and b.dtype == dt and b.flags.c_contiguous and b.flags.writeable:
        bias = b
    else:
        return None
    y = _empty(H, dt)
    kernels.row_product(x.reshape(-1), 0, W.reshape(-1), H, y, D, H, bias, b is not None, lanes)
    return y if x.ndim == 1 else y.reshape(1, H)


def _backward(op, x2, W, d2, dx2, dW, db, accumulate, N, D, H):
    """dx, dW and db (or one of them, per ``op``), all C-contiguous and checked.

    ``None`` stands for an array the operation does not read or write.
    """
    dt = d2.dtype
    none = _NO_OUT[dt]
    _call(op | (kernels.ACCUMULATE if accumulate else 0), d2 if x2 is None else x2, d2 if W is None else W,
          _EMPTY[dt], d2, none, none if dx2 is None else dx2, none if dW is None else dW,
          _EMPTY[dt] if db is None else db, N, D, H)


# ---------------------------------------------------------------- validation


def _array(name: str, a) -> np.ndarray:
    if type(a) is not np.ndarray:
        if isinstance(a, np.ndarray):  # subclasses (np.matrix, masked) are not supported
            raise TypeError(
                f"{name} must be a plain numpy.ndarray, got {type(a).__name__}; "
                f"pass np.asarray({name})"
            )
        raise TypeError(
            f"{name} must be a numpy.ndarray, got {type(a).__name__}; "
            f"pass np.asarray({name}, dtype=np.float64) (or float32)"
        )
    if a.dtype not in _FLOATS:
        raise TypeError(
            f"{name} has dtype {a.dtype}; numba-affine supports float32 and float64 only: "
            f"convert with {name}.astype(np.float64) or {name}.astype(np.float32)"
        )
    return a


def _operands(**arrays) -> np.dtype:
    """Check that every operand is a float32/float64 ndarray of one dtype.

    The common case (identical dtype objects) costs a few attribute reads;
    anything else goes through :func:`_array` and :func:`_same_dtype`,
    which raise with a message.
    """
    dt = None
    for a in arrays.values():
        if type(a) is not _ndarray:
            break
        if dt is None:
            dt = a.dtype
            if dt is not _F64 and dt is not _F32:
                break
        elif a.dtype is not dt:
            break
    else:
        return dt
    for name, a in arrays.items():
        _array(name, a)
    return _same_dtype(**arrays)


def _same_dtype(**arrays: np.ndarray) -> np.dtype:
    items = list(arrays.items())
    dt = items[0][1].dtype
    for name, a in items[1:]:
        if a.dtype != dt:
            first = items[0][0]
            raise TypeError(
                f"{first} has dtype {dt} but {name} has dtype {a.dtype}; every operand "
                f"must have the same dtype: convert one, e.g. {name}.astype({first}.dtype)"
            )
    return dt


def check_parameters(W, b) -> np.dtype:
    """Check a layer's parameters: W 2-D float, b ``None`` or (H,) of W's dtype."""
    W = _array("W", W)
    _checks.check_weights(W)  # (before b's type, as the errors have always come)
    if b is None:
        return W.dtype
    _same_dtype(W=W, b=_array("b", b))
    _checks.check_parameters(W, b)
    return W.dtype


def _rows(a: np.ndarray) -> np.ndarray:
    """Checked x (or dout) as 2-D (N, width): 1-D is one sample, N-D is flattened as in the book."""
    if a.ndim == 2:
        return a
    if a.ndim == 1:
        return a.reshape(1, a.shape[0])
    return a.reshape(a.shape[0], _checks.feature_width(a))


def _flag(name: str, value) -> bool:
    """``value`` if it is a bool (Python's or numpy's), else a TypeError naming it."""
    if value is True or value is False or type(value) is np.bool_:
        return bool(value)
    raise TypeError(f"{name} must be a bool (True or False), got {type(value).__name__} {value!r}")


def _separate(**outs) -> None:
    """Outputs given together must not share memory (each would overwrite the other's results)."""
    given = [(name, a) for name, a in outs.items() if a is not None]
    for i, (first, a) in enumerate(given):
        for second, b in given[i + 1 :]:
            if np.may_share_memory(a, b):
                raise ShapeError(SHARES, NAMES.index(first), NAMES.index(second))


def _contig(a: np.ndarray) -> np.ndarray:
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


class _Out:
    """An output buffer: the caller's ``out=`` (checked) or a new array.

    ``target`` is what the kernel writes: the caller's array itself when it
    is C-contiguous, else a contiguous scratch copied back by :meth:`finish`.
    """

    __slots__ = ("user", "target")

    def __init__(self, name: str, out, shape: tuple, dtype: np.dtype, accumulate: bool, inputs=()):
        if out is None:
            _checks.check_out(None, NAMES.index(name), shape, accumulate)
            self.user = None
            self.target = np.empty(shape, dtype)
            return
        if type(out) is not np.ndarray:
            raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
        if out.shape != shape or out.dtype != dtype:
            raise ShapeError(_checks.OUT_SHAPE, NAMES.index(name), out.shape, out.dtype, shape, dtype)
        if not out.flags.writeable:
            raise ValueError(f"{name} is read-only; pass a writeable array")
        for in_name, a in inputs:
            if np.may_share_memory(out, a):
                raise ShapeError(SHARES, NAMES.index(name), NAMES.index(in_name))
        self.user = out
        if out.flags.c_contiguous:
            self.target = out
        else:
            self.target = np.empty(shape, dtype)
            if accumulate:
                self.target[...] = out

    def finish(self) -> np.ndarray:
        if self.user is None or self.target is self.user:
            return self.target
        self.user[...] = self.target
        return self.user


# ---------------------------------------------------------------- public API


def affine_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray | None = None, *, out: np.ndarray | None = None) -> np.ndarray:
    """Forward pass of the Affine layer, ``y = x . W + b``.

    Parameters
    ----------
    x : ndarray, shape (D,), (N, D) or (N, d1, ..., dk) with d1*...*dk = D
        Input. 1-D is one sample; N-D input is flattened to (N, D) as in
        *Deep Learning from Scratch*. Any strides.
    W : ndarray, shape (D, H)
        Weights, same dtype as x (float32 or float64).
    b : ndarray, shape (H,), optional
        Bias. ``None`` means no bias.
    out : ndarray, optional
        C-ordered or not, shape of the result and x's dtype; written and returned.

    Returns
    -------
    y : ndarray, shape (H,) for 1-D x, else (N, H); x's dtype.

    Raises
    ------
    TypeError
        A non-array operand, a dtype other than float32/float64, or mixed dtypes.
    ValueError
        Shapes that do not fit (the message prints them), a bad ``out``.

    Examples
    --------
    >>> import numpy as np
    >>> from numba_affine import affine_forward
    >>> X = np.ones((20, 50)); W = np.full((50, 10), 0.5); b = np.zeros(10)
    >>> affine_forward(X, W, b).shape
    (20, 10)
    """
    # The common call (2-D operands, no out=, small work) is one kernel
    # call after a few attribute reads: at small sizes each Python
    # operation is a visible share of it. Another layout or a wrong dtype
    # does not match the kernel's signature (TypeError): the general path
    # below then copies, or raises the error that names it.
    # One sample (1-D x, or one row) streams W once instead (_sample_forward).
    if out is None and type(x) is _ndarray and type(W) is _ndarray and W.ndim == 2 and 1 <= x.ndim <= 2:
        if x.ndim == 1 or x.shape[0] == 1:
            y = _sample_forward(x, W, b)
            if y is not None:
                return y
        else:
            N, D = x.shape
            D_W, H = W.shape
            dt = x.dtype
            short = _SHORT.get(dt)
            if short is not None and D == D_W and N > 1 and N * D * H * dt.itemsize < _SERIAL_WORK:
                kernel, none = short
                if b is None:
                    op, bias = _FORWARD, none
                elif type(b) is _ndarray and b.shape == (H,):
                    op, bias = _FORWARD_BIAS, b
                else:
                    op = -1
                if op >= 0:
                    y = _empty((N, H), dt)
                    try:
                        need = kernel(op, x, W, bias, x, y, y, y, none, none, _NO_PLAN)
                        if need:
                            _again_with_scratch(kernel, dt, need, op, x, W, bias, x, y, y, y, none)
                        return y
                    except TypeError:
                        pass
    if b is None:
        dt = _operands(x=x, W=W)
    else:
        dt = _operands(x=x, W=W, b=b)
    _checks.check_forward(x, W, b, b is not None)
    D, H = W.shape
    x2 = _rows(x)
    N = x2.shape[0]
    inputs = (("x", x), ("W", W)) if b is None else (("x", x), ("W", W), ("b", b))
    y = _Out("out", out, (H,) if x.ndim == 1 else (N, H), dt, False, inputs)
    x2, W, b = _contig(x2), _contig(W), None if b is None else _contig(b)
    _forward(x2, W, b, y.target.reshape(N, H))
    return y.finish()


def affine_backward(
    dout: np.ndarray,
    x: np.ndarray,
    W: np.ndarray,
    *,
    dx_out: np.ndarray | None = None,
    dW_out: np.ndarray | None = None,
    db_out: np.ndarray | None = None,
    accumulate: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of the Affine layer in one call.

    ``dx = dout . W.T`` (in x's shape), ``dW = x.T . dout``, ``db = dout.sum(axis=0)``.

    Parameters
    ----------
    dout : ndarray, shape (N, H), or (H,) when x is 1-D
        Gradient of the loss with respect to the layer's output.
    x : ndarray
        The forward input, any shape accepted by :func:`affine_forward`.
    W : ndarray, shape (D, H)
    dx_out, dW_out, db_out : ndarray, optional
        Buffers for the results (exact shape and dtype, writeable).
    accumulate : bool
        Add dW and db into ``dW_out`` / ``db_out`` (both required) instead
        of overwriting them, e.g. to sum gradients over micro-batches.

    Returns
    -------
    dx, dW, db : ndarray
        Shapes x.shape, (D, H), (H,); all in the input dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from numba_affine import affine_backward
    >>> X = np.ones((20, 50)); W = np.ones((50, 10)); dY = np.ones((20, 10))
    >>> dx, dW, db = affine_backward(dY, X, W)
    >>> dx.shape, dW.shape, db.shape
    ((20, 50), (50, 10), (10,))
    """
    if (
        dx_out is None and dW_out is None and db_out is None and accumulate is False
        and type(dout) is _ndarray and type(x) is _ndarray and type(W) is _ndarray
        and W.ndim == 2 and 1 <= x.ndim == dout.ndim <= 2
    ):  # the common call (or one 1-D sample), as in affine_forward
        x2, d2 = (x, dout) if x.ndim == 2 else (x.reshape(1, -1), dout.reshape(1, -1))
        N, D = x2.shape
        D_W, H = W.shape
        dt = x.dtype
        short = _SHORT.get(dt)
        if short is not None and D_W == D and d2.shape == (N, H) and N * D * H * dt.itemsize < _SERIAL_WORK:
            kernel, none = short
            dx = _empty((N, D), dt)
            dW = _empty((D, H), dt)
            db = _empty(H, dt)
            try:
                need = kernel(_BACKWARD, x2, W, none, d2, dx, dx, dW, db, none, _NO_PLAN)
                if need:
                    _again_with_scratch(kernel, dt, need, _BACKWARD, x2, W, none, d2, dx, dx, dW, db)
                return (dx if x.ndim == 2 else dx.reshape(D)), dW, db
            except TypeError:
                pass
    accumulate = _flag("accumulate", accumulate)
    dt = _operands(dout=dout, x=x, W=W)
    _checks.check_backward(dout, x, W)
    D, H = W.shape
    x2 = _rows(x)
    N = x2.shape[0]
    d2 = _rows(dout)
    inputs = (("dout", dout), ("x", x), ("W", W))
    dx = _Out("dx_out", dx_out, x.shape, dt, False, inputs)
    dW = _Out("dW_out", dW_out, (D, H), dt, accumulate, inputs)
    db = _Out("db_out", db_out, (H,), dt, accumulate, inputs)
    _separate(dx_out=dx_out, dW_out=dW_out, db_out=db_out)
    d2, x2, W = _contig(d2), _contig(x2), _contig(W)
    _backward(kernels.BACKWARD, x2, W, d2, dx.target.reshape(N, D), dW.target, db.target, accumulate, N, D, H)
    return dx.finish(), dW.finish(), db.finish()


def affine_dx(dout: np.ndarray, W: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Input gradient ``dx = dout . W.T``.

    Parameters
    ----------
    dout : ndarray, shape (N, H) or (H,)
    W : ndarray, shape (D, H)
    out : ndarray, optional
        Shape (N, D) (or (D,) for 1-D dout), dout's dtype.

    Returns
    -------
    dx : ndarray, shape (N, D) or (D,)

    Examples
    --------
    >>> import numpy as np
    >>> from numba_affine import affine_dx
    >>> affine_dx(np.ones((20, 10)), np.ones((50, 10))).shape
    (20, 50)
    """
    dt = _operands(dout=dout, W=W)
    _checks.check_dx(dout, W)
    D, H = W.shape
    d2 = _rows(dout)
    N = d2.shape[0]
    shape = (D,) if dout.ndim == 1 else (N, D)
    dx = _Out("out", out, shape, dt, False, (("dout", dout), ("W", W)))
    d2, W = _contig(d2), _contig(W)
    _backward(kernels.DX, None, W, d2, dx.target.reshape(N, D), None, None, False, N, D, H)
    return dx.finish()


def affine_dw(x: np.ndarray, dout: np.ndarray, *, out: np.ndarray | None = None, accumulate: bool = False) -> np.ndarray:
    """Weight gradient ``dW = x.T . dout`` (x flattened to (N, D) first).

    Parameters
    ----------
    x : ndarray, shape (D,), (N, D) or (N, d1, ..., dk)
    dout : ndarray, shape (N, H), or (H,) when x is 1-D
    out : ndarray, optional
        Shape (D, H), x's dtype.
    accumulate : bool
        Add into ``out`` (required) instead of overwriting it.

    Returns
    -------
    dW : ndarray, shape (D, H)

    Examples
    --------
    >>> import numpy as np
    >>> from numba_affine import affine_dw
    >>> affine_dw(np.ones((20, 50)), np.ones((20, 10))).shape
    (50, 10)
    """
    accumulate = _flag("accumulate", accumulate)
    dt = _operands(x=x, dout=dout)
    _checks.check_dw(x, dout)
    x2 = _rows(x)
    N, D = x2.shape
    H = dout.shape[-1]
    d2 = _rows(dout)
    dW = _Out("out", out, (D, H), dt, accumulate, (("x", x), ("dout", dout)))
    x2, d2 = _contig(x2), _contig(d2)
    _backward(kernels.DW, x2, None, d2, None, dW.target, None, accumulate, N, D, H)
    return dW.finish()


def affine_db(dout: np.ndarray, *, out: np.ndarray | None = None, accumulate: bool = False) -> np.ndarray:
    """Bias gradient ``db = dout.sum(axis=0)``.

    Parameters
    ----------
    dout : ndarray, shape (N, H) or (H,)
    out : ndarray, optional
        Shape (H,), dout's dtype.
    accumulate : bool
        Add into ``out`` (required) instead of overwriting it.

    Returns
    -------
    db : ndarray, shape (H,)

    Examples
    --------
    >>> import numpy as np
    >>> from numba_affine import affine_db
    >>> affine_db(np.ones((20, 10)))[:3]
    array([20., 20., 20.])
    """
    accumulate = _flag("accumulate", accumulate)
    dt = _operands(dout=dout)
    _checks.check_db(dout)
    d2 = _rows(dout)
    N, H = d2.shape
    db = _Out("out", out, (H,), dt, accumulate, (("dout", dout),))
    d2 = _contig(d2)
    # db alone needs no product: the column sums' own (smaller) call
    kernels.column_sums(_flat(d2, _any_read_only(d2)), N, H, db.target, accumulate)
    return db.finish()


def warmup(dtypes=(np.float32, np.float64)) -> None:
    """Compile (or load from the cache) every kernel for the given dtypes.

    The first call of a kernel otherwise pays its compilation (a few
    seconds per twin and dtype, a fraction of that from the on-disk cache).

    Parameters
    ----------
    dtypes : iterable of numpy dtypes
        Any of float32, float64.

    Examples
    --------
    >>> from numba_affine import warmup
    >>> warmup((np.float64,))
    """
    for dtype in dtypes:
        dt = np.dtype(dtype)
        if dt not in _FLOATS:
            raise TypeError(f"warmup supports float32 and float64, got {dt}")
        _serial(dt)
        kernels.entry(dt, True)
        for ro in (False, True):  # writeable inputs, and read-only ones (see _flat)
            one = _flat(np.zeros(1, dt), ro)
            kernels.row_product(one, 0, one, 1, np.zeros(1, dt), 1, 1, one, True, _LANES[dt])
            kernels.column_sums(one, 1, 1, np.zeros(1, dt), False)
