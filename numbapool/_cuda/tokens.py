"""CUDA kernels for token pooling: a block per (sequence, tile of features), all modes in one pass.

:func:`token_kernel` builds one kernel per *specialisation*: the requested modes (a tuple of
:data:`numbapool.token_plan.MODE_CODES`, one output slot each), the NaN policy, how the
sequences are described (:data:`KINDS`), whether the accumulators are float64 (float64
data), the features per thread (:func:`max_vec`) and the block's shape (``TX`` feature
threads, powers of two, times ``TY`` token lanes).  These are constants of the kernel's
closure, which the compiler folds (Numba prunes no branch on a literal *argument*): a
kernel updates only the accumulators its modes need, keeps only those in registers and in
the shared merge buffer, tests no mode, policy or layout flag at run time, and addresses
its ``VEC`` features by immediate offsets from one pointer per token.  Numba caches each
kernel on disk (under the name :func:`_name` gives it).  Launch bounds (at least
:data:`MIN_THREADS_PER_SM` threads resident per multiprocessor) keep every kernel within
64 registers; the per-feature state is sized to fit (:func:`max_vec`, :func:`unroll_of`),
so that only the widest mode sets under ``omit`` spill a few words.

Block shape.  A block is ``TX`` feature threads times ``TY`` token lanes (thread ``t`` is
feature thread ``t % TX`` of lane ``t // TX``).  Thread ``f`` handles the ``VEC`` features
``tile + f + v*TX`` (``v < VEC``), so a warp reads consecutive features of one token in
every load: coalesced.  Lane ``l`` folds the tokens of ranks ``[n*l // TY, n*(l+1) // TY)``
of its sequence (``n`` tokens).  The token loop is unrolled: the ``STEP * VEC`` values of
a step of ``STEP`` tokens (:data:`UNROLL`, or half that for the widest mode sets) are all
loaded before any is used, so that many loads are in flight per thread.  The lanes'
partials are then merged by a tree over the lanes through shared memory (lane ``l`` takes
lane ``l + s`` for ``s = 1, 2, 4, ...``: adjacent token ranges, in token order, with two
barriers per level) and lane 0 writes every requested mode.  Max and min follow
IEEE 754-2019 (-0 < +0), as on the CPU (the rule of :func:`numbapool._arith.ieee_take`,
here with typed constants, see :func:`_take`), so their results do not depend on how the
tokens are split over lanes.

Sequences (the kind, a compile-time constant):

* ``"full"``: padded, no mask: sequence ``b`` is rows ``b*L`` to ``b*L + L``;
* ``"offsets"``: packed: sequence ``b`` is rows ``offs[b]`` to ``offs[b+1]`` (``offs``:
  any integer dtype, e.g. the caller's own device array);
* ``"mask"``: padded, tokens where ``mask[b, l] != 0`` (any dtype and strides; left or
  right padding and holes alike).  The block reads its sequence's mask row first
  (:func:`_mask_rows`): each thread counts the tokens of a contiguous chunk of the row, a
  scan over the threads (shared memory) gives each chunk's first rank and the token count
  ``n``, and the threads holding a lane's first token write its position.  Lane ``l`` then
  walks the positions from its first token to the next lane's, skipping those the mask
  clears.  So the mask never leaves the device, and no metadata is computed on the host or
  kept between calls: the scan is a few barriers per (sequence, tile).

Accuracy (the accumulation rule of :mod:`numbapool._cpu.token_kernels`): a lane adds its
tokens into partial sums of the accumulator type (float32 for float16 and float32 data)
over blocks of :data:`BLOCK` tokens (positions, under a mask) and adds each block's
partials into float64 totals; the lanes' totals are merged in float64, and each result is
computed in float64 and rounded once to the accumulator type (then to the output's).  So
the per-token work -- loads, products with the coefficients, the partial sums, max and
min, the NaN tests and counts -- is float32 for float16/float32 data.  What stays float64,
and why: the totals (one add per accumulator per block: a float32 running sum over
thousands of tokens loses several bits, see test_tokens_long_float32_sums_are_blocked),
the merge of the lanes' totals (the same reason, across lanes), and each output's final
division (once per output; rounding a float32 quotient of float32 totals would add an
error the CPU does not make).  The coefficients (the plan's scaled weights and ``exp`` of
its shifted scores, rounded to the accumulator type, and under propagate their float64
per-sequence totals) come from the host (the backend), as the CPU computes them, so the
kernel computes no ``exp``.

Arrays (device), for ``token_kernel(...)(x, out, sb, offs, mask, wts, atts, wtot, atot,
wb)``:

* ``x``: the ``(R, D)`` C-contiguous token rows, flat; token position ``p`` of sequence
  ``b`` is row ``b * sb + p`` (padded: ``sb = L``; packed: ``sb = 0``, ``p`` is the row);
* ``out``: ``(B, M*D)``, slot ``k`` (``D`` wide) holds mode ``codes[k]``;
* ``offs``: ``(B+1,)`` (offsets kind), ``mask``: ``(B, L)`` (mask kind);
* ``wts``, ``atts``: float64, the weight and softmax term of position ``p`` of sequence
  ``b`` at ``b * wb + p``; ``wtot``, ``atot``: float64 per-sequence totals (propagate).

Arrays a specialisation does not read may be empty.
"""

