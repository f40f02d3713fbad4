"""Explicit-loop kernels: one register block, packing, the product driver, column sums.

Data flow of a product ``C = A . B``::

    product (one prange over tasks: mt rows x ng panels of C)
      └─ per block of k: pack_panel (the task's panels of B, or the partial last one)
           └─ per mc rows: pack_columns_of_a (dW's x.T, when reused enough)
                └─ per panel: register_block (6 rows x 2 vectors, FMAs in registers)

The forward (x . W), dx (dout . W.T) and dW (x.T . dout) are the same
``product`` with different strides; db is :func:`column_sums`. Which twin
runs and how the work is cut is decided by :func:`plan`, the one place
that chooses.
"""

from __future__ import annotations

from functools import lru_cache

from numba.extending import register_jitable
from typing import Callable, NamedTuple

from .. import tuning
from .._simd import VECTOR_BYTES
from .column_sums import column_sums
from .product import product, scratch_slot
from .row_product import row_product
from .register_block import MR, MR_NARROW, register_block, register_block_narrow

__all__ = ["VECTOR_BYTES", "MR", "MR_NARROW", "Plan", "column_sums", "lanes_of", "plan", "product", "row_product", "rows_first", "scratch_slot", "wants_threads", "register_block", "register_block_narrow"]


def lanes_of(itemsize: int) -> int:
    """Elements of one vector for this item size."""
    return VECTOR_BYTES // itemsize


class Plan(NamedTuple):
    """How one product runs: which twin, its blocking, what is packed."""

    kernel: Callable
    parallel: bool
    kc_max: int
    mc: int
    mt: int
    ng: int
    pack_a: bool
    pack_b: bool
    slot: int
    tasks: int
    by_rows: bool


def wants_threads(M: int, K: int, P: int, itemsize: int) -> bool:
    """Whether an M x K x P product is large enough for the parallel twin.

    Small work runs on the calling thread: waking the threads costs more
    than it takes on one core. A vector holds twice as many float32, so
    float32 work counts half.
    """
    return M * K * P * itemsize >= tuning.PARALLEL_MIN_WORK * 8


def _up(n: int, to: int) -> int:
    return max(1, -(-n // to)) * to


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
    panels = max(1, -(-P // nr))
    # B is read in place unless it is transposed, or its rows are far
    # apart and reused by enough rows of A to repay the copy
    pack_b = b_transposed or (P * itemsize >= tuning.PACK_B_MIN_ROW_BYTES and M >= tuning.PACK_B_MIN_ROWS)
    # a transposed A is packed when enough panels of B reuse each copy
    pack_a = a_transposed and M > 1 and panels >= tuning.PACK_A_MIN_PANELS
    mc = min(_up(M, 12), tuning.MC_MAX // 12 * 12)
    ng_max = max(1, tuning.B_BLOCK_BYTES // tuning.PANEL_BYTES)
    row_tiles = max(1, -(-M // 12))
    if threads < 2:
        kernel, ranges, groups = product.serial, 1, -(-panels // ng_max)
    else:
        kernel = product.parallel
        want = threads * (tuning.PACKED_TASKS_PER_THREAD if pack_a and pack_b else tuning.TASKS_PER_THREAD)
        # every task packs what it uses: A's rows once per group of panels,
        # B's panels once per range of rows; cut so that the least is
        # copied, counted in units of 1/1024 of the multiply-adds (smaller
        # differences tie). A copied element costs ~30 multiply-adds
        # (docs/tuning.md), so a product packing both asks for fewer tasks.
        unit = M * K * P // 1024 + 1
        a_copy = M * K if pack_a else 0
        b_copy = K * P if pack_b else 0
        most_ranges = min(row_tiles, max(1, -(-M // tuning.MIN_TASK_ROWS)))
        best = None
        for ranges in range(1, most_ranges + 1):
            groups = min(panels, max(-(-want // ranges), -(-panels // ng_max)))
            # ties go to more ranges: tasks side by side along a row would
            # share the cache lines at their panels' edges
            cost = ((groups * a_copy + ranges * b_copy) // unit, -ranges)
            # (the most ranges always qualify: their groups reach every panel or enough tasks)
            if groups * ranges >= min(want, panels * most_ranges) and (best is None or cost < best[0]):
                best = cost, ranges, groups
        _, ranges, groups = best
    ng = -(-panels // groups)
    mt = -(-row_tiles // ranges) * 12
    slot = scratch_slot(K, P, lanes, kc_max, mc, ng, pack_a, pack_b)
    tasks = -(-M // mt) * -(-panels // ng)
    by_rows = rows_first(K, ng, nr, itemsize, kc_max, tuning.ROWS_FIRST_MAX_BYTES)
    return Plan(kernel, kernel is product.parallel, kc_max, mc, mt, ng, pack_a, pack_b, slot, tasks, by_rows)


@register_jitable
def rows_first(K, ng, nr, itemsize, kc_max, most_bytes):
    """Whether a task walks 12 rows across all its panels at a time: when its
    block of B (``min(K, kc_max) x ng`` panels) fits ``most_bytes``
    (``tuning.ROWS_FIRST_MAX_BYTES``).
    Rows of C are then written left to right, not down their columns, which
    with C's rows 4 KiB apart (a power of two) conflict in the caches."""
    return min(K, kc_max) * ng * nr * itemsize <= most_bytes
