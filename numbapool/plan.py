"""The execution plan of a spatial pool, computed once in Python for any backend.

A :class:`SpatialPlan` holds the per-axis windows (:mod:`numbapool.geometry`), how the
array's axes map onto the canonical ``(planes, rows, row_length)`` view the kernels work
on, the reducer and its arithmetic.  Backends only loop over what the plan says.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from math import prod
from typing import NamedTuple

import numpy as np

from . import _arith
from .geometry import AxisWindows

REDUCERS = ("max", "min", "sum")
# Element transforms before summing, and what a window sum becomes (see _arith.py).
TRANSFORMS = {"identity": _arith.T_IDENTITY, "power": _arith.T_POWER,
              "clip_power": _arith.T_CLIP_POWER}
FINISHES = {"mean": _arith.F_MEAN, "root_sum": _arith.F_ROOT_SUM, "root_mean": _arith.F_ROOT_MEAN}



class WindowTables(NamedTuple):
    """The window tables the kernels read, built from a plan's :class:`AxisWindows`.

    ``o_*`` describe the outer spatial axes (every axis but the last, or one unit axis for
    1-D pools), stacked into ``(n_outer, widest)`` tables: output ``i`` of outer axis ``a``
    reads ``o_count[a, i]`` input rows from ``o_first[a, i]``, ``o_step[a]`` apart;
    ``ishape``/``oshape`` are the outer axes' input and output sizes.  ``l_*`` describe the
    last spatial axis the same way, one entry per output position.  ``o_div``/``l_div``
    are the per-axis divisors of averaging pools.  ``l_uniform`` is
    ``[lo, hi, k, s, off]``: outputs ``lo <= o < hi`` all read ``k`` taps from ``o*s + off``
    (``lo == hi`` when there is no such run).
    """

    o_first: np.ndarray
    o_count: np.ndarray
    o_step: np.ndarray
    o_div: np.ndarray
    ishape: np.ndarray
    oshape: np.ndarray
    l_first: np.ndarray
    l_count: np.ndarray
    l_step: int
    l_div: np.ndarray
    l_uniform: np.ndarray


_UNIT_AXIS = AxisWindows(1, np.zeros(1, np.int64), np.ones(1, np.int64), 1, np.ones(1, np.int64))


@dataclass(frozen=True)
class SpatialPlan:
    """Everything a backend needs to run one spatial pool.

    ``lead_shape`` are the independent leading axes, ``channels`` the trailing channel axis of
    channels-last data (1 for channels-first).  For ``reducer == "sum"``: ``transform`` and
    ``power``/``eps`` say what is summed, ``finish`` what the sum becomes, ``divisor`` whether
    per-axis divisors are the padded counts (``"padded"``) or in-bounds counts (``"valid"``),
    and ``divisor_override`` replaces them when non-zero.
    """

    reducer: str
    axes: tuple[AxisWindows, ...]
    lead_shape: tuple[int, ...]
    channels: int
    channels_last: bool
    out_dtype: np.dtype
    acc_dtype: np.dtype | None = None
    omit_nan: bool = False
    return_indices: bool = False
    transform: str = "identity"
    power: float = 1.0
    eps: float = 0.0
    finish: str = "mean"
    divisor: str = "valid"
    divisor_override: float = 0.0

    @property
    def ndim(self) -> int:
        return len(self.axes)

    @property
    def planes(self) -> int:
        return prod(self.lead_shape)

    @property
    def in_spatial(self) -> tuple[int, ...]:
        return tuple(a.in_size for a in self.axes)

    @property
    def out_spatial(self) -> tuple[int, ...]:
        return tuple(a.out_size for a in self.axes)

    @property
    def out_shape(self) -> tuple[int, ...]:
        tail = (self.channels,) if self.channels_last else ()
        return self.lead_shape + self.out_spatial + tail

    @property
    def canonical_in_shape(self) -> tuple[int, int, int]:
        sp = self.in_spatial
        return (self.planes, prod(sp[:-1]), sp[-1] * self.channels)

    @property
    def canonical_out_shape(self) -> tuple[int, int, int]:
        sp = self.out_spatial
        return (self.planes, prod(sp[:-1]), sp[-1] * self.channels)

    def split_out(self, out) -> tuple:
        """The caller's ``out=`` as ``(values, indices)``; ``indices`` is ``None`` unless the
        plan returns indices, when ``out`` must be ``None`` or a ``(values, indices)`` pair."""
        if not self.return_indices:
            return out, None
        if out is None:
            return None, None
        if isinstance(out, tuple) and len(out) == 2:
            return out
        raise TypeError("with return_indices=True, out must be a (values, indices) pair")

    @property
    def tables(self) -> WindowTables:
        """The kernels' window tables: stacked outer axes (at least one) and the last axis."""
        return _tables(self.axes, self.divisor)


@functools.lru_cache(maxsize=256)
def _tables(axes: tuple[AxisWindows, ...], divisor: str) -> WindowTables:
    """Kernel tables of ``axes`` (memoised: the axes are memoised too, so hits are common)."""
    outer = axes[:-1] or (_UNIT_AXIS,)
    last = axes[-1]
    width = max(a.out_size for a in outer)

    def stack(attr, dtype):
        t = np.zeros((len(outer), width), dtype)
        for i, a in enumerate(outer):
            t[i, : a.out_size] = getattr(a, attr)
        return t

    div_attr = "padded_count" if divisor == "padded" else "count"
    tables = WindowTables(
        o_first=stack("first", np.int64),
        o_count=stack("count", np.int64),
        o_step=np.array([a.step for a in outer], np.int64),
        o_div=stack(div_attr, np.float64),
        ishape=np.array([a.in_size for a in outer], np.int64),
        oshape=np.array([a.out_size for a in outer], np.int64),
        l_first=last.first,
        l_count=last.count,
        l_step=int(last.step),
        l_div=getattr(last, div_attr).astype(np.float64),
        l_uniform=_uniform_run(last),
    )
    for value in tables:
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return tables


def _uniform_run(axis: AxisWindows) -> np.ndarray:
    """``[lo, hi, k, s, off]``: outputs ``lo <= o < hi`` all read ``k`` taps from ``o*s + off``.

    This is the interior of a sliding pool, where kernels can use tap-major loops; windows
    outside it (borders, uneven adaptive windows) take the general path.  ``lo == hi`` when
    there is no such run.
    """
    count, first = axis.count, axis.first
    k = int(count.max())
    full = np.flatnonzero(count == k)
    lo, hi = int(full[0]), int(full[-1]) + 1
    s = int(first[lo + 1] - first[lo]) if hi - lo >= 2 else 1
    off = int(first[lo]) - lo * s
    even = hi - lo == full.size and s >= 1 and np.array_equal(
        first[lo:hi], off + s * np.arange(lo, hi, dtype=np.int64))
    if not even:
        lo = hi = 0
    return np.array([lo, hi, k, s, off], np.int64)
