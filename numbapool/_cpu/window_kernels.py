"""CPU kernels for sliding, adaptive and global window pooling over N-D arrays.

Every spatial pool runs on a canonical view (see :class:`numbapool.plan.SpatialPlan`):

* input ``x`` C-contiguous ``(P, R, W*C)``: P independent planes, R rows (the product of the
  outer spatial axes), each row W positions of the last spatial axis times C channels
  (C == 1 for channels-first);
* output ``out`` C-contiguous ``(P, Ro, Wo*C)``.

A task is one output row ``(p, ro)`` (or one part of it, see below) and runs in two stages:

A. the input rows of the outer window are reduced element-wise into a row buffer.  The
   inner loop runs over W*C contiguous elements with no data-dependent branches (NaN is
   handled with selects), so LLVM vectorises it.  Max/min windows of one input row (1-D
   pools, kernels of 1 on the outer axes) skip this stage: stage B reads the input row
   where it is (:func:`reads_rows`);
B. the last axis is reduced window by window from the buffer.  Uniform full windows (the
   interior of a sliding pool) of channels-first rows have their own loop, and for the
   common shapes (kernel 2 or 3, stride 1 or 2, no dilation) the kernel, stride and
   dilation are compile-time constants, so the taps unroll into vector loads (3 taps at
   stride 2 first split the row into even and odd columns); other shapes loop tap-major,
   with contiguous loads at stride 1 (:func:`~numbapool._cpu.specialise.uniform_loop`
   names each loop); channels-last rows vectorise over C.

Branches inside a hot loop stop LLVM from vectorising it.  The max/min and NaN-policy flags
are runtime arguments combined with bitwise operators (``_arith.take``), which vectorise.
Loops index views from zero, so LLVM can drop Numba's negative-index wraparound (which
also blocks vectorisation).  The loops themselves are ``@overload(prefer_literal=True)``
generators: the operation (extreme or sum) and the window shapes are compile-time
constants baked into the loops they emit (:mod:`numbapool._cpu.specialise` lists them).

Scratch is bounded: a row whose buffers would exceed ``tables.buffer`` elements (a long
1-D signal, a very wide row) is split into parts of at most ``buffer // C`` outputs, each
its own task, and a part is processed in blocks of outputs whose input columns fit the
buffer (:func:`row_layout`, :func:`_next_block`); a single window wider than the buffer is
folded a chunk of taps at a time, continuing the same accumulators, so the order of
operations, and every result, is that of one pass.  Other rows take one block, the whole
row.  The window tables come from :mod:`numbapool.geometry` via ``SpatialPlan.tables``, a
:class:`~numbapool.plan.WindowTables` named ``tables`` in the kernels: a window is either
in its axis's uniform run (closed form) or in the small edge tables (see :func:`_edge`).
"""

import functools

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .. import _arith
from ..plan import BASE, HI, K, LO, OFF, OUT, ROWS, STEP, S
from .jit import helper
from .half import load, store
from .specialise import (
    LOOP_CONTIGUOUS, LOOP_WINDOW_MAJOR, NO_UNIFORM, OP_EXTREME, OP_SUM, PHASED_WINDOWS,
    UNROLLED_INDEXED, UNROLLED_WINDOWS, literal, runtime_loop,
)

_take = helper(_arith.take)
_runtime_loop = helper(runtime_loop, inline="always")
_take_indexed = helper(_arith.take_indexed)
_transform = helper(_arith.transform)
_finish_value = helper(_arith.finish)


@intrinsic
def _borrowed(typingctx, arr):
    """``arr`` without its reference count: for an array a function receives, which its
    caller holds until the function returns.

    Every view of an array, and every array a helper receives, costs an atomic increment
    and decrement of the array's reference count; for the arrays all threads share (the
    input, the output, the window tables) those atomics bounce one cache line between the
    cores, and even on a thread's own scratch, on short rows, they cost more than a task's
    arithmetic.  So the task loops borrow every array they use, all received from the
    kernels' entry points (the scratch too): with no meminfo, Numba's reference counting
    of them and of their views is a null test.  Never for an array the same function
    allocates.
    """
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, signature, args):
        view = context.make_array(signature.args[0])(context, builder, value=args[0])
        view.meminfo = cgutils.get_null_value(view.meminfo.type)
        view.parent = cgutils.get_null_value(view.parent.type)
        return view._getvalue()

    return arr(arr), codegen


# --------------------------------------------------------------------------- window geometry
# A task's bookkeeping must stay small next to a short row's arithmetic.  Calls of jitted
# functions that take arrays are its dear part (each array travels as several scalars and
# is reference counted on entry and exit), so per-task and per-window code reads the
# tables itself, through the scalar helpers below, and calls only the loops, and only for
# non-empty ranges.


@helper(inline="always")
def _axis(axes, a):
    """The scalars of axis ``a``: ``(lo, hi, k, s, off, base, step)`` (columns of
    :class:`~numbapool.plan.WindowTables`)."""
    return (axes[a, LO], axes[a, HI], axes[a, K], axes[a, S], axes[a, OFF], axes[a, BASE],
            axes[a, STEP])


@helper(inline="always")
def _edge(g, o):
    """``-1`` when window ``o`` of axis ``g`` (see :func:`_axis`) is in the axis's run, where
    it reads ``g[2]`` taps from ``o * g[3] + g[4]``; otherwise its index in the edge tables
    (``tables.first``, ``tables.count``, ``tables.div``, ``tables.inv``)."""
    lo, hi = g[0], g[1]
    if o < lo:
        return g[5] + o
    if o >= hi:
        return g[5] + o - hi + lo
    return -1


# --------------------------------------------------------------------------- task geometry


