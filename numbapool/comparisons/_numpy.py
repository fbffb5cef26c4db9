"""The NumPy formulations: reductions over reshaped blocks or window views."""

from __future__ import annotations

import warnings

import numpy as np

from ._shared import (
    _adaptive_sizes, _global_rank, _is_float, _mean_dtypes, _output_size, _padded_form_only,
    _propagate_only, _rank, _sliding_geometry, _spatial_axes, _token_modes, _uncovered,
)


def _np_fill(x, is_min, omit):
    """Padding that never wins an extreme (NaN under omit, which skips it)."""
    if not _is_float(x):
        info = np.iinfo(x.dtype)
        return info.max if is_min else info.min
    return np.nan if omit else (np.inf if is_min else -np.inf)


def _np_windows(x, axes, kernel, stride, dilation, pads, ceil_mode, fill):
    """A view of every pooling window: ``x``'s shape with each pooled axis replaced by its
    output size, then one trailing axis per kernel dimension (padding copies ``x`` once)."""
    width, taken = [(0, 0)] * x.ndim, [slice(None)] * x.ndim
    spans = []
    for a, k, s, d, (before, after) in zip(axes, kernel, stride, dilation, pads):
        L, span = x.shape[a], (k - 1) * d + 1
        size = _output_size(L, k, s, d, before, after, ceil_mode)
        overhang = max(0, (size - 1) * s + span - (L + before + after))  # ceil_mode's last window
        width[a] = (before, after + overhang)
        taken[a] = slice(0, (size - 1) * s + 1, s)
        spans.append(span)
    if any(w != (0, 0) for w in width):
        x = np.pad(x, width, constant_values=fill)
    view = np.lib.stride_tricks.sliding_window_view(x, spans, axis=axes)
    return view[tuple(taken) + tuple(slice(None, None, d) for d in dilation)]


def _np_blocks(x, axes, kernel):
    """``x`` reshaped so each non-overlapping kernel block has its own axes, and those axes
    (the fastest NumPy form of a pool whose stride is its kernel and that tiles the input)."""
    shape, block_axes = [], []
    for a, L in enumerate(x.shape):
        if a in axes:
            k = kernel[axes.index(a)]
            shape += [L // k, k]
            block_axes.append(len(shape) - 1)
        else:
            shape.append(L)
    return x.reshape(shape), tuple(block_axes)


def _tiles(spatial, kernel, stride, dilation, pads):
    return all(s == k and d == 1 and p == (0, 0) and L % k == 0
               for L, k, s, d, p in zip(spatial, kernel, stride, dilation, pads))


def _np_reducer(name, omit):
    reduce = getattr(np, ("nan" if omit else "") + name)
    if not omit:
        return reduce

    def quiet(*args, **kwargs):  # an all-NaN window giving NaN is the expected result
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return reduce(*args, **kwargs)

    return quiet


def _np_extreme(is_min, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                nan_policy, layout):
    if return_indices:
        raise _uncovered("return_indices=True", "NumPy gives no positions of window maxima")
    n = _rank(kernel_size, x)
    axes = _spatial_axes(x, n, layout)
    spatial, kernel, stride, dilation, pads = _sliding_geometry(x, n, layout, kernel_size,
                                                                stride, padding, dilation)
    omit = nan_policy == "omit" and _is_float(x)
    reduce = _np_reducer("min" if is_min else "max", omit)
    if _tiles(spatial, kernel, stride, dilation, pads):
        blocks, block_axes = _np_blocks(x, axes, kernel)
        return reduce(blocks, axis=block_axes)
    windows = _np_windows(x, axes, kernel, stride, dilation, pads, ceil_mode,
                          _np_fill(x, is_min, omit))
    return reduce(windows, axis=tuple(range(-n, 0)))


def _np_max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                 return_indices=False, nan_policy="propagate", layout="channels_first"):
    """``max`` over reshaped blocks (stride = kernel tiling the input) or window views.

    Covers every argument except ``return_indices=True``.
    """
    return _np_extreme(False, x, kernel_size, stride, padding, dilation, ceil_mode,
                       return_indices, nan_policy, layout)


def _np_min_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                 return_indices=False, nan_policy="propagate", layout="channels_first"):
    """``min`` over reshaped blocks or window views; covers what :func:`_np_max_pool` covers."""
    return _np_extreme(True, x, kernel_size, stride, padding, dilation, ceil_mode,
                       return_indices, nan_policy, layout)


def _window_counts(L, k, s, d, before, after, ceil_mode, include_pad):
    """Per output position along one axis, the taps an average divides by."""
    low, high = (-before, L + after) if include_pad else (0, L)
    size = _output_size(L, k, s, d, before, after, ceil_mode)
    taps = np.arange(size)[:, None] * s - before + np.arange(k)[None, :] * d
    return ((taps >= low) & (taps < high)).sum(axis=1).astype(np.float64)


