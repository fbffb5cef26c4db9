"""Outside formulations of every public pooling function: PyTorch CPU and plain NumPy.

``COMPARISONS[name]`` is a :class:`Formulations` pair for the public function
``numbapool.<name>``: ``torch`` (PyTorch CPU) and ``numpy`` (NumPy alone), or ``None`` where no
such formulation is reasonable.  Each takes the numbapool function's arguments (less ``out``
and ``device``) and returns NumPy arrays shaped exactly as numbapool's result, so results
compare directly.  A formulation that covers only some arguments raises
``NotImplementedError`` naming the argument it does not cover; its docstring lists what it
covers.  torch's own limits show as torch's errors: ``RuntimeError`` for a geometry it
refuses, ``NotImplementedError`` for a dtype its CPU kernel lacks (integers in
``max_pool1d`` without indices and in adaptive max pooling).  Inputs are NumPy arrays.

Two readers keep these honest.  The benchmark (:mod:`numbapool.bench`) times them next to
numbapool, so they are written as fast as their library allows: torch shares the input's
memory (channels-last input is seen as torch's ``channels_last`` format, never copied), and
NumPy reduces window views or reshaped blocks.  The test suite checks each of them against
a naive oracle written from the formulas, so every benchmark column is known to compute
the same thing as numbapool.  PyTorch is imported on first use, not with this module.

Examples
--------
>>> import numpy as np
>>> from numbapool.comparisons import COMPARISONS
>>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
>>> COMPARISONS["max_pool"].numpy(x, 2)[0, 0]
array([[ 5.,  7.],
       [13., 15.]], dtype=float32)
>>> COMPARISONS["max_pool"].numpy(x, 2, return_indices=True)
Traceback (most recent call last):
...
NotImplementedError: return_indices=True: NumPy gives no positions of window maxima
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, NamedTuple, Optional

import numpy as np

__all__ = ["COMPARISONS", "Formulations"]


class Formulations(NamedTuple):
    """The outside formulations of one numbapool function (``None``: there is none).

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> from numbapool.comparisons import COMPARISONS
    >>> x = np.random.default_rng(0).random((2, 3, 8, 8))
    >>> np.allclose(COMPARISONS["avg_pool"].numpy(x, 3, 2, 1), nbp.avg_pool(x, 3, 2, 1))
    True
    """

    torch: Optional[Callable]
    numpy: Optional[Callable]


# --------------------------------------------------------------------------- shared helpers


def _uncovered(argument, why):
    return NotImplementedError(f"{argument}: {why}")


def _propagate_only(nan_policy, library):
    if nan_policy != "propagate":
        raise _uncovered(f"nan_policy={nan_policy!r}",
                         f"the {library} formulation propagates NaN only")


def _rank(spec, x):
    """N as numbapool reads it: a tuple's length, else ``x.ndim - 2``."""
    return len(spec) if isinstance(spec, (tuple, list)) else x.ndim - 2


def _per_dim(value, n):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


def _spatial_axes(x, n, layout):
    first = x.ndim - n - (layout == "channels_last")
    return tuple(range(first, first + n))


def _is_float(x):
    return x.dtype.kind == "f"


def _mean_dtypes(x):
    """(result dtype, accumulation dtype) of an average, as numbapool chooses them."""
    out = x.dtype if _is_float(x) else np.dtype(np.float64)
    return out, (np.dtype(np.float32) if out == np.float16 else out)


