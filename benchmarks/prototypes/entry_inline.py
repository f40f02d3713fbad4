"""Prototype (not used by the library): the product's driver loop written inside the entry.

Run by ``benchmarks/one_entry.py``. As ``entry_call.py`` but the driver of
``kernels/product.py`` is copied into ``run`` (so it is compiled once, not
once alone and again where it is linked), its inputs are typed C-contiguous
and read-only (no ``np.ascontiguousarray``: a caller copies other layouts),
and it runs no shape checks (a caller must).
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, register_jitable
from numba_affine import kernels, tuning
from numba_affine.kernels.packing import pack_columns_of_a, pack_panel
from numba_affine.kernels.product import b_room
from numba_affine.kernels.register_block import register_block, register_block_narrow
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
        first, last = 0, 1
    else:
        first = 2 if kind == DW else 1
        last = 2 if kind == DX else 3
        if kind == DB:
            first = last
    x1 = flat(x)
    W1 = flat(W)
    d1 = flat(dout)
    bias = flat(b)
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
        add_bias_, accumulate_, kc_max, mt = with_bias, acc, KC_MAX, row_tiles * 12
        panels = (P + nr - 1) // nr
        groups = (panels + ng - 1) // ng
        ranges = (M + mt - 1) // mt
        k_blocks = max(1, (K + kc_max - 1) // kc_max)
        edge = P % nr != 0 and not pack_b
        slots = max(1, S.size // max(1, slot))
        a_slot = b_room(K, lanes, kc_max, ng, pack_b)
        for t in range(ranges * groups):
            base = (t % slots) * slot
            i0 = (t // groups) * mt
            i1 = min(M, i0 + mt)
            q0 = (t % groups) * ng
            q1 = min(panels, q0 + ng)
            for kb in range(k_blocks):
                k0 = kb * kc_max
                kc = min(K, k0 + kc_max) - k0
                load_c = accumulate_ or kb > 0
                last = add_bias_ and kb == k_blocks - 1
                if pack_b:
                    for q in range(q0, q1):
                        pack_panel(B, b_rs, b_cs, q, k0, kc, P, lanes, S, base + (q - q0) * kc * nr)
                elif edge and q1 == panels:
                    pack_panel(B, b_rs, b_cs, panels - 1, k0, kc, P, lanes, S, base)
                for s0 in range(i0, i1, mc):
                    rows = min(i1, s0 + mc) - s0
                    if pack_a:
                        pack_columns_of_a(A, a_ks, M, s0, rows, k0, kc, lanes, S, base + a_slot)
                        src_a, a0, rs, bs, ks = S, base + a_slot, 1, 6 * kc, 6
                    else:
                        src_a, a0, rs, bs, ks = A, s0 * a_rs + k0 * a_ks, a_rs, 6 * a_rs, a_ks
                    # (start row, rows) of each call: all mc rows, or 12 at a time
                    rstep = 12 if by_rows else mc
                    for r0 in range(0, rows, rstep):
                        r = min(rstep, rows - r0)
                        ra = a0 + (r0 // 6) * bs + (r0 % 6) * rs
                        for q in range(q0, q1):
                            jq = q * nr
                            p = min(nr, P - jq)
                            if pack_b:
                                src_b, b0, b_ks = S, base + (q - q0) * kc * nr, nr
                            elif edge and q == panels - 1:
                                src_b, b0, b_ks = S, base, nr
                            else:
                                src_b, b0, b_ks = B, k0 * b_rs + jq, b_rs
                            c0 = (s0 + r0) * c_rs + jq
                            if p <= lanes:
                                register_block_narrow(src_a, ra, rs, bs, ks, r, s0 + r0, pack_a, src_b, b0, b_ks, kc, C, c0, c_rs, p, lanes, load_c, bias, jq, last)
                            else:
                                register_block(src_a, ra, rs, bs, ks, r, s0 + r0, pack_a, src_b, b0, b_ks, kc, C, c0, c_rs, p, lanes, load_c, bias, jq, last)
    if kind == BACKWARD or kind == DB:
        N, H = dout.shape
        kernels.column_sums(d1, N, H, db, accumulate)


def signature(dtype):
    """:func:`run`'s one signature for ``dtype``: inputs read-only with any layout, outputs C."""
    dt = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    In2 = types.Array(dt, 2, "C", readonly=True)
    In1 = types.Array(dt, 1, "C", readonly=True)
    Out2 = types.Array(dt, 2, "C")
    return types.none(types.intp, In2, In2, In1, In2, Out2, Out2, Out2, types.Array(dt, 1, "C"))




def runner(dtype):
    dispatcher = _jit(run)
    dispatcher.compile(signature(dtype))
    dispatcher.disable_compile()
    return dispatcher
