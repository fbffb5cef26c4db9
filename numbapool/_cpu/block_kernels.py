"""CPU kernels of block reduction (:func:`numbapool.block_reduce`).

Every call runs on a canonical view of the input (see :mod:`numbapool._cpu.blocks`):

* input ``x`` C-contiguous ``(P, R, W*C)``: P independent planes (the leading axes with a
  block of 1), R rows (the product of the *outer* axes: every axis from the first blocked
  one to the one before the last blocked one, blocked or not), each row W positions of the
  last blocked axis times C channels (the trailing axes with a block of 1);
* output ``out`` C-contiguous ``(P, Ro, Wo*C)``.

``outer`` describes the outer axes, one row each (at least one: a unit axis when there is
none): input size, block, output size and the axis's stride in input rows.  Block ``o`` of
an axis covers ``[o*b, min((o+1)*b, L))``: a last block may be cut short (the "partial"
boundary); for "trim" and "exact" the caller's output sizes leave such blocks out, and
"pad" is the caller's business (it reduces padded copies of the edge slabs).  ``geo`` holds
the scalars of the last axis and of the tasks (columns ``G_*``).

A task is one output row ``(p, ro)``, or one chunk of it (``geo[G_PER]`` outputs) so
that its scratch stays small however long the row.  Its input rows are listed once
(:func:`_input_rows`), then:

* sums and extremes (``sum_tasks``, ``extreme_tasks``) fold the input rows, columns
  first, into the outputs' accumulators (the output row itself where it has the computed
  dtype), so that a row is read once, by loops that compute as they load.  For channels-first rows (C == 1) the column folds are passes of
  a constant width, 2, 3 or 4 columns, which LLVM vectorises with interleaved loads; at
  these widths 4 or 2 rows fold in one pass (so 2x2 and 4x4 blocks take one pass, and
  the accumulators are loaded and stored once per pass, not once per row).  Other even
  block widths are halved pass by pass, so an 8-wide block takes three vectorised passes
  over a shrinking buffer instead of one strided loop.  Other widths fold window by
  window; channels-last rows fold over the C contiguous channels.
* medians and modes (``order_tasks``) gather the blocks of ``LANES`` neighbouring outputs
  into a ``(N, LANES)`` scratch (N the number of elements of a full block; the missing
  elements of blocks cut short, and NaNs, become the largest value of the type, ``top``,
  the NaNs counted), sort each column with a sorting network (Batcher's odd-even merge
  sort, computed in Python, run as vector min/max over the lanes whatever the block's
  shape) and read the median, or scan for the longest run (ties to the smallest value).
  The vector steps are LLVM intrinsics (:func:`_sort_pair`, :func:`_nans_to_top`,
  :func:`_lane_modes`).  Blocks of more than ``NETWORK_MAX`` elements
  (:mod:`numbapool._cpu.blocks`) are gathered one at a time instead, for a quickselect
  (median) or a Shell sort (mode).

All kernels are serial ``nogil`` functions over a range of tasks, which
:mod:`numbapool._cpu.parallel` runs on several threads for large inputs.  No kernel
depends on the block shape at compile time: each is compiled once per dtype.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .. import _arith
from .half import load, store
from .jit import helper
from .window_kernels import _borrowed

#: Outputs whose blocks one sorting-network pass sorts together (two AVX-512 registers
#: of float32).
LANES = 32
#: Columns of the ``geo`` vector: last axis input length, block and output length; channels;
#: outputs per chunk, chunks per row, output rows per plane; elements of a full block.
G_W, G_BW, G_WO, G_C, G_PER, G_CHUNKS, G_RO, G_N = range(8)
#: Columns of ``outer``.
O_IN, O_BLOCK, O_OUT, O_STRIDE = range(4)
#: ``kind`` of the sum kernel and the order kernel.
K_SUM, K_MEAN = 0, 1
K_MEDIAN, K_MODE = 0, 1

_take = helper(_arith.take)


# --------------------------------------------------------------------------- task geometry


@helper(inline="always")
def _task(t, chunks, ro_count):
    """``(plane, output row, chunk)`` of task ``t``."""
    row, chunk = t, 0
    if chunks != 1:
        row = t // chunks
        chunk = t - row * chunks
    p = row // ro_count
    return p, row - p * ro_count, chunk


@helper
def _input_rows(outer, ro, rows, ow):
    """Fill ``rows`` with the flat input rows of output row ``ro``'s blocks along the outer
    axes, in row-major order; returns how many (``ow`` is a ``(3, n_axes)`` scratch)."""
    n_axes = outer.shape[0]
    if n_axes == 1:  # the common case: one outer axis, no odometer
        b = outer[0, O_BLOCK]
        start = ro * b
        n = min(b, outer[0, O_IN] - start)
        stride = outer[0, O_STRIDE]
        for k in range(n):
            rows[k] = (start + k) * stride
        return n
    q = ro
    n = 1
    for a in range(n_axes - 1, -1, -1):
        size = outer[a, O_OUT]
        r = q // size
        o = q - r * size
        q = r
        b = outer[a, O_BLOCK]
        start = o * b
        cnt = min(b, outer[a, O_IN] - start)
        ow[0, a] = start
        ow[1, a] = cnt
        ow[2, a] = 0
        n *= cnt
    for k in range(n):
        r = 0
        for a in range(n_axes):
            r += (ow[0, a] + ow[2, a]) * outer[a, O_STRIDE]
        rows[k] = r
        a = n_axes - 1
        while a >= 0:  # the odometer
            ow[2, a] += 1
            if ow[2, a] < ow[1, a]:
                break
            ow[2, a] = 0
            a -= 1
    return n


@helper(inline="always")
def _chunk(geo, chunk):
    """``(w0, w1, full_end)``: the chunk's last-axis outputs ``[w0, w1)``, and where the
    full blocks of the axis end."""
    per = geo[G_PER]
    w0 = chunk * per
    w1 = min(geo[G_WO], w0 + per)
    return w0, w1, min(w1, geo[G_W] // geo[G_BW])


# --------------------------------------------------------------------------- folds
# ``comb(m, v, is_min, omit)`` folds ``v`` into ``m``; ``lift(v, zero)`` turns a loaded
# value into the accumulator's type (sums) or leaves it (extremes).  Each fold writes its
# results into ``dst``, or with ``acc`` folds them into what ``dst`` holds.


@helper(inline="always")
def _extreme(m, v, is_min, omit):
    return v if _take(m, v, is_min, omit) else m


@helper(inline="always")
def _add(m, v, is_min, omit):
    return m + v


@helper(inline="always")
def _keep(v, zero):
    return v


@helper(inline="always")
def _widen(v, zero):
    return zero + v


def _folds(comb, lift):
    """The row folds of one reduction, as helpers specialised on ``comb`` and ``lift``:
    returns ``task_rows``, which folds all the input rows of a task."""

    def units(k):
        """Folds of the blocks of ``k`` columns (2, 3 or 4): of one row, and of 2 or 4
        rows at once."""

        @helper(inline="always")
        def unit(v0, v1, v2, v3, zero, is_min, omit):
            """The fold of one block's ``k`` values (``v2``, ``v3`` unused below 3, 4)."""
            m = comb(lift(v0, zero), v1, is_min, omit)
            if k == 3:
                m = comb(m, v2, is_min, omit)
            elif k == 4:
                m = comb(m, comb(lift(v2, zero), v3, is_min, omit), is_min, omit)
            return m

        # Not inlined by Numba, which would reference-count the array argument inside the
        # loop (and the loop would no longer vectorise); LLVM inlines it.
        @helper
        def block(src, i, zero, is_min, omit):
            """The fold of block ``i`` of row ``src``."""
            s = k * i
            return unit(load(src, s), load(src, s + 1), load(src, s + 2 if k > 2 else s),
                        load(src, s + 3 if k > 3 else s), zero, is_min, omit)

        @helper
        def row(src, dst, n, zero, is_min, omit, acc):
            """``dst[i] = fold(src[k*i:k*(i+1)])`` for ``i < n`` (with ``acc``, folded
            into what ``dst`` holds)."""
            if acc:
                for i in range(n):
                    dst[i] = comb(dst[i], block(src, i, zero, is_min, omit), is_min, omit)
            else:
                for i in range(n):
                    dst[i] = block(src, i, zero, is_min, omit)

        @helper
        def rows(a, b, c, d, g, dst, n, zero, is_min, omit, acc):
            """Fold blocks ``i < n`` of rows ``a, b`` (``g`` 2; with ``acc``, into what
            ``dst`` holds) or ``a, b, c, d`` (``g`` 4, not ``acc``) into ``dst``, in row
            order: the order of operations of folding one row at a time, in one pass."""
            if g == 4:
                for i in range(n):
                    m = comb(block(a, i, zero, is_min, omit), block(b, i, zero, is_min, omit),
                             is_min, omit)
                    m = comb(m, block(c, i, zero, is_min, omit), is_min, omit)
                    dst[i] = comb(m, block(d, i, zero, is_min, omit), is_min, omit)
            elif acc:
                for i in range(n):
                    m = comb(dst[i], block(a, i, zero, is_min, omit), is_min, omit)
                    dst[i] = comb(m, block(b, i, zero, is_min, omit), is_min, omit)
            else:
                for i in range(n):
                    dst[i] = comb(block(a, i, zero, is_min, omit),
                                  block(b, i, zero, is_min, omit), is_min, omit)

        return row, rows

    (pairs, rows2), (triples, rows3), (quads, rows4) = units(2), units(3), units(4)

    @helper
    def windows(src, dst, n, k, zero, is_min, omit, acc):
        """``dst[i] = fold(src[i*k:(i+1)*k])`` for ``i < n``: a window at a time."""
        for i in range(n):
            win = src[i * k:]
            m = lift(load(win, 0), zero)
            for j in range(1, k):
                m = comb(m, load(win, j), is_min, omit)
            dst[i] = comb(dst[i], m, is_min, omit) if acc else m

    @helper
    def channels(src, dst, n, k, C, zero, is_min, omit, acc):
        """``dst[i*C + c] = fold(src[(i*k + j)*C + c] for j < k)`` for ``i < n``: channels
        contiguous, so the loops over ``c`` vectorise."""
        for i in range(n):
            out = dst[i * C:(i + 1) * C]
            win = src[i * k * C:]
            if acc:
                for j in range(k):
                    tap = win[j * C:]
                    for c in range(C):
                        out[c] = comb(out[c], load(tap, c), is_min, omit)
            else:
                for c in range(C):
                    out[c] = lift(load(win, c), zero)
                for j in range(1, k):
                    tap = win[j * C:]
                    for c in range(C):
                        out[c] = comb(out[c], load(tap, c), is_min, omit)

    @helper
    def columns(src, dst, n, k, C, ta, tb, zero, is_min, omit, acc):
        """Fold ``n`` whole blocks of ``k`` columns of the row ``src`` into ``dst[:n*C]``;
        ``ta`` and ``tb`` are scratch of at least ``n*k//2`` elements for the halving
        passes (C == 1 and an even ``k`` from 6 to 64; unused otherwise)."""
        if n == 0:
            return
        if C != 1:
            channels(src, dst, n, k, C, zero, is_min, omit, acc)
        elif k == 2:
            pairs(src, dst, n, zero, is_min, omit, acc)
        elif k == 3:
            triples(src, dst, n, zero, is_min, omit, acc)
        elif k == 4:
            quads(src, dst, n, zero, is_min, omit, acc)
        elif k % 2 == 1 or k > 64:
            windows(src, dst, n, k, zero, is_min, omit, acc)
        else:  # halve an even width pass by pass: every pass a vectorised pair fold
            f = k // 2
            pairs(src, ta, n * f, zero, is_min, omit, False)
            cur = ta
            other = tb
            while f > 1:
                if f % 2 == 0:
                    f //= 2
                    if f == 1:
                        pairs(cur, dst, n, zero, is_min, omit, acc)
                    else:
                        pairs(cur, other, n * f, zero, is_min, omit, False)
                        cur, other = other, cur
                elif f == 3:
                    triples(cur, dst, n, zero, is_min, omit, acc)
                    f = 1
                else:
                    windows(cur, dst, n, f, zero, is_min, omit, acc)
                    f = 1

    @helper
    def task_rows(x, p, rows, n, e0, e1, dst, nf, bw, last, C, ta, tb, zero, is_min, omit):
        """Fold the ``n`` input rows ``rows`` of a task (columns ``[e0, e1)`` of plane
        ``p``) into ``dst``: ``nf`` whole blocks, then a last one of ``last`` columns (if
        ``last``).  Channels-first blocks 2 to 4 wide fold 4 or 2 rows a pass (reading
        several rows at once costs no more than one, and the accumulators are loaded and
        stored once a pass); the other blocks a row at a time."""
        k = 0
        if C == 1 and 2 <= bw <= 4 and nf > 0:
            while n - k >= 2:
                g = 4 if k == 0 and n >= 4 else 2  # (4 at once only first: fewer loops)
                a = x[p, rows[k], e0:e1]
                b = x[p, rows[k + 1], e0:e1]
                c = x[p, rows[k + g - 2], e0:e1]
                d = x[p, rows[k + g - 1], e0:e1]
                if bw == 2:
                    rows2(a, b, c, d, g, dst, nf, zero, is_min, omit, k > 0)
                elif bw == 3:
                    rows3(a, b, c, d, g, dst, nf, zero, is_min, omit, k > 0)
                else:
                    rows4(a, b, c, d, g, dst, nf, zero, is_min, omit, k > 0)
                k += g
            if k < n:  # one row left
                columns(x[p, rows[k], e0:e1], dst, nf, bw, C, ta, tb, zero, is_min, omit,
                        k > 0)
            if last > 0:  # the last blocks, cut short: other outputs, so folded after
                for j in range(n):
                    channels(x[p, rows[j], e0 + nf * bw:e1], dst[nf:], 1, last, 1, zero,
                             is_min, omit, j > 0)
            return
        for j in range(n):
            src = x[p, rows[j], e0:e1]
            if nf > 0:
                columns(src, dst, nf, bw, C, ta, tb, zero, is_min, omit, j > 0)
            if last > 0:  # the last block, cut short
                channels(src[nf * bw * C:], dst[nf * C:], 1, last, C, zero, is_min, omit,
                         j > 0)

    return task_rows


