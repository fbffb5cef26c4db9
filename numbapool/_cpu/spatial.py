"""Runs a :class:`~numbapool.plan.SpatialPlan` with the CPU kernels."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ..plan import FINISHES, TRANSFORMS
from . import plane_kernels
from . import window_kernels as kernels
from .half import as_kernel_array
from .parallel import cuts, run_split, thread_count, use_parallel
from .results import hand_back, result_arrays
from .specialise import UNROLLED_INDEXED, UNROLLED_WINDOWS, uniform_loop, window_code


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


class _Launch(NamedTuple):
    """A kernel family chosen for a plan: its entry point (``kernel(*arrays, t0, t1,
    *params, *scratch())`` runs tasks ``[t0, t1)``), its arguments, the number of tasks
    and the maker of a range's scratch arrays."""

    name: str
    kernel: object
    arrays: tuple
    params: tuple
    n_tasks: int
    scratch: Callable[[], tuple] = tuple


def _run_kernels(plan, x, out, indices=None):
    """Pool ``x`` into ``out`` (and ``indices``); all C-contiguous, in canonical shapes."""
    if out.size == 0:
        return
    launch = _choose(plan, x, out, indices)
    n = launch.n_tasks
    if use_parallel(x.size, n):
        run_split(launch.kernel, launch.arrays, cuts(n, min(n, thread_count())), launch.params,
                  launch.scratch)
    else:
        launch.kernel(*launch.arrays, 0, n, *launch.params, *launch.scratch())


def _kernel_name(plan):
    """The kernel family that runs ``plan`` (see :func:`kernel_path`)."""
    if _is_global(plan):
        if plan.reducer in ("max", "min"):
            return "plane_extreme" if plan.channels == 1 else "pixel_extreme"
        if (plan.transform == "identity" and plan.finish == "mean" and not plan.omit_nan
                and plan.channels == 1 and plan.divisor_override == 0.0):
            return "plane_mean"
    if plan.reducer in ("max", "min"):
        return "windows_indexed" if plan.return_indices else "windows_extreme"
    return "windows_sum"


def _choose(plan, x, out, indices):
    """The kernels that run ``plan`` on canonical ``x``/``out``, and their arguments."""
    name = _kernel_name(plan)
    planes = x.shape[0]
    flags = (plan.reducer == "min", plan.omit_nan)
    if name in ("plane_extreme", "plane_mean"):
        arrays = _kernel_arrays(x.reshape(planes, -1), out.reshape(planes))
        if name == "plane_mean":
            return _Launch(name, plane_kernels.plane_mean_tasks, arrays,
                           (plan.acc_dtype.type(0),), planes)
        return _Launch(name, plane_kernels.plane_extreme_tasks, arrays, flags, planes)
    if name == "pixel_extreme":
        arrays = _kernel_arrays(x.reshape(planes, -1, plan.channels),
                                out.reshape(planes, plan.channels))
        return _Launch(name, plane_kernels.pixel_extreme_tasks, arrays, flags, planes)
    tables = plan.tables
    # a task is an output row, or a part of a long one (see window_kernels.row_layout)
    n_tasks = kernels.task_count(x.shape, out.shape, tables.buffer, plan.channels)
    arrays = _kernel_arrays(x, out)
    # each kernel is compiled for its window code (and the sums for their NaN rule), so
    # that a call compiles only the loops it runs
    last = plan.axes[-1]
    shapes = UNROLLED_INDEXED if name == "windows_indexed" else UNROLLED_WINDOWS
    window = window_code(last.run, last.step, plan.channels, shapes)
    geometry = (tables.axes, tables.first, tables.count, tables.l_uniform)
    # the row buffers hold what the loops load: float32 for float16 data
    loaded = np.dtype(np.float32) if x.dtype == np.float16 else x.dtype
    scratch_dtype = plan.acc_dtype if name == "windows_sum" else loaded
    scratch = functools.partial(kernels.task_scratch, name, x.shape, out.shape, tables,
                                plan.channels, scratch_dtype, plan.omit_nan)
    if name == "windows_indexed":
        return _Launch(name, kernels.extreme_indexed_tasks(window), arrays + (indices,),
                       (*geometry, tables.buffer, plan.channels, *flags), n_tasks, scratch)
    if name == "windows_extreme":
        return _Launch(name, kernels.extreme_tasks(window), arrays,
                       (*geometry, tables.buffer, plan.channels, *flags), n_tasks, scratch)
    params = (*geometry, tables.div, tables.inv, tables.buffer, plan.channels,
              plan.acc_dtype.type(0), TRANSFORMS[plan.transform], float(plan.power),
              float(plan.eps), FINISHES[plan.finish], float(plan.divisor_override))
    return _Launch(name, kernels.sum_tasks(window, plan.omit_nan), arrays, params, n_tasks,
                   scratch)


def _kernel_arrays(*arrays):
    return tuple(as_kernel_array(a) for a in arrays)


def _is_global(plan):
    """Every window is a whole plane (global pooling, or adaptive pooling to size 1)."""
    return not plan.return_indices and all(
        a.out_size == 1 and a.window(0)[1:] == (a.in_size, a.in_size) for a in plan.axes)


def kernel_path(plan, dtype):
    """Which CPU loops run ``plan`` on ``dtype`` data: for tests and benchmarks, which use
    it to show that each fast path is reached.

    Returns a dict: ``kernel``, the kernel family (``"plane_extreme"``,
    ``"pixel_extreme"``, ``"plane_mean"``, ``"windows_extreme"``, ``"windows_indexed"``
    or ``"windows_sum"``); for the window kernels also ``uniform_loop``, how stage B folds
    the uniform run of channels-first rows (:func:`~numbapool._cpu.specialise.uniform_loop`,
    for a row taken whole; ``None`` when there is no such run), and ``rows_in_place``, whether stage A is skipped
    because every output row reads one input row of the input's own dtype.
    """
    name = _kernel_name(plan)
    path = {"kernel": name}
    if name.startswith("windows"):
        last = plan.axes[-1]
        lo, hi, k, s, _ = last.run
        if plan.channels != 1 or hi <= lo:
            path["uniform_loop"] = None
        elif name == "windows_indexed":  # its own loops: unrolled, or a window at a time
            unrolled = (k, s, last.step) in UNROLLED_INDEXED
            path["uniform_loop"] = "unrolled" if unrolled else "window-major"
        else:
            path["uniform_loop"] = uniform_loop(hi - lo, k, s, last.step)
        outer = plan.axes[:-1]
        path["rows_in_place"] = (name == "windows_extreme" and np.dtype(dtype) != np.float16
                                 and all(a.max_count == 1 for a in outer))
    return path
