"""Gradients of the spatial pools with respect to their input.

``grad.f(grad_out, x, *args, **kwargs)`` takes the upstream gradient (shaped exactly as
``f``'s result) and ``f``'s own arguments, and returns ``d loss / d x``: an array of ``x``'s
shape in ``grad_out``'s float dtype (float16 is accumulated in float32).  The rules:

* max/min pools route each output's gradient to its window's winner, the forward's
  ``return_indices`` position (ties: the first in row-major window order; under
  ``"propagate"`` a window holding a NaN routes to its first NaN); overlapping windows
  add up.  ``indices=`` takes the forward's indices to skip recomputing them;
* averages give every element of a window ``grad_out / divisor`` with the forward's divisor
  rules (padding, ``count_include_pad``, ``divisor_override``, adaptive and global
  windows), summed over the windows that hold it;
* ``lp_pool`` is differentiated as ``S ** (1/p)`` with ``S`` the window's sum of ``x**p``:
  ``d/dx_i = sum over windows of grad_out * y**(1-p) * x_i**(p-1)``; a window whose sum is
  not positive pools to a constant 0 and passes no gradient (PyTorch's rule for a zero sum);
* ``gem_pool``: ``grad_out * y**(1-p) / n * clip(x, eps)**(p-1)`` where ``x >= eps`` and 0
  below (PyTorch's ``clamp`` passes the gradient where ``x >= eps``), 0 where the mean is
  not positive.

NaN: under ``nan_policy="omit"`` NaN elements get zero gradient, averages divide by the
non-NaN count as the forward does, and a window of only NaNs (whose NaN result does not
depend on its elements) passes no gradient.  Under ``"propagate"`` an average's gradient
does not look at the values (as PyTorch's), so NaN inputs get finite gradients.

The work is done by two backend entry points, ``run_index_scatter`` (max/min) and
``run_window_grad`` (every window sum), which take small plans
(:class:`~numbapool._cpu.grad_kernels.ScatterPlan`,
:class:`~numbapool._cpu.grad_kernels.WindowGradPlan`).  On the CPU the per-element factors
of ``lp_pool``, ``gem_pool`` and ``"omit"`` are NumPy code here (:class:`_Host`); on CUDA
they are kernels of the CUDA backend (:class:`_Device`), and nothing large leaves the
device.  CUDA specifics: max/min gradients are added with atomics (where several outputs
share a winner the sum may differ in its last bits between runs); the window sums are a
gather, a thread per input element, and deterministic; given ``indices`` are checked on the
device, and the host waits for the verdict (not for the PyTorch integration's own saved
indices: :func:`_trusting_indices`).
"""

from __future__ import annotations

import contextlib
import contextvars
from math import prod
from typing import NamedTuple

import numpy as np

from .. import dispatch, geometry
from .. import spatial as fwd
from .._checks import averaging_dtypes, check_bool, check_extreme_dtype, check_out, check_positive_real
from .._typing import Array, Device, Layout, NanPolicy, Padding, Stream

#: The forward's names: every spatial pool and alias has its gradient here.
__all__ = list(fwd.__all__)

_GRAD_DTYPES = tuple(np.dtype(t) for t in (np.float16, np.float32, np.float64))
_F64 = np.dtype(np.float64)


# --------------------------------------------------------------------------- common steps


class Finish(NamedTuple):
    """What becomes of a gradient computed in its work dtype: rounded to ``dtype``, zero
    where ``nans`` (``x``, under ``"omit"``) is NaN, times ``power_of ** power`` when
    ``power_of`` is given (the CUDA backend's entry points apply it in their kernels)."""

    dtype: np.dtype
    nans: object = None
    power_of: object = None
    power: float = 1.0


def _plans():
    from .._cpu import grad_kernels  # the plan classes, shared by both backends
    return grad_kernels


def _setup(grad_out, x, device, stream):
    """``(steps, grad_out, x)``: the backend's gradient steps (:class:`_Host` or
    :class:`_Device`) and the arrays as that backend takes them (``grad_out`` follows
    ``x``: copied over if it lives elsewhere)."""
    backend, x = dispatch.resolve(x, device, stream=stream)
    on_cuda = not isinstance(x, np.ndarray)
    _, grad_out = dispatch.resolve(grad_out, "cuda" if on_cuda else "cpu", name="grad_out",
                                   stream=stream if on_cuda else None)
    dt = np.dtype(grad_out.dtype)
    if dt not in _GRAD_DTYPES:
        raise TypeError(f"grad_out has dtype {dt}; gradients accept float16, float32, float64")
    return (_Device if on_cuda else _Host)(backend), grad_out, x


