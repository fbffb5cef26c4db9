"""CUDA plane reductions: a group of threads per window, for pools of few large windows.

The window kernels (:mod:`numbapool._cuda.spatial`) give each output a thread.  That
starves the GPU when the outputs are few (a global pool of ``(1, 3, 2048, 2048)`` would run
on 3 threads) and, channels-first, the threads of a warp read addresses a whole window
apart.  Here the taps of a window are shared by ``L`` lanes that read consecutive
positions (coalesced), and combined with warp shuffles and, past a warp, shared memory.
:func:`suits` says which pools come here (``backend.spatial_launch`` asks it): 1-D and 2-D
canonical pools (every global pool) with windows of at least :data:`MIN_TAPS` taps, and
either too few outputs to fill the device with a thread each, or a channels-first global
pool.

Layout of a block (:func:`block_threads` threads, 256 on a GPU): groups of ``L * CB``
threads, each group one window-group: ``CB`` consecutive channels (1 channels-first; the
power of two >= C, at most 32, channels-last, so that a warp reads consecutive channels
of consecutive positions) of one output position, times ``L`` lanes (a power of two, about
a lane per :data:`TAPS_PER_LANE` taps, at least a warp's worth of threads per group); thread
``t`` of a group is channel ``t % CB`` of lane ``t // CB``.  Lane ``l`` folds taps
``l, l + L, ...`` of its share of the window (taps in row-major order: outer rows, then
last-axis taps), keeping the flat index of its extreme; the lanes' results are combined by
``shfl_down`` (offsets 16 ... CB, so only equal channels meet), then the warps of a group in
warp order through shared memory.

Windows with few outputs are split over ``S`` blocks (:func:`layout`: enough blocks to fill
the device, at least :data:`SPLIT_TAPS` taps per lane, at most :data:`MAX_SPLITS`), each
taking a contiguous share of the taps and leaving a partial result; a second launch
combines the ``S`` partials of each output with a warp per output and finishes it.  The
partials live in buffers kept per device, stream, role and dtype (:func:`partials`), grown
as needed, so repeated calls allocate nothing.  Nothing depends on timing (no atomics, fixed
shares, fixed trees), so results are deterministic.  Max/min carry the flat index of their
value and combine by :func:`numbapool._arith.take_indexed`, a total order (value, then
index, with its NaN rules), so they are exactly the CPU's whatever the tree; sums combine
in a tree, within rounding of the CPU's sequential sums.  Values cross shuffles in 32 or
64 bits (:func:`shuffle_type`: small integers widened, others with their bits kept).

Compile-time specialisations (cached factories, as in :mod:`numbapool._cuda.spatial`):
max/min, NaN policy, indices, value type, index width (uint32 below ``2**31`` elements of
input, output and partials, else uint64), one pass or partials; for sums the term, finish,
root, override and accumulator type.  A float64 root (``pow``) is always left to the
combining kernel, whose registers are plenty.  The arithmetic is the window kernels'.

Numba's CUDA simulator has no warp shuffles: there, :func:`_shfl_down` swaps values
through a dictionary between two barriers (every thread of a block takes part in every
shuffle, as the kernels are written).
"""

from __future__ import annotations

import collections
import functools
import math
import threading
import weakref

import numba
import numpy as np
from numba.np.numpy_support import as_dtype

from .. import _arith
from ..plan import FINISHES
from . import compat
from . import spatial as _spatial
from .compat import cuda, jit

#: Threads of a block of the plane kernels (a multiple of 32, at most 256: the shared
#: scratch holds 8 warps); None: ``compat.THREADS_PER_BLOCK`` rounded to that range.
THREADS = None
#: Windows of fewer taps than this stay with the window kernels.
MIN_TAPS = 32
#: Lanes per window: about a lane per this many taps (a power of two, from a warp's worth
#: of threads per group to a block).
TAPS_PER_LANE = 4
#: A split of a window gives each lane at least this many taps.
SPLIT_TAPS = 16
#: At most this many splits of a window (the combining warp reads them all).
MAX_SPLITS = 256
#: Threads of a device when CUDA is not there to ask (compile checks): an H100/H200.
DEFAULT_FILL = 132 * 2048