def _np_avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None, *, dilation=1,
                 nan_policy="propagate", layout="channels_first"):
    """Window sums (of reshaped blocks or window views) over their divisors.

    Covers every argument except ``nan_policy="omit"``.  Integer input gives float64,
    float16 is summed in float32, as in numbapool.
    """
    _propagate_only(nan_policy, "NumPy")
    n = _rank(kernel_size, x)
    axes = _spatial_axes(x, n, layout)
    spatial, kernel, stride, dilation, pads = _sliding_geometry(x, n, layout, kernel_size,
                                                                stride, padding, dilation)
    out_dtype, acc_dtype = _mean_dtypes(x)
    if _tiles(spatial, kernel, stride, dilation, pads):
        blocks, block_axes = _np_blocks(x, axes, kernel)
        if divisor_override:
            total = blocks.sum(axis=block_axes, dtype=acc_dtype) / divisor_override
        else:
            total = blocks.mean(axis=block_axes, dtype=acc_dtype)
        return total.astype(out_dtype, copy=False)
    windows = _np_windows(x, axes, kernel, stride, dilation, pads, ceil_mode, 0)
    total = windows.sum(axis=tuple(range(-n, 0)), dtype=acc_dtype)
    if divisor_override:
        divisor = divisor_override
    else:
        divisor = np.ones([1] * x.ndim)
        for a, L, k, s, d, (b, e) in zip(axes, spatial, kernel, stride, dilation, pads):
            counts = _window_counts(L, k, s, d, b, e, ceil_mode, count_include_pad)
            divisor = divisor * counts.reshape([-1 if i == a else 1 for i in range(x.ndim)])
        if np.all(divisor == divisor.flat[0]):
            divisor = divisor.flat[0]  # one scalar: the usual case, and a cheaper division
    return (total / np.asarray(divisor, acc_dtype)).astype(out_dtype, copy=False)


def _np_lp_pool(x, norm_type, kernel_size, stride=None, ceil_mode=False, *,
                layout="channels_first"):
    """``sum(x ** p) ** (1 / p)`` over window views, in float64; a non-positive sum gives 0.

    Covers every argument.
    """
    n = _rank(kernel_size, x)
    axes = _spatial_axes(x, n, layout)
    _, kernel, stride, dilation, pads = _sliding_geometry(x, n, layout, kernel_size, stride,
                                                          0, 1)
    with np.errstate(invalid="ignore", over="ignore"):
        powers = x.astype(np.float64) ** norm_type
        windows = _np_windows(powers, axes, kernel, stride, dilation, pads, ceil_mode, 0.0)
        total = windows.sum(axis=tuple(range(-n, 0)))
        root = np.maximum(total, 0.0) ** (1.0 / norm_type)  # np.maximum keeps NaN
    return root.astype(_mean_dtypes(x)[0], copy=False)


