"""Array headers for the kernels: a flat view of a C-contiguous array, scratch on the stack."""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic

from .. import tuning


@intrinsic
def flat(typingctx, a):
    """C-contiguous ``a`` as a 1-D array of its elements (no copy; read-only stays read-only).

    ``a.reshape(-1)`` normalises the shape and calls a C helper on every
    call (about 25 ns, as much as a small kernel); a contiguous array's
    flat view is only a new header.
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
def nothing(typingctx, like):
    """An empty array of ``like``'s dtype that owns no memory (an absent operand)."""
    return _stack_array(like, lambda itemsize: 0)
