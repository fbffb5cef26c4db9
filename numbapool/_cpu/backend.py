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


# --------------------------------------------------------------------------- token pooling

#: Feature-block bounds of a token-pooling task: blocks at most this long keep every
#: accumulator in L1; blocks are split down to this minimum to give every core work.
TOKEN_BLOCK_MAX = 512
TOKEN_BLOCK_MIN = 64


def _token_arena(hidden):
    """``(arena, base, strides)``: a read-only 1-D view of the memory ``hidden`` spans.

    Element ``idx`` of ``hidden`` is ``arena[base + sum(idx * strides)]``.  Only an input
    whose feature axis is not contiguous is copied.
    """
    item = hidden.itemsize
    if hidden.strides[-1] != item or any(s % item for s in hidden.strides):
        hidden = np.ascontiguousarray(hidden)
    steps = [s // item for s in hidden.strides]
    # the view with every axis running forwards starts at the lowest address
    forward = hidden[tuple(slice(None, None, -1) if s < 0 else slice(None) for s in steps)]
    lo = sum((n - 1) * s for n, s in zip(hidden.shape, steps) if s < 0)
    span = 1 + sum((n - 1) * abs(s) for n, s in zip(hidden.shape, steps))
    arena = np.lib.stride_tricks.as_strided(forward, shape=(span,), strides=(item,),
                                            writeable=False)
    return arena, -lo, steps


def _token_blocks(batch, features, threads):
    """``(number of feature blocks, block length)``: enough tasks for ``threads`` threads."""
    nb = -(-features // TOKEN_BLOCK_MAX)
    if threads > 1:
        want = 4 * threads
        if batch * nb < want:
            nb = max(nb, min(-(-features // TOKEN_BLOCK_MIN), -(-want // batch)))
    block = -(-features // nb)
    block = -(-block // 16) * 16  # whole cache lines
    return -(-features // block), block


def _token_cuts(count, nb, block, features, n_chunks):
    """Task boundaries of ``n_chunks`` chunks of about equal work (tokens x features)."""
    widths = np.full(nb, block, np.int64)
    widths[-1] = features - (nb - 1) * block
    work = np.cumsum(((count[:, None] + 1) * widths[None, :]).reshape(-1))
    targets = work[-1] * np.arange(1, n_chunks, dtype=np.float64) / n_chunks
    inner = np.searchsorted(work, targets, side="right")
    return np.concatenate(([0], inner, [work.size])).astype(np.int64)


def run_tokens(plan, hidden, out, inputs):
    """Pool ``hidden`` according to a :class:`~numbapool.tokens.TokenPlan`."""
    work_out, ret = _result(out, plan.out_shape, plan.out_dtype, inputs, "out")
    n_tokens = plan.n_tokens
    if work_out.size == 0 or n_tokens == 0:
        work_out[...] = 0  # no tokens anywhere: zeros in every mode
    else:
        import numba

        from . import tokens as _tokens
        from .half import as_kernel_array
        from .parallel import chunks_for, run_parallel, use_parallel

        D = plan.features
        arena, base, steps = _token_arena(hidden)
        sb, sl = (0, steps[0]) if plan.packed else (steps[0], steps[1])
        parallel = use_parallel(n_tokens * D, plan.batch * -(-D // TOKEN_BLOCK_MIN))
        nb, block = _token_blocks(plan.batch, D, numba.get_num_threads() if parallel else 1)
        geo = (D, nb, block, base, sb, sl)
        seqs = (plan.first, plan.count, plan.positions, plan.indexed)
        coefs = (plan.weights, plan.scores, plan.coef_stride)
        args = (geo, seqs, coefs, plan.codes, plan.omit_nan, plan.acc_dtype.type(0))
        x, o = as_kernel_array(arena), as_kernel_array(work_out)
        n_tasks = plan.batch * nb
        if parallel:
            cuts = _token_cuts(plan.count, nb, block, D, chunks_for(n_tasks))
            run_parallel(_tokens.token_parallel, x, o, cuts, *args)
        else:
            _tokens.token_tasks(x, o, 0, n_tasks, *args)
    if work_out is not ret:
        ret[...] = work_out
    return ret
