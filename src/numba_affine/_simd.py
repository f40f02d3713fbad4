"""Vector values for the kernels' panel form (Numba intrinsics).

Why this exists: the fastest register block for a matrix product is the
*outer product* form (OpenBLAS's and BLIS's micro-kernels): per step of the
summed index, two vector loads of a packed panel of B, a broadcast of each
of six elements of A, twelve FMAs into twelve vector accumulators. Written
as scalar Numba code, that block is unrolled into scalars and stays scalar:
Numba turns LLVM's SLP vectorizer off (since 0.57, for miscompilations,
numba#8852), and the loop vectorizer has no loop to work on. These
intrinsics let a kernel say "one vector register" directly; the kernel is
still an explicit loop over the summed index, and LLVM keeps the twelve
accumulators in vector registers (``inspect_asm``: 2 ``vmovups``, 6
``vbroadcastss``, 12 ``vfmadd231ps`` per step, no spills; ``zmm`` with
AVX-512, else ``ymm``).

A vector has ``VECTOR_BYTES`` bytes: 64 (16 float32 or 8 float64 lanes, a
``zmm`` register) on a CPU with AVX-512, else 32 (8 or 4 lanes, an AVX2
``ymm`` register). On a CPU without AVX2 or FMA, LLVM legalizes the same
vectors into narrower operations or calls (correct, slower; not measured
here).

Every function takes an array and a *flat* element index (row-major
offset from the array's first element): the kernels pass C-contiguous
arrays and compute offsets themselves. Nothing is bounds-checked; the
caller keeps ``index + lanes <= array.size``.

The arithmetic is IEEE: ``vfma`` is ``llvm.fma`` (one rounding, as the
``contract`` flag allows for scalar code), ``vadd`` a plain ``fadd``; NaN and
Inf propagate.
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic, models, register_model


def _host_vector_bytes() -> int:
    """64 (one ``zmm`` register) when the CPU Numba compiles for has
    AVX-512F, else 32 (one AVX2 ``ymm`` register).

    Numba compiles for the host (or for ``NUMBA_CPU_NAME`` /
    ``NUMBA_CPU_FEATURES`` when set); this reads the same feature string,
    so the width always matches the code Numba emits, and its on-disk
    cache, which is keyed by CPU name and features, never hands code built
    for one width to a machine of the other. LLVM does not use ``zmm`` for
    the kernels' plain loops on Intel CPUs (it prefers 256-bit vectors
    there), but it does for these explicit 512-bit vector values.
    """
    from numba.core import config
    from numba.core.codegen import get_host_cpu_features

    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else get_host_cpu_features()
    return 64 if "+avx512f" in features.split(",") else 32


#: Bytes of one vector: 64 on AVX-512 CPUs, else 32 (:func:`_host_vector_bytes`).
VECTOR_BYTES = _host_vector_bytes()


class VectorType(types.Type):
    """A vector of ``VECTOR_BYTES`` bytes of float32 or float64 (Numba type)."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.lanes = VECTOR_BYTES * 8 // dtype.bitwidth
        super().__init__(name=f"vector({dtype} x {self.lanes})")


@register_model(VectorType)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


def _element_pointer(context, builder, array_type, array, index_type, index):
    data = context.make_array(array_type)(context, builder, array).data
    return builder.gep(data, [context.cast(builder, index, index_type, types.intp)])


def _vector_pointer(context, builder, sig, args):
    ptr = _element_pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
    vector = context.get_value_type(VectorType(sig.args[0].dtype))
    return builder.bitcast(ptr, vector.as_pointer())


