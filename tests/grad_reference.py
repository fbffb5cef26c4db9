"""A naive oracle for numbapool.grad, written from the gradient formulas of the spatial pools.

Windows come from tests/reference.py (the forward's oracle); every output position is a Python
loop iteration (vectorised over planes), and its gradient is scatter-added into a float64
array, tap by tap.  Functions take numbapool.grad's arguments (less ``out``/``device``) and
return float64 arrays shaped as ``x``.
"""

import itertools
from math import prod

import numpy as np

import reference


def _scatter(grad_out, x, axes, layout, contribution, keep_spatial=True):
    """``sum over windows of contribution(vals, g, padded)`` scattered onto the window's taps.

    ``axes`` lists per spatial axis the windows ``(positions, padded_count)``; ``vals`` is
    ``(planes, taps)`` float64 in row-major window order, ``g`` the window's ``(planes,)``
    upstream gradient; ``contribution`` returns ``(planes, taps)``.
    """
    n = len(axes)
    x64 = x.astype(np.float64)
    g = grad_out.astype(np.float64)
    if layout == "channels_last":
        x64 = np.moveaxis(x64, -1, x.ndim - n - 1)
        g = np.moveaxis(g, -1, g.ndim - n - 1)
    lead, spatial = x64.shape[: x64.ndim - n], x64.shape[x64.ndim - n:]
    planes = x64.reshape((prod(lead),) + spatial)
    out_spatial = tuple(len(w) for w in axes)
    gp = g.reshape((prod(lead),) + out_spatial)
    result = np.zeros_like(planes)
    for o in itertools.product(*(range(m) for m in out_spatial)):
        positions = [axes[a][o[a]][0] for a in range(n)]
        index = (slice(None),) + np.ix_(*positions)
        taps = prod(len(p) for p in positions)
        vals = planes[index].reshape(planes.shape[0], taps)
        padded = prod(axes[a][o[a]][1] for a in range(n))
        contrib = contribution(vals, gp[(slice(None),) + o], padded)
        result[index] += contrib.reshape(result[index].shape)
    result = result.reshape(lead + spatial)
    if layout == "channels_last":
        result = np.moveaxis(result, x.ndim - n - 1, -1)
    return result


def _extreme(is_min, omit):
    def contribution(vals, g, padded):
        nan = np.isnan(vals)
        best = np.where(nan, np.inf if is_min else -np.inf, vals)
        best = best.min(axis=1) if is_min else best.max(axis=1)
        win = np.argmax(vals == best[:, None], axis=1)  # ties: the first tap
        nan_wins = nan.all(axis=1) if omit else nan.any(axis=1)
        win = np.where(nan_wins, np.argmax(nan, axis=1), win)  # the first NaN
        res = np.zeros_like(vals)
        rows = np.arange(vals.shape[0])
        routed = np.where(omit & nan.all(axis=1), 0.0, g)  # an all-NaN window: constant NaN
        res[rows, win] = routed
        return res

    return contribution


def _mean(omit, count_include_pad, divisor_override):
    def contribution(vals, g, padded):
        nan = np.isnan(vals) if omit else np.zeros(vals.shape, bool)
        if divisor_override:
            div = np.full(vals.shape[0], float(divisor_override))
        else:
            div = (padded if count_include_pad else vals.shape[1]) - nan.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(div > 0, g / div, 0.0)
        return np.where(nan, 0.0, share[:, None])

    return contribution


def _lp(p):
    def contribution(vals, g, padded):
        with np.errstate(all="ignore"):
            s = (vals ** p).sum(axis=1)
            y = np.where(s > 0, np.abs(s) ** (1.0 / p), 0.0)
            coef = np.where(s > 0, g * y ** (1.0 - p), np.where(np.isnan(s), np.nan, 0.0))
            return coef[:, None] * vals ** (p - 1.0)

    return contribution


def _gem(p, eps):
    def contribution(vals, g, padded):
        with np.errstate(all="ignore"):
            z = np.where(np.isnan(vals), np.nan, np.maximum(vals, eps))
            m = (z ** p).mean(axis=1)
            y = np.where(m > 0, m ** (1.0 / p), 0.0)
            coef = np.where(m > 0, g * y ** (1.0 - p) / vals.shape[1],
                            np.where(np.isnan(m), np.nan, 0.0))
            return np.where(vals >= eps, coef[:, None] * z ** (p - 1.0), 0.0)

    return contribution


# --------------------------------------------------------------------------- sliding


def max_pool(grad_out, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
             nan_policy="propagate", layout="channels_first", _min=False):
    axes = reference._sliding_axes(x, kernel_size, stride, padding, dilation, ceil_mode, layout)
    return _scatter(grad_out, x, axes, layout, _extreme(_min, nan_policy == "omit"))


def min_pool(grad_out, x, *args, **kwargs):
    return max_pool(grad_out, x, *args, _min=True, **kwargs)


def avg_pool(grad_out, x, kernel_size, stride=None, padding=0, ceil_mode=False,
             count_include_pad=True, divisor_override=None, *, dilation=1,
             nan_policy="propagate", layout="channels_first"):
    axes = reference._sliding_axes(x, kernel_size, stride, padding, dilation, ceil_mode, layout)
    contribution = _mean(nan_policy == "omit", count_include_pad, divisor_override)
    return _scatter(grad_out, x, axes, layout, contribution)


def lp_pool(grad_out, x, norm_type, kernel_size, stride=None, ceil_mode=False, *,
            layout="channels_first"):
    axes = reference._sliding_axes(x, kernel_size, stride, 0, 1, ceil_mode, layout)
    return _scatter(grad_out, x, axes, layout, _lp(norm_type))


# --------------------------------------------------------------------------- adaptive, global


def adaptive_max_pool(grad_out, x, output_size, *, nan_policy="propagate",
                      layout="channels_first"):
    axes = reference._adaptive_axes(x, output_size, layout)
    return _scatter(grad_out, x, axes, layout, _extreme(False, nan_policy == "omit"))


def adaptive_avg_pool(grad_out, x, output_size, *, nan_policy="propagate",
                      layout="channels_first"):
    axes = reference._adaptive_axes(x, output_size, layout)
    return _scatter(grad_out, x, axes, layout, _mean(nan_policy == "omit", False, None))


def _global(grad_out, x, spatial_dims, keepdims, layout, contribution):
    n = x.ndim - 2 if spatial_dims is None else spatial_dims
    spatial = x.shape[x.ndim - n - (layout == "channels_last"):][:n]
    axes = [reference.adaptive_windows(L, 1) for L in spatial]
    lead = x.shape[: x.ndim - n - (layout == "channels_last")]
    tail = (x.shape[-1],) if layout == "channels_last" else ()
    g = np.asarray(grad_out).reshape(lead + (1,) * n + tail)
    return _scatter(g, x, axes, layout, contribution)


def global_max_pool(grad_out, x, spatial_dims=None, *, keepdims=False, nan_policy="propagate",
                    layout="channels_first"):
    return _global(grad_out, x, spatial_dims, keepdims, layout,
                   _extreme(False, nan_policy == "omit"))


def global_avg_pool(grad_out, x, spatial_dims=None, *, keepdims=False, nan_policy="propagate",
                    layout="channels_first"):
    return _global(grad_out, x, spatial_dims, keepdims, layout,
                   _mean(nan_policy == "omit", False, None))


def gem_pool(grad_out, x, p=3.0, eps=1e-6, spatial_dims=None, *, keepdims=False,
             layout="channels_first"):
    return _global(grad_out, x, spatial_dims, keepdims, layout, _gem(p, eps))