_task_rows_extreme = _folds(_extreme, _keep)
_task_rows_sum = _folds(_add, _widen)


# --------------------------------------------------------------------------- sums and extremes
# A task folds its input rows (``task_rows``, above) into the outputs' accumulators: the
# output row itself where it has the computed type, else a scratch row stored at the end.


def _direct(dst, scratch):
    """Whether a task folds straight into its output row ``dst`` rather than into the
    scratch of its accumulators: when they are of one type (the output's dtype is the
    computed one), which saves a copy of the row, or finishes means in place."""


def _accumulator(dst, scratch):
    """``dst`` when :func:`_direct`, else ``scratch``."""


@overload(_direct)
def _ol_direct(dst, scratch):
    same = dst == scratch
    return lambda dst, scratch: same


@overload(_accumulator)
def _ol_accumulator(dst, scratch):
    if dst == scratch:
        return lambda dst, scratch: dst
    return lambda dst, scratch: scratch


@njit(cache=True, nogil=True)
def extreme_tasks(x, out, t0, t1, geo, outer, is_min, omit, ta, tb, vals, rows, ow):
    """Block max (``is_min`` False) or min of tasks ``[t0, t1)``; NaN rules of
    :func:`numbapool._arith.take`.  ``ta``, ``tb`` and ``vals`` are scratch of the
    computed type (float32 for float16 data)."""
    x, out, geo, outer = _borrowed(x), _borrowed(out), _borrowed(geo), _borrowed(outer)
    ta, tb, vals, rows, ow = _borrowed(ta), _borrowed(tb), _borrowed(vals), _borrowed(rows), \
        _borrowed(ow)
    W, bw, C = geo[G_W], geo[G_BW], geo[G_C]
    for t in range(t0, t1):
        p, ro, chunk = _task(t, geo[G_CHUNKS], geo[G_RO])
        n = _input_rows(outer, ro, rows, ow)
        w0, w1, full = _chunk(geo, chunk)
        e0 = w0 * bw * C
        e1 = min(W, w1 * bw) * C
        last = W - full * bw if w1 > full else 0
        dst = out[p, ro, w0 * C:w1 * C]
        acc = _accumulator(dst, vals)
        _task_rows_extreme(x, p, rows, n, e0, e1, acc, full - w0, bw, last, C, ta, tb,
                           vals[0], is_min, omit)
        if not _direct(dst, vals):
            for i in range(dst.shape[0]):
                store(dst, i, vals[i])


