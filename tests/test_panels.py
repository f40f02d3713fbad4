"""The panel form (kernels, "panel form"): the outer-product forward (x read
in place) and backward (dout read in place for dx, x packed transposed for
dW) kernels that api runs for parallel calls. Checked on small shapes,
directly (both dtypes: the kernels are generic) and through
affine_forward / affine_backward with the size switches turned down,
against the seed's numpy formulas, at every edge of their blocks (6-row
register blocks, 2-vector panels, k blocks of up to 1024, 128-row tiles,
the transposing packer's square blocks of 8 / 4 and its runs of 32 rows)."""

import numba
import numpy as np
import pytest
from reference import DTYPES, SHAPES, assert_matches, backward, forward, make_inputs

import numba_affine as na
from numba_affine import api, kernels
from numba_affine._jit import FASTMATH
from numba_affine._simd import VECTOR_BYTES, vtranspose
from numba_affine.gradcheck import numerical_gradient

#: (N, D, H) around each block edge: rows 5/6/7, 47/48/49/97 and 193 (and D for
#: dW: 255-257, 511/513, 1031 in 128-row tiles), panel widths 7/8/9 and
#: 15/16/17 (float64 / float32 panels of 32-byte vectors), 15/16/17 and
#: 31/32/33 (of 64-byte vectors), remainders of half a panel (4, 8, 16) and
#: one more, k blocks (1023/1025 in one, 1031 and 1153 cut in two), primes,
#: the seed.
PANEL_SHAPES = [
    (1, 1, 1),
    (5, 7, 15),
    (6, 8, 16),
    (7, 9, 17),
    (20, 50, 10),
    (47, 255, 33),
    (48, 256, 64),
    (49, 257, 65),
    (97, 511, 7),
    (193, 40, 20),
    (13, 513, 1025),
    (61, 1031, 257),
    (3, 5, 1023),
    (5, 577, 1153),
    (50, 576, 40),
    (31, 32, 32),
    (17, 33, 48),
    (12, 40, 24),
    (8, 16, 49),
    (19, 70, 12),
    (128, 70, 40),
    (129, 70, 40),
]


def _ids(s):
    return "x".join(map(str, s))


def _forward(name, x, W, b, scratch=None):
    y = np.full((x.shape[0], W.shape[1]), np.nan, x.dtype)
    scratch = np.empty(0, x.dtype) if scratch is None else scratch
    getattr(kernels.forward_direct_kernels, name)(x, W, b, y, scratch)
    return y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [*PANEL_SHAPES, (129, 300, 40), (257, 64, 31)], ids=_ids)
def test_panel_kernel_matches_the_reference(shape, dtype):
    N, D, H = shape
    x, W, b, _ = make_inputs(N, D, H, dtype)
    ey = forward(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64))
    y = _forward("serial", x, W, b)
    assert_matches(y, ey, dtype, D)
    np.testing.assert_array_equal(_forward("parallel", x, W, b), y)  # same tiles, same order, same bits
    assert_matches(_forward("parallel", x, W, b[:0]), ey - b, dtype, D)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(48, 256, 64), (13, 513, 1025)], ids=_ids)
def test_panel_kernel_stays_inside_its_scratch_and_ignores_its_contents(shape, dtype):
    """The panels fill ``panels_size(D, H)`` elements and no more; stale NaN
    in a reused buffer never leaks (the padding is written as zeros on every
    call); a short buffer is replaced by a new one."""
    N, D, H = shape
    x, W, b, _ = make_inputs(N, D, H, dtype)
    ey = forward(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64))
    need = kernels.panels_size(D, H, x.itemsize)
    assert need >= W.size
    for size in (need, need - 1):
        scratch = np.full(size + 16, np.nan, dtype)
        scratch[size:] = -7.0
        y = _forward("parallel", x, W, b, scratch[:size])
        np.testing.assert_array_equal(scratch[size:], -7.0)
        assert_matches(y, ey, dtype, D)


@pytest.mark.parametrize("dtype", DTYPES)
def test_panel_kernel_propagates_nan_and_inf_like_numpy(dtype):
    x, W, b, _ = make_inputs(13, 300, 40, dtype)
    x[2, 7] = np.nan
    x[5, 11] = np.inf
    x[12, 3] = np.nan  # the last row: an edge block re-reads it for its missing rows
    W[3, 9] = -np.inf
    with np.errstate(invalid="ignore"):
        ey = forward(x, W, b)
    y = _forward("parallel", x, W, b)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ey))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(ey))


