"""Spatial pooling: sliding-window, adaptive and global pooling over N-D arrays.

Every function validates its arguments, builds a :class:`~numbapool.plan.SpatialPlan`
(window tables from :mod:`numbapool.geometry`) and hands it to the backend chosen by
:mod:`numbapool.dispatch`.  Layouts:

* ``layout="channels_first"`` (default): ``x.shape == (*lead, *spatial)``; every leading
  axis (batch, channel, anything, or none) indexes an independent plane;
* ``layout="channels_last"``: ``x.shape == (*lead, *spatial, C)``.

The number of spatial dimensions N is ``len(kernel_size)`` (or ``len(output_size)``) when
that is a tuple, and ``x.ndim - 2`` (the ``(batch, channel, *spatial)`` convention) when it
is an int.  The ``1d``/``2d``/``3d`` aliases fix N.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import textwrap
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import numpy as np

from . import _docstrings, dispatch, geometry
from ._dask import dask_aware
from ._checks import (
    LAYOUTS,
    NAN_POLICIES,
    averaging_dtypes,
    check_bool,
    check_choice,
    check_extreme_dtype,
    check_positive_real,
)
from ._typing import Array, Device, Layout, NanPolicy, Padding, Stream
from .plan import SpatialPlan

__all__ = [
    "max_pool", "min_pool", "avg_pool", "lp_pool", "adaptive_max_pool", "adaptive_avg_pool",
    "global_max_pool", "global_avg_pool", "gem_pool",
    "max_pool1d", "max_pool2d", "max_pool3d",
    "min_pool1d", "min_pool2d", "min_pool3d",
    "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "global_max_pool1d", "global_max_pool2d", "global_max_pool3d",
    "global_avg_pool1d", "global_avg_pool2d", "global_avg_pool3d",
    "gem_pool1d", "gem_pool2d", "gem_pool3d",
]


# --------------------------------------------------------------------------- helpers


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _spatial_rank(value, x, param):
    """N from a tuple's length, or ``x.ndim - 2`` for an int."""
    if isinstance(value, (tuple, list)):
        if len(value) == 0:
            raise ValueError(f"{param} must not be empty")
        return len(value)
    if not _is_int(value):
        raise TypeError(f"{param} must be an int or a sequence of ints; got {value!r}")
    n = x.ndim - 2
    if n < 1:
        raise ValueError(
            f"{param}={value!r} is an int, so x is read as (batch, channel, *spatial) and needs "
            f"ndim >= 3; got x.ndim == {x.ndim}. Pass {param} as a tuple (one entry per spatial "
            "dimension) to pool arrays of other ranks"
        )
    return n


def _split_shape(x, n, layout):
    """(lead shape, spatial shape, channels) of ``x`` for ``n`` spatial dimensions."""
    need = n + (layout == "channels_last")
    if x.ndim < need:
        raise ValueError(
            f"x has shape {x.shape} but {n} spatial dimension(s) in layout {layout!r} need "
            f"x.ndim >= {need}"
        )
    shape = tuple(x.shape)  # a plain tuple: the CUDA simulator's shapes lack negative indexing
    if layout == "channels_first":
        return shape[: x.ndim - n], shape[x.ndim - n:], 1
    return shape[: x.ndim - n - 1], shape[x.ndim - n - 1: -1], shape[-1]


_NO_POLICY = object()  # for functions without nan_policy (None is a bad value, not absence)


def _common(x, layout, nan_policy=_NO_POLICY):
    check_choice(layout, "layout", LAYOUTS)
    if nan_policy is not _NO_POLICY:
        check_choice(nan_policy, "nan_policy", NAN_POLICIES)


def _execute(plan, backend, x, out, result_shape=None):
    """Run ``plan`` on ``x`` through ``backend``; returns values or (values, indices)."""
    shape = plan.out_shape if result_shape is None else result_shape
    return backend.run_spatial(plan, x, out, shape)


# --------------------------------------------------------------------------- sliding windows


