"""CUDA kernel for token pooling: a block per (sequence, tile of features), all modes in one pass.

A block is ``TX`` feature threads times ``TY`` token lanes (thread ``t`` is feature
``t % TX`` of lane ``t // TX``).  Lane ``l`` folds the contiguous run of tokens
``[n*l // TY, n*(l+1) // TY)`` of its sequence into register accumulators; the lanes then
leave their partials in shared memory and lane 0 merges them in lane order, which is token
order, and writes every requested mode.  Max and min follow IEEE 754-2019 (-0 < +0), as on
the CPU, so their results do not depend on how the tokens are split over lanes.

Sums are blocked, as on the CPU (the accumulation rule of
:mod:`numbapool._cpu.token_kernels`): a lane adds its tokens into partial sums of the
accumulator type (float32 for float16 and float32 data) over blocks of :data:`BLOCK`
tokens, and adds each block's partials into float64 totals; the lanes' totals are merged
in float64, and each result is computed in float64 and rounded once.  Partials and totals
are registers, so every block is short.

The threads of a warp read consecutive features of one token: coalesced.  Splitting a
sequence over lanes gives a batch of a few long sequences enough threads to fill the GPU.

Arrays (device):

* ``x``: ``(R, D)`` C-contiguous token rows; token ``p`` of sequence ``b`` is row
  ``b * sb + p`` (padded: ``sb = L``, ``p = l``; packed: ``sb = 0``, ``p = t``);
* ``first``, ``count``, ``pos``: sequence ``b``'s tokens are positions ``first[b] + j``
  (``j < count[b]``), or ``pos[first[b] + j]`` when ``indexed`` (a mask with holes);
* ``weights``, ``scores``: float64, the coefficient of position ``p`` of sequence ``b`` at
  ``b * wb + p``;
* ``codes``: the requested modes (:data:`numbapool.token_plan.MODE_CODES`), output slot ``k``
  of ``out[b]`` (``D`` wide) holds mode ``codes[k]``.

The mode rules are :mod:`numbapool._cpu.token_kernels`' (the table in
docs/guide/tokens.md, "The modes"); max/min updates use :func:`numbapool._arith.ieee_take`,
the rule of the CPU's IEEE max and min.
"""

import math

import numpy as np

from .. import _arith
from ..token_plan import (
    M_CLS, M_LAST, M_MAX, M_MEAN, M_MEAN_SQRT_LEN, M_MIN, M_SUM, M_WEIGHTED, M_WEIGHTED_MEAN,
)
from .compat import cuda, jit

_take = jit(device=True)(_arith.ieee_take)

#: Threads of a block at most (the shared scratch is sized for it).
MAX_THREADS = 256
#: Tokens per block of a lane's blocked sums: the rounding error of a float32 partial
#: grows with its additions, and ending a block costs one float64 add per accumulator.
BLOCK = 16
# rows of the shared scratch: one partial of each lane's thread per row
(S_SUM, S_POS, S_POS_DEN, S_W, S_W_DEN, S_ATT, S_ATT_DEN, S_MAX, S_MIN, S_CNT, S_W_TOT,
 S_ATT_TOT) = range(12)
N_SHARED = 12


@jit(device=True)
def _position(first, pos, indexed, b, j):
    return pos[first[b] + j] if indexed else first[b] + j


@jit(device=True)
def _ratio(acc, den, cnt, total, omit):
    """``acc / total``; a zero total leaves ``acc``.  Under omit the per-feature ``den``
    replaces ``total`` and a feature with no non-NaN token gives NaN."""
    if omit:
        if cnt == 0:
            return math.nan
        return acc / den if den > 0.0 else acc
    return acc / total if total > 0.0 else acc


@jit(device=True)
def _mean(acc, cnt, n, sqrt, omit):
    if omit:
        if cnt == 0:
            return math.nan
        n = cnt
    d = float(n)
    return acc / (math.sqrt(d) if sqrt else d)