def _check_grad(grad_out, shape, x, out, extra=()):
    """Check grad_out's shape and ``out=`` (the CUDA backend checks a device ``out``);
    returns ``(result dtype, work dtype)``."""
    if tuple(grad_out.shape) != tuple(shape):
        raise ValueError(f"grad_out has shape {tuple(grad_out.shape)}; the forward's output "
                         f"has shape {tuple(shape)}")
    dtype = np.dtype(grad_out.dtype)
    if out is not None and isinstance(x, np.ndarray):
        check_out(out, x.shape, dtype, (x, grad_out, *extra))
    return dtype, (np.dtype(np.float32) if dtype == np.float16 else dtype)


def _finish(res, dtype, out):
    """``res`` (computed in the work dtype) as the caller's result."""
    if res.dtype == dtype and (out is None or res is out):
        return res
    if out is None:
        return res.astype(dtype)
    out[...] = res
    return out


def _planes(lead):
    return prod(lead)


def _power_scale(y, p):
    """``y ** (1 - p)`` where the pooled ``y`` is positive, NaN where NaN, else 0."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.where(y > 0, y ** (1.0 - p), np.where(np.isnan(y), np.nan, 0.0))


class _Host:
    """The CPU steps: the CPU backend's entry points, the factors in NumPy."""

    def __init__(self, backend):
        self.backend = backend
        self.kernels = _plans()

    def indices(self, indices):
        return dispatch.host_array(indices, "indices")

    def _done(self, res, finish, out):
        if finish.nans is not None:
            np.copyto(res, 0, where=np.isnan(finish.nans))
        return _finish(res, finish.dtype, out)

    def scatter(self, plan, src, out, indices, finish, checked):
        if src.dtype != plan.dtype:
            src = src.astype(plan.dtype)
        res = self.kernels.run_index_scatter(plan, src, out if finish.dtype == plan.dtype
                                             else None, indices)
        return None if res is None else self._done(res, finish, out)

    def window(self, plan, coef, out, rows, cols, finish):
        if coef.dtype != plan.dtype:
            coef = coef.astype(plan.dtype)
        res = self.kernels.run_window_grad(plan, coef, out if finish.dtype == plan.dtype
                                           else None, rows, cols)
        return self._done(res, finish, out)

    def mean_coef(self, plan, grad_out, x, divisors, override, window_sums, layout):
        nans = window_sums(np.isnan(x).astype(np.float64))
        base = _outer(divisors).reshape([a.out_size for a in plan.axes])
        if layout == "channels_last":
            base = base[..., None]
        valid = np.broadcast_to(base, nans.shape) - nans  # the non-NaN taps (padded count)
        div = override if override else valid
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(valid > 0, grad_out / div, 0.0).astype(plan.dtype)

    def lp(self, plan, y_plan, grad_out, x, p, dtype, out):
        x64 = _as_float64(x)
        y = self.backend.run_spatial(y_plan, x64, None, y_plan.out_shape)
        with np.errstate(invalid="ignore", over="ignore"):
            coef = grad_out.astype(np.float64) * _power_scale(y, p)
        total = self.kernels.run_window_grad(plan, coef, None, *_unit_scales(plan.axes))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            res = total * (x64 ** (p - 1.0) if p != 1.0 else 1.0)
        return _finish(res, dtype, out)

    def gem(self, plan, y_plan, y_shape, grad_out, x, power, eps, out):
        x64 = _as_float64(x)
        y = self.backend.run_spatial(y_plan, x64, None, y_shape)
        size = prod(a.in_size for a in plan.axes)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            coef = grad_out.astype(np.float64).reshape(y_shape) * _power_scale(y, power) / size
            z = np.maximum(x64, eps)
            res = np.where(x64 >= eps, coef * (z ** (power - 1.0) if power != 1.0 else 1.0),
                           0.0)
        return _finish(res, plan.dtype, out)


