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

* ``axes[a]``: one row per axis, the outer axes then the last one, with the columns
  ``IN`` ... ``ROWS`` of :mod:`numbapool.plan` (sizes, tap step, the uniform run, where the
  axis's other windows start in the edge tables, stride in input rows);
* ``first``, ``count``: first input position and tap count of the windows outside the runs
  (never empty: a sentinel entry follows them);
* ``div``: their per-axis divisors (sums only); a run window's divisor is its tap count.

The per-element rules (``take_indexed``, ``transform``, ``finish``) are
:mod:`numbapool._arith`'s, compiled here as device functions: the CPU tests run them too.
"""

import numpy as np

from .. import _arith
from ..plan import BASE, HI, K, LO, OFF, OUT, ROWS, STEP, S
from .compat import cuda, jit

_take_indexed = jit(device=True)(_arith.take_indexed)
_transform = jit(device=True)(_arith.transform)
_finish = jit(device=True)(_arith.finish)


@jit(device=True)
def _edge(axes, a, o):
    """Where window ``o`` of axis ``a``, outside the axis's run, sits in the edge tables."""
    lo = axes[a, LO]
    if o < lo:
        return axes[a, BASE] + o
    return axes[a, BASE] + o - axes[a, HI] + lo


@jit(device=True)
def _window(axes, first, count, a, o):
    """``(first, count)`` of window ``o`` of axis ``a``."""
    if axes[a, LO] <= o and o < axes[a, HI]:
        return o * axes[a, S] + axes[a, OFF], axes[a, K]
    e = _edge(axes, a, o)
    return first[e], count[e]


@jit(device=True)
def _divisor(axes, div, a, o):
    """The divisor of window ``o`` of axis ``a`` (its tap count in the run)."""
    if axes[a, LO] <= o and o < axes[a, HI]:
        return float(axes[a, K])
    return div[_edge(axes, a, o)]


@jit(device=True)
def _outer_taps(ro, axes, first, count):
    """Number of input rows in the outer window of output row ``ro``."""
    n = 1
    q = ro
    for a in range(axes.shape[0] - 2, -1, -1):
        size = axes[a, OUT]
        n *= _window(axes, first, count, a, q % size)[1]
        q //= size
    return n


@jit(device=True)
def _outer_divisor(ro, axes, div):
    """Product of the outer axes' divisors of output row ``ro``."""
    n = 1.0
    q = ro
    for a in range(axes.shape[0] - 2, -1, -1):
        size = axes[a, OUT]
        n *= _divisor(axes, div, a, q % size)
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
def _row(k, ro, axes, first, count):
    """Flat input row of outer tap ``k`` (row-major over the outer axes) of output row ``ro``."""
    if axes.shape[0] == 2:  # 1-D and 2-D pools: evenly spaced rows, no divisions
        return _window(axes, first, count, 0, ro)[0] + k * axes[0, STEP]
    r = 0
    q = ro
    rem = k
    for a in range(axes.shape[0] - 2, -1, -1):
        size = axes[a, OUT]
        f, n = _window(axes, first, count, a, q % size)
        q //= size
        r += (f + (rem % n) * axes[a, STEP]) * axes[a, ROWS]
        rem //= n
    return r


@jit(cache=True)
def extreme_kernel(x, out, idx, axes, first, count, one, C, is_min, omit, with_indices):
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
    la = axes.shape[0] - 1
    l_step = axes[la, STEP]
    for i in range(cuda.grid(1), P * Ro * WoC, cuda.gridsize(1)):
        p, ro, wo, c = _output_position(i, C, Wo, Ro)
        w0, taps = _window(axes, first, count, la, wo)
        r = _row(0, ro, axes, first, count)
        m = x[p, r, w0 * C + c] * one
        mi = r * W + w0
        for k in range(_outer_taps(ro, axes, first, count)):
            r = _row(k, ro, axes, first, count)
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
def sum_kernel(x, out, axes, first, count, div, C, acc_zero, transform, power, eps, finish,
               omit, divisor_override):
    """Window sums of transformed values, turned into means / Lp norms / GeM by ``finish``.

    Accumulates in ``acc_zero``'s type (float32 for float16 data: loads and stores stay
    float16).  The divisor is ``divisor_override`` when non-zero, else the product of the
    per-axis divisors; under ``omit`` NaNs are skipped and (unless overridden) leave the
    divisor, and a window of only NaNs gives NaN.
    """
    P, Ro, WoC = out.shape
    Wo = WoC // C
    la = axes.shape[0] - 1
    l_step = axes[la, STEP]
    for i in range(cuda.grid(1), P * Ro * WoC, cuda.gridsize(1)):
        p, ro, wo, c = _output_position(i, C, Wo, Ro)
        w0, taps = _window(axes, first, count, la, wo)
        rows = _outer_taps(ro, axes, first, count)
        s = acc_zero
        nans = 0
        for k in range(rows):
            r = _row(k, ro, axes, first, count)
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
            divisor = _outer_divisor(ro, axes, div) * _divisor(axes, div, la, wo) - nans
        if omit and nans == rows * taps:
            out[p, ro, wo * C + c] = np.nan
        else:
            out[p, ro, wo * C + c] = _finish(s, divisor, finish, power)