@jit(cache=True)
def token_kernel(x, out, first, count, pos, indexed, sb, weights, scores, wb, codes, needs,
                 omit, acc_one, TX, TY):
    """Pool every (sequence, feature tile) of the grid-stride loop; see the module docstring.

    ``acc_one`` is 1 in the accumulator type (float32 for float16 data): values are loaded
    as ``x * acc_one``, which keeps the sign of zero (``0 + -0.0`` would not).
    """
    acc_zero = acc_one - acc_one
    shared = cuda.shared.array((N_SHARED, MAX_THREADS), np.float64)
    tid = cuda.threadIdx.x
    f = tid % TX
    lane = tid // TX
    B = count.shape[0]
    D = x.shape[1]
    n_tiles = (D + TX - 1) // TX
    need_sum, need_pos, need_w, need_att, need_max, need_min = needs
    for g in range(cuda.blockIdx.x, B * n_tiles, cuda.gridDim.x):
        b = g // n_tiles
        e = (g % n_tiles) * TX + f
        live = e < D
        n = count[b]
        if n == 0:  # the same for the whole block: no thread reaches a barrier below
            if lane == 0 and live:
                for k in range(codes.shape[0]):
                    out[b, k * D + e] = acc_zero
            continue
        j0 = n * lane // TY
        j1 = n * (lane + 1) // TY
        row0 = b * sb
        smax = 0.0
        if need_att:  # softmax shift: the largest score of the sequence
            m = -math.inf
            for j in range(j0, j1):
                m = max(m, scores[b * wb + _position(first, pos, indexed, b, j)])
            shared[S_ATT_TOT, tid] = m
            cuda.syncthreads()
            smax = -math.inf
            for l in range(TY):
                smax = max(smax, shared[S_ATT_TOT, l * TX + f])
            cuda.syncthreads()
        # float64 totals: of the blocked sums, whose partials are s, ps, ..., and of the
        # coefficients (a typed zero: under the simulator a Python 0.0 would take the
        # float32 type of what is added to it)
        h_s = np.float64(0.0)
        h_ps = h_s
        h_pd = h_s
        h_ws = h_s
        h_wd = h_s
        h_as = h_s
        h_ad = h_s
        mx = acc_zero
        mn = acc_zero
        cnt = 0
        w_tot = h_s
        a_tot = h_s
        if live:
            for jb in range(j0, j1, BLOCK):
                s = acc_zero
                ps = acc_zero
                pd = acc_zero
                ws = acc_zero
                wd = acc_zero
                a_s = acc_zero
                a_d = acc_zero
                for j in range(jb, min(jb + BLOCK, j1)):
                    p = _position(first, pos, indexed, b, j)
                    v = x[row0 + p, e] * acc_one
                    ok = v == v
                    cnt += ok
                    if need_sum:
                        s += v if ok or not omit else acc_zero
                    if need_pos:
                        c = acc_zero + (j + 1)
                        if ok or not omit:
                            ps += c * v
                            pd += c
                    if need_w:
                        c = acc_zero + weights[b * wb + p]
                        w_tot += c
                        if ok or not omit:
                            ws += c * v
                            wd += c
                    if need_att:
                        c = acc_zero + math.exp(scores[b * wb + p] - smax)
                        a_tot += c
                        if ok or not omit:
                            a_s += c * v
                            a_d += c
                    if need_max:
                        if j == j0 or _take(mx, v, False, omit):
                            mx = v
                    if need_min:
                        if j == j0 or _take(mn, v, True, omit):
                            mn = v
                h_s += s
                h_ps += ps
                h_pd += pd
                h_ws += ws
                h_wd += wd
                h_as += a_s
                h_ad += a_d
        shared[S_SUM, tid] = h_s
        shared[S_POS, tid] = h_ps
        shared[S_POS_DEN, tid] = h_pd
        shared[S_W, tid] = h_ws
        shared[S_W_DEN, tid] = h_wd
        shared[S_ATT, tid] = h_as
        shared[S_ATT_DEN, tid] = h_ad
        shared[S_MAX, tid] = mx
        shared[S_MIN, tid] = mn
        shared[S_CNT, tid] = cnt
        shared[S_W_TOT, tid] = w_tot
        shared[S_ATT_TOT, tid] = a_tot
        cuda.syncthreads()
        if lane == 0 and live:
            # merged in float64, lane 0's partials first, then each later lane's: token order
            t_s, t_ps, t_pd = shared[S_SUM, f], shared[S_POS, f], shared[S_POS_DEN, f]
            t_ws, t_wd = shared[S_W, f], shared[S_W_DEN, f]
            t_as, t_ad = shared[S_ATT, f], shared[S_ATT_DEN, f]
            t_mx, t_mn = shared[S_MAX, f], shared[S_MIN, f]
            t_cnt, t_wt, t_at = shared[S_CNT, f], shared[S_W_TOT, f], shared[S_ATT_TOT, f]
            have = j1 > j0
            for l in range(1, TY):
                if n * l // TY == n * (l + 1) // TY:
                    continue  # a lane without tokens
                col = l * TX + f
                t_s += shared[S_SUM, col]
                t_ps += shared[S_POS, col]
                t_pd += shared[S_POS_DEN, col]
                t_ws += shared[S_W, col]
                t_wd += shared[S_W_DEN, col]
                t_as += shared[S_ATT, col]
                t_ad += shared[S_ATT_DEN, col]
                t_cnt += shared[S_CNT, col]
                t_wt += shared[S_W_TOT, col]
                t_at += shared[S_ATT_TOT, col]
                v_mx = shared[S_MAX, col]
                if not have or _take(t_mx, v_mx, False, omit):
                    t_mx = v_mx
                v_mn = shared[S_MIN, col]
                if not have or _take(t_mn, v_mn, True, omit):
                    t_mn = v_mn
                have = True
            n_ok = int(t_cnt)
            for k in range(codes.shape[0]):
                mode = codes[k]
                o = k * D + e
                if mode == M_CLS:
                    out[b, o] = x[row0 + _position(first, pos, indexed, b, 0), e]
                elif mode == M_LAST:
                    out[b, o] = x[row0 + _position(first, pos, indexed, b, n - 1), e]
                elif mode == M_MAX:
                    out[b, o] = t_mx
                elif mode == M_MIN:
                    out[b, o] = t_mn
                elif mode == M_SUM:
                    out[b, o] = math.nan if omit and n_ok == 0 else t_s
                elif mode == M_MEAN:
                    out[b, o] = _mean(t_s, n_ok, n, False, omit)
                elif mode == M_MEAN_SQRT_LEN:
                    out[b, o] = _mean(t_s, n_ok, n, True, omit)
                elif mode == M_WEIGHTED_MEAN:
                    out[b, o] = _ratio(t_ps, t_pd, n_ok, float(n * (n + 1) // 2), omit)
                elif mode == M_WEIGHTED:
                    out[b, o] = _ratio(t_ws, t_wd, n_ok, t_wt, omit)
                else:
                    out[b, o] = _ratio(t_as, t_ad, n_ok, t_at, omit)
        cuda.syncthreads()  # the scratch is reused by the block's next tile
