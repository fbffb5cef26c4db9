"""The plain Numba loops a user would write: the benchmark's ``naive`` column, a floor.

Each is the obvious ``prange`` loop over output elements with the window loops inside it,
no blocking and no tables: what numbapool's kernels must at least match.  The 2x2/stride-2
max pool, the commonest case, has its window written out as constants (which LLVM
vectorises); other geometries take the window as runtime arguments.  They cover 2-D float
pools under ``nan_policy="propagate"`` only, and raise ``NotImplementedError`` naming what
they do not cover, like the other formulations.

Examples
--------
>>> import numpy as np
>>> from numbapool.comparisons import NAIVE
>>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
>>> NAIVE["max_pool"](x, 2)[0, 0]
array([[ 5.,  7.],
       [13., 15.]], dtype=float32)
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._shared import _output_size, _propagate_only, _rank, _sliding_geometry, _uncovered


def _covered(x, n, layout):
    if n != 2 or x.ndim != 4:
        raise _uncovered(f"{n}-D pooling", "the naive loops are written for 2-D pools")
    if x.dtype not in (np.float32, np.float64):
        raise _uncovered(f"dtype {x.dtype}", "the naive loops are written for float32/64")
    if layout not in ("channels_first", "channels_last"):
        raise ValueError(f"layout must be 'channels_first' or 'channels_last'; got {layout!r}")
    return np.ascontiguousarray(x)


@njit(cache=True, inline="always")
def _pick(m, v):
    """The running max: ``v`` if larger, or the first NaN, which then sticks."""
    return v if (v > m or v != v) and m == m else m


@njit(parallel=True, cache=True)
def _max_k2s2_nchw(x, out):
    n, c, _, _ = x.shape
    ho, wo = out.shape[2], out.shape[3]
    for p in prange(n * c):
        img, ch = p // c, p % c
        for i in range(ho):
            for j in range(wo):
                m = _pick(x[img, ch, 2 * i, 2 * j], x[img, ch, 2 * i, 2 * j + 1])
                m = _pick(m, x[img, ch, 2 * i + 1, 2 * j])
                out[img, ch, i, j] = _pick(m, x[img, ch, 2 * i + 1, 2 * j + 1])


@njit(parallel=True, cache=True)
def _window_nchw(x, out, k0, k1, s0, s1, p0, p1, is_avg):
    n, c, h, w = x.shape
    ho, wo = out.shape[2], out.shape[3]
    for p in prange(n * c):
        img, ch = p // c, p % c
        for i in range(ho):
            for j in range(wo):
                m = -np.inf
                total = 0.0
                for a in range(k0):
                    r = i * s0 - p0 + a
                    if 0 <= r < h:
                        for b in range(k1):
                            q = j * s1 - p1 + b
                            if 0 <= q < w:
                                v = x[img, ch, r, q]
                                total += v
                                m = _pick(m, v)
                out[img, ch, i, j] = total / (k0 * k1) if is_avg else m


@njit(parallel=True, cache=True)
def _window_nhwc(x, out, k0, k1, s0, s1, p0, p1, is_avg):
    n, h, w, c = x.shape
    ho, wo = out.shape[1], out.shape[2]
    for t in prange(n * ho):
        img, i = t // ho, t % ho
        for j in range(wo):
            dst = out[img, i, j]
            for ch in range(c):
                dst[ch] = 0.0 if is_avg else -np.inf
            for a in range(k0):
                r = i * s0 - p0 + a
                if 0 <= r < h:
                    for b in range(k1):
                        q = j * s1 - p1 + b
                        if 0 <= q < w:
                            src = x[img, r, q]
                            for ch in range(c):
                                v = src[ch]
                                m = dst[ch]
                                if is_avg:
                                    dst[ch] = m + v
                                else:
                                    dst[ch] = _pick(m, v)
            if is_avg:
                for ch in range(c):
                    dst[ch] /= k0 * k1


def _sliding(x, kernel_size, stride, padding, dilation, ceil_mode, layout, is_avg):
    n = _rank(kernel_size, x)
    x = _covered(x, n, layout)
    spatial, kernel, stride, dilation, pads = _sliding_geometry(x, n, layout, kernel_size,
                                                                stride, padding, dilation)
    if dilation != (1, 1) or ceil_mode:
        raise _uncovered("dilation or ceil_mode", "the naive loops take neither")
    if any(b != e for b, e in pads):
        raise _uncovered("asymmetric padding", "the naive loops pad symmetrically")
    out_sp = [_output_size(L, k, s, 1, b, e, False)
              for L, k, s, (b, e) in zip(spatial, kernel, stride, pads)]
    channels_last = layout == "channels_last"
    shape = (x.shape[0], *out_sp, x.shape[3]) if channels_last else (*x.shape[:2], *out_sp)
    out = np.empty(shape, x.dtype)
    geometry = (*kernel, *stride, pads[0][0], pads[1][0], is_avg)
    if channels_last:
        _window_nhwc(x, out, *geometry)
    elif not is_avg and kernel == stride == (2, 2) and pads == [(0, 0), (0, 0)]:
        _max_k2s2_nchw(x, out)
    else:
        _window_nchw(x, out, *geometry)
    return out


def _naive_max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                    return_indices=False, nan_policy="propagate", layout="channels_first"):
    """A ``prange`` loop over output planes (channels-first) or rows (channels-last)."""
    if return_indices:
        raise _uncovered("return_indices=True", "the naive loops return values only")
    _propagate_only(nan_policy, "naive")
    return _sliding(x, kernel_size, stride, padding, dilation, ceil_mode, layout, False)


def _naive_avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                    count_include_pad=True, divisor_override=None, *, dilation=1,
                    nan_policy="propagate", layout="channels_first"):
    """The same loops, summing; divides by the whole window (``count_include_pad=True``)."""
    if not count_include_pad or divisor_override:
        raise _uncovered("count_include_pad=False or divisor_override",
                         "the naive loops divide by the kernel's size")
    _propagate_only(nan_policy, "naive")
    return _sliding(x, kernel_size, stride, padding, dilation, ceil_mode, layout, True)


@njit(parallel=True, cache=True)
def _plane_reduce(x, out, is_avg):
    for p in prange(x.shape[0]):
        m = -np.inf
        total = 0.0
        for v in x[p]:
            total += v
            m = _pick(m, v)
        out[p] = total / x.shape[1] if is_avg else m


@njit(parallel=True, cache=True)
def _channels_reduce(x, out, is_avg):
    for img in prange(x.shape[0]):
        dst = out[img]
        for ch in range(x.shape[2]):
            dst[ch] = 0.0 if is_avg else -np.inf
        for q in range(x.shape[1]):
            src = x[img, q]
            for ch in range(x.shape[2]):
                v = src[ch]
                m = dst[ch]
                if is_avg:
                    dst[ch] = m + v
                else:
                    dst[ch] = _pick(m, v)
        if is_avg:
            for ch in range(x.shape[2]):
                dst[ch] /= x.shape[1]


def _global(x, spatial_dims, keepdims, nan_policy, layout, is_avg):
    if spatial_dims not in (None, 2) or keepdims:
        raise _uncovered("spatial_dims or keepdims", "the naive loops pool 2-D planes only")
    _propagate_only(nan_policy, "naive")
    x = _covered(x, 2, layout)
    if layout == "channels_last":
        n, h, w, c = x.shape
        out = np.empty((n, c), x.dtype)
        _channels_reduce(x.reshape(n, h * w, c), out, is_avg)
        return out
    n, c, h, w = x.shape
    out = np.empty(n * c, x.dtype)
    _plane_reduce(x.reshape(n * c, h * w), out, is_avg)
    return out.reshape(n, c)


def _naive_global_max_pool(x, spatial_dims=None, *, keepdims=False, nan_policy="propagate",
                           layout="channels_first"):
    """A ``prange`` loop over planes (channels-first) or images (channels-last)."""
    return _global(x, spatial_dims, keepdims, nan_policy, layout, False)


def _naive_global_avg_pool(x, spatial_dims=None, *, keepdims=False, nan_policy="propagate",
                           layout="channels_first"):
    """The same loops, summing in float64 (channels-first) or in the input's dtype."""
    return _global(x, spatial_dims, keepdims, nan_policy, layout, True)