_SHARED = 256  # shared scratch entries: 8 warps x 32 lanes


def block_threads():
    """Threads of a block of the plane kernels (see :data:`THREADS`)."""
    if THREADS is not None:
        return THREADS
    return max(32, min(256, compat.THREADS_PER_BLOCK // 32 * 32))


def fill_threads():
    """Threads the device keeps resident at once (SMs x threads per SM)."""
    if not compat.available():
        return DEFAULT_FILL
    props = compat.properties(compat.current_device_id())
    return props["multiprocessors"] * props["max_threads_per_multiprocessor"]


# --------------------------------------------------------------------------- warp shuffles

_SIM_SLOTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _shfl_down_simulated(value, delta):
    """``shfl_down_sync`` over all 32 lanes, for the simulator: every thread of the block
    leaves its value, and reads its partner's between two barriers."""
    slots = _SIM_SLOTS.setdefault(cuda, {})  # ``cuda`` is the launch's fake module here
    tid = cuda.threadIdx.x
    slots[tid] = value
    cuda.syncthreads()
    got = slots.get(tid + delta, value) if tid % 32 + delta < 32 else value
    cuda.syncthreads()
    return got


def _shfl_down_device(value, delta):
    return cuda.shfl_down_sync(0xFFFFFFFF, value, numba.int32(delta))


def _shfl_down2_simulated(a, b, delta):
    """Two shuffles in one exchange (the simulator's barriers are slow)."""
    return _shfl_down_simulated((a, b), delta)


def _shfl_down2_device(a, b, delta):
    return _shfl_down(a, delta), _shfl_down(b, delta)


_shfl_down = jit(device=True)(_shfl_down_simulated if compat.simulator()
                              else _shfl_down_device)
_shfl_down2 = jit(device=True)(_shfl_down2_simulated if compat.simulator()
                               else _shfl_down2_device)


def shuffle_type(vt):
    """The type a value of Numba type ``vt`` crosses a shuffle in (32- or 64-bit, the
    bits of the value kept)."""
    if isinstance(vt, numba.types.Float):
        return vt
    return numba.int64 if vt.bitwidth == 64 else numba.int32


def _empty(index):
    """The flat index that marks an empty partial (none is ever that large)."""
    return (1 << index.bitwidth) - 1


@jit(device=True)
def _better(m, mi, v, vi, empty, is_min, omit):
    """Whether ``(v, vi)`` beats ``(m, mi)`` (either may be empty), in any order."""
    return vi != empty and (mi == empty or _arith_take_indexed(m, mi, v, vi, is_min, omit))


_arith_take_indexed = jit(device=True)(_arith.take_indexed)


@jit(device=True)
def _group_taps(U, gid, n_cb, Ro, Wo, aB, aL, first, count):
    """``(p, ro, wo, channel block, r0, nr, w0, nw)`` of window-group ``gid``."""
    cb = U(gid % n_cb)
    t = U(gid // n_cb)
    q = U(t // Wo)
    wo = U(t - q * Wo)
    p = U(q // Ro)
    ro = U(q - p * Ro)
    r0, nr = _spatial._run_span(U, ro, aB, first, count)
    w0, nw = _spatial._run_span(U, wo, aL, first, count)
    return p, ro, wo, cb, r0, nr, w0, nw


@jit(device=True)
def _divisor(U, ro, wo, aB, aL, div):
    return (_spatial._span_divisor(ro, U(aB[0]), U(aB[1]), U(aB[2]), U(aB[5]), div)
            * _spatial._span_divisor(wo, U(aL[0]), U(aL[1]), U(aL[2]), U(aL[5]), div))


# --------------------------------------------------------------------------- kernels
#
# Arguments shared by the kernels: ``g`` = (work items, window-groups, groups per block,
# lanes L, channels per group CB, channel blocks, Ro, Wo, plane size, row length, W, C,
# splits S) and the runs ``aB`` (the outer axis) and ``aL`` (the last axis) as in
# :mod:`numbapool._cuda.spatial`.  Work item ``b`` is split ``b % S`` of the block of
# window-groups ``b // S``.


def _name(prefix, *parts):
    return "_".join([prefix] + [str(p) for p in parts if p])


@functools.cache
def extreme_kernel(is_min, omit, with_indices, index, vt, final):
    """The plane max/min kernel: ``final`` writes ``out`` (and ``idx``), else partials
    ``pv``/``pi`` at ``output * S + split``."""
    U, IS_MIN, OMIT, WITH_IDX, VT, FINAL = index, is_min, omit, with_indices, vt, final
    SH, SI, EMPTY = shuffle_type(vt), shuffle_type(index), _empty(index)

    def kernel(x, out, idx, pv, pi, first, count, g, aB, aL):
        shv = cuda.shared.array(_SHARED, VT)
        shi = cuda.shared.array(_SHARED, U)
        n_work, n_groups, G, L, CB, n_cb = U(g[0]), U(g[1]), U(g[2]), U(g[3]), U(g[4]), U(g[5])
        Ro, Wo, plane, rowlen, W, C, S = (U(g[6]), U(g[7]), U(g[8]), U(g[9]), U(g[10]),
                                          U(g[11]), U(g[12]))
        rstep = U(aB[6])
        lstep = U(aL[6])
        tpw = U(L * CB)
        tid = U(cuda.threadIdx.x)
        tg = U(tid % tpw)
        cc = U(tg % CB)
        lane = U(tg // CB)
        b = U(cuda.blockIdx.x)
        while b < n_work:
            gb = U(b // S)
            s = U(b - gb * S)
            gid = U(gb * G + tid // tpw)
            m = VT(0)
            mi = U(EMPTY)
            active = False
            p, ro, wo, cb, r0, nr, w0, nw = _group_taps(U, U(min(gid, n_groups - 1)), n_cb,
                                                        Ro, Wo, aB, aL, first, count)
            c = U(cb * CB + cc)
            if gid < n_groups and c < C:
                active = True
                taps = U(nr * nw)
                share = U((taps + S - 1) // S)
                t = U(s * share + lane)
                end = U(min(taps, U(s * share + share)))
                if t < end:
                    k = U(t // nw)
                    j = U(t - k * nw)
                    qL = U(L // nw)
                    rL = U(L - qL * nw)
                    base = U(p * plane + c)
                    while t < end:
                        r = U(r0 + k * rstep)
                        w = U(w0 + j * lstep)
                        v = VT(x[U(base + r * rowlen + w * C)])
                        vi = U(r * W + w)
                        # a lane meets its taps in increasing flat order: ties keep m
                        if mi == EMPTY or _arith_take_indexed(m, 0, v, 1, IS_MIN, OMIT):
                            m = v
                            mi = vi
                        t = U(t + L)
                        k = U(k + qL)
                        j = U(j + rL)
                        if j >= nw:
                            j = U(j - nw)
                            k = U(k + 1)
            delta = U(16)
            while delta >= CB:
                ov, oi = _shfl_down2(SH(m), SI(mi), delta)
                ov = VT(ov)
                oi = U(oi)
                if _better(m, mi, ov, oi, EMPTY, IS_MIN, OMIT):
                    m = ov
                    mi = oi
                delta = U(delta // 2)
            if tpw > 32:
                warp = U(tid // 32)
                if tid % 32 < CB:
                    shv[warp * 32 + tid % 32] = m
                    shi[warp * 32 + tid % 32] = mi
                cuda.syncthreads()
                if tg < CB:
                    w = U(warp + 1)
                    while w < U(warp + tpw // 32):
                        ov = shv[w * 32 + cc]
                        oi = shi[w * 32 + cc]
                        if _better(m, mi, ov, oi, EMPTY, IS_MIN, OMIT):
                            m = ov
                            mi = oi
                        w = U(w + 1)
                cuda.syncthreads()
            if active and tg < CB:
                o = U(U(U(p * Ro + ro) * Wo + wo) * C + c)
                if FINAL:
                    out[o] = m
                    if WITH_IDX:
                        idx[o] = mi
                else:
                    pv[U(o * S + s)] = m
                    pi[U(o * S + s)] = mi
            b = U(b + cuda.gridDim.x)

    kernel.__name__ = kernel.__qualname__ = _name(
        "plane_extreme_kernel", "min" if is_min else "max", omit and "omit",
        with_indices and "idx", vt, index, final and "final")
    return jit(cache=True)(kernel)


@functools.cache
def extreme_combine_kernel(is_min, omit, with_indices, index, vt):
    """Second pass of split max/min: a warp per output combines its ``S`` partials."""
    U, IS_MIN, OMIT, WITH_IDX, VT = index, is_min, omit, with_indices, vt
    SH, SI, EMPTY = shuffle_type(vt), shuffle_type(index), _empty(index)

    def kernel(out, idx, pv, pi, n_out, S):
        n = U(n_out)
        S = U(S)
        tid = U(cuda.threadIdx.x)
        lane = U(tid % 32)
        per_block = U(cuda.blockDim.x // 32)
        b = U(cuda.blockIdx.x)
        while U(b * per_block) < n:
            o = U(b * per_block + tid // 32)
            m = VT(0)
            mi = U(EMPTY)
            if o < n:
                s = lane
                while s < S:
                    ov = pv[U(o * S + s)]
                    oi = pi[U(o * S + s)]
                    if _better(m, mi, ov, oi, EMPTY, IS_MIN, OMIT):
                        m = ov
                        mi = oi
                    s = U(s + 32)
            delta = U(16)
            while delta >= 1:
                ov, oi = _shfl_down2(SH(m), SI(mi), delta)
                ov = VT(ov)
                oi = U(oi)
                if _better(m, mi, ov, oi, EMPTY, IS_MIN, OMIT):
                    m = ov
                    mi = oi
                delta = U(delta // 2)
            if o < n and lane == 0:
                out[o] = m
                if WITH_IDX:
                    idx[o] = mi
            b = U(b + cuda.gridDim.x)

    kernel.__name__ = kernel.__qualname__ = _name(
        "plane_extreme_combine_kernel", "min" if is_min else "max", omit and "omit",
        with_indices and "idx", vt, index)
    return jit(cache=True)(kernel)


@functools.cache
def sum_kernel(transform, clip, finish, root, omit, override, index, acc, final):
    """The plane sum kernel: ``final`` finishes the windows into ``out``, else writes
    partial sums and NaN counts ``ps``/``pn`` at ``output * S + split``.  ``acc``: the
    accumulator's Numba type; the rest as ``spatial.sum_kernel``."""
    U, CLIP, ROOT, OMIT, OVER, ACC, FINAL = index, clip, root, omit, override, acc, final
    SI = shuffle_type(index)
    POW32 = transform == _spatial.X_POW32
    SQUARE = transform == _spatial.X_SQUARE
    CUBE = transform == _spatial.X_CUBE
    POW = transform == _spatial.X_POW
    MEAN = finish == _arith.F_MEAN
    ROOT_MEAN = finish == _arith.F_ROOT_MEAN

    def kernel(x, out, ps, pn, first, count, div, g, aB, aL, power, p32, eps, divisor):
        shs = cuda.shared.array(_SHARED, ACC)
        shn = cuda.shared.array(_SHARED, U)
        n_work, n_groups, G, L, CB, n_cb = U(g[0]), U(g[1]), U(g[2]), U(g[3]), U(g[4]), U(g[5])
        Ro, Wo, plane, rowlen, C, S = (U(g[6]), U(g[7]), U(g[8]), U(g[9]), U(g[11]),
                                       U(g[12]))
        rstep = U(aB[6])
        lstep = U(aL[6])
        tpw = U(L * CB)
        tid = U(cuda.threadIdx.x)
        tg = U(tid % tpw)
        cc = U(tg % CB)
        lane = U(tg // CB)
        b = U(cuda.blockIdx.x)
        while b < n_work:
            gb = U(b // S)
            s = U(b - gb * S)
            gid = U(gb * G + tid // tpw)
            acc_sum = ACC(0)
            nans = U(0)
            active = False
            p, ro, wo, cb, r0, nr, w0, nw = _group_taps(U, U(min(gid, n_groups - 1)), n_cb,
                                                        Ro, Wo, aB, aL, first, count)
            c = U(cb * CB + cc)
            taps = U(nr * nw)
            if gid < n_groups and c < C:
                active = True
                share = U((taps + S - 1) // S)
                t = U(s * share + lane)
                end = U(min(taps, U(s * share + share)))
                if t < end:
                    k = U(t // nw)
                    j = U(t - k * nw)
                    qL = U(L // nw)
                    rL = U(L - qL * nw)
                    base = U(p * plane + c)
                    while t < end:
                        xv = x[U(base + U(r0 + k * rstep) * rowlen + U(w0 + j * lstep) * C)]
                        if POW32:
                            v = numba.float64(xv)
                            if CLIP:
                                v = _spatial._clip(v, eps)
                            v = _spatial._pow32(v, p32, power)
                        else:
                            v = ACC(0) + xv
                            if CLIP:
                                v = _spatial._clip(v, eps)
                            if SQUARE:
                                v = v * v
                            if CUBE:
                                v = v * v * v
                            if POW:
                                v = v ** power
                        if OMIT and v != v:
                            nans = U(nans + 1)
                        else:
                            acc_sum += v
                        t = U(t + L)
                        k = U(k + qL)
                        j = U(j + rL)
                        if j >= nw:
                            j = U(j - nw)
                            k = U(k + 1)
            delta = U(16)
            while delta >= CB:
                if OMIT:
                    os, on = _shfl_down2(acc_sum, SI(nans), delta)
                    acc_sum += os
                    nans = U(nans + U(on))
                else:
                    acc_sum += _shfl_down(acc_sum, delta)
                delta = U(delta // 2)
            if tpw > 32:
                warp = U(tid // 32)
                if tid % 32 < CB:
                    shs[warp * 32 + tid % 32] = acc_sum
                    shn[warp * 32 + tid % 32] = nans
                cuda.syncthreads()
                if tg < CB:
                    w = U(warp + 1)
                    while w < U(warp + tpw // 32):
                        acc_sum += shs[w * 32 + cc]
                        nans = U(nans + shn[w * 32 + cc])
                        w = U(w + 1)
                cuda.syncthreads()
            if active and tg < CB:
                o = U(U(U(p * Ro + ro) * Wo + wo) * C + c)
                if FINAL:
                    d = divisor if OVER else _divisor(U, ro, wo, aB, aL, div)
                    out[o] = _spatial.finish_sum(acc_sum, nans, taps, d, OMIT, OVER, MEAN,
                                                 ROOT_MEAN, ROOT, power)
                else:
                    ps[U(o * S + s)] = acc_sum
                    pn[U(o * S + s)] = nans
            b = U(b + cuda.gridDim.x)

    kernel.__name__ = kernel.__qualname__ = _name(
        "plane_sum_kernel", f"x{transform}", clip and "clip", f"f{finish}", root and f"r{root}",
        omit and "omit", override and "override", index, acc, final and "final")
    return jit(cache=True)(kernel)


@functools.cache
def sum_combine_kernel(finish, root, omit, override, index, acc):
    """Second pass of split sums: a warp per output adds its ``S`` partials and finishes."""
    U, ROOT, OMIT, OVER, ACC = index, root, omit, override, acc
    SI = shuffle_type(index)
    MEAN = finish == _arith.F_MEAN
    ROOT_MEAN = finish == _arith.F_ROOT_MEAN

    def kernel(out, ps, pn, first, count, div, g, aB, aL, power, divisor):
        Ro, Wo, C, S = U(g[6]), U(g[7]), U(g[11]), U(g[12])
        n = U(out.size)
        tid = U(cuda.threadIdx.x)
        lane = U(tid % 32)
        per_block = U(cuda.blockDim.x // 32)
        b = U(cuda.blockIdx.x)
        while U(b * per_block) < n:
            o = U(b * per_block + tid // 32)
            acc_sum = ACC(0)
            nans = U(0)
            if o < n:
                s = lane
                while s < S:
                    acc_sum += ps[U(o * S + s)]
                    nans = U(nans + pn[U(o * S + s)])
                    s = U(s + 32)
            delta = U(16)
            while delta >= 1:
                if OMIT:
                    os, on = _shfl_down2(acc_sum, SI(nans), delta)
                    acc_sum += os
                    nans = U(nans + U(on))
                else:
                    acc_sum += _shfl_down(acc_sum, delta)
                delta = U(delta // 2)
            if o < n and lane == 0:
                t = U(o // C)
                q = U(t // Wo)
                wo = U(t - q * Wo)
                ro = U(q % Ro)
                _, nr = _spatial._run_span(U, ro, aB, first, count)
                _, nw = _spatial._run_span(U, wo, aL, first, count)
                d = divisor if OVER else _divisor(U, ro, wo, aB, aL, div)
                out[o] = _spatial.finish_sum(acc_sum, nans, U(nr * nw), d, OMIT, OVER, MEAN,
                                             ROOT_MEAN, ROOT, power)
            b = U(b + cuda.gridDim.x)

    kernel.__name__ = kernel.__qualname__ = _name(
        "plane_sum_combine_kernel", f"f{finish}", root and f"r{root}", omit and "omit",
        override and "override", index, acc)
    return jit(cache=True)(kernel)


# --------------------------------------------------------------------------- partials

#: Partials buffers kept (one per device, stream and dtype; least recently used dropped).
PARTIALS_KEPT = 32
_PARTIALS: collections.OrderedDict = collections.OrderedDict()
_LOCK = threading.Lock()


def _stream_key(stream):
    if stream is None or (isinstance(stream, int) and stream == 0):
        return 0
    try:
        return ("handle", int(stream))
    except (TypeError, ValueError):
        return ("object", id(stream))


def partials(n, dtype, stream=0, role="values"):
    """A device array of ``n`` elements of ``dtype`` for the partial results (``role``:
    "values" or "indices") of launches on ``stream``: kept per device, stream, role and
    dtype (launches on one stream run in order, so one call's combining pass reads its
    partials before the next call's first pass writes them), allocated only when none
    that large is kept yet."""
    key = (compat.current_device_id(), _stream_key(stream), role, np.dtype(dtype).str)
    with _LOCK:
        buf = _PARTIALS.get(key)
        if buf is not None and buf.size >= n:
            _PARTIALS.move_to_end(key)
            return buf[:n]
    buf = compat.device_empty((max(n, 2 * (0 if buf is None else buf.size)),), dtype,
                              stream=stream)
    with _LOCK:
        _PARTIALS[key] = buf
        _PARTIALS.move_to_end(key)
        while len(_PARTIALS) > PARTIALS_KEPT:
            _PARTIALS.popitem(last=False)
    return buf[:n]


# --------------------------------------------------------------------------- launches


def _taps(plan):
    return math.prod(a.max_count for a in plan.axes)


def suits(plan, outputs, fill):
    """Whether a pool takes the plane path: one outer axis (every global pool), windows of
    at least :data:`MIN_TAPS` taps, and outputs too few to fill the device with a thread
    each (``fill`` threads), or a channels-first global pool (whose window kernel would
    read a plane apart in each warp)."""
    if plan.tables.axes.shape[0] != 2 or _taps(plan) < MIN_TAPS:
        return False
    if plan.channels <= 1 and all(a.out_size == 1 for a in plan.axes):
        return True
    return outputs < fill


def _pow2_at_least(n):
    return 1 << max(0, int(n) - 1).bit_length()


def layout(plan, fill):
    """``(L, CB, G, S)``: lanes and channels of a window-group, groups per block, splits."""
    threads = block_threads()
    C = max(plan.channels, 1)
    CB = 1 if C == 1 else min(32, _pow2_at_least(C))
    taps = _taps(plan)
    L = min(threads // CB, max(32 // CB, _pow2_at_least(-(-taps // TAPS_PER_LANE))))
    G = threads // (L * CB)
    _, Ro, WoC = plan.canonical_out_shape
    n_groups = plan.planes * Ro * (WoC // C) * -(-C // CB)
    blocks = -(-n_groups // G)
    resident = max(1, fill // threads)
    S = 1
    if blocks < resident:
        S = max(1, min(-(-resident // blocks), taps // (L * SPLIT_TAPS), MAX_SPLITS))
    return L, CB, G, S


def launches(plan, xc, vc, ic, tables, stream=0):
    """The launches (``(kernel, args, items, block threads)``) of the plane path."""
    fill = fill_threads()
    L, CB, G, S = layout(plan, fill)
    axes = plan.tables.axes
    P, R, WC = plan.canonical_in_shape
    _, Ro, WoC = plan.canonical_out_shape
    C = max(plan.channels, 1)
    W, Wo = WC // C, WoC // C
    n_cb = -(-C // CB)
    n_groups = P * Ro * Wo * n_cb
    n_work = -(-n_groups // G) * S
    index = _spatial.index_type(xc.size, vc.size * S, n_groups * CB * S)
    g = (n_work, n_groups, G, L, CB, n_cb, Ro, Wo, R * WC, WC, W, C, S)
    aB, aL = _spatial.axis_run(axes[0]), _spatial.axis_run(axes[1])
    t = tables
    x, out = xc.reshape(-1), vc.reshape(-1)
    root = _spatial.root_kind(plan, vc.dtype) if plan.reducer == "sum" else 0
    # a float64 root (pow) is left to the combining kernel, where registers are plenty
    final = S == 1 and root != 3
    n_out = vc.size
    threads = block_threads()
    warps = threads // 32
    if plan.reducer in ("max", "min"):
        is_min = plan.reducer == "min"
        vt = _spatial.compare_type(xc.dtype)
        kernel = extreme_kernel(is_min, plan.omit_nan, plan.return_indices, index, vt, final)
        idx = ic.reshape(-1)
        if final:
            pv, pi = out, idx  # unused
        else:
            pv = partials(n_out * S, as_dtype(vt), stream)
            pi = partials(n_out * S, as_dtype(index), stream, "indices")
        first = (kernel, (x, out, idx, pv, pi, t["first"], t["count"], g, aB, aL), n_work,
                 threads)
        if final:
            return [first]
        combine = extreme_combine_kernel(is_min, plan.omit_nan, plan.return_indices, index, vt)
        return [first, (combine, (out, idx, pv, pi, n_out, S), -(-n_out // warps), threads)]
    term, clip = _spatial.summed_term(plan, xc.dtype)
    override = float(plan.divisor_override)
    fin = FINISHES[plan.finish]
    acc = numba.from_dtype(plan.acc_dtype)
    kernel = sum_kernel(term, clip, fin, root, plan.omit_nan, override != 0.0, index, acc,
                        final)
    if final:
        ps, pn = out, out  # unused
    else:
        ps = partials(n_out * S, plan.acc_dtype, stream)
        pn = partials(n_out * S, as_dtype(index), stream, "indices")
    first = (kernel, (x, out, ps, pn, t["first"], t["count"], t["div"], g, aB, aL,
                      float(plan.power), np.float32(plan.power), float(plan.eps), override),
             n_work, threads)
    if final:
        return [first]
    combine = sum_combine_kernel(fin, root, plan.omit_nan, override != 0.0, index, acc)
    return [first, (combine, (out, ps, pn, t["first"], t["count"], t["div"], g, aB, aL,
                              float(plan.power), override), -(-n_out // warps), threads)]