def _sliding_axes(x, n, layout, kernel_size, stride, padding, dilation, ceil_mode):
    lead, spatial, channels = _split_shape(x, n, layout)
    kernel = geometry.as_int_tuple(kernel_size, n, "kernel_size", minimum=1)
    stride = kernel if stride is None else geometry.as_int_tuple(stride, n, "stride", minimum=1)
    dilation = geometry.as_int_tuple(dilation, n, "dilation", minimum=1)
    pads = geometry.resolve_padding(padding, n, spatial, kernel, stride, dilation)
    ceil_mode = check_bool(ceil_mode, "ceil_mode")
    axes = tuple(
        geometry.sliding_axis(L, k, s, d, b, a, ceil_mode, axis=i)
        for i, (L, k, s, d, (b, a)) in enumerate(zip(spatial, kernel, stride, dilation, pads))
    )
    return lead, channels, axes


def _extreme_pool(reducer, x, kernel_size, stride, padding, dilation, ceil_mode,
                  return_indices, nan_policy, layout, out, device, stream):
    backend, x = dispatch.resolve(x, device, stream=stream)
    _common(x, layout, nan_policy)
    dtype = check_extreme_dtype(x)
    n = _spatial_rank(kernel_size, x, "kernel_size")
    lead, channels, axes = _sliding_axes(x, n, layout, kernel_size, stride, padding, dilation,
                                         ceil_mode)
    plan = SpatialPlan(reducer, axes, lead, channels, layout == "channels_last", dtype,
                       omit_nan=nan_policy == "omit",
                       return_indices=check_bool(return_indices, "return_indices"))
    return _execute(plan, backend, x, out)


@dask_aware("max_pool")
@_docstrings.fill
def max_pool(x: Array, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
             padding: Padding = 0, dilation: int | Sequence[int] = 1, ceil_mode: bool = False,
             *, return_indices: bool = False, nan_policy: NanPolicy = "propagate",
             layout: Layout = "channels_first", out: Array | tuple[Array, Array] | None = None,
             device: Device = None, stream: Stream = None) -> Array | tuple[Array, Array]:
    """Max pooling over N spatial dimensions (``torch.nn.functional.max_pool{1,2,3}d``, N-D).

    Parameters
    ----------
    {x, kernel_size, stride}
    {padding}
        Padded positions never win.
    {dilation, ceil_mode, return_indices, nan_policy, layout, out, device, stream}

    Returns
    -------
    array, or (array, int64 array) with ``return_indices``
        ``(*lead, *pooled)`` (channels-first) or ``(*lead, *pooled, C)`` (channels-last), in
        the dtype of ``x``.

    Raises
    ------
    {TypeError, RuntimeError, ValueError}
        For example, a window wider than the padded input.

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> nbp.max_pool(x, 2)[0, 0]
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    >>> nbp.max_pool(x, (3, 3), stride=1, padding="same")[0, 0, 0]
    array([5., 6., 7., 7.], dtype=float32)
    >>> v, i = nbp.max_pool(x, 2, return_indices=True); i[0, 0]
    array([[ 5,  7],
           [13, 15]])
    """
    return _extreme_pool("max", x, kernel_size, stride, padding, dilation, ceil_mode,
                         return_indices, nan_policy, layout, out, device, stream)


@dask_aware("min_pool")
@_docstrings.fill(like=max_pool)
def min_pool(x: Array, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
             padding: Padding = 0, dilation: int | Sequence[int] = 1, ceil_mode: bool = False,
             *, return_indices: bool = False, nan_policy: NanPolicy = "propagate",
             layout: Layout = "channels_first", out: Array | tuple[Array, Array] | None = None,
             device: Device = None, stream: Stream = None) -> Array | tuple[Array, Array]:
    """Min pooling: :func:`max_pool` with the minimum (same parameters and rules).

    {Parameters}

    {Returns}

    {Raises}

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> x = np.array([[3, 1, 4, 1, 5, 9, 2, 6]], dtype=np.int16)
    >>> nbp.min_pool(x, (2,))
    array([[1, 1, 5, 2]], dtype=int16)
    """
    return _extreme_pool("min", x, kernel_size, stride, padding, dilation, ceil_mode,
                         return_indices, nan_policy, layout, out, device, stream)