@helper
def _fold_rows_omit(x, p, rows, n, e0, sums, ncnt, nq, full, w0, bw, last, C, zero):
    """The sums of ``nq`` outputs (``sums``) and their NaN counts (``ncnt``) under
    ``omit``: NaNs add nothing."""
    for i in range(nq):
        sums[i] = zero
        ncnt[i] = 0
    for k in range(n):
        row = x[p, rows[k], e0:]
        for i in range(nq // C):
            cols = bw if w0 + i < full else last
            win = row[i * bw * C:]
            for j in range(cols):
                tap = win[j * C:]
                for c in range(C):
                    v = load(tap, c)
                    nan = v != v
                    sums[i * C + c] += zero if nan else v
                    ncnt[i * C + c] += nan


@helper
def _store_means(dst, sums, i0, i1, count, zero):
    """``dst[i] = sums[i] / count`` for ``i`` in ``[i0, i1)`` (``sums`` may be ``dst``
    itself, :func:`_direct`): a product by the float64 reciprocal, cheaper than a
    quotient.  By a power of two the product is exact, so it is taken in the accumulators'
    type (``zero``'s): the same result, without conversions."""
    inv = 1.0 / np.float64(count)
    pow2 = count & (count - 1) == 0
    if _direct(dst, sums):  # in place: loops over one array, which LLVM vectorises
        if pow2:            # (where a store to dst would alias its loads from sums)
            scale = zero + np.float32(inv)
            for i in range(i0, i1):
                sums[i] = sums[i] * scale
        else:
            for i in range(i0, i1):
                sums[i] = np.float64(sums[i]) * inv
    elif pow2:
        scale = zero + np.float32(inv)  # exact; float64 for integer sums
        for i in range(i0, i1):
            store(dst, i, sums[i] * scale)
    else:
        for i in range(i0, i1):
            store(dst, i, np.float64(sums[i]) * inv)


@njit(cache=True, nogil=True)
def sum_tasks(x, out, t0, t1, geo, outer, kind, omit, zero, ta, tb, sums, ncnt, rows, ow):
    """Block sums (``kind`` :data:`K_SUM`) or means (:data:`K_MEAN`) of tasks ``[t0, t1)``,
    accumulated in the type of ``zero``.  Under ``omit`` NaNs are left out (of the count
    too) and a block of only NaNs gives NaN; otherwise a NaN gives NaN."""
    x, out, geo, outer = _borrowed(x), _borrowed(out), _borrowed(geo), _borrowed(outer)
    ta, tb, sums, ncnt, rows, ow = _borrowed(ta), _borrowed(tb), _borrowed(sums), \
        _borrowed(ncnt), _borrowed(rows), _borrowed(ow)
    W, bw, C = geo[G_W], geo[G_BW], geo[G_C]
    nan = np.float64(np.nan)
    for t in range(t0, t1):
        p, ro, chunk = _task(t, geo[G_CHUNKS], geo[G_RO])
        n = _input_rows(outer, ro, rows, ow)
        w0, w1, full = _chunk(geo, chunk)
        e0 = w0 * bw * C
        e1 = min(W, w1 * bw) * C
        nf = full - w0
        last = W - full * bw if w1 > full else 0
        dst = out[p, ro, w0 * C:w1 * C]
        m = dst.shape[0]
        if omit:
            _fold_rows_omit(x, p, rows, n, e0, sums, ncnt, m, full, w0, bw, last, C, zero)
            for i in range(m):
                count = n * (bw if w0 + i // C < full else last) - ncnt[i]
                if count == 0:
                    store(dst, i, nan)
                elif kind == K_MEAN:
                    store(dst, i, np.float64(sums[i]) / np.float64(count))
                else:
                    store(dst, i, sums[i])
            continue
        acc = _accumulator(dst, sums)
        _task_rows_sum(x, p, rows, n, e0, e1, acc, nf, bw, last, C, ta, tb, zero, False,
                       False)
        if kind == K_MEAN:  # (in place when direct)
            _store_means(dst, acc, 0, nf * C, n * bw, zero)
            if last > 0:
                _store_means(dst, acc, nf * C, m, n * last, zero)
        elif not _direct(dst, sums):
            for i in range(m):
                store(dst, i, sums[i])


# --------------------------------------------------------------------------- medians and modes


@helper
def _insertion_sort(a, lo, hi):
    """Sort ``a[lo:hi + 1]`` in place."""
    for i in range(lo + 1, hi + 1):
        v = a[i]
        j = i - 1
        while j >= lo and v < a[j]:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v


@helper
def _select(a, m, k):
    """Reorder ``a[:m]`` so that ``a[k]`` is its k-th smallest value, no value before it
    is larger and none after it smaller (quickselect, median-of-three pivots)."""
    lo = 0
    hi = m - 1
    while hi - lo > 16:
        mid = (lo + hi) >> 1
        if a[mid] < a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[hi] < a[mid]:
            a[hi], a[mid] = a[mid], a[hi]
        pivot = a[mid]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while pivot < a[j]:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return
    _insertion_sort(a, lo, hi)


@helper
def _shell_sort(a, m):
    """Sort ``a[:m]`` in place (Shell sort, Knuth's gaps)."""
    h = 1
    while h < m // 3:
        h = 3 * h + 1
    while h >= 1:
        for i in range(h, m):
            v = a[i]
            j = i
            while j >= h and v < a[j - h]:
                a[j] = a[j - h]
                j -= h
            a[j] = v
        h //= 3


@helper
def _median_of(a, m, rzero, half):
    """The median of ``a[:m]`` (``m >= 1``), the mean of the middle two for even ``m``,
    in the type of ``rzero``; reorders ``a``."""
    k = m // 2
    _select(a, m, k)
    hi = rzero + a[k]
    if m % 2 == 1:
        return hi
    lo = a[0]
    for i in range(1, k):
        lo = a[i] if lo < a[i] else lo
    return ((rzero + lo) + hi) * half


@helper
def _mode_of(a, m):
    """The most frequent value of ``a[:m]`` (``m >= 1``), ties to the smallest; sorts
    ``a``."""
    _shell_sort(a, m)
    best_v = a[0]
    best = 1
    run = 1
    for i in range(1, m):
        run = run + 1 if a[i] == a[i - 1] else 1
        if run > best:
            best = run
            best_v = a[i]
    return best_v


@helper
def _order_scalar(x, dst, p, rows, n, q0, q1, W, bw, C, kind, omit, rzero, half, scal):
    """Medians or modes of outputs ``[q0, q1)`` of an output row, a block at a time (blocks
    too large for the sorting network)."""
    nan = np.float64(np.nan)
    for q in range(q0, q1):
        w = q // C
        base = w * bw * C + (q - w * C)
        cols = min(bw, W - w * bw)
        m = 0
        seen_nan = False
        for k in range(n):
            row = x[p, rows[k], base:]
            for j in range(cols):
                v = load(row, j * C)
                if v != v:
                    seen_nan = True
                else:
                    scal[m] = v
                    m += 1
        i = q - q0
        if m == 0 or (seen_nan and not omit):
            store(dst, i, nan)
        elif kind == K_MEDIAN:
            store(dst, i, _median_of(scal, m, rzero, half))
        else:
            store(dst, i, _mode_of(scal, m))


@helper
def _gather_lanes(xp, rows, n, g, nl, W, bw, C, top, s, cols, offs):
    """Load the blocks of outputs ``g .. g + nl - 1`` of an output row (``xp`` the plane,
    flat, ``rows`` the output row's ``n`` input rows) into the columns of ``s``: column
    ``l`` holds output ``g + l``'s elements, row by row, then ``top`` (as do unused lanes);
    ``cols[l]`` gets the block's column count (``offs`` is scratch)."""
    N = s.shape[0]
    RW = W * C
    whole = nl == LANES and (g + LANES - 1) // C < W // bw  # every lane's block whole
    if whole and C == 1:  # the lanes' blocks side by side: a scratch row loads bw apart
        for lane in range(LANES):
            cols[lane] = bw
        wire = 0
        for k in range(n):
            start = rows[k] * RW + g * bw
            if bw == 2:  # the lanes' blocks are one contiguous run: split it in vectors
                _deinterleave(xp, start, s, wire, 2)
                wire += 2
                continue
            if bw == 3:
                _deinterleave(xp, start, s, wire, 3)
                wire += 3
                continue
            row = xp[start:]
            for j in range(bw):
                sw = s[wire]
                src = row[j:]
                for lane in range(LANES):
                    sw[lane] = load(src, lane * bw)
                wire += 1
        for w in range(wire, N):
            sw = s[w]
            for lane in range(LANES):
                sw[lane] = top
        return
    w = g // C
    c = g - w * C
    for lane in range(LANES):  # lane l is output g + l: block w, channel c
        offs[lane] = w * bw * C + c
        cols[lane] = bw if whole else (min(bw, W - w * bw) if lane < nl else 0)
        c += 1
        if c == C:
            c = 0
            w += 1
    if whole:  # a row of the scratch at a time: loads at fixed offsets, contiguous stores
        wire = 0
        for k in range(n):
            row = xp[rows[k] * RW:]
            for j in range(bw):
                sw = s[wire]
                src = row[j * C:]
                for lane in range(LANES):
                    sw[lane] = load(src, offs[lane])
                wire += 1
        for w in range(wire, N):
            sw = s[w]
            for lane in range(LANES):
                sw[lane] = top
        return
    for lane in range(LANES):
        cw = cols[lane]
        wire = 0
        for k in range(n):
            r = rows[k] * RW + offs[lane]
            for j in range(cw):
                s[wire, lane] = load(xp, r + j * C)
                wire += 1
        for w in range(wire, N):
            s[w, lane] = top


def _row_pointer(builder, data, row, vec):
    """Codegen: row ``row`` (an i64) of the C-contiguous ``(n, LANES)`` array whose data
    pointer is ``data``, as a pointer to the vector type ``vec``."""
    at = builder.gep(data, [builder.mul(row, ir.Constant(ir.IntType(64), LANES))])
    return builder.bitcast(at, vec.as_pointer())


def _splat(builder, value, vec):
    """Codegen: ``value`` in every lane of the vector type ``vec``."""
    lane0 = builder.insert_element(ir.Constant(vec, ir.Undefined), value,
                                   ir.Constant(ir.IntType(32), 0))
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), vec.count), [0] * vec.count)
    return builder.shuffle_vector(lane0, ir.Constant(vec, ir.Undefined), zeros)


