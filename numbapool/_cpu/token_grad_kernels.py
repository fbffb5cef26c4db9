"""CPU kernels for the gradient of token pooling (:func:`numbapool.grad.pool_tokens`).

The hidden states are read as the forward reads them: a read-only 1-D arena with token
``p`` of sequence ``b`` at ``base + b*seq_stride + p*token_stride``
(:class:`~numbapool._cpu.token_kernels.Arena`), features contiguous, so any input whose
feature axis is contiguous is read in place.  The gradient is written into a C-contiguous
array of ``hidden``'s shape, described by a second ``Arena`` (base 0).

Each sequence is one task, and a task writes only its own token rows (and padding rows),
so threads that take ranges of sequences never write the same memory: no atomics, and the
result does not depend on the thread count.  A task makes two passes over its tokens:

1. statistics: the winner of every feature for max/min, and for the linear modes the
   per-feature totals of the coefficients (under omit: over the non-NaN values) and, for
   ``weighted`` and ``attention``, the forward's output, which their coefficient gradients
   need;
2. writing: each token row is the sum of every requested mode's contribution, built in a
   float64 row buffer and stored once (rounded once to the result dtype).

Linear modes are ``out = h * sum(c_j x_j)`` with a per-token coefficient ``c_j`` (1 for
mean/sum/mean_sqrt_len, the position ``j + 1`` for weighted_mean, the weight for weighted,
``exp(score_j - max score)`` for attention) and a factor ``h`` (``1/n``, 1, ``1/sqrt(n)``,
``1/sum(c)``).  So ``d x_j = c_j h g`` and, for the ratio modes,
``d c_j = sum_d h_d g_d (x_jd - out_d)`` (``d w_j`` directly, ``d s_j = c_j d c_j``).
Everything is computed in float64: ``grad_out`` arrives as float64 and the coefficients are
float64 already.  The modes are a runtime array of codes, as in the forward, so one kernel
per pair of (hidden, result) dtypes serves every mode combination.
"""

import numpy as np
from numba import njit

from .. import _arith
from ..token_plan import (
    M_ATTENTION, M_CLS, M_LAST, M_MAX, M_MEAN, M_MEAN_SQRT_LEN, M_MIN, M_SUM, M_WEIGHTED,
    M_WEIGHTED_MEAN,
)
from . import parallel
from .half import as_kernel_array, load, store
from .jit import helper
from .results import hand_back, result_arrays
from .token_kernels import Arena, Coefficients, _position, _sequences
from .tokens import _EMPTY_I64, _NO_MASK, _token_arena

_ieee_take = helper(_arith.ieee_take)


@njit(cache=True)
def token_sequences(masked, mask, runs):
    """The :class:`~numbapool.token_plan.Sequences` of a call (the forward's rule)."""
    return _sequences(masked, mask, runs)


@helper
def _take(m, v, is_min, omit):
    """Whether token value ``v`` takes over from the running winner ``m``: the forward's
    IEEE 754-2019 rule, except that under propagate the *first* NaN stays the winner."""
    if (m != m) and not omit:
        return False
    return _ieee_take(m, v, is_min, omit)


@helper
def _coefficient(c, j, b, p, coefs):
    """Token ``j`` (position ``p``) of sequence ``b``'s coefficient under mode ``c``."""
    if c == M_WEIGHTED_MEAN:
        return float(j + 1)
    if c == M_WEIGHTED:
        return coefs.weights[b * coefs.stride + p]
    if c == M_ATTENTION:
        return np.exp(coefs.scores[b * coefs.stride + p])
    return 1.0


@helper
def _is_linear(c):
    return c != M_CLS and c != M_LAST and c != M_MAX and c != M_MIN


