"""Spatial pooling of dask arrays: sliding windows with halos, adaptive windows, global trees.

Sliding windows.  Along a pooled axis, output window ``o`` starts at ``o*s - before``;
each output chunk is the run of windows whose first in-bounds position lies in one input
chunk (so the first window of every chunk starts inside it), and it reads the input from
that position to its last window's last in-bounds tap.  The task pools that region with
local padding chosen so that its windows are the global ones: ``before`` is the distance
from the first window's (padded) start to the region, ``after`` pads the last window up to
its span, except in the axis's last chunk, where it is the global ``after`` (overhang past
the right padding, ``ceil_mode``'s, then counts exactly as in one call).  Indices are
converted from the region's flat positions to the plane's.

Adaptive windows are listed per output chunk the same way and run from a plan of those
windows.  Global pools reduce each chunk and combine the partial results in a tree.
"""

from __future__ import annotations

import functools

import numpy as np

import dask.array as da

from .. import dispatch, geometry, spatial
from .._checks import averaging_dtypes, check_bool, check_extreme_dtype
from ..plan import SpatialPlan
from .graph import chunk_regions, gather_map, owner_chunks

__all__ = ["max_pool", "min_pool", "avg_pool", "lp_pool", "adaptive_max_pool",
           "adaptive_avg_pool", "global_max_pool", "global_avg_pool", "gem_pool"]


def no_out(out, name="out"):
    """``out=`` has no meaning for a lazy result."""
    if out is not None:
        raise TypeError(f"{name}= cannot be used with a dask array input: the result is a lazy "
                        "dask array; compute it, or store it with dask.array.store")


def _spatial_axes(ndim, n, layout):
    first = ndim - n - (layout == "channels_last")
    return tuple(range(first, first + n))


def _probe_input(x, shape):
    """A tiny NumPy stand-in of ``x``: one-element (or empty) axes except ``shape``'s."""
    return np.zeros(shape, np.dtype(x.dtype))


def _meta(result):
    return result[tuple(slice(0, 0) for _ in range(result.ndim))]


# --------------------------------------------------------------------------- sliding windows


class _Axis:
    """The windows of one pooled axis, split into output chunks by input chunk."""

    def __init__(self, L, k, s, d, before, after, out_size, chunks):
        self.L, self.k, self.s, self.d = L, k, s, d
        self.before, self.after, self.O = before, after, out_size
        self.span = (k - 1) * d + 1
        self.runs = owner_chunks(self.start, chunks, out_size)
        self.local = [self.window_range(o0, o1) for o0, o1 in self.runs]

    def start(self, o):
        return max(0, o * self.s - self.before)

    def window_range(self, o0, o1):
        """``(lo, hi, before, after)``: the input range of windows ``o0 .. o1 - 1`` and the
        local padding that makes a pool of ``x[lo:hi]`` give exactly those windows."""
        s, b = self.s, self.before
        lo = self.start(o0)
        bl = lo - (o0 * s - b)
        if o1 == self.O:
            return lo, self.L, bl, self.after
        hi = min(self.L, (o1 - 1) * s - b + self.span)
        return lo, hi, bl, (o1 - o0 - 1) * s + self.span - (hi - lo) - bl


def _to_global(indices, local_shape, offsets, global_shape):
    """Flat positions in a region of ``local_shape`` at ``offsets`` -> flat positions in the
    plane of ``global_shape``."""
    coords = np.unravel_index(indices, local_shape)
    return np.ravel_multi_index(tuple(c + o for c, o in zip(coords, offsets)),
                                global_shape).astype(np.int64, copy=False)


def _sliding_block(func, args, kwargs, spatial_axes, global_shape, padded, returns_indices,
                   block, ranges):
    """Pool one region; ``ranges`` holds ``(lo, hi, before, after)`` per pooled axis."""
    call = dict(kwargs)
    if padded:
        call["padding"] = tuple((r[2], r[3]) for r in ranges)
    result = func(block, *args, **call)
    if not returns_indices:
        return result
    values, indices = result
    local_shape = tuple(block.shape[a] for a in spatial_axes)
    offsets = tuple(r[0] for r in ranges)
    return values, _to_global(indices, local_shape, offsets, global_shape)


