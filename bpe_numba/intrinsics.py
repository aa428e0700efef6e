"""LLVM intrinsics for the kernels, through Numba's ``@intrinsic``: compiled into the kernels that call them
(the encoding loop, the merge loop, and the pickling of two tables that is read while it is written).
Numba is imported when a kernel that calls one is compiled (:mod:`bpe_numba.jit`), not by importing this
module."""

from __future__ import annotations

from .jit import intrinsic


@intrinsic
def prefetch(typingctx, arr, index):
    """Ask the CPU to bring the cache line of ``arr[index]`` in (LLVM's ``llvm.prefetch``: a read, to be
    kept in every cache level). A hint only: nothing is loaded or checked."""
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils

    sig = types.void(arr, index)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, [args[1]], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


def _element_pointer(context, builder, arr_type, arr, index):
    from numba.core import cgutils

    ary = context.make_array(arr_type)(context, builder, arr)
    return cgutils.get_item_pointer(context, builder, arr_type, ary, [index], wraparound=False)


@intrinsic
def store_release(typingctx, arr, index, value):
    """``arr[index] = value`` as an atomic store with release ordering: a thread that reads the new value
    with :func:`load_acquire` also sees every write this thread made before it (no bounds check)."""
    from numba import types

    sig = types.void(arr, index, value)

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        val = context.cast(builder, args[2], signature.args[2], signature.args[0].dtype)
        builder.store_atomic(val, ptr, ordering="release", align=signature.args[0].dtype.bitwidth // 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def load_acquire(typingctx, arr, index):
    """``arr[index]`` as an atomic load with acquire ordering (see :func:`store_release`)."""
    sig = arr.dtype(arr, index)

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(ptr, ordering="acquire", align=signature.args[0].dtype.bitwidth // 8)

    return sig, codegen