@helper
def _statistics(x, b, n, arena, seqs, coefs, codes, omit, win, best, total, count, mix):
    """Pass 1 over sequence ``b``'s ``n`` tokens.

    ``win[k]``/``best[k]``: winner token and value per feature of max/min slot ``k``;
    ``total[k]``: per-feature coefficient totals of linear slot ``k`` (the same for every
    feature unless ``omit``), ``count[k]`` the non-NaN counts; ``mix[k]``: the sum of
    ``c_j x_jd`` (ratio modes only, for the forward's output).
    """
    D, sl = arena.features, arena.token_stride
    row0 = arena.base + b * arena.seq_stride
    M = codes.shape[0]
    for k in range(M):
        for e in range(D):
            win[k, e] = 0
            total[k, e] = 0.0
            count[k, e] = 0.0
            mix[k, e] = 0.0
    for j in range(n):
        p = _position(seqs, b, j)
        xr = x[row0 + p * sl:]  # the token's row: a view, so the loops vectorise
        for k in range(M):
            c = codes[k]
            if c == M_MAX or c == M_MIN:
                is_min = c == M_MIN
                if j == 0:
                    for e in range(D):
                        best[k, e] = float(load(xr, e))
                else:
                    for e in range(D):
                        v = float(load(xr, e))
                        if _take(best[k, e], v, is_min, omit):
                            best[k, e] = v
                            win[k, e] = j
            elif _is_linear(c):
                cj = _coefficient(c, j, b, p, coefs)
                ratio = c == M_WEIGHTED or c == M_ATTENTION
                if not (omit or ratio):  # the totals do not depend on the values
                    for e in range(D):
                        total[k, e] += cj
                        count[k, e] += 1.0
                    continue
                for e in range(D):
                    v = float(load(xr, e))
                    ok = (v == v) or not omit
                    if ok:
                        total[k, e] += cj
                        count[k, e] += 1.0
                        if ratio:
                            mix[k, e] += cj * v


@helper
def _factors(g, b, n, D, codes, omit, total, count, mix):
    """Turn pass 1's totals into the per-feature factor ``h_d g_d`` of each linear slot
    (in ``total``) and, for the ratio modes, the forward's output ``out_d`` (in ``mix``).

    A zero coefficient total (weights all 0, or every value NaN under omit) gives factor 0:
    the forward's output does not depend on the tokens there (zeros, or NaN).
    """
    for k in range(codes.shape[0]):
        c = codes[k]
        if not _is_linear(c):
            continue
        for e in range(D):
            gd = g[b, k * D + e]
            t = total[k, e]
            if c == M_SUM:
                h = 1.0 if count[k, e] > 0 else 0.0
            elif c == M_MEAN:
                h = 1.0 / count[k, e] if count[k, e] > 0 else 0.0
            elif c == M_MEAN_SQRT_LEN:
                h = 1.0 / np.sqrt(count[k, e]) if count[k, e] > 0 else 0.0
            else:
                h = 1.0 / t if t > 0.0 else 0.0
            total[k, e] = h * gd
            mix[k, e] = mix[k, e] * h


