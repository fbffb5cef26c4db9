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

# imported here, with the token section, rather than per call (a few microseconds each)
import numba  # noqa: E402

from . import parallel as _parallel  # noqa: E402
from . import tokens as _tokens  # noqa: E402
from .half import as_kernel_array  # noqa: E402

#: The shortest piece a long sequence is split into when there are too few sequences to
#: give every thread work (splitting costs a merge of partial accumulators).
TOKEN_PIECE_MIN = 32
#: Streaming whole token rows costs little per element, so the parallel path pays only from
#: about this many times ``parallel.PARALLEL_MIN_ELEMENTS`` elements (token rows, padding
#: included, times features; measured on (B, L, 384) float32 batches: serial and parallel
#: break even near 2**18 elements).
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
    """Pool ``hidden`` according to a :class:`~numbapool.tokens.TokenPlan`."""
    work_out, ret = _result(out, plan.out_shape, plan.out_dtype, inputs, "out")
    if work_out.size:
        D = plan.features
        arena, base, steps = _token_arena(hidden)
        sb, sl = (0, steps[0]) if plan.packed else (steps[0], steps[1])
        if plan.mask is not None:
            mask, runs = plan.mask, (_EMPTY_I64, _EMPTY_I64)
        elif plan.packed:
            mask, runs = _NO_MASK, (plan.first, plan.count)
        else:
            mask = _NO_MASK
            runs = (np.zeros(plan.batch, np.int64), np.full(plan.batch, plan.length, np.int64))
        args = (as_kernel_array(arena), as_kernel_array(work_out), (D, base, sb, sl),
                plan.mask is not None, mask, runs, (plan.weights, plan.scores, plan.coef_stride),
                plan.codes, plan.omit_nan, plan.acc_dtype.type(0))
        # decided on the token rows there may be (padding included): no pass over the mask
        rows = hidden.shape[0] if plan.packed else plan.batch * plan.length
        threads = numba.get_num_threads()
        if _parallel.use_parallel(rows * D // TOKEN_PARALLEL_FACTOR, threads):
            _parallel.run_parallel(_tokens.token_parallel, *args, (threads, TOKEN_PIECE_MIN))
        else:
            _tokens.token_serial(*args)
    if work_out is not ret:
        ret[...] = work_out
    return ret
