"""Window geometry: the one place where pooling semantics are decided.

Everything here is pure Python/NumPy and backend-agnostic.  Each spatial axis is
described by an :class:`AxisWindows`: output position ``o`` reads the input
positions ``first[o] + j * step`` for ``j < count[o]`` (only in-bounds taps are
listed; padding never contributes a value).  Because pooling windows are boxes,
an N-D window is the Cartesian product of its axes' windows, and every divisor
rule is a product of per-axis counts.  Kernels are driven by these tables and
never re-derive the rules.

The rules follow PyTorch's ``Pool.h``/``AdaptivePooling.h`` where they overlap,
with TensorFlow's SAME/VALID padding added.
"""

from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AxisWindows",
    "as_int_tuple",
    "resolve_padding",
    "pooled_size",
    "sliding_axis",
    "adaptive_axis",
    "full_axis",
]


@dataclass(frozen=True, eq=False)
class AxisWindows:
    """The pooling windows along one spatial axis (immutable; compared and hashed by identity).

    The constructors below are memoised, so repeated calls with the same geometry share one
    instance, and per-call work (plans, kernel tables) can be cached on it.

    Attributes
    ----------
    in_size : int
        Input length ``L`` along the axis.
    first : int64 array, shape (O,)
        First in-bounds input position of each window.
    count : int64 array, shape (O,)
        Number of in-bounds taps of each window (always >= 1).
    step : int
        Distance between taps (the dilation).
    padded_count : int64 array, shape (O,)
        Number of taps inside ``[-before, L + after)``: the ``count_include_pad`` divisor.
    """

    in_size: int
    first: np.ndarray
    count: np.ndarray
    step: int
    padded_count: np.ndarray

    def __post_init__(self):
        for name in ("first", "count", "padded_count"):
            getattr(self, name).flags.writeable = False  # shared by every cached user

    @property
    def out_size(self) -> int:
        return int(self.first.shape[0])


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


@functools.lru_cache(maxsize=512)
def sliding_axis(in_size: int, kernel: int, stride: int, dilation: int,
                 before: int, after: int, ceil_mode: bool, *, axis: int = 0) -> AxisWindows:
    """Windows of a sliding-window pool along one axis; raises ``ValueError`` on an empty window."""
    size = pooled_size(in_size, kernel, stride, dilation, before, after, ceil_mode)
    if size <= 0:
        span = dilation * (kernel - 1) + 1
        raise ValueError(
            f"spatial dimension {axis}: the window spans {span} positions but the padded input "
            f"has only {in_size + before + after} (input {in_size}, padding ({before}, {after})); "
            "use a smaller kernel_size/dilation or more padding"
        )
    def check(windows, count):
        empty = np.flatnonzero(count == 0)
        if empty.size:
            raise ValueError(
                f"spatial dimension {axis}: output window {int(windows[empty[0]])} holds no "
                f"input element (input {in_size}, kernel {kernel}, stride {stride}, dilation "
                f"{dilation}, padding ({before}, {after})); reduce the padding"
            )

    # the edge windows first, so that a huge padding fails before its tables are allocated
    edges = np.array([0, size - 1], dtype=np.int64)
    check(edges, _taps(edges * stride - before, kernel, dilation, 0, in_size)[1])
    windows = np.arange(size, dtype=np.int64)
    starts = windows * stride - before
    first, count = _taps(starts, kernel, dilation, 0, in_size)
    check(windows, count)
    _, padded = _taps(starts, kernel, dilation, -before, in_size + after)
    return AxisWindows(in_size, first, count, dilation, padded)


@functools.lru_cache(maxsize=512)
def adaptive_axis(in_size: int, out_size: int, *, axis: int = 0) -> AxisWindows:
    """Adaptive windows ``[floor(i*L/O), ceil((i+1)*L/O))``; ``O`` may exceed ``L``."""
    if in_size < 1:
        raise ValueError(f"spatial dimension {axis} has size 0; adaptive pooling needs >= 1")
    i = np.arange(out_size, dtype=np.int64)
    start = (i * in_size) // out_size
    end = -((-(i + 1) * in_size) // out_size)
    count = end - start
    return AxisWindows(in_size, start, count, 1, count.copy())


@functools.lru_cache(maxsize=512)
def full_axis(in_size: int, *, axis: int = 0) -> AxisWindows:
    """One window covering the whole axis (global pooling)."""
    if in_size < 1:
        raise ValueError(f"spatial dimension {axis} has size 0; global pooling needs >= 1")
    one = np.ones(1, dtype=np.int64)
    return AxisWindows(in_size, np.zeros(1, dtype=np.int64), one * in_size, 1, one * in_size)
