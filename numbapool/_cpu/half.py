"""float16 on the CPU without a float32 copy of the input.

Numba has no CPU data model for float16, so a float16 array cannot even be
passed to an ``@njit`` function.  We hand the kernels a zero-copy view of the
data as :data:`HALF` (a one-field record holding the raw 16 bits) and decode
element by element inside the loops.  Because :data:`HALF` is a distinct Numba
type, the generic helpers :func:`load`, :func:`store` and :func:`compute_zero`
specialise on it at compile time; every other dtype passes straight through.
The kernels therefore have one body, and each specialisation is cacheable.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload
from numba.np.numpy_support import as_dtype

#: The dtype under which float16 data enters the kernels (same bytes, no copy).
HALF = np.dtype([("bits", np.uint16)])


def as_kernel_array(a):
    """View float16 data as :data:`HALF`; other arrays are returned unchanged."""
    return a.view(HALF) if a.dtype == np.float16 else a


@intrinsic
def _u32_as_f32(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.uint32), codegen


@intrinsic
def _f32_as_u32(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(types.float32), codegen


@njit(cache=True)
def half_bits_to_f32(h):
    """IEEE binary16 bits -> float32 (exact)."""
    h = np.uint32(h)
    sign = (h & np.uint32(0x8000)) << np.uint32(16)
    exp = (h >> np.uint32(10)) & np.uint32(0x1F)
    man = h & np.uint32(0x3FF)
    if exp == 0:  # zero or subnormal: man * 2**-24, exact in float32
        mag = np.float32(man) * np.float32(5.9604644775390625e-08)
        return -mag if sign else mag
    if exp == 31:  # inf or NaN
        return _u32_as_f32(sign | np.uint32(0x7F800000) | (man << np.uint32(13)))
    return _u32_as_f32(sign | ((exp + np.uint32(112)) << np.uint32(23)) | (man << np.uint32(13)))


@njit(cache=True)
def f32_to_half_bits(f):
    """float32 -> IEEE binary16 bits, rounding to nearest even (as NumPy does)."""
    b = _f32_as_u32(np.float32(f))
    sign = np.uint16((b >> np.uint32(16)) & np.uint32(0x8000))
    exp = np.int64((b >> np.uint32(23)) & np.uint32(0xFF))
    man = np.int64(b & np.uint32(0x7FFFFF))
    if exp == 255:  # inf stays inf, NaN stays a (quiet) NaN
        return sign | np.uint16(0x7E00 if man else 0x7C00)
    e = exp - 112  # rebias 127 -> 15
    if e >= 31:
        return sign | np.uint16(0x7C00)
    if e <= 0:  # half subnormal (or zero)
        if e < -10:
            return sign
        m = man | 0x800000
        shift = 14 - e
        hm = m >> shift
        rem = m & ((np.int64(1) << shift) - 1)
        halfway = np.int64(1) << (shift - 1)
        if rem > halfway or (rem == halfway and (hm & 1)):
            hm += 1
        return sign | np.uint16(hm)
    hb = (e << 10) | (man >> 13)
    rem = man & 0x1FFF
    if rem > 0x1000 or (rem == 0x1000 and (hb & 1)):
        hb += 1  # a carry into the exponent correctly rounds up to the next binade / inf
    return sign | np.uint16(hb)


def load(a, i):
    """``a[i]`` as a computable number (float32 for :data:`HALF`)."""


def store(a, i, v):
    """``a[i] = v``, rounding to float16 for :data:`HALF`."""


def compute_zero(a):
    """A zero of the type :func:`load` returns for ``a``."""


def _is_half(arr_type):
    return isinstance(arr_type.dtype, types.Record)


@overload(load)
def _ol_load(a, i):
    if _is_half(a):
        return lambda a, i: half_bits_to_f32(a[i].bits)
    return lambda a, i: a[i]


@overload(store)
def _ol_store(a, i, v):
    if _is_half(a):

        def impl(a, i, v):
            a[i].bits = f32_to_half_bits(v)

        return impl

    def impl(a, i, v):
        a[i] = v

    return impl


@overload(compute_zero)
def _ol_compute_zero(a):
    if _is_half(a):
        return lambda a: np.float32(0)
    zero = as_dtype(a.dtype).type(0)
    return lambda a: zero
