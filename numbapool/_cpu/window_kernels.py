"""CPU kernels for sliding, adaptive and global window pooling over N-D arrays.

Every spatial pool runs on a canonical view (see :class:`numbapool.plan.SpatialPlan`):

* input ``x`` C-contiguous ``(P, R, W*C)``: P independent planes, R rows (the product of the
  outer spatial axes), each row W positions of the last spatial axis times C channels
  (C == 1 for channels-first);
* output ``out`` C-contiguous ``(P, Ro, Wo*C)``.

A task is one output row ``(p, ro)`` and runs in two stages:

A. the input rows of the outer window are reduced element-wise into a row buffer.  The
   inner loop runs over W*C contiguous elements with no data-dependent branches (NaN is
   handled with selects), so LLVM vectorises it;
B. the last axis is reduced window by window from the buffer.  Uniform full windows (the
   interior of a sliding pool) of channels-first rows have their own loop, and for the
   common shapes (kernel 2 or 3, stride 1 or 2, no dilation) the kernel, stride and
   dilation are compile-time constants, so the taps unroll into vector loads; channels-last
   rows vectorise over C.

Branches inside a hot loop stop LLVM from vectorising it.  The max/min and NaN-policy flags
are runtime arguments combined with bitwise operators (``_arith.take``), which vectorise.
Loops index views from zero, so LLVM can drop Numba's negative-index wraparound (which
also blocks vectorisation).  The loops themselves are ``@overload(prefer_literal=True)``
generators: the operation (extreme or sum) and the window shapes are compile-time
constants baked into the loops they emit (:mod:`numbapool._cpu.specialise` lists them).

Scratch is a few rows per chunk of tasks, never a full-size temporary.  The window tables
come from :mod:`numbapool.geometry` via ``SpatialPlan.tables``, a
:class:`~numbapool.plan.WindowTables` named ``tables`` in the kernels.
"""

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from .. import _arith
from .half import compute_zero, load, store
from .specialise import (
    OP_EXTREME, OP_SUM, UNROLLED_INDEXED, UNROLLED_WINDOWS, constant_switch, literal,
    literal_or_none,
)

_take = njit(cache=True)(_arith.take)
_take_indexed = njit(cache=True)(_arith.take_indexed)
_transform = njit(cache=True)(_arith.transform)
_finish = njit(cache=True)(_arith.finish)


# --------------------------------------------------------------------------- task geometry
# The small helpers below are inlined at Numba's level (``inline="always"``): as calls they
# cost more per row than the row's arithmetic.


@njit(cache=True, inline="always")
def _decode_task(t, ro_count, oshape, ov):
    """Split task ``t`` into plane ``p`` (returned) and the outer output multi-index ``ov``."""
    p = t // ro_count
    rem = t - p * ro_count
    for a in range(oshape.shape[0] - 1, -1, -1):
        q = rem // oshape[a]
        ov[a] = rem - q * oshape[a]
        rem = q
    return p


@njit(cache=True, inline="always")
def _window_rows(o_count, ov):
    """Number of input rows in the outer window of output multi-index ``ov``."""
    n = 1
    for a in range(ov.shape[0]):
        n *= o_count[a, ov[a]]
    return n


@njit(cache=True, inline="always")
def _row_of(o_first, o_step, ishape, ov, jv):
    """Flat input row of outer window tap ``jv`` (row-major over the outer axes)."""
    r = 0
    for a in range(ov.shape[0]):
        r = r * ishape[a] + o_first[a, ov[a]] + jv[a] * o_step[a]
    return r


@njit(cache=True, inline="always")
def _advance(jv, o_count, ov):
    """Step the odometer ``jv`` to the next outer tap, last axis fastest (row-major order)."""
    a = jv.shape[0] - 1
    while a >= 0:
        jv[a] += 1
        if jv[a] < o_count[a, ov[a]]:
            return
        jv[a] = 0
        a -= 1


@njit(cache=True, inline="always")
def _window_row(k, jv, o_first, o_step, o_count, ishape, ov):
    """Flat input row of outer window tap ``k``; called with k = 0, 1, 2, ... in turn.

    One outer axis (2-D and 1-D pools) needs no odometer: its rows are evenly spaced, and
    the direct form is markedly faster on short rows.
    """
    if ov.shape[0] == 1:
        return o_first[0, ov[0]] + k * o_step[0]
    if k:
        _advance(jv, o_count, ov)
    return _row_of(o_first, o_step, ishape, ov, jv)