class _Device:
    """The CUDA steps: the CUDA backend's entry points, through the dispatcher (which runs
    them on the call's stream and hands results back in the caller's array family)."""

    def __init__(self, backend):
        self.backend = backend
        self.kernels = _plans()

    def indices(self, indices):
        return dispatch.follow_to_cuda(indices, "indices")

    def scatter(self, plan, src, out, indices, finish, checked):
        return self.backend.run_index_scatter(plan, src, out, indices, finish, checked)

    def window(self, plan, coef, out, rows, cols, finish):
        return self.backend.run_window_grad(plan, coef, out, rows, cols, finish)

    def mean_coef(self, plan, grad_out, x, divisors, override, window_sums, layout):
        return self.backend.run_mean_coef(plan, grad_out, None, x, divisors, override)

    def lp(self, plan, y_plan, grad_out, x, p, dtype, out):
        y = self.backend.run_spatial(y_plan, x, None, y_plan.out_shape)
        coef = self.backend.run_lp_coef(None, grad_out, None, y, p)
        finish = Finish(dtype, power_of=x if p != 1.0 else None, power=p - 1.0)
        return self.backend.run_window_grad(plan, coef, out, *_unit_scales(plan.axes),
                                            finish)

    def gem(self, plan, y_plan, y_shape, grad_out, x, power, eps, out):
        y = self.backend.run_spatial(y_plan, x, None, y_shape)
        return self.backend.run_gem_grad(plan, x, out, grad_out, y, power, eps)


def _unit_scales(axes):
    return np.ones(prod(a.out_size for a in axes[:-1])), np.ones(axes[-1].out_size)


# --------------------------------------------------------------------------- max / min


#: Set while the ``indices`` given are the forward's own, unchanged (the PyTorch
#: integration's saved tensors): CUDA then skips their range check, whose verdict the host
#: would wait for.  The CPU kernels check as they go, at no extra cost, either way.
_INDICES_TRUSTED = contextvars.ContextVar("numbapool_grad_indices_trusted", default=False)


@contextlib.contextmanager
def _trusting_indices():
    """``with _trusting_indices():`` given indices are taken as the forward's own."""
    token = _INDICES_TRUSTED.set(True)
    try:
        yield
    finally:
        _INDICES_TRUSTED.reset(token)


def _check_indices(steps, indices, shape):
    if indices is None:
        return None
    indices = steps.indices(indices)
    if not hasattr(indices, "dtype") or np.dtype(indices.dtype).kind not in "iu":
        raise TypeError(f"indices must be an integer array (the forward's int64 indices); "
                        f"got dtype {getattr(indices, 'dtype', type(indices).__name__)}")
    if tuple(indices.shape) != tuple(shape):
        raise ValueError(f"indices has shape {tuple(indices.shape)}; the forward's output has "
                         f"shape {tuple(shape)}")
    return indices


def _scatter_grad(steps, grad_out, x, shape, winners_plan, in_spatial, out_spatial, indices,
                  omit, out):
    """Route ``grad_out`` to the winners: ``indices``, or those of ``winners_plan`` (the
    forward with ``return_indices``) run on ``x``."""
    indices = _check_indices(steps, indices, shape)
    dtype, work = _check_grad(grad_out, shape, x, out, () if indices is None else (indices,))
    checked = indices is None or _INDICES_TRUSTED.get()  # the forward's own are in range
    if indices is None:
        indices = steps.backend.run_spatial(winners_plan, x, None, winners_plan.out_shape)[1]
    lead, channels = winners_plan.lead_shape, winners_plan.channels
    plan = steps.kernels.ScatterPlan(_planes(lead), prod(in_spatial), prod(out_spatial),
                                     channels, tuple(x.shape), work, True)
    finish = Finish(dtype, nans=x if omit and x.dtype.kind == "f" else None)
    res = steps.scatter(plan, grad_out, out, indices, finish, checked)
    if res is None:
        raise ValueError(f"indices holds positions outside [0, {prod(in_spatial)}), the "
                         "flat spatial positions of a plane of x")
    return res


def _extreme_grad(reducer, grad_out, x, kernel_size, stride, padding, dilation, ceil_mode,
                  indices, nan_policy, layout, out, device, stream):
    steps, grad_out, x = _setup(grad_out, x, device, stream)
    fwd._common(x, layout, nan_policy)
    dtype = check_extreme_dtype(x)
    n = fwd._spatial_rank(kernel_size, x, "kernel_size")
    lead, channels, axes = fwd._sliding_axes(x, n, layout, kernel_size, stride, padding,
                                             dilation, ceil_mode)
    plan = fwd.SpatialPlan(reducer, axes, lead, channels, layout == "channels_last", dtype,
                           omit_nan=nan_policy == "omit", return_indices=True)
    return _scatter_grad(steps, grad_out, x, plan.out_shape, plan, plan.in_spatial,
                         plan.out_spatial, indices, nan_policy == "omit", out)


