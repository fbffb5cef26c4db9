"""A naive oracle for numbapool's spatial pooling, written from the rules in docs/guide/spatial.md.

Nothing here is shared with the package: window positions are listed explicitly, each output
position is a Python loop iteration (vectorised over planes only), sums are float64. It is
slow on purpose and meant for small arrays. Functions take the same arguments as their
numbapool counterparts (less ``out`` and ``device``) and return NumPy arrays.
"""

import itertools
from math import prod

import numpy as np


def _rank(spec, x):
    """N: the tuple's length, or ``x.ndim - 2`` for an int."""
    return len(spec) if isinstance(spec, (tuple, list)) else x.ndim - 2


def _per_dim(value, n):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


def _padding_pairs(padding, n, spatial, kernel, stride, dilation):
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * n
        assert padding == "same", padding
        pairs = []
        for L, k, s, d in zip(spatial, kernel, stride, dilation):
            out = -(-L // s)  # ceil(L / s)
            total = max((out - 1) * s + (k - 1) * d + 1 - L, 0)
            pairs.append((total // 2, total - total // 2))
        return pairs
    return [p if isinstance(p, (tuple, list)) else (p, p) for p in _per_dim(padding, n)]


def sliding_windows(L, k, s, d, before, after, ceil_mode):
    """Per output position: (in-bounds positions, taps inside ``[-before, L + after)``)."""
    # Python's // on ints is floor division, exact for any size
    size = (L + before + after - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    # PyTorch's rule: the last window may not start at or beyond L + before (padded
    # coordinates), i.e. inside the right padding
    if ceil_mode and size >= 1 and (size - 1) * s >= L + before:
        size -= 1
    if size < 1:
        raise ValueError("no output window")
    windows = []
    for o in range(size):
        taps = [o * s - before + j * d for j in range(k)]
        inside = [t for t in taps if 0 <= t < L]
        if not inside:
            raise ValueError(f"window {o} holds no input element")
        windows.append((inside, sum(-before <= t < L + after for t in taps)))
    return windows


def adaptive_windows(L, O):
    if L < 1:
        raise ValueError("empty axis")
    # [floor(i*L/O), ceil((i+1)*L/O)) in exact integer arithmetic
    windows = [list(range(i * L // O, -(-(i + 1) * L // O))) for i in range(O)]
    return [(w, len(w)) for w in windows]


def _pool(x, axes, layout, reduce):
    """Apply ``reduce(vals, flat, padded_count)`` to every window; returns arrays.

    ``axes`` lists per spatial axis the windows ``(positions, padded_count)``; ``vals`` is
    ``(planes, taps)`` in row-major window order, ``flat`` the taps' flat spatial indices.
    """
    n = len(axes)
    if layout == "channels_last":
        x = np.moveaxis(x, -1, x.ndim - n - 1)  # channels become one more leading axis
    lead, spatial = x.shape[: x.ndim - n], x.shape[x.ndim - n:]
    planes = x.reshape((prod(lead),) + spatial)
    out_spatial = tuple(len(w) for w in axes)
    results = None
    for o in itertools.product(*(range(m) for m in out_spatial)):
        positions = [axes[a][o[a]][0] for a in range(n)]
        taps = prod(len(p) for p in positions)
        vals = planes[(slice(None),) + np.ix_(*positions)].reshape(planes.shape[0], taps)
        grid = np.meshgrid(*positions, indexing="ij")
        flat = np.ravel_multi_index(tuple(g.ravel() for g in grid), spatial)
        padded = prod(axes[a][o[a]][1] for a in range(n))
        got = reduce(vals, flat, padded)
        if results is None:
            results = [np.empty((planes.shape[0],) + out_spatial, r.dtype) for r in got]
        for res, r in zip(results, got):
            res[(slice(None),) + o] = r
    out = []
    for res in results:
        res = res.reshape(lead + out_spatial)
        if layout == "channels_last":
            res = np.moveaxis(res, x.ndim - n - 1, -1)
        out.append(res)
    return out


def _is_float(dtype):
    return np.dtype(dtype).kind == "f"


def _mean_dtype(dtype):
    return np.dtype(dtype) if _is_float(dtype) else np.dtype(np.float64)


# --------------------------------------------------------------------------- reducers


def _extreme(is_min, omit):
    def reduce(vals, flat, padded):
        nan = np.isnan(vals) if _is_float(vals.dtype) else np.zeros(vals.shape, bool)
        if _is_float(vals.dtype):
            fill = np.inf if is_min else -np.inf
            best = np.where(nan, fill, vals)
        else:
            best = vals
        best = best.min(axis=1) if is_min else best.max(axis=1)
        # first tap equal to the extreme (NaN equals nothing): ties keep the first
        win = np.argmax(vals == best[:, None], axis=1)
        any_nan, all_nan = nan.any(axis=1), nan.all(axis=1)
        first_nan = np.argmax(nan, axis=1)
        nan_wins = all_nan if omit else any_nan
        win = np.where(nan_wins, first_nan, win)
        values = vals[np.arange(vals.shape[0]), win]
        return values, flat[win].astype(np.int64)

    return reduce


def _mean(omit, count_include_pad, divisor_override, out_dtype):
    def reduce(vals, flat, padded):
        v = vals.astype(np.float64)
        nan = np.isnan(v)
        n_nan = nan.sum(axis=1) if omit else 0
        with np.errstate(invalid="ignore"):  # inf - inf
            total = np.where(nan, 0.0, v).sum(axis=1) if omit else v.sum(axis=1)
        if divisor_override:
            div = float(divisor_override)
        else:
            # NaNs under "omit" leave the divisor, whichever count it is (nanmean)
            div = (padded if count_include_pad else v.shape[1]) - n_nan
        with np.errstate(divide="ignore", invalid="ignore"):
            res = total / div
        if omit:
            res = np.where(nan.all(axis=1), np.nan, res)
        return (res.astype(out_dtype),)

    return reduce


def _root(s, p):
    """``s ** (1/p)``; NaN stays NaN, a non-positive ``s`` gives 0."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(s), np.nan, np.where(s > 0, np.abs(s) ** (1.0 / p), 0.0))


def _power_sum(p, out_dtype):
    def reduce(vals, flat, padded):
        with np.errstate(invalid="ignore", over="ignore"):
            s = (vals.astype(np.float64) ** p).sum(axis=1)
        return (_root(s, p).astype(out_dtype),)

    return reduce


def _gem(p, eps, out_dtype):
    def reduce(vals, flat, padded):
        v = vals.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            m = (np.where(np.isnan(v), np.nan, np.maximum(v, eps)) ** p).mean(axis=1)
        return (_root(m, p).astype(out_dtype),)

    return reduce


# --------------------------------------------------------------------------- sliding windows


def _sliding_axes(x, kernel_size, stride, padding, dilation, ceil_mode, layout):
    n = _rank(kernel_size, x)
    spatial = x.shape[x.ndim - n - (layout == "channels_last"):][:n]
    kernel = _per_dim(kernel_size, n)
    stride = kernel if stride is None else _per_dim(stride, n)
    dilation = _per_dim(dilation, n)
    pads = _padding_pairs(padding, n, spatial, kernel, stride, dilation)
    return [sliding_windows(L, k, s, d, b, a, ceil_mode)
            for L, k, s, d, (b, a) in zip(spatial, kernel, stride, dilation, pads)]


def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
             return_indices=False, nan_policy="propagate", layout="channels_first", _min=False):
    axes = _sliding_axes(x, kernel_size, stride, padding, dilation, ceil_mode, layout)
    values, indices = _pool(x, axes, layout, _extreme(_min, nan_policy == "omit"))
    return (values, indices) if return_indices else values


def min_pool(x, *args, **kwargs):
    return max_pool(x, *args, _min=True, **kwargs)


def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             divisor_override=None, *, dilation=1, nan_policy="propagate",
             layout="channels_first"):
    axes = _sliding_axes(x, kernel_size, stride, padding, dilation, ceil_mode, layout)
    reduce = _mean(nan_policy == "omit", count_include_pad, divisor_override,
                   _mean_dtype(x.dtype))
    return _pool(x, axes, layout, reduce)[0]


def lp_pool(x, norm_type, kernel_size, stride=None, ceil_mode=False, *,
            layout="channels_first"):
    axes = _sliding_axes(x, kernel_size, stride, 0, 1, ceil_mode, layout)
    return _pool(x, axes, layout, _power_sum(norm_type, _mean_dtype(x.dtype)))[0]


# --------------------------------------------------------------------------- adaptive, global


def _adaptive_axes(x, output_size, layout):
    n = _rank(output_size, x)
    spatial = x.shape[x.ndim - n - (layout == "channels_last"):][:n]
    sizes = [L if O is None else O for L, O in zip(spatial, _per_dim(output_size, n))]
    return [adaptive_windows(L, O) for L, O in zip(spatial, sizes)]


def adaptive_max_pool(x, output_size, *, return_indices=False, nan_policy="propagate",
                      layout="channels_first"):
    axes = _adaptive_axes(x, output_size, layout)
    values, indices = _pool(x, axes, layout, _extreme(False, nan_policy == "omit"))
    return (values, indices) if return_indices else values


def adaptive_avg_pool(x, output_size, *, nan_policy="propagate", layout="channels_first"):
    axes = _adaptive_axes(x, output_size, layout)
    reduce = _mean(nan_policy == "omit", False, None, _mean_dtype(x.dtype))
    return _pool(x, axes, layout, reduce)[0]


def _global(x, spatial_dims, keepdims, layout, reduce):
    n = x.ndim - 2 if spatial_dims is None else spatial_dims
    spatial = x.shape[x.ndim - n - (layout == "channels_last"):][:n]
    axes = [adaptive_windows(L, 1) for L in spatial]
    res = _pool(x, axes, layout, reduce)[0]  # spatial axes have size 1 here
    if not keepdims:
        first = res.ndim - n - (layout == "channels_last")
        res = res.reshape(res.shape[:first] + res.shape[first + n:])
    return res


def global_max_pool(x, spatial_dims=None, *, keepdims=False, nan_policy="propagate",
                    layout="channels_first"):
    return _global(x, spatial_dims, keepdims, layout, _extreme(False, nan_policy == "omit"))


def global_avg_pool(x, spatial_dims=None, *, keepdims=False, nan_policy="propagate",
                    layout="channels_first"):
    reduce = _mean(nan_policy == "omit", False, None, _mean_dtype(x.dtype))
    return _global(x, spatial_dims, keepdims, layout, reduce)


def gem_pool(x, p=3.0, eps=1e-6, spatial_dims=None, *, keepdims=False,
             layout="channels_first"):
    return _global(x, spatial_dims, keepdims, layout, _gem(p, eps, _mean_dtype(x.dtype)))
