"""What the PyTorch and NumPy formulations share.

numbapool's arguments read as numbapool reads them (the number of spatial dimensions, the
spatial axes, padding pairs, output sizes, the dtypes of an average), and the
``NotImplementedError`` a formulation raises for an argument it does not cover.
"""

from __future__ import annotations

import numpy as np


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


# --------------------------------------------------------------------------- tokens


def _padded_form_only(lengths, offsets, nan_policy, library):
    if lengths is not None or offsets is not None:
        raise _uncovered("lengths" if lengths is not None else "offsets",
                         f"the {library} formulation takes padded (B, L, D) hidden states only")
    _propagate_only(nan_policy, library)


def _token_modes(mode):
    return [mode] if isinstance(mode, str) else list(mode)