def max_pool(grad_out: Array, x: Array, kernel_size, stride=None, padding: Padding = 0,
             dilation=1, ceil_mode: bool = False, *, indices: Array | None = None,
             nan_policy: NanPolicy = "propagate", layout: Layout = "channels_first",
             out: Array | None = None, device: Device = None,
             stream: Stream = None) -> Array:
    """Gradient of :func:`numbapool.max_pool` with respect to ``x``.

    Each output's gradient goes to its window's winner; overlapping windows add up.

    Parameters
    ----------
    grad_out : array
        The gradient of the loss with respect to the pool's result: its exact shape, float.
        For CUDA ``x`` a host ``grad_out`` is copied to the device (and a CUDA one to the
        host for NumPy ``x``).
    x : array
        The pool's input.
    kernel_size, stride, padding, dilation, ceil_mode, nan_policy, layout
        As the forward takes them.
    indices : int array, optional
        The forward's ``return_indices`` (flat positions inside each plane's spatial
        extent); recomputed from ``x`` when omitted.  On CUDA, given indices are checked
        by a kernel whose one-byte verdict the host waits for.
    out : array, optional
        The result, shaped as ``x``, of ``grad_out``'s dtype.
    device : {None, "cpu", "cuda"}
        As the forward's.
    stream : stream, optional
        CUDA only: the stream to run on (a Numba, ``torch.cuda`` or CuPy stream).  ``None``
        means the current stream of the library ``x`` comes from (Numba device arrays: the
        default stream).  Nothing waits for the result: read it on that stream.

    Returns
    -------
    array
        Shaped as ``x``, in ``grad_out``'s dtype (float16 accumulated in float32).  Under
        ``nan_policy="omit"`` NaN elements get 0.  On CUDA the gradients of outputs that
        share a winner are added with atomics, in no fixed order: such sums may differ in
        their last bits from run to run.

    Raises
    ------
    TypeError
        A non-float ``grad_out``, a non-integer ``indices``, or the forward's type errors.
    ValueError
        ``grad_out`` or ``indices`` not of the forward's output shape, an index outside a
        plane (raised before anything is written), or the forward's value errors.

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> from numbapool import grad
    >>> x = np.array([[[1.0, 3.0, 2.0, 0.0, 5.0]]])
    >>> nbp.max_pool(x, (3,), stride=2)
    array([[[3., 5.]]])
    >>> grad.max_pool(np.ones((1, 1, 2)), x, (3,), stride=2)
    array([[[0., 1., 0., 0., 1.]]])
    """
    return _extreme_grad("max", grad_out, x, kernel_size, stride, padding, dilation,
                         ceil_mode, indices, nan_policy, layout, out, device, stream)


def min_pool(grad_out: Array, x: Array, kernel_size, stride=None, padding: Padding = 0,
             dilation=1, ceil_mode: bool = False, *, indices: Array | None = None,
             nan_policy: NanPolicy = "propagate", layout: Layout = "channels_first",
             out: Array | None = None, device: Device = None,
             stream: Stream = None) -> Array:
    """Gradient of :func:`numbapool.min_pool`: :func:`max_pool`'s rules with the minimum.

    Examples
    --------
    >>> import numpy as np
    >>> from numbapool import grad
    >>> x = np.array([[4, 1, 1, 7]], dtype=np.int16)  # integer x, float gradient
    >>> grad.min_pool(np.array([[1.0, 2.0, 3.0]]), x, (2,), stride=1)
    array([[0., 3., 3., 0.]])
    """
    return _extreme_grad("min", grad_out, x, kernel_size, stride, padding, dilation,
                         ceil_mode, indices, nan_policy, layout, out, device, stream)