# --------------------------------------------------------------------------- max / min


def _combiner(op):
    """``combine(m, v, is_min, omit)`` for a literal op (extreme or sum)."""
    if op == OP_SUM:
        return njit(lambda m, v, is_min, omit: m + v)
    return njit(lambda m, v, is_min, omit: v if _take(m, v, is_min, omit) else m)


def fold_row(src, buf, first, op, is_min, omit):
    """``buf[e] = combine(buf[e], src[e])`` over a row (a plain load when ``first``)."""


@overload(fold_row, prefer_literal=True)
def _ol_fold_row(src, buf, first, op, is_min, omit):
    combine = _combiner(literal(op, "op"))

    def impl(src, buf, first, op, is_min, omit):
        if first:
            for e in range(buf.shape[0]):
                buf[e] = load(src, e)
        else:
            for e in range(buf.shape[0]):
                buf[e] = combine(buf[e], load(src, e), is_min, omit)

    return impl


def fold_windows(buf, obuf, w0, w1, l_first, l_count, l_step, C, op, is_min, omit):
    """Stage B for output positions ``[w0, w1)`` of any window shape (vectorised over C)."""


@overload(fold_windows, prefer_literal=True)
def _ol_fold_windows(buf, obuf, w0, w1, l_first, l_count, l_step, C, op, is_min, omit):
    combine = _combiner(literal(op, "op"))

    def impl(buf, obuf, w0, w1, l_first, l_count, l_step, C, op, is_min, omit):
        # zero-based loops over views: LLVM then knows every index is non-negative and drops
        # Numba's negative-index wraparound, which otherwise blocks vectorisation
        for wo in range(w0, w1):
            dst = obuf[wo * C:(wo + 1) * C]
            src = buf[l_first[wo] * C:]
            for c in range(C):
                dst[c] = src[c]
            for j in range(1, l_count[wo]):
                tap = src[j * l_step * C:]
                for c in range(C):
                    dst[c] = combine(dst[c], tap[c], is_min, omit)

    return impl


def fold_uniform(buf, obuf, lo, hi, k, s, d, off, op, is_min, omit):
    """Stage B for channels-first uniform windows ``o*s + off + j*d`` (``j < k``), ``lo <= o < hi``.

    With ``k``, ``s`` and ``d`` all compile-time constants (:data:`UNROLLED_WINDOWS`, through
    :data:`_fold_uniform_switch`) the taps unroll into one interleaved vector load per
    output block, far faster than any loop with a runtime tap count; otherwise the loop
    runs tap-major.
    """


@overload(fold_uniform, prefer_literal=True)
def _ol_fold_uniform(buf, obuf, lo, hi, k, s, d, off, op, is_min, omit):
    combine = _combiner(literal(op, "op"))
    shape = [literal_or_none(a) for a in (k, s, d)]

    if None not in shape:
        taps, step, dil = shape

        def unrolled(buf, obuf, lo, hi, k, s, d, off, op, is_min, omit):
            dst = obuf[lo:hi]
            src = buf[lo * step + off:]
            for i in range(hi - lo):
                b = i * step
                m = src[b]
                for j in range(1, taps):
                    m = combine(m, src[b + j * dil], is_min, omit)
                dst[i] = m

        return unrolled

    def impl(buf, obuf, lo, hi, k, s, d, off, op, is_min, omit):
        dst = obuf[lo:hi]
        src = buf[lo * s + off:]
        if (hi - lo) * 8 < k:
            # few long windows (global pools, wide adaptive ones): window-major, since
            # the tap-major loop's view per tap would cost more than the tap's work
            for i in range(hi - lo):
                win = src[i * s:]
                m = win[0]
                for j in range(1, k):
                    m = combine(m, win[j * d], is_min, omit)
                dst[i] = m
            return
        for i in range(hi - lo):
            dst[i] = src[i * s]
        for j in range(1, k):
            tap = src[j * d:]
            for i in range(hi - lo):
                dst[i] = combine(dst[i], tap[i * s], is_min, omit)

    return impl


_WINDOW_PARAMS = ("buf", "obuf", "lo", "hi", "k", "s", "d", "off")
#: fold_uniform with constant taps for the shapes of :data:`UNROLLED_WINDOWS`.
_fold_uniform_switch = constant_switch(
    fold_uniform, _WINDOW_PARAMS + ("op", "is_min", "omit"), ("k", "s", "d"), UNROLLED_WINDOWS)


