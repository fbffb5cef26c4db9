"""Window geometry: the one place where pooling semantics are decided.

Everything here is pure Python/NumPy and backend-agnostic.  Each spatial axis is
described by an :class:`AxisWindows`: output position ``o`` reads the input positions
``first(o) + j * step`` for ``j < count(o)`` (only in-bounds taps are listed; padding never
contributes a value).  Because pooling windows are boxes, an N-D window is the Cartesian
product of its axes' windows, and every divisor rule is a product of per-axis counts.
Kernels are driven by these descriptions and never re-derive the rules.

An axis is stored as its *uniform run*, the outputs ``lo <= o < hi`` whose windows are all
``k`` in-bounds taps from ``o*s + off`` (the interior of a sliding pool, every window of an
adaptive pool that divides evenly), plus explicit tables for the other windows only (the
borders of a sliding pool, every window of an uneven adaptive pool).  So the description of
an axis grows with its borders, not with its length, and whether every window holds an
input element is decided in closed form before anything is allocated.

The rules follow PyTorch's ``Pool.h``/``AdaptivePooling.h`` where they overlap,
with TensorFlow's SAME/VALID padding added.
"""

from __future__ import annotations

import functools
import numbers
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AxisWindows",
    "BoundedMemo",
    "as_int_tuple",
    "resolve_padding",
    "pooled_size",
    "first_empty_window",
    "sliding_axis",
    "adaptive_axis",
    "full_axis",
]