def adaptive_max_pool(grad_out: Array, x: Array, output_size, *, indices: Array | None = None,
                      nan_policy: NanPolicy = "propagate", layout: Layout = "channels_first",
                      out: Array | None = None, device: Device = None,
                      stream: Stream = None) -> Array:
    """Gradient of :func:`numbapool.adaptive_max_pool` (rules of :func:`max_pool`).

    Examples
    --------
    >>> import numpy as np
    >>> from numbapool import grad
    >>> x = np.array([[[2.0, 1.0, 4.0]]])
    >>> grad.adaptive_max_pool(np.array([[[1.0, 1.0]]]), x, 2)
    array([[[1., 0., 1.]]])
    """
    steps, grad_out, x = _setup(grad_out, x, device, stream)
    fwd._common(x, layout, nan_policy)
    dtype = check_extreme_dtype(x)
    lead, channels, axes = fwd._adaptive_axes(x, output_size, layout)
    plan = fwd.SpatialPlan("max", axes, lead, channels, layout == "channels_last", dtype,
                           omit_nan=nan_policy == "omit", return_indices=True)
    return _scatter_grad(steps, grad_out, x, plan.out_shape, plan, plan.in_spatial,
                         plan.out_spatial, indices, nan_policy == "omit", out)


def global_max_pool(grad_out: Array, x: Array, spatial_dims: int | None = None, *,
                    keepdims: bool = False, indices: Array | None = None,
                    nan_policy: NanPolicy = "propagate", layout: Layout = "channels_first",
                    out: Array | None = None, device: Device = None,
                    stream: Stream = None) -> Array:
    """Gradient of :func:`numbapool.global_max_pool` (rules of :func:`max_pool`).

    ``indices``, when given, are shaped as the forward's result and hold each plane's
    winner as a flat row-major position in its spatial extent (the first maximum; under
    ``"propagate"`` the first NaN): those of ``adaptive_max_pool(x, (1,) * N,
    return_indices=True)``, reshaped.

    Examples
    --------
    >>> import numpy as np
    >>> from numbapool import grad
    >>> x = np.array([[[1.0, 5.0], [5.0, 2.0]]])  # one plane; the first 5 wins
    >>> grad.global_max_pool(np.array([2.0]), x, 2)
    array([[[0., 2.],
            [0., 0.]]])
    """
    steps, grad_out, x = _setup(grad_out, x, device, stream)
    fwd._common(x, layout, nan_policy)
    dtype = check_extreme_dtype(x)
    lead, channels, _, shape = fwd._global_axes(x, spatial_dims, layout, keepdims)
    n = x.ndim - len(lead) - (layout == "channels_last")
    # the winners of an adaptive pool to one position per plane
    axes = fwd._adaptive_axes(x, (1,) * n, layout)[2]
    plan = fwd.SpatialPlan("max", axes, lead, channels, layout == "channels_last", dtype,
                           omit_nan=nan_policy == "omit", return_indices=True)
    return _scatter_grad(steps, grad_out, x, shape, plan, plan.in_spatial, (1,), indices,
                         nan_policy == "omit", out)


# --------------------------------------------------------------------------- window sums


def _outer(vectors):
    """The outer product of 1-D arrays, raveled (``[1.0]`` for none)."""
    res = np.ones(1)
    for v in vectors:
        res = np.multiply.outer(res, v).reshape(-1)
    return res


def _window_plan(steps, axes, lead, channels, x, dtype):
    return steps.kernels.WindowGradPlan(tuple(axes), _planes(lead), channels, tuple(x.shape),
                                        dtype)


def _mean_grad(steps, grad_out, x, axes, lead, channels, layout, divisors, override, omit,
               window_sums, shape, out):
    """Gradient of a mean over ``axes``'s windows: per-axis ``divisors`` (products over the
    axes) or ``override``; under ``omit`` (float x) the divisors lose each window's NaNs
    (on the CPU ``window_sums(m)`` sums ``m``, shaped as ``x``, over each window, to count
    them)."""
    dtype, work = _check_grad(grad_out, shape, x, out)
    plan = _window_plan(steps, axes, lead, channels, x, work)
    omit = omit and x.dtype.kind == "f"
    if omit:
        coef = steps.mean_coef(plan, grad_out, x, divisors, override, window_sums, layout)
        rows, cols = _unit_scales(axes)
    else:
        coef = grad_out
        if override:
            rows, cols = np.full(prod(a.out_size for a in axes[:-1]), 1.0 / override), \
                np.ones(axes[-1].out_size)
        else:
            rows, cols = 1.0 / _outer(divisors[:-1]), 1.0 / divisors[-1]
    return steps.window(plan, coef, out, rows, cols, Finish(dtype, nans=x if omit else None))


