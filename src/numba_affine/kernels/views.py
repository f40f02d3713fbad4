"""Array headers for the kernels: views of C-contiguous arrays, arrays on the stack."""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic

from .. import tuning


@intrinsic
def view(typingctx, a, shape):
    """C-contiguous ``a`` seen with ``shape`` (same elements, no copy; read-only stays read-only).

    ``a.reshape`` runs a normalisation and a C helper on every call (about
    25 ns, as much as a small kernel); the caller already knows the shape
    fits, so the view is only a new array header.
    """
    if not (isinstance(a, types.Array) and a.layout == "C" and isinstance(shape, types.UniTuple)):
        return None
    ndim = shape.count
    sig = a.copy(ndim=ndim)(a, shape)

    def codegen(context, builder, sig, args):
        source = context.make_array(sig.args[0])(context, builder, args[0])
        dims = cgutils.unpack_tuple(builder, args[1], ndim)
        dims = [context.cast(builder, d, sig.args[1].dtype, types.intp) for d in dims]
        strides = [source.itemsize] * ndim
        for i in range(ndim - 2, -1, -1):
            strides[i] = builder.mul(strides[i + 1], dims[i + 1])
        result = context.make_array(sig.return_type)(context, builder)
        context.populate_array(
            result,
            data=source.data,
            shape=cgutils.pack_array(builder, dims),
            strides=cgutils.pack_array(builder, strides),
            itemsize=source.itemsize,
            meminfo=source.meminfo,
            parent=source.parent,
        )
        return impl_ret_borrowed(context, builder, sig.return_type, result._getvalue())

    return sig, codegen


def on_stack(dtype, shape):
    """Codegen of a C-contiguous ``dtype`` array of ``shape`` (ints) in the calling function's stack frame.

    Allocated in the entry block: one fixed slot per call site, also when
    inlined into a loop; not initialised. It owns no memory (no reference
    counting).
    """

    def codegen(context, builder, sig, args):
        element = context.get_data_type(dtype)
        itemsize = context.get_abi_sizeof(element)
        n = 1
        for d in shape:
            n *= d
        # not cgutils.alloca_once: it zero-fills the slot on every call (16 KiB
        # of memset, a third of a seed-size kernel); scratch is written before read
        with builder.goto_entry_block():
            storage = builder.alloca(ir.ArrayType(element, max(n, 1)))
        storage.align = 64
        strides = [itemsize] * len(shape)
        for i in range(len(shape) - 2, -1, -1):
            strides[i] = strides[i + 1] * shape[i + 1]
        intp = lambda v: context.get_constant(types.intp, v)  # noqa: E731
        array = context.make_array(sig.return_type)(context, builder)
        context.populate_array(
            array,
            data=builder.bitcast(storage, element.as_pointer()),
            shape=cgutils.pack_array(builder, [intp(d) for d in shape]),
            strides=cgutils.pack_array(builder, [intp(s) for s in strides]),
            itemsize=intp(itemsize),
            meminfo=None,
        )
        return array._getvalue()

    return codegen


@intrinsic
def stack_scratch(typingctx, like):
    """``JIT_STACK_SCRATCH_BYTES`` of ``like``'s dtype on the calling function's stack."""
    n = tuning.JIT_STACK_SCRATCH_BYTES // (like.dtype.bitwidth // 8)
    return types.Array(like.dtype, 1, "C")(like), on_stack(like.dtype, (n,))


@intrinsic
def stack_plan(typingctx):
    """An int64 array on the stack for the product's plan rows and scratch sizes (3 x 8, flat)."""
    return types.Array(types.int64, 1, "C")(), on_stack(types.int64, (24,))


@intrinsic
def nothing(typingctx, like):
    """An empty array of ``like``'s dtype that owns no memory (an absent operand)."""
    return types.Array(like.dtype, 1, "C")(like), on_stack(like.dtype, (0,))