def _padding_pairs(padding, spatial, kernel, stride, dilation):
    """``(before, after)`` per axis from any numbapool padding spec."""
    n = len(spatial)
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * n
        pairs = []  # "same": ceil(L / s) outputs, any odd amount of padding goes after
        for L, k, s, d in zip(spatial, kernel, stride, dilation):
            total = max((-(-L // s) - 1) * s + (k - 1) * d + 1 - L, 0)
            pairs.append((total // 2, total - total // 2))
        return pairs
    return [tuple(p) if isinstance(p, (tuple, list)) else (p, p) for p in _per_dim(padding, n)]


def _sliding_geometry(x, n, layout, kernel_size, stride, padding, dilation):
    spatial = [x.shape[a] for a in _spatial_axes(x, n, layout)]
    kernel = _per_dim(kernel_size, n)
    stride = kernel if stride is None else _per_dim(stride, n)
    dilation = _per_dim(dilation, n)
    pads = _padding_pairs(padding, spatial, kernel, stride, dilation)
    return spatial, kernel, stride, dilation, pads


def _output_size(L, k, s, d, before, after, ceil_mode):
    """Windows along one axis; under ``ceil_mode`` none may start in the right padding."""
    size = (L + before + after - (k - 1) * d - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (size - 1) * s >= L + before:
        size -= 1
    return size


def _adaptive_sizes(x, n, layout, output_size):
    spatial = [x.shape[a] for a in _spatial_axes(x, n, layout)]
    sizes = _per_dim(output_size, n)
    return spatial, tuple(L if o is None else int(o) for L, o in zip(spatial, sizes))


def _global_rank(x, spatial_dims):
    return x.ndim - 2 if spatial_dims is None else int(spatial_dims)


def _drop_axes(result, axes, keepdims):
    return result if keepdims else result.reshape(
        [m for a, m in enumerate(result.shape) if a not in axes])


# --------------------------------------------------------------------------- PyTorch


def _torch():
    import torch

    return torch


def _pool_op(kind, n):
    """``torch.nn.functional.<kind>{n}d``; torch pools one to three spatial dimensions."""
    if not 1 <= n <= 3:
        raise _uncovered(f"{n} spatial dimensions", "torch's pooling takes 1 to 3")
    return getattr(_torch().nn.functional, f"{kind}{n}d")


def _torch_view(x, n, layout):
    """``x`` as a ``(batch, channels, *spatial)`` tensor sharing its memory, and the function
    that turns torch's ``(batch, channels, *out)`` results back into numbapool's shape."""
    torch = _torch()
    last = layout == "channels_last"
    lead = x.shape[: x.ndim - n - last]
    channels = x.shape[-1:] if last else ()
    spatial = x.shape[len(lead): len(lead) + n]
    if last:  # every leading axis becomes the batch; C stays innermost in memory
        shape = (math.prod(lead), *spatial, *channels)
    else:  # the last leading axis is the channel, the others the batch
        shape = (math.prod(lead[:-1]), lead[-1], *spatial) if lead else (1, 1, *spatial)
    flat = x.reshape(shape)
    if not flat.flags.writeable or any(s < 0 for s in flat.strides):
        flat = flat.copy()  # torch cannot wrap negative strides and warns on read-only memory
    t = torch.from_numpy(flat)
    if last:  # an NCHW-shaped tensor in torch's channels_last memory format
        t = t.permute(0, t.ndim - 1, *range(1, t.ndim - 1))

    def restore(result):
        if last:
            result = result.permute(0, *range(2, result.ndim), 1)
            out = tuple(result.shape[1:-1])
        else:
            out = tuple(result.shape[2:])
        return result.numpy().reshape(lead + out + channels)

    return t, restore


def _torch_float(t):
    """Integer input averages in float64, as numbapool's integer averages do."""
    return t if t.is_floating_point() else t.to(_torch().float64)


def _torch_padding(padding, n):
    """torch's symmetric padding, from the numbapool specs that have one."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0
        raise _uncovered(f"padding={padding!r}", "torch's pooling takes explicit padding only")
    if not isinstance(padding, (tuple, list)):
        return padding
    pads = []
    for p in padding:
        if isinstance(p, (tuple, list)):
            if p[0] != p[1]:
                raise _uncovered(f"padding={padding!r}", "torch pads both sides equally")
            p = p[0]
        pads.append(p)
    return tuple(pads)


def _torch_extreme(is_min, x, kernel_size, stride, padding, dilation, ceil_mode,
                   return_indices, nan_policy, layout):
    _propagate_only(nan_policy, "torch")
    n = _rank(kernel_size, x)
    pool = _pool_op("max_pool", n)
    t, restore = _torch_view(x, n, layout)
    # min through max of an order-reversing map: -x for floats, ~x for integers (no overflow)
    flip = (lambda v: -v) if t.is_floating_point() else (lambda v: ~v)
    if is_min:
        t = flip(t)
    result = pool(t, kernel_size, stride, _torch_padding(padding, n), dilation, ceil_mode,
                  return_indices=return_indices)
    values, indices = result if return_indices else (result, None)
    values = restore(flip(values) if is_min else values)
    return (values, restore(indices)) if return_indices else values


def _torch_max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                    return_indices=False, nan_policy="propagate", layout="channels_first"):
    """``torch.nn.functional.max_pool{1,2,3}d``.

    Covers every argument with symmetric padding (an int, a tuple, equal pairs, ``"valid"``)
    and ``nan_policy="propagate"``, within torch's limits (1 to 3 spatial dimensions, padding
    at most half the dilated kernel; torch raises ``RuntimeError`` beyond them).  Indices
    match numbapool's except in windows holding NaN (torch points at the last NaN).
    """
    return _torch_extreme(False, x, kernel_size, stride, padding, dilation, ceil_mode,
                          return_indices, nan_policy, layout)


def _torch_min_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                    return_indices=False, nan_policy="propagate", layout="channels_first"):
    """torch's max pooling of the negated input (bitwise-inverted for integers), negated back.

    Covers what :func:`_torch_max_pool` covers.
    """
    return _torch_extreme(True, x, kernel_size, stride, padding, dilation, ceil_mode,
                          return_indices, nan_policy, layout)


def _torch_avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                    count_include_pad=True, divisor_override=None, *, dilation=1,
                    nan_policy="propagate", layout="channels_first"):
    """``torch.nn.functional.avg_pool{1,2,3}d`` (integer input is averaged in float64).

    Covers symmetric padding, ``ceil_mode``, ``count_include_pad``, ``divisor_override``
    (two and three dimensions: ``avg_pool1d`` has none) and ``nan_policy="propagate"``;
    not ``dilation`` (torch's average pooling has none).  torch allows padding up to half
    the kernel.
    """
    _propagate_only(nan_policy, "torch")
    n = _rank(kernel_size, x)
    if any(d != 1 for d in _per_dim(dilation, n)):
        raise _uncovered(f"dilation={dilation!r}", "torch's average pooling has no dilation")
    pool = _pool_op("avg_pool", n)
    extra = {}
    if divisor_override is not None:
        if n == 1:
            raise _uncovered("divisor_override", "torch's avg_pool1d has none")
        extra["divisor_override"] = divisor_override
    t, restore = _torch_view(x, n, layout)
    return restore(pool(_torch_float(t), kernel_size, stride, _torch_padding(padding, n),
                        ceil_mode, count_include_pad, **extra))


def _torch_lp_pool(x, norm_type, kernel_size, stride=None, ceil_mode=False, *,
                   layout="channels_first"):
    """``torch.nn.functional.lp_pool{1,2,3}d`` (integer input in float64).

    Agrees with numbapool where every window's sum of ``x ** norm_type`` is positive or zero
    (e.g. ``x >= 0``): torch takes the root of a negative sum instead of giving 0.  Covers
    ``ceil_mode`` only while every window lies inside the input, since torch rescales a
    partial window by ``kernel size / element count``.
    """
    n = _rank(kernel_size, x)
    pool = _pool_op("lp_pool", n)
    spatial, kernel, stride, _, _ = _sliding_geometry(x, n, layout, kernel_size, stride, 0, 1)
    if ceil_mode and any((_output_size(L, k, s, 1, 0, 0, True) - 1) * s + k > L
                         for L, k, s in zip(spatial, kernel, stride)):
        raise _uncovered("ceil_mode=True with a partial last window",
                         "torch rescales it by kernel size / element count")
    if n == 1:  # lp_pool1d multiplies by kernel_size, so it must be an int
        kernel, stride = kernel[0], stride[0]
    t, restore = _torch_view(x, n, layout)
    return restore(pool(_torch_float(t), float(norm_type), kernel, stride, ceil_mode))


def _torch_adaptive_max_pool(x, output_size, *, return_indices=False, nan_policy="propagate",
                             layout="channels_first"):
    """``torch.nn.functional.adaptive_max_pool{1,2,3}d``.

    Covers every argument except ``nan_policy="omit"``; ``None`` sizes keep the input's
    size.  Indices match numbapool's except in windows holding NaN.
    """
    _propagate_only(nan_policy, "torch")
    n = _rank(output_size, x)
    pool = _pool_op("adaptive_max_pool", n)
    _, sizes = _adaptive_sizes(x, n, layout, output_size)
    t, restore = _torch_view(x, n, layout)
    result = pool(t, sizes, return_indices=return_indices)
    return tuple(map(restore, result)) if return_indices else restore(result)


def _torch_adaptive_avg_pool(x, output_size, *, nan_policy="propagate",
                             layout="channels_first"):
    """``torch.nn.functional.adaptive_avg_pool{1,2,3}d`` (integer input in float64).

    Covers every argument except ``nan_policy="omit"``; ``None`` sizes keep the input's
    size.
    """
    _propagate_only(nan_policy, "torch")
    n = _rank(output_size, x)
    pool = _pool_op("adaptive_avg_pool", n)
    _, sizes = _adaptive_sizes(x, n, layout, output_size)
    t, restore = _torch_view(x, n, layout)
    return restore(pool(_torch_float(t), sizes))


def _torch_global(kind, x, spatial_dims, keepdims, nan_policy, layout):
    _propagate_only(nan_policy, "torch")
    n = _global_rank(x, spatial_dims)
    t, restore = _torch_view(x, n, layout)
    if kind == "avg_pool":
        t = _torch_float(t)
    if n <= 3:  # adaptive pooling to 1 is how networks write a global pool
        result = _pool_op(f"adaptive_{kind}", n)(t, 1)
    else:
        dims = tuple(range(2, 2 + n))
        result = t.amax(dims, keepdim=True) if kind == "max_pool" else t.mean(dims, keepdim=True)
    return _drop_axes(restore(result), _spatial_axes(x, n, layout), keepdims)


def _torch_global_max_pool(x, spatial_dims=None, *, keepdims=False, nan_policy="propagate",
                           layout="channels_first"):
    """``adaptive_max_pool{n}d(x, 1)`` (``amax`` beyond three dimensions).

    Covers every argument except ``nan_policy="omit"``.
    """
    return _torch_global("max_pool", x, spatial_dims, keepdims, nan_policy, layout)


def _torch_global_avg_pool(x, spatial_dims=None, *, keepdims=False, nan_policy="propagate",
                           layout="channels_first"):
    """``adaptive_avg_pool{n}d(x, 1)`` (``mean`` beyond three dimensions; integers in
    float64).  Covers every argument except ``nan_policy="omit"``.
    """
    return _torch_global("avg_pool", x, spatial_dims, keepdims, nan_policy, layout)


def _torch_gem_pool(x, p=3.0, eps=1e-6, spatial_dims=None, *, keepdims=False,
                    layout="channels_first"):
    """GeM as it is usually written: ``x.clamp(min=eps).pow(p).mean(spatial).pow(1 / p)``.

    Covers every argument; computes in the input's float dtype (integers in float64).
    """
    n = _global_rank(x, spatial_dims)
    t, restore = _torch_view(x, n, layout)
    dims = tuple(range(2, 2 + n))
    result = _torch_float(t).clamp(min=eps).pow(p).mean(dims, keepdim=True).pow(1.0 / p)
    return _drop_axes(restore(result), _spatial_axes(x, n, layout), keepdims)


def _padded_form_only(lengths, offsets, nan_policy, library):
    if lengths is not None or offsets is not None:
        raise _uncovered("lengths" if lengths is not None else "offsets",
                         f"the {library} formulation takes padded (B, L, D) hidden states only")
    _propagate_only(nan_policy, library)


def _token_modes(mode):
    return [mode] if isinstance(mode, str) else list(mode)


def _torch_pool_tokens(hidden, attention_mask=None, mode="mean", *, weights=None,
                       scores=None, lengths=None, offsets=None, nan_policy="propagate"):
    """Masked token pooling as it is written in torch (sentence-transformers' formulas).

    Covers the padded form, every mode (and lists of modes), ``weights``, ``scores`` and
    ``nan_policy="propagate"``; not the packed form (``lengths``/``offsets``).  Padding
    positions must hold finite values: the sums multiply them by a zero mask.
    """
    _padded_form_only(lengths, offsets, nan_policy, "torch")
    torch = _torch()
    h = torch.from_numpy(hidden)
    batch, length, _ = h.shape
    if attention_mask is None:
        m = torch.ones((batch, length), dtype=torch.bool)
    else:
        mask = np.asarray(attention_mask)
        m = torch.from_numpy(mask if mask.dtype == bool else mask != 0)
    mf = m.unsqueeze(-1).to(h.dtype)
    count = mf.sum(1)
    rows = torch.arange(batch)
    parts = []
    for name in _token_modes(mode):
        if name == "cls":
            parts.append(h[rows, m.to(torch.int8).argmax(1)])
        elif name == "last":
            parts.append(h[rows, length - 1 - m.flip(1).to(torch.int8).argmax(1)])
        elif name in ("mean", "sum", "mean_sqrt_len"):
            total = (h * mf).sum(1)
            if name == "mean":
                total = total / count.clamp(min=1)
            elif name == "mean_sqrt_len":
                total = total / count.clamp(min=1).sqrt()
            parts.append(total)
        elif name in ("max", "min"):
            fill = float("-inf") if name == "max" else float("inf")
            masked = h.masked_fill(~m.unsqueeze(-1), fill)
            parts.append(masked.amax(1) if name == "max" else masked.amin(1))
        elif name in ("weighted_mean", "weighted"):
            if name == "weighted_mean":  # positions 1..n over each sequence's own tokens
                w = (m.cumsum(1) * m).to(h.dtype).unsqueeze(-1)
            else:
                w = torch.from_numpy(np.asarray(weights)).to(h.dtype).unsqueeze(-1) * mf
            total = w.sum(1)
            parts.append((h * w).sum(1) / torch.where(total > 0, total, torch.ones_like(total)))
        elif name == "attention":
            s = torch.from_numpy(np.asarray(scores)).to(h.dtype).masked_fill(~m, float("-inf"))
            parts.append((h * s.softmax(1).unsqueeze(-1)).sum(1))
        else:
            raise ValueError(f"mode {name!r} is unknown")
    result = torch.cat(parts, dim=-1)
    empty = ~m.any(1)
    if bool(empty.any()):  # a sequence without tokens gives zeros in every mode
        result[empty] = 0
    return result.numpy()


# --------------------------------------------------------------------------- NumPy


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


# --------------------------------------------------------------------------- the registry

#: ``{public function name: Formulations(torch=..., numpy=...)}``.
COMPARISONS = {
    "max_pool": Formulations(_torch_max_pool, _np_max_pool),
    "min_pool": Formulations(_torch_min_pool, _np_min_pool),
    "avg_pool": Formulations(_torch_avg_pool, _np_avg_pool),
    "lp_pool": Formulations(_torch_lp_pool, _np_lp_pool),
    "adaptive_max_pool": Formulations(_torch_adaptive_max_pool, _np_adaptive_max_pool),
    "adaptive_avg_pool": Formulations(_torch_adaptive_avg_pool, _np_adaptive_avg_pool),
    "global_max_pool": Formulations(_torch_global_max_pool, _np_global_max_pool),
    "global_avg_pool": Formulations(_torch_global_avg_pool, _np_global_avg_pool),
    "gem_pool": Formulations(_torch_gem_pool, _np_gem_pool),
    "pool_tokens": Formulations(_torch_pool_tokens, _np_pool_tokens),
}