@dask_aware("avg_pool")
@_docstrings.fill
def avg_pool(x: Array, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
             padding: Padding = 0, ceil_mode: bool = False, count_include_pad: bool = True,
             divisor_override: float | None = None, *, dilation: int | Sequence[int] = 1,
             nan_policy: NanPolicy = "propagate", layout: Layout = "channels_first",
             out: Array | None = None, device: Device = None, stream: Stream = None) -> Array:
    """Average pooling over N spatial dimensions (``torch.nn.functional.avg_pool{1,2,3}d``, N-D).

    float16/32/64 keep their dtype (float16 is accumulated in float32); integer input gives
    float64.  ``dilation`` is an extension (PyTorch's avg_pool has none).

    Parameters
    ----------
    {x, kernel_size, stride}
    {padding}
        Padded positions add nothing to the sum.
    {ceil_mode}
    count_include_pad : bool
        The divisor of a window: with ``True``, the number of its positions inside
        ``[-before, L + after)`` (overhang past the right padding never counts); with
        ``False``, the number of its in-bounds elements.
    divisor_override : float, optional
        A finite, non-zero divisor for every window, in place of the count.
    {dilation}
    nan_policy : {"propagate", "omit"}
        ``"propagate"``: a NaN in a window gives NaN.  ``"omit"``: NaNs are left out of the
        sum and (unless ``divisor_override`` is given) of the divisor; a window of only NaNs
        gives NaN.
    {layout, out, device, stream}

    Returns
    -------
    array
        ``(*lead, *pooled)`` (channels-first) or ``(*lead, *pooled, C)`` (channels-last);
        the dtype of a float ``x``, float64 for an integer ``x``.

    Raises
    ------
    {TypeError, RuntimeError, ValueError}
        For example, a window wider than the padded input or ``divisor_override=0``.

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> x = np.arange(16).reshape(1, 1, 4, 4)  # integers average in float64
    >>> nbp.avg_pool(x, 2)[0, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    >>> nbp.avg_pool(x, 3, stride=2, padding=1, count_include_pad=False)[0, 0]
    array([[ 2.5,  4. ],
           [ 8.5, 10. ]])
    """
    backend, x = dispatch.resolve(x, device, stream=stream)
    _common(x, layout, nan_policy)
    out_dtype, acc_dtype = averaging_dtypes(x)
    n = _spatial_rank(kernel_size, x, "kernel_size")
    lead, channels, axes = _sliding_axes(x, n, layout, kernel_size, stride, padding, dilation,
                                         ceil_mode)
    include_pad = check_bool(count_include_pad, "count_include_pad")
    override = 0.0
    if divisor_override is not None:
        if isinstance(divisor_override, (bool, np.bool_)) or not isinstance(
                divisor_override, (int, float, np.integer, np.floating)):
            raise TypeError(f"divisor_override must be a number or None; got {divisor_override!r}")
        override = float(divisor_override)
        if override == 0 or not np.isfinite(override):
            raise ValueError(f"divisor_override must be finite and non-zero; got {divisor_override!r}")
    plan = SpatialPlan("sum", axes, lead, channels, layout == "channels_last", out_dtype,
                       acc_dtype=_wide(acc_dtype, axes), omit_nan=nan_policy == "omit",
                       divisor="padded" if include_pad else "valid", divisor_override=override)
    return _execute(plan, backend, x, out)


@dask_aware("lp_pool")
@_docstrings.fill
def lp_pool(x: Array, norm_type: float, kernel_size: int | Sequence[int],
            stride: int | Sequence[int] | None = None, ceil_mode: bool = False, *,
            layout: Layout = "channels_first", out: Array | None = None,
            device: Device = None, stream: Stream = None) -> Array:
    """Power-average pooling: ``(sum of x**p over the window) ** (1/p)``.

    As ``torch.nn.functional.lp_pool{1,2,3}d`` (no padding), N-D.

    Parameters
    ----------
    {x}
        The sums are accumulated in float64.
    norm_type : float
        The power ``p``, finite and > 0.
    {kernel_size, stride}
    ceil_mode : bool
        Round the output size up; the sum of a last, partial window runs over its in-bounds
        part.
    {layout, out, device, stream}

    Returns
    -------
    array
        ``(*lead, *pooled)`` (channels-first) or ``(*lead, *pooled, C)`` (channels-last);
        the dtype of a float ``x``, float64 for an integer ``x``.  A window whose sum is not
        positive gives 0.

    Raises
    ------
    {TypeError, RuntimeError, ValueError}
        For example, ``norm_type=0`` or a window wider than the input.

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> x = np.array([[3.0, 4.0, 1.0, 1.0]])
    >>> nbp.lp_pool(x, 2, (2,))
    array([[5.        , 1.41421356]])
    """
    backend, x = dispatch.resolve(x, device, stream=stream)
    _common(x, layout)
    out_dtype, acc_dtype = averaging_dtypes(x)
    p = check_positive_real(norm_type, "norm_type")
    n = _spatial_rank(kernel_size, x, "kernel_size")
    lead, channels, axes = _sliding_axes(x, n, layout, kernel_size, stride, 0, 1, ceil_mode)
    plan = SpatialPlan("sum", axes, lead, channels, layout == "channels_last", out_dtype,
                       acc_dtype=np.dtype(np.float64), transform="power", power=p,
                       finish="root_sum")
    return _execute(plan, backend, x, out)


