"""PyTorch CPU formulations: ``torch.nn.functional`` on tensors sharing the input's memory.

PyTorch is imported on first use (:func:`_torch`), not with this module.
"""

from __future__ import annotations

import math

import numpy as np

from ._shared import (
    _adaptive_sizes, _drop_axes, _global_rank, _output_size, _padded_form_only, _per_dim,
    _propagate_only, _rank, _sliding_geometry, _spatial_axes, _token_modes, _uncovered,
)


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
