"""Runs a block reduction (:func:`numbapool.block_reduce`) with the CPU kernels of
:mod:`numbapool._cpu.block_kernels`.

The plan comes from :mod:`numbapool.blocks` (a ``BlockPlan``: the canonical shapes, the
outer axes, the last blocked axis, the reducer and its dtypes); this module sizes the
tasks and their scratch, picks the kernel and runs it, on several threads for large
inputs.
"""

from __future__ import annotations

import functools

import numpy as np

from . import block_kernels as kernels
from .half import as_kernel_array
from .parallel import cuts, run_split, thread_count, use_parallel
from .results import hand_back, result_arrays

#: Elements of a task's row buffer: a row whose blocks need more is split into chunks.
BUFFER = 1 << 14
#: Blocks of at most this many elements are sorted by a network over LANES outputs at
#: once; larger ones one at a time.
NETWORK_MAX = 256


def run_block_reduce(plan, x, out):
    """Reduce ``x`` by ``plan`` into ``out`` (checked here, or a new array); returns it."""
    work, ret = result_arrays(out, plan.result_shape, plan.out_dtype, (x,), "out")
    if work.size:
        xc = np.ascontiguousarray(x).reshape(plan.in_shape)
        _run(plan, xc, work.reshape(plan.out_shape))
    hand_back(work, ret)
    return ret


def _computed(dtype):
    """The dtype the kernels compute in: float32 for float16 data."""
    return np.dtype(np.float32) if dtype == np.float16 else np.dtype(dtype)


def _run(plan, x, out):
    W, bw, C, Wo = plan.W, plan.bw, plan.C, plan.Wo
    outer = np.array([(i, b, o, 0) for i, b, o in plan.outer], np.int64)
    stride = 1
    for a in range(len(plan.outer) - 1, -1, -1):
        outer[a, kernels.O_STRIDE] = stride
        stride *= plan.outer[a][0]
    per = min(Wo, max(1, BUFFER // (bw * C)))
    chunks = -(-Wo // per)
    ro_count = out.shape[1]
    n_block = bw
    for _, b, _ in plan.outer:
        n_block *= b
    geo = np.array([W, bw, Wo, C, per, chunks, ro_count, n_block], np.int64)
    n_tasks = out.shape[0] * ro_count * chunks
    max_rows = n_block // bw
    # the halving passes of even block widths from 6 (block_kernels' column folds) need two
    # buffers of half a chunk's columns; no other fold needs any
    halves = C == 1 and bw % 2 == 0 and 4 < bw <= 64
    half = min(per * bw, W) // 2 + 1 if halves else 1
    rows = functools.partial(_index_scratch, max_rows, len(plan.outer))
    computed = _computed(x.dtype)
    xk, ok = as_kernel_array(x), as_kernel_array(out)
    if plan.func in ("max", "min"):
        def scratch():
            return (np.empty(half, computed), np.empty(half, computed),
                    np.empty(per * C, computed)) + rows()

        kernel, params = kernels.extreme_tasks, (geo, outer, plan.func == "min", plan.omit)
    elif plan.func in ("sum", "mean"):
        acc = plan.acc_dtype
        omit = plan.omit

        def scratch():
            return (np.empty(half, acc), np.empty(half, acc), np.empty(per * C, acc),
                    np.empty(per * C if omit else 0, np.int64)) + rows()

        kind = kernels.K_MEAN if plan.func == "mean" else kernels.K_SUM
        kernel, params = kernels.sum_tasks, (geo, outer, kind, omit, acc.type(0))
    else:
        net = sorting_network(n_block, plan.func == "median") if n_block <= NETWORK_MAX \
            else np.zeros((0, 2), np.int64)
        top = (np.inf if computed.kind == "f" else np.iinfo(computed).max)
        result = _computed(plan.out_dtype)
        lanes = kernels.LANES
        network = net.shape[0] > 0

        def scratch():
            s = np.empty((n_block if network else 1, lanes), computed)
            ints = tuple(np.empty(lanes, np.int64) for _ in range(4))  # cols offs nans counts
            return (s, *ints, np.empty(lanes, computed)) + rows() + (
                np.empty(1 if network else n_block, computed),)

        kind = kernels.K_MEDIAN if plan.func == "median" else kernels.K_MODE
        kernel = kernels.order_tasks
        params = (geo, outer, net, kind, plan.omit, computed.type(top), result.type(0),
                  result.type(0.5))
    if use_parallel(x.size, n_tasks):
        run_split(kernel, (xk, ok), cuts(n_tasks, min(n_tasks, thread_count())), params,
                  scratch)
    else:
        kernel(xk, ok, 0, n_tasks, *params, *scratch())


def _index_scratch(max_rows, n_axes):
    """A task's list of input rows and the outer axes' odometer."""
    return np.empty(max_rows, np.int64), np.empty((3, n_axes), np.int64)


@functools.lru_cache(maxsize=64)
def sorting_network(n, lower_half=False):
    """The comparators ``(i, j)``, ``i < j``, of Batcher's odd-even merge sort of ``n``
    wires (an int64 array, read-only): after them, ``min`` to ``i`` and ``max`` to ``j``,
    the wires are in ascending order.  With ``lower_half``, only the comparators that wires
    ``0 .. n // 2`` depend on (enough for a median of at most ``n`` values).

    Built for the next power of two; comparators that touch a wire ``>= n`` are dropped,
    which is exact when those wires hold the largest value (they never move).

    >>> sorting_network(4).tolist()
    [[0, 1], [2, 3], [0, 2], [1, 3], [1, 2]]
    """
    size = 1
    while size < n:
        size *= 2
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p) and i + j + k < n:
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    if lower_half:
        needed = set(range(n // 2 + 1))
        kept = []
        for a, b in reversed(pairs):
            if a in needed or b in needed:
                kept.append((a, b))
                needed.update((a, b))
        pairs = kept[::-1]
    net = np.array(pairs, np.int64).reshape(-1, 2)
    net.flags.writeable = False
    return net