def _np_adaptive(reduce, x, output_size, layout, dtype=None):
    """Adaptive windows, one axis at a time: a box's max (or mean) is the max (mean) over
    one axis of the maxima (means) over the others, since the windows are separable."""
    n = _rank(output_size, x)
    axes = _spatial_axes(x, n, layout)
    spatial, sizes = _adaptive_sizes(x, n, layout, output_size)
    extra = {} if dtype is None else {"dtype": dtype}
    if all(L % o == 0 for L, o in zip(spatial, sizes)):
        blocks, block_axes = _np_blocks(x, axes, [L // o for L, o in zip(spatial, sizes)])
        return reduce(blocks, axis=block_axes, **extra)
    for a, L, o in zip(axes, spatial, sizes):
        cut = [slice(None)] * x.ndim
        parts = []
        for i in range(o):  # window i spans [floor(i L / o), ceil((i + 1) L / o))
            cut[a] = slice(i * L // o, -(-(i + 1) * L // o))
            parts.append(reduce(x[tuple(cut)], axis=a, keepdims=True, **extra))
        x = np.concatenate(parts, axis=a)
    return x


def _np_adaptive_max_pool(x, output_size, *, return_indices=False, nan_policy="propagate",
                          layout="channels_first"):
    """``max`` over reshaped blocks (sizes that divide the input) or one axis at a time.

    Covers every argument except ``return_indices=True``.
    """
    if return_indices:
        raise _uncovered("return_indices=True", "NumPy gives no positions of window maxima")
    reduce = _np_reducer("max", nan_policy == "omit" and _is_float(x))
    return _np_adaptive(reduce, x, output_size, layout)


def _np_adaptive_avg_pool(x, output_size, *, nan_policy="propagate", layout="channels_first"):
    """``mean`` over reshaped blocks (sizes that divide the input) or one axis at a time.

    Covers every argument except ``nan_policy="omit"`` (per-axis means would weigh the
    NaN-free counts wrongly).
    """
    _propagate_only(nan_policy, "NumPy")
    out_dtype, acc_dtype = _mean_dtypes(x)
    result = _np_adaptive(np.mean, x, output_size, layout, dtype=acc_dtype)
    return result.astype(out_dtype, copy=False)


def _np_global_max_pool(x, spatial_dims=None, *, keepdims=False, nan_policy="propagate",
                        layout="channels_first"):
    """``x.max(axis=spatial)`` (``nanmax`` under omit); covers every argument."""
    axes = _spatial_axes(x, _global_rank(x, spatial_dims), layout)
    reduce = _np_reducer("max", nan_policy == "omit" and _is_float(x))
    return np.asarray(reduce(x, axis=axes, keepdims=keepdims))  # 0-d, not a scalar


def _np_global_avg_pool(x, spatial_dims=None, *, keepdims=False, nan_policy="propagate",
                        layout="channels_first"):
    """``x.mean(axis=spatial)`` (``nanmean`` under omit); covers every argument."""
    axes = _spatial_axes(x, _global_rank(x, spatial_dims), layout)
    out_dtype, acc_dtype = _mean_dtypes(x)
    reduce = _np_reducer("mean", nan_policy == "omit")
    result = reduce(x, axis=axes, keepdims=keepdims, dtype=acc_dtype)
    return np.asarray(result).astype(out_dtype, copy=False)


def _np_gem_pool(x, p=3.0, eps=1e-6, spatial_dims=None, *, keepdims=False,
                 layout="channels_first"):
    """``mean(maximum(x, eps) ** p) ** (1 / p)`` over the spatial axes; covers every argument.

    Computes in float32 for float16/float32 input, float64 otherwise.
    """
    axes = _spatial_axes(x, _global_rank(x, spatial_dims), layout)
    out_dtype, acc_dtype = _mean_dtypes(x)
    with np.errstate(over="ignore"):
        powered = np.maximum(x.astype(acc_dtype, copy=False), acc_dtype.type(eps)) ** p
        result = powered.mean(axis=axes, keepdims=keepdims) ** (1.0 / p)
    return np.asarray(result).astype(out_dtype, copy=False)


def _np_pool_tokens(hidden, attention_mask=None, mode="mean", *, weights=None, scores=None,
                    lengths=None, offsets=None, nan_policy="propagate"):
    """Masked token pooling in NumPy: the formulas of :func:`_torch_pool_tokens`.

    Covers the padded form, every mode (and lists of modes), ``weights``, ``scores`` and
    ``nan_policy="propagate"``; not the packed form.  Padding positions must hold finite
    values.
    """
    _padded_form_only(lengths, offsets, nan_policy, "NumPy")
    h = hidden
    batch, length, _ = h.shape
    m = np.ones((batch, length), bool) if attention_mask is None else (
        np.asarray(attention_mask) != 0)
    mf = m[..., None].astype(h.dtype)
    count = mf.sum(1)
    rows = np.arange(batch)
    parts = []
    for name in _token_modes(mode):
        if name == "cls":
            parts.append(h[rows, m.argmax(1)])
        elif name == "last":
            parts.append(h[rows, length - 1 - m[:, ::-1].argmax(1)])
        elif name in ("mean", "sum", "mean_sqrt_len"):
            total = (h * mf).sum(1)
            if name == "mean":
                total = total / np.maximum(count, 1)
            elif name == "mean_sqrt_len":
                total = total / np.sqrt(np.maximum(count, 1))
            parts.append(total)
        elif name in ("max", "min"):
            fill = -np.inf if name == "max" else np.inf
            masked = np.where(m[..., None], h, fill)
            parts.append(masked.max(1) if name == "max" else masked.min(1))
        elif name in ("weighted_mean", "weighted"):
            if name == "weighted_mean":  # positions 1..n over each sequence's own tokens
                w = (np.cumsum(m, 1) * m).astype(h.dtype)[..., None]
            else:
                w = np.asarray(weights).astype(h.dtype)[..., None] * mf
            total = w.sum(1)
            parts.append((h * w).sum(1) / np.where(total > 0, total, 1))
        elif name == "attention":
            s = np.where(m, np.asarray(scores).astype(h.dtype), -np.inf)
            with np.errstate(invalid="ignore"):  # sequences without tokens: fixed below
                a = np.exp(s - s.max(1, keepdims=True))
                a = a / a.sum(1, keepdims=True)
            parts.append((h * a[..., None]).sum(1))
        else:
            raise ValueError(f"mode {name!r} is unknown")
    result = np.concatenate(parts, axis=-1).astype(h.dtype, copy=False)
    empty = ~m.any(1)
    if empty.any():  # a sequence without tokens gives zeros in every mode
        result[empty] = 0
    return result
