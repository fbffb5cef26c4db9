"""CUDA kernels for spatial pooling, driven by the same plan tables as the CPU kernels.

The arrays are the plan's canonical views: input ``x`` C-contiguous ``(P, R, W*C)``
(P planes, R rows = the product of the outer spatial axes, W positions of the last axis
times C channels; C == 1 for channels-first), output ``(P, Ro, Wo*C)``.

One thread per output element, in a grid-stride loop over the flat output index with 64-bit
arithmetic.  Consecutive threads take consecutive elements (channel fastest, then last-axis
position), so channels-last reads are coalesced along C and channels-first reads walk the
contiguous last axis.  A thread visits its window's outer rows (flat outer tap ``k``
decomposed row-major, so rows come in increasing flat index) and the last-axis taps of each
row, in increasing order: the first of equal values is met first.

Window tables (see ``SpatialPlan.tables``), as device arrays:

* ``o_first[a, o]``, ``o_count[a, o]``: first input row position and tap count of output
  position ``o`` along outer axis ``a``;
* ``o_axes[a] = (step, row_stride, out_size)``: tap step (dilation) of outer axis ``a``,
  its stride in input rows, its output length;
* ``l_first[wo]``, ``l_count[wo]``, ``l_step``: the same for the last axis;
* ``o_div``, ``l_div``: per-axis divisors (sums only).

The per-element rules (``take_indexed``, ``transform``, ``finish``) are
:mod:`numbapool._arith`'s, compiled here as device functions: the CPU tests run them too.
"""

import numpy as np

from .. import _arith
from .compat import cuda, jit

_take_indexed = jit(device=True)(_arith.take_indexed)
_transform = jit(device=True)(_arith.transform)
_finish = jit(device=True)(_arith.finish)


@jit(device=True)
def _outer_product(ro, table, o_axes, one):
    """Product over the outer axes of ``table[a, o_a]``, ``o_a`` being output row ``ro``'s
    position along axis ``a``: its tap count (``o_count``) or divisor (``o_div``)."""
    n = one
    q = ro
    for a in range(o_axes.shape[0] - 1, -1, -1):
        size = o_axes[a, 2]
        n *= table[a, q % size]
        q //= size
    return n


@jit(device=True)
def _output_position(i, C, Wo, Ro):
    """``(plane, output row, last-axis position, channel)`` of flat output index ``i``
    (channel fastest, so consecutive threads take consecutive elements)."""
    c = i % C
    t = i // C
    wo = t % Wo
    t //= Wo
    return t // Ro, t % Ro, wo, c


@jit(device=True)
def _row(k, ro, o_first, o_count, o_axes):
    """Flat input row of outer tap ``k`` (row-major over the outer axes) of output row ``ro``."""
    if o_axes.shape[0] == 1:  # 1-D and 2-D pools: evenly spaced rows, no divisions
        return o_first[0, ro] + k * o_axes[0, 0]
    r = 0
    q = ro
    rem = k
    for a in range(o_axes.shape[0] - 1, -1, -1):
        size = o_axes[a, 2]
        o = q % size
        q //= size
        n = o_count[a, o]
        r += (o_first[a, o] + (rem % n) * o_axes[a, 0]) * o_axes[a, 1]
        rem //= n
    return r


@jit(cache=True)
def extreme_kernel(x, out, idx, o_first, o_count, o_axes, l_first, l_count, l_step,
                   one, C, is_min, omit, with_indices):
    """Max (``is_min`` False) or min of each window; flat spatial indices into ``idx``.

    Ties and NaNs follow ``_arith.take_indexed``: the smallest flat index among equal
    values, the first NaN under propagate, NaNs skipped under omit (all-NaN gives NaN).
    Values are compared as ``v * one``: exact (sign of zero included), and a float32
    ``one`` makes float16 data compare in float32, where Numba's float16 comparisons are
    out-of-line calls.
    """
    P, Ro, WoC = out.shape
    Wo = WoC // C
    W = x.shape[2] // C
    for i in range(cuda.grid(1), P * Ro * WoC, cuda.gridsize(1)):
        p, ro, wo, c = _output_position(i, C, Wo, Ro)
        w0 = l_first[wo]
        taps = l_count[wo]
        r = _row(0, ro, o_first, o_count, o_axes)
        m = x[p, r, w0 * C + c] * one
        mi = r * W + w0
        for k in range(_outer_product(ro, o_count, o_axes, 1)):
            r = _row(k, ro, o_first, o_count, o_axes)
            for j in range(taps):
                w = w0 + j * l_step
                v = x[p, r, w * C + c] * one
                vi = r * W + w
                if _take_indexed(m, mi, v, vi, is_min, omit):
                    m = v
                    mi = vi
        out[p, ro, wo * C + c] = m
        if with_indices:
            idx[p, ro, wo * C + c] = mi


@jit(cache=True)
def sum_kernel(x, out, o_first, o_count, o_axes, l_first, l_count, l_step, o_div, l_div,
               C, acc_zero, transform, power, eps, finish, omit, divisor_override):
    """Window sums of transformed values, turned into means / Lp norms / GeM by ``finish``.

    Accumulates in ``acc_zero``'s type (float32 for float16 data: loads and stores stay
    float16).  The divisor is ``divisor_override`` when non-zero, else the product of the
    per-axis divisors; under ``omit`` NaNs are skipped and (unless overridden) leave the
    divisor, and a window of only NaNs gives NaN.
    """
    P, Ro, WoC = out.shape
    Wo = WoC // C
    for i in range(cuda.grid(1), P * Ro * WoC, cuda.gridsize(1)):
        p, ro, wo, c = _output_position(i, C, Wo, Ro)
        w0 = l_first[wo]
        taps = l_count[wo]
        rows = _outer_product(ro, o_count, o_axes, 1)
        s = acc_zero
        nans = 0
        for k in range(rows):
            r = _row(k, ro, o_first, o_count, o_axes)
            for j in range(taps):
                v = _transform(acc_zero + x[p, r, (w0 + j * l_step) * C + c],
                               transform, power, eps)
                if omit and v != v:
                    nans += 1
                else:
                    s += v
        if divisor_override != 0.0:
            divisor = divisor_override
        else:
            divisor = _outer_product(ro, o_div, o_axes, 1.0) * l_div[wo] - nans
        if omit and nans == rows * taps:
            out[p, ro, wo * C + c] = np.nan
        else:
            out[p, ro, wo * C + c] = _finish(s, divisor, finish, power)