@intrinsic
def _deinterleave_vector(typingctx, xp, start, s, wire, k):
    """Rows ``wire .. wire + k - 1`` of ``s`` get the ``k`` interleaved columns of the run
    ``xp[start:start + k*LANES]``: row ``wire + j``, lane ``l`` is ``xp[start + k*l + j]``.
    One vector load and ``k`` shuffles (``k`` a constant)."""
    if not (isinstance(xp, types.Array) and xp.ndim == 1 and xp.layout == "C"
            and isinstance(s, types.Array) and s.ndim == 2 and s.layout == "C"
            and s.dtype == xp.dtype and isinstance(k, types.IntegerLiteral)):
        return None
    dtype = s.dtype
    width = k.literal_value

    def codegen(context, builder, signature, args):
        src, first, array, row, _ = args
        sig = signature.args
        xdata = context.make_array(sig[0])(context, builder, value=src).data
        data = context.make_array(sig[2])(context, builder, value=array).data
        elt = context.get_value_type(dtype)
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        align = context.get_abi_sizeof(elt)
        run = ir.VectorType(elt, LANES * width)
        vec = ir.VectorType(elt, LANES)
        ptr = builder.bitcast(builder.gep(xdata, [first]), run.as_pointer())
        v = builder.load(ptr, align=align)
        for j in range(width):
            mask = ir.Constant(ir.VectorType(i32, LANES), [j + width * lane
                                                             for lane in range(LANES)])
            part = builder.shuffle_vector(v, ir.Constant(run, ir.Undefined), mask)
            out = _row_pointer(builder, data, builder.add(row, ir.Constant(i64, j)), vec)
            builder.store(part, out, align=align)
        return context.get_dummy_value()

    return types.none(xp, types.int64, s, types.int64, k), codegen


