"""Runs a :class:`~numbapool.plan.SpatialPlan` with the CPU kernels."""

from ..plan import FINISHES, TRANSFORMS
from . import windows
from .half import as_kernel_array
from .parallel import chunks_for, run_parallel, use_parallel


def run(plan, x, out, indices=None):
    """Pool ``x`` into ``out`` (and ``indices``); all C-contiguous, in canonical shapes."""
    if out.size == 0:
        return
    t = plan.tables
    geo = (t["o_first"], t["o_count"], t["o_step"], t["ishape"], t["oshape"],
           t["l_first"], t["l_count"], t["l_step"], t["l_uniform"])
    if _is_plain_global_mean(plan):
        planes = x.shape[0]
        flat = (as_kernel_array(x.reshape(planes, -1)), as_kernel_array(out.reshape(planes)))
        zero = plan.acc_dtype.type(0)
        if use_parallel(x.size, planes):
            run_parallel(windows.plane_mean_parallel, *flat, chunks_for(planes), zero)
        else:
            windows.plane_mean_tasks(*flat, 0, planes, zero)
        return
    arrays = (as_kernel_array(x), as_kernel_array(out))
    if plan.reducer in ("max", "min"):
        params = (geo, plan.channels, plan.reducer == "min", plan.omit_nan)
        if plan.return_indices:
            arrays += (indices,)
            serial, parallel = windows.extreme_indexed_tasks, windows.extreme_indexed_parallel
        else:
            serial, parallel = windows.extreme_tasks, windows.extreme_parallel
    else:
        params = (geo, t["o_div"], t["l_div"], plan.channels, plan.acc_dtype.type(0),
                  TRANSFORMS[plan.transform], float(plan.power), float(plan.eps),
                  FINISHES[plan.finish], plan.omit_nan, float(plan.divisor_override))
        serial, parallel = windows.sum_tasks, windows.sum_parallel
    n_tasks = out.shape[0] * out.shape[1]
    if use_parallel(x.size, n_tasks):
        run_parallel(parallel, *arrays, chunks_for(n_tasks), *params)
    else:
        serial(*arrays, 0, n_tasks, *params)


def _is_plain_global_mean(plan):
    """A mean of whole channels-first planes (global or adaptive-to-1 average pooling)."""
    return (plan.reducer == "sum" and plan.transform == "identity" and plan.finish == "mean"
            and not plan.omit_nan and plan.channels == 1 and plan.divisor_override == 0.0
            and all(a.out_size == 1 and a.count[0] == a.in_size == a.padded_count[0]
                    for a in plan.axes))

