"""The layer over Dask arrays chunked along rows (extra ``[dask]``: dask, distributed).

    from numba_affine.dask import affine_forward, affine_backward

    Y = affine_forward(X, W, b)              # lazy, X's row chunks
    dX, dW, db = affine_backward(dY, X, W)   # all three lazy
    dask.compute(dX, dW, db)

``X`` (and ``dY``) are dask arrays of N rows chunked along the rows only:
one chunk spans every feature column. ``W`` and ``b`` are numpy arrays (the
layer's parameters, in memory); they enter the graph once, not once per
task. Every task runs the library's kernels on one block of rows.

* **Checks** run when the graph is built, before any task: dtypes
  (float32/float64, one for all), shapes, and the chunking (a split along
  the features is refused with the ``rechunk`` call that fixes it).
* **Results**: the forward and dX are per row, so they do not depend on
  the chunking at all (the kernels are batch invariant). dW and db are
  sums over the rows: one partial product per row chunk (``affine_dw`` /
  ``affine_db``), then a tree reduction of the partials, ``split_every``
  at a time, with a fixed shape (the way ``dask.array.tensordot`` sums).
  For a given chunking and ``split_every`` they are bitwise identical on
  every scheduler and with any number of workers or threads.
* **Threads**: each task runs the kernels with ``numba_threads`` Numba
  threads (default 1: Dask's workers are the parallelism). Keep workers x
  threads per worker x ``numba_threads`` at most the machine's cores.
"""

from __future__ import annotations

import math

import numpy as np

try:
    import dask.array as da
    from dask import delayed
    from dask.base import tokenize
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError("numba_affine.dask needs Dask: pip install 'numba-affine[dask]'") from exc

from . import _checks, api
from ._checks import ShapeError

__all__ = ["affine_forward", "affine_backward", "SPLIT_EVERY"]

#: Partials summed per node of the dW / db reduction tree (fixed, so the
#: order of the sums does not follow Dask's configuration).
SPLIT_EVERY = 8


# ---------------------------------------------------------------- checks (graph build time)


def _dask_array(name: str, a) -> da.Array:
    if not isinstance(a, da.Array):
        raise TypeError(
            f"{name} must be a dask.array.Array, got {type(a).__name__}; "
            f"wrap it with dask.array.from_array({name}, chunks=(rows, -1)), or call "
            f"numba_affine.affine_* for in-memory arrays"
        )
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(
            f"{name} has dtype {a.dtype}; numba-affine supports float32 and float64 only: "
            f"convert with {name}.astype(np.float64) or {name}.astype(np.float32)"
        )
    if a.ndim < 2:
        raise ValueError(f"{name} must have shape (N, ...) with rows first, got shape {a.shape}")
    if any(math.isnan(n) for n in a.shape):
        raise ValueError(f"{name} has unknown chunk sizes (shape {a.shape}); call {name}.compute_chunk_sizes() first")
    split = [axis for axis in range(1, a.ndim) if len(a.chunks[axis]) > 1]
    if split:
        fix = ", ".join(f"{axis}: -1" for axis in range(1, a.ndim))
        raise ValueError(
            f"{name} is chunked along axis {split[0]} (chunks {a.chunks[split[0]]}); numba_affine.dask splits "
            f"the rows only, every chunk must hold whole rows: {name} = {name}.rechunk({{{fix}}})"
        )
    return a


def _parameters(W, b=None) -> np.dtype:
    for name, p in (("W", W), ("b", b)):
        if isinstance(p, da.Array):
            raise TypeError(f"{name} must be a numpy.ndarray (the layer's parameters, in memory), got a dask "
                            f"array; pass {name}.compute()")
    return api.check_parameters(W, b)


def _checked(check, *args) -> None:
    """One of the shape checks every door runs (:mod:`numba_affine._checks`), naming X and dY as here."""
    try:
        check(*args)
    except ShapeError as e:
        raise ShapeError(*e.args, x="X", dout="dY") from None


def _rows(X: da.Array, W: np.ndarray) -> da.Array:
    """X as (N, D), checked against W (N-D X is flattened as in the book)."""
    _checked(_checks.check_forward, X, W, None, False)
    D = math.prod(X.shape[1:])
    return X if X.ndim == 2 else X.reshape(X.shape[0], D)