def avg_pool(grad_out: Array, x: Array, kernel_size, stride=None, padding: Padding = 0,
             ceil_mode: bool = False, count_include_pad: bool = True,
             divisor_override: float | None = None, *, dilation=1,
             nan_policy: NanPolicy = "propagate", layout: Layout = "channels_first",
             out: Array | None = None, device: Device = None,
             stream: Stream = None) -> Array:
    """Gradient of :func:`numbapool.avg_pool` with respect to ``x``.

    Every in-bounds element of a window receives ``grad_out / divisor`` (the forward's
    divisor), summed over the windows that hold it.

    Parameters
    ----------
    grad_out : array
        The gradient with respect to the pool's result: its exact shape, float.
    x : array
        The pool's input (read for its shape, and for NaNs under ``"omit"``).
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, dilation
        As the forward takes them.
    nan_policy, layout, device, stream
        As the forward takes them.
    out : array, optional
        The result, shaped as ``x``, of ``grad_out``'s dtype.

    Returns
    -------
    array
        Shaped as ``x``, in ``grad_out``'s dtype (float16 accumulated in float32).  On CUDA
        a thread per element sums its windows in order: the result is deterministic.

    Raises
    ------
    TypeError, ValueError
        As :func:`max_pool`'s.

    Examples
    --------
    >>> import numpy as np
    >>> from numbapool import grad
    >>> grad.avg_pool(np.array([[[4.0, 8.0]]]), np.zeros((1, 1, 3)), (2,), stride=1)
    array([[[2., 6., 4.]]])
    >>> grad.avg_pool(np.ones((1, 1, 2)), np.zeros((1, 1, 4)), (3,), stride=2, padding=1)
    array([[[0.33333333, 0.66666667, 0.33333333, 0.33333333]]])
    """
    steps, grad_out, x = _setup(grad_out, x, device, stream)
    fwd._common(x, layout, nan_policy)
    averaging_dtypes(x)
    n = fwd._spatial_rank(kernel_size, x, "kernel_size")
    lead, channels, axes = fwd._sliding_axes(x, n, layout, kernel_size, stride, padding,
                                             dilation, ceil_mode)
    include_pad = check_bool(count_include_pad, "count_include_pad")
    override = _check_override(divisor_override)
    shape = fwd.SpatialPlan("sum", axes, lead, channels, layout == "channels_last",
                            _F64).out_shape
    divisors = [a.arrays()[2 if include_pad else 1].astype(np.float64) for a in axes]

    def window_sums(m):
        return fwd.avg_pool(m, kernel_size, stride, padding, ceil_mode, divisor_override=1,
                            dilation=dilation, layout=layout)

    return _mean_grad(steps, grad_out, x, axes, lead, channels, layout, divisors, override,
                      nan_policy == "omit", window_sums, shape, out)


def _check_override(divisor_override):
    if divisor_override is None:
        return 0.0
    if isinstance(divisor_override, (bool, np.bool_)) or not isinstance(
            divisor_override, (int, float, np.integer, np.floating)):
        raise TypeError(f"divisor_override must be a number or None; got {divisor_override!r}")
    override = float(divisor_override)
    if override == 0 or not np.isfinite(override):
        raise ValueError(f"divisor_override must be finite and non-zero; got {divisor_override!r}")
    return override


def adaptive_avg_pool(grad_out: Array, x: Array, output_size, *,
                      nan_policy: NanPolicy = "propagate", layout: Layout = "channels_first",
                      out: Array | None = None, device: Device = None,
                      stream: Stream = None) -> Array:
    """Gradient of :func:`numbapool.adaptive_avg_pool` (rules of :func:`avg_pool`).

    Examples
    --------
    >>> import numpy as np
    >>> from numbapool import grad
    >>> grad.adaptive_avg_pool(np.array([[[6.0, 6.0]]]), np.zeros((1, 1, 3)), 2)
    array([[[3., 6., 3.]]])
    """
    steps, grad_out, x = _setup(grad_out, x, device, stream)
    fwd._common(x, layout, nan_policy)
    averaging_dtypes(x)
    lead, channels, axes = fwd._adaptive_axes(x, output_size, layout)
    shape = fwd.SpatialPlan("sum", axes, lead, channels, layout == "channels_last",
                            _F64).out_shape
    divisors = [a.arrays()[1].astype(np.float64) for a in axes]

    def window_sums(m):
        counts = [a.arrays()[1] for a in axes]
        size = _outer(counts).reshape([a.out_size for a in axes])
        means = fwd.adaptive_avg_pool(m, output_size, layout=layout)
        return np.rint(means * (size[..., None] if layout == "channels_last" else size))

    return _mean_grad(steps, grad_out, x, axes, lead, channels, layout, divisors, 0.0,
                      nan_policy == "omit", window_sums, shape, out)


