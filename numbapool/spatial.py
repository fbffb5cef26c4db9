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
import math

import numpy as np

from . import dispatch, geometry
from ._checks import (
    LAYOUTS,
    NAN_POLICIES,
    averaging_dtypes,
    check_bool,
    check_choice,
    check_extreme_dtype,
    check_positive_real,
)
from .plan import SpatialPlan

__all__ = [
    "max_pool", "min_pool", "avg_pool", "lp_pool", "adaptive_max_pool", "adaptive_avg_pool",
    "global_max_pool", "global_avg_pool", "gem_pool",
]


# --------------------------------------------------------------------------- helpers


def _spatial_rank(value, x, rank, param):
    """N from a fixed alias rank, a tuple's length, or ``x.ndim - 2``."""
    if rank is not None:
        return rank
    if isinstance(value, (tuple, list)):
        if len(value) == 0:
            raise ValueError(f"{param} must not be empty")
        return len(value)
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
                  return_indices, nan_policy, layout, out, device, rank):
    backend, x = dispatch.resolve(x, device)
    _common(x, layout, nan_policy)
    dtype = check_extreme_dtype(x)
    n = _spatial_rank(kernel_size, x, rank, "kernel_size")
    lead, channels, axes = _sliding_axes(x, n, layout, kernel_size, stride, padding, dilation,
                                         ceil_mode)
    plan = SpatialPlan(reducer, axes, lead, channels, layout == "channels_last", dtype,
                       omit_nan=nan_policy == "omit",
                       return_indices=check_bool(return_indices, "return_indices"))
    return _execute(plan, backend, x, out)


