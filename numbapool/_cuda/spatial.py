"""CUDA kernels for spatial pooling with a thread per output: the window kernels.

The arrays are the plan's canonical views, flattened: input ``x`` of ``(P, R, W*C)``
(P planes, R rows = the product of the outer spatial axes, W positions of the last axis
times C channels; C == 1 for channels-first), output ``out`` (and ``idx``) of
``(P, Ro, Wo*C)``.  :mod:`numbapool._cuda.plane` has the other path, a group of threads per
window, for pools of few large windows (global pools, adaptive pools to small outputs).

A thread takes ``CPT`` consecutive channels of one output position (:func:`channels_per_thread`:
4 for max/min and 2 for sums of channels-last data whose C they divide, while the grid
still fills the device; else 1), in a grid-stride loop over the flat items (channel groups
fastest, then last-axis position), so channels-last reads are coalesced along C and
channels-first reads walk the contiguous last axis; the position's index arithmetic and
window bounds serve its ``CPT`` channels.  A thread visits its window's rows in
increasing order and each row's last-axis taps in increasing order: the flat index only
grows, so the first of equal values is the one kept and the scan compares no indices.

Compile-time specialisations (the factories :func:`extreme_kernel` and :func:`sum_kernel`
return a cached closure per combination; Numba folds the captured constants and drops the
dead branches): max or min, NaN policy, whether indices are written, the summed term,
finish and root, whether a divisor override applies, ``CPT``, whether C > 1, the index
width and how the outer axes come (``outer``: 1 for 1-D and 2-D pools, 2 for 3-D pools,
both by value; 0 for more, from the ``axes`` table).

Index arithmetic is unsigned 32-bit (``uint32``) when the input and output have fewer than
``2**31`` elements, else 64-bit (``uint64``): :func:`index_type` decides in Python.  The
32-bit form avoids 64-bit divisions (a long software routine on GPUs) and halves the
registers of offsets; positions are never negative, so nothing needs a sign fix-up.

Window geometry.  The uniform run of each axis (see ``SpatialPlan.tables``) comes by value,
``(lo, hi, k, s, noff, base, step)`` (:func:`axis_run`): window ``o`` with ``lo <= o < hi``
has ``k`` taps from ``o*s - noff``, ``step`` apart.  Only the windows outside the runs read
``first``/``count`` (and ``div``) of the edge tables, from entry ``base`` on.  The tables
are :func:`numbapool._cuda.backend.spatial_tables`: uint64 (the ``axes`` table with its
``OFF`` column negated) and float64 divisors.

Arithmetic.  Max and min compare in the input type (float16 in float32, where Numba's
float16 comparisons are out-of-line calls), exactly, by :func:`numbapool._arith.take_indexed`.
Sums accumulate in the plan's accumulator type: float32 for float16 data, and for float32
windows of at most 64 taps; float64 otherwise, and always for Lp and GeM, whose terms a
float64 add costs little next to the power, and whose sums then keep float32's precision
however many terms they add.  Divisors, means and roots are float64, once per output.
The terms: squares and cubes multiply in the accumulator type (exact in float64 for float32
data); a general power ``p`` of float16 data, or of float32 data with ``p >= 1`` (where the
root does not magnify the error), is ``powf`` in float32, within a few float32 ulps of the
float64 power, and a term that float32 would overflow or flush (beyond ``3.4e38``, or not
zero and below ``1.2e-38``) is ``2 ** (p * log2|v|)`` in float64 instead; other general
powers (float64 or integer data, float32 with ``p < 1``) stay float64 ``pow``, whose
accuracy float64 results need.  The roots (:func:`_root`): sqrt for ``p = 2``; float64
``pow`` for float64 results; ``2 ** (log2(r) / p)`` in float64 for float16 and float32
results (relative error ~1e-13, lost in their rounding, and far fewer registers).
"""

import functools
import math

import numba
import numpy as np

from .. import _arith
from ..plan import BASE, FINISHES, HI, IN, K, LO, OFF, OUT, ROWS, STEP, S
from .compat import cuda, jit

