"""Runs a :class:`~numbapool.plan.SpatialPlan` with the CPU kernels."""

from __future__ import annotations

import numpy as np

from ..plan import FINISHES, TRANSFORMS
from . import window_kernels as kernels
from .half import as_kernel_array
from .parallel import chunks_for, run_parallel, use_parallel
from .results import hand_back, result_arrays


def run_spatial(plan, x, out, result_shape):
    """Pool ``x`` according to ``plan``; returns the result(s) shaped ``result_shape``."""
    out_v, out_i = plan.split_out(out)
    names = ("out[0]", "out[1]") if plan.return_indices else ("out", None)
    work_v, ret_v = result_arrays(out_v, result_shape, plan.out_dtype, (x,), names[0])
    work_i = ret_i = None
    if plan.return_indices:
        work_i, ret_i = result_arrays(out_i, result_shape, np.dtype(np.int64), (x, ret_v),
                                      names[1])
    # the kernels' canonical (planes, rows, row_length) views; only a strided x is copied
    xc = np.ascontiguousarray(x).reshape(plan.canonical_in_shape)
    vc = work_v.reshape(plan.canonical_out_shape)
    ic = None if work_i is None else work_i.reshape(plan.canonical_out_shape)
    _run_kernels(plan, xc, vc, ic)
    hand_back(work_v, ret_v)
    if work_i is not None:
        hand_back(work_i, ret_i)
    return (ret_v, ret_i) if plan.return_indices else ret_v


def _run_kernels(plan, x, out, indices=None):
    """Pool ``x`` into ``out`` (and ``indices``); all C-contiguous, in canonical shapes."""
    if out.size == 0:
        return
    if _is_plain_global_mean(plan):
        planes = x.shape[0]
        flat = (as_kernel_array(x.reshape(planes, -1)), as_kernel_array(out.reshape(planes)))
        zero = plan.acc_dtype.type(0)
        if use_parallel(x.size, planes):
            run_parallel(kernels.plane_mean_parallel, *flat, chunks_for(planes), zero)
        else:
            kernels.plane_mean_tasks(*flat, 0, planes, zero)
        return
    arrays = (as_kernel_array(x), as_kernel_array(out))
    tables = plan.tables
    if plan.reducer in ("max", "min"):
        params = (tables, plan.channels, plan.reducer == "min", plan.omit_nan)
        if plan.return_indices:
            arrays += (indices,)
            serial, parallel = kernels.extreme_indexed_tasks, kernels.extreme_indexed_parallel
        else:
            serial, parallel = kernels.extreme_tasks, kernels.extreme_parallel
    else:
        params = (tables, plan.channels, plan.acc_dtype.type(0), TRANSFORMS[plan.transform],
                  float(plan.power), float(plan.eps), FINISHES[plan.finish], plan.omit_nan,
                  float(plan.divisor_override))
        serial, parallel = kernels.sum_tasks, kernels.sum_parallel
    # a task is an output row, or a part of a long one (see window_kernels.row_layout)
    n_tasks = kernels.task_count(x.shape, out.shape, tables.buffer, plan.channels)
    if use_parallel(x.size, n_tasks):
        run_parallel(parallel, *arrays, chunks_for(n_tasks), *params)
    else:
        serial(*arrays, 0, n_tasks, *params)


def _is_plain_global_mean(plan):
    """A mean of whole channels-first planes (global or adaptive-to-1 average pooling)."""
    return (plan.reducer == "sum" and plan.transform == "identity" and plan.finish == "mean"
            and not plan.omit_nan and plan.channels == 1 and plan.divisor_override == 0.0
            and all(a.out_size == 1 and a.window(0)[1:] == (a.in_size, a.in_size)
                    for a in plan.axes))