def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
             return_indices=False, nan_policy="propagate", layout="channels_first", out=None,
             device=None, _rank=None):
    """Max pooling over N spatial dimensions (``torch.nn.functional.max_pool{1,2,3}d``, N-D).

    Parameters
    ----------
    x : array
        ``(*lead, *spatial)`` (channels-first) or ``(*lead, *spatial, C)`` (channels-last).
        Integer (8-64 bit, signed or unsigned) or float16/32/64; the result keeps the dtype.
    kernel_size : int or tuple of int
        Window size; its length is N when a tuple, else N = ``x.ndim - 2``.
    stride : int or tuple, optional
        Defaults to ``kernel_size``.
    padding : int, tuple, tuple of (before, after) pairs, "same" or "valid"
        Padded positions never win.  Every window must hold at least one input element.
    dilation : int or tuple
        Distance between window taps.
    ceil_mode : bool
        Round the output size up; a last window starting in the right padding is dropped.
    return_indices : bool
        Also return int64 indices: the flat row-major position of each winner within its
        plane's unpadded spatial extent (PyTorch's convention, in both layouts).  Ties go to
        the first element in row-major window order; under ``"propagate"`` to the first NaN.
    nan_policy : {"propagate", "omit"}
        ``"propagate"``: a NaN in a window gives NaN.  ``"omit"``: NaNs are ignored; a
        window of only NaNs gives NaN.
    layout : {"channels_first", "channels_last"}
    out : array, optional
        Preallocated result (or ``(values, indices)`` pair) of the exact shape and dtype.
    device : {None, "cpu", "cuda"}
        Where to compute; ``None`` means where ``x`` lives.

    Returns
    -------
    array, or (array, int64 array) with ``return_indices``.

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
                         return_indices, nan_policy, layout, out, device, _rank)


def min_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
             return_indices=False, nan_policy="propagate", layout="channels_first", out=None,
             device=None, _rank=None):
    """Min pooling: :func:`max_pool` with the minimum (same parameters and rules).

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> x = np.array([[3, 1, 4, 1, 5, 9, 2, 6]], dtype=np.int16)
    >>> nbp.min_pool(x, (2,))
    array([[1, 1, 5, 2]], dtype=int16)
    """
    return _extreme_pool("min", x, kernel_size, stride, padding, dilation, ceil_mode,
                         return_indices, nan_policy, layout, out, device, _rank)


def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             divisor_override=None, *, dilation=1, nan_policy="propagate",
             layout="channels_first", out=None, device=None, _rank=None):
    """Average pooling over N spatial dimensions (``torch.nn.functional.avg_pool{1,2,3}d``, N-D).

    The divisor of a window is ``divisor_override`` when given; else, with
    ``count_include_pad``, the number of window positions inside ``[-before, L + after)``
    (overhang past the right padding never counts); else the number of in-bounds elements.
    Under ``nan_policy="omit"`` NaNs are left out of the sum and (unless overridden) the
    divisor, and a window of only NaNs gives NaN.

    float16/32/64 keep their dtype (float16 is accumulated in float32); integer input gives
    float64.  ``dilation`` is an extension (PyTorch's avg_pool has none).

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    >>> nbp.avg_pool(x, 2)[0, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    >>> nbp.avg_pool(x, 3, stride=2, padding=1, count_include_pad=False)[0, 0]
    array([[ 2.5,  4. ],
           [ 8.5, 10. ]])
    """
    backend, x = dispatch.resolve(x, device)
    _common(x, layout, nan_policy)
    out_dtype, acc_dtype = averaging_dtypes(x)
    n = _spatial_rank(kernel_size, x, rank=_rank, param="kernel_size")
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
                       acc_dtype=acc_dtype, omit_nan=nan_policy == "omit",
                       divisor="padded" if include_pad else "valid", divisor_override=override)
    return _execute(plan, backend, x, out)


def lp_pool(x, norm_type, kernel_size, stride=None, ceil_mode=False, *,
            layout="channels_first", out=None, device=None, _rank=None):
    """Power-average pooling: ``(sum of x**p over the window) ** (1/p)``.

    As ``torch.nn.functional.lp_pool{1,2,3}d`` (no padding), N-D; the sum runs over the
    in-bounds part of the window (``ceil_mode``), and a non-positive sum gives 0.

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> x = np.array([[3.0, 4.0, 1.0, 1.0]])
    >>> nbp.lp_pool(x, 2, (2,))
    array([[5.        , 1.41421356]])
    """
    backend, x = dispatch.resolve(x, device)
    _common(x, layout)
    out_dtype, acc_dtype = averaging_dtypes(x)
    p = check_positive_real(norm_type, "norm_type")
    n = _spatial_rank(kernel_size, x, rank=_rank, param="kernel_size")
    lead, channels, axes = _sliding_axes(x, n, layout, kernel_size, stride, 0, 1, ceil_mode)
    plan = SpatialPlan("sum", axes, lead, channels, layout == "channels_last", out_dtype,
                       acc_dtype=np.dtype(np.float64), transform="power", power=p,
                       finish="root_sum")
    return _execute(plan, backend, x, out)


# --------------------------------------------------------------------------- adaptive


def _adaptive_axes(x, output_size, layout, rank):
    n = _spatial_rank(output_size, x, rank, "output_size")
    lead, spatial, channels = _split_shape(x, n, layout)
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != n:
            raise ValueError(f"output_size must have {n} entries; got {tuple(output_size)!r}")
        sizes = [spatial[i] if o is None else o for i, o in enumerate(output_size)]
    else:
        sizes = [output_size] * n
    sizes = geometry.as_int_tuple(tuple(sizes), n, "output_size", minimum=1)
    axes = tuple(geometry.adaptive_axis(L, O, axis=i) for i, (L, O) in enumerate(zip(spatial, sizes)))
    return lead, channels, axes


def adaptive_max_pool(x, output_size, *, return_indices=False, nan_policy="propagate",
                      layout="channels_first", out=None, device=None, _rank=None):
    """Adaptive max pooling to ``output_size`` (``None`` entries keep that dimension).

    Window ``i`` of an axis of length L pooled to O spans ``[floor(i*L/O), ceil((i+1)*L/O))``;
    O may exceed L.  Indices, ties and NaN as in :func:`max_pool`.

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> x = np.arange(10, dtype=np.float32).reshape(1, 1, 10)
    >>> nbp.adaptive_max_pool(x, 3)
    array([[[3., 6., 9.]]], dtype=float32)
    """
    backend, x = dispatch.resolve(x, device)
    _common(x, layout, nan_policy)
    dtype = check_extreme_dtype(x)
    lead, channels, axes = _adaptive_axes(x, output_size, layout, _rank)
    plan = SpatialPlan("max", axes, lead, channels, layout == "channels_last", dtype,
                       omit_nan=nan_policy == "omit",
                       return_indices=check_bool(return_indices, "return_indices"))
    return _execute(plan, backend, x, out)


def adaptive_avg_pool(x, output_size, *, nan_policy="propagate", layout="channels_first",
                      out=None, device=None, _rank=None):
    """Adaptive average pooling to ``output_size`` (windows as :func:`adaptive_max_pool`).

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> x = np.arange(10, dtype=np.float64).reshape(1, 1, 10)
    >>> nbp.adaptive_avg_pool(x, 3)
    array([[[1.5, 4.5, 7.5]]])
    """
    backend, x = dispatch.resolve(x, device)
    _common(x, layout, nan_policy)
    out_dtype, acc_dtype = averaging_dtypes(x)
    lead, channels, axes = _adaptive_axes(x, output_size, layout, _rank)
    plan = SpatialPlan("sum", axes, lead, channels, layout == "channels_last", out_dtype,
                       acc_dtype=_wide(acc_dtype, axes), omit_nan=nan_policy == "omit")
    return _execute(plan, backend, x, out)


def _wide(acc_dtype, axes):
    """float64 accumulation for long windows, where float32 sums lose digits."""
    taps = 1
    for a in axes:
        taps *= int(a.count.max())
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


def _global_axes(x, spatial_dims, layout, keepdims, rank):
    if rank is not None:
        if spatial_dims not in (None, rank):
            raise ValueError(f"spatial_dims={spatial_dims!r} contradicts the {rank}-D alias")
        spatial_dims = rank
    if spatial_dims is None:
        n = x.ndim - 2
        if n < 1:
            raise ValueError(
                f"spatial_dims=None reads x as (batch, channel, *spatial) and needs x.ndim >= 3; "
                f"got x.ndim == {x.ndim}; pass spatial_dims"
            )
    elif isinstance(spatial_dims, (int, np.integer)) and not isinstance(spatial_dims, bool):
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


def global_max_pool(x, spatial_dims=None, *, keepdims=False, nan_policy="propagate",
                    layout="channels_first", out=None, device=None, _rank=None):
    """Maximum over the spatial axes.

    ``spatial_dims`` (default ``x.ndim - 2``) spatial axes are reduced: the last ones for
    channels-first, the ones before the channel axis for channels-last.  They are dropped,
    or kept with size 1 when ``keepdims``.

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
    backend, x = dispatch.resolve(x, device)
    _common(x, layout, nan_policy)
    dtype = check_extreme_dtype(x)
    lead, channels, axes, shape = _global_axes(x, spatial_dims, layout, keepdims, _rank)
    plan = SpatialPlan("max", axes, lead, channels, layout == "channels_last", dtype,
                       omit_nan=nan_policy == "omit")
    return _execute(plan, backend, x, out, shape)


def global_avg_pool(x, spatial_dims=None, *, keepdims=False, nan_policy="propagate",
                    layout="channels_first", out=None, device=None, _rank=None):
    """Mean over the spatial axes (axes chosen as in :func:`global_max_pool`).

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> x = np.arange(8, dtype=np.float64).reshape(1, 2, 2, 2)
    >>> nbp.global_avg_pool(x, keepdims=True)
    array([[[[1.5]],
    <BLANKLINE>
            [[5.5]]]])
    """
    backend, x = dispatch.resolve(x, device)
    _common(x, layout, nan_policy)
    out_dtype, acc_dtype = averaging_dtypes(x)
    lead, channels, axes, shape = _global_axes(x, spatial_dims, layout, keepdims, _rank)
    plan = SpatialPlan("sum", axes, lead, channels, layout == "channels_last", out_dtype,
                       acc_dtype=_wide(acc_dtype, axes), omit_nan=nan_policy == "omit")
    return _execute(plan, backend, x, out, shape)


def gem_pool(x, p=3.0, eps=1e-6, spatial_dims=None, *, keepdims=False,
             layout="channels_first", out=None, device=None, _rank=None):
    """Generalised-mean (GeM) pooling: ``mean(clip(x, eps, None) ** p) ** (1/p)``.

    Over the spatial axes chosen as in :func:`global_max_pool`.  ``p=1`` is the mean of the
    clipped values; large ``p`` approaches the maximum.

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> x = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    >>> nbp.gem_pool(x, p=1.0, spatial_dims=1)
    array([[2.5]])
    """
    backend, x = dispatch.resolve(x, device)
    _common(x, layout)
    out_dtype, _ = averaging_dtypes(x)
    power = check_positive_real(p, "p")
    eps = check_positive_real(eps, "eps", allow_zero=True)
    lead, channels, axes, shape = _global_axes(x, spatial_dims, layout, keepdims, _rank)
    plan = SpatialPlan("sum", axes, lead, channels, layout == "channels_last", out_dtype,
                       acc_dtype=np.dtype(np.float64), transform="clip_power", power=power,
                       eps=eps, finish="root_mean")
    return _execute(plan, backend, x, out, shape)


# --------------------------------------------------------------------------- fixed-rank aliases


def _alias(func, rank):
    @functools.wraps(func)
    def alias(*args, **kwargs):
        return func(*args, _rank=rank, **kwargs)

    alias.__name__ = alias.__qualname__ = f"{func.__name__}{rank}d"
    alias.__doc__ = (
        f"{rank}-D :func:`numbapool.{func.__name__}`: N is fixed to {rank} spatial "
        f"dimension(s); an int ``kernel_size``/``output_size`` applies to each of them.\n\n"
        f"See :func:`numbapool.{func.__name__}` for parameters and rules."
    )
    return alias


_ALIASED = (max_pool, min_pool, avg_pool, lp_pool, adaptive_max_pool, adaptive_avg_pool,
            global_max_pool, global_avg_pool, gem_pool)
for _func in _ALIASED:
    for _rank in (1, 2, 3):
        _a = _alias(_func, _rank)
        globals()[_a.__name__] = _a
        __all__.append(_a.__name__)
del _func, _rank, _a
