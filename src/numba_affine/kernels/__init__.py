"""Explicit-loop kernels: one register block, packing, the product driver, column sums.

Data flow of a product ``C = A . B``::

    product (prange over tasks: mc rows x ng panels of C)
      └─ per block of k: pack_panels (B -> contiguous panels)
                         register_block (6 rows x 2 vectors, FMAs in registers)

The forward (x . W), dx (dout . W.T) and dW (x.T . dout) are the same
``product`` with different strides; db is :func:`column_sums`. Which twin
runs and how the work is cut is decided by :func:`plan`, the one place
that chooses.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, NamedTuple

from .. import tuning
from .._simd import VECTOR_BYTES
from .column_sums import column_sums
from .product import product
from .register_block import MR, MR_NARROW, register_block, register_block_narrow

__all__ = ["MR", "MR_NARROW", "Plan", "column_sums", "lanes_of", "plan", "product", "wants_threads", "register_block", "register_block_narrow"]


def lanes_of(itemsize: int) -> int:
    """Elements of one vector for this item size."""
    return VECTOR_BYTES // itemsize


class Plan(NamedTuple):
    """How one product runs: which twin, its blocking, what is packed."""

    kernel: Callable
    parallel: bool
    kc_max: int
    mc: int
    ng: int
    pack_a: bool
    pack_b: bool


def wants_threads(M: int, K: int, P: int, itemsize: int) -> bool:
    """Whether an M x K x P product is large enough for the parallel twin.

    Small work runs on the calling thread: waking the threads costs more
    than it takes on one core. A vector holds twice as many float32, so
    float32 work counts half.
    """
    return M * K * P * itemsize >= tuning.PARALLEL_MIN_WORK * 8


@lru_cache(maxsize=4096)
def plan(M: int, K: int, P: int, itemsize: int, threads: int, a_transposed: bool, b_transposed: bool) -> Plan:
    """Choose the twin, the blocking and the packing of an M x K x P product.

    ``threads`` is the thread count of the parallel twin; 1 runs the
    serial twin (the caller asks :func:`wants_threads` first).

    A plan only changes which task computes an element and where its
    operands are read from, never the arithmetic: results are the same
    for every plan. Plans are cached (a call at the seed's size takes
    about as long as computing one); after changing a value in
    :mod:`numba_affine.tuning`, call ``plan.cache_clear()``.
    """
    lanes = VECTOR_BYTES // itemsize
    nr = 2 * lanes
    kc_max = max(16, tuning.PANEL_BYTES // (2 * VECTOR_BYTES))
    # B is read in place unless it is transposed, or its rows are far
    # apart and reused by enough rows of A to repay the copy
    pack_b = b_transposed or (P * itemsize >= tuning.PACK_B_MIN_ROW_BYTES and M >= tuning.PACK_B_MIN_ROWS)
    # a transposed A is packed when enough panels of B reuse each copy
    pack_a = a_transposed and M > 1 and -(-P // nr) >= tuning.PACK_A_MIN_PANELS
    if threads < 2:
        return Plan(product.serial, False, kc_max, max(1, -(-M // MR_NARROW)) * MR_NARROW, tuning.NG_MAX, pack_a, pack_b)
    panels = max(1, -(-P // nr))
    want = threads * tuning.TASKS_PER_THREAD
    # rows first: tasks side by side along a row would share the cache
    # lines at their panels' edges (C is stored and reloaded per block of k)
    row_tiles = max(1, -(-M // MR_NARROW))
    row_blocks = min(row_tiles, max(min(want, -(-M // tuning.MIN_TASK_ROWS)), -(-M // tuning.MC_MAX)))
    mc = -(-row_tiles // row_blocks) * MR_NARROW
    row_blocks = -(-M // mc)
    groups = min(panels, max(1, -(-want // row_blocks)))
    ng = min(tuning.NG_MAX, -(-panels // groups))
    groups = -(-panels // ng)
    return Plan(product.parallel, True, kc_max, mc, ng, pack_a, pack_b)