def _deinterleave(xp, start, s, wire, k):
    """:func:`_deinterleave_vector`, or the same as a loop for float16 data."""


@overload(_deinterleave, prefer_literal=True)
def _ol_deinterleave(xp, start, s, wire, k):
    if isinstance(xp.dtype, types.Record):  # float16: decoded one by one
        def loop(xp, start, s, wire, k):
            for j in range(k):
                sw = s[wire + j]
                src = xp[start + j:]
                for lane in range(LANES):
                    sw[lane] = load(src, k * lane)

        return loop
    return lambda xp, start, s, wire, k: _deinterleave_vector(xp, start, s, wire, k)


@intrinsic
def _sort_pair(typingctx, s, i, j):
    """Rows ``i`` and ``j`` of ``s`` (C-contiguous, ``LANES`` columns) become their
    lane-wise minimum and maximum: one vector compare and two selects.

    The values hold no NaN (:func:`_nans_to_top` replaces them), so the compare and
    selects are a vector min and max.  Written as an intrinsic because LLVM cannot tell
    that two rows picked at run time do not overlap, and leaves the equivalent loop over
    the lanes scalar.
    """
    if not (isinstance(s, types.Array) and s.ndim == 2 and s.layout == "C"
            and isinstance(s.dtype, (types.Integer, types.Float))):
        return None
    dtype = s.dtype

    def codegen(context, builder, signature, args):
        array, a, b = args
        data = context.make_array(signature.args[0])(context, builder, value=array).data
        elt = context.get_value_type(dtype)
        vec = ir.VectorType(elt, LANES)
        align = context.get_abi_sizeof(elt)
        p = _row_pointer(builder, data, a, vec)
        q = _row_pointer(builder, data, b, vec)
        u = builder.load(p, align=align)
        v = builder.load(q, align=align)
        if isinstance(dtype, types.Float):
            less = builder.fcmp_ordered("<", v, u)
        elif dtype.signed:
            less = builder.icmp_signed("<", v, u)
        else:
            less = builder.icmp_unsigned("<", v, u)
        builder.store(builder.select(less, v, u), p, align=align)
        builder.store(builder.select(less, u, v), q, align=align)
        return context.get_dummy_value()

    return types.none(s, types.int64, types.int64), codegen


