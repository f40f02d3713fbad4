"""The public functions inside users' jitted code (``numba.extending.overload``).

``affine_forward``, ``affine_backward``, ``affine_dx``, ``affine_dw`` and
``affine_db`` called from an ``@njit`` function compile to direct calls of
the kernels: no Python dispatch, no plan lookup. Same names, arguments and
results as from Python, with these rules:

* Checks: a dtype other than float32/float64, mixed dtypes, a 0-d array or
  a read-only output fail when the function is compiled (``TypingError``
  naming them); wrong shapes raise the ``ValueError`` the Python call
  raises: both run the same checks (:mod:`numba_affine._checks`).
* Threads: every call runs the *serial* twin on the calling thread, so a
  call inside the user's ``prange`` never nests a parallel region (which
  the ``workqueue`` layer aborts on). Parallelise the user's outer loop.
* Memory: with every output given, C-contiguous operands and packed
  operands (dx's ``W.T``, a partial last panel of columns) within
  ``tuning.JIT_STACK_SCRATCH_BYTES``, a call allocates nothing (the
  packing scratch is on the stack). Other layouts are copied.

Results are bitwise identical to the Python calls': the same register block
over the same order of k; only the (result-neutral) blocking differs.
"""

from __future__ import annotations

import numpy as np
from numba.core import types
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload, register_jitable
from numba.np.numpy_support import as_dtype

from . import _checks as c
from . import api, kernels
from .kernels.views import nothing as _nothing, on_stack, view as _view
from ._jit import OVERLOAD_OPTIONS

_FLOAT_TYPES = (types.float32, types.float64)


def _kernel(dt: types.Type):
    """The serial twin the Python calls run for this dtype (one compiled signature, shared)."""
    return kernels.entry(as_dtype(dt), False)


# ---------------------------------------------------------------- compile-time checks


def _absent(t) -> bool:
    return t is None or isinstance(t, (types.NoneType, types.Omitted))


def _check_types(fn: str, outs=(), flags=(), **arrays) -> types.Type:
    """The one float dtype of ``arrays``; a ``TypingError`` naming what is wrong otherwise.

    ``outs`` name the output arguments (they must be writeable), ``flags``
    are (name, type) of bool arguments.
    """
    first = dt = None
    for name, t in arrays.items():
        if _absent(t):
            continue
        if not isinstance(t, types.Array):
            raise TypingError(f"{fn}: {name} must be a float32 or float64 array, got {t}")
        if t.dtype not in _FLOAT_TYPES:
            raise TypingError(
                f"{fn}: {name} has dtype {t.dtype}; numba-affine supports float32 and float64 only: "
                f"convert with {name}.astype(np.float64) or {name}.astype(np.float32)"
            )
        if t.ndim == 0:
            raise TypingError(f"{fn}: {name} is 0-dimensional; pass an array of 1 or more dimensions")
        if name in outs and not t.mutable:
            raise TypingError(f"{fn}: {name} is read-only; pass a writeable array")
        if dt is None:
            first, dt = name, t.dtype
        elif t.dtype != dt:
            raise TypingError(
                f"{fn}: {first} has dtype {dt} but {name} has dtype {t.dtype}; every operand "
                f"must have the same dtype: convert one, e.g. {name}.astype({first}.dtype)"
            )
    for name, t in flags:
        if not (_absent(t) or isinstance(t, (bool, types.Boolean))):
            raise TypingError(f"{fn}: {name} must be a bool, got {t}")
    return dt


# ---------------------------------------------------------------- views


@intrinsic
def _opaque(typingctx, value):
    """``value`` with its constant-ness hidden from typing (``Literal[int](1)`` becomes ``int64``).

    A constant argument types as a literal and a jitted callee is compiled
    once per literal type: the constant arguments of the product kernel go
    through this, or forward, dx and dw would each compile their own copy
    of it (about 2 s each, cold).
    """
    plain = types.unliteral(value)

    def codegen(context, builder, sig, args):
        return context.cast(builder, args[0], sig.args[0], plain)

    return plain(value), codegen


# ---------------------------------------------------------------- layouts and outputs


def _contiguous(a):
    """``a`` itself when its type is C-contiguous, else a contiguous copy (jitted only)."""


@overload(_contiguous, jit_options=OVERLOAD_OPTIONS)
def _contiguous_ol(a):
    if a.layout == "C":
        return lambda a: a
    return lambda a: np.ascontiguousarray(a)


def _target(out, shape, like, accumulate):
    """What a kernel writes: a new array, ``out`` itself, or a contiguous stand-in for ``out``."""


@overload(_target, jit_options=OVERLOAD_OPTIONS)
def _target_ol(out, shape, like, accumulate):
    if _absent(out):
        return lambda out, shape, like, accumulate: np.empty(shape, like.dtype)
    if out.layout == "C":
        return lambda out, shape, like, accumulate: out

    def impl(out, shape, like, accumulate):
        target = np.empty(shape, like.dtype)
        if accumulate:
            target[...] = out
        return target

    return impl


