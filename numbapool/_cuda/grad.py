"""CUDA kernels of the gradients (:mod:`numbapool.grad`) and of :func:`numbapool.max_unpool`.

The entry points that launch them are in :mod:`numbapool._cuda.backend`
(``run_index_scatter``, ``run_window_grad``, ``run_token_grad`` and the factor steps); this
module has the kernels, their small host tables and the launch lists, as
:mod:`numbapool._cuda.blocks` has for block reduction.  Each kernel is a grid-stride loop
with a thread per item; the factories return a cached closure per combination of their
compile-time flags.

* Index scatter (max/min gradients, unpooling): the result is zeroed, then a thread per
  source element adds its value at its index with ``cuda.atomic.add`` (gradients, in a
  float32 or float64 buffer) or stores it (unpooling).  Atomic adds land in no fixed order,
  so where several outputs share a winner the sum may differ in its last bits from run to
  run; of unpooled values that share an index any one may win (as on PyTorch's CUDA).
  Indices are checked by a separate kernel first (:func:`bad_index_kernel`), so that nothing
  is written when one is out of range.
* Window gradient (the averages, Lp): a gather, a thread per input element, which sums
  ``coef * row_scale * col_scale`` over the windows that hold it, in window order, so the
  result does not depend on the launch.  Per axis, the windows holding position ``i`` lie
  in ``[lo[i], hi[i]]`` (host tables, :func:`window_host_table`); each is checked for holding
  ``i`` (its taps are ``first + j * step``, ``j < count``), which makes padding, dilation,
  ``ceil_mode``, adaptive and global windows all exact.  The same tables drive the
  ``"omit"`` coefficients (a thread per output counts its window's NaNs).
* Elementwise steps of the factors: the Lp coefficients, the GeM gradient, and the
  finishing of a result (NaN positions zeroed, rounded to the result's dtype; float16 is
  accumulated in float32).
* Tokens: a thread per (sequence, feature) makes the CPU kernel's two passes
  (:mod:`numbapool._cpu.token_grad_kernels`) over the sequence's tokens in order; the
  gradients of the weights and scores, sums over the features, take a second kernel with a
  thread per token position, which reads the per-(sequence, mode, feature) factors the first
  left in a buffer.  No atomics: the results are deterministic.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

from .. import _arith
from ..token_plan import (
    M_ATTENTION, M_CLS, M_LAST, M_MAX, M_MEAN, M_MEAN_SQRT_LEN, M_MIN, M_SUM, M_WEIGHTED,
    M_WEIGHTED_MEAN,
)
from . import compat
from .compat import cuda, jit
from .tokens import K_MASK, K_OFFSETS

_ieee_take = jit(device=True)(_arith.ieee_take)

#: Columns of a row of the window table (one row per spatial axis): input and output
#: sizes, the step between taps, and where the axis's ``first``, ``count`` and ``lo``
#: entries start in the table (``hi`` follows ``lo``).
T_IN, T_OUT, T_STEP, T_FIRST, T_COUNT, T_LO = range(6)
_ROW = 6


def result_type(dtype):
    """The Numba type a result of ``dtype`` is rounded to before it is stored (float32 for
    float16, whose stores round again)."""
    dtype = np.dtype(dtype)
    return numba.float32 if dtype == np.float16 else numba.from_dtype(dtype)


def _name(prefix, *flags):
    return "_".join([prefix, *(str(f) for f in flags if f)])


# --------------------------------------------------------------------------- index scatter


@jit(cache=True)
def zero_kernel(a):
    """``a[:] = 0`` (``a`` flat)."""
    i = cuda.grid(1)
    while i < a.size:
        a[i] = 0
        i += cuda.gridsize(1)


@jit(cache=True)
def bad_index_kernel(idx, n, bad):
    """``bad[0] = 1`` when an entry of ``idx`` (flat) lies outside ``[0, n)``."""
    i = cuda.grid(1)
    while i < idx.size:
        j = numba.int64(idx[i])
        if j < 0 or j >= n:
            bad[0] = 1
        i += cuda.gridsize(1)


@functools.cache
def scatter_kernel(accumulate, wt):
    """``dst[p, idx[p, o, c], c]`` receives ``src[p, o, c]`` (flat arrays, ``So`` source and
    ``Si`` result positions, ``C`` channels): added in type ``wt`` with an atomic add
    (``accumulate``), else stored.  Out-of-range indices are skipped."""
    ACC, WT = accumulate, wt

    def kernel(src, idx, dst, So, Si, C):
        i = cuda.grid(1)
        while i < src.size:
            j = numba.int64(idx[i])
            if 0 <= j < Si:
                c = i % C
                d = (i // (So * C) * Si + j) * C + c
                if ACC:
                    cuda.atomic.add(dst, d, WT(src[i]))
                else:
                    dst[d] = src[i]
            i += cuda.gridsize(1)

    kernel.__name__ = kernel.__qualname__ = _name("scatter_kernel", accumulate and "add", wt)
    return jit(cache=True)(kernel)


@functools.cache
def finish_kernel(zero_nans, rt):
    """``out[i] = 0`` where ``zero_nans`` and ``x[i]`` is NaN, else ``work[i]`` rounded to
    ``rt`` (flat arrays; ``out`` may be ``work``)."""
    ZERO, RT = zero_nans, rt

    def kernel(work, out, x):
        i = cuda.grid(1)
        while i < out.size:
            if ZERO and x[i] != x[i]:
                out[i] = RT(0)
            else:
                out[i] = RT(work[i])
            i += cuda.gridsize(1)

    kernel.__name__ = kernel.__qualname__ = _name("finish_kernel", zero_nans and "nan", rt)
    return jit(cache=True)(kernel)


# --------------------------------------------------------------------------- window tables


def window_host_table(axes):
    """The int64 window table of ``axes`` (:class:`~numbapool.geometry.AxisWindows`): a row
    of :data:`_ROW` entries per axis (see ``T_*``), then per axis the windows' ``first`` and
    ``count`` and, per input position, ``lo`` and ``hi``: the first and last window holding
    it (``lo > hi`` when none does)."""
    head = np.zeros((len(axes), _ROW), np.int64)
    parts = []
    at = head.size
    for a, ax in enumerate(axes):
        first, count = (t.astype(np.int64) for t in ax.arrays()[:2])
        L, O = ax.in_size, ax.out_size
        window = np.repeat(np.arange(O, dtype=np.int64), count)
        tap = np.arange(window.size, dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
        pos = first[window] + tap * ax.step
        lo = np.full(L, O, np.int64)
        hi = np.full(L, -1, np.int64)
        np.minimum.at(lo, pos, window)
        np.maximum.at(hi, pos, window)
        head[a] = (L, O, ax.step, at, at + O, at + 2 * O)
        parts += [first, count, lo, hi]
        at += 2 * O + 2 * L
    return np.concatenate([head.ravel()] + parts)


#: Window tables kept on each device (least recently used dropped first).
_TABLES = compat.DeviceTables(256)


def window_table(axes, stream=0):
    """:func:`window_host_table` on the current device, copied there once per geometry."""
    return _TABLES.get(tuple(a.key for a in axes), lambda: window_host_table(axes), stream)


@jit(device=True)
def _holds(t, a, o, i):
    """Whether window ``o`` of axis ``a`` has a tap at position ``i``."""
    row = a * _ROW
    d = i - t[t[row + T_FIRST] + o]
    step = t[row + T_STEP]
    k = d // step
    return d >= 0 and d == k * step and k < t[t[row + T_COUNT] + o]


@functools.cache
def window_grad_kernel(n_axes, zero_nans, power, wt, rt):
    """The transpose of a window sum, a thread per input element (flat index ``i`` over
    ``(P, *spatial, C)``): the sum over the windows ``o`` holding it of
    ``coef[p, *o, c] * scales[ro] * scales[Ro + o_last]`` (``ro``: the flat index of the
    outer axes' windows), accumulated in ``wt``; 0 where ``zero_nans`` and ``x`` is NaN;
    times ``x ** pw`` (in float64) with ``power``; stored rounded to ``rt``.

    Arguments: ``coef``, ``dst``, ``x`` (flat), the window table ``t``, ``scales``,
    ``C``, ``Ro``, ``pw``.
    """
    N, ZERO, POWER, WT, RT = n_axes, zero_nans, power, wt, rt

    def kernel(coef, dst, x, t, scales, C, Ro, pw):
        pos = cuda.local.array(N, numba.int64)
        lo = cuda.local.array(N, numba.int64)
        hi = cuda.local.array(N, numba.int64)
        o = cuda.local.array(N, numba.int64)
        i = cuda.grid(1)
        while i < dst.size:
            q = i // C
            c = i - q * C
            empty = False
            for a in range(N - 1, -1, -1):
                row = a * _ROW
                L = t[row + T_IN]
                r = q // L
                pos[a] = q - r * L
                q = r
                lo[a] = t[t[row + T_LO] + pos[a]]
                hi[a] = t[t[row + T_LO] + L + pos[a]]
                o[a] = lo[a]
                empty = empty or lo[a] > hi[a]
            acc = WT(0)
            while not empty:  # odometer over the candidate windows, last axis fastest
                held = True
                flat = q
                ro = 0
                for a in range(N):
                    held = held and _holds(t, a, o[a], pos[a])
                    flat = flat * t[a * _ROW + T_OUT] + o[a]
                    if a < N - 1:
                        ro = ro * t[a * _ROW + T_OUT] + o[a]
                if held:
                    acc += WT(coef[flat * C + c]) * (scales[ro] * scales[Ro + o[N - 1]])
                a = N - 1
                while a >= 0:
                    o[a] += 1
                    if o[a] <= hi[a]:
                        break
                    o[a] = lo[a]
                    a -= 1
                empty = a < 0
            if ZERO and x[i] != x[i]:
                acc = WT(0)
            if POWER:
                dst[i] = RT(numba.float64(acc) * numba.float64(x[i]) ** pw)
            else:
                dst[i] = RT(acc)
            i += cuda.gridsize(1)

    kernel.__name__ = kernel.__qualname__ = _name(
        "window_grad_kernel", f"n{n_axes}", zero_nans and "nan", power and "pow", wt, rt)
    return jit(cache=True)(kernel)


@functools.cache
def mean_coef_kernel(n_axes, wt):
    """The ``"omit"`` coefficients of a mean, a thread per output (flat ``i`` over
    ``(P, *out, C)``): with ``valid`` the window's divisor (the product of the per-axis
    ``divs``, each axis's after the previous ones') less its NaNs in ``x``, ``coef[i] =
    g[i] / d`` with ``d = override or valid``, 0 where ``valid <= 0``; float64, stored
    as ``wt``."""
    N, WT = n_axes, wt

    def kernel(g, x, coef, t, divs, C, override):
        o = cuda.local.array(N, numba.int64)
        j = cuda.local.array(N, numba.int64)
        i = cuda.grid(1)
        while i < coef.size:
            q = i // C
            c = i - q * C
            for a in range(N - 1, -1, -1):
                O = t[a * _ROW + T_OUT]
                r = q // O
                o[a] = q - r * O
                q = r
                j[a] = 0
            base = 1.0
            at = 0
            for a in range(N):
                base *= divs[at + o[a]]
                at += t[a * _ROW + T_OUT]
            nans = 0
            more = True
            while more:  # odometer over the window's taps
                flat = q
                for a in range(N):
                    row = a * _ROW
                    flat = (flat * t[row + T_IN] + t[t[row + T_FIRST] + o[a]]
                            + j[a] * t[row + T_STEP])
                v = x[flat * C + c]
                if v != v:
                    nans += 1
                a = N - 1
                while a >= 0:
                    j[a] += 1
                    if j[a] < t[t[a * _ROW + T_COUNT] + o[a]]:
                        break
                    j[a] = 0
                    a -= 1
                more = a >= 0
            valid = base - nans
            d = override if override != 0.0 else valid
            coef[i] = WT(numba.float64(g[i]) / d) if valid > 0.0 else WT(0)
            i += cuda.gridsize(1)

    kernel.__name__ = kernel.__qualname__ = _name("mean_coef_kernel", f"n{n_axes}", wt)
    return jit(cache=True)(kernel)


@jit(device=True)
def _power_scale(y, p):
    """``y ** (1 - p)`` for a positive pooled value, NaN for NaN, else 0 (a window of
    non-positive sum passes nothing)."""
    if y > 0.0:
        return y ** (1.0 - p)
    return math.nan if y != y else 0.0


@jit(cache=True)
def lp_coef_kernel(g, y, coef, p):
    """``coef = g * y ** (1 - p)`` (see :func:`_power_scale`), float64, flat."""
    i = cuda.grid(1)
    while i < coef.size:
        coef[i] = numba.float64(g[i]) * _power_scale(numba.float64(y[i]), p)
        i += cuda.gridsize(1)


@functools.cache
def gem_grad_kernel(rt):
    """The GeM gradient, a thread per input element of ``P`` planes of ``size`` positions
    and ``C`` channels: ``g * y ** (1 - p) / size * max(x, eps) ** (p - 1)`` of the
    element's plane where ``x >= eps``, else 0; float64, stored rounded to ``rt``."""
    RT = rt

    def kernel(g, y, x, dst, size, C, p, eps):
        i = cuda.grid(1)
        while i < dst.size:
            c = i % C
            k = i // (size * C) * C + c
            v = numba.float64(x[i])
            res = 0.0
            if v >= eps:
                coef = numba.float64(g[k]) * _power_scale(numba.float64(y[k]), p) / size
                res = coef * (max(v, eps) ** (p - 1.0) if p != 1.0 else 1.0)
            dst[i] = RT(res)
            i += cuda.gridsize(1)

    kernel.__name__ = kernel.__qualname__ = _name("gem_grad_kernel", rt)
    return jit(cache=True)(kernel)