@intrinsic
def _nans_to_top(typingctx, s, n_wires, top, nans):
    """Replace the NaNs of wires ``< n_wires`` of ``s`` by ``top`` and count them per lane
    into ``nans`` (int64, ``LANES``); integers hold none (``nans`` is zeroed).  A vector
    pass (an intrinsic for the reason given at :func:`_sort_pair`)."""
    if not (isinstance(s, types.Array) and s.ndim == 2 and s.layout == "C"
            and isinstance(s.dtype, (types.Integer, types.Float))
            and isinstance(nans, types.Array) and nans.dtype == types.int64):
        return None
    dtype = s.dtype

    def codegen(context, builder, signature, args):
        array, count, fill, out = args
        sig = signature.args
        data = context.make_array(sig[0])(context, builder, value=array).data
        ndata = context.make_array(sig[3])(context, builder, value=out).data
        elt = context.get_value_type(dtype)
        i64 = ir.IntType(64)
        vec = ir.VectorType(elt, LANES)
        ivec = ir.VectorType(i64, LANES)
        align = context.get_abi_sizeof(elt)
        zero = ir.Constant(ivec, [0] * LANES)
        total = cgutils.alloca_once_value(builder, zero)
        if isinstance(dtype, types.Float):
            top_v = _splat(builder, fill, vec)
            with cgutils.for_range(builder, count) as loop:
                ptr = _row_pointer(builder, data, loop.index, vec)
                v = builder.load(ptr, align=align)
                nan = builder.fcmp_unordered("uno", v, v)
                builder.store(builder.select(nan, top_v, v), ptr, align=align)
                builder.store(builder.add(builder.load(total), builder.zext(nan, ivec)), total)
        builder.store(builder.load(total), builder.bitcast(ndata, ivec.as_pointer()), align=8)
        return context.get_dummy_value()

    return types.none(s, types.int64, s.dtype, nans), codegen