def _finish(out, target):
    """The result: ``target``, with a non-contiguous ``out`` given, copied into it."""


@overload(_finish, jit_options=OVERLOAD_OPTIONS)
def _finish_ol(out, target):
    if _absent(out):
        return lambda out, target: target
    if out.layout == "C":
        return lambda out, target: out

    def impl(out, target):
        out[...] = target
        return out

    return impl


@register_jitable
def _extent(a):
    """The bytes ``a`` can touch, [lo, hi) (numpy's ``may_share_memory`` bounds)."""
    lo = hi = a.ctypes.data
    for n, stride in zip(a.shape, a.strides):
        if n == 0:
            return 0, 0
        if stride > 0:
            hi += (n - 1) * stride
        else:
            lo += (n - 1) * stride
    return lo, hi + a.itemsize


@register_jitable
def _overlap(a, b):
    """Whether ``a`` and ``b`` may share memory (numpy's ``may_share_memory`` bounds)."""
    lo, hi = _extent(a)
    other_lo, other_hi = _extent(b)
    return lo < other_hi and other_lo < hi


@register_jitable
def _apart(out, name, a, a_name):
    """A ``ShapeError`` if ``out`` (absent: ``None``) may share memory with ``a``."""
    if out is not None and _overlap(out, a):
        raise c.ShapeError(c.SHARES, name, a_name)


@register_jitable
def _rows(a):
    """C-contiguous ``a`` as (N, width): 1-D is one row, N-D flattened as in the book."""
    return _view(a, (1 if a.ndim == 1 else a.shape[0], c.feature_width(a)))


@register_jitable
def _apart_from_inputs(out, name, dout, x, W):
    _apart(out, name, dout, c.DOUT)
    _apart(out, name, x, c.X)
    _apart(out, name, W, c.W_)


def _apart_outputs(a, a_name, b, b_name):
    """Two outputs (either may be absent) share no memory."""


@overload(_apart_outputs, jit_options=OVERLOAD_OPTIONS)
def _apart_outputs_ol(a, a_name, b, b_name):
    if _absent(a) or _absent(b):
        return lambda a, a_name, b, b_name: None
    return lambda a, a_name, b, b_name: _apart(a, a_name, b, b_name)


# ---------------------------------------------------------------- the kernel (serial twin)


@intrinsic
def _no_plan(typingctx):
    """An empty plan (``kernels.product`` plans a serial call itself), without an allocation."""
    return types.Array(types.int64, 2, "C")(), on_stack(types.int64, (0, len(kernels.PLAN_FIELDS)))


_RUNNERS: dict = {}


def _runner(dt: types.Type):
    """A jitted call of :func:`_kernel` for ``dt``: on its stack scratch, or
    again with scratch from the heap when the kernel asks for more."""
    run = _RUNNERS.get(dt)
    if run is None:
        product = _kernel(dt)

        @register_jitable
        def run(op, x, W, b, d, y, dx, dW, db):
            need = product(op, x, W, b, d, y, dx, dW, db, _nothing(W), _no_plan())
            if need > 0:
                product(op, x, W, b, d, y, dx, dW, db, np.empty(need, W.dtype), _no_plan())

        run = _RUNNERS.setdefault(dt, run)
    return run


# ---------------------------------------------------------------- public functions


@overload(api.affine_forward, jit_options=OVERLOAD_OPTIONS)
def _affine_forward(x, W, b=None, out=None):
    _run = _runner(_check_types("affine_forward", outs=("out",), x=x, W=W, b=b, out=out))
    no_bias = _absent(b)

    def impl(x, W, b=None, out=None):
        if no_bias:
            c.check_forward(x, W, W, False)
        else:
            c.check_forward(x, W, b, True)
        H = W.shape[-1]
        N = 1 if x.ndim == 1 else x.shape[0]
        shape = (H,) if x.ndim == 1 else (N, H)
        c.check_out(out, c.OUT, shape, False)
        _apart(out, c.OUT, x, c.X)
        _apart(out, c.OUT, W, c.W_)
        if not no_bias:
            _apart(out, c.OUT, b, c.B)
        x2 = _rows(_contiguous(x))
        y = _target(out, shape, W, False)
        y2 = _view(y, (N, H))
        if no_bias:
            _run(_opaque(kernels.FORWARD), x2, _contiguous(W), _nothing(W), x2, y2, y2, y2, _nothing(W))
        else:
            _run(_opaque(kernels.FORWARD | kernels.WITH_BIAS), x2, _contiguous(W), _contiguous(b), x2, y2,
                 y2, y2, _nothing(W))
        return _finish(out, y)

    return impl