# --------------------------------------------------------------------------- tokens


@jit(device=True)
def _take(m, v, is_min, omit):
    """The CPU kernel's rule: :func:`numbapool._arith.ieee_take`, except that under
    propagate the first NaN stays the winner."""
    if m != m and not omit:
        return False
    return _ieee_take(m, v, is_min, omit)


@jit(device=True)
def _span(kind, offs, b, L):
    """``(start, end)``: the positions (padded) or rows (packed) of sequence ``b``."""
    if kind == K_OFFSETS:
        return numba.int64(offs[b]), numba.int64(offs[b + 1])
    return numba.int64(0), numba.int64(L)


@jit(device=True)
def _is_token(kind, mask, b, l):
    return kind != K_MASK or mask[b, l] != 0


@jit(device=True)
def _coefficient(c, j, k, coefs, n_coef):
    """Token ``j`` (coefficient index ``k``) under mode ``c``: ``coefs`` holds the scaled
    weights then the shifted scores."""
    if c == M_WEIGHTED_MEAN:
        return numba.float64(j + 1)
    if c == M_WEIGHTED:
        return coefs[k]
    if c == M_ATTENTION:
        return math.exp(coefs[n_coef + k])
    return 1.0


@functools.cache
def token_grad_kernel(codes, omit, kind, ratio, rt):
    """The gradient of ``hidden``, a thread per (sequence, feature), in the CPU kernel's two
    passes: the statistics (winners, coefficient totals, the forward's output) over the
    sequence's tokens, then each token's sum over the modes, rounded to ``rt`` once.
    ``ratio``: the factors ``h g`` and outputs of the weighted and attention slots go to
    ``fac`` and ``mix`` (``(B, M, D)``, float64) for :func:`token_coef_kernel`.

    Arguments: ``x`` (``hidden``'s rows, flat), ``g`` (``grad_out``, flat ``(B, M*D)``),
    ``dx`` (flat, ``hidden``'s shape), ``offs``, ``mask``, ``coefs``, ``fac``, ``mix``,
    ``B``, ``L`` (padded length; 0 when packed), ``D``, ``n_coef``, ``cstride``.
    """
    CODES, M, OMIT, KIND, RATIO, RT = codes, len(codes), omit, kind, ratio, rt

    def kernel(x, g, dx, offs, mask, coefs, fac, mix, B, L, D, n_coef, cstride):
        win = cuda.local.array(M, numba.int64)
        best = cuda.local.array(M, numba.float64)
        total = cuda.local.array(M, numba.float64)
        count = cuda.local.array(M, numba.float64)
        out = cuda.local.array(M, numba.float64)
        i = cuda.grid(1)
        while i < B * D:
            b = i // D
            e = i - b * D
            start, end = _span(KIND, offs, b, L)
            row0 = b * L  # padded: the sequence's first row (packed rows are global)
            for k in range(M):
                win[k] = 0
                best[k] = 0.0
                total[k] = 0.0
                count[k] = 0.0
                out[k] = 0.0
            n = 0
            for l in range(start, end):
                if not _is_token(KIND, mask, b, l):
                    continue
                v = numba.float64(x[(row0 + l) * D + e])
                for k in range(M):
                    c = CODES[k]
                    if c == M_MAX or c == M_MIN:
                        if n == 0:
                            best[k] = v
                        elif _take(best[k], v, c == M_MIN, OMIT):
                            best[k] = v
                            win[k] = n
                    elif c != M_CLS and c != M_LAST and (v == v or not OMIT):
                        cj = _coefficient(c, n, b * cstride + l, coefs, n_coef)
                        total[k] += cj
                        count[k] += 1.0
                        if c == M_WEIGHTED or c == M_ATTENTION:
                            out[k] += cj * v
                n += 1
            for k in range(M):  # totals -> factors h * g, sums -> the forward's output
                c = CODES[k]
                if c == M_CLS or c == M_LAST or c == M_MAX or c == M_MIN:
                    continue
                if c == M_SUM:
                    h = 1.0 if count[k] > 0 else 0.0
                elif c == M_MEAN:
                    h = 1.0 / count[k] if count[k] > 0 else 0.0
                elif c == M_MEAN_SQRT_LEN:
                    h = 1.0 / math.sqrt(count[k]) if count[k] > 0 else 0.0
                else:
                    h = 1.0 / total[k] if total[k] > 0.0 else 0.0
                total[k] = h * numba.float64(g[b * M * D + k * D + e])
                out[k] *= h
                if RATIO:
                    fac[(b * M + k) * D + e] = total[k]
                    mix[(b * M + k) * D + e] = out[k]
            j = 0
            for l in range(start, end):
                at = (row0 + l) * D + e
                if n == 0 or not _is_token(KIND, mask, b, l):
                    dx[at] = RT(0)  # padding, and every row of a sequence without tokens
                    continue
                v = numba.float64(x[at])
                acc = 0.0
                for k in range(M):
                    c = CODES[k]
                    gk = numba.float64(g[b * M * D + k * D + e])
                    if c == M_CLS:
                        if j == 0:
                            acc += gk
                    elif c == M_LAST:
                        if j == n - 1:
                            acc += gk
                    elif c == M_MAX or c == M_MIN:
                        if win[k] == j:
                            acc += gk
                    elif v == v or not OMIT:
                        acc += _coefficient(c, j, b * cstride + l, coefs, n_coef) * total[k]
                dx[at] = RT(acc)
                j += 1
            i += cuda.gridsize(1)

    kernel.__name__ = kernel.__qualname__ = _name(
        "token_grad_kernel", "m" + "_".join(str(c) for c in codes), omit and "omit",
        f"k{kind}", ratio and "ratio", rt)
    return jit(cache=True)(kernel)


