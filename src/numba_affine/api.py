"""Public functions: validate, flatten N-D input, pick a kernel, own ``out=`` buffers.

Every check happens here, in Python, before any kernel runs, so a bad call
raises a clean ``TypeError`` / ``ValueError`` naming the shapes or dtypes at
fault and leaves every argument untouched. Kernels receive C-contiguous
arrays of one dtype; any other memory layout is packed into a contiguous
buffer for the duration of the call (the caller's arrays are never copied
into anything that outlives the call, and never modified).
"""

from __future__ import annotations

import os
import threading

import numpy as np
from numba import set_parallel_chunksize

from . import kernels
from ._simd import VECTOR_BYTES

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
#: An empty array per dtype, passed where a kernel argument is not used:
#: no bias, no caller scratch (the serial kernels allocate their own; the
#: parallel wrappers substitute the thread's buffer), an output not wanted.
_EMPTY = {dt: np.empty(0, dt) for dt in _FLOATS}

#: Below this much work (N*D*H multiply-adds: one product; the forward, a
#: backward, affine_dx and affine_dw all pass N*D*H) a call runs the small
#: form on the calling thread (:func:`kernels.small_forward`,
#: :func:`kernels.small_backward`): waking the threads costs more than
#: such a product takes on one core. Speed-up over numpy, parallel / small
#: form (the bench's method, median of 9 rounds; Intel Xeon, AVX-512):
#: N*D*H = 0.5M, 64x128x64 forward float32 0.44 / 1.02, float64 0.90 / 1.03,
#: backward 0.57 / 0.94 and 0.75 / 0.82; 1M, 100x100x100 forward 0.74 /
#: 0.87 and 0.91 / 0.97, backward 0.68 / 0.78 and 0.75 / 0.80; 1.3-1.6M
#: (128x128x96, 64x512x40, 50x784x32, 200x64x100) mixed, parallel ahead in
#: 9 of 16; 2.1M and more, 128x256x64 and 256x256x32, parallel ahead in
#: all 8 (0.94-1.14 against 0.69-0.83).
PARALLEL_MIN_WORK = 1_000_000
#: An output narrower than this (H columns; 0 < H) runs the small form up to
#: ``SHORT_OUTPUT_WORK_RATIO`` times ``PARALLEL_MIN_WORK``: the parallel
#: forms split such outputs into few, thin tiles and lose to one core.
#: Speed-up over numpy, parallel / small form (the bench's method, 7-9
#: rounds, 0f168b6 + the small form's narrow columns): 100x784x16 (1.25M)
#: forward float32 0.38 / 0.78, float64 0.69 / 0.81, backward 0.79 / 1.51,
#: 0.75 / 1.16; 150x784x16 (1.9M) 0.56 / 0.62, 1.09 / 1.09, 1.05 / 1.31,
#: 0.93 / 1.02; 100x784x24 (1.9M) float32 0.81 / 1.36, 0.95 / 1.34;
#: 100x784x31 (2.4M) 0.72 / 1.25, 0.91 / 1.30, 0.92 / 1.31, 0.70 / 1.22;
#: 200x784x16 (2.5M) mixed (0.72 / 0.90, 1.40 / 1.03, 1.11 / 1.53, 0.78 /
#: 0.94), 300x784x16 (3.8M) mixed; with H = 128 the parallel forms are
#: ahead from 2.1M (128x128x128 backward float64 1.01 / 0.74).
SHORT_OUTPUT_H = 32
SHORT_OUTPUT_WORK_RATIO = 2.5
#: Below this H a parallel forward's panels would be mostly padding: it
#: runs the dot form (see kernels).
SHORT_H = 16
#: Below this H the backward's dot-form products are too short and its
#: panel form's dx sums over few steps (see kernels): dx and dW use the
#: axpy form on a packed W.T / a transposed dW instead. Speed-up over
#: numpy, axpy / panel form (parallel; same process, interleaved, median
#: of 9 rounds): float32 2048x512x16 1.16 / 1.08, x24 0.94 / 0.82, x32
#: 0.85 / 0.81, x48 0.68 / 0.93, 512x512x16 1.03 / 0.84, x32 0.84 / 1.07,
#: 100x784x16 0.69 / 0.56, x32 0.54 / 0.60; float64 (axpy / best other)
#: 2048x512x16 1.45 / 0.85, x24 1.24 / 0.99, x32 1.03 / 0.90, x48 0.95 /
#: 0.99, 512x512x16 1.17 / 1.02, x32 0.95 / 1.26; serial, axpy / dot:
#: float32 64x256x16 0.94 / 0.54, x24 0.89 / 0.60, 128x128x24 0.83 / 0.73,
#: float64 64x256x16 1.07 / 0.84, x24 0.83 / 0.86, 20x50x20 1.33 / 1.54
#: (the AVX2 machine). A parallel call runs the panel form from
#: ``PANEL_BACKWARD_MIN_H_F32`` / ``_F64`` whatever this says (24 in float32 with AVX-512).
BACKWARD_SHORT_H = 32

