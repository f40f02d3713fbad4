"""Every tuned constant of the library, with what it decides.

The figures behind each value are in ``docs/tuning.md``; re-measure them on
a new CPU with ``python benchmarks/tune.py`` (it prints the table and the
values it would choose).
"""

#: Below this many float64 multiply-adds (N*D*H; float32 counts half) a
#: product runs on the calling thread: waking the threads costs more than
#: such a product takes on one core.
PARALLEL_MIN_WORK = 2_000_000

#: Bytes of one packed panel of B (2 vectors wide, one block of k long):
#: it is read once per 6 rows of C, so it must stay in L1 with room to spare.
PANEL_BYTES = 32 << 10

#: Rows of C per parallel task, at most (the task's rows of A stay in L2).
MC_MAX = 120

#: Rows of C per parallel task, at least (while there are tasks enough):
#: every row block reads all of its panels of B again.
MIN_TASK_ROWS = 48

#: Panels of B (2 vectors of columns each) per task, at most: the task's
#: packed block of B stays in L2 next to its rows of A.
NG_MAX = 8

#: A parallel call is cut into at least this many tasks per thread, so that
#: a thread slowed by another process leaves its share to the others.
TASKS_PER_THREAD = 4

#: B (W, or dout for dW) is packed into panels when its rows are at least
#: this many bytes apart and at least ``PACK_B_MIN_ROWS`` rows of A reuse
#: it; otherwise the register block reads it in place (no copy: small
#: batches, single samples, narrow outputs).
PACK_B_MIN_ROW_BYTES = 4096
PACK_B_MIN_ROWS = 48

#: dW's A (x.T) is packed into contiguous blocks when at least this many
#: panels of B (2 vectors of columns each) reuse it; with fewer, dW streams
#: x once and the copy would double the memory traffic.
PACK_A_MIN_PANELS = 16

#: A thread keeps its packing buffer for its next call up to this size:
#: fresh pages cost a page fault each on first touch, on every call.
SCRATCH_KEEP_BYTES = 64 << 20

#: Inside users' jitted code, dx packs W.T into this many bytes of stack
#: (so that a jitted step allocates nothing); larger W.T go to the heap.
#: Small enough for any thread's stack, large enough for the W.T of a
#: 100 x 10 float64 output layer (about D * H <= 1800).
JIT_STACK_SCRATCH_BYTES = 16 << 10