@functools.cache
def token_coef_kernel(codes, omit, kind, rt):
    """The gradients of the weights and scores, a thread per token position (flat ``i``:
    ``b * L + l`` padded, the row when packed): ``dc = sum over features of fac * (x -
    mix)`` (under omit over the non-NaN values) for each weighted or attention slot;
    ``dw = dc / top`` (0 where ``top`` is not positive: the caller's weights were scaled by
    their sequence's largest, ``top``), ``ds = exp(score) * dc``; 0 at padding positions.

    Arguments: ``x``, ``fac``, ``mix``, ``offs``, ``mask``, ``coefs``, ``top``, ``dw``,
    ``ds``, ``B``, ``L``, ``D``, ``n_coef``, ``rows``.
    """
    CODES, M, OMIT, KIND, RT = codes, len(codes), omit, kind, rt

    def kernel(x, fac, mix, offs, mask, coefs, top, dw, ds, B, L, D, n_coef, rows):
        i = cuda.grid(1)
        while i < rows:
            if KIND == K_OFFSETS:  # the sequence of row i: the last b with offs[b] <= i
                lo = 0
                hi = B - 1
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    if offs[mid] <= i:
                        lo = mid
                    else:
                        hi = mid - 1
                b = lo
                token = True
            else:
                b = i // L
                token = _is_token(KIND, mask, b, i - b * L)
            w_sum = 0.0
            s_sum = 0.0
            if token:
                for k in range(M):
                    c = CODES[k]
                    if c != M_WEIGHTED and c != M_ATTENTION:
                        continue
                    dc = 0.0
                    for e in range(D):
                        v = numba.float64(x[i * D + e])
                        if v == v or not OMIT:
                            f = (b * M + k) * D + e
                            dc += fac[f] * (v - mix[f])
                    if c == M_WEIGHTED:
                        w_sum += dc
                    else:
                        s_sum += math.exp(coefs[n_coef + i]) * dc
            if dw.size:
                dw[i] = RT(w_sum / top[i]) if top[i] > 0.0 else RT(0)
            if ds.size:
                ds[i] = RT(s_sum)
            i += cuda.gridsize(1)

    kernel.__name__ = kernel.__qualname__ = _name(
        "token_coef_kernel", "m" + "_".join(str(c) for c in codes), omit and "omit",
        f"k{kind}", rt)
    return jit(cache=True)(kernel)
