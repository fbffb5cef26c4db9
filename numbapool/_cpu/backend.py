"""The CPU backend: allocates results, canonicalises memory layout, runs the kernels."""

from __future__ import annotations

import numpy as np

from .._checks import check_out
from . import spatial as _spatial


def _canonical_input(x, plan):
    """C-contiguous ``(planes, rows, row_length)`` view of ``x`` (copying only if strided)."""
    return np.ascontiguousarray(x).reshape(plan.canonical_in_shape)


def _result(out, shape, dtype, inputs, name):
    """A C-contiguous array to compute into, and the array handed back to the caller."""
    if out is None:
        arr = np.empty(shape, dtype)
        return arr, arr
    check_out(out, shape, dtype, inputs, name)
    if out.flags.c_contiguous:
        return out, out
    return np.empty(shape, dtype), out


def run_spatial(plan, x, out, result_shape):
    """Pool ``x`` according to ``plan``; returns the result(s) shaped ``result_shape``."""
    if plan.return_indices:
        if out is None:
            out_v = out_i = None
        elif isinstance(out, tuple) and len(out) == 2:
            out_v, out_i = out
        else:
            raise TypeError("with return_indices=True, out must be a (values, indices) pair")
        work_v, ret_v = _result(out_v, result_shape, plan.out_dtype, (x,), "out[0]")
        work_i, ret_i = _result(out_i, result_shape, np.dtype(np.int64), (x, ret_v), "out[1]")
    else:
        work_v, ret_v = _result(out, result_shape, plan.out_dtype, (x,), "out")
        work_i = ret_i = None
    xc = _canonical_input(x, plan)
    vc = work_v.reshape(plan.canonical_out_shape)
    ic = None if work_i is None else work_i.reshape(plan.canonical_out_shape)
    _spatial.run(plan, xc, vc, ic)
    if work_v is not ret_v:
        ret_v[...] = work_v
    if work_i is not ret_i:
        ret_i[...] = work_i
    return (ret_v, ret_i) if plan.return_indices else ret_v
