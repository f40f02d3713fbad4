"""Every tuned constant of the library, with what it decides.

The figures behind each value are in ``docs/tuning.md``; re-measure them on
a new CPU with ``python benchmarks/tune.py`` (it prints the table and the
values it would choose).
"""

#: The register blocks, per vector width in bytes (32: AVX2's ymm, 64:
#: AVX-512's zmm): rows x vectors of columns. Accumulators (rows x vectors),
#: the vectors of B and one broadcast must fit the register file: 16 ymm,
#: 32 zmm. A block wider than one vector runs when a panel has more than a
#: vector of columns; the narrow one for the last vector or less.
TILES_BY_WIDTH = {
    32: {"wide": (6, 2), "narrow": (12, 1)},
    64: {"wide": (6, 2), "narrow": (12, 1)},
}

#: Below this many float64 multiply-adds (N*D*H; float32 counts half) a
#: product runs on the calling thread: waking the threads costs more than
#: such a product takes on one core.
PARALLEL_MIN_WORK = 2_000_000

#: Bytes of one packed panel of B (2 vectors wide, one block of k long):
#: it is read once per 6 rows of C, so it must stay in L1 with room to spare.
PANEL_BYTES = 32 << 10

#: Rows of C per block of A (packed or read in place), at most: the
#: block's rows of A stay in L2 while every panel of B passes them.
MC_MAX = 120

#: Rows of C per parallel task, at least (while there are tasks enough):
#: every range of rows packs its panels of B again.
MIN_TASK_ROWS = 48

#: Bytes of a task's packed block of B (its panels, one block of k long),
#: at most: BLIS's KC x NC block, which lives in L3. Every group of panels
#: packs A's rows again, so the groups are as wide as this allows.
B_BLOCK_BYTES = 4 << 20

#: A task whose block of B (its panels, one block of k long) is at most
#: this many bytes walks 12 rows across all its panels at a time, writing C
#: along its rows; a larger block runs each panel down the rows, so that
#: the panel stays in L1.
ROWS_FIRST_MAX_BYTES = 128 << 10

#: A parallel call is cut into at least this many tasks per thread, so that
#: a thread slowed by another process leaves its share to the others.
TASKS_PER_THREAD = 4

#: When a product packs both operands (dW's x.T and dout), every task past
#: one per thread copies a block of one of them again: such a product is
#: cut into this many tasks per thread instead.
PACKED_TASKS_PER_THREAD = 1

#: B (W, or dout for dW) is packed into panels when its rows are at least
#: this many bytes apart and at least ``PACK_B_MIN_ROWS`` rows of A reuse
#: it; otherwise the register block reads it in place (no copy: small
#: batches, single samples, narrow outputs).
PACK_B_MIN_ROW_BYTES = 4096
PACK_B_MIN_ROWS = 48

#: dW's A (x.T) is packed into contiguous blocks when at least this many
#: panels of B (2 vectors of columns each) reuse it; with fewer, dW streams
#: x once and the copy would double the memory traffic.
PACK_A_MIN_PANELS = 8

#: A thread keeps its packing buffer for its next call up to this size:
#: fresh pages cost a page fault each on first touch, on every call.
SCRATCH_KEEP_BYTES = 64 << 20

#: Inside users' jitted code, the packed operands use this many bytes of stack
#: (so that a jitted step allocates nothing); larger ones go to the heap.
#: Small enough for any thread's stack, large enough for the W.T of a
#: 100 x 10 float64 output layer, or a partial panel of B 128 rows long.
JIT_STACK_SCRATCH_BYTES = 16 << 10


def _tiles() -> dict:
    from ._simd import VECTOR_BYTES

    return TILES_BY_WIDTH[VECTOR_BYTES]


#: The tile shapes of the CPU Numba compiles for (see ``TILES_BY_WIDTH``).
TILES = _tiles()
