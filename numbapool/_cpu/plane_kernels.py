"""Global pooling kernels: every window is a whole plane.

Global (and adaptive-to-one) pooling reduces whole planes, so it needs no window tables and
no row buffers: a channels-first plane is one contiguous run, and a channels-last image is
a run of pixels, each ``C`` contiguous channels.  These kernels read each element once.

* ``plane_*``: channels-first, ``x`` a C-contiguous ``(P, n)`` view, ``out[p]`` from
  ``x[p]``.  A single running extreme is a chain of dependent operations, which does not
  vectorise, so a plane is folded ``LANES`` elements at a time into ``LANES`` independent
  accumulators, combined at the end.  Means let LLVM reassociate the sum instead.
* ``pixel_*``: channels-last, ``x`` a C-contiguous ``(N, n, C)`` view, ``out[i, c]`` from
  ``x[i, :, c]``; the loops run over the channels, which vectorise.

Max and min keep the rules of the window kernels: under ``propagate`` a NaN wins, under
``omit`` NaNs are skipped (an all-NaN plane gives NaN), and of equal values the first in
the plane's row-major order wins, which matters only for the sign of a zero result: lanes
see the plane out of order, so a zero result is replaced by the plane's first zero.
"""

import numpy as np
from numba import njit

from .. import _arith
from .jit import helper
from .half import compute_zero, load, store

#: Independent accumulators per channels-first plane: two AVX-512 or four AVX2 registers
#: of float32, enough to hide the latency of the compare-and-select chain.
LANES = 32

_take = helper(_arith.take)


@helper(inline="always")
def _first_zero(x, p, n):
    """The first element of ``x[p, :n]`` that equals zero (with its sign)."""
    for e in range(n):
        v = load(x[p], e)
        if v == 0:
            return v
    return load(x[p], 0)  # not reached when the extreme is zero


@njit(cache=True, nogil=True)
def plane_extreme_tasks(x, out, t0, t1, is_min, omit):
    """``out[p] = max(x[p])`` (``min`` when ``is_min``) for planes ``[t0, t1)``."""
    n = x.shape[1]
    lanes = np.full(LANES, compute_zero(x))
    for p in range(t0, t1):
        row = x[p]
        blocks = n // LANES
        if blocks < 2:
            m = load(row, 0)
            for e in range(1, n):
                v = load(row, e)
                m = v if _take(m, v, is_min, omit) else m
        else:
            for j in range(LANES):
                lanes[j] = load(row, j)
            for b in range(1, blocks):
                block = row[b * LANES:(b + 1) * LANES]
                for j in range(LANES):
                    v = load(block, j)
                    m = lanes[j]
                    lanes[j] = v if _take(m, v, is_min, omit) else m
            tail = row[blocks * LANES:]
            for j in range(tail.shape[0]):
                v = load(tail, j)
                m = lanes[j]
                lanes[j] = v if _take(m, v, is_min, omit) else m
            m = lanes[0]
            for j in range(1, LANES):
                v = lanes[j]
                m = v if _take(m, v, is_min, omit) else m
        if m == 0:
            m = _first_zero(x, p, n)
        store(out, p, m)



@njit(cache=True, nogil=True)
def pixel_extreme_tasks(x, out, t0, t1, is_min, omit):
    """``out[i, c] = max(x[i, :, c])`` (``min`` when ``is_min``) for images ``[t0, t1)``."""
    n, C = x.shape[1], x.shape[2]
    acc = np.full(C, compute_zero(x))
    for i in range(t0, t1):
        first = x[i, 0]
        for c in range(C):
            acc[c] = load(first, c)
        for q in range(1, n):
            src = x[i, q]
            for c in range(C):
                v = load(src, c)
                m = acc[c]
                acc[c] = v if _take(m, v, is_min, omit) else m
        dst = out[i]
        for c in range(C):
            m = acc[c]
            if m == 0:  # the first zero of the channel, for its sign
                for q in range(n):
                    v = load(x[i, q], c)
                    if v == 0:
                        m = v
                        break
            store(dst, c, m)



@njit(cache=True, nogil=True, fastmath={"reassoc"})
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
