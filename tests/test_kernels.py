"""The kernels package, directly: the product driver under every plan, the
register blocks at every edge of their tiles, the packers and the column
sums, against the seed's numpy formulas; and the machine code of the
register blocks (vector FMAs at the width of this build)."""

import itertools

import machine_code

import numba
import numpy as np
import pytest
from reference import DTYPES, assert_matches, make_inputs

from numba_affine import kernels, tuning
from numba_affine._jit import FASTMATH
from numba_affine._simd import VECTOR_BYTES
from numba_affine.kernels.packing import pack_columns_of_a, pack_panel

#: Around every edge of the tiles: rows 1, 5/6/7 (wide block), 11/12/13
#: (narrow block), 47/48/49 and 121 (task rows); k 1, 255/256/257 and 513
#: (blocks of k); columns at half, one and two vectors of either width
#: (4/8/16 float64 lanes for AVX2/AVX-512, 8/16 float32) and one either side.
EDGE_SHAPES = [
    (1, 1, 1),
    (5, 3, 7),
    (6, 8, 8),
    (7, 9, 9),
    (11, 255, 15),
    (12, 256, 16),
    (13, 257, 17),
    (20, 50, 10),
    (47, 31, 31),
    (48, 32, 32),
    (49, 33, 33),
    (121, 513, 5),
    (25, 1, 65),
    (3, 700, 1),
]


def _forms(x, W, dout):
    """(name, M, K, P, expected, a_t, b_t) of the three products: forward, dx and dW."""
    N, D = x.shape
    H = W.shape[1]
    ref = x.astype(np.float64), W.astype(np.float64), dout.astype(np.float64)
    return [
        ("forward", N, D, H, ref[0] @ ref[1], False, False),
        ("dx", N, H, D, ref[2] @ ref[1].T, False, True),
        ("dW", D, N, H, ref[0].T @ ref[2], True, False),
    ]


_STEP = {"forward": 0, "dx": 1, "dW": 2}