def test_api_reads_x_in_place_for_parallel_forwards():
    direct = api._DYNAMIC[kernels.forward_direct_kernels]
    forward = kernels.forward_kernels
    par, h = api.PARALLEL_MIN_WORK, api.SHORT_H
    big = int(api.SHORT_OUTPUT_WORK_RATIO * par)  # parallel whatever H is
    assert api._pick(forward, big, h) is direct
    assert api._pick(forward, par, api.SHORT_OUTPUT_H) is direct
    assert api._pick(forward, 1 << 30, 1024) is direct
    assert api._pick(forward, par - 1, 100) is kernels.small_forward
    assert api._pick(forward, big, h - 1) is api._DYNAMIC[forward]  # short H: dot form


def test_api_keeps_short_outputs_on_the_small_form_longer():
    """Outputs narrower than SHORT_OUTPUT_H columns run the small form up to
    SHORT_OUTPUT_WORK_RATIO x PARALLEL_MIN_WORK; wider ones from
    PARALLEL_MIN_WORK on; a call that passes no H (affine_db) is not short."""
    par, short = api.PARALLEL_MIN_WORK, api.SHORT_OUTPUT_H
    big = int(api.SHORT_OUTPUT_WORK_RATIO * par)
    f32 = np.dtype(np.float32)
    for pair, small in ((kernels.forward_kernels, kernels.small_forward), (kernels.backward_kernels, kernels.small_backward)):
        assert api._pick(pair, par, short - 1, f32) is small
        assert api._pick(pair, big - 1, 1, f32) is small
        assert api._pick(pair, big, short - 1, f32) is not small
        assert api._pick(pair, par, short, f32) is not small
    assert api._pick(kernels.backward_kernels, par) is not kernels.small_backward


def test_api_picks_the_panel_backward_by_dtype_and_width():
    panel = api._DYNAMIC[kernels.backward_panel_kernels]
    backward_ = kernels.backward_kernels
    dot = api._DYNAMIC[backward_]
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    par, h32, h64 = api.PARALLEL_MIN_WORK, api.PANEL_BACKWARD_MIN_H_F32, api.PANEL_BACKWARD_MIN_H_F64
    wide = VECTOR_BYTES == 64
    assert (h32, h64) == ((24, 32) if wide else (32, 96))
    big = int(api.SHORT_OUTPUT_WORK_RATIO * par)  # parallel whatever H is
    assert api._pick(backward_, big, h32, f32) is panel
    assert api._pick(backward_, big, h32 - 1, f32) is dot  # short H: axpy form
    assert api._pick(backward_, par - 1, 100, f32) is kernels.small_backward
    assert api._pick(backward_, par if h64 >= api.SHORT_OUTPUT_H else big, h64, f64) is panel
    assert api._pick(backward_, 1 << 30, h64 - 1, f64) is dot
    assert api._pick(backward_, par - 1, h64, f64) is kernels.small_backward
    assert api._pick(backward_, 0) is kernels.small_backward  # affine_db of an empty dout
    assert api._pick(backward_, par) is dot  # affine_db passes no H, no dtype


@pytest.fixture
def panels_everywhere(monkeypatch):
    """api runs the panel forms for every forward and backward call with
    H >= SHORT_H (parallel twins)."""
    monkeypatch.setattr(api, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(api, "PANEL_BACKWARD_MIN_H_F32", api.SHORT_H)
    monkeypatch.setattr(api, "PANEL_BACKWARD_MIN_H_F64", api.SHORT_H)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=_ids)
def test_affine_forward_reading_x_in_place(shape, dtype, panels_everywhere):
    N, D, H = shape
    x, W, b, _ = make_inputs(N, D, H, dtype)
    ey = forward(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64))
    assert_matches(na.affine_forward(x, W, b), ey, dtype, D)
    assert_matches(na.affine_forward(x, W), ey - b, dtype, D)
    x3 = np.asfortranarray(x)
    W3 = np.zeros((D, 2 * H), dtype)[:, ::2]
    W3[...] = W
    assert_matches(na.affine_forward(x3, W3, b), ey, dtype, D)
    if x.ndim == 2 and N > 1:  # the layer's N-D input, flattened
        assert_matches(na.affine_forward(x.reshape(N, 1, D), W, b), ey, dtype, D)