# --------------------------------------------------------------------------- adaptive


def _adaptive_axes(x, output_size, layout):
    n = _spatial_rank(output_size, x, "output_size")
    lead, spatial, channels = _split_shape(x, n, layout)
    if isinstance(output_size, (tuple, list)):
        sizes = [spatial[i] if o is None else o for i, o in enumerate(output_size)]
    else:
        sizes = [output_size] * n
    sizes = geometry.as_int_tuple(tuple(sizes), n, "output_size", minimum=1)
    axes = tuple(geometry.adaptive_axis(L, O, axis=i) for i, (L, O) in enumerate(zip(spatial, sizes)))
    return lead, channels, axes


@dask_aware("adaptive_max_pool")
@_docstrings.fill
def adaptive_max_pool(x: Array, output_size: int | Sequence[int | None], *,
                      return_indices: bool = False, nan_policy: NanPolicy = "propagate",
                      layout: Layout = "channels_first",
                      out: Array | tuple[Array, Array] | None = None,
                      device: Device = None,
                      stream: Stream = None) -> Array | tuple[Array, Array]:
    """Adaptive max pooling to ``output_size`` (``adaptive_max_pool{1,2,3}d`` of PyTorch, N-D).

    Window ``i`` of an axis of length L pooled to O spans ``[floor(i*L/O), ceil((i+1)*L/O))``;
    O may exceed L.

    Parameters
    ----------
    {x, output_size, return_indices, nan_policy, layout, out, device, stream}

    Returns
    -------
    array, or (array, int64 array) with ``return_indices``
        ``(*lead, *output_size)`` (channels-first) or ``(*lead, *output_size, C)``
        (channels-last), in the dtype of ``x``.

    Raises
    ------
    {TypeError, RuntimeError, ValueError}
        For example, an output size below 1 or a spatial axis of length 0.

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> x = np.arange(10, dtype=np.float32).reshape(1, 1, 10)
    >>> nbp.adaptive_max_pool(x, 3)
    array([[[3., 6., 9.]]], dtype=float32)
    """
    backend, x = dispatch.resolve(x, device, stream=stream)
    _common(x, layout, nan_policy)
    dtype = check_extreme_dtype(x)
    lead, channels, axes = _adaptive_axes(x, output_size, layout)
    plan = SpatialPlan("max", axes, lead, channels, layout == "channels_last", dtype,
                       omit_nan=nan_policy == "omit",
                       return_indices=check_bool(return_indices, "return_indices"))
    return _execute(plan, backend, x, out)


@dask_aware("adaptive_avg_pool")
@_docstrings.fill(like=adaptive_max_pool)
def adaptive_avg_pool(x: Array, output_size: int | Sequence[int | None], *,
                      nan_policy: NanPolicy = "propagate", layout: Layout = "channels_first",
                      out: Array | None = None, device: Device = None,
                      stream: Stream = None) -> Array:
    """Adaptive average pooling to ``output_size`` (``adaptive_avg_pool{1,2,3}d`` of PyTorch, N-D).

    The windows are those of :func:`adaptive_max_pool`.

    Parameters
    ----------
    {x, output_size, nan_policy}
        Under ``"omit"``, the mean is over the values that are not NaN.
    {layout, out, device, stream}

    Returns
    -------
    array
        ``(*lead, *output_size)`` (channels-first) or ``(*lead, *output_size, C)``
        (channels-last); the dtype of a float ``x``, float64 for an integer ``x``.

    {Raises}

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> x = np.arange(10, dtype=np.float64).reshape(1, 1, 10)
    >>> nbp.adaptive_avg_pool(x, 3)
    array([[[1.5, 4.5, 7.5]]])
    """
    backend, x = dispatch.resolve(x, device, stream=stream)
    _common(x, layout, nan_policy)
    out_dtype, acc_dtype = averaging_dtypes(x)
    lead, channels, axes = _adaptive_axes(x, output_size, layout)
    plan = SpatialPlan("sum", axes, lead, channels, layout == "channels_last", out_dtype,
                       acc_dtype=_wide(acc_dtype, axes), omit_nan=nan_policy == "omit")
    return _execute(plan, backend, x, out)