_take_indexed = jit(device=True)(_arith.take_indexed)
_finish = jit(device=True)(_arith.finish)

#: The summed term of each element (``sum_kernel``'s ``transform``): the value, its square,
#: its cube, a float64 power, a float32 power (see the module docstring).
X_IDENTITY, X_SQUARE, X_CUBE, X_POW, X_POW32 = range(5)

#: Column of the device ``axes`` table that holds ``-OFF`` (the table is unsigned).
NOFF = OFF

_FLT_MAX = float(np.finfo(np.float32).max)
_FLT_TINY = float(np.finfo(np.float32).tiny)

#: Flat sizes from this one on take 64-bit index arithmetic.
WIDE = 2 ** 31


def index_type(*sizes):
    """``numba.uint32`` when every flat size is below :data:`WIDE`, else ``numba.uint64``."""
    return numba.uint64 if max(sizes, default=0) >= WIDE else numba.uint32


def compare_type(dtype):
    """The Numba type values of ``dtype`` are compared in (float16 in float32)."""
    dtype = np.dtype(dtype)
    return numba.float32 if dtype == np.float16 else numba.from_dtype(dtype)


def summed_term(plan, dtype):
    """``(X_* code, clip)`` of the plan's transform for input ``dtype``."""
    clip = plan.transform == "clip_power"
    p = float(plan.power)
    if plan.transform == "identity" or p == 1.0:
        return X_IDENTITY, clip
    if p == 2.0:
        return X_SQUARE, clip
    if p == 3.0:
        return X_CUBE, clip
    dtype = np.dtype(dtype)
    if dtype == np.float16 or (dtype == np.float32 and p >= 1.0):
        return X_POW32, clip
    return X_POW, clip


# --------------------------------------------------------------------------- device helpers


@jit(device=True)
def _span(U, o, lo, hi, k, s, noff, base, first, count):
    """``(first tap, taps)`` of window ``o`` of an axis, as ``U`` (the index type): the
    run's by formula, the other windows' from the edge tables."""
    if lo <= o and o < hi:
        return U(o * s - noff), U(k)
    if o < lo:
        e = U(base + o)
    else:
        e = U(base + o - hi + lo)
    return U(first[e]), U(count[e])


@jit(device=True)
def _run_span(U, o, run, first, count):
    """:func:`_span` of window ``o`` of the axis whose run ``(lo, hi, k, s, noff, base,
    step)`` is ``run`` (``aA``, ``aB`` or ``aL`` of the kernels)."""
    return _span(U, o, U(run[0]), U(run[1]), U(run[2]), U(run[3]), U(run[4]), U(run[5]),
                 first, count)


@jit(device=True)
def _span_divisor(o, lo, hi, k, base, div):
    """The divisor of window ``o`` of an axis (its tap count in the run)."""
    if lo <= o and o < hi:
        return float(k)
    if o < lo:
        return div[base + o]
    return div[base + o - hi + lo]


@jit(device=True)
def _axis_span(U, axes, a, o, first, count):
    return _span(U, o, U(axes[a, LO]), U(axes[a, HI]), U(axes[a, K]), U(axes[a, S]),
                 U(axes[a, NOFF]), U(axes[a, BASE]), first, count)


