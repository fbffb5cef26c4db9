"""CUDA kernels for spatial pooling, driven by the same plan tables as the CPU kernels.

One thread per output element, in a grid-stride loop over the canonical output
``(P, Ro, Wo*C)``; consecutive threads take consecutive elements, so channels-last reads
are coalesced along C and channels-first reads along the last spatial axis.  A thread
walks its window's outer rows (flat tap ``k`` decomposed row-major, so taps are visited in
increasing flat index) and the last-axis taps of each row.  Per-element rules come from
:mod:`numbapool._arith`, compiled here as device functions: the CPU tests exercise them too.
"""

import numpy as np

from .. import _arith
from .compat import cuda, jit

MAX_OUTER_AXES = 8  # spatial dims - 1; local arrays need a compile-time size

_take_indexed = jit(device=True)(_arith.take_indexed)
_transform = jit(device=True)(_arith.transform)
_finish = jit(device=True)(_arith.finish)


@jit(device=True)
def _split(i, C, Wo, Ro):
    """(p, ro, wo, c) of canonical output element ``i``."""
    c = i % C
    t = i // C
    wo = t % Wo
    t = t // Wo
    return t // Ro, t % Ro, wo, c


@jit(device=True)
def _outer_index(ro, oshape, ov):
    """Fill ``ov`` with the outer output multi-index of output row ``ro``."""
    rem = ro
    for a in range(oshape.shape[0] - 1, -1, -1):
        ov[a] = rem % oshape[a]
        rem = rem // oshape[a]


@jit(device=True)
def _row(k, ov, o_first, o_count, o_step, ishape):
    """Flat input row of outer window tap ``k`` (row-major over the outer axes)."""
    r = 0
    stride = 1
    rem = k
    for a in range(ov.shape[0] - 1, -1, -1):
        n = o_count[a, ov[a]]
        j = rem % n
        rem = rem // n
        r += (o_first[a, ov[a]] + j * o_step[a]) * stride
        stride *= ishape[a]
    return r


@jit
def extreme_kernel(x, out, idx, o_first, o_count, o_step, ishape, oshape,
                   l_first, l_count, l_step, C, is_min, omit, with_indices):
    P, Ro, WoC = out.shape
    Wo = WoC // C
    W = x.shape[2] // C
    n_outer = oshape.shape[0]
    ov_local = cuda.local.array(MAX_OUTER_AXES, np.int64)
    ov = ov_local[:n_outer]
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, P * Ro * WoC, step):
        p, ro, wo, c = _split(i, C, Wo, Ro)
        _outer_index(ro, oshape, ov)
        n_rows = 1
        for a in range(n_outer):
            n_rows *= o_count[a, ov[a]]
        r = _row(0, ov, o_first, o_count, o_step, ishape)
        w = l_first[wo]
        m = x[p, r, w * C + c]
        mi = r * W + w
        for k in range(n_rows):
            r = _row(k, ov, o_first, o_count, o_step, ishape)
            for j in range(l_count[wo]):
                w = l_first[wo] + j * l_step
                v = x[p, r, w * C + c]
                vi = r * W + w
                if _take_indexed(m, mi, v, vi, is_min, omit):
                    m = v
                    mi = vi
        out[p, ro, wo * C + c] = m
        if with_indices:
            idx[p, ro, wo * C + c] = mi


@jit
def sum_kernel(x, out, o_first, o_count, o_step, ishape, oshape, l_first, l_count, l_step,
               o_div, l_div, C, acc_zero, transform, power, eps, finish, omit,
               divisor_override):
    P, Ro, WoC = out.shape
    Wo = WoC // C
    n_outer = oshape.shape[0]
    ov_local = cuda.local.array(MAX_OUTER_AXES, np.int64)
    ov = ov_local[:n_outer]
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, P * Ro * WoC, step):
        p, ro, wo, c = _split(i, C, Wo, Ro)
        _outer_index(ro, oshape, ov)
        n_rows = 1
        divisor = l_div[wo]
        for a in range(n_outer):
            n_rows *= o_count[a, ov[a]]
            divisor *= o_div[a, ov[a]]
        s = acc_zero
        nans = 0
        for k in range(n_rows):
            r = _row(k, ov, o_first, o_count, o_step, ishape)
            for j in range(l_count[wo]):
                v = _transform(acc_zero + x[p, r, (l_first[wo] + j * l_step) * C + c],
                               transform, power, eps)
                if omit and v != v:
                    nans += 1
                else:
                    s += v
        if divisor_override != 0.0:
            divisor = divisor_override
        elif omit:
            divisor -= nans
        if omit and nans == n_rows * l_count[wo]:
            out[p, ro, wo * C + c] = np.nan
        else:
            out[p, ro, wo * C + c] = _finish(s, divisor, finish, power)