def _wide(acc_dtype, axes):
    """The accumulator of a window sum: float64 for windows of more than 64 taps, where float32
    sums lose digits, else ``acc_dtype`` (the one rule of every averaging pool; lp and GeM
    always sum in float64)."""
    taps = 1
    for a in axes:
        taps *= a.max_count
    return np.dtype(np.float64) if taps > 64 else acc_dtype


# --------------------------------------------------------------------------- global


def _global_rows(size, channels):
    """Two full axes ``(size // g, g)`` that view a plane of ``size`` positions as rows.

    A global pool reduces the whole plane, so any row split gives the same windows; the
    kernels go fastest with rows of about 256 elements for channels-first (stage B then
    reduces a short row) and about 2048 for channels-last (the float64 row buffer stays
    in L1).
    """
    target = max(1, (256 if channels == 1 else 2048) // max(channels, 1))  # C may be 0
    g = min((d for d in _divisors(size)), key=lambda d: abs(d - target))
    return (geometry.full_axis(size // g), geometry.full_axis(g))


@functools.lru_cache(maxsize=256)
def _divisors(n):
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return tuple(small + [n // d for d in reversed(small)])


def _global_axes(x, spatial_dims, layout, keepdims):
    if spatial_dims is None:
        n = x.ndim - 2
        if n < 1:
            raise ValueError(
                f"spatial_dims=None reads x as (batch, channel, *spatial) and needs x.ndim >= 3; "
                f"got x.ndim == {x.ndim}; pass spatial_dims"
            )
    elif _is_int(spatial_dims):
        n = int(spatial_dims)
        if n < 1:
            raise ValueError(f"spatial_dims must be >= 1; got {spatial_dims!r}")
    else:
        raise TypeError(f"spatial_dims must be an int or None; got {spatial_dims!r}")
    lead, spatial, channels = _split_shape(x, n, layout)
    for i, L in enumerate(spatial):
        geometry.full_axis(L, axis=i)  # validates every axis
    axes = _global_rows(math.prod(spatial), channels)
    keep = check_bool(keepdims, "keepdims")
    tail = (channels,) if layout == "channels_last" else ()
    result_shape = lead + ((1,) * n if keep else ()) + tail
    return lead, channels, axes, result_shape


@dask_aware("global_max_pool")
@_docstrings.fill
def global_max_pool(x: Array, spatial_dims: int | None = None, *, keepdims: bool = False,
                    nan_policy: NanPolicy = "propagate", layout: Layout = "channels_first",
                    out: Array | None = None, device: Device = None,
                    stream: Stream = None) -> Array:
    """Maximum over the spatial axes.

    A global pool has one window: the whole spatial extent of each plane.

    Parameters
    ----------
    {x, spatial_dims, keepdims, nan_policy, layout, out, device, stream}

    Returns
    -------
    array
        ``lead`` (channels-first) or ``(*lead, C)`` (channels-last), with ``spatial_dims``
        axes of size 1 before ``C`` when ``keepdims``; in the dtype of ``x``.

    Raises
    ------
    {TypeError, RuntimeError, ValueError}
        For example, more ``spatial_dims`` than ``x`` has axes, or a spatial axis of length 0.

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    >>> nbp.global_max_pool(x)
    array([[ 3.,  7., 11.],
           [15., 19., 23.]], dtype=float32)
    >>> nbp.global_max_pool(x, 1, layout="channels_last").shape
    (2, 4)
    """
    backend, x = dispatch.resolve(x, device, stream=stream)
    _common(x, layout, nan_policy)
    dtype = check_extreme_dtype(x)
    lead, channels, axes, shape = _global_axes(x, spatial_dims, layout, keepdims)
    plan = SpatialPlan("max", axes, lead, channels, layout == "channels_last", dtype,
                       omit_nan=nan_policy == "omit")
    return _execute(plan, backend, x, out, shape)


@dask_aware("global_avg_pool")
@_docstrings.fill(like=global_max_pool)
def global_avg_pool(x: Array, spatial_dims: int | None = None, *, keepdims: bool = False,
                    nan_policy: NanPolicy = "propagate", layout: Layout = "channels_first",
                    out: Array | None = None, device: Device = None,
                    stream: Stream = None) -> Array:
    """Mean over the spatial axes (axes chosen as in :func:`global_max_pool`).

    Parameters
    ----------
    {x, spatial_dims, keepdims, nan_policy}
        Under ``"omit"``, the mean is over the values that are not NaN.
    {layout, out, device, stream}

    Returns
    -------
    array
        Shaped as in :func:`global_max_pool`; the dtype of a float ``x``, float64 for an
        integer ``x``.

    {Raises}

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> x = np.arange(8, dtype=np.float64).reshape(1, 2, 2, 2)
    >>> nbp.global_avg_pool(x, keepdims=True)
    array([[[[1.5]],
    <BLANKLINE>
            [[5.5]]]])
    """
    backend, x = dispatch.resolve(x, device, stream=stream)
    _common(x, layout, nan_policy)
    out_dtype, acc_dtype = averaging_dtypes(x)
    lead, channels, axes, shape = _global_axes(x, spatial_dims, layout, keepdims)
    plan = SpatialPlan("sum", axes, lead, channels, layout == "channels_last", out_dtype,
                       acc_dtype=_wide(acc_dtype, axes), omit_nan=nan_policy == "omit")
    return _execute(plan, backend, x, out, shape)


@dask_aware("gem_pool")
@_docstrings.fill
def gem_pool(x: Array, p: float = 3.0, eps: float = 1e-6, spatial_dims: int | None = None, *,
             keepdims: bool = False, layout: Layout = "channels_first", out: Array | None = None,
             device: Device = None, stream: Stream = None) -> Array:
    """Generalised-mean (GeM) pooling: ``mean(clip(x, eps, None) ** p) ** (1/p)``.

    Over the spatial axes chosen as in :func:`global_max_pool`.  ``p=1`` is the mean of the
    clipped values; large ``p`` approaches the maximum.

    Parameters
    ----------
    {x}
        The sums are accumulated in float64.
    p : float
        The power, finite and > 0.
    eps : float
        Lower clip bound applied before the power, finite and >= 0.
    {spatial_dims, keepdims, layout, out, device, stream}

    Returns
    -------
    array
        Shaped as in :func:`global_max_pool`; the dtype of a float ``x``, float64 for an
        integer ``x``.

    Raises
    ------
    {TypeError, RuntimeError, ValueError}
        For example, ``p=0`` or more ``spatial_dims`` than ``x`` has axes.

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> x = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    >>> nbp.gem_pool(x, p=1.0, spatial_dims=1)
    array([[2.5]])
    """
    backend, x = dispatch.resolve(x, device, stream=stream)
    _common(x, layout)
    out_dtype, _ = averaging_dtypes(x)
    power = check_positive_real(p, "p")
    eps = check_positive_real(eps, "eps", allow_zero=True)
    lead, channels, axes, shape = _global_axes(x, spatial_dims, layout, keepdims)
    plan = SpatialPlan("sum", axes, lead, channels, layout == "channels_last", out_dtype,
                       acc_dtype=np.dtype(np.float64), transform="clip_power", power=power,
                       eps=eps, finish="root_mean")
    return _execute(plan, backend, x, out, shape)


# --------------------------------------------------------------------------- fixed-rank aliases


_Pool = TypeVar("_Pool", bound=Callable[..., Any])


def _per_axis(value, rank, param):
    """An int repeated ``rank`` times; a sequence must already have ``rank`` entries."""
    if isinstance(value, (tuple, list)):
        if len(value) != rank:
            raise ValueError(
                f"{param} must have {rank} entries, one per spatial dimension of a {rank}-D "
                f"pool; got {tuple(value)!r} of length {len(value)}"
            )
        return value
    if _is_int(value):
        return (value,) * rank
    return value  # neither: the N-D function says what is wrong with it


def _alias_spatial_dims(value, rank, param):
    """``rank`` for ``None``; a different int contradicts the alias."""
    if value is None:
        return rank
    if _is_int(value) and value != rank:
        raise ValueError(f"{param}={value!r} contradicts the {rank}-D alias")
    return value  # ``rank`` itself, or a type the N-D function rejects


def _fixed_rank(func: _Pool, rank: int) -> _Pool:
    """``func`` with N fixed to ``rank`` spatial dimensions.

    The alias rewrites one argument and calls ``func``: an int ``kernel_size`` or
    ``output_size`` becomes a ``rank``-tuple (a tuple must have ``rank`` entries), and
    ``spatial_dims`` defaults to ``rank``.  Its signature is ``func``'s, so it is typed as
    ``func``.
    """
    positional = [p.name for p in inspect.signature(func).parameters.values()
                  if p.kind is p.POSITIONAL_OR_KEYWORD]
    param = next(p for p in ("kernel_size", "output_size", "spatial_dims") if p in positional)
    index = positional.index(param)
    fix = _alias_spatial_dims if param == "spatial_dims" else _per_axis

    @functools.wraps(func)
    def alias(*args, **kwargs):
        if len(args) > index:
            args = (*args[:index], fix(args[index], rank, param), *args[index + 1:])
        elif param in kwargs:
            kwargs[param] = fix(kwargs[param], rank, param)
        elif param == "spatial_dims":  # not given: the alias's rank
            kwargs[param] = rank
        return func(*args, **kwargs)

    name = func.__name__
    alias.__name__ = alias.__qualname__ = f"{name}{rank}d"
    if param == "spatial_dims":
        rule = f"``spatial_dims`` defaults to {rank}; another value raises ``ValueError``."
    else:
        rule = (f"An int ``{param}`` applies to every spatial dimension; a tuple must have "
                f"{rank} entries.")
    summary = (f"{rank}-D :func:`numbapool.{name}`: N is fixed to {rank} spatial "
               f"dimension{'s' if rank > 1 else ''}.")
    note = textwrap.fill(f"Any number of leading axes is allowed.  {rule}  The parameters and "
                         f"rules are those of :func:`numbapool.{name}`:", width=88)
    alias.__doc__ = f"{summary}\n\n{note}\n\n{inspect.cleandoc(func.__doc__ or '')}\n"
    return cast(_Pool, alias)  # same signature as func (functools.wraps keeps it visible)


max_pool1d = _fixed_rank(max_pool, 1)
max_pool2d = _fixed_rank(max_pool, 2)
max_pool3d = _fixed_rank(max_pool, 3)
min_pool1d = _fixed_rank(min_pool, 1)
min_pool2d = _fixed_rank(min_pool, 2)
min_pool3d = _fixed_rank(min_pool, 3)
avg_pool1d = _fixed_rank(avg_pool, 1)
avg_pool2d = _fixed_rank(avg_pool, 2)
avg_pool3d = _fixed_rank(avg_pool, 3)
lp_pool1d = _fixed_rank(lp_pool, 1)
lp_pool2d = _fixed_rank(lp_pool, 2)
lp_pool3d = _fixed_rank(lp_pool, 3)
adaptive_max_pool1d = _fixed_rank(adaptive_max_pool, 1)
adaptive_max_pool2d = _fixed_rank(adaptive_max_pool, 2)
adaptive_max_pool3d = _fixed_rank(adaptive_max_pool, 3)
adaptive_avg_pool1d = _fixed_rank(adaptive_avg_pool, 1)
adaptive_avg_pool2d = _fixed_rank(adaptive_avg_pool, 2)
adaptive_avg_pool3d = _fixed_rank(adaptive_avg_pool, 3)
global_max_pool1d = _fixed_rank(global_max_pool, 1)
global_max_pool2d = _fixed_rank(global_max_pool, 2)
global_max_pool3d = _fixed_rank(global_max_pool, 3)
global_avg_pool1d = _fixed_rank(global_avg_pool, 1)
global_avg_pool2d = _fixed_rank(global_avg_pool, 2)
global_avg_pool3d = _fixed_rank(global_avg_pool, 3)
gem_pool1d = _fixed_rank(gem_pool, 1)
gem_pool2d = _fixed_rank(gem_pool, 2)
gem_pool3d = _fixed_rank(gem_pool, 3)
