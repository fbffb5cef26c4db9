"""CPU kernels of the spatial gradients and of unpooling, and their entry points.

Two kernels serve every spatial gradient (and :func:`numbapool.max_unpool`):

* :func:`index_scatter_tasks` routes values to flat positions: ``dst[p, idx[p, o, c], c]``
  receives ``src[p, o, c]``, added (the gradient of max/min pools, whose overlapping
  windows may share a winner) or stored (unpooling, where a later duplicate wins);
* :func:`window_grad_tasks` is the transpose of a box-window sum: every input element
  receives the sum of the coefficients of the windows that hold it (the gradient of
  average, Lp, adaptive and global pools, whose per-window factors the caller folds into
  the coefficients or into per-axis scales).

Both run on canonical C-contiguous views, ``(planes, positions, channels)`` for the scatter
and ``(planes, rows, row_length * channels)`` for the window sums (see
:class:`numbapool.plan.SpatialPlan`).  A task is one plane, or one block of channels of a
channels-last plane, and writes only its own part of the result: it zeroes it (or writes
each input row first by a store) and accumulates serially inside it, so threads never
write the same element, with no atomics, and results do not depend on the thread count.

The entry points :func:`run_index_scatter` and :func:`run_window_grad` are what
:mod:`numbapool.grad` calls for NumPy arrays; the CUDA backend has two of the same names
(:mod:`numbapool._cuda.backend`, kernels in :mod:`numbapool._cuda.grad`), which also apply
the final rounding and NaN zeroing.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np
from numba import njit

from .jit import helper
from .parallel import cuts, run_split, thread_count, use_parallel
from .results import hand_back, result_arrays

#: Channels of a channels-last task when a call has fewer planes than threads to keep busy.
CHANNEL_BLOCK = 16


# --------------------------------------------------------------------------- kernels


@helper
def _scatter_flat(s, ix, d, Si, C, accumulate):
    """:func:`index_scatter_tasks` for one whole plane, as flat arrays; returns the number
    of indices outside ``[0, Si)``."""
    d[:] = 0
    n_bad = 0
    if C == 1:
        for o in range(s.shape[0]):
            i = ix[o]
            if 0 <= i < Si:
                if accumulate:
                    d[i] += s[o]
                else:
                    d[i] = s[o]
            else:
                n_bad += 1
        return n_bad
    for o in range(s.shape[0] // C):
        for c in range(C):
            i = ix[o * C + c]
            if 0 <= i < Si:
                if accumulate:
                    d[i * C + c] += s[o * C + c]
                else:
                    d[i * C + c] = s[o * C + c]
            else:
                n_bad += 1
    return n_bad


@njit(cache=True, nogil=True)
def index_scatter_tasks(src, idx, dst, t0, t1, n_blocks, block, accumulate, bad):
    """Scatter ``src`` into ``dst`` by ``idx`` for tasks ``[t0, t1)``.

    ``src`` and ``idx`` are ``(P, So, C)``, ``dst`` is ``(P, Si, C)``.  Task ``t`` is plane
    ``t // n_blocks`` and channels ``[b * block, (b + 1) * block)`` of block
    ``b = t % n_blocks``: it zeroes that part of ``dst``, then adds (``accumulate``) or
    stores each value at its index, in order.  Indices outside ``[0, Si)`` are skipped and
    counted in ``bad[t]``.
    """
    C = dst.shape[2]
    Si = dst.shape[1]
    So = src.shape[1]
    for t in range(t0, t1):
        p = t // n_blocks
        c0 = (t - p * n_blocks) * block
        c1 = min(C, c0 + block)
        if c1 - c0 == C:  # whole planes: flat loops, the common case
            bad[t] = _scatter_flat(src[p].reshape(So * C), idx[p].reshape(So * C),
                                   dst[p].reshape(Si * C), Si, C, accumulate)
            continue
        d = dst[p]
        s = src[p]
        ix = idx[p]
        for i in range(Si):
            for c in range(c0, c1):
                d[i, c] = 0
        n_bad = 0
        for o in range(So):
            for c in range(c0, c1):
                i = ix[o, c]
                if 0 <= i < Si:
                    if accumulate:
                        d[i, c] += s[o, c]
                    else:
                        d[i, c] = s[o, c]
                else:
                    n_bad += 1
        bad[t] = n_bad


@njit(cache=True, nogil=True)
def window_grad_tasks(coef, dst, t0, t1, n_blocks, block, C, step, rowstride, offsets, first,
                      count, row_scale, col_scale, tbuf, written, ow):
    """The transpose of a box-window sum for tasks ``[t0, t1)``.

    ``coef`` is ``(P, Ro, Wo * C)``, ``dst`` is ``(P, R, W * C)``.  Axes ``0 .. n-2`` are
    the outer spatial axes (their product indexes rows), axis ``n-1`` the last one; window
    ``o`` of axis ``a`` holds ``count[offsets[a] + o]`` positions from
    ``first[offsets[a] + o]``, ``step[a]`` apart, and one position of outer axis ``a`` is
    ``rowstride[a]`` input rows.  Input element ``(p, r, w, c)`` receives the sum over the
    windows holding it of ``coef[p, ro, wo, c] * row_scale[ro] * col_scale[wo]``.

    Per output row, the last axis is done into the row buffer ``tbuf`` once, which is then
    stored into (first visit) or added to every input row of the row's outer window; rows
    no window visits are zeroed at the end.  ``written`` (``R`` flags) and ``ow`` (``3 x
    (n-1)`` ints) are scratch.
    """
    n_outer = step.shape[0] - 1
    R = dst.shape[1]
    Ro = coef.shape[1]
    W = dst.shape[2] // C
    Wo = coef.shape[2] // C
    last = offsets[n_outer]
    d_last = step[n_outer]
    for t in range(t0, t1):
        p = t // n_blocks
        c0 = (t - p * n_blocks) * block
        c1 = min(C, c0 + block)
        cw = c1 - c0
        full = cw == C
        tb = tbuf[:W * cw]
        for r in range(R):
            written[r] = False
        for ro in range(Ro):
            rs = row_scale[ro]
            for i in range(W * cw):
                tb[i] = 0
            crow = coef[p, ro]
            for wo in range(Wo):
                f = first[last + wo]
                n = count[last + wo]
                sc = col_scale[wo] * rs
                if cw == 1:
                    v = crow[wo * C + c0] * sc
                    for j in range(n):
                        tb[f + j * d_last] += v
                else:  # (views, so that the channel loops vectorise)
                    cr = crow[wo * C + c0:]
                    for j in range(n):
                        tv = tb[(f + j * d_last) * cw:]
                        for ch in range(cw):
                            tv[ch] += cr[ch] * sc
            # the rows of the outer window, odometer over the outer axes
            n_rows = 1
            q = ro
            for a in range(n_outer - 1, -1, -1):
                size = offsets[a + 1] - offsets[a]
                r_ = q // size
                o = q - r_ * size
                q = r_
                ow[0, a] = first[offsets[a] + o]
                ow[1, a] = count[offsets[a] + o]
                ow[2, a] = 0
                n_rows *= ow[1, a]
            for k in range(n_rows):
                if k > 0:
                    a = n_outer - 1
                    while a >= 0:
                        ow[2, a] += 1
                        if ow[2, a] < ow[1, a]:
                            break
                        ow[2, a] = 0
                        a -= 1
                r = 0
                for a in range(n_outer):
                    r += (ow[0, a] + ow[2, a] * step[a]) * rowstride[a]
                drow = dst[p, r]
                if full:
                    if written[r]:
                        for i in range(W * C):
                            drow[i] += tb[i]
                    else:
                        for i in range(W * C):
                            drow[i] = tb[i]
                else:
                    for w in range(W):
                        dv = drow[w * C + c0:]
                        tv = tb[w * cw:]
                        if written[r]:
                            for ch in range(cw):
                                dv[ch] += tv[ch]
                        else:
                            for ch in range(cw):
                                dv[ch] = tv[ch]
                written[r] = True
        for r in range(R):
            if not written[r]:
                drow = dst[p, r]
                for w in range(W):
                    dv = drow[w * C + c0:]
                    for ch in range(cw):
                        dv[ch] = 0


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class ScatterPlan:
    """An index scatter: ``planes`` planes of ``in_size`` result and ``out_size`` source
    positions, ``channels`` channels each (1 for channels-first), into a result shaped
    ``result_shape`` of ``dtype``; ``accumulate`` adds (gradients) rather than stores
    (unpooling)."""

    planes: int
    in_size: int
    out_size: int
    channels: int
    result_shape: tuple
    dtype: np.dtype
    accumulate: bool


@dataclass(frozen=True)
class WindowGradPlan:
    """The transpose of a box-window sum: ``axes`` (:class:`~numbapool.geometry.AxisWindows`,
    one per spatial axis), ``planes`` planes of ``channels`` channels (1 for
    channels-first), into a result shaped ``result_shape`` of ``dtype``."""

    axes: tuple
    planes: int
    channels: int
    result_shape: tuple
    dtype: np.dtype

    def tables(self):
        """``(step, rowstride, offsets, first, count)`` of :func:`window_grad_tasks`."""
        step = np.array([a.step for a in self.axes], np.int64)
        rowstride = np.ones(len(self.axes), np.int64)
        for a in range(len(self.axes) - 3, -1, -1):
            rowstride[a] = rowstride[a + 1] * self.axes[a + 1].in_size
        arrays = [a.arrays()[:2] for a in self.axes]
        offsets = np.cumsum([0] + [a.out_size for a in self.axes]).astype(np.int64)
        first = np.concatenate([f for f, _ in arrays]).astype(np.int64)
        count = np.concatenate([c for _, c in arrays]).astype(np.int64)
        return step, rowstride, offsets, first, count


def _blocks(planes, channels):
    """``(n_blocks, block)``: channels-last planes are split into channel blocks when there
    are too few planes to keep the threads busy."""
    threads = thread_count()
    if channels <= CHANNEL_BLOCK or planes >= 2 * threads:
        return 1, channels
    n = min(-(-channels // CHANNEL_BLOCK), -(-2 * threads // max(planes, 1)))
    block = -(-channels // n)
    return -(-channels // block), block


def _run(kernel, before, n_tasks, n_elements, after, scratch=tuple):
    if n_tasks == 0:
        return
    if use_parallel(n_elements, n_tasks):
        run_split(kernel, before, cuts(n_tasks, min(n_tasks, thread_count())), after, scratch)
    else:
        kernel(*before, 0, n_tasks, *after, *scratch())


# --------------------------------------------------------------------------- entry points


_STORE_VIEWS = {np.dtype(np.float16): np.uint16, np.dtype(np.bool_): np.uint8}


def run_index_scatter(plan, src, out, indices):
    """Scatter ``src`` by ``indices`` (both shaped ``(planes, out_size, channels)`` in
    element order) into a result shaped ``plan.result_shape``.

    Returns the result, or ``None`` without touching ``out`` when an index lies outside
    ``[0, plan.in_size)`` (the caller raises).  With ``out=`` the indices are checked before
    anything is written.
    """
    P, Si, So, C = plan.planes, plan.in_size, plan.out_size, plan.channels
    src = np.ascontiguousarray(src).reshape(P, So, C)
    idx = np.ascontiguousarray(indices, dtype=np.int64).reshape(P, So, C)
    if out is not None and idx.size and not index_range_ok(idx.reshape(-1), Si):
        return None
    work, ret = result_arrays(out, plan.result_shape, plan.dtype, (src, indices), "out")
    dst = work.reshape(P, Si, C)
    view = _STORE_VIEWS.get(dst.dtype)
    if view is not None:  # stores copy bits: float16 (which Numba cannot load) as uint16
        dst, src = dst.view(view), src.view(view)
    n_blocks, block = _blocks(P, C)
    bad = np.zeros(P * n_blocks, np.int64)
    _run(index_scatter_tasks, (src, idx, dst), P * n_blocks, dst.size,
         (n_blocks, block, plan.accumulate, bad))
    if bad.any():
        return None
    hand_back(work, ret)
    return ret


@njit(cache=True, nogil=True)
def index_range_ok(idx, n):
    """Whether every entry of ``idx`` lies in ``[0, n)``."""
    ok = True
    for i in range(idx.shape[0]):
        ok &= (idx[i] >= 0) & (idx[i] < n)
    return ok


def run_window_grad(plan, coef, out, row_scale, col_scale):
    """The transpose of ``plan``'s window sum applied to ``coef`` (the forward's output
    shape, in ``plan.dtype``), scaled by ``row_scale`` (per output row: the product of the
    outer axes) and ``col_scale`` (per output position of the last axis); returns the
    result shaped ``plan.result_shape``."""
    axes = plan.axes
    P, C = plan.planes, plan.channels
    R = prod(a.in_size for a in axes[:-1])
    Ro = prod(a.out_size for a in axes[:-1])
    W, Wo = axes[-1].in_size, axes[-1].out_size
    coef = np.ascontiguousarray(coef).reshape(P, Ro, Wo * C)
    work, ret = result_arrays(out, plan.result_shape, plan.dtype, (coef,), "out")
    dst = work.reshape(P, R, W * C)
    step, rowstride, offsets, first, count = plan.tables()
    dtype = dst.dtype
    row_scale = np.ascontiguousarray(row_scale, dtype)
    col_scale = np.ascontiguousarray(col_scale, dtype)
    n_blocks, block = _blocks(P, C)

    def scratch():
        return (np.empty(W * block, dtype), np.empty(R, np.bool_),
                np.empty((3, max(len(axes) - 1, 1)), np.int64))

    _run(window_grad_tasks, (coef, dst), P * n_blocks, dst.size,
         (n_blocks, block, C, step, rowstride, offsets, first, count, row_scale, col_scale),
         scratch)
    hand_back(work, ret)
    return ret
