"""The execution plan of a spatial pool, computed once in Python for any backend.

A :class:`SpatialPlan` holds the per-axis windows (:mod:`numbapool.geometry`), how the
array's axes map onto the canonical ``(planes, rows, row_length)`` view the kernels work
on, the reducer and its arithmetic.  Backends only loop over what the plan says.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import NamedTuple

import numpy as np

from . import _arith
from .geometry import AxisWindows, memoised

REDUCERS = ("max", "min", "sum")
# Element transforms before summing, and what a window sum becomes (see _arith.py).
TRANSFORMS = {"identity": _arith.T_IDENTITY, "power": _arith.T_POWER,
              "clip_power": _arith.T_CLIP_POWER}
FINISHES = {"mean": _arith.F_MEAN, "root_sum": _arith.F_ROOT_SUM, "root_mean": _arith.F_ROOT_MEAN}



#: Columns of :attr:`WindowTables.axes`, one row per axis: input and output length, tap
#: step, the uniform run ``[LO, HI)`` (``K`` taps from ``o*S + OFF``), where the axis's
#: windows outside the run start in the edge tables, and the axis's stride in input rows of
#: the canonical view (outer axes; 1 for the last axis).
IN, OUT, STEP, LO, HI, K, S, OFF, BASE, ROWS = range(10)
N_COLUMNS = 10
#: Elements of a CPU task's row buffers.  Rows whose windows need more (long 1-D signals,
#: very wide rows) are processed in blocks of columns, so that no call holds more scratch
#: than this per thread, whatever the input length.
ROW_BUFFER = 1 << 15


class WindowTables(NamedTuple):
    """The window tables the kernels read, built from a plan's :class:`AxisWindows`.

    ``axes`` has one row per axis (columns :data:`IN` ... :data:`ROWS`): the outer spatial
    axes first (every axis but the last, or one unit axis for 1-D pools), then the last
    axis.  Output ``o`` of axis ``a`` reads ``count`` input positions from ``first``,
    ``axes[a, STEP]`` apart: inside the run ``axes[a, LO] <= o < axes[a, HI]`` that is
    ``axes[a, K]`` taps from ``o * axes[a, S] + axes[a, OFF]``, and otherwise the edge
    entry ``e = axes[a, BASE] + (o if o < LO else o - HI + LO)`` of ``first``/``count``.
    ``div`` is the per-axis divisor of an averaging pool for each edge entry (``K`` in the
    run) and ``inv`` its reciprocal.  The tables hold the edge windows only, so they stay
    small however long the axes are.

    ``l_uniform`` is ``[lo, hi, k, s, off]``: the outputs of the last axis that the CPU
    kernels fold with their tap-major uniform loops (the last axis's run; ``lo == hi`` sends
    every window through the general loop).  ``buffer`` bounds a CPU task's row buffers
    (:data:`ROW_BUFFER`).
    """

    axes: np.ndarray
    first: np.ndarray
    count: np.ndarray
    div: np.ndarray
    inv: np.ndarray
    l_uniform: np.ndarray
    buffer: int

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self if isinstance(v, np.ndarray))


_UNIT_AXIS = AxisWindows(1, 1, 1, (0, 1, 1, 1, 0), np.zeros(0, np.int64),
                         np.zeros(0, np.int64), np.zeros(0, np.int64), ("unit",))


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
        """The kernels' window tables: the outer axes (at least one) and the last axis."""
        return _tables(tuple(a.key for a in self.axes), self.divisor, ROW_BUFFER,
                       axes=self.axes)


@memoised(max_entries=256, max_bytes=16 << 20, size=lambda t: t.nbytes, ignore=("axes",))
def _tables(keys, divisor: str, buffer: int, *, axes) -> WindowTables:
    """Kernel tables of ``axes``, memoised by geometry (``keys``, the axes' keys: equal keys
    describe equal windows), within a bound on entries and bytes."""
    all_axes = (axes[:-1] or (_UNIT_AXIS,)) + (axes[-1],)
    rows = np.zeros((len(all_axes), N_COLUMNS), np.int64)
    base = 0
    stride = 1
    for a in range(len(all_axes) - 1, -1, -1):
        ax = all_axes[a]
        lo, hi, k, s, off = ax.run
        rows[a, [IN, OUT, STEP, LO, HI, K, S, OFF]] = (ax.in_size, ax.out_size, ax.step, lo,
                                                       hi, k, s, off)
        rows[a, ROWS] = stride
        if a < len(all_axes) - 1:
            stride *= ax.in_size
    for a, ax in enumerate(all_axes):
        rows[a, BASE] = base
        base += ax.edge_count.size
    padded = divisor == "padded"
    first = np.concatenate([ax.edge_first for ax in all_axes])
    count = np.concatenate([ax.edge_count for ax in all_axes])
    div = np.concatenate([ax.edge_padded if padded else ax.edge_count
                          for ax in all_axes]).astype(np.float64)
    last = all_axes[-1]
    tables = WindowTables(
        axes=rows, first=first, count=count, div=div, inv=1.0 / div,
        l_uniform=np.array(last.run, np.int64), buffer=int(buffer),
    )
    for value in tables:
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return tables