@dataclass(frozen=True, eq=False)
class AxisWindows:
    """The pooling windows along one spatial axis (immutable; compared and hashed by identity).

    Output ``o`` reads ``count(o)`` input positions from ``first(o)``, ``step`` apart, and
    ``padded(o)`` of its taps lie inside the padded input (the ``count_include_pad`` divisor).
    Outputs ``lo <= o < hi`` of ``run = (lo, hi, k, s, off)`` have ``first = o*s + off`` and
    ``count = padded = k``: all their taps are inside the input.  The other outputs, those
    below ``lo`` then those from ``hi`` on, are listed in the ``edge_*`` tables
    (:meth:`edge_index` says where); ``lo == hi == 0`` when there is no run.

    The constructors below are memoised (by geometry, within a bound on entries and bytes),
    so repeated calls with the same geometry usually share one instance; ``key`` identifies
    the geometry, for memos of what is built from it.

    Attributes
    ----------
    in_size : int
        Input length ``L`` along the axis.
    out_size : int
        Number of windows ``O``.
    step : int
        Distance between taps (the dilation).
    run : tuple of 5 ints
        ``(lo, hi, k, s, off)``, the uniform run.
    edge_first, edge_count, edge_padded : int64 arrays, shape (O - (hi - lo),)
        First in-bounds position, number of in-bounds taps (always >= 1) and number of taps
        inside ``[-before, L + after)`` of each window outside the run.
    key : tuple
        The geometry: equal keys describe equal windows.
    """

    in_size: int
    out_size: int
    step: int
    run: tuple
    edge_first: np.ndarray
    edge_count: np.ndarray
    edge_padded: np.ndarray
    key: tuple

    def __post_init__(self):
        for name in ("edge_first", "edge_count", "edge_padded"):
            getattr(self, name).flags.writeable = False  # shared by every cached user
        lo, hi = self.run[:2]
        assert 0 <= lo <= hi <= self.out_size
        assert self.edge_first.shape == (self.out_size - (hi - lo),)

    def edge_index(self, o: int) -> int:
        """Where window ``o`` (outside the run) sits in the ``edge_*`` tables."""
        lo, hi = self.run[:2]
        return o if o < lo else o - hi + lo

    def window(self, o: int) -> tuple[int, int, int]:
        """``(first, count, padded)`` of window ``o``."""
        if not 0 <= o < self.out_size:
            raise IndexError(o)
        lo, hi, k, s, off = self.run
        if lo <= o < hi:
            return o * s + off, k, k
        e = self.edge_index(o)
        return int(self.edge_first[e]), int(self.edge_count[e]), int(self.edge_padded[e])

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(first, count, padded)`` of every window, as int64 arrays of length ``O``.

        This materialises the whole axis: for tests and small axes only.
        """
        lo, hi, k, s, off = self.run
        o = np.arange(lo, hi, dtype=np.int64)
        tables = []
        for edge, inside in ((self.edge_first, o * s + off), (self.edge_count, np.full_like(o, k)),
                             (self.edge_padded, np.full_like(o, k))):
            tables.append(np.concatenate((edge[:lo], inside, edge[lo:])))
        return tuple(tables)

    @property
    def max_count(self) -> int:
        """The largest number of in-bounds taps of any window."""
        lo, hi, k = self.run[:3]
        edge = int(self.edge_count.max()) if self.edge_count.size else 0
        return max(k if hi > lo else 0, edge)

    @property
    def nbytes(self) -> int:
        """Bytes held by the edge tables (the rest is a few ints)."""
        return self.edge_first.nbytes + self.edge_count.nbytes + self.edge_padded.nbytes


class BoundedMemo:
    """A thread-safe least-recently-used memo of ``fn``, bounded in entries and in bytes.

    ``size(value)`` is what a value holds; values larger than ``max_bytes`` are returned
    but not kept.  Keyword arguments named in ``ignore`` (such as ``axis``, which only
    names the dimension in error messages) are left out of the key.  Exceptions are not
    memoised.
    """

    def __init__(self, fn, *, max_entries: int, max_bytes: int, size, ignore=()):
        functools.update_wrapper(self, fn)
        self._fn = fn
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._size = size
        self._ignore = frozenset(ignore)
        self._entries: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __call__(self, *args, **kwargs):
        key = args + tuple(sorted((k, v) for k, v in kwargs.items() if k not in self._ignore))
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                return hit[0]
        value = self._fn(*args, **kwargs)
        nbytes = int(self._size(value))
        if nbytes <= self.max_bytes:
            with self._lock:
                if key not in self._entries:
                    self._entries[key] = (value, nbytes)
                    self._bytes += nbytes
                while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                    _, (_, evicted) = self._entries.popitem(last=False)
                    self._bytes -= evicted
        return value

    def cache_info(self) -> dict:
        """``{"entries": ..., "bytes": ...}`` held now."""
        with self._lock:
            return {"entries": len(self._entries), "bytes": self._bytes}

    def cache_clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


def memoised(*, max_entries: int, max_bytes: int, size=lambda v: v.nbytes, ignore=()):
    """Decorator form of :class:`BoundedMemo`."""
    return lambda fn: BoundedMemo(fn, max_entries=max_entries, max_bytes=max_bytes, size=size,
                                  ignore=ignore)


#: Bound on every int parameter, so window arithmetic stays inside int64.
MAX_INT = 2**60


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def as_int_tuple(value, n: int, name: str, *, minimum: int) -> tuple[int, ...]:
    """Normalise an int or a length-``n`` sequence of ints, each ``>= minimum``."""
    if _is_int(value):
        items = (int(value),) * n
    elif isinstance(value, (tuple, list)) and all(_is_int(v) for v in value):
        if len(value) != n:
            raise ValueError(
                f"{name} must be an int or a sequence of {n} ints (one per spatial dimension); "
                f"got {tuple(value)!r} of length {len(value)}"
            )
        items = tuple(int(v) for v in value)
    else:
        raise TypeError(f"{name} must be an int or a sequence of {n} ints; got {value!r}")
    if any(v < minimum for v in items):
        raise ValueError(f"{name} must be >= {minimum} in every dimension; got {value!r}")
    if any(v >= MAX_INT for v in items):
        raise ValueError(f"{name} must be < 2**60 in every dimension; got {value!r}")
    return items


def pooled_size(in_size: int, kernel: int, stride: int, dilation: int,
                before: int, after: int, ceil_mode: bool) -> int:
    """Output length of a sliding window along one axis (PyTorch's rule, asymmetric padding)."""
    span = dilation * (kernel - 1) + 1
    numerator = in_size + before + after - span + ((stride - 1) if ceil_mode else 0)
    if numerator < 0:
        return 0
    size = numerator // stride + 1
    # PyTorch drops a last window that would start inside the right padding or beyond.
    if ceil_mode and (size - 1) * stride >= in_size + before:
        size -= 1
    return size


def resolve_padding(padding, n: int, in_sizes, kernel, stride, dilation) -> tuple[tuple[int, int], ...]:
    """Normalise ``padding`` to ``n`` ``(before, after)`` pairs.

    Accepts an int, ``n`` ints (symmetric), ``n`` ``(before, after)`` pairs, ``"valid"``
    (none) or ``"same"`` (TensorFlow's rule: output ``ceil(L / s)``, the odd cell after).
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return ((0, 0),) * n
        if mode == "same":
            pairs = []
            for L, k, s, d in zip(in_sizes, kernel, stride, dilation):
                out = -(-L // s)
                total = max((out - 1) * s + (k - 1) * d + 1 - L, 0)
                pairs.append((total // 2, total - total // 2))
            return tuple(pairs)
        raise ValueError(f"padding must be an int, a tuple, 'same' or 'valid'; got {padding!r}")
    if _is_int(padding):
        pairs = ((int(padding), int(padding)),) * n
    elif isinstance(padding, (tuple, list)) and len(padding) == n:
        pairs = []
        for p in padding:
            if _is_int(p):
                pairs.append((int(p), int(p)))
            elif isinstance(p, (tuple, list)) and len(p) == 2 and all(_is_int(v) for v in p):
                pairs.append((int(p[0]), int(p[1])))
            else:
                raise TypeError(
                    f"padding entries must be ints or (before, after) pairs of ints; got {padding!r}"
                )
        pairs = tuple(pairs)
    elif isinstance(padding, (tuple, list)):
        raise ValueError(
            f"padding must have one entry per spatial dimension ({n}); got {tuple(padding)!r}"
        )
    else:
        raise TypeError(
            f"padding must be an int, {n} ints, {n} (before, after) pairs, 'same' or 'valid'; "
            f"got {padding!r}"
        )
    if any(v < 0 for pair in pairs for v in pair):
        raise ValueError(f"padding must be >= 0; got {padding!r}")
    if any(v >= MAX_INT for pair in pairs for v in pair):
        raise ValueError(f"padding must be < 2**60; got {padding!r}")
    return pairs


def _taps(starts: np.ndarray, kernel: int, step: int, lo: int, hi: int):
    """For windows starting at ``starts``: (first, count) of taps ``start + j*step`` in ``[lo, hi)``."""
    j_lo = np.maximum(0, -((starts - lo) // step))
    j_hi = np.minimum(kernel, (hi - 1 - starts) // step + 1)
    count = np.maximum(j_hi - j_lo, 0)
    return starts + j_lo * step, count


def _first_multiple_in(a: int, m: int, lo: int, hi: int):
    """The smallest ``x >= 0`` with ``lo <= (a*x) mod m <= hi`` (``0 <= lo <= hi < m``), or None.

    Euclid's descent: either some ``a*x`` lands in ``[lo, hi]`` before the first wrap past
    ``m``, or the answer has ``a*x = m*y + v`` (``v`` in the interval, ``y >= 1``), where the
    smallest ``y`` gives the smallest ``x`` and is itself the answer of the same question
    with ``(m mod a, a)`` in place of ``(a, m)``.  O(log m) steps.
    """
    a %= m
    if lo == 0:
        return 0
    if a == 0:
        return None
    x = -(-lo // a)
    if a * x <= hi:
        return x
    # no multiple of a lies in [lo, hi], so v mod a runs over [lo % a, hi % a] without
    # wrapping, and (m*y) mod a = a - v mod a
    y = _first_multiple_in(m % a, a, a - hi % a, a - lo % a)
    return None if y is None else -(-(lo + m * y) // a)


def _first_in(a: int, c: int, m: int, lo: int, hi: int):
    """The smallest ``x >= 0`` with ``lo <= (a*x + c) mod m <= hi`` (``0 <= lo <= hi < m``,
    not the whole range), or None."""
    lo_c, hi_c = (lo - c) % m, (hi - c) % m
    if lo_c <= hi_c:
        return _first_multiple_in(a, m, lo_c, hi_c)
    found = [x for x in (_first_multiple_in(a, m, lo_c, m - 1), _first_multiple_in(a, m, 0, hi_c))
             if x is not None]
    return min(found, default=None)


def first_empty_window(in_size: int, kernel: int, stride: int, dilation: int, before: int,
                       out_size: int):
    """The first of ``out_size`` sliding windows that holds no input element, or None.

    A window starting at ``p`` (taps ``p + j*d``, ``j < k``) holds an element iff
    ``p >= -(k-1)*d``, ``p < L`` and ``p mod d < L`` (its first tap at or after 0 is
    ``p mod d`` when ``p < 0``).  The starts ``o*s - before`` grow with ``o``, so the first
    two conditions fail on a prefix and a suffix; the third is a question about a linear
    function mod ``d``.  Decided in O(log) time and memory, whatever the sizes.
    """
    L, k, s, d = in_size, kernel, stride, dilation
    if before > (k - 1) * d:
        return 0
    found = []
    past = -(-(L + before) // s)  # the first window starting at or after L
    if past < out_size:
        found.append(past)
    if L < d:  # windows starting before 0 may fall between two taps
        o = _first_in(s, -before, d, L, d - 1)
        if o is not None and o < out_size:
            found.append(o)
    return min(found, default=None)


_memo = memoised(max_entries=512, max_bytes=16 << 20, ignore=("axis",))


def _no_edges():
    return np.zeros(0, np.int64)


@_memo
def sliding_axis(in_size: int, kernel: int, stride: int, dilation: int,
                 before: int, after: int, ceil_mode: bool, *, axis: int = 0) -> AxisWindows:
    """Windows of a sliding-window pool along one axis; raises ``ValueError`` on an empty window."""
    L, k, s, d = in_size, kernel, stride, dilation
    size = pooled_size(L, k, s, d, before, after, ceil_mode)
    if size <= 0:
        span = d * (k - 1) + 1
        raise ValueError(
            f"spatial dimension {axis}: the window spans {span} positions but the padded input "
            f"has only {L + before + after} (input {L}, padding ({before}, {after})); "
            "use a smaller kernel_size/dilation or more padding"
        )
    empty = first_empty_window(L, k, s, d, before, size)
    if empty is not None:
        raise ValueError(
            f"spatial dimension {axis}: output window {empty} holds no "
            f"input element (input {L}, kernel {k}, stride {s}, dilation "
            f"{d}, padding ({before}, {after})); reduce the padding"
        )
    # the run: windows whose k taps o*s - before + j*d all lie in [0, L)
    lo = min(-(-before // s), size)
    hi = min(max((L - 1 - (k - 1) * d + before) // s + 1, 0), size)
    if hi <= lo:
        lo = hi = 0
    edges = np.concatenate((np.arange(lo, dtype=np.int64), np.arange(hi, size, dtype=np.int64)))
    starts = edges * s - before
    first, count = _taps(starts, k, d, 0, L)
    _, padded = _taps(starts, k, d, -before, L + after)
    key = ("sliding", L, k, s, d, before, after, bool(ceil_mode))
    return AxisWindows(L, size, d, (lo, hi, k, s, -before), first, count, padded, key)


@_memo
def adaptive_axis(in_size: int, out_size: int, *, axis: int = 0) -> AxisWindows:
    """Adaptive windows ``[floor(i*L/O), ceil((i+1)*L/O))``; ``O`` may exceed ``L``.

    When ``O`` divides ``L`` every window is ``L/O`` wide and they form one uniform run;
    otherwise each window is listed.
    """
    L, O = in_size, out_size
    if L < 1:
        raise ValueError(f"spatial dimension {axis} has size 0; adaptive pooling needs >= 1")
    key = ("adaptive", L, O)
    if L % O == 0:
        k = L // O
        return AxisWindows(L, O, 1, (0, O, k, k, 0), _no_edges(), _no_edges(), _no_edges(), key)
    # i*L may not fit in int64: split L = q*O + r, and i*r < O*O does
    q, r = divmod(L, O)
    i = np.arange(O, dtype=np.int64)
    start = i * q + (i * r) // O
    end = (i + 1) * q - ((-(i + 1) * r) // O)
    count = end - start
    return AxisWindows(L, O, 1, (0, 0, 1, 1, 0), start, count, count.copy(), key)


@_memo
def full_axis(in_size: int, *, axis: int = 0) -> AxisWindows:
    """One window covering the whole axis (global pooling)."""
    if in_size < 1:
        raise ValueError(f"spatial dimension {axis} has size 0; global pooling needs >= 1")
    return AxisWindows(in_size, 1, 1, (0, 1, in_size, 1, 0), _no_edges(), _no_edges(),
                       _no_edges(), ("full", in_size))