# A process forked after a parallel kernel ran must not start a parallel
# region again with GNU OpenMP (the child is killed: "fork() called from a
# process already using GNU OpenMP"). Children of a fork use the serial
# kernels; they give the same results, on one core.
_in_forked_child = False


def _mark_forked_child() -> None:
    global _in_forked_child
    _in_forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mark_forked_child)


class _Dynamic:
    """Call a parallel kernel with dynamic scheduling, one tile at a time.

    With Numba's default (static) schedule each thread gets a fixed half of
    the tiles; when another process takes one core, the other thread
    finishes early and waits. Dynamic scheduling lets it take more tiles.
    Numba's chunk size is per Python thread; it is set around the call and
    restored (inside a jitted function the setter would defeat the cache).
    ``size`` is the kernel's scratch rule; the subclasses pass this thread's
    scratch buffer of that size in place of the caller's empty one.
    """

    __slots__ = ("kernel", "size")

    def __init__(self, kernel, size):
        self.kernel = kernel
        self.size = size

    def __call__(self, *args):
        old = set_parallel_chunksize(1)
        try:
            return self.kernel(*args)
        finally:
            set_parallel_chunksize(old)


#: A thread keeps its packing buffer (the forward's W.T, the backward's
#: packed copies; one per dtype) for its next call when the
#: buffer is at most this big. Fresh pages cost a page fault each on first
#: touch: at 1024^3 float64 the backward's 16 MB of packed x.T and dout.T,
#: allocated per call, took 4064 faults per call (glibc trims the freed
#: memory); two such fresh 8 MB buffers cost 12-14 ms to allocate and touch
#: in isolation, and the whole backward measured 3-8 % faster with the
#: kept buffer (same-process A/B). Larger buffers are allocated per call.
SCRATCH_KEEP_BYTES = 64 << 20
_scratch_local = threading.local()


#: Start of every scratch buffer, in bytes. numpy's large arrays start 16
#: bytes into a page, so a packed row read as 32-byte AVX2 vectors crossed
#: a cache line on every other load: the 1024^3 float32 forward measured
#: 5 % slower (paired A/B, median of 21 rounds) with its W.T packed into
#: such a buffer than into one of Numba's (32-byte aligned).
SCRATCH_ALIGN = 64