import functools
import math
import zlib

import numpy as np

from ..token_plan import (
    M_ATTENTION, M_CLS, M_LAST, M_MAX, M_MEAN, M_MEAN_SQRT_LEN, M_MIN, M_SUM, M_WEIGHTED,
    M_WEIGHTED_MEAN, NEEDED_BY, Needs,
)
from .compat import cuda, jit, simulator

#: Threads of a block at most.
MAX_THREADS = 256
#: Tokens per block of a lane's blocked sums: the rounding error of a float32 partial
#: grows with its additions, and ending a block costs one float64 add per accumulator.
BLOCK = 16
#: Tokens (positions, under a mask) loaded per step of a lane's loop before any is used.
UNROLL = 4
#: The ways a kernel is told which tokens make up each sequence (see the module docstring).
KINDS = ("full", "offsets", "mask")
K_FULL, K_OFFSETS, K_MASK = range(len(KINDS))
#: Threads every kernel lets a multiprocessor hold at once (its launch bounds): 65536
#: registers per multiprocessor / 1024 threads = 64 registers per thread at most.
MIN_THREADS_PER_SM = 1024
#: Registers a thread may spend on per-feature state (accumulators and loaded values) in
#: :func:`max_vec`: with the kernel's other registers this keeps it under 64.
FEATURE_REGISTERS = 28


def needs_of(codes):
    """The :class:`~numbapool.token_plan.Needs` of a tuple of mode codes."""
    return Needs(*(any(c in group for c in codes) for group in NEEDED_BY))


class _Rows:
    """The accumulators of a specialisation, as row numbers (-1: not needed).

    Rows ``[0, n_part)`` are the linear sums (of values, of ``c * x``, and under omit of
    the per-feature coefficient sums ``c`` of non-NaN values); they have a partial in the
    accumulator type and a float64 total.  The merge rows ``[0, n_merge)`` add the NaN-free
    count (omit), max and min.
    """

    def __init__(self, codes, omit):
        need = needs_of(codes)
        rows = []

        def add(name, wanted):
            if wanted:
                rows.append(name)
                return len(rows) - 1
            return -1

        self.s = add("s", need.sum)
        self.ps = add("ps", need.pos)
        self.pd = add("pd", need.pos and omit)
        self.ws = add("ws", need.w)
        self.wd = add("wd", need.w and omit)
        self.a_s = add("as", need.att)
        self.ad = add("ad", need.att and omit)
        self.n_part = len(rows)
        self.cnt = add("cnt", omit and self.n_part > 0)
        self.max = add("max", need.max)
        self.min = add("min", need.min)
        self.n_merge = len(rows)
        self.needs = need


def reads_tokens(codes):
    """Whether modes ``codes`` read every token (all but ``"cls"`` and ``"last"`` do)."""
    return any(c not in (M_CLS, M_LAST) for c in codes)