def _run(kernel, name, x, W, dout, pack_a, pack_b, kc_max, mc, mt, ng, C=None, bias=None, accumulate=False, by_rows=False):
    """One product of ``kernels.product`` (``name``: forward, dx or dW) under a given plan."""
    dt = x.dtype
    step = _STEP[name]
    M, K, P = ((x.shape[0], x.shape[1], W.shape[1]), (dout.shape[0], dout.shape[1], W.shape[0]),
               (x.shape[1], x.shape[0], dout.shape[1]))[step]
    lanes = kernels.lanes_of(dt.itemsize)
    slot = kernels.scratch_slot(K, P, lanes, kc_max, mc, ng, pack_a, pack_b)
    tasks = -(-M // mt) * -(-max(1, -(-P // (2 * lanes))) // ng)
    S = np.full(max(1, slot * tasks), np.nan, dt)  # whatever a kernel reads unwritten is NaN
    C = np.full((M, P), np.nan, dt) if C is None else C.reshape(M, P)
    plan = np.zeros((3, len(kernels.PLAN_FIELDS)), np.int64)
    plan[step] = (kc_max, mc, mt, ng, pack_a, pack_b, by_rows)
    op = (kernels.FORWARD, kernels.DX, kernels.DW)[step]
    op |= (kernels.WITH_BIAS if bias is not None else 0) | (kernels.ACCUMULATE if accumulate else 0)
    bias = np.empty(0, dt) if bias is None else bias
    kernel(op, x, W, bias, dout, C, C, C, np.empty(0, dt), S, plan)
    return C


def _plans(M, a_t, b_t):
    """Every packing allowed for the operands, k blocks long and short, tasks and row blocks big and small."""
    for pack_a, pack_b in itertools.product((False, True) if a_t else (False,), (True,) if b_t else (False, True)):
        for kc_max, mc, mt, ng in ((256, max(12, M), max(12, M), 8), (16, 12, 12, 1), (100, 24, 48, 3), (32, 12, 36, 2)):
            yield pack_a, pack_b, kc_max, mc, mt, ng


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", EDGE_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_product_matches_numpy_under_every_plan_bitwise_alike(shape, dtype):
    N, D, H = shape
    x, W, b, dout = make_inputs(N, D, H, dtype, seed=N + D + H)
    for name, M, K, P, want, a_t, b_t in _forms(x, W, dout):
        first = None
        for kernel in kernels.product:
            for (pack_a, pack_b, kc_max, mc, mt, ng), by_rows in itertools.product(_plans(M, a_t, b_t), (False, True)):
                got = _run(kernel, name, x, W, dout, pack_a, pack_b, kc_max, mc, mt, ng, by_rows=by_rows)
                assert_matches(got, want, dtype, K)
                # a plan decides who computes an element, never how
                first = got if first is None else first
                np.testing.assert_array_equal(got, first, err_msg=f"{name} {pack_a, pack_b, kc_max, mc, mt, ng, by_rows}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_product_adds_the_bias_after_the_sum_and_accumulates(dtype):
    N, D, H = 49, 257, 33
    x, W, b, dout = make_inputs(N, D, H, dtype, seed=3)
    (_, M, K, P, want, *_), _, (_, dM, dK, dP, dW_want, *_) = _forms(x, W, dout)
    for kernel in kernels.product:
        y = _run(kernel, "forward", x, W, dout, False, True, 16, 12, 12, 1, bias=b)
        assert_matches(y, want + b, dtype, K)
        plain = _run(kernel, "forward", x, W, dout, False, True, 16, 12, 12, 1)
        np.testing.assert_array_equal(y, (plain + b).astype(dtype))
        start = np.random.default_rng(4).standard_normal(dM * dP).astype(dtype)
        for pack_a in (False, True):  # dW adds into its array with ACCUMULATE
            acc = _run(kernel, "dW", x, W, dout, pack_a, False, 100, 24, 48, 3, C=start.copy(), accumulate=True)
            assert_matches(acc, dW_want + start.reshape(dM, dP), dtype, dK + 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K,P", [(1, 1), (5, 7), (9, 33), (17, 16), (40, 65)])
def test_pack_panel_lays_out_zero_padded_panels(K, P, dtype):
    lanes = kernels.lanes_of(np.dtype(dtype).itemsize)
    nr = 2 * lanes
    panels = -(-P // nr)
    B = np.random.default_rng(K * P).standard_normal((K, P)).astype(dtype)
    padded = np.zeros((K, panels * nr), dtype)
    padded[:, :P] = B
    Bt = np.ascontiguousarray(B.T).reshape(-1)  # the same B stored transposed (W for dx)
    for k0, kc in ((0, K), (K // 2, K - K // 2)):
        for q in range(panels):
            want = padded[k0 : k0 + kc, q * nr : (q + 1) * nr].reshape(-1)
            for flat, b_rs, b_cs in ((B.reshape(-1), P, 1), (Bt, 1, K)):
                got = np.full(kc * nr + 3, np.nan, dtype)
                pack_panel(flat, b_rs, b_cs, q, k0, kc, P, lanes, got, 3)
                np.testing.assert_array_equal(got[3:], want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,K", [(1, 1), (5, 3), (12, 4), (13, 7), (30, 2)])
def test_pack_columns_of_a_lays_out_zero_padded_blocks_of_six_rows(M, K, dtype):
    lanes = kernels.lanes_of(np.dtype(dtype).itemsize)
    x = np.random.default_rng(M + K).standard_normal((K + 2, M + 3)).astype(dtype)  # A = x.T, stride M + 3 along k
    for i0, k0 in ((0, 0), (1, 2)):
        rows = M + 3 - i0 if i0 else M
        kc = K
        blocks = -(-rows // 12) * 2  # of 6 rows, zero up to a multiple of 12
        Ap = np.full(blocks * 6 * kc + lanes, np.nan, dtype)
        pack_columns_of_a(x.reshape(-1), M + 3, M + 3, i0, rows, k0, kc, lanes, Ap, 0)
        Ap = Ap[: blocks * 6 * kc]  # the room after the last block is scratch
        padded = np.zeros((blocks * 6, kc), dtype)
        padded[:rows] = x[k0 : k0 + kc, i0 : i0 + rows].T
        want = padded.reshape(blocks, 6, kc).transpose(0, 2, 1).reshape(-1)
        np.testing.assert_array_equal(Ap, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N,H", [(0, 3), (1, 1), (7, 17), (20, 10), (33, 65)])
def test_column_sums(N, H, dtype):
    d = np.random.default_rng(N + H).standard_normal((N, H)).astype(dtype)
    out = np.full(H, np.nan, dtype)
    kernels.column_sums(d.reshape(-1), N, H, out, False)
    assert_matches(out, d.astype(np.float64).sum(0), dtype, N)
    if N:  # in the order of the rows, one after the other (numpy's cumsum is sequential)
        np.testing.assert_array_equal(out, np.cumsum(d, axis=0, dtype=dtype)[-1])
    kernels.column_sums(d.reshape(-1), N, H, out, True)
    assert_matches(out, 2 * d.astype(np.float64).sum(0), dtype, 2 * N)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["register_block", "register_block_narrow"])
def test_register_block_inner_loop_is_fmas_on_registers(name, dtype):
    """A register block compiled afresh (cached code cannot be inspected): its
    inner loop over k has twelve vector FMAs per step on registers of this
    build's width (zmm with AVX-512, else ymm; ``test_vector_width`` runs this
    again for the AVX2 build), fed by broadcasts of A, and nothing else that
    costs: no access to the stack (a spilled register) and no masked load
    or mask computation."""
    block = numba.njit(fastmath=set(FASTMATH), error_model="numpy")(getattr(kernels, name).py_func)
    lanes = kernels.lanes_of(np.dtype(dtype).itemsize)
    rows, kc, p = 12, 8, lanes if name.endswith("narrow") else 2 * lanes
    A = np.ones(rows * kc, dtype)
    Bp = np.ones(kc * p, dtype)
    C = np.zeros(rows * p, dtype)
    block(A, 0, kc, 6 * kc, 1, rows, 0, False, Bp, 0, p, kc, C, 0, p, p, lanes, False, np.empty(0, dtype), 0, False)
    np.testing.assert_array_equal(C, kc)
    loops = machine_code.fma_loops(block.inspect_asm(block.signatures[0]))
    assert loops, "no loop with FMAs found"
    suffix = "ps" if dtype == np.float32 else "pd"
    register = "zmm" if VECTOR_BYTES == 64 else "ymm"
    for loop in loops:
        text = "\n".join(loop)
        fmas = [line for line in machine_code.fmas(loop) if suffix in line and register in line]
        assert len(fmas) >= 12 and len(fmas) % 12 == 0, text  # 12 per step (LLVM may unroll)
        # a broadcast is its own instruction, or folded into the FMA (AVX-512's {1toN})
        broadcasts = text.count("vbroadcasts" + ("s" if dtype == np.float32 else "d")) + sum("{1to" in f for f in fmas)
        assert broadcasts * (1 if name.endswith("narrow") else 2) >= len(fmas), text
        assert machine_code.stack_accesses(loop) == [], text
        assert machine_code.masked_accesses(loop) == [], text


def test_the_machine_code_reader_sees_spills_and_masks():
    # the checks above can fail: a loop with a spill and a masked load is seen as one
    asm = """f:
.LBB0_1:
\tvmovupd\t(%rsp), %ymm4
\tvmaskmovpd\t(%rdi), %ymm1, %ymm2
\tvfmadd231pd\t%ymm0, %ymm2, %ymm4
\tdecq\t%rcx
\tjne\t.LBB0_1
\tretq"""
    (loop,) = machine_code.fma_loops(asm)
    assert len(machine_code.stack_accesses(loop)) == 1
    assert len(machine_code.masked_accesses(loop)) == 1
    assert len(machine_code.fmas(loop)) == 1


@pytest.mark.parametrize("itemsize", [4, 8])
@pytest.mark.parametrize("threads", [1, 2, 8])
@pytest.mark.parametrize("shape", [(1, 1, 1), (20, 50, 10), (2048, 512, 10), (100, 784, 100), (7, 100000, 3), (4000, 1, 4000)])
def test_plans_cover_the_output_with_legal_blocks(shape, threads, itemsize):
    M, K, P = shape
    for a_t, b_t in ((False, False), (False, True), (True, False)):
        plan = kernels.plan(M, K, P, itemsize, threads, a_t, b_t)
        assert plan.mc % kernels.MR_NARROW == 0 and plan.mt % kernels.MR_NARROW == 0
        assert plan.mc >= 1 and plan.mt >= 1 and plan.ng >= 1 and plan.kc_max >= 16
        assert plan.mt >= M or plan.parallel  # the serial twin has one range of rows
        assert plan.ng * plan.kc_max * 2 * kernels.VECTOR_BYTES <= max(tuning.B_BLOCK_BYTES, tuning.PANEL_BYTES)
        assert plan.parallel == (plan.kernel is kernels.product.parallel)
        assert not plan.parallel or threads > 1
        assert plan.pack_b or not b_t  # a transposed B is always packed
        assert not plan.pack_a or a_t


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K,P", [(1, 1), (7, 3), (50, 10), (13, 64), (11, 33), (9, 40), (784, 100), (5, 129), (0, 5)])
def test_row_product_is_a_row_of_the_batch_bit_for_bit(K, P, dtype):
    """One sample's forward streams W once; each element is the register
    blocks' chain of FMAs, so it equals that row computed in a batch."""
    x, W, b, _ = make_inputs(7, K, P, dtype, seed=K + P)
    lanes = kernels.lanes_of(np.dtype(dtype).itemsize)
    batch = _run(kernels.product.serial, "forward", x, W, x, False, False, 256, 12, 12, 8, bias=b)
    for row in (0, 6):
        y = np.full(P, np.nan, dtype)
        kernels.row_product(x.reshape(-1), row * K, W.reshape(-1), P, y, K, P, b, True, lanes)
        np.testing.assert_array_equal(y, batch[row])
        assert_matches(y, x[row].astype(np.float64) @ W.astype(np.float64) + b, dtype, K)
    y = np.full(P, np.nan, dtype)
    kernels.row_product(x.reshape(-1), 0, W.reshape(-1), P, y, K, P, np.empty(0, dtype), False, lanes)
    assert_matches(y, x[0].astype(np.float64) @ W.astype(np.float64), dtype, K)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_kernel_asks_for_scratch_instead_of_allocating(dtype):
    """Given too little scratch for its plan (more than its stack), the
    product computes nothing and returns what it needs; given that, it runs."""
    x, W, _, d = make_inputs(48, 300, 200, dtype)
    kernel = kernels.entry(dtype, False)
    no_plan = np.zeros((0, len(kernels.PLAN_FIELDS)), np.int64)
    dx, dW, db = np.full((48, 300), np.nan, dtype), np.full((300, 200), np.nan, dtype), np.full(200, np.nan, dtype)
    none = np.empty(0, dtype)
    need = kernel(kernels.BACKWARD, x, W, none, d, dx, dx, dW, db, none, no_plan)
    assert need * np.dtype(dtype).itemsize > tuning.JIT_STACK_SCRATCH_BYTES
    assert np.isnan(dx).all() and np.isnan(dW).all() and np.isnan(db).all()
    assert kernel(kernels.BACKWARD, x, W, none, d, dx, dx, dW, db, np.empty(need, dtype), no_plan) == 0
    assert_matches(dx, d.astype(np.float64) @ W.T.astype(np.float64), dtype, 200)
    assert_matches(dW, x.T.astype(np.float64) @ d.astype(np.float64), dtype, 48)
    # and the stack is enough at the seed's size
    x, W, _, d = make_inputs(20, 50, 10, dtype)
    dx, dW, db = np.empty((20, 50), dtype), np.empty((50, 10), dtype), np.empty(10, dtype)
    assert kernel(kernels.BACKWARD, x, W, none, d, dx, dx, dW, db, none, no_plan) == 0


def test_the_kernels_count_no_references():
    """Reference counting cost an atomic increment and decrement per array
    argument and call: the kernels borrow their arrays (``_jit``'s ``_nrt=False``)."""
    from numba_affine._jit import _BASE_OPTIONS  # compiled afresh: cached code cannot be inspected

    kernel = numba.njit(**_BASE_OPTIONS)(kernels.product.serial.py_func)
    signature = kernels.entry_signature(np.float64)
    kernel.compile(signature.args)
    asm = kernel.inspect_asm(signature.args)
    assert "NRT_incref" not in asm and "NRT_decref" not in asm and "NRT_MemInfo" not in asm
    assert "memset" not in asm  # the stack scratch is not cleared on every call