@njit(cache=True, nogil=True)
def token_grad_tasks(x, dx, b0, b1, arena, out_arena, seqs, coefs, g, codes, omit, dcoef):
    """Write the gradient of sequences ``[b0, b1)``.

    ``x``: the hidden states' arena; ``dx``: the flat C-contiguous result (``out_arena``
    says where token ``p`` of sequence ``b`` goes: padded ``(B, L, D)`` or packed
    ``(T, D)``); ``g``: ``grad_out`` as float64 ``(B, M*D)``, slot ``k`` of mode
    ``codes[k]``; ``coefs``: the plan's scaled weights and shifted scores; ``dcoef``:
    float64 ``(2, n)``, rows 0 and 1 receive the gradients of the (scaled) weights and of
    the scores at the coefficients' positions (zeros elsewhere, left as given).
    """
    D, sl = arena.features, arena.token_stride
    M = codes.shape[0]
    win = np.zeros((M, D), np.int64)
    best = np.zeros((M, D))
    total = np.zeros((M, D))
    count = np.zeros((M, D))
    mix = np.zeros((M, D))
    row = np.zeros(D)
    padded = out_arena.seq_stride != 0
    L = out_arena.seq_stride // max(D, 1)
    written = np.zeros(L, np.bool_)  # the token rows of a padded sequence
    # one linear mode whose totals do not depend on the values (mean, sum, ... under
    # propagate): each token row is a multiple of one vector, stored with no row buffer
    c0 = codes[0] if M else M_CLS
    scaled = M == 1 and _is_linear(c0) and not omit and c0 != M_WEIGHTED and c0 != M_ATTENTION
    for b in range(b0, b1):
        n = seqs.count[b]
        drow0 = b * out_arena.seq_stride
        if n == 0:
            if padded:  # every row of an empty sequence is padding
                dr = dx[drow0:]
                for i in range(L * D):
                    store(dr, i, 0.0)
            continue
        _statistics(x, b, n, arena, seqs, coefs, codes, omit, win, best, total, count, mix)
        _factors(g, b, n, D, codes, omit, total, count, mix)
        row0 = arena.base + b * arena.seq_stride
        for j in range(n):
            p = _position(seqs, b, j)
            if scaled:
                cj = _coefficient(c0, j, b, p, coefs)
                dr = dx[drow0 + p * out_arena.token_stride:]
                for e in range(D):
                    store(dr, e, cj * total[0, e])
                if padded:
                    written[p] = True
                continue
            xr = x[row0 + p * sl:]
            for e in range(D):
                row[e] = 0.0
            for k in range(M):
                c = codes[k]
                gk = g[b, k * D:]  # mode k's slot of the upstream gradient
                if c == M_CLS:
                    if j == 0:
                        for e in range(D):
                            row[e] += gk[e]
                elif c == M_LAST:
                    if j == n - 1:
                        for e in range(D):
                            row[e] += gk[e]
                elif c == M_MAX or c == M_MIN:
                    for e in range(D):
                        if win[k, e] == j:
                            row[e] += gk[e]
                else:
                    cj = _coefficient(c, j, b, p, coefs)
                    ratio = c == M_WEIGHTED or c == M_ATTENTION
                    if not (omit or ratio):  # the values are not needed: no loads
                        for e in range(D):
                            row[e] += cj * total[k, e]
                        continue
                    dc = 0.0
                    for e in range(D):
                        v = float(load(xr, e))
                        if (v == v) or not omit:
                            row[e] += cj * total[k, e]
                            if ratio:
                                dc += total[k, e] * (v - mix[k, e])
                    if c == M_WEIGHTED:
                        dcoef[0, b * coefs.stride + p] += dc
                    elif c == M_ATTENTION:
                        dcoef[1, b * coefs.stride + p] += cj * dc
            dr = dx[drow0 + p * out_arena.token_stride:]
            for e in range(D):
                store(dr, e, row[e])
            if padded:
                written[p] = True
        if padded:  # padding rows get zeros (each row is written once)
            for p in range(L):
                if written[p]:
                    written[p] = False
                else:
                    dr = dx[drow0 + p * D:]
                    for e in range(D):
                        store(dr, e, 0.0)


# --------------------------------------------------------------------------- entry point


def run_token_grad(plan, hidden, grad_out, out, inputs):
    """The CPU backend's entry point: the gradient of a
    :class:`~numbapool.token_plan.TokenPlan`'s pooling.

    ``grad_out``: float64, C-contiguous, ``plan.out_shape``; ``out``: the caller's result
    array or ``None``.  ``plan.out_dtype`` is the dtype of the gradient (grad_out's).
    Returns ``(d_hidden, d_coefficients)``, the latter float64 ``(2, n)``: the gradients of
    the plan's scaled weights (row 0) and of its scores (row 1), zero at padding
    positions.  The CUDA backend's entry point of the same name takes ``out`` in the
    dispatcher's slot and finishes the coefficient gradients itself (see its docstring).
    """
    work, result = result_arrays(out, hidden.shape, plan.out_dtype, inputs, "out")
    n_coef = max(plan.weights.size, plan.scores.size)
    dcoef = np.zeros((2, n_coef))
    if plan.batch and plan.features:
        arena, base, steps = _token_arena(hidden)
        seq_stride, token_stride = (0, steps[0]) if plan.packed else (steps[0], steps[1])
        D = plan.features
        out_arena = Arena(D, 0, 0, D) if plan.packed else Arena(D, 0, plan.length * D, D)
        runs = plan.runs()
        masked = runs is None
        seqs = token_sequences(masked, plan.mask if masked else _NO_MASK,
                               (_EMPTY_I64, _EMPTY_I64) if masked else runs)
        args = (as_kernel_array(arena), as_kernel_array(work.reshape(-1)))
        rest = (Arena(D, base, seq_stride, token_stride), out_arena, seqs,
                Coefficients(plan.weights, plan.scores, plan.coef_stride), grad_out,
                plan.codes, plan.omit_nan, dcoef)
        threads = parallel.thread_count()
        if parallel.use_parallel(hidden.size, min(plan.batch, threads)):
            parallel.run_split(token_grad_tasks, args, parallel.cuts(plan.batch, threads),
                               rest)
        else:
            token_grad_tasks(*args, np.int64(0), np.int64(plan.batch), *rest)
    elif work.size:
        work[...] = 0
    hand_back(work, result)
    return result, dcoef
