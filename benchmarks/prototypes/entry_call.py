"""Prototype (not used by the library): one serial entry per dtype that calls ``kernels.product.serial``.

Run by ``benchmarks/one_entry.py``. ``run(op, x, W, b, dout, y, dx, dW, db)``
checks the shapes (``numba_affine._checks``, raising), reads its inputs in
place with ``np.ascontiguousarray`` (signature: inputs read-only, any
layout) and calls the product dispatcher at one site.
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, register_jitable
from numba_affine import kernels, tuning
from numba_affine._checks import check_backward, check_dw, check_dx, check_forward
from numba_affine._jit import _jit

KC_MAX = max(16, tuning.PANEL_BYTES // (2 * kernels.VECTOR_BYTES))
NG_MAX = max(1, tuning.B_BLOCK_BYTES // tuning.PANEL_BYTES)


def _stack_array(like, elements):
    sig = types.Array(like.dtype, 1, "C")(like)

    def codegen(context, builder, sig, args):
        element = context.get_data_type(like.dtype)
        itemsize = context.get_abi_sizeof(element)
        n = elements(itemsize)
        # in the entry block: one fixed slot per call site, also when inlined into a loop
        storage = cgutils.alloca_once(builder, ir.ArrayType(element, max(n, 1)))
        storage.align = 64
        intp = lambda v: context.get_constant(types.intp, v)  # noqa: E731
        array = context.make_array(sig.return_type)(context, builder)
        context.populate_array(
            array,
            data=builder.bitcast(storage, element.as_pointer()),
            shape=cgutils.pack_array(builder, [intp(n)]),
            strides=cgutils.pack_array(builder, [intp(itemsize)]),
            itemsize=intp(itemsize),
            meminfo=None,
        )
        return array._getvalue()

    return sig, codegen


@intrinsic
def stack_scratch(typingctx, like):
    """``JIT_STACK_SCRATCH_BYTES`` of ``like``'s dtype on the calling function's stack."""
    return _stack_array(like, lambda itemsize: tuning.JIT_STACK_SCRATCH_BYTES // itemsize)


@intrinsic
def flat(typingctx, a):
    """C-contiguous ``a`` as a 1-D array of its elements (no copy; read-only stays read-only).

    ``a.reshape(-1)`` runs a normalisation and a C helper on every call
    (about 25 ns, as much as a small kernel); a contiguous array's flat view
    is only a new header.
    """
    if not (isinstance(a, types.Array) and a.layout == "C"):
        return None
    sig = a.copy(ndim=1)(a)

    def codegen(context, builder, sig, args):
        source = context.make_array(sig.args[0])(context, builder, args[0])
        view = context.make_array(sig.return_type)(context, builder)
        context.populate_array(
            view,
            data=source.data,
            shape=cgutils.pack_array(builder, [source.nitems]),
            strides=cgutils.pack_array(builder, [source.itemsize]),
            itemsize=source.itemsize,
            meminfo=source.meminfo,
            parent=source.parent,
        )
        return impl_ret_borrowed(context, builder, sig.return_type, view._getvalue())

    return sig, codegen


#: Operation codes of :func:`run`; ``| WITH_BIAS`` and ``| ACCUMULATE`` are flags.
FORWARD, BACKWARD, DX, DW, DB = range(5)
WITH_BIAS, ACCUMULATE = 8, 16


def run(op, x, W, b, dout, y, dx, dW, db):
    """One public call on this thread: ``op`` says which, its arguments are 2-D.

    ===========  ==========================  ==============================
    op           reads                       writes
    ===========  ==========================  ==============================
    FORWARD      x (N, D), W (D, H), b       y (N, H) = x . W (+ b)
    BACKWARD     dout (N, H), x, W           dx (N, D), dW (D, H), db (H,)
    DX           dout, W                     dx = dout . W.T
    DW           x, dout                     dW (+)= x.T . dout
    DB           dout                        db (+)= dout summed over rows
    ===========  ==========================  ==============================

    Inputs may have any strides (a non-contiguous one is copied); outputs
    are C-contiguous with the result's shape (the caller made them).
    Arguments an operation does not read stand in for any array of their
    type. Shapes are checked first (:class:`ShapeError`).
    """
    kind = op & 7
    accumulate = (op & ACCUMULATE) != 0
    add_bias = (op & WITH_BIAS) != 0
    lanes = kernels.VECTOR_BYTES // y.itemsize
    if kind == FORWARD:
        check_forward(x, W, b, add_bias)
        first, last = 0, 1
    else:
        if kind == BACKWARD:
            check_backward(dout, x, W)
        elif kind == DX:
            check_dx(dout, W)
        elif kind == DW:
            check_dw(x, dout)
        first = 2 if kind == DW else 1
        last = 2 if kind == DX else 3
        if kind == DB:
            first = last
    x1 = flat(np.ascontiguousarray(x))
    W1 = flat(np.ascontiguousarray(W))
    d1 = flat(np.ascontiguousarray(dout))
    bias = flat(np.ascontiguousarray(b))
    N = x.shape[0]
    if kind == FORWARD and N == 1:  # one sample: one pass over W, no rows computed in vain
        H = W.shape[1]
        kernels.row_product(x1, 0, W1, H, flat(y), W.shape[0], H, bias, add_bias, lanes)
        return
    S = stack_scratch(y)
    # one call site of the product for all three (it is compiled once)
    for step in range(first, last):
        if step == 0:  # y = x . W (+ b)
            N, D = x.shape
            H = W.shape[1]
            A, a_rs, a_ks, B, b_rs, b_cs, C, c_rs, M, K, P = x1, D, 1, W1, H, 1, flat(y), H, N, D, H
            at, bt, acc, with_bias = False, False, False, add_bias
        elif step == 1:  # dx = dout . W.T
            N, H = dout.shape
            D = W.shape[0]
            A, a_rs, a_ks, B, b_rs, b_cs, C, c_rs, M, K, P = d1, H, 1, W1, 1, H, flat(dx), D, N, H, D
            at, bt, acc, with_bias = False, True, False, False
        else:  # dW (+)= x.T . dout
            N, H = dout.shape
            D = x.shape[1]
            A, a_rs, a_ks, B, b_rs, b_cs, C, c_rs, M, K, P = x1, 1, D, d1, H, 1, flat(dW), H, D, N, H
            at, bt, acc, with_bias = True, False, accumulate, False
        # the serial plan (kernels.plan with one thread)
        nr = 2 * lanes
        panels = max(1, (P + nr - 1) // nr)
        pack_b = bt or (P * y.itemsize >= tuning.PACK_B_MIN_ROW_BYTES and M >= tuning.PACK_B_MIN_ROWS)
        pack_a = at and M > 1 and panels >= tuning.PACK_A_MIN_PANELS
        row_tiles = max(1, (M + 11) // 12)
        mc = min(row_tiles * 12, tuning.MC_MAX // 12 * 12)
        groups = (panels + NG_MAX - 1) // NG_MAX
        ng = (panels + groups - 1) // groups
        kc = min(KC_MAX, K)
        slot = ((ng if pack_b else 1) * kc * nr if (pack_a or pack_b or P % nr != 0) else 0)
        if pack_a:
            slot += (mc + 11) // 12 * 12 * kc + lanes
        by_rows = kc * ng * nr * y.itemsize <= tuning.ROWS_FIRST_MAX_BYTES
        if slot > S.size:
            S = np.empty(slot, y.dtype)
        kernels.product.serial(A, a_rs, a_ks, B, b_rs, b_cs, C, c_rs, M, K, P, bias, with_bias, acc,
                               S, slot, pack_a, pack_b, lanes, KC_MAX, mc, row_tiles * 12, ng, by_rows)
    if kind == BACKWARD or kind == DB:
        N, H = dout.shape
        kernels.column_sums(d1, N, H, db, accumulate)


def signature(dtype):
    """:func:`run`'s one signature for ``dtype``: inputs read-only with any layout, outputs C."""
    dt = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    In2 = types.Array(dt, 2, "A", readonly=True)
    In1 = types.Array(dt, 1, "A", readonly=True)
    Out2 = types.Array(dt, 2, "C")
    return types.none(types.intp, In2, In2, In1, In2, Out2, Out2, Out2, types.Array(dt, 1, "C"))




def runner(dtype):
    dispatcher = _jit(run)
    dispatcher.compile(signature(dtype))
    dispatcher.disable_compile()
    return dispatcher