def fold_last_axis(buf, obuf, tables, C, op, is_min, omit):
    """Stage B: reduce the last axis of ``buf`` into ``obuf``."""


@overload(fold_last_axis, prefer_literal=True)
def _ol_fold_last_axis(buf, obuf, tables, C, op, is_min, omit):
    OP = literal(op, "op")

    def impl(buf, obuf, tables, C, op, is_min, omit):
        l_first, l_count, l_step = tables.l_first, tables.l_count, tables.l_step
        uni = tables.l_uniform
        Wo = l_first.shape[0]
        lo, hi, k, s, off = uni[0], uni[1], uni[2], uni[3], uni[4]
        if C != 1 or hi <= lo:
            fold_windows(buf, obuf, 0, Wo, l_first, l_count, l_step, C, OP, is_min, omit)
            return
        fold_windows(buf, obuf, 0, lo, l_first, l_count, l_step, C, OP, is_min, omit)
        fold_windows(buf, obuf, hi, Wo, l_first, l_count, l_step, C, OP, is_min, omit)
        _fold_uniform_switch(buf, obuf, lo, hi, k, s, l_step, off, OP, is_min, omit)

    return impl


def has_signed_zeros(z):
    """Whether values of ``z``'s type have two zeros (floats), as a compile-time constant."""


@overload(has_signed_zeros)
def _ol_has_signed_zeros(z):
    value = isinstance(z, types.Float)
    return lambda z: value


@njit(cache=True)
def _first_zeros(x, p, obuf, tables, ov, jv, C):
    """Give each zero of ``obuf`` (an output row) the first zero of its window in row-major
    window order.

    Stage A then stage B meet a window's elements column by column, so among equal values
    they keep the first of the first column, not the first in row-major order.  Only zeros,
    whose two signs compare equal, can tell the difference (the indexed kernel tracks rows
    and needs no fix).  A max or min of zero means no element beat zero, and under
    "propagate" no NaN, so the first element equal to zero is the window's winner.  Zero
    results are rare enough that walking their windows again costs little.
    """
    l_first, l_count, l_step = tables.l_first, tables.l_count, tables.l_step
    for i in range(obuf.shape[0]):
        if obuf[i] != 0:
            continue
        wo = i // C
        c = i - wo * C
        jv[:] = 0
        for k in range(_window_rows(tables.o_count, ov)):
            r = _window_row(k, jv, tables.o_first, tables.o_step, tables.o_count,
                            tables.ishape, ov)
            row = x[p, r]
            first = -1
            for j in range(l_count[wo]):
                if load(row, (l_first[wo] + j * l_step) * C + c) == 0:
                    first = (l_first[wo] + j * l_step) * C + c
                    break
            if first >= 0:
                obuf[i] = load(row, first)
                break


@njit(cache=True)
def extreme_tasks(x, out, t0, t1, tables, C, is_min, omit):
    """Max (or min) pooling of tasks ``[t0, t1)``; values only."""
    o_first, o_count, o_step = tables.o_first, tables.o_count, tables.o_step
    ishape, oshape = tables.ishape, tables.oshape
    ro_count = out.shape[1]
    z = compute_zero(x)
    buf = np.full(x.shape[2], z)
    obuf = np.full(out.shape[2], z)
    ov = np.zeros(oshape.shape[0], np.int64)
    jv = np.zeros(oshape.shape[0], np.int64)
    for t in range(t0, t1):
        p = _decode_task(t, ro_count, oshape, ov)
        jv[:] = 0
        for k in range(_window_rows(o_count, ov)):
            src = x[p, _window_row(k, jv, o_first, o_step, o_count, ishape, ov)]
            fold_row(src, buf, k == 0, OP_EXTREME, is_min, omit)
        fold_last_axis(buf, obuf, tables, C, OP_EXTREME, is_min, omit)
        if has_signed_zeros(z):
            # scanned here, so that the call (which passes the tables, with a reference count
            # update per array) happens only for a row holding a zero
            any_zero = False
            for i in range(obuf.shape[0]):
                any_zero |= obuf[i] == 0
            if any_zero:
                _first_zeros(x, p, obuf, tables, ov, jv, C)
        dst = out[p, t - p * ro_count]
        for i in range(obuf.shape[0]):
            store(dst, i, obuf[i])