def _sliding(func, x, n, layout, args, kwargs, windows, geometry_args, padded, returns_indices):
    """The graph of a sliding-window pool; ``geometry_args[i]`` is ``(k, s, d, before,
    after)`` of spatial axis ``i``, ``windows[i]`` its :class:`AxisWindows`."""
    spatial_axes = _spatial_axes(x.ndim, n, layout)
    axes = [_Axis(w.in_size, *g, w.out_size, x.chunks[a])
            for w, g, a in zip(windows, geometry_args, spatial_axes)]
    regions = [chunk_regions(c) for c in x.chunks]
    out_chunks = list(x.chunks)
    for ax, a in zip(axes, spatial_axes):
        regions[a] = [r[:2] for r in ax.local]
        out_chunks[a] = tuple(o1 - o0 for o0, o1 in ax.runs)
    fn = functools.partial(_sliding_block, func, args, kwargs, spatial_axes,
                           tuple(ax.L for ax in axes), padded, returns_indices)
    # the first window of every pooled axis, on a tiny input: checks every other argument
    # (dtype, nan_policy, ...) now, before any task runs, and gives the result's type
    first = [ax.window_range(0, 1) if ax.O > 1 else ax.local[0] for ax in axes]
    shape = [min(1, size) for size in x.shape]
    for r, a in zip(first, spatial_axes):
        shape[a] = r[1] - r[0]
    probe = fn(_probe_input(x, tuple(shape)), first)

    def block_arg(index):
        return tuple(ax.local[index[a]] for ax, a in zip(axes, spatial_axes))

    meta = tuple(map(_meta, probe)) if returns_indices else _meta(probe)
    return gather_map(x, regions, fn, tuple(out_chunks), meta, 2 if returns_indices else 1,
                      name=func.__name__, block_arg=block_arg)


def _window_geometry(x, n, layout, kernel_size, stride, padding, dilation, ceil_mode):
    lead, spatial_shape, _ = spatial._split_shape(x, n, layout)
    kernel = geometry.as_int_tuple(kernel_size, n, "kernel_size", minimum=1)
    stride = kernel if stride is None else geometry.as_int_tuple(stride, n, "stride", minimum=1)
    dilation = geometry.as_int_tuple(dilation, n, "dilation", minimum=1)
    pads = geometry.resolve_padding(padding, n, spatial_shape, kernel, stride, dilation)
    ceil_mode = check_bool(ceil_mode, "ceil_mode")
    windows = [geometry.sliding_axis(L, k, s, d, b, a, ceil_mode, axis=i)
               for i, (L, k, s, d, (b, a)) in enumerate(zip(spatial_shape, kernel, stride,
                                                             dilation, pads))]
    geometry_args = [(k, s, d, b, a) for k, s, d, (b, a) in zip(kernel, stride, dilation, pads)]
    return kernel, stride, dilation, ceil_mode, windows, geometry_args


def _extreme(func, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
             nan_policy, layout, out, device, stream):
    no_out(out)
    spatial._common(x, layout, nan_policy)
    check_extreme_dtype(x)
    n = spatial._spatial_rank(kernel_size, x, "kernel_size")
    kernel, stride, dilation, ceil_mode, windows, geo = _window_geometry(
        x, n, layout, kernel_size, stride, padding, dilation, ceil_mode)
    returns = check_bool(return_indices, "return_indices")
    kwargs = dict(stride=stride, dilation=dilation, ceil_mode=ceil_mode, return_indices=returns,
                  nan_policy=nan_policy, layout=layout, device=device, stream=stream)
    return _sliding(func, x, n, layout, (kernel,), kwargs, windows, geo, True, returns)


def max_pool(func, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
             nan_policy, layout, out, device, stream):
    return _extreme(func, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                    nan_policy, layout, out, device, stream)


min_pool = max_pool


def avg_pool(func, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
             divisor_override, dilation, nan_policy, layout, out, device, stream):
    no_out(out)
    spatial._common(x, layout, nan_policy)
    averaging_dtypes(x)
    n = spatial._spatial_rank(kernel_size, x, "kernel_size")
    kernel, stride, dilation, ceil_mode, windows, geo = _window_geometry(
        x, n, layout, kernel_size, stride, padding, dilation, ceil_mode)
    kwargs = dict(stride=stride, ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                  divisor_override=divisor_override, dilation=dilation, nan_policy=nan_policy,
                  layout=layout, device=device, stream=stream)
    return _sliding(func, x, n, layout, (kernel,), kwargs, windows, geo, True, False)


def lp_pool(func, x, norm_type, kernel_size, stride, ceil_mode, layout, out, device, stream):
    no_out(out)
    spatial._common(x, layout)
    averaging_dtypes(x)
    n = spatial._spatial_rank(kernel_size, x, "kernel_size")
    # no padding: every region starts at its first window, and only the axis's last region
    # may end inside a window (ceil_mode), exactly as the whole axis does
    kernel, stride, _, ceil_mode, windows, geo = _window_geometry(
        x, n, layout, kernel_size, stride, 0, 1, ceil_mode)
    kwargs = dict(stride=stride, ceil_mode=ceil_mode, layout=layout, device=device,
                  stream=stream)
    return _sliding(func, x, n, layout, (norm_type, kernel), kwargs, windows, geo, False, False)