@intrinsic
def vload(typingctx, array, index):
    """The vector at ``array.flat[index : index + lanes]`` (unaligned load)."""
    sig = VectorType(array.dtype)(array, index)

    def codegen(context, builder, sig, args):
        return builder.load(_vector_pointer(context, builder, sig, args), align=array.dtype.bitwidth // 8)

    return sig, codegen


@intrinsic
def vstore(typingctx, array, index, value):
    """Store ``value`` at ``array.flat[index : index + lanes]`` (unaligned)."""
    sig = types.void(array, index, value)

    def codegen(context, builder, sig, args):
        builder.store(args[2], _vector_pointer(context, builder, sig, args), align=array.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return sig, codegen


def _first_lanes(context, builder, lanes, n, n_type):
    """The mask ``[0, 1, ..., lanes - 1] < n`` (``<lanes x i1>``); ``n`` is
    clamped to ``0 ... lanes`` before it is narrowed to 32 bits."""
    i32 = ir.IntType(32)
    vec = ir.VectorType(i32, lanes)
    n64 = context.cast(builder, n, n_type, types.int64)
    most = ir.Constant(n64.type, lanes)
    least = ir.Constant(n64.type, 0)
    n64 = builder.select(builder.icmp_signed(">", n64, most), most, n64)
    n32 = builder.trunc(builder.select(builder.icmp_signed("<", n64, least), least, n64), i32)
    splat = builder.insert_element(ir.Constant(vec, ir.Undefined), n32, ir.Constant(i32, 0))
    splat = builder.shuffle_vector(splat, ir.Constant(vec, ir.Undefined), ir.Constant(vec, [0] * lanes))
    return builder.icmp_signed("<", ir.Constant(vec, list(range(lanes))), splat)


def _at_least(context, builder, n, n_type, lanes):
    """``n >= lanes`` (an ``i1``)."""
    n64 = context.cast(builder, n, n_type, types.int64)
    return builder.icmp_signed(">=", n64, ir.Constant(n64.type, lanes))


@intrinsic
def vload_part(typingctx, array, index, n):
    """The vector at ``array.flat[index : index + n]``, zeros in the lanes
    from ``n`` on (``llvm.masked.load``: a masked-off lane is never read, so
    the vector may run past the array's end; ``n <= 0`` reads nothing).
    With ``n >= lanes`` it is a plain load: a masked one costs several
    micro-ops on AVX2 CPUs, and whole vectors are the common case."""
    vector_type = VectorType(array.dtype)
    sig = vector_type(array, index, n)

    def codegen(context, builder, sig, args):
        vector = context.get_value_type(vector_type)
        ptr = _vector_pointer(context, builder, sig, args)
        align_bytes = array.dtype.bitwidth // 8
        whole = _at_least(context, builder, args[2], sig.args[2], vector_type.lanes)
        with builder.if_else(whole, likely=True) as (then, otherwise):
            with then:
                block_whole = builder.block
                plain = builder.load(ptr, align=align_bytes)
            with otherwise:
                block_part = builder.block
                mask = _first_lanes(context, builder, vector_type.lanes, args[2], sig.args[2])
                fn = cgutils.get_or_insert_function(
                    builder.module,
                    ir.FunctionType(vector, [vector.as_pointer(), ir.IntType(32), mask.type, vector]),
                    f"llvm.masked.load.v{vector_type.lanes}f{array.dtype.bitwidth}.p0",
                )
                align = ir.Constant(ir.IntType(32), align_bytes)
                masked = builder.call(fn, [ptr, align, mask, ir.Constant(vector, None)])
        phi = builder.phi(vector)
        phi.add_incoming(plain, block_whole)
        phi.add_incoming(masked, block_part)
        return phi

    return sig, codegen


@intrinsic
def vstore_part(typingctx, array, index, value, n):
    """Store the first ``n`` lanes of ``value`` at ``array.flat[index :]``
    (``llvm.masked.store``: nothing is written from lane ``n`` on; a plain
    store when ``n >= lanes``)."""
    sig = types.void(array, index, value, n)

    def codegen(context, builder, sig, args):
        vector = args[2].type
        ptr = _vector_pointer(context, builder, sig, args)
        align_bytes = array.dtype.bitwidth // 8
        whole = _at_least(context, builder, args[3], sig.args[3], vector.count)
        with builder.if_else(whole, likely=True) as (then, otherwise):
            with then:
                builder.store(args[2], ptr, align=align_bytes)
            with otherwise:
                mask = _first_lanes(context, builder, vector.count, args[3], sig.args[3])
                fn = cgutils.get_or_insert_function(
                    builder.module,
                    ir.FunctionType(ir.VoidType(), [vector, vector.as_pointer(), ir.IntType(32), mask.type]),
                    f"llvm.masked.store.v{vector.count}f{array.dtype.bitwidth}.p0",
                )
                builder.call(fn, [args[2], ptr, ir.Constant(ir.IntType(32), align_bytes), mask])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def vbroadcast(typingctx, array, index):
    """A vector with ``array.flat[index]`` in every lane (``vbroadcastss/sd``)."""
    vector_type = VectorType(array.dtype)
    sig = vector_type(array, index)

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        vector = context.get_value_type(vector_type)
        one = builder.insert_element(ir.Constant(vector, ir.Undefined), builder.load(ptr), ir.Constant(ir.IntType(32), 0))
        mask = ir.Constant(ir.VectorType(ir.IntType(32), vector_type.lanes), [0] * vector_type.lanes)
        return builder.shuffle_vector(one, ir.Constant(vector, ir.Undefined), mask)

    return sig, codegen


@intrinsic
def vzeros(typingctx, array):
    """A vector of zeros of ``array``'s dtype."""
    vector_type = VectorType(array.dtype)
    sig = vector_type(array)

    def codegen(context, builder, sig, args):
        return ir.Constant(context.get_value_type(vector_type), None)

    return sig, codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """``a * b + c`` lane by lane, rounded once (``llvm.fma``)."""
    sig = a(a, b, c)

    def codegen(context, builder, sig, args):
        vector = args[0].type
        bits = 32 if isinstance(vector.element, ir.FloatType) else 64
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vector, [vector] * 3), f"llvm.fma.v{vector.count}f{bits}"
        )
        return builder.call(fn, list(args))

    return sig, codegen