def row_layout(buffer, W, Wo, C):
    """``(whole, per, parts)`` for rows of W input and Wo output positions of C channels.

    ``whole``: the row's input and output fit ``buffer`` elements, and a task takes the
    whole row (``per == Wo``, one part).  Otherwise a row is ``parts`` tasks of ``per``
    outputs each (the last one shorter), with buffers of ``per * C`` elements.
    """
    if W * C <= buffer and Wo * C <= buffer:
        return True, Wo, 1
    per = max(1, buffer // C)
    return False, per, (Wo + per - 1) // per


_row_layout = helper(row_layout, inline="always")


def task_count(x_shape, out_shape, buffer, C):
    """Number of tasks of a pool from canonical shape ``x_shape`` to ``out_shape``."""
    parts = row_layout(buffer, x_shape[2] // C, out_shape[2] // C, C)[2]
    return out_shape[0] * out_shape[1] * parts


@helper(inline="always")
def _task(t, parts, ro_count):
    """``(plane, output row, part)`` of task ``t`` (no division for rows of one part)."""
    row, part = t, 0
    if parts != 1:
        row = t // parts
        part = t - row * parts
    p = row // ro_count
    return p, row - p * ro_count, part


@helper
def _outer_windows(axes, first, count, ro, ow):
    """Output row ``ro``'s position (``ow[0]``), window start (``ow[1]``) and tap count
    (``ow[2]``) along each outer axis; returns the number of input rows of its window.

    Kernels inline the case of one outer axis themselves (see the module's comment).
    """
    n = 1
    q = ro
    for a in range(ow.shape[1] - 1, -1, -1):
        g = _axis(axes, a)
        size = axes[a, OUT]
        r = q // size
        o = q - r * size
        q = r
        f, c = _window(g, first, count, o)
        ow[0, a] = o
        ow[1, a] = f
        ow[2, a] = c
        n *= c
    return n


@helper
def _outer_row(k, ow, axes):
    """Flat input row of outer window tap ``k`` (row-major over the outer axes, so rows come
    in increasing order); called with k = 0, 1, 2, ... in turn: ``ow[3]`` is the odometer."""
    n = ow.shape[1]
    if k == 0:
        ow[3, :] = 0
    else:
        a = n - 1
        while a >= 0:
            ow[3, a] += 1
            if ow[3, a] < ow[2, a]:
                break
            ow[3, a] = 0
            a -= 1
    r = 0
    for a in range(n):
        r += (ow[1, a] + ow[3, a] * axes[a, STEP]) * axes[a, ROWS]
    return r


@helper(inline="always")
def _task_rows(t, parts, ro_count, axes, first, count, ow):
    """``(plane, output row, part, r0, n_rows)`` of task ``t``: with one outer axis the
    output row reads ``n_rows`` input rows from ``r0``; with more, ``r0 == 0`` and
    :func:`_outer_windows` has filled ``ow`` (see :func:`_outer_row`)."""
    p, ro, part = _task(t, parts, ro_count)
    if axes.shape[0] == 2:
        r0, n_rows = _window(_axis(axes, 0), first, count, ro)
        return p, ro, part, r0, n_rows
    return p, ro, part, 0, _outer_windows(axes, first, count, ro, ow)


@helper(inline="always")
def _window(g, first, count, o):
    """``(first, count)`` of window ``o`` of axis ``g`` (see :func:`_axis`)."""
    e = _edge(g, o)
    if e < 0:
        return o * g[3] + g[4], g[2]
    return first[e], count[e]


@helper
def _next_block(axes, first, count, w0, j0, end, cols):
    """The next block of last-axis outputs, from ``w0``, that ``cols`` buffer columns hold.

    Returns ``(w1, c0, c1, j1)``: outputs ``[w0, w1)`` (``w1 <= end``) read input columns
    ``[c0, c1)``.  ``j1 == 0`` for whole windows; otherwise window ``w0`` alone is wider
    than the buffer and the block is its taps ``[j0, j1)``.
    """
    g = _axis(axes, axes.shape[0] - 1)
    lo, hi, k, s, off, d = g[0], g[1], g[2], g[3], g[4], g[6]
    f, n = _window(g, first, count, w0)
    if j0 > 0 or (n - 1) * d + 1 > cols:
        j1 = min(n, j0 + (cols - 1) // d + 1)
        return w0 + 1, f + j0 * d, f + (j1 - 1) * d + 1, j1
    span = (k - 1) * d + 1
    c0 = f
    c1 = f + (n - 1) * d + 1
    w1 = w0 + 1
    while w1 < end:
        if lo <= w1 < hi:
            # run windows start at w*s + off and grow to the right: take all that fit at once
            n0 = min(c0, w1 * s + off)
            room = n0 + cols - off - span  # run windows with w*s <= room fit
            if c1 - n0 > cols or room < w1 * s:
                break
            w_end = min(hi, end, room // s + 1)
            c0 = n0
            c1 = max(c1, (w_end - 1) * s + off + span)
            w1 = w_end
        else:
            f, n = _window(g, first, count, w1)
            n0 = min(c0, f)
            n1 = max(c1, f + (n - 1) * d + 1)
            if n1 - n0 > cols:
                break
            c0 = n0
            c1 = n1
            w1 += 1
    return w1, c0, c1, 0


@helper(inline="always")
def _borrowed_tables(axes, first, count, uni):
    """The window tables' arrays, borrowed (see :func:`_borrowed`)."""
    return _borrowed(axes), _borrowed(first), _borrowed(count), _borrowed(uni)


@helper(inline="always")
def _rows_of(x, out, axes, buffer, C):
    """A task loop's constants: ``(n_outer, W, Wo, whole, per, parts, ro_count, d)``: the
    outer axes, the row lengths, :func:`row_layout`, the output rows of a plane and the last
    axis's dilation."""
    n_outer = axes.shape[0] - 1
    W, Wo = x.shape[2] // C, out.shape[2] // C
    whole, per, parts = _row_layout(buffer, W, Wo, C)
    return n_outer, W, Wo, whole, per, parts, out.shape[1], axes[n_outer, STEP]


#: Zero as an int64, not a literal 0: a literal argument (``j0`` of a block of whole
#: windows, the first outer row) would compile the helper that takes it a second time.
_ZERO = np.int64(0)


@helper(inline="always")
def _block(whole, W, Wo, axes, first, count, w0, j0, end, cols):
    """The whole row when it fits the buffers, else :func:`_next_block`."""
    if whole:
        return Wo, 0, W, 0
    return _next_block(axes, first, count, w0, j0, end, cols)


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


def fold_windows(buf, obuf, v0, v1, w0, c0, axes, first, count, C, op, is_min, omit):
    """Stage B for last-axis outputs ``[v0, v1)`` of any window shape (vectorised over C).

    ``obuf`` holds outputs from ``w0`` on, ``buf`` input columns from ``c0`` on.
    """


@overload(fold_windows, prefer_literal=True)
def _ol_fold_windows(buf, obuf, v0, v1, w0, c0, axes, first, count, C, op, is_min, omit):
    combine = _combiner(literal(op, "op"))

    def impl(buf, obuf, v0, v1, w0, c0, axes, first, count, C, op, is_min, omit):
        g = _axis(axes, axes.shape[0] - 1)
        d = g[6]
        # zero-based loops over views: LLVM then knows every index is non-negative and drops
        # Numba's negative-index wraparound, which otherwise blocks vectorisation
        for wo in range(v0, v1):
            f, n = _window(g, first, count, wo)
            dst = obuf[(wo - w0) * C:(wo - w0 + 1) * C]
            src = buf[(f - c0) * C:]
            for c in range(C):
                dst[c] = src[c]
            for j in range(1, n):
                tap = src[j * d * C:]
                for c in range(C):
                    dst[c] = combine(dst[c], tap[c], is_min, omit)

    return impl


def fold_taps(buf, obuf, j0, j1, d, C, op, is_min, omit):
    """Stage B for taps ``[j0, j1)`` of one window, tap ``j0`` in ``buf``'s first column:
    ``obuf[:C]`` starts from the window's first tap (``j0 == 0``) or goes on from where the
    previous chunk of taps left it."""


@overload(fold_taps, prefer_literal=True)
def _ol_fold_taps(buf, obuf, j0, j1, d, C, op, is_min, omit):
    combine = _combiner(literal(op, "op"))

    def impl(buf, obuf, j0, j1, d, C, op, is_min, omit):
        start = 0
        if j0 == 0:
            for c in range(C):
                obuf[c] = buf[c]
            start = 1
        for j in range(start, j1 - j0):
            tap = buf[j * d * C:]
            for c in range(C):
                obuf[c] = combine(obuf[c], tap[c], is_min, omit)

    return impl


def _out_scratch(per, C):
    """Elements of an output buffer for ``per`` outputs of ``C`` channels: the outputs, then
    room for the even/odd split of :func:`fold_uniform`'s stride-2 loop."""
    return per * C + 2 * per + 2


def task_scratch(family, x_shape, out_shape, tables, C, dtype, omit=False):
    """The scratch arrays of one range of tasks of a window kernel family
    (``"windows_extreme"``, ``"windows_indexed"`` or ``"windows_sum"``): row buffers of
    ``dtype`` (the loads' type, or the sums' accumulator), int64 winners' rows or NaN
    counts (``omit``), the outer-window odometer ``ow`` and the sums' reciprocal divisors.
    Each thread's range gets its own."""
    W, Wo = x_shape[2] // C, out_shape[2] // C
    whole, per, _ = row_layout(tables.buffer, W, Wo, C)
    n_buf = W * C if whole else per * C
    n_obuf = _out_scratch(per, C)
    ow = np.zeros((4, tables.axes.shape[0] - 1), np.int64)
    if family == "windows_extreme":
        return np.zeros(n_buf, dtype), np.zeros(n_obuf, dtype), ow
    if family == "windows_indexed":
        return (np.zeros(n_buf, dtype), np.zeros(n_buf, np.int64), np.zeros(C, dtype),
                np.zeros(C, np.int64), ow)
    counts = (n_buf, n_obuf) if omit else (0, 0)  # NaN counts are only kept under omit
    return (np.zeros(n_buf, dtype), np.zeros(n_obuf, dtype), np.zeros(counts[0], np.int64),
            np.zeros(counts[1], np.int64), ow, np.zeros(per))


def fold_uniform(buf, obuf, lo, hi, k, s, d, off, op, is_min, omit, window):
    """Stage B for channels-first uniform windows ``o*s + off + j*d`` (``j < k``), ``lo <= o < hi``.

    ``window`` (a compile-time constant, see :func:`~numbapool._cpu.specialise.window_code`)
    names the shape ``(k, s, d)`` in :data:`UNROLLED_WINDOWS`: then ``k``, ``s`` and ``d``
    are constants, and the taps unroll into one interleaved vector load per output block,
    far faster than any loop with a runtime tap count; otherwise (``RUNTIME_WINDOW``) the
    loop runs tap-major.
    """


@overload(fold_uniform, prefer_literal=True)
def _ol_fold_uniform(buf, obuf, lo, hi, k, s, d, off, op, is_min, omit, window):
    combine = _combiner(literal(op, "op"))
    code = literal(window, "window")
    shape = list(UNROLLED_WINDOWS[code]) if code >= 0 else [None, None, None]

    if tuple(shape) in PHASED_WINDOWS:
        assert tuple(shape) == (3, 2, 1), "the phased loop below is written for 3 taps"

        def phased(buf, obuf, lo, hi, k, s, d, off, op, is_min, omit, window):
            # taps 2i and 2i+2 of a stride-2 group defeat LLVM's interleaved loads, so the
            # input is first split into its even and odd columns (a full stride-2 group,
            # which vectorises), and the taps become contiguous loads: even[i], odd[i],
            # even[i + 1].  The split lives at the end of obuf (see _out_scratch).
            n = hi - lo
            src = buf[lo * 2 + off:]
            end = obuf.shape[0]
            even = obuf[end - 2 * n - 1:end - n]
            odd = obuf[end - n:]
            for i in range(n):
                even[i] = src[2 * i]
                odd[i] = src[2 * i + 1]
            even[n] = src[2 * n]
            dst = obuf[lo:hi]
            for i in range(n):
                m = combine(even[i], odd[i], is_min, omit)
                dst[i] = combine(m, even[i + 1], is_min, omit)

        return phased

    if None not in shape:
        taps, step, dil = shape

        def unrolled(buf, obuf, lo, hi, k, s, d, off, op, is_min, omit, window):
            dst = obuf[lo:hi]
            src = buf[lo * step + off:]
            for i in range(hi - lo):
                b = i * step
                m = src[b]
                for j in range(1, taps):
                    m = combine(m, src[b + j * dil], is_min, omit)
                dst[i] = m

        return unrolled

    def impl(buf, obuf, lo, hi, k, s, d, off, op, is_min, omit, window):
        dst = obuf[lo:hi]
        src = buf[lo * s + off:]
        loop = _runtime_loop(hi - lo, k, s)
        if loop == LOOP_WINDOW_MAJOR:
            # few long windows (global pools, wide adaptive ones): window-major, since
            # the tap-major loop's view per tap would cost more than the tap's work
            for i in range(hi - lo):
                win = src[i * s:]
                m = win[0]
                for j in range(1, k):
                    m = combine(m, win[j * d], is_min, omit)
                dst[i] = m
            return
        if loop == LOOP_CONTIGUOUS:
            for i in range(hi - lo):  # not dst[:] = ...: its shape check costs 2 s to compile
                dst[i] = src[i]
            for j in range(1, k):
                tap = src[j * d:]
                for i in range(hi - lo):
                    dst[i] = combine(dst[i], tap[i], is_min, omit)
            return
        for i in range(hi - lo):
            dst[i] = src[i * s]
        for j in range(1, k):
            tap = src[j * d:]
            for i in range(hi - lo):
                dst[i] = combine(dst[i], tap[i * s], is_min, omit)

    return impl


@helper(inline="always")
def _uniform_part(uni, C, w0, w1):
    """``(lo, hi)``: the outputs of ``[w0, w1)`` that stage B folds with its uniform loops
    (channels-first rows only); ``lo == hi == w1`` when there are none."""
    lo, hi = max(uni[0], w0), min(uni[1], w1)
    if C != 1 or hi <= lo:
        return w1, w1
    return lo, hi


def fold_last_axis(buf, obuf, axes, first, count, uni, C, w0, w1, c0, op, is_min, omit,
                   window):
    """Stage B: reduce last-axis outputs ``[w0, w1)`` into ``obuf`` (which starts at ``w0``)
    from ``buf`` (which starts at input column ``c0``); ``uni`` is ``tables.l_uniform`` and
    ``window`` its constant code (:func:`~numbapool._cpu.specialise.window_code`): with
    ``NO_UNIFORM`` no uniform loop is compiled at all.

    Inlined where it is called, and it calls the loops only for non-empty ranges: a call
    that passes arrays costs about as much as a short row's stage B.
    """


@overload(fold_last_axis, prefer_literal=True, inline="always")
def _ol_fold_last_axis(buf, obuf, axes, first, count, uni, C, w0, w1, c0, op, is_min, omit,
                       window):
    OP = literal(op, "op")
    CODE = literal(window, "window")
    if CODE == NO_UNIFORM:
        def windows_only(buf, obuf, axes, first, count, uni, C, w0, w1, c0, op, is_min, omit,
                         window):
            fold_windows(buf, obuf, w0, w1, w0, c0, axes, first, count, C, OP, is_min, omit)

        return windows_only

    def impl(buf, obuf, axes, first, count, uni, C, w0, w1, c0, op, is_min, omit, window):
        lo, hi = _uniform_part(uni, C, w0, w1)
        if lo > w0:
            fold_windows(buf, obuf, w0, lo, w0, c0, axes, first, count, C, OP, is_min, omit)
        if w1 > hi:
            fold_windows(buf, obuf, hi, w1, w0, c0, axes, first, count, C, OP, is_min, omit)
        if hi > lo:
            # relative to the buffers: output o - w0 reads column o*s + off - c0
            s = uni[3]
            fold_uniform(buf, obuf, lo - w0, hi - w0, uni[2], s, axes[-1, STEP],
                         uni[4] + w0 * s - c0, OP, is_min, omit, CODE)

    return impl


def reads_rows(x, buf):
    """Whether stage B can fold ``x``'s rows where they are (a compile-time constant): when
    its elements are ``buf``'s (not float16, which is decoded into the buffer)."""


@overload(reads_rows)
def _ol_reads_rows(x, buf):
    value = x.dtype == buf.dtype
    return lambda x, buf: value


@intrinsic
def _as_type_of(typingctx, arr, like):
    """``arr`` seen as an array of ``like``'s type (same dtype and rank; the kernels only
    read it): a read-only input row can then stand where a row buffer stands."""
    if not (isinstance(arr, types.Array) and isinstance(like, types.Array)
            and arr.dtype == like.dtype and arr.ndim == like.ndim):
        return None

    def codegen(context, builder, signature, args):
        return args[0]  # both types have the same data model

    return like(arr, like), codegen


def input_row(x, p, r, e0, e1, buf):
    """Elements ``[e0, e1)`` of row ``r`` of plane ``p``, typed as ``buf``; only called
    when :func:`reads_rows` (otherwise typed, never run)."""


@overload(input_row, inline="always")
def _ol_input_row(x, p, r, e0, e1, buf):
    if x.dtype != buf.dtype:
        return lambda x, p, r, e0, e1, buf: buf[:e1 - e0]
    return lambda x, p, r, e0, e1, buf: _as_type_of(x[p, r, e0:e1], buf)


@helper(inline="always")
def _rows_extreme(x, p, buf, e0, r0, n_rows, ow, axes, is_min, omit):
    """Stage A of max/min: the outer window's rows, elements ``[e0, e0 + len(buf))``; rows
    ``r0 + k * step`` along a single outer axis, else those of :func:`_outer_row`."""
    n_outer = ow.shape[1]
    step = axes[0, STEP]
    for k in range(n_rows):
        r = r0 + k * step if n_outer == 1 else _outer_row(k, ow, axes)
        fold_row(x[p, r, e0:], buf, k == 0, OP_EXTREME, is_min, omit)


def has_signed_zeros(a):
    """Whether the values of array ``a`` have two zeros (floats), as a compile-time
    constant."""


@overload(has_signed_zeros)
def _ol_has_signed_zeros(a):
    value = isinstance(a.dtype, types.Float)
    return lambda a: value


@helper
def _first_zeros(x, p, obuf, w0, w1, C, r0, n_rows, ow, axes, first, count):
    """Give each zero of ``obuf`` (last-axis outputs ``[w0, w1)`` of one output row) the first
    zero of its window in row-major window order (rows as in :func:`_rows_extreme`).

    Stage A then stage B meet a window's elements column by column, so among equal values
    they keep the first of the first column, not the first in row-major order.  Only zeros,
    whose two signs compare equal, can tell the difference (the indexed kernel tracks rows
    and needs no fix).  A max or min of zero means no element beat zero, and under
    "propagate" no NaN, so the first element equal to zero is the window's winner.  Zero
    results are rare enough that walking their windows again costs little.
    """
    g = _axis(axes, axes.shape[0] - 1)
    d = g[6]
    n_outer = ow.shape[1]
    step = axes[0, STEP]
    for i in range((w1 - w0) * C):
        if obuf[i] != 0:
            continue
        w = i // C
        c = i - w * C
        f, n = _window(g, first, count, w0 + w)
        for k in range(n_rows):
            row = x[p, r0 + k * step if n_outer == 1 else _outer_row(k, ow, axes)]
            found = -1
            for j in range(n):
                e = (f + j * d) * C + c
                if load(row, e) == 0:
                    found = e
                    break
            if found >= 0:
                obuf[i] = load(row, found)
                break


@functools.cache
def extreme_tasks(window):
    """The max (or min) pooling kernel, values only, compiled for the window code
    ``window`` (:func:`~numbapool._cpu.specialise.window_code`):
    ``kernel(x, out, t0, t1, axes, first, count, uni, buffer, C, is_min, omit, *scratch)``
    runs tasks ``[t0, t1)``.  ``axes`` to ``buffer`` are the plan's
    :class:`~numbapool.plan.WindowTables` (``uni`` its ``l_uniform``), ``scratch`` the
    range's own arrays (:func:`task_scratch`): the caller allocates them, so that the task
    loop, the kernel itself, can borrow every array it uses.
    """

    def kernel(x, out, t0, t1, axes, first, count, uni, buffer, C, is_min, omit, buf, obuf,
               ow):
        x, out, buf, obuf, ow = _borrowed(x), _borrowed(out), _borrowed(buf), _borrowed(obuf), \
            _borrowed(ow)
        axes, first, count, uni = _borrowed_tables(axes, first, count, uni)
        n_outer, W, Wo, whole, per, parts, ro_count, d = _rows_of(x, out, axes, buffer, C)
        for t in range(t0, t1):
            p, ro, part, r0, n_rows = _task_rows(t, parts, ro_count, axes, first, count, ow)
            dst = out[p, ro]
            w0 = part * per
            end = min(Wo, w0 + per)
            j0 = _ZERO
            while w0 < end:  # one block (the whole row), unless the row is long
                w1, c0, c1, j1 = _block(whole, W, Wo, axes, first, count, w0, j0, end, per)
                if n_rows == 1 and reads_rows(x, buf):  # stage A would only copy the row
                    r = r0 if n_outer == 1 else _outer_row(_ZERO, ow, axes)
                    block = input_row(x, p, r, c0 * C, c1 * C, buf)
                else:
                    block = buf[:(c1 - c0) * C]
                    _rows_extreme(x, p, block, c0 * C, r0, n_rows, ow, axes, is_min, omit)
                if j1 == 0:
                    fold_last_axis(block, obuf, axes, first, count, uni, C, w0, w1, c0, OP_EXTREME,
                                   is_min, omit, window)
                else:
                    fold_taps(block, obuf, j0, j1, d, C, OP_EXTREME, is_min, omit)
                    if j1 < _window(_axis(axes, n_outer), first, count, w0)[1]:
                        j0 = j1
                        continue
                    j0 = _ZERO
                vals = dst[w0 * C:w1 * C]
                if has_signed_zeros(obuf):
                    # scanned here, so that the call happens only for a block holding a zero
                    any_zero = False
                    for i in range(vals.shape[0]):
                        any_zero |= obuf[i] == 0
                    if any_zero:
                        _first_zeros(x, p, obuf, w0, w1, C, r0, n_rows, ow, axes, first, count)
                for i in range(vals.shape[0]):
                    store(vals, i, obuf[i])
                w0 = w1

    return njit(cache=True, nogil=True)(kernel)
def fold_indexed_uniform(buf, ibuf, dst, dsti, lo, hi, k, s, d, off, W, c0, is_min, omit,
                         window):
    """Indexed stage B for channels-first uniform windows (see :func:`fold_uniform`).

    ``ibuf`` holds the input row of each buffered winner and ``buf`` starts at input column
    ``c0``; the flat index of a candidate is ``row * W + column``.  Constant ``k``, ``s``,
    ``d`` (``window`` names a shape of :data:`UNROLLED_INDEXED`) unroll the taps,
    as in fold_uniform.  (Splitting the columns into even and odd ones first, as
    fold_uniform does for 3 taps at stride 2, made this loop slower.)
    """


@overload(fold_indexed_uniform, prefer_literal=True)
def _ol_fold_indexed_uniform(buf, ibuf, dst, dsti, lo, hi, k, s, d, off, W, c0, is_min,
                             omit, window):
    code = literal(window, "window")
    taps, step, dil = UNROLLED_INDEXED[code] if code >= 0 else (None, None, None)

    def impl(buf, ibuf, dst, dsti, lo, hi, k, s, d, off, W, c0, is_min, omit, window):
        kk = k if taps is None else taps
        ss = s if step is None else step
        dd = d if dil is None else dil
        col0 = lo * ss + off  # in the buffer
        base = c0 + col0  # in the input row
        src = buf[col0:]
        isrc = ibuf[col0:]
        vals = dst[lo:hi]
        inds = dsti[lo:hi]
        for i in range(hi - lo):
            b = i * ss
            m = src[b]
            mi = isrc[b] * W + base + b
            for j in range(1, kk):
                v = src[b + j * dd]
                vi = isrc[b + j * dd] * W + base + b + j * dd
                take = _take_indexed(m, mi, v, vi, is_min, omit)
                m = v if take else m
                mi = vi if take else mi
            store(vals, i, m)
            inds[i] = mi

    return impl


@helper(inline="always")
def _rows_indexed(x, p, buf, ibuf, e0, r0, n_rows, ow, axes, is_min, omit):
    """Stage A of indexed max/min over elements ``[e0, e0 + len(buf))`` (rows as in
    :func:`_rows_extreme`): the winner of each element and its input row."""
    n_outer = ow.shape[1]
    step = axes[0, STEP]
    n = buf.shape[0]
    for kr in range(n_rows):
        r = r0 + kr * step if n_outer == 1 else _outer_row(kr, ow, axes)
        src = x[p, r, e0:]
        if kr == 0:
            for e in range(n):
                buf[e] = load(src, e)
                ibuf[e] = r
        else:
            for e in range(n):
                v = load(src, e)
                m = buf[e]
                # a NaN never displaces an earlier NaN: the first NaN's index is kept
                take = _take(m, v, is_min, omit) & ((m == m) | (v == v))
                buf[e] = v if take else buf[e]
                ibuf[e] = r if take else ibuf[e]


@helper
def _indexed_windows(buf, ibuf, dst, dsti, v0, v1, c0, acc, iacc, axes, first, count, W, C,
                     is_min, omit):
    """Indexed stage B of last-axis outputs ``[v0, v1)`` of any window shape, into the output
    row; ``buf`` starts at input column ``c0``."""
    g = _axis(axes, axes.shape[0] - 1)
    d = g[6]
    for wo in range(v0, v1):
        col0, n = _window(g, first, count, wo)
        src_v = buf[(col0 - c0) * C:]
        src_i = ibuf[(col0 - c0) * C:]
        for c in range(C):
            acc[c] = src_v[c]
            iacc[c] = src_i[c] * W + col0
        for j in range(1, n):
            col = col0 + j * d
            tap_v = src_v[j * d * C:]
            tap_i = src_i[j * d * C:]
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


@helper
def _taps_indexed(buf, ibuf, acc, iacc, col, j0, j1, d, W, C, is_min, omit):
    """Indexed stage B of taps ``[j0, j1)`` of one window wider than the buffer, into
    ``acc``/``iacc`` (started at ``j0 == 0``); tap ``j0`` is ``buf``'s first column, input
    column ``col``."""
    start = 0
    if j0 == 0:
        for c in range(C):
            acc[c] = buf[c]
            iacc[c] = ibuf[c] * W + col
        start = 1
    for j in range(start, j1 - j0):
        tap_v = buf[j * d * C:]
        tap_i = ibuf[j * d * C:]
        cj = col + j * d
        for c in range(C):
            v = tap_v[c]
            vi = tap_i[c] * W + cj
            take = _take_indexed(acc[c], iacc[c], v, vi, is_min, omit)
            acc[c] = v if take else acc[c]
            iacc[c] = vi if take else iacc[c]


@helper
def _last_axis_indexed(buf, ibuf, dst, dsti, w0, w1, c0, acc, iacc, axes, first, count, uni,
                       W, C, is_min, omit, window):
    """Indexed stage B of outputs ``[w0, w1)`` (written straight into the output row);
    ``window`` as in :func:`fold_last_axis`."""
    d = axes[axes.shape[0] - 1, STEP]
    lo, hi, k, s, off = max(uni[0], w0), min(uni[1], w1), uni[2], uni[3], uni[4]
    if window == NO_UNIFORM or C != 1 or hi <= lo:
        lo = hi = w1
    else:
        fold_indexed_uniform(buf, ibuf, dst, dsti, lo, hi, k, s, d, off - c0, W, c0, is_min,
                             omit, window)
    if lo > w0:  # (no call for an empty range)
        _indexed_windows(buf, ibuf, dst, dsti, w0, lo, c0, acc, iacc, axes, first, count, W, C,
                         is_min, omit)
    if w1 > hi:
        _indexed_windows(buf, ibuf, dst, dsti, hi, w1, c0, acc, iacc, axes, first, count, W, C,
                         is_min, omit)


@functools.cache
def extreme_indexed_tasks(window):
    """The max/min pooling kernel that also returns the flat spatial index of each winner,
    compiled for ``window`` (a code of :data:`UNROLLED_INDEXED`):
    ``kernel(x, out, idx, t0, t1, axes, first, count, uni, buffer, C, is_min, omit,
    *scratch)`` runs tasks ``[t0, t1)`` (the arguments as in :func:`extreme_tasks`).

    Stage A visits rows in increasing flat index, so a plain "strictly better" keeps the
    first of equal values and only the winner's row needs keeping; stage B compares
    candidates from different columns (and rows), where the smaller flat index must win
    ties explicitly.
    """

    def kernel(x, out, idx, t0, t1, axes, first, count, uni, buffer, C, is_min, omit, buf,
               ibuf, acc, iacc, ow):
        x, out, idx = _borrowed(x), _borrowed(out), _borrowed(idx)
        buf, ibuf, acc, iacc, ow = _borrowed(buf), _borrowed(ibuf), _borrowed(acc), \
            _borrowed(iacc), _borrowed(ow)
        axes, first, count, uni = _borrowed_tables(axes, first, count, uni)
        n_outer, W, Wo, whole, per, parts, ro_count, d = _rows_of(x, out, axes, buffer, C)
        for t in range(t0, t1):
            p, ro, part, r0, n_rows = _task_rows(t, parts, ro_count, axes, first, count, ow)
            dst = out[p, ro]
            dsti = idx[p, ro]
            w0 = part * per
            end = min(Wo, w0 + per)
            j0 = _ZERO
            while w0 < end:  # one block (the whole row), unless the row is long
                w1, c0, c1, j1 = _block(whole, W, Wo, axes, first, count, w0, j0, end, per)
                n = (c1 - c0) * C
                block, iblock = buf[:n], ibuf[:n]
                _rows_indexed(x, p, block, iblock, c0 * C, r0, n_rows, ow, axes, is_min, omit)
                if j1 == 0:
                    _last_axis_indexed(block, iblock, dst, dsti, w0, w1, c0, acc, iacc, axes, first,
                                       count, uni, W, C, is_min, omit, window)
                    w0 = w1
                    continue
                _taps_indexed(block, iblock, acc, iacc, c0, j0, j1, d, W, C, is_min, omit)
                if j1 < _window(_axis(axes, n_outer), first, count, w0)[1]:
                    j0 = j1
                    continue
                vals = dst[w0 * C:]
                inds = dsti[w0 * C:]
                for c in range(C):
                    store(vals, c, acc[c])
                    inds[c] = iacc[c]
                j0 = _ZERO
                w0 = w1



    # --------------------------------------------------------------------------- sums

    return njit(cache=True, nogil=True)(kernel)
@helper(inline="always")
def _rows_sum(x, p, buf, nbuf, e0, r0, n_rows, ow, axes, acc_zero, transform, power, eps,
              omit):
    """Stage A: element-wise sum (of transformed values) of the outer window's rows, over
    elements ``[e0, e0 + len(buf))`` (rows as in :func:`_rows_extreme`).

    Under ``omit`` NaNs add nothing and are counted in ``nbuf``.
    """
    n_outer = ow.shape[1]
    step = axes[0, STEP]
    plain = transform == _arith.T_IDENTITY and not omit
    if not plain:
        buf[:] = acc_zero
        nbuf[:] = 0
    if plain and n_rows == 3 and n_outer == 1:
        # the 3-row windows of 3x3 pools in one pass: 3 loads and a store per element,
        # where a pass per row makes 5 loads and 3 stores
        a, b, c = x[p, r0, e0:], x[p, r0 + step, e0:], x[p, r0 + 2 * step, e0:]
        for e in range(buf.shape[0]):
            buf[e] = (acc_zero + load(a, e)) + load(b, e) + load(c, e)
        return
    for k in range(n_rows):
        src = x[p, r0 + k * step if n_outer == 1 else _outer_row(k, ow, axes), e0:]
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


@helper
def _store_means(vals, obuf, linv, outer_inv, C):
    """``vals[i] = obuf[i] * (outer_inv * linv[i // C])``: means from sums.

    Its own function: inside the task loop LLVM leaves this loop scalar.
    """
    if C == 1:
        for i in range(vals.shape[0]):
            store(vals, i, obuf[i] * (outer_inv * linv[i]))
        return
    for w in range(vals.shape[0] // C):
        scale = outer_inv * linv[w]
        out_c = vals[w * C:]
        sums = obuf[w * C:]
        for c in range(C):
            store(out_c, c, sums[c] * scale)


@helper
def _inverses(linv, w0, w1, g, inv):
    """``linv[o - w0]``: the reciprocal divisor of last-axis output ``o`` (axis ``g``), for
    ``w0 <= o < w1``; ``inv`` is ``tables.inv``."""
    run = 1.0 / np.float64(g[2])
    for o in range(w0, w1):
        e = _edge(g, o)
        linv[o - w0] = run if e < 0 else inv[e]


@helper
def _finish(dst, obuf, nobuf, w0, w1, axes, count, div, C, outer_div, outer_taps, mean_only,
            finish, power, omit, divisor_override):
    """Write the finished values of last-axis outputs ``[w0, w1)`` into the output row from
    their sums in ``obuf`` (and NaN counts in ``nobuf``), which start at ``w0``: all but
    plain means, which the task loop finishes itself."""
    g = _axis(axes, axes.shape[0] - 1)
    vals = dst[w0 * C:w1 * C]
    if mean_only:  # with divisor_override
        for i in range(vals.shape[0]):
            store(vals, i, obuf[i] / divisor_override)
        return
    nan = np.float64(np.nan)
    for wo in range(w0, w1):
        e = _edge(g, wo)
        if e < 0:
            d, taps = np.float64(g[2]), g[2]
        else:
            d, taps = div[e], count[e]
        if divisor_override != 0.0:
            d = divisor_override
        else:
            d *= outer_div
        taps *= outer_taps
        for c in range(C):
            i = (wo - w0) * C + c
            if omit and nobuf[i] == taps:
                store(vals, i, nan)
            elif omit and divisor_override == 0.0:
                store(vals, i, _finish_value(obuf[i], d - nobuf[i], finish, power))
            else:
                store(vals, i, _finish_value(obuf[i], d, finish, power))


def count_last_axis(nbuf, nobuf, axes, first, count, uni, C, w0, w1, c0, omit, window):
    """Stage B of the NaN counts under ``omit`` (a compile-time constant): nothing at all,
    not even compiled, for the other NaN policies."""


@overload(count_last_axis, prefer_literal=True, inline="always")
def _ol_count_last_axis(nbuf, nobuf, axes, first, count, uni, C, w0, w1, c0, omit, window):
    if not literal(omit, "omit"):
        return lambda nbuf, nobuf, axes, first, count, uni, C, w0, w1, c0, omit, window: None

    def impl(nbuf, nobuf, axes, first, count, uni, C, w0, w1, c0, omit, window):
        fold_last_axis(nbuf, nobuf, axes, first, count, uni, C, w0, w1, c0, OP_SUM, False,
                       False, window)

    return impl


def count_taps(nbuf, nobuf, j0, j1, d, C, omit):
    """:func:`fold_taps` of the NaN counts under ``omit`` (as :func:`count_last_axis`)."""


@overload(count_taps, prefer_literal=True, inline="always")
def _ol_count_taps(nbuf, nobuf, j0, j1, d, C, omit):
    if not literal(omit, "omit"):
        return lambda nbuf, nobuf, j0, j1, d, C, omit: None

    def impl(nbuf, nobuf, j0, j1, d, C, omit):
        fold_taps(nbuf, nobuf, j0, j1, d, C, OP_SUM, False, False)

    return impl


@functools.cache
def sum_tasks(window, omit):
    """The window-sum kernel, compiled for ``window``
    (:func:`~numbapool._cpu.specialise.window_code`) and ``omit``:
    ``kernel(x, out, t0, t1, axes, first, count, uni, div, inv, buffer, C, acc_zero,
    transform, power, eps, finish, divisor_override, *scratch)`` runs tasks ``[t0, t1)``
    (the arguments as in :func:`extreme_tasks`); the sums become means / Lp norms / GeM by
    ``finish``.

    The divisor of a window is ``divisor_override`` when non-zero, else the product of the
    per-axis divisors (``tables.div``; a run window's is its tap count).  Under ``omit``
    NaNs are skipped, the divisor loses one per NaN (unless overridden) and a window of only
    NaNs gives NaN.
    """

    def kernel(x, out, t0, t1, axes, first, count, uni, div, inv, buffer, C, acc_zero,
               transform, power, eps, finish, divisor_override, buf, obuf, nbuf, nobuf, ow,
               linv):
        x, out, buf, obuf, nbuf, nobuf, ow = _borrowed(x), _borrowed(out), _borrowed(buf), \
            _borrowed(obuf), _borrowed(nbuf), _borrowed(nobuf), _borrowed(ow)
        linv = _borrowed(linv)
        axes, first, count, uni = _borrowed_tables(axes, first, count, uni)
        div, inv = _borrowed(div), _borrowed(inv)
        n_outer, W, Wo, whole, per, parts, ro_count, d = _rows_of(x, out, axes, buffer, C)
        g0 = _axis(axes, 0)
        mean_only = finish == _arith.F_MEAN and not omit
        gl = _axis(axes, n_outer)
        mean_inv = mean_only and divisor_override == 0.0
        if whole and mean_inv:
            _inverses(linv, 0, Wo, gl, inv)
        for t in range(t0, t1):
            p, ro, part, r0, n_rows = _task_rows(t, parts, ro_count, axes, first, count, ow)
            if n_outer == 1:
                e = _edge(g0, ro)
                outer_div = np.float64(g0[2]) if e < 0 else div[e]
            else:
                outer_div = 1.0
                for a in range(n_outer):
                    e = _edge(_axis(axes, a), ow[0, a])
                    outer_div *= np.float64(axes[a, K]) if e < 0 else div[e]
            outer_inv = 1.0 / outer_div
            dst = out[p, ro]
            w0 = part * per
            end = min(Wo, w0 + per)
            j0 = _ZERO
            while w0 < end:  # one block (the whole row), unless the row is long
                w1, c0, c1, j1 = _block(whole, W, Wo, axes, first, count, w0, j0, end, per)
                n = (c1 - c0) * C
                block = buf[:n]
                nblock = nbuf[:n if omit else 0]
                _rows_sum(x, p, block, nblock, c0 * C, r0, n_rows, ow, axes, acc_zero, transform,
                          power, eps, omit)
                if j1 == 0:
                    fold_last_axis(block, obuf, axes, first, count, uni, C, w0, w1, c0, OP_SUM,
                                   False, False, window)
                    count_last_axis(nblock, nobuf, axes, first, count, uni, C, w0, w1, c0, omit,
                                    window)
                else:
                    fold_taps(block, obuf, j0, j1, d, C, OP_SUM, False, False)
                    count_taps(nblock, nobuf, j0, j1, d, C, omit)
                    if j1 < _window(gl, first, count, w0)[1]:
                        j0 = j1
                        continue
                    j0 = _ZERO
                if mean_inv:
                    # means multiply by float64 reciprocals, which are much cheaper than a
                    # division per output.  For float32 data the float64 product almost always
                    # rounds to the same value as the quotient; for float64 it is within 2 ulp.
                    if not whole:
                        _inverses(linv, w0, w1, gl, inv)
                    _store_means(dst[w0 * C:w1 * C], obuf, linv, outer_inv, C)
                else:
                    _finish(dst, obuf, nobuf, w0, w1, axes, count, div, C, outer_div, n_rows,
                            mean_only, finish, power, omit, divisor_override)
                w0 = w1

    return njit(cache=True, nogil=True)(kernel)
