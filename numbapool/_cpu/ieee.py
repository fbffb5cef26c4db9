"""IEEE 754-2019 maximum and minimum of two floats, for the token kernels' max and min.

:func:`maximum` and :func:`minimum` propagate NaN; the ``*_number`` forms skip it (NaN only
when both are NaN).  All four order -0 below +0, so a max or min over many values is the
same whatever order they are combined in: a run of tokens can be read as several streams
and folded as a tree, or split across threads, and give the bits of one sequential pass.
They agree with :func:`numbapool._arith.ieee_take`, the rule the CUDA kernel applies.

With llvmlite's LLVM at 17 or newer these are the ``llvm.maximum``/``llvm.minimum``
intrinsics, which vectorise.  Older
LLVMs, which the tests here never meet, get selects built on
:func:`~numbapool._arith.ieee_take` instead, rather than an intrinsic whose x86 lowering
was not checked with them.
"""

from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .. import _arith

_take = njit(cache=True)(_arith.ieee_take)


def _llvm_extreme(name):
    @intrinsic
    def extreme(typingctx, a, b):
        if not (isinstance(a, types.Float) and a == b):
            return None

        def codegen(context, builder, signature, args):
            t = args[0].type
            suffix = "f32" if t == ir.FloatType() else "f64"
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(t, [t, t]),
                                                f"llvm.{name}.{suffix}")
            return builder.call(fn, args)

        return a(a, b), codegen

    return extreme


if llvm_binding.llvm_version_info >= (17,):
    _maximum = _llvm_extreme("maximum")
    _minimum = _llvm_extreme("minimum")
else:  # pragma: no cover - only with an old llvmlite
    _maximum = njit(lambda a, b: b if _take(a, b, False, False) else a)
    _minimum = njit(lambda a, b: b if _take(a, b, True, False) else a)


@njit(cache=True)
def maximum(a, b):
    """The larger of ``a`` and ``b``; NaN if either is NaN; -0 < +0."""
    return _maximum(a, b)


@njit(cache=True)
def minimum(a, b):
    """The smaller of ``a`` and ``b``; NaN if either is NaN; -0 < +0."""
    return _minimum(a, b)


@njit(cache=True)
def maximum_number(a, b):
    """The larger of ``a`` and ``b``, ignoring a NaN (NaN only when both are); -0 < +0."""
    a = a if a == a else b
    b = b if b == b else a
    return _maximum(a, b)


@njit(cache=True)
def minimum_number(a, b):
    """The smaller of ``a`` and ``b``, ignoring a NaN (NaN only when both are); -0 < +0."""
    a = a if a == a else b
    b = b if b == b else a
    return _minimum(a, b)