@intrinsic
def vadd(typingctx, a, b):
    """``a + b`` lane by lane."""
    sig = a(a, b)

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1])

    return sig, codegen


@intrinsic
def vtranspose(typingctx, src, s0, ss, rows, cols, dst, d0, ds):
    """Copy a block of ``rows x cols`` elements transposed and zero-padded to
    ``lanes`` columns: row ``r`` of the source (``src.flat[s0 + r * ss :]``,
    ``cols`` elements) becomes column ``r`` of the destination, whose first
    ``cols`` rows (``dst.flat[d0 + c * ds :]``, ``lanes`` elements each) are
    written, with zeros in columns ``rows`` to ``lanes - 1``.

    Loads ``lanes`` vectors (masked to ``cols`` lanes; rows from ``rows`` on
    read nothing and are zero), swaps their off-diagonal blocks in
    log2(lanes) rounds of ``shufflevector`` (halves, quarters, ...) and
    stores ``cols`` vectors: no scalar element moves, also for the ragged
    edges of a panel. ``src`` and ``dst`` have one dtype; ``rows`` and
    ``cols`` are at most ``lanes``.
    """
    sig = types.void(src, s0, ss, rows, cols, dst, d0, ds)
    vector_type = VectorType(src.dtype)
    lanes = vector_type.lanes

    def codegen(context, builder, sig, args):
        src_a, s0_v, ss_v, rows_v, cols_v, dst_a, d0_v, ds_v = args
        intp = context.get_value_type(types.intp)
        vector = context.get_value_type(vector_type)
        s0_i, ss_i, rows_i, cols_i, d0_i, ds_i = (
            context.cast(builder, v, t, types.intp) for v, t in zip(args[1:5] + args[6:], sig.args[1:5] + sig.args[6:])
        )
        align_bytes = sig.args[0].dtype.bitwidth // 8
        align = ir.Constant(ir.IntType(32), align_bytes)
        zero = ir.Constant(intp, 0)

        def pointer(array_type, array, index):
            ptr = _element_pointer(context, builder, array_type, array, types.intp, index)
            return builder.bitcast(ptr, vector.as_pointer())

        load = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(vector, [vector.as_pointer(), ir.IntType(32), ir.VectorType(ir.IntType(1), lanes), vector]),
            f"llvm.masked.load.v{lanes}f{sig.args[0].dtype.bitwidth}.p0",
        )
        block = []
        for r in range(lanes):
            r_c = ir.Constant(intp, r)
            index = builder.add(s0_i, builder.mul(ss_i, r_c))
            n = builder.select(builder.icmp_signed("<", r_c, rows_i), cols_i, zero)
            mask = _first_lanes(context, builder, lanes, n, types.intp)
            block.append(builder.call(load, [pointer(sig.args[0], src_a, index), align, mask, ir.Constant(vector, None)]))
        i32 = ir.IntType(32)
        d = lanes // 2
        while d >= 1:
            low = [c if c & d == 0 else lanes + c - d for c in range(lanes)]
            high = [c + d if c & d == 0 else lanes + c for c in range(lanes)]
            out = list(block)
            for r in range(lanes):
                if r & d == 0:
                    a, b = block[r], block[r + d]
                    out[r] = builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(i32, lanes), low))
                    out[r + d] = builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(i32, lanes), high))
            block = out
            d //= 2
        for c in range(lanes):
            c_c = ir.Constant(intp, c)
            with builder.if_then(builder.icmp_signed("<", c_c, cols_i), likely=True):
                index = builder.add(d0_i, builder.mul(ds_i, c_c))
                builder.store(block[c], pointer(sig.args[5], dst_a, index), align=align_bytes)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def opaque_index(typingctx, value):
    """``value`` unchanged, but unknown to LLVM's loop optimisations (an empty
    inline-asm statement passes it through a register).

    A register block addresses its rows as offsets from one pointer; with
    twelve rows LLVM's loop-strength reduction turns those offsets into one
    chain of twelve dependent additions per step of k, longer than the
    step's FMAs take. Rows whose base is opaque start a second, parallel chain.
    """
    sig = types.intp(value)

    def codegen(context, builder, sig, args):
        v = context.cast(builder, args[0], sig.args[0], types.intp)
        fty = ir.FunctionType(v.type, [v.type])
        return builder.asm(fty, "", "=r,0", [v], side_effect=False)

    return sig, codegen