def _state_registers(codes, omit, wide):
    """``(state, word)``: registers of a feature's accumulators, and of one value."""
    rows = _Rows(codes, omit)
    word = 2 if wide else 1
    return rows.n_part * (word + 2) + (rows.n_merge - rows.n_part) * word, word


def max_vec(codes, omit, wide):
    """The most features per thread (4, 2 or 1) whose per-feature state fits
    :data:`FEATURE_REGISTERS`: a linear sum costs a partial and a float64 total (3
    registers, 4 for float64 data), max/min/count one each (two for float64), and each
    feature holds :data:`UNROLL` loaded values."""
    state, word = _state_registers(codes, omit, wide)
    for vec in (4, 2):
        if vec * (state + UNROLL * word) <= FEATURE_REGISTERS:
            return vec
    return 1


def unroll_of(codes, omit, wide, vec):
    """Tokens loaded per step: :data:`UNROLL`, or half that where ``vec`` features' state
    and loads leave too few registers.  Besides the per-feature state, ``omit`` (the NaN
    tests and counts) and each coefficient (position, weight, softmax term) cost a few
    registers: a rule fitted to ptxas's reports for sm_90, where the wide mode sets spilled
    with UNROLL tokens and mostly did not with half."""
    state, word = _state_registers(codes, omit, wide)
    need = needs_of(codes)
    extra = 4 * bool(omit) + 2 * (need.pos + need.w + need.att)
    fits = vec * (state + UNROLL * word) + extra <= FEATURE_REGISTERS
    return UNROLL if fits else UNROLL // 2


@jit(device=True)
def _u(i):
    """An index known to be >= 0, as unsigned: Numba then adds no wraparound code."""
    return np.uint64(i)


@jit(device=True)
def _first(offs, b, packed):
    """The first row of packed sequence ``b`` (0 when not ``packed``: a padded row)."""
    return np.int64(offs[b]) if packed else np.int64(0)