def _global_full_axes(x, spatial_dims, layout, keepdims):
    lead, channels, _, shape = fwd._global_axes(x, spatial_dims, layout, keepdims)
    n = x.ndim - len(lead) - (layout == "channels_last")
    spatial = tuple(x.shape[len(lead):len(lead) + n])
    return lead, channels, tuple(geometry.full_axis(L) for L in spatial), shape


def global_avg_pool(grad_out: Array, x: Array, spatial_dims: int | None = None, *,
                    keepdims: bool = False, nan_policy: NanPolicy = "propagate",
                    layout: Layout = "channels_first", out: Array | None = None,
                    device: Device = None, stream: Stream = None) -> Array:
    """Gradient of :func:`numbapool.global_avg_pool`: ``grad_out / count`` on every element
    of its plane (under ``"omit"``, the non-NaN count, and 0 on NaNs).

    Examples
    --------
    >>> import numpy as np
    >>> from numbapool import grad
    >>> grad.global_avg_pool(np.array([[4.0]]), np.zeros((1, 1, 2, 2)))
    array([[[[1., 1.],
             [1., 1.]]]])
    """
    steps, grad_out, x = _setup(grad_out, x, device, stream)
    fwd._common(x, layout, nan_policy)
    averaging_dtypes(x)
    lead, channels, axes, shape = _global_full_axes(x, spatial_dims, layout, keepdims)
    divisors = [np.array([float(a.in_size)]) for a in axes]
    n = len(axes)

    def window_sums(m):
        first = len(lead)
        return m.sum(axis=tuple(range(first, first + n))).reshape(
            lead + (1,) * n + ((channels,) if layout == "channels_last" else ()))

    _check_grad(grad_out, shape, x, None)
    keep = _keep_shape(lead, n, channels, layout)  # the same values, spatial axes of size 1
    return _mean_grad(steps, grad_out.reshape(keep), x, axes, lead, channels, layout,
                      divisors, 0.0, nan_policy == "omit", window_sums, keep, out)


def _keep_shape(lead, n, channels, layout):
    return tuple(lead) + (1,) * n + ((channels,) if layout == "channels_last" else ())


# --------------------------------------------------------------------------- powers


def _as_float64(x):
    return x if x.dtype == np.float64 else x.astype(np.float64)


def lp_pool(grad_out: Array, x: Array, norm_type: float, kernel_size, stride=None,
            ceil_mode: bool = False, *, layout: Layout = "channels_first",
            out: Array | None = None, device: Device = None,
            stream: Stream = None) -> Array:
    """Gradient of :func:`numbapool.lp_pool` with respect to ``x``.

    With ``S`` a window's sum of ``x**p`` and ``y = S**(1/p)`` its result, element ``i``
    receives ``grad_out * y**(1-p) * x_i**(p-1)`` from each window holding it; a window
    whose sum is not positive (its result is the constant 0) passes nothing, as PyTorch's
    lp_pool passes nothing where the sum is 0.  Computed in float64.

    Examples
    --------
    >>> import numpy as np
    >>> from numbapool import grad
    >>> x = np.array([[3.0, 4.0, 0.0, 0.0]])
    >>> grad.lp_pool(np.array([[1.0, 1.0]]), x, 2, (2,))  # d|v|/dv = v/|v|; 0 at v = 0
    array([[0.6, 0.8, 0. , 0. ]])
    """
    steps, grad_out, x = _setup(grad_out, x, device, stream)
    fwd._common(x, layout)
    averaging_dtypes(x)
    p = check_positive_real(norm_type, "norm_type")
    n = fwd._spatial_rank(kernel_size, x, "kernel_size")
    lead, channels, axes = fwd._sliding_axes(x, n, layout, kernel_size, stride, 0, 1, ceil_mode)
    # the forward in float64 (as for float64 x), for its pooled values
    y_plan = fwd.SpatialPlan("sum", axes, lead, channels, layout == "channels_last", _F64,
                             acc_dtype=_F64, transform="power", power=p, finish="root_sum")
    dtype, _ = _check_grad(grad_out, y_plan.out_shape, x, out)
    plan = _window_plan(steps, axes, lead, channels, x, _F64)
    return steps.lp(plan, y_plan, grad_out, x, p, dtype, out)