@njit(parallel=True, cache=True)
def extreme_parallel(x, out, n_chunks, tables, C, is_min, omit):
    n_tasks = x.shape[0] * out.shape[1]
    for k in prange(n_chunks):
        extreme_tasks(x, out, k * n_tasks // n_chunks, (k + 1) * n_tasks // n_chunks,
                      tables, C, is_min, omit)


def fold_indexed_uniform(buf, ibuf, dst, dsti, lo, hi, k, s, d, off, W, is_min, omit):
    """Indexed stage B for channels-first uniform windows (see :func:`fold_uniform`).

    ``ibuf`` holds the input row of each buffered winner; the flat index of a candidate is
    ``row * W + column``.  Constant ``k``, ``s``, ``d`` (:data:`UNROLLED_INDEXED`, through
    :data:`_fold_indexed_switch`) unroll the taps, as in fold_uniform.
    """


@overload(fold_indexed_uniform, prefer_literal=True)
def _ol_fold_indexed_uniform(buf, ibuf, dst, dsti, lo, hi, k, s, d, off, W, is_min, omit):
    shape = [literal_or_none(a) for a in (k, s, d)]
    taps, step, dil = shape if None not in shape else (None, None, None)

    def impl(buf, ibuf, dst, dsti, lo, hi, k, s, d, off, W, is_min, omit):
        kk = k if taps is None else taps
        ss = s if step is None else step
        dd = d if dil is None else dil
        col0 = lo * ss + off
        src = buf[col0:]
        isrc = ibuf[col0:]
        vals = dst[lo:hi]
        inds = dsti[lo:hi]
        for i in range(hi - lo):
            b = i * ss
            m = src[b]
            mi = isrc[b] * W + col0 + b
            for j in range(1, kk):
                v = src[b + j * dd]
                vi = isrc[b + j * dd] * W + col0 + b + j * dd
                take = _take_indexed(m, mi, v, vi, is_min, omit)
                m = v if take else m
                mi = vi if take else mi
            store(vals, i, m)
            inds[i] = mi

    return impl


#: fold_indexed_uniform with constant taps for the shapes of :data:`UNROLLED_INDEXED`.
_fold_indexed_switch = constant_switch(
    fold_indexed_uniform, ("buf", "ibuf", "dst", "dsti", "lo", "hi", "k", "s", "d", "off", "W",
                           "is_min", "omit"), ("k", "s", "d"), UNROLLED_INDEXED)


@njit(cache=True)
def extreme_indexed_tasks(x, out, idx, t0, t1, tables, C, is_min, omit):
    """Max/min pooling of tasks ``[t0, t1)`` with the flat spatial index of each winner.

    Stage A visits rows in increasing flat index, so a plain "strictly better" keeps the
    first of equal values and only the winner's row needs keeping; stage B compares
    candidates from different columns (and rows), where the smaller flat index must win
    ties explicitly.
    """
    o_first, o_count, o_step = tables.o_first, tables.o_count, tables.o_step
    ishape, oshape = tables.ishape, tables.oshape
    l_first, l_count, l_step = tables.l_first, tables.l_count, tables.l_step
    uni = tables.l_uniform
    WC = x.shape[2]
    W = WC // C
    Wo = l_first.shape[0]
    ro_count = out.shape[1]
    z = compute_zero(x)
    buf = np.full(WC, z)
    ibuf = np.zeros(WC, np.int64)
    acc = np.full(C, z)
    iacc = np.zeros(C, np.int64)
    ov = np.zeros(oshape.shape[0], np.int64)
    jv = np.zeros(oshape.shape[0], np.int64)
    lo, hi, k, s, off = uni[0], uni[1], uni[2], uni[3], uni[4]
    if C != 1:
        lo = hi = 0
    for t in range(t0, t1):
        p = _decode_task(t, ro_count, oshape, ov)
        jv[:] = 0
        for kr in range(_window_rows(o_count, ov)):
            r = _window_row(kr, jv, o_first, o_step, o_count, ishape, ov)
            src = x[p, r]
            if kr == 0:
                for e in range(WC):
                    buf[e] = load(src, e)
                    ibuf[e] = r
            else:
                for e in range(WC):
                    v = load(src, e)
                    m = buf[e]
                    # a NaN never displaces an earlier NaN: the first NaN's index is kept
                    take = _take(m, v, is_min, omit) & ((m == m) | (v == v))
                    buf[e] = v if take else buf[e]
                    ibuf[e] = r if take else ibuf[e]
        ro = t - p * ro_count
        dst = out[p, ro]
        dsti = idx[p, ro]
        if hi > lo:
            _fold_indexed_switch(buf, ibuf, dst, dsti, lo, hi, k, s, l_step, off, W, is_min,
                                 omit)
        for wo in range(Wo):
            if lo <= wo < hi:
                continue
            col0 = l_first[wo]
            src_v = buf[col0 * C:]
            src_i = ibuf[col0 * C:]
            for c in range(C):
                acc[c] = src_v[c]
                iacc[c] = src_i[c] * W + col0
            for j in range(1, l_count[wo]):
                col = col0 + j * l_step
                tap_v = src_v[j * l_step * C:]
                tap_i = src_i[j * l_step * C:]
                for c in range(C):
                    v = tap_v[c]
                    vi = tap_i[c] * W + col
                    take = _take_indexed(acc[c], iacc[c], v, vi, is_min, omit)
                    acc[c] = v if take else acc[c]
                    iacc[c] = vi if take else iacc[c]
            vals = dst[wo * C:]
            inds = dsti[wo * C:]
            for c in range(C):
                store(vals, c, acc[c])
                inds[c] = iacc[c]