@jit(device=True)
def _take(m, v, is_min, omit, one):
    """:func:`numbapool._arith.ieee_take` with ``one`` of the values' type, so that float32
    values are compared in float32 (``math.copysign(1.0, v)`` would be float64)."""
    tie = v == m
    sv = math.copysign(one, v)
    sm = math.copysign(one, m)
    above = (v > m) | (tie & (sv > sm))
    below = (v < m) | (tie & (sv < sm))
    return ((above & (not is_min)) | (below & is_min) | ((v != v) & (not omit))
            | ((m != m) & omit))


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
def _mask_rows(mask, b, scan, bounds, tid, NT, TY):
    """The tokens of row ``b`` of ``mask``: returns their count ``n`` and leaves in
    ``bounds[l]`` the position of the first token of lane ``l`` (rank ``n*l // TY``) and in
    ``bounds[TY]`` the last token's position + 1.  Every thread of the block calls it."""
    L = mask.shape[1]
    chunk = (L + NT - 1) // NT
    c0 = min(tid * chunk, L)
    c1 = min(c0 + chunk, L)
    c = 0
    for p in range(c0, c1):
        if mask[b, p] != 0:
            c += 1
    scan[0, tid] = c
    cuda.syncthreads()
    src = 0
    off = 1
    while off < NT:  # inclusive scan of the chunk counts (Hillis-Steele)
        t = scan[src, tid]
        if tid >= off:
            t += scan[src, tid - off]
        scan[1 - src, tid] = t
        cuda.syncthreads()
        src = 1 - src
        off *= 2
    n = np.int64(scan[src, NT - 1])
    if c > 0:
        rank = np.int64(scan[src, tid]) - c  # the chunk's first rank
        # the lanes whose first rank falls in this chunk: n*l // TY in [rank, rank + c)
        lane = (rank * TY + n - 1) // n
        end = min(((rank + c) * TY + n - 1) // n, TY)
        for p in range(c0, c1):
            if mask[b, p] != 0:
                while lane < end and n * lane // TY == rank:
                    bounds[lane] = p
                    lane += 1
                rank += 1
                if rank == n:
                    bounds[TY] = p + 1
    cuda.syncthreads()
    return n


@functools.cache
def token_kernel(codes, omit, kind, wide, vec, tx, ty):
    """The kernel for modes ``codes`` (a tuple), NaN policy ``omit``, sequence ``kind``
    (:data:`KINDS`), float64 accumulators (``wide``), ``vec`` features per thread (at most
    :func:`max_vec`'s), and blocks of ``tx`` (a power of two) by ``ty`` threads.

    Built once per process (and compiled once per argument types, cached on disk).  See the
    module docstring for its arguments; launch it with ``tx * ty`` threads per block, over
    ``B * ceil(D / (tx * vec))`` (sequence, tile) items.
    """
    rows = _Rows(codes, omit)
    need = rows.needs
    ACC = np.float64 if wide else np.float32
    ZERO = ACC(0.0)
    ONE = ACC(1.0)
    NAN = ACC(math.nan)
    VEC = vec
    OMIT = bool(omit)
    MASKED = kind == K_MASK
    OFFSETS = kind == K_OFFSETS
    CODES = tuple(int(c) for c in codes)
    NM = len(CODES)
    NEED_POS, NEED_W, NEED_ATT = need.pos, need.w, need.att
    P_S, P_PS, P_PD, P_WS, P_WD, P_AS, P_AD = (rows.s, rows.ps, rows.pd, rows.ws, rows.wd,
                                               rows.a_s, rows.ad)
    R_CNT, R_MAX, R_MIN = rows.cnt, rows.max, rows.min
    NP = rows.n_part * VEC  # partial / total entries
    NR = rows.n_merge * VEC  # merged entries
    READ = NR > 0  # the modes read every token (not only cls / last)
    COUNT = R_CNT >= 0
    # the running max / min start where any value replaces them: under omit a NaN (any
    # number replaces it, and a feature whose tokens are all NaN gives NaN), under
    # propagate -inf / +inf
    MAX0 = NAN if OMIT else ACC(-math.inf)
    MIN0 = NAN if OMIT else ACC(math.inf)
    # array sizes (at least 1: a zero-size local or shared array does not compile)
    N_PART = max(1, NP)
    N_TOT = max(1, NR)
    STEP = unroll_of(codes, omit, wide, vec)
    N_VALS = STEP * VEC
    TX = tx
    TY = ty
    NT = TX * TY
    # shared memory: the lanes' merge (each level's senders, at most TY // 2 lanes of TX
    # threads, NR float64 each), and the scan of a mask row (two int32 per thread) with the
    # lanes' first positions
    MERGE_ROWS = max(1, NR)
    MERGE_COLS = max(1, (TY // 2) * TX) if READ else 1
    SCAN_COLS = NT if MASKED else 1
    N_BOUNDS = TY + 1 if MASKED else 1

    def kernel(x, out, sb, offs, mask, wts, atts, wtot, atot, wb):
        merge = cuda.shared.array((MERGE_ROWS, MERGE_COLS), np.float64)
        scan = cuda.shared.array((2, SCAN_COLS), np.int32)
        bounds = cuda.shared.array(N_BOUNDS, np.int32)
        part = cuda.local.array(N_PART, ACC)
        tot = cuda.local.array(N_TOT, np.float64)
        cnt = cuda.local.array(VEC, np.int32)
        mx = cuda.local.array(VEC, ACC)
        mn = cuda.local.array(VEC, ACC)
        vals = cuda.local.array(N_VALS, ACC)
        oks = cuda.local.array(STEP, np.int32)
        live = cuda.local.array(VEC, np.int32)
        tid = cuda.threadIdx.x
        f = tid % TX
        lane = tid // TX
        B = out.shape[0]
        D = out.shape[1] // NM
        span = TX * VEC
        n_tiles = (D + span - 1) // span
        for g in range(cuda.blockIdx.x, B * n_tiles, cuda.gridDim.x):
            b = g // n_tiles
            e0 = (g % n_tiles) * span + f
            row0 = b * sb
            # the sequence's n tokens; this lane's positions [p0, p1), the first's rank r0
            if MASKED:
                n = _mask_rows(mask, b, scan, bounds, tid, NT, TY)
                p0 = np.int64(bounds[lane])
                p1 = np.int64(bounds[lane + 1])
            else:
                first = _first(offs, b, OFFSETS)
                n = np.int64(offs[b + 1]) - first if OFFSETS else np.int64(sb)
                p0 = first + n * lane // TY
                p1 = first + n * (lane + 1) // TY
            if n == 0:  # the same for the whole block: no thread reaches a barrier below
                if lane == 0:
                    for v in range(VEC):
                        e = e0 + v * TX
                        if e < D:
                            for k in range(NM):
                                out[b, k * D + e] = ZERO
                continue
            if READ:
                for i in range(N_TOT):
                    tot[i] = 0.0
                for v in range(VEC):
                    cnt[v] = 0
                    mx[v] = MAX0
                    mn[v] = MIN0
                for v in range(VEC):  # a tail tile's surplus features are not read
                    live[v] = e0 + v * TX < D
                rank = n * lane // TY  # of the token before the next one, 1-based
                for i in range(N_PART):
                    part[i] = ZERO
                steps = 0
                for q in range(p0, p1, STEP):
                    for u in range(STEP):  # the loads of a step, all before any use
                        p = min(q + u, p1 - 1)  # in bounds: a step past p1 reads p1 - 1
                        ok = q + u < p1
                        if MASKED and ok:
                            ok = mask[_u(b), _u(p)] != 0
                        oks[u] = ok
                        r = (row0 + p) * D + e0
                        for v in range(VEC):
                            vals[u * VEC + v] = ACC(x[_u(r + v * TX)]) if live[v] else ZERO
                    for u in range(STEP):
                        if oks[u] != 0:
                            p = q + u
                            rank += 1
                            c_pos = ACC(rank)
                            c_w = ACC(wts[_u(b * wb + p)]) if NEED_W else ZERO
                            c_a = ACC(atts[_u(b * wb + p)]) if NEED_ATT else ZERO
                            for v in range(VEC):
                                val = vals[u * VEC + v]
                                good = val == val
                                use = good or not OMIT
                                if COUNT and good:
                                    cnt[v] += 1
                                if P_S >= 0 and use:
                                    part[P_S * VEC + v] += val
                                if NEED_POS and use:
                                    part[P_PS * VEC + v] += c_pos * val
                                    if OMIT:
                                        part[P_PD * VEC + v] += c_pos
                                if NEED_W and use:
                                    part[P_WS * VEC + v] += c_w * val
                                    if OMIT:
                                        part[P_WD * VEC + v] += c_w
                                if NEED_ATT and use:
                                    part[P_AS * VEC + v] += c_a * val
                                    if OMIT:
                                        part[P_AD * VEC + v] += c_a
                                if R_MAX >= 0 and _take(mx[v], val, False, OMIT, ONE):
                                    mx[v] = val
                                if R_MIN >= 0 and _take(mn[v], val, True, OMIT, ONE):
                                    mn[v] = val
                    steps += 1
                    if steps == BLOCK // STEP or q + STEP >= p1:  # a block ends
                        for i in range(NP):  # its partials join the float64 totals
                            tot[i] += part[i]
                            part[i] = ZERO
                        steps = 0
                for v in range(VEC):
                    if COUNT:
                        tot[R_CNT * VEC + v] = cnt[v]
                    if R_MAX >= 0:
                        tot[R_MAX * VEC + v] = mx[v]
                    if R_MIN >= 0:
                        tot[R_MIN * VEC + v] = mn[v]
                # tree over the lanes: lane l takes lanes [l + s, l + 2s) (later tokens)
                s = 1
                while s < TY:
                    col = (lane // (2 * s)) * TX + f
                    if lane % (2 * s) == s:
                        for i in range(NR):
                            merge[i, col] = tot[i]
                    cuda.syncthreads()
                    if lane % (2 * s) == 0 and lane + s < TY:
                        mine = n * lane // TY < n * (lane + s) // TY  # tokens here, there
                        theirs = n * (lane + s) // TY < n * min(lane + 2 * s, TY) // TY
                        if theirs:
                            for i in range(NR):
                                w = merge[i, col]
                                r = i // VEC
                                if r == R_MAX:
                                    if not mine or _take(tot[i], w, False, OMIT, 1.0):
                                        tot[i] = w
                                elif r == R_MIN:
                                    if not mine or _take(tot[i], w, True, OMIT, 1.0):
                                        tot[i] = w
                                else:
                                    tot[i] += w
                    cuda.syncthreads()
                    s *= 2
            if lane != 0:
                continue
            # the first and last tokens' rows (read again: not kept in registers)
            if MASKED:  # bounds are rewritten only after the block's next barrier
                first = np.int64(bounds[0])
                last = np.int64(bounds[TY]) - 1
            else:
                first = _first(offs, b, OFFSETS)
                last = first + n - 1
            for v in range(VEC):
                e = e0 + v * TX
                if e >= D:
                    continue
                n_ok = tot[R_CNT * VEC + v] if COUNT else 0.0
                for k in range(NM):
                    mode = CODES[k]
                    o = k * D + e
                    if mode == M_CLS:
                        out[b, o] = x[_u((row0 + first) * D + e)]
                    elif mode == M_LAST:
                        out[b, o] = x[_u((row0 + last) * D + e)]
                    elif mode == M_MAX:
                        out[b, o] = ACC(tot[R_MAX * VEC + v])
                    elif mode == M_MIN:
                        out[b, o] = ACC(tot[R_MIN * VEC + v])
                    elif mode == M_SUM:
                        t = tot[P_S * VEC + v]
                        out[b, o] = NAN if OMIT and n_ok == 0.0 else ACC(t)
                    elif mode == M_MEAN or mode == M_MEAN_SQRT_LEN:
                        t = tot[P_S * VEC + v]
                        d = n_ok if OMIT else float(n)
                        if mode == M_MEAN_SQRT_LEN:
                            d = math.sqrt(d)
                        out[b, o] = NAN if OMIT and n_ok == 0.0 else ACC(t / d)
                    elif mode == M_WEIGHTED_MEAN:
                        out[b, o] = ACC(_ratio(tot[P_PS * VEC + v],
                                               tot[P_PD * VEC + v] if OMIT else 0.0, n_ok,
                                               float(n * (n + 1) // 2), OMIT))
                    elif mode == M_WEIGHTED:
                        out[b, o] = ACC(_ratio(tot[P_WS * VEC + v],
                                               tot[P_WD * VEC + v] if OMIT else 0.0, n_ok,
                                               wtot[b] if not OMIT else 0.0, OMIT))
                    elif mode == M_ATTENTION:
                        out[b, o] = ACC(_ratio(tot[P_AS * VEC + v],
                                               tot[P_AD * VEC + v] if OMIT else 0.0, n_ok,
                                               atot[b] if not OMIT else 0.0, OMIT))

    kernel.__name__ = kernel.__qualname__ = "token_kernel_" + _name(codes, omit, kind, wide,
                                                                     vec, tx, ty)
    if simulator():  # the simulator's jit takes no launch bounds
        return jit(cache=True)(kernel)
    # at least MIN_THREADS_PER_SM threads resident per multiprocessor: ptxas keeps the
    # kernel within 65536 / MIN_THREADS_PER_SM registers (64)
    return jit(cache=True, launch_bounds=(NT, max(1, MIN_THREADS_PER_SM // NT)))(kernel)


def _name(codes, omit, kind, wide, vec, tx, ty):
    """A short name of a specialisation (profilers show it; Numba's disk cache files are
    named after it, so that specialisations do not share an index)."""
    modes = "".join(map(str, codes))
    if len(modes) > 24:  # a long list of modes: a digest keeps the file names short
        modes = f"{zlib.crc32(modes.encode()):08x}"
    policy = "omit" if omit else "prop"
    return f"m{modes}_{policy}_{KINDS[kind]}_{'f64' if wide else 'f32'}_v{vec}x{tx}x{ty}"