@jit(device=True)
def _outer_taps(U, ro, axes, first, count):
    """Number of input rows in the outer window of output row ``ro`` (two or more outer
    axes, read from the ``axes`` table)."""
    n = U(1)
    q = ro
    for a in range(axes.shape[0] - 2, -1, -1):
        size = U(axes[a, OUT])
        o = U(q % size)
        q = U(q // size)
        n = U(n * _axis_span(U, axes, a, o, first, count)[1])
    return n


@jit(device=True)
def _outer_row(U, k, ro, axes, first, count):
    """Flat input row of outer tap ``k`` (row-major over the outer axes) of output row
    ``ro``: the outer axes' taps in increasing order give increasing rows."""
    r = U(0)
    q = ro
    rem = k
    for a in range(axes.shape[0] - 2, -1, -1):
        size = U(axes[a, OUT])
        o = U(q % size)
        q = U(q // size)
        f, n = _axis_span(U, axes, a, o, first, count)
        r = U(r + U(f + U(rem % n) * U(axes[a, STEP])) * U(axes[a, ROWS]))
        rem = U(rem // n)
    return r


@jit(device=True)
def _outer_divisor(U, ro, axes, div):
    """Product of the outer axes' divisors of output row ``ro`` (``axes`` table)."""
    d = 1.0
    q = ro
    for a in range(axes.shape[0] - 2, -1, -1):
        size = U(axes[a, OUT])
        o = U(q % size)
        q = U(q // size)
        d *= _span_divisor(o, U(axes[a, LO]), U(axes[a, HI]), U(axes[a, K]),
                           U(axes[a, BASE]), div)
    return d


@jit(device=True)
def _pow32(c, p32, power):
    """``c ** power`` for a float64 ``c`` that is a float32 value (or the float64 ``eps`` of
    GeM): a float32 power, unless float32 overflows or flushes it; then
    ``2 ** (power * log2|c|)`` in float64 (relative error ~1e-13, and a far smaller
    routine than float64 ``pow``), with the float32 result's sign."""
    v = numba.float32(c)
    t = v ** p32
    if t > _FLT_MAX or t < -_FLT_MAX or (abs(t) < _FLT_TINY and v != 0):
        return math.copysign(math.exp2(power * math.log2(abs(c))), t)
    return numba.float64(t)


@jit(device=True)
def _clip(v, eps):
    """GeM's clip: ``max(v, eps)``, NaN kept."""
    return v if (v > eps or v != v) else eps


@jit(device=True)
def _keep(m, mi, v, vi, is_min, omit):
    """The running extreme after candidate ``v`` (flat index ``vi``), met after ``m``."""
    if _take_indexed(m, 0, v, 1, is_min, omit):
        return v, vi
    return m, mi


@jit(device=True)
def _root(r, kind, power):
    """The root of ``_arith.finish`` (``r`` not NaN): ``kind`` 1: ``r``, 2: ``sqrt(r)``,
    3: ``r ** (1/power)``, 4: ``2 ** (log2(r) / power)`` (float16/float32 results, where
    its ~1e-13 relative error vanishes in the rounding and it is a far smaller routine)."""
    if r <= 0.0:
        return 0.0  # a non-positive power sum pools to 0
    if kind == 1:
        return r
    if kind == 2:
        return math.sqrt(r)
    if kind == 3:
        return r ** (1.0 / power)
    return math.exp2(math.log2(r) / power)


@jit(device=True)
def finish_sum(s, nans, taps, d, omit, override, mean, root_mean, root, power):
    """A window's result from its sum ``s``, its NaN count and taps, and its divisor ``d``
    (see :func:`sum_kernel`; the plane kernels share it)."""
    if omit and nans == taps:
        return np.nan
    if omit and not override:
        d = d - float(nans)
    if mean:
        return s / d
    res = s / d if root_mean else s * 1.0
    if res == res:
        res = _root(res, root, power)
    return res


@jit(device=True)
def _output_position(U, i, groups, Wo, Rb, Ra):
    """``(plane, outer output A, outer output B, last-axis output, channel group)`` of flat
    item ``i`` (channel groups fastest, so consecutive threads take consecutive
    channels)."""
    t = U(i // groups)
    q = U(t // Wo)
    qa = U(q // Rb)
    p = U(qa // Ra)
    return p, U(qa - p * Ra), U(q - qa * Rb), U(t - q * Wo), U(i - t * groups)


@jit(device=True)
def _window(U, outer, i, groups, Wo, RoB, RoA, RB, aA, aB, aL, axes, first, count):
    """Where the window of flat item ``i`` lies: ``(p, ra, rb, wo, c)`` of
    :func:`_output_position`, then ``(w0, nw)``, its first last-axis tap and taps, ``nA``
    and ``nB``, its rows along the outer axes A and B, and ``r``, its first flat input
    row (``outer`` as in the kernels, a compile-time constant there)."""
    p, ra, rb, wo, c = _output_position(U, i, groups, Wo, RoB, RoA)
    w0, nw = _run_span(U, wo, aL, first, count)
    nA = U(1)
    if outer == 2:
        fa, nA = _run_span(U, ra, aA, first, count)
        fb, nB = _run_span(U, rb, aB, first, count)
        r = U(fa * RB + fb)
    elif outer == 1:
        r, nB = _run_span(U, rb, aB, first, count)
    else:
        nB = _outer_taps(U, rb, axes, first, count)
        r = _outer_row(U, U(0), rb, axes, first, count)
    return p, ra, rb, wo, c, w0, nw, nA, nB, r


# --------------------------------------------------------------------------- kernels
#
# The kernels share one shape.  ``g`` = (items, channel groups, RoA, RoB, Wo, plane size,
# row length, W, C, RB): the flat items (output positions times channel groups), the
# output sizes of the outer axes A and B and of the last axis, the input plane size and
# row length (W*C), the last axis's input length, the channels and B's input length.
# ``aA``, ``aB``, ``aL``: the runs ``(lo, hi, k, s, noff, base, step)`` of the outer axes
# A and B and of the last axis.  ``outer`` (compile time) says how many outer axes come by
# value: 1 (1-D and 2-D pools: B only), 2 (3-D pools: A and B) or 0 (more: B is the flat
# outer output row and the ``axes`` table gives its rows).  A thread's window is ``nA``
# rows of A times ``nB`` rows of B times ``nw`` last-axis taps, visited in increasing
# flat order.


def _kernel_name(prefix, index, outer, cpt, grouped, *flags):
    return "_".join([prefix, *(f for f in flags if f), str(index), f"o{outer}", f"c{cpt}"]
                    + (["grouped"] if grouped else []))


@functools.cache
def extreme_kernel(is_min, omit, with_indices, index, outer, cpt, grouped, vt):
    """The max (``is_min`` False) or min window kernel of one specialisation.

    ``index``: ``numba.uint32`` or ``numba.uint64`` (:func:`index_type`); ``outer``: see
    above; ``cpt``: channels per thread (1, 2 or 4); ``grouped``: C > 1 (the flat item
    holds a channel group); ``vt``: the compare type (:func:`compare_type`).  Ties and
    NaNs follow ``_arith.take_indexed``: the smallest flat index among equal values, the
    first NaN under propagate, NaNs skipped under omit (all-NaN gives NaN).

    Arguments: ``x``, ``out``, ``idx`` (flat; ``idx`` unused without indices), ``axes``,
    ``first``, ``count`` (device tables), ``g``, ``aA``, ``aB``, ``aL``.
    """
    U, IS_MIN, OMIT, WITH_IDX, OUTER, CPT, GROUPED, VT = (index, is_min, omit, with_indices,
                                                          outer, cpt, grouped, vt)

    def kernel(x, out, idx, axes, first, count, g, aA, aB, aL):
        n = U(g[0])
        groups = U(g[1]) if GROUPED else U(1)
        RoA = U(g[2]) if OUTER == 2 else U(1)
        RoB = U(g[3])
        Wo = U(g[4])
        plane = U(g[5])
        rowlen = U(g[6])
        W = U(g[7])
        C = U(g[8])
        RB = U(g[9])
        lstep = U(aL[6])
        lstep_c = U(lstep * C)
        bstep_c = U(U(aB[6]) * rowlen)
        bstep_i = U(U(aB[6]) * W)
        astep_c = U(U(aA[6]) * RB * rowlen)
        astep_i = U(U(aA[6]) * RB * W)
        i = U(cuda.grid(1))
        stride = U(cuda.gridsize(1))
        while i < n:
            p, ra, rb, wo, c, w0, nw, nA, nB, r = _window(U, OUTER, i, groups, Wo, RoB, RoA, RB,
                                                          aA, aB, aL, axes, first, count)
            start = U(p * plane + w0 * C + c * CPT)
            o = U(start + r * rowlen)
            f = U(r * W + w0)
            m0 = VT(x[o])
            m1 = m0
            m2 = m0
            m3 = m0
            if CPT > 1:
                m1 = VT(x[U(o + 1)])
            if CPT > 2:
                m2 = VT(x[U(o + 2)])
                m3 = VT(x[U(o + 3)])
            i0 = f
            i1 = f
            i2 = f
            i3 = f
            ka = U(0)
            while ka < nA:
                ob = o
                fb_ = f
                kb = U(0)
                while kb < nB:
                    if OUTER == 0:
                        if kb > 0:
                            r = _outer_row(U, kb, rb, axes, first, count)
                            ob = U(start + r * rowlen)
                            fb_ = U(r * W + w0)
                    oo = ob
                    ff = fb_
                    j = U(0)
                    while j < nw:
                        m0, i0 = _keep(m0, i0, VT(x[oo]), ff, IS_MIN, OMIT)
                        if CPT > 1:
                            m1, i1 = _keep(m1, i1, VT(x[U(oo + 1)]), ff, IS_MIN, OMIT)
                        if CPT > 2:
                            m2, i2 = _keep(m2, i2, VT(x[U(oo + 2)]), ff, IS_MIN, OMIT)
                            m3, i3 = _keep(m3, i3, VT(x[U(oo + 3)]), ff, IS_MIN, OMIT)
                        oo = U(oo + lstep_c)
                        ff = U(ff + lstep)
                        j = U(j + 1)
                    if OUTER != 0:
                        ob = U(ob + bstep_c)
                        fb_ = U(fb_ + bstep_i)
                    kb = U(kb + 1)
                if OUTER == 2:
                    o = U(o + astep_c)
                    f = U(f + astep_i)
                ka = U(ka + 1)
            w = U(i * CPT)
            out[w] = m0
            if WITH_IDX:
                idx[w] = i0
            if CPT > 1:
                out[U(w + 1)] = m1
                if WITH_IDX:
                    idx[U(w + 1)] = i1
            if CPT > 2:
                out[U(w + 2)] = m2
                out[U(w + 3)] = m3
                if WITH_IDX:
                    idx[U(w + 2)] = i2
                    idx[U(w + 3)] = i3
            i = U(i + stride)

    kernel.__name__ = kernel.__qualname__ = _kernel_name(
        "extreme_kernel", index, outer, cpt, grouped, "min" if is_min else "max",
        omit and "omit", with_indices and "idx", str(vt))
    return jit(cache=True)(kernel)


@functools.cache
def sum_kernel(transform, clip, finish, root, omit, override, index, outer, cpt, grouped):
    """The window-sum kernel of one specialisation: sums of transformed values, turned into
    means / Lp norms / GeM by ``finish`` (an ``_arith.F_*`` code).

    ``transform``: an ``X_*`` code, ``clip``: clip at ``eps`` first (GeM); ``root``: the
    root of the Lp/GeM finishes (see ``_root``; 0 for means); ``override``: the divisor
    is the ``divisor`` argument instead of the product of the per-axis divisors; the
    others as for :func:`extreme_kernel`.  Accumulates in ``acc_zero``'s type.  Under
    ``omit`` NaNs are skipped and (unless overridden) leave the divisor, and a window of
    only NaNs gives NaN.

    Arguments: those of :func:`extreme_kernel` without ``idx``, with ``div`` after
    ``count``, then ``acc_zero``, ``power`` (float64), ``p32`` (float32), ``eps``,
    ``divisor`` (the override).
    """
    U, CLIP, ROOT, OMIT, OVER, OUTER, CPT, GROUPED = (index, clip, root, omit, override,
                                                      outer, cpt, grouped)
    POW32 = transform == X_POW32
    SQUARE = transform == X_SQUARE
    CUBE = transform == X_CUBE
    POW = transform == X_POW
    MEAN = finish == _arith.F_MEAN
    ROOT_MEAN = finish == _arith.F_ROOT_MEAN

    def kernel(x, out, axes, first, count, div, g, aA, aB, aL, acc_zero, power, p32, eps,
               divisor):
        n = U(g[0])
        groups = U(g[1]) if GROUPED else U(1)
        RoA = U(g[2]) if OUTER == 2 else U(1)
        RoB = U(g[3])
        Wo = U(g[4])
        plane = U(g[5])
        rowlen = U(g[6])
        C = U(g[8])
        RB = U(g[9])
        lstep_c = U(U(aL[6]) * C)
        bstep_c = U(U(aB[6]) * rowlen)
        astep_c = U(U(aA[6]) * RB * rowlen)
        i = U(cuda.grid(1))
        stride = U(cuda.gridsize(1))
        while i < n:
            p, ra, rb, wo, c, w0, nw, nA, nB, r = _window(U, OUTER, i, groups, Wo, RoB, RoA, RB,
                                                          aA, aB, aL, axes, first, count)
            start = U(p * plane + w0 * C + c * CPT)
            o = U(start + r * rowlen)
            sum0 = acc_zero
            sum1 = acc_zero
            sum2 = acc_zero
            sum3 = acc_zero
            nan0 = U(0)
            nan1 = U(0)
            nan2 = U(0)
            nan3 = U(0)
            ka = U(0)
            while ka < nA:
                ob = o
                kb = U(0)
                while kb < nB:
                    if OUTER == 0:
                        if kb > 0:
                            ob = U(start + _outer_row(U, kb, rb, axes, first, count) * rowlen)
                    oo = ob
                    j = U(0)
                    while j < nw:
                        for cc in range(CPT):
                            xv = x[U(oo + cc)]
                            if POW32:
                                v = numba.float64(xv)
                                if CLIP:
                                    v = _clip(v, eps)
                                v = _pow32(v, p32, power)
                            else:
                                v = acc_zero + xv
                                if CLIP:
                                    v = _clip(v, eps)
                                if SQUARE:
                                    v = v * v
                                if CUBE:
                                    v = v * v * v
                                if POW:
                                    v = v ** power
                            if OMIT and v != v:
                                if cc == 0:
                                    nan0 = U(nan0 + 1)
                                elif cc == 1:
                                    nan1 = U(nan1 + 1)
                                elif cc == 2:
                                    nan2 = U(nan2 + 1)
                                else:
                                    nan3 = U(nan3 + 1)
                            elif cc == 0:
                                sum0 += v
                            elif cc == 1:
                                sum1 += v
                            elif cc == 2:
                                sum2 += v
                            else:
                                sum3 += v
                        oo = U(oo + lstep_c)
                        j = U(j + 1)
                    if OUTER != 0:
                        ob = U(ob + bstep_c)
                    kb = U(kb + 1)
                if OUTER == 2:
                    o = U(o + astep_c)
                ka = U(ka + 1)
            if OVER:
                d = divisor
            else:
                d = _span_divisor(wo, U(aL[0]), U(aL[1]), U(aL[2]), U(aL[5]), div)
                if OUTER == 2:
                    d *= _span_divisor(ra, U(aA[0]), U(aA[1]), U(aA[2]), U(aA[5]), div)
                if OUTER == 0:
                    d *= _outer_divisor(U, rb, axes, div)
                else:
                    d *= _span_divisor(rb, U(aB[0]), U(aB[1]), U(aB[2]), U(aB[5]), div)
            taps = U(nA * nB * nw)
            w = U(i * CPT)
            for cc in range(CPT):
                if cc == 0:
                    s, nans = sum0, nan0
                elif cc == 1:
                    s, nans = sum1, nan1
                elif cc == 2:
                    s, nans = sum2, nan2
                else:
                    s, nans = sum3, nan3
                out[U(w + cc)] = finish_sum(s, nans, taps, d, OMIT, OVER, MEAN, ROOT_MEAN, ROOT,
                                            power)
            i = U(i + stride)

    kernel.__name__ = kernel.__qualname__ = _kernel_name(
        "sum_kernel", index, outer, cpt, grouped, f"x{transform}", clip and "clip",
        f"f{finish}", root and f"r{root}", omit and "omit", override and "override")
    return jit(cache=True)(kernel)


# --------------------------------------------------------------------------- launches


def axis_run(row):
    """``(lo, hi, k, s, noff, base, step)`` of one row of the host ``axes`` table."""
    return (int(row[LO]), int(row[HI]), int(row[K]), int(row[S]), -int(row[OFF]),
            int(row[BASE]), int(row[STEP]))


def root_kind(plan, out_dtype):
    """The ``_root`` kind of a sum plan's finish (0: a mean)."""
    if plan.finish == "mean":
        return 0
    p = float(plan.power)
    if p == 1.0:
        return 1
    if p == 2.0:
        return 2
    return 4 if np.dtype(out_dtype).itemsize <= 4 else 3


def channels_per_thread(plan, outputs, fill):
    """Channels a thread of the window kernels takes: 4 (max/min) or 2 consecutive channels
    of channels-last data when C allows and the grid still has ``fill`` threads, else 1
    (and 1 for pools of four or more spatial axes, whose table-driven rows need the
    registers, and for float64 powers)."""
    C = plan.channels
    if plan.tables.axes.shape[0] > 3:  # four or more spatial axes: registers are short
        return 1
    if plan.reducer == "sum" and summed_term(plan, plan.out_dtype)[0] == X_POW:
        return 1  # float64 pow needs the registers
    for cpt in ((4, 2) if plan.reducer != "sum" else (2,)):
        if C % cpt == 0 and outputs // cpt >= fill:
            return cpt
    return 1


def geometry(plan, cpt):
    """``(outer, g, aA, aB, aL)`` of the kernels for ``cpt`` channels per thread."""
    axes = plan.tables.axes
    P, R, WC = plan.canonical_in_shape
    _, Ro, WoC = plan.canonical_out_shape
    C = max(plan.channels, 1)
    W, Wo = WC // C, WoC // C
    n_outer = axes.shape[0] - 1
    none = (0,) * 7
    aL = axis_run(axes[-1])
    if n_outer == 1:
        outer, RoA, RoB, RB, aA, aB = 1, 1, Ro, 1, none, axis_run(axes[0])
    elif n_outer == 2:
        outer, RoA, RoB, RB = 2, int(axes[0, OUT]), int(axes[1, OUT]), int(axes[1, IN])
        aA, aB = axis_run(axes[0]), axis_run(axes[1])
    else:
        outer, RoA, RoB, RB, aA, aB = 0, 1, Ro, 1, none, none
    items = P * Ro * Wo * C // cpt
    return outer, (items, C // cpt, RoA, RoB, Wo, R * WC, WC, W, C, RB), aA, aB, aL


def window_launch(plan, xc, vc, ic, tables, fill):
    """``(kernel, args, items, None)`` of the window kernels for canonical views ``xc`` ->
    ``vc`` (``ic``: int64 indices or a placeholder), device ``tables``; ``fill``: the threads
    a grid needs to fill the device (see :func:`channels_per_thread`)."""
    cpt = channels_per_thread(plan, vc.size, fill)
    outer, g, aA, aB, aL = geometry(plan, cpt)
    index = index_type(xc.size, vc.size)
    grouped = plan.channels > 1
    t = tables
    x, out = xc.reshape(-1), vc.reshape(-1)
    if plan.reducer in ("max", "min"):
        kernel = extreme_kernel(plan.reducer == "min", plan.omit_nan, plan.return_indices,
                                index, outer, cpt, grouped, compare_type(xc.dtype))
        return (kernel, (x, out, ic.reshape(-1), t["axes"], t["first"], t["count"], g, aA,
                         aB, aL), g[0], None)
    term, clip = summed_term(plan, xc.dtype)
    override = float(plan.divisor_override)
    kernel = sum_kernel(term, clip, FINISHES[plan.finish], root_kind(plan, vc.dtype),
                        plan.omit_nan, override != 0.0, index, outer, cpt, grouped)
    return (kernel, (x, out, t["axes"], t["first"], t["count"], t["div"], g, aA, aB, aL,
                     plan.acc_dtype.type(0), float(plan.power), np.float32(plan.power),
                     float(plan.eps), override), g[0], None)
