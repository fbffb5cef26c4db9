"""The CUDA backend: allocates device results, moves plan tables over, launches kernels.

Inputs arrive as Numba device arrays (the dispatcher wraps CuPy/torch arrays without a
copy); results are Numba device arrays, which the dispatcher hands back in the caller's
family.
"""

from __future__ import annotations

import numpy as np

from ..plan import FINISHES, TRANSFORMS
from . import compat
from . import spatial as _spatial


def contiguous(x):
    """A C-contiguous device array with ``x``'s values.

    Numba device arrays have no device-side strided copy; the rare strided Numba input
    takes a trip through the host (CuPy and torch inputs are made contiguous on the device
    by the dispatcher).
    """
    if x.is_c_contiguous():
        return x
    return compat.to_device(x.copy_to_host())


def _device_range(a):
    """(start, end) byte addresses of a device array, for overlap checks."""
    if compat.simulator():
        host = a._ary if hasattr(a, "_ary") else np.asarray(a)
        start = host.__array_interface__["data"][0]
    else:
        start = a.__cuda_array_interface__["data"][0]
    return start, start + a.size * a.dtype.itemsize


def check_out(out, shape, dtype, inputs, name):
    """Validate a preallocated device result (family, shape, dtype, no overlap)."""
    if not compat.is_device_array(out):
        raise TypeError(f"{name} must be a CUDA array like the input; got {type(out).__name__}")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(out.shape)}; expected {tuple(shape)}")
    if np.dtype(out.dtype) != np.dtype(dtype):
        raise TypeError(f"{name} has dtype {np.dtype(out.dtype)}; expected {np.dtype(dtype)}")
    if not out.is_c_contiguous():
        raise ValueError(f"{name} must be C-contiguous on the device")
    o0, o1 = _device_range(out)
    for a in inputs:
        a0, a1 = _device_range(a)
        if a0 < o1 and o0 < a1:
            raise ValueError(f"{name} overlaps an input; pass a separate array")
    return out


def _result(out, shape, dtype, inputs, name):
    if out is None:
        return compat.device_empty(shape, dtype)
    return check_out(out, shape, dtype, inputs, name)


def _tables_on_device(plan):
    t = plan.tables
    to = compat.to_device
    return dict(o_first=to(t["o_first"]), o_count=to(t["o_count"]), o_step=to(t["o_step"]),
                ishape=to(t["ishape"]), oshape=to(t["oshape"]), l_first=to(t["l_first"]),
                l_count=to(t["l_count"]), l_step=t["l_step"], o_div=to(t["o_div"]),
                l_div=to(t["l_div"]))


def run_spatial(plan, x, out, result_shape):
    """Pool device array ``x`` according to ``plan``; device result(s) shaped ``result_shape``."""
    if plan.ndim - 1 > _spatial.MAX_OUTER_AXES:
        raise ValueError(f"the CUDA kernels pool at most {_spatial.MAX_OUTER_AXES + 1} spatial "
                         f"dimensions; got {plan.ndim}")
    if plan.return_indices:
        if out is not None and not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError("with return_indices=True, out must be a (values, indices) pair")
        out_v, out_i = out if out is not None else (None, None)
        values = _result(out_v, result_shape, plan.out_dtype, (x,), "out[0]")
        indices = _result(out_i, result_shape, np.int64, (x, values), "out[1]")
    else:
        values = _result(out, result_shape, plan.out_dtype, (x,), "out")
        indices = None
    if values.size:
        xc = contiguous(x).reshape(plan.canonical_in_shape)
        vc = values.reshape(plan.canonical_out_shape)
        t = _tables_on_device(plan)
        geo = (t["o_first"], t["o_count"], t["o_step"], t["ishape"], t["oshape"],
               t["l_first"], t["l_count"], t["l_step"])
        if plan.reducer in ("max", "min"):
            ic = vc if indices is None else indices.reshape(plan.canonical_out_shape)
            compat.launch(_spatial.extreme_kernel, vc.size, xc, vc, ic, *geo, plan.channels,
                          plan.reducer == "min", plan.omit_nan, indices is not None)
        else:
            compat.launch(_spatial.sum_kernel, vc.size, xc, vc, *geo, t["o_div"], t["l_div"],
                          plan.channels, plan.acc_dtype.type(0), TRANSFORMS[plan.transform],
                          float(plan.power), float(plan.eps), FINISHES[plan.finish],
                          plan.omit_nan, float(plan.divisor_override))
    return (values, indices) if plan.return_indices else values