# --------------------------------------------------------------------------- adaptive


def _adaptive_runs(window, chunks):
    """Output chunks of an adaptive axis, their input regions and local windows."""
    first, count, _ = window.arrays()
    runs = owner_chunks(lambda o: int(first[o]), chunks, window.out_size)
    L, O = window.in_size, window.out_size
    regions, local = [], []
    for o0, o1 in runs:
        lo, hi = int(first[o0]), int(first[o1 - 1] + count[o1 - 1])
        if L % O == 0:  # one uniform run: the kernels' fast loop
            k = L // O
            local.append(geometry.AxisWindows(hi - lo, o1 - o0, 1, (0, o1 - o0, k, k, 0),
                                              *(np.zeros(0, np.int64),) * 3,
                                              ("adaptive", hi - lo, o1 - o0)))
        else:
            local.append(geometry.AxisWindows(
                hi - lo, o1 - o0, 1, (0, 0, 1, 1, 0), first[o0:o1] - lo,
                count[o0:o1].copy(), count[o0:o1].copy(), ("dask-adaptive", L, O, o0, o1)))
        regions.append((lo, hi))
    return runs, regions, local


def _adaptive(func, x, output_size, layout, device, reducer, out_dtype, acc_dtype, omit,
              returns, kwargs):
    lead, channels, windows = spatial._adaptive_axes(x, output_size, layout)
    n = len(windows)
    spatial_axes = _spatial_axes(x.ndim, n, layout)
    regions = [chunk_regions(c) for c in x.chunks]
    out_chunks = list(x.chunks)
    locals_ = []
    for w, a in zip(windows, spatial_axes):
        runs, regs, local = _adaptive_runs(w, x.chunks[a])
        regions[a] = regs
        out_chunks[a] = tuple(o1 - o0 for o0, o1 in runs)
        locals_.append(local)
    # every other argument is checked now, on a tiny input pooled to one window per axis
    probe = func(_probe_input(x, tuple(min(1, s) for s in x.shape)), (1,) * n, **kwargs)
    fn = functools.partial(_adaptive_chunk, reducer, out_dtype, acc_dtype, omit, returns,
                           layout == "channels_last", spatial_axes,
                           tuple(w.in_size for w in windows), device)

    def block_arg(index):
        return tuple((loc[index[a]], regions[a][index[a]][0])
                     for loc, a in zip(locals_, spatial_axes))

    meta = tuple(map(_meta, probe)) if returns else _meta(probe)
    return gather_map(x, regions, fn, tuple(out_chunks), meta, 2 if returns else 1,
                      name=func.__name__, block_arg=block_arg)


def _adaptive_chunk(reducer, out_dtype, acc_dtype, omit, returns, channels_last,
                    spatial_axes, global_shape, device, block, windows):
    """Pool one region with its adaptive windows (``windows`` holds each pooled axis's
    :class:`AxisWindows` and region start), from a plan as spatial.py builds one."""
    axes = tuple(w for w, _ in windows)
    lead = tuple(block.shape[:spatial_axes[0]])
    channels = block.shape[-1] if channels_last else 1
    plan = SpatialPlan(reducer, axes, lead, channels, channels_last, out_dtype,
                       acc_dtype=acc_dtype, omit_nan=omit, return_indices=returns)
    backend, data = dispatch.resolve(block, device)
    result = backend.run_spatial(plan, data, None, plan.out_shape)
    if not returns:
        return result
    values, indices = result
    offsets = tuple(lo for _, lo in windows)
    return values, _to_global(indices, tuple(ax.in_size for ax in axes), offsets, global_shape)


def adaptive_max_pool(func, x, output_size, return_indices, nan_policy, layout, out, device,
                      stream):
    no_out(out)
    spatial._common(x, layout, nan_policy)
    dtype = check_extreme_dtype(x)
    returns = check_bool(return_indices, "return_indices")
    kwargs = dict(return_indices=returns, nan_policy=nan_policy, layout=layout, device=device,
                  stream=stream)
    return _adaptive(func, x, output_size, layout, device, "max", dtype, None,
                     nan_policy == "omit", returns, kwargs)


def adaptive_avg_pool(func, x, output_size, nan_policy, layout, out, device, stream):
    no_out(out)
    spatial._common(x, layout, nan_policy)
    out_dtype, acc_dtype = averaging_dtypes(x)
    _, _, windows = spatial._adaptive_axes(x, output_size, layout)
    kwargs = dict(nan_policy=nan_policy, layout=layout, device=device, stream=stream)
    return _adaptive(func, x, output_size, layout, device, "sum", out_dtype,
                     spatial._wide(acc_dtype, windows), nan_policy == "omit", False, kwargs)


# --------------------------------------------------------------------------- global


