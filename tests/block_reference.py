"""A naive oracle for :func:`numbapool.block_reduce`, written from its contract.

Nothing here is shared with the package: every output is a Python loop iteration over an
explicit list of block elements, sums are exact (Python integers, ``math.fsum``), and the
result is built with ``np.array`` from Python numbers.  Slow on purpose; for small arrays.

* ``block_size`` is an int for every axis or one int per axis; blocks are aligned at 0;
* ``boundary``: ``"pad"`` fills a last block that is cut short with ``cval`` (which takes
  part), ``"trim"`` drops it, ``"exact"`` raises ``ValueError`` unless every axis divides,
  ``"partial"`` reduces the elements it has;
* NaN: ``"propagate"``, a NaN in a block gives NaN; ``"omit"``, NaNs are left out and a
  block of only NaNs gives NaN;
* median of an even count: the mean of the middle two (``(float(a) + float(b)) / 2``, as
  NumPy); mode: the most frequent value, ties to the smallest;
* dtypes: max/min/mode keep the input's; sum keeps floats, gives int64 (uint64 for
  unsigned) for integers, wrapping around; mean/median keep floats, give float64 for
  integers.
"""

import itertools
import math
from collections import Counter

import numpy as np

FUNCS = ("sum", "mean", "max", "min", "median", "mode")
BOUNDARIES = ("pad", "trim", "exact", "partial")


def result_dtype(func, dtype):
    dtype = np.dtype(dtype)
    if func in ("max", "min", "mode") or dtype.kind == "f":
        return dtype
    if func == "sum":
        return np.dtype(np.uint64 if dtype.kind == "u" else np.int64)
    return np.dtype(np.float64)


def _blocks(block_size, ndim):
    if isinstance(block_size, (tuple, list)):
        assert len(block_size) == ndim
        return tuple(block_size)
    return (block_size,) * ndim


def _reduce(func, values, out_dtype, omit):
    """One block's value from the list of its elements (Python numbers)."""
    floats = out_dtype.kind == "f"
    if floats:
        nans = [v for v in values if math.isnan(v)]
        if nans and not omit:
            return math.nan
        values = [v for v in values if not math.isnan(v)]
        if not values:
            return math.nan
    if func == "sum":
        if floats:
            return math.fsum(values) if all(math.isfinite(v) for v in values) else sum(values)
        bits = 2 ** 64
        total = sum(values) % bits
        if out_dtype.kind == "i" and total >= bits // 2:
            total -= bits
        return total
    if func == "mean":
        if all(math.isfinite(v) for v in values):
            return math.fsum(values) / len(values)
        return sum(values) / len(values)
    if func == "max":
        return max(values)
    if func == "min":
        return min(values)
    if func == "median":
        s = sorted(values)
        n = len(s)
        if n % 2:
            return float(s[n // 2])
        return (float(s[n // 2 - 1]) + float(s[n // 2])) / 2
    if func == "mode":
        counts = Counter(values)
        best = max(counts.values())
        return min(v for v, c in counts.items() if c == best)
    raise ValueError(func)


def block_reduce(x, block_size, func="mean", cval=0, boundary="pad", nan_policy="propagate"):
    x = np.asarray(x)
    blocks = _blocks(block_size, x.ndim)
    if boundary == "exact" and any(L % b for L, b in zip(x.shape, blocks)):
        raise ValueError("an axis does not divide into whole blocks")
    if boundary in ("trim", "exact"):
        sizes = [L // b for L, b in zip(x.shape, blocks)]
    else:
        sizes = [-(-L // b) for L, b in zip(x.shape, blocks)]
    out_dtype = result_dtype(func, x.dtype)
    if boundary == "pad":
        widths = [(0, o * b - L) for L, b, o in zip(x.shape, blocks, sizes)]
        x = np.pad(x, widths, constant_values=np.array(cval).astype(x.dtype))
    values = x.tolist() if x.ndim else x.item()
    out = np.empty(sizes, object)
    for o in itertools.product(*(range(n) for n in sizes)):
        ranges = [range(i * b, min((i + 1) * b, L)) for i, b, L in zip(o, blocks, x.shape)]
        elements = []
        for position in itertools.product(*ranges):
            v = values
            for i in position:
                v = v[i]
            elements.append(v)
        out[o] = _reduce(func, elements, out_dtype, nan_policy == "omit")
    if out_dtype.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            return np.array(out.tolist(), np.float64).reshape(sizes).astype(out_dtype)
    return np.array(out.tolist(), out_dtype).reshape(sizes)