@njit(parallel=True, cache=True)
def extreme_indexed_parallel(x, out, idx, n_chunks, tables, C, is_min, omit):
    n_tasks = x.shape[0] * out.shape[1]
    for k in prange(n_chunks):
        extreme_indexed_tasks(x, out, idx, k * n_tasks // n_chunks,
                              (k + 1) * n_tasks // n_chunks, tables, C, is_min, omit)


# --------------------------------------------------------------------------- sums


@njit(cache=True, inline="always")
def _rows_sum(x, p, buf, nbuf, tables, ov, jv, acc_zero, transform, power, eps, omit):
    """Stage A: element-wise sum (of transformed values) of the outer window's rows.

    Under ``omit`` NaNs add nothing and are counted in ``nbuf``.
    """
    o_first, o_count, o_step = tables.o_first, tables.o_count, tables.o_step
    ishape = tables.ishape
    jv[:] = 0
    plain = transform == _arith.T_IDENTITY and not omit
    if not plain:
        buf[:] = acc_zero
        nbuf[:] = 0
    n_rows = _window_rows(o_count, ov)
    if plain and n_rows == 3 and ov.shape[0] == 1:
        # the 3-row windows of 3x3 pools in one pass: 3 loads and a store per element,
        # where a pass per row makes 5 loads and 3 stores
        r0 = o_first[0, ov[0]]
        s = o_step[0]
        a, b, c = x[p, r0], x[p, r0 + s], x[p, r0 + 2 * s]
        for e in range(buf.shape[0]):
            buf[e] = (acc_zero + load(a, e)) + load(b, e) + load(c, e)
        return
    for k in range(n_rows):
        src = x[p, _window_row(k, jv, o_first, o_step, o_count, ishape, ov)]
        if plain and k == 0:  # the first row is loaded, not added to zeros: one pass less
            for e in range(buf.shape[0]):
                buf[e] = load(src, e)
        elif omit:
            for e in range(buf.shape[0]):
                v = _transform(load(src, e), transform, power, eps)
                isnan = v != v
                buf[e] += acc_zero if isnan else v
                nbuf[e] += isnan
        elif transform == _arith.T_IDENTITY:  # the hot path: a plain vectorised add
            for e in range(buf.shape[0]):
                buf[e] += load(src, e)
        else:
            for e in range(buf.shape[0]):
                buf[e] += _transform(load(src, e), transform, power, eps)


@njit(cache=True)
def sum_tasks(x, out, t0, t1, tables, C, acc_zero, transform, power, eps, finish, omit,
              divisor_override):
    """Window sums, turned into means / Lp norms / GeM by ``finish``.

    The divisor of a window is ``divisor_override`` when non-zero, else the product of the
    per-axis divisor tables (``o_div``, ``l_div``).  Under ``omit`` NaNs are skipped, the
    divisor loses one per NaN (unless overridden) and a window of only NaNs gives NaN.
    """
    o_count, oshape, l_count = tables.o_count, tables.oshape, tables.l_count
    o_div, l_div = tables.o_div, tables.l_div
    ro_count = out.shape[1]
    Wo = l_count.shape[0]
    buf = np.full(x.shape[2], acc_zero)
    obuf = np.full(out.shape[2], acc_zero)
    n_nan = x.shape[2] if omit else 0  # NaN counts are only kept under omit
    nbuf = np.zeros(n_nan, np.int64)
    nobuf = np.zeros(out.shape[2] if omit else 0, np.int64)
    ov = np.zeros(oshape.shape[0], np.int64)
    jv = np.zeros(oshape.shape[0], np.int64)
    nan = np.float64(np.nan)
    mean_only = finish == _arith.F_MEAN and not omit
    # means multiply by float64 reciprocals, which are much cheaper than a division per
    # output.  For float32 data the float64 product almost always rounds to the same value
    # as the quotient; for float64 it is within 2 ulp of it.
    l_inv = 1.0 / l_div
    for t in range(t0, t1):
        p = _decode_task(t, ro_count, oshape, ov)
        _rows_sum(x, p, buf, nbuf, tables, ov, jv, acc_zero, transform, power, eps, omit)
        fold_last_axis(buf, obuf, tables, C, OP_SUM, False, False)
        if omit:
            fold_last_axis(nbuf, nobuf, tables, C, OP_SUM, False, False)
        outer_div = 1.0
        outer_taps = 1
        for a in range(ov.shape[0]):
            outer_div *= o_div[a, ov[a]]
            outer_taps *= o_count[a, ov[a]]
        dst = out[p, t - p * ro_count]
        if mean_only and divisor_override != 0.0:
            for i in range(obuf.shape[0]):
                store(dst, i, obuf[i] / divisor_override)
        elif mean_only and C == 1:
            outer_inv = 1.0 / outer_div
            for wo in range(Wo):
                store(dst, wo, obuf[wo] * (outer_inv * l_inv[wo]))
        elif mean_only:
            outer_inv = 1.0 / outer_div
            for wo in range(Wo):
                inv = outer_inv * l_inv[wo]
                vals = dst[wo * C:]
                sums = obuf[wo * C:]
                for c in range(C):
                    store(vals, c, sums[c] * inv)
        else:
            for wo in range(Wo):
                d = divisor_override if divisor_override != 0.0 else outer_div * l_div[wo]
                taps = outer_taps * l_count[wo]
                for c in range(C):
                    i = wo * C + c
                    if omit and nobuf[i] == taps:
                        store(dst, i, nan)
                    elif omit and divisor_override == 0.0:
                        store(dst, i, _finish(obuf[i], d - nobuf[i], finish, power))
                    else:
                        store(dst, i, _finish(obuf[i], d, finish, power))


@njit(parallel=True, cache=True)
def sum_parallel(x, out, n_chunks, tables, C, acc_zero, transform, power, eps, finish, omit,
                 divisor_override):
    n_tasks = x.shape[0] * out.shape[1]
    for k in prange(n_chunks):
        sum_tasks(x, out, k * n_tasks // n_chunks, (k + 1) * n_tasks // n_chunks,
                  tables, C, acc_zero, transform, power, eps, finish, omit, divisor_override)


# --------------------------------------------------------------------------- whole planes


@njit(cache=True, fastmath={"reassoc"})
def plane_mean_tasks(x, out, t0, t1, acc_zero):
    """``out[p] = mean(x[p])`` for planes ``[t0, t1)`` of a C-contiguous ``(P, n)`` view.

    Global average pooling of channels-first data, where a plane is one contiguous run:
    ``reassoc`` (and no other fast-math flag: NaN and infinity keep their meaning) lets
    LLVM keep several partial sums in vector registers, which the row-by-row stage A/B
    path cannot.
    """
    n = x.shape[1]
    inv = 1.0 / n
    for p in range(t0, t1):
        row = x[p]
        s = acc_zero
        for e in range(n):
            s += load(row, e)
        store(out, p, s * inv)


@njit(parallel=True, cache=True)
def plane_mean_parallel(x, out, n_chunks, acc_zero):
    P = x.shape[0]
    for k in prange(n_chunks):
        plane_mean_tasks(x, out, k * P // n_chunks, (k + 1) * P // n_chunks, acc_zero)