def gem_pool(grad_out: Array, x: Array, p: float = 3.0, eps: float = 1e-6,
             spatial_dims: int | None = None, *, keepdims: bool = False,
             layout: Layout = "channels_first", out: Array | None = None,
             device: Device = None, stream: Stream = None) -> Array:
    """Gradient of :func:`numbapool.gem_pool` with respect to ``x``.

    With ``z = clip(x, eps)``, ``n`` the plane's size and ``y`` the result, element ``i``
    receives ``grad_out * y**(1-p) / n * z_i**(p-1)`` where ``x_i >= eps`` and 0 below
    (PyTorch's clamp passes the gradient where ``x >= eps``); 0 where the mean of
    ``z**p`` is not positive.  Computed in float64.

    Examples
    --------
    >>> import numpy as np
    >>> from numbapool import grad
    >>> x = np.array([[[1.0, 2.0, 3.0, 0.0]]])
    >>> grad.gem_pool(np.array([[4.0]]), x, p=1.0, spatial_dims=1)  # a mean above eps
    array([[[1., 1., 1., 0.]]])
    """
    steps, grad_out, x = _setup(grad_out, x, device, stream)
    fwd._common(x, layout)
    averaging_dtypes(x)
    power = check_positive_real(p, "p")
    eps = check_positive_real(eps, "eps", allow_zero=True)
    lead, channels, axes, shape = _global_full_axes(x, spatial_dims, layout, keepdims)
    dtype, _ = _check_grad(grad_out, shape, x, out)
    # the forward in float64 with keepdims, for its pooled values
    _, _, rows, y_shape = fwd._global_axes(x, len(axes), layout, True)
    y_plan = fwd.SpatialPlan("sum", rows, lead, channels, layout == "channels_last", _F64,
                             acc_dtype=_F64, transform="clip_power", power=power, eps=eps,
                             finish="root_mean")
    plan = _window_plan(steps, axes, lead, channels, x, dtype)
    return steps.gem(plan, y_plan, y_shape, grad_out, x, power, eps, out)


# --------------------------------------------------------------------------- fixed-rank aliases


def _alias(func, rank):
    alias = fwd._fixed_rank(func, rank)
    alias.__doc__ = (alias.__doc__ or "").replace(f":func:`numbapool.{func.__name__}`",
                                                  f":func:`numbapool.grad.{func.__name__}`")
    return alias


max_pool1d = _alias(max_pool, 1)
max_pool2d = _alias(max_pool, 2)
max_pool3d = _alias(max_pool, 3)
min_pool1d = _alias(min_pool, 1)
min_pool2d = _alias(min_pool, 2)
min_pool3d = _alias(min_pool, 3)
avg_pool1d = _alias(avg_pool, 1)
avg_pool2d = _alias(avg_pool, 2)
avg_pool3d = _alias(avg_pool, 3)
lp_pool1d = _alias(lp_pool, 1)
lp_pool2d = _alias(lp_pool, 2)
lp_pool3d = _alias(lp_pool, 3)
adaptive_max_pool1d = _alias(adaptive_max_pool, 1)
adaptive_max_pool2d = _alias(adaptive_max_pool, 2)
adaptive_max_pool3d = _alias(adaptive_max_pool, 3)
adaptive_avg_pool1d = _alias(adaptive_avg_pool, 1)
adaptive_avg_pool2d = _alias(adaptive_avg_pool, 2)
adaptive_avg_pool3d = _alias(adaptive_avg_pool, 3)
global_max_pool1d = _alias(global_max_pool, 1)
global_max_pool2d = _alias(global_max_pool, 2)
global_max_pool3d = _alias(global_max_pool, 3)
global_avg_pool1d = _alias(global_avg_pool, 1)
global_avg_pool2d = _alias(global_avg_pool, 2)
global_avg_pool3d = _alias(global_avg_pool, 3)
gem_pool1d = _alias(gem_pool, 1)
gem_pool2d = _alias(gem_pool, 2)
gem_pool3d = _alias(gem_pool, 3)