def _global_setup(func, x, spatial_dims, keepdims, layout, nan_policy, kwargs):
    spatial._common(x, layout, nan_policy)
    spatial._global_axes(x, spatial_dims, layout, keepdims)  # the NumPy path's checks
    n = x.ndim - 2 if spatial_dims is None else int(spatial_dims)
    probe = func(_probe_input(x, (1,) * x.ndim), n, keepdims=keepdims, **kwargs)
    return n, _spatial_axes(x.ndim, n, layout), probe


def _extreme_part(func, n, kwargs, block, axis=None, keepdims=True):
    """A global max/min of a chunk, or of partial results: the same function, so NaNs and
    ties combine as in one call."""
    return func(block, n, keepdims=keepdims, **kwargs)


def _global_extreme(func, x, spatial_dims, keepdims, nan_policy, layout, out, device, stream):
    no_out(out)
    check_extreme_dtype(x)
    kwargs = dict(nan_policy=nan_policy, layout=layout, device=device, stream=stream)
    n, axes, probe = _global_setup(func, x, spatial_dims, keepdims, layout, nan_policy, kwargs)
    keep = check_bool(keepdims, "keepdims")
    part = functools.partial(_extreme_part, func, n, kwargs)
    return da.reduction(x, part, part, combine=part, axis=axes, keepdims=keep,
                        dtype=probe.dtype, concatenate=True, meta=_meta(probe),
                        name=func.__name__)


def global_max_pool(func, x, spatial_dims, keepdims, nan_policy, layout, out, device, stream):
    return _global_extreme(func, x, spatial_dims, keepdims, nan_policy, layout, out, device,
                           stream)


def _sum_part(axes, omit, transform, block):
    """float64 ``(sum, count)`` of a chunk over ``axes``, kept as size-1 axes."""
    values = np.asarray(block, np.float64) if transform is None else transform(block)
    if omit:
        return (np.nansum(values, axis=axes, keepdims=True),
                np.sum(~np.isnan(values), axis=axes, keepdims=True, dtype=np.float64))
    return np.sum(values, axis=axes, keepdims=True), None


def _clip_power(eps, p, block):
    return np.maximum(np.asarray(block, np.float64), eps) ** p


def _finish(dtype, root, total, count):
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        if root is not None:
            mean = mean ** root  # the clipped values are >= 0
    return mean.astype(dtype, copy=False)


def _global_sum(x, axes, keepdims, omit, transform, dtype, root):
    """``(mean of transform(x) over axes) ** root``: float64 partial sums per chunk, summed in
    a tree, divided by the count (of non-NaN values when ``omit``)."""
    reduced = tuple((1,) * len(c) if a in axes else c for a, c in enumerate(x.chunks))

    def part(which):
        return da.map_blocks(functools.partial(_sum_part_of, which, axes, omit, transform), x,
                             chunks=reduced, dtype=np.float64, meta=np.empty((0,) * x.ndim))

    total = part(0).sum(axis=axes, keepdims=keepdims)
    finish = functools.partial(_finish, dtype, root)
    meta = np.empty((0,) * total.ndim, dtype)
    if omit:
        count = part(1).sum(axis=axes, keepdims=keepdims)
        return da.map_blocks(finish, total, count, dtype=dtype, meta=meta)
    count = float(np.prod([x.shape[a] for a in axes]))
    return total.map_blocks(finish, count, dtype=dtype, meta=meta)


def _sum_part_of(which, axes, omit, transform, block):
    return _sum_part(axes, omit, transform, block)[which]


def global_avg_pool(func, x, spatial_dims, keepdims, nan_policy, layout, out, device, stream):
    no_out(out)
    kwargs = dict(nan_policy=nan_policy, layout=layout, device=device, stream=stream)
    n, axes, probe = _global_setup(func, x, spatial_dims, keepdims, layout, nan_policy, kwargs)
    return _global_sum(x, axes, check_bool(keepdims, "keepdims"), nan_policy == "omit", None,
                       probe.dtype, None)


def gem_pool(func, x, p, eps, spatial_dims, keepdims, layout, out, device, stream):
    no_out(out)
    kwargs = dict(layout=layout, device=device, stream=stream)
    spatial._common(x, layout)
    spatial._global_axes(x, spatial_dims, layout, keepdims)
    n = x.ndim - 2 if spatial_dims is None else int(spatial_dims)
    probe = func(_probe_input(x, (1,) * x.ndim), p, eps, n, keepdims=keepdims, **kwargs)
    axes = _spatial_axes(x.ndim, n, layout)
    transform = functools.partial(_clip_power, float(eps), float(p))
    return _global_sum(x, axes, check_bool(keepdims, "keepdims"), False, transform,
                       probe.dtype, 1.0 / float(p))
