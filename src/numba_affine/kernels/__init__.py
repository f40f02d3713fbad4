"""Explicit-loop kernels: one register block, packing, the product driver, column sums.

Data flow of one call (:func:`product`: the forward, the backward, or a part)::

    product (per product of the call: one prange over tasks, mt rows x ng panels of C)
      └─ per block of k: pack_panel (the task's panels of B, or the partial last one)
           └─ per mc rows: pack_columns_of_a (dW's x.T, when reused enough)
                └─ per panel: register_block (6 rows x 2 vectors, FMAs in registers)
    then db: column_sums

The forward (x . W), dx (dout . W.T) and dW (x.T . dout) are the same
driver with different strides. Which twin runs and how the work is cut is
decided by :func:`plan` (the kernel plans a serial call itself, by the
same rules, when given no plan).
"""

from __future__ import annotations

import threading
from functools import lru_cache

from typing import Callable, NamedTuple

import numpy as np

from numba import types

from .. import tuning
from .._jit import fixed_signature
from .._simd import VECTOR_BYTES
from .column_sums import column_sums
from .product import (ACCUMULATE, BACKWARD, DB, DW, DX, FORWARD, KC_MAX, PLAN_FIELDS, WITH_BIAS, product, rows_first,
                      scratch_slot)
from .row_product import row_product
from .register_block import MR, MR_NARROW, register_block, register_block_narrow

__all__ = ["call_plan", "clear_plans", "entry", "entry_signature", "VECTOR_BYTES", "MR", "MR_NARROW", "Plan", "column_sums", "lanes_of", "plan", "product", "row_product",
           "rows_first", "scratch_slot", "wants_threads", "register_block", "register_block_narrow",
           "FORWARD", "BACKWARD", "DX", "DW", "DB", "WITH_BIAS", "ACCUMULATE", "PLAN_FIELDS", "KC_MAX"]


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
    :mod:`numba_affine.tuning`, call :func:`clear_plans`. The serial twin
    given no plan plans itself by the same rules, with the values it was
    compiled with.
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
        ranges, groups = 1, -(-panels // ng_max)
    else:
        ranges, groups = _cut(M, K, P, threads, panels, row_tiles, ng_max, pack_a, pack_b)
    ng = -(-panels // groups)
    mt = -(-row_tiles // ranges) * 12
    slot = scratch_slot(K, P, lanes, kc_max, mc, ng, pack_a, pack_b)
    tasks = -(-M // mt) * -(-panels // ng)
    by_rows = rows_first(K, P, ng, nr, itemsize, kc_max)
    return Plan(product.parallel if threads >= 2 else product.serial, threads >= 2, kc_max, mc, mt, ng, pack_a, pack_b,
                slot, tasks, by_rows)


def _cut(M, K, P, threads, panels, row_tiles, ng_max, pack_a, pack_b):
    """(ranges of rows, groups of panels) of a parallel product's tasks."""
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
    return ranges, groups


_STEPS = {FORWARD: (0,), BACKWARD: (1, 2), DX: (1,), DW: (2,), DB: ()}


@lru_cache(maxsize=4096)
def call_plan(kind: int, N: int, D: int, H: int, itemsize: int, threads: int):
    """The ``plan`` argument of a parallel :func:`product` call and the scratch elements it needs.

    One row per product of the call (forward; dx; dW), each from :func:`plan`.
    """
    rows = np.zeros((3, len(PLAN_FIELDS)), np.int64)
    scratch = 0
    for step in _STEPS[kind]:
        M, K, P = ((N, D, H), (N, H, D) if N > 1 else (D, H, 1), (D, N, H))[step]  # (one sample's dx: W . dout.T)
        p = plan(M, K, P, itemsize, threads, step == 2, step == 1 and N > 1)
        rows[step] = (p.kc_max, p.mc, p.mt, p.ng, p.pack_a, p.pack_b, p.by_rows)
        scratch = max(scratch, p.slot * p.tasks)
    rows.flags.writeable = False
    return rows, scratch


def clear_plans() -> None:
    """Forget every cached plan (after changing a value in :mod:`numba_affine.tuning`)."""
    plan.cache_clear()
    call_plan.cache_clear()


def entry_signature(dtype) -> types.Signature:
    """:func:`product`'s one signature per dtype for calls from Python and users' jitted code.

    Inputs read-only (writeable arrays convert to it), everything C-contiguous.
    """
    dt = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    In2, In1 = types.Array(dt, 2, "C", readonly=True), types.Array(dt, 1, "C", readonly=True)
    Out2, Out1 = types.Array(dt, 2, "C"), types.Array(dt, 1, "C")
    plan = types.Array(types.int64, 2, "C", readonly=True)
    return types.intp(types.intp, In2, In2, In1, In2, Out2, Out2, Out2, Out1, Out1, plan)


_entries: dict = {}
_entries_lock = threading.Lock()


def entry(dtype, parallel: bool):
    """:func:`product`'s serial or parallel twin for ``dtype``, compiled for :func:`entry_signature` only.

    Compiled on first use (or loaded from the cache), never again: every
    layout a caller passes either converts to the signature or raises
    ``TypeError`` at the call.
    """
    key = (np.dtype(dtype), parallel)
    kernel = _entries.get(key)
    if kernel is None:
        with _entries_lock:
            kernel = _entries.get(key)
            if kernel is None:
                twin = product.parallel if parallel else product.serial
                kernel = _entries[key] = fixed_signature(twin, entry_signature(key[0]))
    return kernel
