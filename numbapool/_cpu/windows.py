"""CPU kernels for sliding, adaptive and global window pooling over N-D arrays.

Every spatial pool is run on a canonical view (see ``numbapool/_plan.py``):

* input  ``x``   C-contiguous ``(P, R, W*C)``: P independent planes, R rows (the product of
  the outer spatial axes), each row W positions of the last spatial axis times C channels
  (C == 1 for channels-first);
* output ``out`` C-contiguous ``(P, Ro, Wo*C)``.

A task is one output row ``(p, ro)`` and runs in two stages:

A. the input rows of the outer window are reduced element-wise into a row buffer.  The
   inner loop runs over W*C contiguous elements with no data-dependent branches (NaN is
   handled with selects), so LLVM vectorises it;
B. the last axis is reduced window by window from the buffer into the output row.

Scratch is one row per chunk of tasks, never a full-size temporary.  Window positions
come from the per-axis tables of :mod:`numbapool.geometry` (``first``, ``count``,
``step``); the outer tables are stacked, padded to a common length.
"""

import numpy as np
from numba import njit, prange

from .half import compute_zero, load, store

from .. import _arith

_take = njit(cache=True)(_arith.take)
_take_indexed = njit(cache=True)(_arith.take_indexed)
_transform = njit(cache=True)(_arith.transform)
_finish = njit(cache=True)(_arith.finish)
T_IDENTITY = _arith.T_IDENTITY


@njit(cache=True)
def _decode_task(t, ro_count, oshape, ov):
    """Split task ``t`` into plane ``p`` and the outer output multi-index (into ``ov``)."""
    p = t // ro_count
    rem = t - p * ro_count
    for a in range(oshape.shape[0] - 1, -1, -1):
        q = rem // oshape[a]
        ov[a] = rem - q * oshape[a]
        rem = q
    return p


@njit(cache=True)
def _window_rows(o_first, o_count, o_step, ishape, ov):
    """Number of input rows in the outer window of output multi-index ``ov``."""
    n = 1
    for a in range(ov.shape[0]):
        n *= o_count[a, ov[a]]
    return n


@njit(cache=True)
def _row_of(o_first, o_step, ishape, ov, jv):
    """Flat input row index of window tap ``jv`` (row-major over the outer axes)."""
    r = 0
    for a in range(ov.shape[0]):
        r = r * ishape[a] + o_first[a, ov[a]] + jv[a] * o_step[a]
    return r


@njit(cache=True)
def _advance(jv, o_count, ov):
    """Step the odometer ``jv`` to the next outer tap, last axis fastest."""
    a = jv.shape[0] - 1
    while a >= 0:
        jv[a] += 1
        if jv[a] < o_count[a, ov[a]]:
            return
        jv[a] = 0
        a -= 1


# --------------------------------------------------------------------------- max / min


@njit(cache=True)
def extreme_tasks(x, out, t0, t1, o_first, o_count, o_step, ishape, oshape,
                  l_first, l_count, l_step, channels, is_min, omit):
    """Max (or min) pooling of tasks ``[t0, t1)``; values only."""
    WC = x.shape[2]
    ro_count = out.shape[1]
    Wo = l_first.shape[0]
    C = channels
    z = compute_zero(x)
    buf = np.full(WC, z)
    acc = np.full(C, z)
    ov = np.zeros(oshape.shape[0], np.int64)
    jv = np.zeros(oshape.shape[0], np.int64)
    for t in range(t0, t1):
        p = _decode_task(t, ro_count, oshape, ov)
        rows = _window_rows(o_first, o_count, o_step, ishape, ov)
        jv[:] = 0
        src = x[p, _row_of(o_first, o_step, ishape, ov, jv)]
        for e in range(WC):
            buf[e] = load(src, e)
        for _ in range(1, rows):
            _advance(jv, o_count, ov)
            src = x[p, _row_of(o_first, o_step, ishape, ov, jv)]
            for e in range(WC):
                v = load(src, e)
                m = buf[e]
                buf[e] = v if _take(m, v, is_min, omit) else m
        dst = out[p, t - p * ro_count]
        for wo in range(Wo):
            base = l_first[wo] * C
            for c in range(C):
                acc[c] = buf[base + c]
            for j in range(1, l_count[wo]):
                b = base + j * l_step * C
                for c in range(C):
                    v = buf[b + c]
                    m = acc[c]
                    acc[c] = v if _take(m, v, is_min, omit) else m
            for c in range(C):
                store(dst, wo * C + c, acc[c])


@njit(parallel=True, cache=True)
def extreme_parallel(x, out, n_chunks, o_first, o_count, o_step, ishape, oshape,
                     l_first, l_count, l_step, channels, is_min, omit):
    n_tasks = x.shape[0] * out.shape[1]
    for k in prange(n_chunks):
        extreme_tasks(x, out, k * n_tasks // n_chunks, (k + 1) * n_tasks // n_chunks,
                      o_first, o_count, o_step, ishape, oshape,
                      l_first, l_count, l_step, channels, is_min, omit)