@overload(api.affine_dx, jit_options=OVERLOAD_OPTIONS)
def _affine_dx(dout, W, out=None):
    _run = _runner(_check_types("affine_dx", outs=("out",), dout=dout, W=W, out=out))

    def impl(dout, W, out=None):
        c.check_dx(dout, W)
        D = W.shape[0]
        N = 1 if dout.ndim == 1 else dout.shape[0]
        shape = (D,) if dout.ndim == 1 else (N, D)
        c.check_out(out, c.OUT, shape, False)
        _apart(out, c.OUT, dout, c.DOUT)
        _apart(out, c.OUT, W, c.W_)
        dx = _target(out, shape, W, False)
        d2 = _rows(_contiguous(dout))
        dx2 = _view(dx, (N, D))
        _run(_opaque(kernels.DX), d2, _contiguous(W), _nothing(W), d2, dx2, dx2, dx2, _nothing(W))
        return _finish(out, dx)

    return impl


@overload(api.affine_dw, jit_options=OVERLOAD_OPTIONS)
def _affine_dw(x, dout, out=None, accumulate=False):
    _run = _runner(_check_types("affine_dw", outs=("out",), flags=(("accumulate", accumulate),), x=x, dout=dout, out=out))

    def impl(x, dout, out=None, accumulate=False):
        c.check_dw(x, dout)
        D = c.feature_width(x)
        H = dout.shape[-1]
        c.check_out(out, c.OUT, (D, H), accumulate)
        _apart(out, c.OUT, x, c.X)
        _apart(out, c.OUT, dout, c.DOUT)
        dW = _target(out, (D, H), x, accumulate)
        x2 = _rows(_contiguous(x))
        op = kernels.DW | (kernels.ACCUMULATE if accumulate else 0)
        _run(_opaque(op), x2, x2, _nothing(x), _rows(_contiguous(dout)), dW, dW, dW, _nothing(x))
        return _finish(out, dW)

    return impl


@overload(api.affine_db, jit_options=OVERLOAD_OPTIONS)
def _affine_db(dout, out=None, accumulate=False):
    _check_types("affine_db", outs=("out",), flags=(("accumulate", accumulate),), dout=dout, out=out)

    def impl(dout, out=None, accumulate=False):
        c.check_db(dout)
        H = dout.shape[-1]
        c.check_out(out, c.OUT, (H,), accumulate)
        _apart(out, c.OUT, dout, c.DOUT)
        db = _target(out, (H,), dout, accumulate)
        d2 = _rows(_contiguous(dout))
        # db alone needs no product: the column sums' own call, as from Python
        kernels.column_sums(_view(d2, (d2.size,)), d2.shape[0], H, db, accumulate)
        return _finish(out, db)

    return impl


@overload(api.affine_backward, jit_options=OVERLOAD_OPTIONS)
def _affine_backward(dout, x, W, dx_out=None, dW_out=None, db_out=None, accumulate=False):
    _run = _runner(_check_types(
        "affine_backward", outs=("dx_out", "dW_out", "db_out"), flags=(("accumulate", accumulate),),
        dout=dout, x=x, W=W, dx_out=dx_out, dW_out=dW_out, db_out=db_out,
    ))

    def impl(dout, x, W, dx_out=None, dW_out=None, db_out=None, accumulate=False):
        c.check_backward(dout, x, W)
        D = W.shape[0]
        H = W.shape[-1]
        N = 1 if x.ndim == 1 else x.shape[0]
        # in the Python call's order: each output's shape, then its overlap with the inputs
        c.check_out(dx_out, c.DX_OUT, x.shape, False)
        _apart_from_inputs(dx_out, c.DX_OUT, dout, x, W)
        c.check_out(dW_out, c.DW_OUT, (D, H), accumulate)
        _apart_from_inputs(dW_out, c.DW_OUT, dout, x, W)
        c.check_out(db_out, c.DB_OUT, (H,), accumulate)
        _apart_from_inputs(db_out, c.DB_OUT, dout, x, W)
        _apart_outputs(dx_out, c.DX_OUT, dW_out, c.DW_OUT)
        _apart_outputs(dx_out, c.DX_OUT, db_out, c.DB_OUT)
        _apart_outputs(dW_out, c.DW_OUT, db_out, c.DB_OUT)
        d2 = _rows(_contiguous(dout))
        dx = _target(dx_out, x.shape, W, False)
        dW = _target(dW_out, (D, H), W, accumulate)
        db = _target(db_out, (H,), W, accumulate)
        dx2 = _view(dx, (N, D))
        op = kernels.BACKWARD | (kernels.ACCUMULATE if accumulate else 0)
        _run(_opaque(op), _rows(_contiguous(x)), _contiguous(W), _nothing(W), d2, dx2, dx2, dW, db)
        return _finish(dx_out, dx), _finish(dW_out, dW), _finish(db_out, db)

    return impl