@helper
def _network(s, net):
    """Apply the comparators of ``net`` to every column of ``s``."""
    for c in range(net.shape[0]):
        _sort_pair(s, net[c, 0], net[c, 1])


@intrinsic
def _lane_modes(typingctx, s, counts, span, val):
    """``val[l]``: the most frequent of the first ``counts[l]`` values of sorted column
    ``l`` of ``s`` (ties to the smallest: the first of the longest runs), scanning wires
    ``< span``.  One pass over the wires with the lanes' run lengths, best lengths and
    values in vector registers (an intrinsic for the reason given at :func:`_sort_pair`).
    """
    if not (isinstance(s, types.Array) and s.ndim == 2 and s.layout == "C"
            and isinstance(s.dtype, (types.Integer, types.Float))
            and isinstance(counts, types.Array) and counts.dtype == types.int64
            and isinstance(val, types.Array) and val.dtype == s.dtype):
        return None
    dtype = s.dtype

    def codegen(context, builder, signature, args):
        array, cnt_array, n_wires, out = args
        sig = signature.args
        data = context.make_array(sig[0])(context, builder, value=array).data
        cdata = context.make_array(sig[1])(context, builder, value=cnt_array).data
        vdata = context.make_array(sig[3])(context, builder, value=out).data
        elt = context.get_value_type(dtype)
        i64 = ir.IntType(64)
        vec = ir.VectorType(elt, LANES)
        ivec = ir.VectorType(i64, LANES)
        align = context.get_abi_sizeof(elt)

        def row(i):
            return builder.load(_row_pointer(builder, data, i, vec), align=align)

        limit = builder.load(builder.bitcast(cdata, ivec.as_pointer()), align=8)
        one = ir.Constant(ivec, [1] * LANES)
        run_p = cgutils.alloca_once_value(builder, one)
        best_p = cgutils.alloca_once_value(builder, one)
        val_p = cgutils.alloca_once_value(builder, row(ir.Constant(i64, 0)))
        with cgutils.for_range(builder, builder.sub(n_wires, ir.Constant(i64, 1))) as loop:
            i = builder.add(loop.index, ir.Constant(i64, 1))
            cur = row(i)
            prev = row(builder.sub(i, ir.Constant(i64, 1)))
            if isinstance(dtype, types.Float):
                same = builder.fcmp_ordered("==", cur, prev)
            else:
                same = builder.icmp_unsigned("==", cur, prev)
            run = builder.select(same, builder.add(builder.load(run_p), one), one)
            builder.store(run, run_p)
            best = builder.load(best_p)
            better = builder.and_(builder.icmp_signed(">", run, best),
                                  builder.icmp_signed("<", _splat(builder, i, ivec), limit))
            builder.store(builder.select(better, run, best), best_p)
            builder.store(builder.select(better, cur, builder.load(val_p)), val_p)
        builder.store(builder.load(val_p), builder.bitcast(vdata, vec.as_pointer()),
                      align=align)
        return context.get_dummy_value()

    return types.none(s, counts, types.int64, val), codegen


