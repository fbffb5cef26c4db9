"""CUDA kernels of block reduction (:func:`numbapool.block_reduce`): a thread per output.

The arrays are the plan's canonical views (:class:`numbapool.blocks.BlockPlan`), flattened:
input ``x`` of ``(P, R, W*C)`` (P planes, R rows = the product of the outer axes, W positions
of the last blocked axis times C channels, the trailing unblocked axes), output ``out`` of
``(P, Ro, Wo*C)``.  ``outer`` is a small device table with a row per outer axis (input size,
block, output size, stride in input rows), as the CPU kernels read it.

Each thread takes one output element in a grid-stride loop over the flat outputs, channels
fastest: consecutive threads read consecutive addresses when C > 1 (channels-last data), and
the blocks of consecutive positions of the last axis otherwise.  It visits its block's input
rows in increasing order (:func:`_row_count`, :func:`_input_row`: the outer axes' odometer,
decoded from the row's rank; division-free variants for the common case of one outer axis,
one blocked axis or two adjacent ones as in images, save the kernels a third of their
registers) and each row's ``bw`` columns in order.  Index arithmetic is int64.  Nothing
depends on the block shape at compile time: a kernel is compiled per reducer, NaN policy,
dtype and whether there is one outer axis.

``boundary="pad"`` is handled here, not by copies: with ``pad`` every block is whole, and its
elements past the input's end (a row beyond an outer axis, a column beyond W) read as
``cval``.  Without it a block cut short reduces the elements it has (``"partial"``); the plan's
output sizes leave such blocks out for ``"trim"`` and ``"exact"``.

Arithmetic, as the CPU kernels do it.  Values are compared and summed as loaded in the
*value type*: the input's, float32 for float16.  Max and min follow
:func:`numbapool._arith.take`.  Sums accumulate in the plan's accumulator (int64/uint64
wrapping around for integers; float32 for float16, and for float32 blocks of at most 64
elements; float64 otherwise); a mean is the float64 sum times the reciprocal of the element
count, or under ``omit`` divided by the count of non-NaNs.  Medians and modes leave NaNs out
and count them: under propagate a NaN gives NaN, under omit a block of only NaNs does.  A
block of at most :data:`SORT_MAX` elements is sorted into a thread-local array as it is
loaded (insertion, O(n^2) moves at worst); a larger one, which would not fit in registers or
local memory, is reduced with no scratch by counting, O(n^2) reads of the block (cached):
the median is the value with ``less <= k < less + equal`` values below and equal to it, the
mode the value with the most equal values, ties to the smallest.  Medians are computed in
float32 for float16/float32 data and in float64 otherwise, the mean of the middle two for an
even count; results are rounded to float32 before a float16 store, as on the CPU.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

from .. import _arith
from . import compat
from .compat import cuda, jit
from .spatial import compare_type

#: Columns of the ``outer`` table (those of the CPU kernels').
O_IN, O_BLOCK, O_OUT, O_STRIDE = range(4)
#: Medians and modes of blocks of at most this many elements sort them in a thread-local
#: array (512 bytes of float64); larger blocks are counted without scratch.
SORT_MAX = 64
#: Reducer codes of the kernel factories.
SUM, MEAN = 0, 1
MEDIAN, MODE = 0, 1

_take = jit(device=True)(_arith.take)


# --------------------------------------------------------------------------- device helpers


@jit(device=True)
def _block(i, C, Wo, Ro, W, bw, plane, pad):
    """``(ro, inside, cols, base)`` of flat output ``i``'s block: its output row (whose
    outer rows :func:`_row_count` and :func:`_input_row` give), its columns inside the
    input, the columns it reads (``bw`` where padded) and the flat input index of its
    first column in input row 0."""
    t = i // C
    c = i - t * C
    q = t // Wo
    wo = t - q * Wo
    p = q // Ro
    j0 = wo * bw
    inside = min(bw, W - j0)
    return q - p * Ro, inside, bw if pad else inside, p * plane + j0 * C + c


@jit(device=True)
def _row_count(outer, ro, pad):
    """Input rows in output row ``ro``'s blocks of the outer axes (all of them with
    ``pad``, else those inside the input)."""
    n = 1
    q = ro
    for a in range(outer.shape[0] - 1, -1, -1):
        size = outer[a, O_OUT]
        t = q // size
        o = q - t * size
        q = t
        b = outer[a, O_BLOCK]
        if not pad:
            b = min(b, outer[a, O_IN] - o * b)
        n *= b
    return n


@jit(device=True)
def _input_row(outer, ro, k, pad):
    """The flat input row of row ``k`` (row-major over the outer axes) of output row
    ``ro``'s blocks, or -1 for a row past the input's end (only with ``pad``)."""
    r = 0
    q = ro
    rem = k
    for a in range(outer.shape[0] - 1, -1, -1):
        size = outer[a, O_OUT]
        t = q // size
        o = q - t * size
        q = t
        b = outer[a, O_BLOCK]
        L = outer[a, O_IN]
        start = o * b
        n = b if pad else min(b, L - start)
        t = rem // n
        row = start + rem - t * n
        rem = t
        if row >= L:
            return -1
        r += row * outer[a, O_STRIDE]
    return r


@jit(device=True)
def _row_count_one(outer, ro, pad):
    """:func:`_row_count` for one outer axis (no division)."""
    b = outer[0, O_BLOCK]
    return b if pad else min(b, outer[0, O_IN] - ro * b)


@jit(device=True)
def _input_row_one(outer, ro, k, pad):
    """:func:`_input_row` for one outer axis (whose stride is 1)."""
    row = ro * outer[0, O_BLOCK] + k
    return -1 if row >= outer[0, O_IN] else row


def _rows(one_outer):
    """``(row_count, input_row)``: the helpers for one outer axis, or for any number."""
    return (_row_count_one, _input_row_one) if one_outer else (_row_count, _input_row)


def _loader(vt):
    """A device function ``load(x, o, j, C, r, inside, cval)``: column ``j`` of the block
    row starting at flat ``o`` (row ``r``), as ``vt``; ``cval`` past the input's end (a row
    ``r < 0``, or ``j >= inside``, the columns inside the input)."""
    VT = vt

    @jit(device=True)
    def load(x, o, j, C, r, inside, cval):
        if r >= 0 and j < inside:
            return VT(x[o + j * C])
        return cval

    return load


def _kernel_name(prefix, *flags):
    return "_".join([prefix, *(str(f) for f in flags if f)])


# --------------------------------------------------------------------------- kernels
#
# The kernels share one shape.  ``g`` = (outputs, C, Wo, Ro, W, bw, plane size, row length):
# the flat outputs, the channels, the output sizes of the last axis and of the outer rows,
# the last axis's input length and block, the input plane size (R*W*C) and row length
# (W*C).  ``pad`` (bool) and ``cval`` (of the value type): see the module docstring.


@functools.cache
def extreme_kernel(is_min, omit, vt, one_outer):
    """The block max (``is_min`` False) or min kernel; ``vt`` the value type
    (:func:`numbapool._cuda.spatial.compare_type`).  NaN rules of
    :func:`numbapool._arith.take`: the first NaN under propagate, NaNs skipped under omit
    (a block of only NaNs gives NaN); the first of equal values is kept.

    Arguments: ``x``, ``out`` (flat), ``outer``, ``g``, ``pad``, ``cval``.
    """
    IS_MIN, OMIT = is_min, omit
    load = _loader(vt)
    row_count, input_row = _rows(one_outer)

    def kernel(x, out, outer, g, pad, cval):
        n, C, Wo, Ro, W, bw, plane, rowlen = g
        i = cuda.grid(1)
        stride = cuda.gridsize(1)
        while i < n:
            ro, inside, cols, base = _block(i, C, Wo, Ro, W, bw, plane, pad)
            m = cval
            first = True
            for k in range(row_count(outer, ro, pad)):
                r = input_row(outer, ro, k, pad)
                o = base + r * rowlen
                for j in range(cols):
                    v = load(x, o, j, C, r, inside, cval)
                    if first or _take(m, v, IS_MIN, OMIT):
                        m = v
                    first = False
            out[i] = m
            i += stride

    kernel.__name__ = kernel.__qualname__ = _kernel_name(
        "block_extreme_kernel", "min" if is_min else "max", omit and "omit", vt,
        one_outer and "o1")
    return jit(cache=True)(kernel)


@functools.cache
def sum_kernel(kind, omit, vt, rt, one_outer):
    """The block sum (``kind`` :data:`SUM`) or mean (:data:`MEAN`) kernel; ``vt`` the
    value type, ``rt`` the type a result is rounded to before it is stored (float32 for
    float16/float32 results, else the result's own).  Accumulates in ``acc_zero``'s type.
    Under ``omit`` NaNs are skipped (and leave a mean's count), and a block of only NaNs
    gives NaN.

    Arguments: those of :func:`extreme_kernel`, then ``acc_zero``.
    """
    IS_MEAN, OMIT, RT = kind == MEAN, omit, rt
    load = _loader(vt)
    row_count, input_row = _rows(one_outer)

    def kernel(x, out, outer, g, pad, cval, acc_zero):
        n, C, Wo, Ro, W, bw, plane, rowlen = g
        i = cuda.grid(1)
        stride = cuda.gridsize(1)
        while i < n:
            ro, inside, cols, base = _block(i, C, Wo, Ro, W, bw, plane, pad)
            rows = row_count(outer, ro, pad)
            s = acc_zero
            nans = 0
            for k in range(rows):
                r = input_row(outer, ro, k, pad)
                o = base + r * rowlen
                for j in range(cols):
                    v = load(x, o, j, C, r, inside, cval)
                    if OMIT and v != v:
                        nans += 1
                    else:
                        s += v
            count = rows * cols - nans
            if OMIT:
                if count == 0:
                    out[i] = math.nan
                elif IS_MEAN:
                    out[i] = RT(numba.float64(s) / numba.float64(count))
                else:
                    out[i] = RT(s)
            elif IS_MEAN:  # as on the CPU: a product with the float64 reciprocal
                out[i] = RT(numba.float64(s) * (1.0 / numba.float64(count)))
            else:
                out[i] = RT(s)
            i += stride

    kernel.__name__ = kernel.__qualname__ = _kernel_name(
        "block_sum_kernel", "mean" if kind == MEAN else "sum", omit and "omit", vt, rt,
        one_outer and "o1")
    return jit(cache=True)(kernel)


@functools.cache
def order_kernel(kind, omit, vt, rt, one_outer):
    """The block median (``kind`` :data:`MEDIAN`) or mode (:data:`MODE`) kernel; ``vt``
    the value type, ``rt`` the type a median is computed in (float32 for float16/float32
    data, else float64).  NaNs are left out and counted: under propagate a NaN gives NaN,
    under omit a block of only NaNs does.  Blocks of at most :data:`SORT_MAX` elements are
    sorted in a local array, larger ones counted (see the module docstring).

    Arguments: those of :func:`extreme_kernel`.
    """
    IS_MEDIAN, OMIT, VT, RT = kind == MEDIAN, omit, vt, rt
    FLOAT = isinstance(vt, numba.types.Float)
    SMALL = SORT_MAX
    load = _loader(vt)
    row_count, input_row = _rows(one_outer)

    @jit(device=True)
    def sorted_block(a, x, outer, ro, pad, base, rowlen, C, inside, cols, cval):
        """Insert the block's non-NaN values into ``a`` in ascending order; returns
        ``(values, NaNs)``."""
        m = 0
        nans = 0
        for k in range(row_count(outer, ro, pad)):
            r = input_row(outer, ro, k, pad)
            o = base + r * rowlen
            for j in range(cols):
                v = load(x, o, j, C, r, inside, cval)
                if FLOAT and v != v:
                    nans += 1
                    continue
                h = m
                while h > 0 and v < a[h - 1]:
                    a[h] = a[h - 1]
                    h -= 1
                a[h] = v
                m += 1
        return m, nans

    @jit(device=True)
    def rank(u, x, outer, ro, pad, base, rowlen, C, inside, cols, cval):
        """``(values below u, values equal to u)`` in the block (NaNs are neither)."""
        less = 0
        equal = 0
        for k in range(row_count(outer, ro, pad)):
            r = input_row(outer, ro, k, pad)
            o = base + r * rowlen
            for j in range(cols):
                v = load(x, o, j, C, r, inside, cval)
                if v < u:
                    less += 1
                elif v == u:
                    equal += 1
        return less, equal

    @jit(device=True)
    def counted(x, outer, ro, pad, base, rowlen, C, inside, cols, cval, m):
        """``(lo, hi, best)``: the ``(m-1)//2``-th and ``m//2``-th smallest of the block's
        ``m`` non-NaN values and its most frequent value, ties to the smallest: each value
        ranked against the whole block, O(n^2) reads."""
        h = m // 2
        lo = cval
        hi = cval
        best = cval
        best_count = 0
        for k in range(row_count(outer, ro, pad)):
            r = input_row(outer, ro, k, pad)
            o = base + r * rowlen
            for j in range(cols):
                u = load(x, o, j, C, r, inside, cval)
                if FLOAT and u != u:
                    continue
                less, equal = rank(u, x, outer, ro, pad, base, rowlen, C, inside, cols, cval)
                if IS_MEDIAN:
                    if less <= h and h < less + equal:
                        hi = u
                    if less <= h - 1 and h - 1 < less + equal:
                        lo = u
                elif equal > best_count or (equal == best_count and u < best):
                    best_count = equal
                    best = u
        return lo, hi, best

    def kernel(x, out, outer, g, pad, cval):
        n, C, Wo, Ro, W, bw, plane, rowlen = g
        a = cuda.local.array(SMALL, VT)
        i = cuda.grid(1)
        stride = cuda.gridsize(1)
        while i < n:
            ro, inside, cols, base = _block(i, C, Wo, Ro, W, bw, plane, pad)
            total = row_count(outer, ro, pad) * cols
            if total <= SMALL:
                m, nans = sorted_block(a, x, outer, ro, pad, base, rowlen, C, inside, cols,
                                       cval)
            else:
                nans = 0
                if FLOAT:
                    for k in range(row_count(outer, ro, pad)):
                        r = input_row(outer, ro, k, pad)
                        o = base + r * rowlen
                        for j in range(cols):
                            v = load(x, o, j, C, r, inside, cval)
                            if v != v:
                                nans += 1
                m = total - nans
            if FLOAT:
                if m == 0 or (nans > 0 and not OMIT):
                    out[i] = math.nan
                    i += stride
                    continue
            if total <= SMALL:
                hi = a[m // 2]
                lo = a[(m - 1) // 2]
                best = a[0]
                if not IS_MEDIAN:  # the first of the longest runs of the sorted values
                    best_run = 1
                    run = 1
                    for e in range(1, m):
                        run = run + 1 if a[e] == a[e - 1] else 1
                        if run > best_run:
                            best_run = run
                            best = a[e]
            else:
                lo, hi, best = counted(x, outer, ro, pad, base, rowlen, C, inside, cols,
                                       cval, m)
            if IS_MEDIAN:
                upper = RT(0) + RT(hi)
                if m % 2 == 1:
                    out[i] = upper
                else:
                    out[i] = ((RT(0) + RT(lo)) + upper) * RT(0.5)
            else:
                out[i] = best
            i += stride

    kernel.__name__ = kernel.__qualname__ = _kernel_name(
        "block_order_kernel", "median" if kind == MEDIAN else "mode", omit and "omit", vt,
        rt, one_outer and "o1")
    return jit(cache=True)(kernel)


# --------------------------------------------------------------------------- launches


def _result_type(dtype):
    """The type results of ``dtype`` are rounded to before they are stored (float32 for
    float16, as the CPU's float16 stores do)."""
    dtype = np.dtype(dtype)
    if dtype == np.float16:
        return numba.float32
    return numba.from_dtype(dtype)


def outer_host(plan):
    """The plan's ``outer`` table as the kernels read it: int64 ``(axes, 4)`` rows of
    input size, block, output size and stride in input rows."""
    table = np.zeros((len(plan.outer), 4), np.int64)
    stride = 1
    for a in range(len(plan.outer) - 1, -1, -1):
        table[a, :3] = plan.outer[a]
        table[a, O_STRIDE] = stride
        stride *= plan.outer[a][0]
    return table


#: Outer tables kept on each device (least recently used dropped first).
_TABLES = compat.DeviceTables(256)


def outer_table(plan, stream=0):
    """:func:`outer_host` of ``plan`` on the current device, copied there once per
    geometry."""
    return _TABLES.get(plan.outer, lambda: outer_host(plan), stream)


def block_launch(plan, xc, oc, table, cval=None):
    """``(kernel, args, items, None)`` of the block kernel of ``plan`` over canonical views
    ``xc`` -> ``oc``, with the device ``outer`` ``table``; ``cval`` (None: blocks cut short
    reduce what they have) fills the elements of blocks past the input's end."""
    P, Ro, WoC = plan.out_shape
    C = plan.C
    items = P * Ro * WoC
    g = (items, C, plan.Wo, Ro, plan.W, plan.bw, xc.shape[1] * xc.shape[2], xc.shape[2])
    vt = compare_type(xc.dtype)
    pad = cval is not None
    fill = np.dtype(numba.np.numpy_support.as_dtype(vt)).type(cval if pad else 0)
    args = (xc.reshape(-1), oc.reshape(-1), table, g, pad, fill)
    name = plan.func
    one = len(plan.outer) == 1
    if name in ("max", "min"):
        kernel = extreme_kernel(name == "min", plan.omit, vt, one)
    elif name in ("sum", "mean"):
        kernel = sum_kernel(MEAN if name == "mean" else SUM, plan.omit, vt,
                            _result_type(plan.out_dtype), one)
        args += (plan.acc_dtype.type(0),)
    else:
        median = name == "median"
        rt = numba.float32 if median and np.dtype(plan.out_dtype).itemsize <= 4 \
            else numba.float64  # (unused by modes)
        kernel = order_kernel(MEDIAN if median else MODE, plan.omit, vt, rt, one)
    return kernel, args, items, None