def _aligned_empty(n: int, dt: np.dtype) -> np.ndarray:
    """``np.empty(n, dt)`` starting on a ``SCRATCH_ALIGN``-byte boundary."""
    raw = np.empty(n + SCRATCH_ALIGN // dt.itemsize, dt)
    skip = (-raw.ctypes.data % SCRATCH_ALIGN) // dt.itemsize
    return raw[skip : skip + n]


def _scratch(dt: np.dtype, n: int) -> np.ndarray:
    """A 1-D buffer of at least ``n`` elements of ``dt``, owned by this thread.

    Only the calling thread ever sees it and every kernel call overwrites
    what it uses, so no state leaks from one call into the next (W, x and
    dout are packed afresh on each call; nothing is cached across calls).
    """
    kept = _scratch_local.__dict__
    buf = kept.get(dt.char)
    if buf is not None and buf.shape[0] >= n:
        return buf
    buf = _aligned_empty(n, dt)
    if n * dt.itemsize <= SCRATCH_KEEP_BYTES:
        kept[dt.char] = buf
    return buf


class _DynamicForward(_Dynamic):
    """A parallel forward kernel, as :class:`_Dynamic`, run with this
    thread's scratch buffer (for the packed W); ``size(D, H, itemsize)``."""

    __slots__ = ()

    def __call__(self, x, W, b, y, scratch):
        D, H = W.shape
        buf = _scratch(W.dtype, self.size(D, H, W.itemsize))
        return super().__call__(x, W, b, y, buf)


class _DynamicBackward(_Dynamic):
    """A parallel backward kernel, as :class:`_Dynamic`, run with this
    thread's scratch buffer; ``size(dout, x, W, flags)`` (the small form and
    the serial twins allocate their own: small buffers do not fault)."""

    __slots__ = ()

    def __call__(self, dout, x, W, dx, dW, db, flags, scratch):
        buf = _scratch(dout.dtype, self.size(dout, x, W, flags))
        return super().__call__(dout, x, W, dx, dW, db, flags, buf)


_DYNAMIC = {
    kernels.forward_kernels: _DynamicForward(kernels.forward_kernels.parallel, kernels.forward_scratch_size),
    kernels.forward_direct_kernels: _DynamicForward(kernels.forward_direct_kernels.parallel, kernels.panels_size),
    kernels.backward_kernels: _DynamicBackward(kernels.backward_kernels.parallel, kernels.backward_scratch_size),
    kernels.backward_panel_kernels: _DynamicBackward(kernels.backward_panel_kernels.parallel, kernels.backward_panels_size),
}

#: A parallel backward runs the panel form (:func:`kernels._backward_panels`)
#: from H >= ``PANEL_BACKWARD_MIN_H_F32`` in float32 and from H >=
#: ``PANEL_BACKWARD_MIN_H_F64`` in float64; below, the dot form (or the
#: axpy form, H < ``BACKWARD_SHORT_H``). The thresholds depend on the
#: panel form's vector width (:data:`~numba_affine._simd.VECTOR_BYTES`).
#:
#: 32-byte vectors (AVX2; AMD EPYC Zen 3), time panel / dot form, same
#: process, interleaved, median of 11 rounds (TBB layer): float32 every
#: shape tried 0.56-0.88 (1024^3 0.88, 512^3 0.81, 256^3 0.82, 100x784x100
#: 0.62, 2048x512x16 0.56, 1024x128x1024 0.80); float64 1024^3 0.88, 512^3
#: 0.92, 256^3 0.93, 128^3 0.78, 100x784x100 0.84, 100^3 0.85, 64x512x100
#: 0.89, 2048x512x96 0.85, 2048x512x128 0.89, 1024x1024x128 0.91,
#: 2048x64x128 0.88, 32x784x100 1.01, but 2048x512x64 1.05, 2048x512x32
#: 1.13, 2048x512x16 1.17 (float64 dx sums over H in the panel form: short
#: sums, where the dot form's 4x3 block does better): panel form from
#: H >= 32 (float32), 96 (float64).
#:
#: 64-byte vectors (AVX-512; Intel Xeon "Emerald Rapids"), speed-up over
#: numpy of the axpy / dot / panel forms (the bench's method, median of 7):
#: float64 2048x512x24 0.99 / 0.57 / 0.52, x28 0.71 / 0.63 / 0.73, x31
#: 0.94 / 0.53 / 0.73, x32 0.73 / 0.55 / 0.62, x40 0.76 / 0.56 / 0.67, x64
#: 0.58 / 0.61 / 0.87, x96 0.66 / 0.69 / 1.08, 512x512x32 0.95 / 0.82 /
#: 0.97, x64 0.65 / 0.73 / 0.97, 100x784x32 0.52 / 0.50 / 0.74, x64 0.49 /
#: 0.68 / 0.91; float32 2048x512x20 1.03 / 0.42 / 0.71, x24 0.75 / 0.35 /
#: 0.60, x28 0.68 / 0.36 / 0.80, x31 0.63 / 0.39 / 0.84, x32 0.66 / 0.35 /
#: 0.62, 512x512x24 0.90 / 0.63 / 1.17, x32 0.62 / 0.47 / 1.13,
#: 4096x256x24 0.74 / 0.45 / 0.95, 100x784x32 0.66 / 0.38 / 0.69: the dot
#: form never wins; panel form from H >= 24 (float32), 32 (float64).
PANEL_BACKWARD_MIN_H_F32 = 24 if VECTOR_BYTES == 64 else 32
PANEL_BACKWARD_MIN_H_F64 = 32 if VECTOR_BYTES == 64 else 96
#: A parallel forward with H >= ``SHORT_H`` runs the panel form with x read
#: in place (:func:`kernels._forward_direct`). Measured against what ran
#: before (same process, random order, median of 11 rounds, speed-up over
#: numpy, before -> in place): float32 100x784x100 0.62-0.87 -> 1.02-1.27x,
#: 64x512x64 0.42-0.48 -> 0.84-0.95x, 256^3 0.69-0.74 -> 0.86-0.92x,
#: 200x784x300 0.63-0.75 -> 0.85-0.91x, 1024^3 (packed panel form) 0.92 /
#: 0.97 -> 1.01 / 1.00x (the bench's method); float64 100x784x100
#: 0.91-0.92 -> 1.18-1.30x, 64x512x64 0.74-0.79 -> 0.86-1.54x, 512^3
#: 0.50 -> 0.66x, 1024^3 0.83 -> 0.98x; larger outputs 0.04-0.16 better
#: than the dot form in both dtypes. Short H keeps the dot form (its
#: 4x1 column block; the panel form would compute 16 columns for 10).


def _pick(pair, work: int, H: int = 0, dt: np.dtype | None = None):
    """The kernel for this much work: the small form below
    ``PARALLEL_MIN_WORK``, or below ``SHORT_OUTPUT_WORK_RATIO`` times that
    for an output narrower than ``SHORT_OUTPUT_H`` (:func:`kernels.small_forward`,
    :func:`kernels.small_backward`; serial), else the parallel dot form or
    a panel form (the rules above; the forward calls pass H, the backward
    calls also the dtype). A forked child runs the serial twins of the
    large forms.

    One function, not two, because it is on every call's path (a second
    Python call cost ~80 ns at the seed's size, measured); the serial case,
    every small call, is decided first.
    """
    if work < PARALLEL_MIN_WORK or (0 < H < SHORT_OUTPUT_H and work < SHORT_OUTPUT_WORK_RATIO * PARALLEL_MIN_WORK):
        return kernels.small_forward if pair is kernels.forward_kernels else kernels.small_backward
    if _in_forked_child:
        return pair.serial
    if pair is kernels.forward_kernels:
        if H >= SHORT_H:
            pair = kernels.forward_direct_kernels
    elif dt is not None and H >= (PANEL_BACKWARD_MIN_H_F32 if dt is _F32 else PANEL_BACKWARD_MIN_H_F64):
        pair = kernels.backward_panel_kernels
    return _DYNAMIC[pair]


#: Flags of a full backward pass, indexed by ``H < BACKWARD_SHORT_H``.
_ALL = (
    kernels.WANT_DX | kernels.WANT_DW | kernels.WANT_DB,
    kernels.WANT_DX | kernels.WANT_DW | kernels.WANT_DB | kernels.SHORT_H,
)


def _flags(H: int, accumulate: bool) -> int:
    return (kernels.SHORT_H if H < BACKWARD_SHORT_H else 0) | (kernels.ACCUMULATE if accumulate else 0)


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


def _weights(W) -> np.ndarray:
    W = _array("W", W)
    if W.ndim != 2:
        raise ValueError(f"W must be 2-D with shape (D, H), got shape {W.shape}")
    return W


def check_parameters(W, b) -> np.dtype:
    """Check a layer's parameters: W 2-D float, b ``None`` or (H,) of W's dtype."""
    W = _weights(W)
    if b is None:
        return W.dtype
    b = _array("b", b)
    _same_dtype(W=W, b=b)
    if b.shape != (W.shape[1],):
        raise ValueError(f"b has shape {b.shape} but W has shape {W.shape}: expected b of shape ({W.shape[1]},)")
    return W.dtype


def _flat_x(x: np.ndarray, W_shape: tuple | None) -> np.ndarray:
    """x as a 2-D (N, D) array: 1-D is one sample, N-D is flattened as in the book."""
    if x.ndim == 0:
        raise ValueError("x must have at least 1 dimension (one sample), got shape ()")
    if x.ndim == 1:
        x2 = x.reshape(1, x.shape[0])
    elif x.ndim == 2:
        x2 = x
    else:
        width = 1
        for s in x.shape[1:]:
            width *= s
        x2 = x.reshape(x.shape[0], width)
    if W_shape is not None and x2.shape[1] != W_shape[0]:
        flat = f" (flattened to {x2.shape})" if x.ndim > 2 else ""
        raise ValueError(
            f"x has shape {x.shape}{flat} but W has shape {W_shape}: "
            f"x's feature width {x2.shape[1]} must equal W.shape[0] = {W_shape[0]}"
        )
    return x2


def _dout_2d(dout: np.ndarray, N: int | None, H: int, one_sample: bool | None, who: str) -> np.ndarray:
    """dout as (N, H); checks it against the expected batch and width."""
    if dout.ndim == 1 and one_sample is not False:
        d2 = dout.reshape(1, dout.shape[0])
    elif dout.ndim == 2 and one_sample is not True:
        d2 = dout
    else:
        d2 = None
    if d2 is None or d2.shape[1] != H or (N is not None and d2.shape[0] != N):
        one = one_sample if one_sample is not None else dout.ndim == 1
        want = f"({H},)" if one else f"({'N' if N is None else N}, {H})"
        raise ValueError(f"dout has shape {dout.shape} but {who}: expected dout of shape {want}")
    return d2


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
            if accumulate:
                raise ValueError(f"accumulate=True needs {name}= (the array to add into)")
            self.user = None
            self.target = np.empty(shape, dtype)
            return
        if type(out) is not np.ndarray:
            raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
        if out.shape != shape or out.dtype != dtype:
            raise ValueError(
                f"{name} has shape {out.shape} and dtype {out.dtype} but the result has "
                f"shape {shape} and dtype {dtype}"
            )
        if not out.flags.writeable:
            raise ValueError(f"{name} is read-only; pass a writeable array")
        for in_name, a in inputs:
            if np.may_share_memory(out, a):
                raise ValueError(f"{name} shares memory with {in_name}; pass a separate array")
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
    # The common call (2-D C-contiguous operands of one float dtype, no out=)
    # is recognised with a few attribute reads: at small sizes each Python
    # operation is a visible share of the call.
    if out is None and type(x) is _ndarray and type(W) is _ndarray and type(b) is _ndarray:
        dt = x.dtype
        if (
            (dt is _F64 or dt is _F32) and W.dtype is dt and b.dtype is dt
            and x.ndim == 2 and W.ndim == 2 and b.ndim == 1
        ):
            N, D = x.shape
            H = W.shape[1]
            if (
                W.shape[0] == D and b.shape[0] == H
                and x.flags.c_contiguous and W.flags.c_contiguous and b.flags.c_contiguous
            ):
                y = np.empty((N, H), dt)
                if N * D * H < PARALLEL_MIN_WORK:  # _pick's first case, without its call (it decides the rest)
                    kernels.small_forward(x, W, b, y, b)  # (scratch: not used)
                else:
                    _pick(kernels.forward_kernels, N * D * H, H)(x, W, b, y, _EMPTY[dt])
                return y
    if b is None:
        dt = _operands(x=x, W=W)
    else:
        dt = _operands(x=x, W=W, b=b)
    if W.ndim != 2:
        _weights(W)
    D, H = W.shape
    if b is not None and b.shape != (H,):
        check_parameters(W, b)
    x2 = _flat_x(x, W.shape)
    N = x2.shape[0]
    inputs = (("x", x), ("W", W)) if b is None else (("x", x), ("W", W), ("b", b))
    y = _Out("out", out, (H,) if x.ndim == 1 else (N, H), dt, False, inputs)
    _pick(kernels.forward_kernels, N * D * H, H)(
        _contig(x2),
        _contig(W),
        _EMPTY[dt] if b is None else _contig(b),
        y.target.reshape(N, H),
        _EMPTY[dt],
    )
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
        dx_out is None and dW_out is None and db_out is None and not accumulate
        and type(dout) is _ndarray and type(x) is _ndarray and type(W) is _ndarray
    ):  # the common call, as in affine_forward
        dt = x.dtype
        if (dt is _F64 or dt is _F32) and W.dtype is dt and dout.dtype is dt and x.ndim == 2 and W.ndim == 2 and dout.ndim == 2:
            N, D = x.shape
            H = W.shape[1]
            if (
                W.shape[0] == D and dout.shape[0] == N and dout.shape[1] == H
                and x.flags.c_contiguous and W.flags.c_contiguous and dout.flags.c_contiguous
            ):
                dx = np.empty((N, D), dt)
                dW = np.empty((D, H), dt)
                db = np.empty(H, dt)
                if N * D * H < PARALLEL_MIN_WORK:  # as in affine_forward
                    kernels.small_backward(dout, x, W, dx, dW, db, _ALL[0], _EMPTY[dt])
                else:
                    _pick(kernels.backward_kernels, N * D * H, H, dt)(dout, x, W, dx, dW, db, _ALL[H < BACKWARD_SHORT_H], _EMPTY[dt])
                return dx, dW, db
    dt = _operands(dout=dout, x=x, W=W)
    if W.ndim != 2:
        _weights(W)
    D, H = W.shape
    x2 = _flat_x(x, W.shape)
    N = x2.shape[0]
    d2 = _dout_2d(dout, N, H, x.ndim == 1, f"x has shape {x.shape} and W has shape {W.shape}")
    inputs = (("dout", dout), ("x", x), ("W", W))
    dx = _Out("dx_out", dx_out, x.shape, dt, False, inputs)
    dW = _Out("dW_out", dW_out, (D, H), dt, accumulate, inputs)
    db = _Out("db_out", db_out, (H,), dt, accumulate, inputs)
    _pick(kernels.backward_kernels, N * D * H, H, dt)(
        _contig(d2), _contig(x2), _contig(W),
        dx.target.reshape(N, D), dW.target, db.target,
        _ALL[H < BACKWARD_SHORT_H] | (kernels.ACCUMULATE if accumulate else 0), _EMPTY[dt],
    )
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
    W = _weights(W)
    D, H = W.shape
    d2 = _dout_2d(dout, None, H, None, f"W has shape {W.shape}")
    N = d2.shape[0]
    shape = (D,) if dout.ndim == 1 else (N, D)
    dx = _Out("out", out, shape, dt, False, (("dout", dout), ("W", W)))
    d2 = _contig(d2)
    Wc = _contig(W)  # also the (unused) dW argument: same array type, no new compilation
    kernel = _pick(kernels.backward_kernels, N * D * H, H, dt)
    kernel(d2, d2, Wc, dx.target.reshape(N, D), Wc, _EMPTY[dt], kernels.WANT_DX | _flags(H, False), _EMPTY[dt])
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
    dt = _operands(x=x, dout=dout)
    x2 = _flat_x(x, None)
    N, D = x2.shape
    if dout.ndim not in (1, 2):
        raise ValueError(f"dout has shape {dout.shape} but x has shape {x.shape}: expected dout of shape ({N}, H)")
    H = dout.shape[-1]
    d2 = _dout_2d(dout, N, H, x.ndim == 1, f"x has shape {x.shape}")
    dW = _Out("out", out, (D, H), dt, accumulate, (("x", x), ("dout", dout)))
    d2 = _contig(d2)
    kernel = _pick(kernels.backward_kernels, N * D * H, H, dt)
    kernel(d2, _contig(x2), d2, d2, dW.target, _EMPTY[dt], kernels.WANT_DW | _flags(H, accumulate), _EMPTY[dt])
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
    dt = _operands(dout=dout)
    if dout.ndim not in (1, 2):
        raise ValueError(f"dout must have shape (N, H) or (H,), got shape {dout.shape}")
    d2 = dout.reshape(1, dout.shape[0]) if dout.ndim == 1 else dout
    N, H = d2.shape
    db = _Out("out", out, (H,), dt, accumulate, (("dout", dout),))
    d2 = _contig(d2)
    kernel = _pick(kernels.backward_kernels, N * H)
    kernel(d2, d2, d2, d2, d2, db.target, kernels.WANT_DB | _flags(H, accumulate), _EMPTY[dt])
    return db.finish()


def warmup(dtypes=(np.float32, np.float64)) -> None:
    """Compile (or load from the cache) every kernel for the given dtypes.

    The first call of a kernel otherwise pays its compilation (about a
    second per kernel and dtype, a fraction of that from the on-disk cache).

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
        x = np.zeros((2, 3), dt)
        W = np.zeros((3, 2), dt)
        b = np.zeros(2, dt)
        dout = np.zeros((2, 2), dt)
        everything = kernels.WANT_DX | kernels.WANT_DW | kernels.WANT_DB
        # what _pick can return: the small forms, both twins of the dot
        # forms (the serial ones for a forked child), the parallel panel forms
        for kernel in (kernels.small_forward, *kernels.forward_kernels, kernels.forward_direct_kernels.parallel):
            kernel(x, W, b, np.empty((2, 2), dt), _EMPTY[dt])
        for kernel in (kernels.small_backward, *kernels.backward_kernels, kernels.backward_panel_kernels.parallel):
            kernel(dout, x, W, np.empty((2, 3), dt), np.empty((3, 2), dt), b, everything, _EMPTY[dt])