def _constant(a: np.ndarray | None, name: str):
    """A numpy parameter as one key of the graph (``dask.delayed``), whatever the task count.

    Not a one-block dask array: as a blockwise operand its index would be
    contracted, and Dask then concatenates each X block, a copy per task.
    """
    if a is None:
        return None
    return delayed(a, name=f"{name}-{tokenize(a)}", pure=True)


# ---------------------------------------------------------------- the tasks


def _with_threads(threads: int, fn, *args):
    """Run ``fn`` with at most ``threads`` Numba threads (per calling thread: tasks do not interfere)."""
    import numba

    old = numba.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        return fn(*args)
    finally:
        numba.set_num_threads(old)


def _forward_block(x, W, b, threads):
    return _with_threads(threads, api.affine_forward, x, W, b)


def _dx_block(d, W, threads):
    return _with_threads(threads, api.affine_dx, d, W)


def _dw_block(x, d, threads):
    return _with_threads(threads, api.affine_dw, x, d)[None]


def _db_block(d):
    return api.affine_db(d)[None]


def _tree_sum(partials: da.Array, split_every: int) -> da.Array:
    """Sum over axis 0 (one partial per row chunk) in a tree of fixed shape."""
    return partials.sum(axis=0, split_every=split_every, dtype=partials.dtype)


# ---------------------------------------------------------------- public functions


def affine_forward(X, W, b=None, *, numba_threads: int = 1) -> da.Array:
    """``Y = X . W + b`` over a row-chunked dask array; lazy, with X's row chunks.

    X is (N, D) or (N, d1, ..., dk) with one chunk along every axis but
    the first; W (D, H) and b (H,) or None are numpy arrays. Each task is
    ``numba_affine.affine_forward`` on one block of rows.
    """
    X = _dask_array("X", X)
    dt = _parameters(W, b)
    api._same_dtype(X=X, W=W)
    X2 = _rows(X, W)
    H = W.shape[1]
    return X2.map_blocks(_forward_block, _constant(W, "numba-affine-W"), _constant(b, "numba-affine-b"),
                         numba_threads, chunks=(X2.chunks[0], (H,)), dtype=dt,
                         name=f"numba-affine-forward-{tokenize(X2, W, b, numba_threads)}")


def affine_backward(dY, X, W, *, numba_threads: int = 1, split_every: int = SPLIT_EVERY):
    """``(dX, dW, db)`` for a row-chunked X and dY (same row chunks); all three lazy.

    dX has X's shape and chunks (one ``affine_dx`` per block). dW and db
    are tree reductions of per-chunk ``affine_dw`` / ``affine_db``
    partials, ``split_every`` per node. Compute them together
    (``dask.compute(dX, dW, db)``) so X and dY are read once.
    """
    X = _dask_array("X", X)
    dY = _dask_array("dY", dY)
    dt = _parameters(W)
    api._same_dtype(dY=dY, X=X, W=W)
    X2 = _rows(X, W)
    N, D = X2.shape
    H = W.shape[1]
    _checked(_checks.check_backward, dY, X, W)
    if dY.chunks[0] != X.chunks[0]:
        raise ValueError(f"dY's row chunks {dY.chunks[0]} differ from X's {X.chunks[0]}: "
                         f"dY = dY.rechunk({{0: X.chunks[0]}})")
    if not isinstance(split_every, int) or split_every < 2:
        raise ValueError(f"split_every must be an int >= 2, got {split_every!r}")
    token = tokenize(dY, X2, W, numba_threads, split_every)
    dX2 = dY.map_blocks(_dx_block, _constant(W, "numba-affine-W"), numba_threads, chunks=(dY.chunks[0], (D,)),
                        dtype=dt, name=f"numba-affine-dx-{token}")
    dX = dX2 if X.ndim == 2 else dX2.reshape(X.shape)
    dW_parts = da.blockwise(_dw_block, "cdh", X2, "cd", dY, "ch", numba_threads, None, dtype=dt,
                            adjust_chunks={"c": 1}, name=f"numba-affine-dw-parts-{token}")
    db_parts = da.blockwise(_db_block, "ch", dY, "ch", dtype=dt, adjust_chunks={"c": 1},
                            name=f"numba-affine-db-parts-{token}")
    return dX, _tree_sum(dW_parts, split_every), _tree_sum(db_parts, split_every)