@njit(cache=True)
def extreme_indexed_tasks(x, out, idx, t0, t1, o_first, o_count, o_step, ishape, oshape,
                          l_first, l_count, l_step, channels, is_min, omit):
    """Max (or min) pooling with the flat spatial index of each winner."""
    WC = x.shape[2]
    C = channels
    W = WC // C
    ro_count = out.shape[1]
    Wo = l_first.shape[0]
    z = compute_zero(x)
    buf = np.full(WC, z)
    ibuf = np.zeros(WC, np.int64)
    acc = np.full(C, z)
    iacc = np.zeros(C, np.int64)
    ov = np.zeros(oshape.shape[0], np.int64)
    jv = np.zeros(oshape.shape[0], np.int64)
    for t in range(t0, t1):
        p = _decode_task(t, ro_count, oshape, ov)
        rows = _window_rows(o_first, o_count, o_step, ishape, ov)
        jv[:] = 0
        for k in range(rows):
            if k:
                _advance(jv, o_count, ov)
            r = _row_of(o_first, o_step, ishape, ov, jv)
            src = x[p, r]
            for e in range(WC):
                v = load(src, e)
                vi = r * W + e // C
                if k == 0 or _take_indexed(buf[e], ibuf[e], v, vi, is_min, omit):
                    buf[e] = v
                    ibuf[e] = vi
        ro = t - p * ro_count
        dst = out[p, ro]
        dsti = idx[p, ro]
        for wo in range(Wo):
            for j in range(l_count[wo]):
                b = (l_first[wo] + j * l_step) * C
                for c in range(C):
                    if j == 0 or _take_indexed(acc[c], iacc[c], buf[b + c], ibuf[b + c], is_min, omit):
                        acc[c] = buf[b + c]
                        iacc[c] = ibuf[b + c]
            for c in range(C):
                store(dst, wo * C + c, acc[c])
                dsti[wo * C + c] = iacc[c]


@njit(parallel=True, cache=True)
def extreme_indexed_parallel(x, out, idx, n_chunks, o_first, o_count, o_step, ishape, oshape,
                             l_first, l_count, l_step, channels, is_min, omit):
    n_tasks = x.shape[0] * out.shape[1]
    for k in prange(n_chunks):
        extreme_indexed_tasks(x, out, idx, k * n_tasks // n_chunks, (k + 1) * n_tasks // n_chunks,
                              o_first, o_count, o_step, ishape, oshape,
                              l_first, l_count, l_step, channels, is_min, omit)


# --------------------------------------------------------------------------- sums


@njit(cache=True)
def sum_tasks(x, out, t0, t1, o_first, o_count, o_step, o_div, ishape, oshape,
              l_first, l_count, l_step, l_div, channels, acc_zero,
              transform, power, eps, finish, omit, divisor_override):
    """Window sums, turned into means / Lp norms / GeM by ``finish``.

    The divisor of a window is ``divisor_override`` when non-zero, else the product of the
    per-axis divisor tables (``o_div``, ``l_div``); under ``omit`` NaNs are skipped, the
    divisor loses one per NaN (unless overridden) and a window of only NaNs gives NaN.
    """
    WC = x.shape[2]
    C = channels
    ro_count = out.shape[1]
    Wo = l_first.shape[0]
    buf = np.full(WC, acc_zero)
    acc = np.full(C, acc_zero)
    nbuf = np.zeros(WC if omit else 0, np.int64)
    nacc = np.zeros(C, np.int64)
    nan = np.float64(np.nan)
    ov = np.zeros(oshape.shape[0], np.int64)
    jv = np.zeros(oshape.shape[0], np.int64)
    for t in range(t0, t1):
        p = _decode_task(t, ro_count, oshape, ov)
        rows = _window_rows(o_first, o_count, o_step, ishape, ov)
        outer_div = 1.0
        outer_taps = 1
        for a in range(ov.shape[0]):
            outer_div *= o_div[a, ov[a]]
            outer_taps *= o_count[a, ov[a]]
        jv[:] = 0
        buf[:] = acc_zero
        if omit:
            nbuf[:] = 0
        for k in range(rows):
            if k:
                _advance(jv, o_count, ov)
            src = x[p, _row_of(o_first, o_step, ishape, ov, jv)]
            if omit:
                for e in range(WC):
                    v = _transform(load(src, e), transform, power, eps)
                    isnan = v != v
                    buf[e] += acc_zero if isnan else v
                    nbuf[e] += isnan
            elif transform == T_IDENTITY:  # the hot path: a plain vectorised add
                for e in range(WC):
                    buf[e] += load(src, e)
            else:
                for e in range(WC):
                    buf[e] += _transform(load(src, e), transform, power, eps)
        dst = out[p, t - p * ro_count]
        for wo in range(Wo):
            acc[:] = acc_zero
            nacc[:] = 0
            for j in range(l_count[wo]):
                b = (l_first[wo] + j * l_step) * C
                for c in range(C):
                    acc[c] += buf[b + c]
                if omit:
                    for c in range(C):
                        nacc[c] += nbuf[b + c]
            divisor = divisor_override if divisor_override != 0.0 else outer_div * l_div[wo]
            taps = outer_taps * l_count[wo]
            for c in range(C):
                d = divisor
                if omit:
                    if nacc[c] == taps:
                        store(dst, wo * C + c, nan)
                        continue
                    if divisor_override == 0.0:
                        d = divisor - nacc[c]
                store(dst, wo * C + c, _finish(acc[c], d, finish, power))


@njit(parallel=True, cache=True)
def sum_parallel(x, out, n_chunks, o_first, o_count, o_step, o_div, ishape, oshape,
                 l_first, l_count, l_step, l_div, channels, acc_zero,
                 transform, power, eps, finish, omit, divisor_override):
    n_tasks = x.shape[0] * out.shape[1]
    for k in prange(n_chunks):
        sum_tasks(x, out, k * n_tasks // n_chunks, (k + 1) * n_tasks // n_chunks,
                  o_first, o_count, o_step, o_div, ishape, oshape,
                  l_first, l_count, l_step, l_div, channels, acc_zero,
                  transform, power, eps, finish, omit, divisor_override)
