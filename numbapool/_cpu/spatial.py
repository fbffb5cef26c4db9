"""Runs a :class:`~numbapool.plan.SpatialPlan` with the CPU kernels."""

import numpy as np

from ..plan import FINISHES, TRANSFORMS
from . import windows
from .half import as_kernel_array
from .parallel import chunks_for, run_parallel, use_parallel


def run(plan, x, out, indices=None):
    """Pool ``x`` into ``out`` (and ``indices``); all three C-contiguous, canonical shapes."""
    if out.size == 0:
        return
    t = plan.tables
    xk = as_kernel_array(x)
    ok = as_kernel_array(out)
    n_tasks = out.shape[0] * out.shape[1]
    parallel = use_parallel(x.size, n_tasks)
    geometry = (t["o_first"], t["o_count"], t["o_step"])
    shapes = (t["ishape"], t["oshape"], t["l_first"], t["l_count"], t["l_step"])
    if plan.reducer in ("max", "min"):
        flags = (plan.channels, plan.reducer == "min", plan.omit_nan)
        if plan.return_indices:
            arrays = (xk, ok, indices)
            serial_k, parallel_k = windows.extreme_indexed_tasks, windows.extreme_indexed_parallel
        else:
            arrays = (xk, ok)
            serial_k, parallel_k = windows.extreme_tasks, windows.extreme_parallel
        tail = geometry + shapes + flags
    else:
        arrays = (xk, ok)
        serial_k, parallel_k = windows.sum_tasks, windows.sum_parallel
        tail = geometry + (t["o_div"],) + shapes[:-1] + (t["l_step"], t["l_div"]) + (
            plan.channels,
            plan.acc_dtype.type(0),
            TRANSFORMS[plan.transform],
            float(plan.power),
            float(plan.eps),
            FINISHES[plan.finish],
            plan.omit_nan,
            float(plan.divisor_override),
        )
    if parallel:
        run_parallel(parallel_k, *arrays, chunks_for(n_tasks), *tail)
    else:
        serial_k(*arrays, 0, n_tasks, *tail)