@pytest.mark.parametrize(
    ("dtype", "seed", "h", "tol"),
    [(np.float64, 5, 1e-4, 1e-6), (np.float32, 3, 1e-2, 2e-2)],  # float32: its own step and tolerance
)
def test_gradients_on_the_panel_forms_match_finite_differences(dtype, seed, h, tol, panels_everywhere):
    """The backward (panel form) against central differences of the
    forward (panel form, x read in place)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((7, 3, 5)).astype(dtype)
    W = rng.standard_normal((15, 17)).astype(dtype)
    b = rng.standard_normal(17).astype(dtype)
    dout = rng.standard_normal((7, 17)).astype(dtype)

    def loss(x_, W_, b_):
        return float(np.sum(na.affine_forward(x_, W_, b_).astype(np.float64) * dout))

    dx, dW, db = na.affine_backward(dout, x, W)
    kw = {"rtol": tol, "atol": tol}
    np.testing.assert_allclose(dx, numerical_gradient(lambda a: loss(a, W, b), x.copy(), h=h), **kw)
    np.testing.assert_allclose(dW, numerical_gradient(lambda a: loss(x, a, b), W.copy(), h=h), **kw)
    np.testing.assert_allclose(db, numerical_gradient(lambda a: loss(x, W, a), b.copy(), h=h), **kw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_panel_register_block_is_vector_fma(dtype):
    """The panel form's register block, compiled afresh (cached code cannot
    be inspected): 12 vector FMAs per step of k, fed by 6 broadcasts, in the
    machine code of this build, on registers of the width the kernels were
    built for (zmm with AVX-512, else ymm)."""
    block = numba.njit(fastmath=set(FASTMATH), error_model="numpy")(kernels._panel_block.py_func)
    nr = kernels.panel_width(np.dtype(dtype).itemsize)
    kc = 8
    Ap = np.ones(kernels.PANEL_ROWS * kc, dtype)
    Bp = np.ones(nr * kc, dtype)
    C = np.zeros(kernels.PANEL_ROWS * nr, dtype)
    P = kernels.PANEL_ROWS
    block(kc, Ap, 0, P, 1, P, Bp, 0, nr, C, 0, nr, True, np.zeros(nr, dtype), 0)
    np.testing.assert_array_equal(C, kc)
    asm = block.inspect_asm(block.signatures[0])
    suffix = "ps" if dtype == np.float32 else "pd"
    register = "zmm" if VECTOR_BYTES == 64 else "ymm"
    fmas = [line for line in asm.splitlines() if "vfmadd" in line and suffix in line and register in line]
    assert len(fmas) >= 12
    assert asm.count("vbroadcasts" + ("s" if dtype == np.float32 else "d")) >= 6


# ---------------------------------------------------------------- backward


def _backward(name, dout, x, W, flags, start=np.nan, scratch=None):
    N, H = dout.shape
    D = W.shape[0]
    dx = np.full((N, D), start, x.dtype)
    dW = np.full((D, H), start, x.dtype)
    db = np.full(H, start, x.dtype)
    scratch = np.empty(0, x.dtype) if scratch is None else scratch
    getattr(kernels.backward_panel_kernels, name)(dout, x, W, dx, dW, db, flags, scratch)
    return dx, dW, db


ALL = kernels.WANT_DX | kernels.WANT_DW | kernels.WANT_DB


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [*PANEL_SHAPES, (1031, 20, 17)], ids=_ids)
def test_backward_panel_kernel_matches_the_reference(shape, dtype):
    N, D, H = shape
    x, W, _, dout = make_inputs(N, D, H, dtype)
    edx, edW, edb = backward(*(a.astype(np.float64) for a in (dout, x, W)))
    dx, dW, db = _backward("serial", dout, x, W, ALL)
    assert_matches(dx, edx, dtype, H)
    assert_matches(dW, edW, dtype, N)
    assert_matches(db, edb, dtype, N)
    for got, want in zip(_backward("parallel", dout, x, W, ALL), (dx, dW, db)):
        np.testing.assert_array_equal(got, want)  # same tiles, same order, same bits
    # each part alone, the others untouched; dW and db accumulated
    only_dx = _backward("parallel", dout, x, W, kernels.WANT_DX)
    np.testing.assert_array_equal(only_dx[0], dx)
    assert np.isnan(only_dx[1]).all() and np.isnan(only_dx[2]).all()
    acc = _backward("parallel", dout, x, W, kernels.WANT_DW | kernels.WANT_DB | kernels.ACCUMULATE, start=1.0)
    np.testing.assert_array_equal(acc[0], 1.0)
    assert_matches(acc[1], edW + 1.0, dtype, N)
    assert_matches(acc[2], edb + 1.0, dtype, N)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(48, 256, 64), (61, 1031, 257), (131, 260, 70)], ids=_ids)
def test_backward_panel_kernel_stays_inside_its_scratch_and_ignores_its_contents(shape, dtype):
    N, D, H = shape
    x, W, _, dout = make_inputs(N, D, H, dtype)
    edx, edW, _ = backward(*(a.astype(np.float64) for a in (dout, x, W)))
    need = kernels.backward_panels_size(dout, x, W, ALL)
    x_t = x.size if N > kernels.DW_IN_PLACE_MAX_N else 0  # dW reads short x in place
    assert need >= W.size + dout.size + x_t  # W.T and dout in panels, x.T
    for size in (need, need - 1):
        scratch = np.full(size + 16, np.nan, dtype)
        scratch[size:] = -7.0
        dx, dW, _ = _backward("parallel", dout, x, W, ALL, scratch=scratch[:size])
        np.testing.assert_array_equal(scratch[size:], -7.0)
        assert_matches(dx, edx, dtype, H)
        assert_matches(dW, edW, dtype, N)


def test_panel_split_sends_at_most_half_a_panel_to_the_dot_form():
    split = kernels._panel_split.py_func
    for itemsize in (4, 8):
        nr = kernels.panel_width(itemsize)  # 16 / 8 with AVX2, 32 / 16 with AVX-512
        h = nr // 2
        assert split(nr, itemsize) == (1, 0) and split(nr + 1, itemsize) == (1, 1)
        assert split(nr + h, itemsize) == (1, h) and split(nr + h + 1, itemsize) == (2, 0)
        assert split(h - 1, itemsize) == (0, h - 1) and split(h + 1, itemsize) == (1, 0)
        assert split(12 * nr + h, itemsize) == (12, h) and split(0, itemsize) == (0, 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_vtranspose_moves_one_square_block_and_nothing_else(dtype):
    @numba.njit
    def transpose(src, s0, ss, dst, d0, ds):
        vtranspose(src, s0, ss, dst, d0, ds)

    lanes = VECTOR_BYTES // np.dtype(dtype).itemsize
    src = np.arange(300, dtype=dtype)
    dst = np.full(400, -1.0, dtype)
    transpose(src, 3, 17, dst, 5, 19)  # odd offsets and strides: unaligned
    block = np.array([[src[3 + r * 17 + c] for c in range(lanes)] for r in range(lanes)])
    rows = np.array([[dst[5 + c * 19 + r] for r in range(lanes)] for c in range(lanes)])
    np.testing.assert_array_equal(rows, block.T)
    written = np.zeros(400, bool)
    for c in range(lanes):
        written[5 + c * 19 : 5 + c * 19 + lanes] = True
    np.testing.assert_array_equal(dst[~written], -1.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_panel_kernel_propagates_nan_and_inf_like_numpy(dtype):
    x, W, _, dout = make_inputs(13, 300, 40, dtype)
    x[2, 7] = np.nan
    dout[5, 11] = np.inf
    W[3, 9] = -np.inf
    with np.errstate(invalid="ignore"):
        expected = backward(dout, x, W)
    for got, want in zip(_backward("parallel", dout, x, W, ALL), expected):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=_ids)
def test_affine_backward_on_the_panel_form(shape, dtype, panels_everywhere):
    N, D, H = shape
    x, W, _, dout = make_inputs(N, D, H, dtype)
    edx, edW, edb = backward(*(a.astype(np.float64) for a in (dout, x, W)))
    dx, dW, db = na.affine_backward(dout, x, W)
    assert_matches(dx, edx, dtype, H)
    assert_matches(dW, edW, dtype, N)
    assert_matches(db, edb, dtype, N)
    # strided and F-ordered operands, accumulation into given outputs, partial calls
    W2 = np.zeros((D, 2 * H), dtype)[:, ::2]
    W2[...] = W
    dW_out = np.ones((D, H), dtype)
    db_out = np.ones(H, dtype)
    dx2, dW2, db2 = na.affine_backward(np.asfortranarray(dout), np.asfortranarray(x), W2,
                                       dW_out=dW_out, db_out=db_out, accumulate=True)
    assert_matches(dx2, edx, dtype, H)
    assert_matches(dW2, edW + 1.0, dtype, N)
    assert_matches(db2, edb + 1.0, dtype, N)
    assert_matches(na.affine_dx(dout, W), edx, dtype, H)
    assert_matches(na.affine_dw(x, dout), edW, dtype, N)
