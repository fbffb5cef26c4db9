"""Runs a :class:`~numbapool.token_plan.TokenPlan` with the CPU token kernels."""

from __future__ import annotations

import numpy as np

from . import parallel
from . import token_kernels as kernels
from .half import as_kernel_array
from .results import hand_back, result_arrays

#: The shortest piece a long sequence is split into when there are too few sequences to
#: give every thread work (splitting costs a merge of partial accumulators).
TOKEN_PIECE_MIN = 32
#: Streaming whole token rows costs little per element, so the parallel path pays only from
#: about this many times ``parallel.PARALLEL_MIN_ELEMENTS`` elements (token rows, padding
#: included, times features); ``benchmarks/bench_design.py`` measures the break-even.
TOKEN_PARALLEL_FACTOR = 4
_EMPTY_I64 = np.zeros(0, np.int64)
_NO_MASK = np.zeros((0, 0), np.bool_)


def _token_arena(hidden):
    """``(arena, base, strides)``: a read-only 1-D view of the memory ``hidden`` spans.

    Element ``idx`` of ``hidden`` is ``arena[base + sum(idx * strides)]``.  Only an input
    whose feature axis is not contiguous is copied.  Read-only always, so that every input
    meets the same compiled kernel.
    """
    item = hidden.itemsize
    if hidden.flags.c_contiguous:
        arena = hidden.reshape(-1).view()
        arena.flags.writeable = False
        return arena, 0, [s // item for s in hidden.strides]
    if hidden.strides[-1] != item or any(s % item for s in hidden.strides):
        hidden = np.ascontiguousarray(hidden)
        return _token_arena(hidden)
    steps = [s // item for s in hidden.strides]
    # the view with every axis running forwards starts at the lowest address
    forward = hidden[tuple(slice(None, None, -1) if s < 0 else slice(None) for s in steps)]
    lo = sum((n - 1) * s for n, s in zip(hidden.shape, steps) if s < 0)
    span = 1 + sum((n - 1) * abs(s) for n, s in zip(hidden.shape, steps))
    arena = np.lib.stride_tricks.as_strided(forward, shape=(span,), strides=(item,),
                                            writeable=False)
    return arena, -lo, steps


def run_tokens(plan, hidden, out, inputs):
    """Pool ``hidden`` according to a :class:`~numbapool.token_plan.TokenPlan`."""
    work, result = result_arrays(out, plan.out_shape, plan.out_dtype, inputs, "out")
    if work.size:
        arena, base, steps = _token_arena(hidden)
        seq_stride, token_stride = (0, steps[0]) if plan.packed else (steps[0], steps[1])
        runs = plan.runs()
        masked = runs is None  # the mask decides which positions are tokens
        args = (as_kernel_array(arena), as_kernel_array(work),
                kernels.Arena(plan.features, base, seq_stride, token_stride),
                masked, plan.mask if masked else _NO_MASK,
                (_EMPTY_I64, _EMPTY_I64) if masked else runs,
                kernels.Coefficients(plan.weights, plan.scores, plan.coef_stride),
                plan.codes, plan.needs, plan.omit_nan, plan.acc_dtype.type(0))
        # decided on the token rows there may be (padding included): no pass over the mask
        rows = hidden.shape[0] if plan.packed else plan.batch * plan.length
        threads = parallel.thread_count()
        if parallel.use_parallel(rows * plan.features // TOKEN_PARALLEL_FACTOR, threads):
            _pool_on_threads(*args, threads)
        else:
            kernels.token_serial(*args)
    hand_back(work, result)
    return result


def _pool_on_threads(x, out, arena, masked, mask, runs, coefs, codes, needs, omit, zero,
                     threads):
    """Pool on ``threads`` threads: each runs the tasks of a range of the planned chunks
    (about equal work), then the split sequences are merged on this thread."""
    seqs, tasks, splits, chunks, parts = kernels.token_schedule(
        masked, mask, runs, threads, TOKEN_PIECE_MIN, arena.features, zero)
    n_chunks = chunks.shape[0] - 1
    bounds = [int(chunks[n_chunks * k // threads]) for k in range(threads + 1)]
    parallel.run_split(kernels.token_tasks, (x, out), bounds,
                       (arena, seqs, tasks, coefs, codes, needs, omit, zero, parts))
    kernels.combine_tasks(x, out, 0, splits.seq.shape[0], arena, seqs, splits, codes, needs,
                          omit, zero, parts)