@njit(cache=True, nogil=True)
def order_tasks(x, out, t0, t1, geo, outer, net, kind, omit, top, rzero, half, s, cols, offs,
                nans, counts, val, rows, ow, scal):
    """Block medians (``kind`` :data:`K_MEDIAN`) or modes (:data:`K_MODE`) of tasks
    ``[t0, t1)``.

    ``net`` is the sorting network of ``geo[G_N]`` wires (for medians, only the
    comparators that the lower half needs), or has no rows when blocks are gathered one at
    a time.
    ``top`` is the largest value of the computed type; ``rzero`` a zero of the median's
    type and ``half`` one half in it.  Under ``omit`` NaNs are left out, and a block of only
    NaNs gives NaN; otherwise a NaN gives NaN.
    """
    x, out, geo, outer, net = _borrowed(x), _borrowed(out), _borrowed(geo), \
        _borrowed(outer), _borrowed(net)
    s, cols, offs, nans, counts, val = _borrowed(s), _borrowed(cols), _borrowed(offs), \
        _borrowed(nans), _borrowed(counts), _borrowed(val)
    rows, ow, scal = _borrowed(rows), _borrowed(ow), _borrowed(scal)
    W, bw, C = geo[G_W], geo[G_BW], geo[G_C]
    nan = np.float64(np.nan)
    span = geo[G_N]
    network = net.shape[0] > 0
    for t in range(t0, t1):
        p, ro, chunk = _task(t, geo[G_CHUNKS], geo[G_RO])
        n = _input_rows(outer, ro, rows, ow)
        w0, w1, _ = _chunk(geo, chunk)
        q0 = w0 * C
        q1 = w1 * C
        dst = out[p, ro]
        xp = x[p].reshape(x.shape[1] * x.shape[2])
        if not network:
            _order_scalar(x, dst[q0:], p, rows, n, q0, q1, W, bw, C, kind, omit, rzero, half,
                          scal)
            continue
        for g in range(q0, q1, LANES):
            nl = min(LANES, q1 - g)
            _gather_lanes(xp, rows, n, g, nl, W, bw, C, top, s, cols, offs)
            _nans_to_top(s, n * bw, top, nans)
            _network(s, net)
            for lane in range(LANES):
                counts[lane] = n * cols[lane] - nans[lane]
            if kind == K_MODE:
                _lane_modes(s, counts, min(span, n * bw), val)
            d = dst[g:]
            for lane in range(nl):
                m = counts[lane]
                if m == 0 or (nans[lane] > 0 and not omit):
                    store(d, lane, nan)
                elif kind == K_MODE:
                    store(d, lane, val[lane])
                else:
                    k = m // 2
                    hi = rzero + s[k, lane]
                    if m % 2 == 1:
                        store(d, lane, hi)
                    else:
                        store(d, lane, ((rzero + s[k - 1, lane]) + hi) * half)
