"""CPU kernels for token pooling (padded and packed sequences, every mode in one pass).

The hidden states reach the kernel as a read-only 1-D *arena*: a zero-copy view of the
memory spanned by the input.  Token ``p`` of sequence ``b`` starts at element
``base + b*seq_stride + p*token_stride`` (:class:`Arena`) and its D features are
contiguous.  Padded ``(B, L, D)`` input has ``p = l``; packed ``(T, D)`` input has
``seq_stride = 0`` and ``p = t``.  So any input whose feature axis is contiguous (slices,
reversed or transposed batch and sequence axes) is read in place, and padded and packed
inputs share one compiled kernel per dtype.

Sequence ``b`` holds ``count[b]`` tokens (:class:`~numbapool.token_plan.Sequences`):
positions ``first[b] + j`` when they are one run (no mask, left or right padding, packed),
else ``positions[first[b] + j]`` (a mask with holes).

A task is a run of whole tokens ``[j0, j1)`` of one sequence.  Whole rows are read, since
the hardware prefetchers follow contiguous streams, not strided ones; so parallelism comes
from sequences and, when there are too few of them for every core, from splitting long
sequences into several tasks.  Within a task a run of plain tokens is read as
:data:`STREAMS` streams side by side.  A task that covers its whole sequence writes the
result directly; the pieces of a split sequence leave partial accumulators in
:class:`Parts`, which :func:`combine_tasks` merges once every thread is done.  For each token
the inner loops run over the contiguous features with no data-dependent branches (NaN is
handled with selects), so LLVM vectorises them.

The modes are a runtime array of codes (:data:`numbapool.token_plan.MODE_CODES`), not a
compile per combination: the kernel updates only the accumulators those modes need
(:class:`~numbapool.token_plan.Needs`) and fills each output slot from them.  Linear modes
are ``sum(c_j * x_j) / sum(c_j)`` with a per-token coefficient ``c_j``: 1 (sum, mean,
mean_sqrt_len), ``j`` (weighted_mean), ``weights`` (weighted) or
``exp(score_j - max score)`` (attention, a stable softmax).

Accumulation rule (every linear accumulator: the sums of values and of ``c_j * x_j``, and
under omit their per-feature sums of ``c_j``): sums are *blocked*.  A task adds its tokens
in the accumulator dtype (float32 for float16 and float32 data) into a partial sum per
feature; at the end of a block the partial is added into a float64 total and the next
block starts from zero.  A task's first block is :data:`FIRST_BLOCK` tokens, each later
block :data:`BLOCK` additions: tokens when they are read one at a time, steps when a run
is read as :data:`STREAMS` streams (a step adds the tree sum of one row of each).  The
pieces of a split sequence are merged in float64 in token order, and every result is
computed in float64 from the totals and rounded once to the accumulator dtype (then to
the output's).  So a float32 sequence of a million tokens comes out about as exact as its
float64 sum rounded to float32, while the vectorised per-token loops stay in float32, the
float64 work is one add per feature per block, and a sequence of up to FIRST_BLOCK tokens
is one block, with no flush at all.  The coefficient totals (weights,
softmax terms) are float64 sums of the coefficients as rounded to the accumulator dtype,
the same values that multiply the tokens.  Max and min are exact and do not depend on the
order of the tokens.
"""

from typing import NamedTuple

import numpy as np
from numba import njit, types
from numba.extending import overload
from numba.np.numpy_support import as_dtype

from .. import token_plan
from ..token_plan import (
    M_CLS, M_LAST, M_MAX, M_MEAN, M_MEAN_SQRT_LEN, M_MIN, M_SUM, M_WEIGHTED, M_WEIGHTED_MEAN,
    Sequences,
)
from .jit import helper
from .half import _u32_as_f32, load, store
from .ieee import maximum, maximum_number, minimum, minimum_number
from .specialise import FLAG_PAIRS, constant_switch, literal

# rows of a task's accumulator block (A_*: acc dtype; the linear rows hold the partial of
# the last block) and of its float64 totals (the linear rows only: the earlier blocks)
A_SUM, A_POS, A_W, A_ATT, A_MAX, A_MIN, A_POS_DEN, A_W_DEN, A_ATT_DEN = range(9)
N_ACC = 9
#: The rows that are sums (of values or of coefficients), cleared per task and added when
#: the parts of a split sequence merge; ``_linear_wanted`` says which the modes use.
LINEAR_ROWS = (A_SUM, A_POS, A_W, A_ATT, A_POS_DEN, A_W_DEN, A_ATT_DEN)
# entries of a task's float64 ``tot``: the totals of the weights and of the softmax terms,
# and whether its linear totals hold earlier blocks (1) or its sums are one block (0)
T_W, T_ATT, T_FLUSHED = 0, 1, 2
N_TOT = 3


class Arena(NamedTuple):
    """Where the tokens are in the arena: D ``features`` per token, token ``p`` of sequence
    ``b`` at ``base + b*seq_stride + p*token_stride``."""

    features: int
    base: int
    seq_stride: int
    token_stride: int


class Coefficients(NamedTuple):
    """Per-token ``weights`` and ``scores`` (float64): position ``p`` of sequence ``b`` is
    entry ``b*stride + p``."""

    weights: np.ndarray
    scores: np.ndarray
    stride: int


class Tasks(NamedTuple):
    """Task ``t`` folds tokens ``[j0[t], j1[t])`` of sequence ``seq[t]``; ``part[t]`` is its
    row of :class:`Parts`, or -1 for a whole sequence, written directly.  All empty: task
    ``t`` is sequence ``t``, whole."""

    seq: np.ndarray
    j0: np.ndarray
    j1: np.ndarray
    part: np.ndarray


class Splits(NamedTuple):
    """Sequence ``seq[s]`` was split and left its pieces in part rows
    ``rows[s]:rows[s + 1]``, in token order."""

    seq: np.ndarray
    rows: np.ndarray


class Parts(NamedTuple):
    """Partial accumulators of the pieces of split sequences, one row per piece: ``acc``
    (accumulator dtype: max, min, block scratch), ``hi`` (float64 totals of the linear
    rows), NaN-free counts and coefficient totals."""

    acc: np.ndarray
    hi: np.ndarray
    cnt: np.ndarray
    tot: np.ndarray


mask_runs = helper(token_plan.mask_runs)


def row_values(src, vbuf):
    """The values of one token's features, ready for arithmetic.

    float32/float64 rows are used in place; float16 rows (:data:`~numbapool._cpu.half.HALF`)
    are decoded once into ``vbuf`` so that every mode's loop reads plain float32.
    """


@helper
def _decode_half_row(src, vbuf):
    """float16 bits -> float32, exact and branch-free, so the loop vectorises.

    The 15 magnitude bits shifted into float32's place are the value times 2**-112 (for
    subnormal halves too, as a float32 subnormal), so one multiply restores it; inf and NaN
    (exponent 31) get float32's all-ones exponent.  Equal to the scalar
    ``half_bits_to_f32`` on all 65536 inputs, and vectorised where that is not
    (``benchmarks/bench_design.py`` compares the two).
    """
    for e in range(vbuf.shape[0]):
        h = np.uint32(src[e].bits)
        o = (h & np.uint32(0x7FFF)) << np.uint32(13)
        f = _u32_as_f32(o) * np.float32(5.192296858534828e33)  # 2**112
        special = (h & np.uint32(0x7C00)) == np.uint32(0x7C00)
        f = _u32_as_f32(o | np.uint32(0x7F800000)) if special else f
        vbuf[e] = -f if h & np.uint32(0x8000) else f


@overload(row_values)
def _ol_row_values(src, vbuf):
    if isinstance(src.dtype, types.Record):

        def decode(src, vbuf):
            _decode_half_row(src, vbuf)
            return vbuf

        return decode
    return lambda src, vbuf: src


def cast(zero, v):
    """``v`` converted to the type of ``zero`` (the accumulator type)."""


@overload(cast)
def _ol_cast(zero, v):
    to = as_dtype(zero).type
    return lambda zero, v: to(v)


def quotient(zero, s, d, inv):
    """The float64 ``s / d`` rounded to the type of ``zero``, given ``inv = 1 / d``.

    A float32 result is ``s * inv``: a multiply, where a vector of float64 divides costs as
    much as summing a short sequence, and within a float64 rounding of ``s / d`` before
    the rounding to float32.  A float64 result is the division itself.
    """


@overload(quotient)
def _ol_quotient(zero, s, d, inv):
    if as_dtype(zero) == np.float64:
        return lambda zero, s, d, inv: s / d
    to = as_dtype(zero).type
    return lambda zero, s, d, inv: to(s * inv)


@helper
def _linear_wanted(needs):
    """For each of LINEAR_ROWS, whether the modes (a :class:`~numbapool.token_plan.Needs`)
    use it."""
    return (needs.sum, needs.pos, needs.w, needs.att, needs.pos, needs.w, needs.att)


# The small helpers below are inlined where they are called: passed constant rows (A_SUM,
# 0) as literal arguments, a separately compiled helper would be compiled once per value.


@helper(inline="always")
def _position(seqs, b, j):
    return seqs.positions[seqs.first[b] + j] if seqs.indexed else seqs.first[b] + j


# --------------------------------------------------------------------------- planning
# Serial and compiled once (no dtype in their signatures): the same work in NumPy takes a
# dozen array calls, a noticeable share of a pooling call.


@helper
def plan_tasks(count, n_threads, piece_min):
    """Tasks, split sequences and chunk boundaries for ``n_threads`` threads.

    One task per sequence, unless some sequence holds more than a ``1 / (4 * n_threads)``
    share of all tokens: those are cut into pieces of about that share (at least
    ``piece_min`` tokens), whose partial results go to part rows.  Returns
    :class:`Tasks`, :class:`Splits` and ``cuts``: chunk ``k`` is tasks
    ``cuts[k]:cuts[k+1]``, about equal work (tokens, plus one per task) each.  When no
    sequence is split the task arrays are empty: task ``t`` is then sequence ``t``, whole.
    """
    B = count.shape[0]
    total = count.sum()
    piece = 0
    if n_threads > 1:
        piece = max(piece_min, -(-total // (4 * n_threads)))
    n_tasks = 0
    n_split = 0
    for b in range(B):
        k = 1 if piece == 0 or count[b] <= piece else -(-count[b] // piece)
        n_tasks += k
        n_split += k > 1
    n_listed = n_tasks if n_split else 0  # no split: task t is sequence t, whole
    seq = np.empty(n_listed, np.int64)
    j0 = np.empty(n_listed, np.int64)
    j1 = np.empty(n_listed, np.int64)
    part = np.full(n_listed, -1, np.int64)
    split_seq = np.empty(n_split, np.int64)
    split_rows = np.zeros(n_split + 1, np.int64)
    t = 0
    s = 0
    for b in range(B if n_split else 0):
        n = count[b]
        k = 1 if piece == 0 or n <= piece else -(-n // piece)
        if k > 1:
            split_seq[s] = b
            split_rows[s + 1] = split_rows[s] + k
        for i in range(k):
            seq[t] = b
            j0[t] = n * i // k
            j1[t] = n * (i + 1) // k
            if k > 1:
                part[t] = split_rows[s] + i
            t += 1
        s += k > 1
    n_chunks = max(1, min(n_tasks, 4 * n_threads)) if n_threads > 1 else 1
    cuts = np.empty(n_chunks + 1, np.int64)
    cuts[0] = 0
    work = total + n_tasks
    done = 0
    t = 0
    for c in range(1, n_chunks):
        target = work * c // n_chunks
        while t < n_tasks:
            size = (j1[t] - j0[t] if n_split else count[t]) + 1
            if done + size > target:
                break
            done += size
            t += 1
        cuts[c] = t
    cuts[n_chunks] = n_tasks
    return Tasks(seq, j0, j1, part), Splits(split_seq, split_rows), cuts


# --------------------------------------------------------------------------- pooling


# The per-token loops below are small separate functions, one per case, chosen outside
# them: a runtime flag tested inside one function keeps LLVM from inlining it.  Max and
# min are IEEE 754-2019's (see ieee.py): the same bits in whatever order tokens are
# combined.


@helper
def _add(acc, v):
    """``acc += v``: the hot loop of mean pooling, one vector add."""
    for e in range(acc.shape[0]):
        acc[e] += v[e]


@helper
def _assign(m, v):
    for e in range(m.shape[0]):
        m[e] = v[e]


#: The IEEE rule of each ``(is_min, omit)`` pair: NaN propagates under "propagate" and is
#: skipped under "omit".
EXTREME_RULES = {(False, False): maximum, (True, False): minimum,
                 (False, True): maximum_number, (True, True): minimum_number}


def update_extreme(m, v, is_min, omit):
    """``m[e] = rule(m[e], v[e])`` with the rule of :data:`EXTREME_RULES`; the flags must be
    constants (one vectorised loop each; :data:`_update_extreme` takes runtime flags)."""


@overload(update_extreme, prefer_literal=True)
def _ol_update_extreme(m, v, is_min, omit):
    rule = EXTREME_RULES[(literal(is_min, "is_min"), literal(omit, "omit"))]

    def impl(m, v, is_min, omit):
        for e in range(m.shape[0]):
            m[e] = rule(m[e], v[e])

    return impl


_update_extreme = constant_switch(update_extreme, ("m", "v", "is_min", "omit"),
                                  ("is_min", "omit"), FLAG_PAIRS, exhaustive=True)


@helper
def _add_update_max(acc, m, v):
    """``_add`` and a propagating max fused (mean and max together: one pass over ``v``)."""
    for e in range(acc.shape[0]):
        acc[e] += v[e]
        m[e] = maximum(m[e], v[e])


#: A run of plain tokens is read as this many streams side by side (the run cut in four),
#: each step folding one row of each as a tree: the accumulators are loaded and stored once
#: per four rows, and more memory requests are in flight than with one row at a time.
#: ``benchmarks/bench_design.py`` compares the two; ``benchmarks/design_choices.md`` records
#: where the gain was measured (the folds with max or min) and where it was not.
STREAMS = 4
#: Additions into a partial sum per block after a task's first block (see the module
#: docstring): tokens when they are read one at a time, steps when a run is read as
#: :data:`STREAMS` streams (a step adds the tree sum of four rows).  The rounding error of
#: a float32 partial grows with its additions, and each flush into the float64 totals
#: costs about as much as a step.
BLOCK = 16
#: Tokens of a task's first block (``FIRST_BLOCK // STREAMS`` steps of the streams).  The
#: blocks' rounding errors add up, so one long block costs a long sequence little
#: accuracy, while sequences up to this length, the common case, need no flush at all.
FIRST_BLOCK = 256


# A task's float64 totals are the rows of its ``hi`` (N_ACC, D) array, passed with the row
# index rather than as a row view: a view costs reference-count updates, per sequence.


@helper(inline="always")
def _flush(hi, r, part, first):
    """The end of a block that is not a task's last: its partial ``part`` added into the
    float64 total ``hi[r]`` (which the task's ``first`` block sets instead, so totals need
    no clearing), and cleared for the next block.

    A task's last block stays in ``part`` (:func:`_total` adds it): most sequences are one
    block, and their sums never touch ``hi``.
    """
    if first:
        for e in range(part.shape[0]):
            hi[r, e] = part[e]
            part[e] = 0
    else:
        for e in range(part.shape[0]):
            hi[r, e] += part[e]
            part[e] = 0


@helper(inline="always")
def _total(part, hi, r, flushed, e):
    """Feature ``e``'s float64 sum: the last block's ``part``, plus the earlier blocks'
    ``hi[r]`` when there were (``flushed``)."""
    return hi[r, e] + part[e] if flushed else float(part[e])


@helper
def _plain_max(a, b):
    """``a > b ? a : b``, one instruction (``maxps``): no NaN or signed-zero rule."""
    return a if a > b else b


@helper
def _plain_min(a, b):
    return a if a < b else b


def fold_step4(acc, mx, mn, v0, v1, v2, v3, do_max, do_min):
    """One step of :data:`STREAMS` streams: ``acc += v0 + v1 + v2 + v3`` as a tree, and the
    running ``mx``/``mn`` updated with plain compares when the constant flags ask.

    Sum and extremes share one loop, since a loop per accumulator reads the rows again.
    :func:`_fold_run` checks the result and redoes the rare run whose extremes the plain
    compares may have got wrong.
    """


@overload(fold_step4, prefer_literal=True)
def _ol_fold_step4(acc, mx, mn, v0, v1, v2, v3, do_max, do_min):
    MAX, MIN = literal(do_max, "do_max"), literal(do_min, "do_min")

    def impl(acc, mx, mn, v0, v1, v2, v3, do_max, do_min):
        for e in range(acc.shape[0]):
            acc[e] += (v0[e] + v1[e]) + (v2[e] + v3[e])
            if MAX:  # a constant: the branch is gone before LLVM vectorises
                top = _plain_max(_plain_max(v0[e], v1[e]), _plain_max(v2[e], v3[e]))
                mx[e] = _plain_max(mx[e], top)
            if MIN:
                low = _plain_min(_plain_min(v0[e], v1[e]), _plain_min(v2[e], v3[e]))
                mn[e] = _plain_min(mn[e], low)

    return impl


_fold_step4 = constant_switch(fold_step4, ("acc", "mx", "mn", "v0", "v1", "v2", "v3",
                                           "do_max", "do_min"),
                              ("do_max", "do_min"), FLAG_PAIRS, exhaustive=True)


@helper
def _fold_rows(a_sum, a_max, a_min, x, off, step, n, vbuf, do_sum, do_max, do_min):
    """Fold ``n`` token rows at ``off``, ``off + step``, ..., one at a time, into the running
    sum and IEEE max/min."""
    D = a_sum.shape[0]
    for j in range(n):
        v = row_values(x[off:off + D], vbuf)
        off += step
        if do_sum:
            _add(a_sum, v)
        if do_max:
            update_extreme(a_max, v, False, False)
        if do_min:
            update_extreme(a_min, v, True, False)


@helper
def _fold_streams(a_sum, hi, a_max, a_min, rows, x, off, step, q, do_sum, do_max, do_min):
    """Fold STREAMS streams of ``q`` rows from ``off``, stream ``s`` starting at
    ``off + s*q*step``, into the blocked sum (partial ``a_sum``, flushed into the total
    ``hi[A_SUM]`` at the end of each block but the last) and plain max/min.  Without
    ``do_sum`` the sum only detects NaN (:func:`_unsure`) and is one block."""
    D = a_sum.shape[0]
    buf0, buf1, buf2, buf3 = rows[0], rows[1], rows[2], rows[3]
    off1 = off + q * step
    off2 = off1 + q * step
    off3 = off2 + q * step
    k = 0
    end = min(FIRST_BLOCK // STREAMS, q) if do_sum else q
    while k < q:
        for j in range(k, end):
            o = j * step
            v0 = row_values(x[off + o:off + o + D], buf0)
            v1 = row_values(x[off1 + o:off1 + o + D], buf1)
            v2 = row_values(x[off2 + o:off2 + o + D], buf2)
            v3 = row_values(x[off3 + o:off3 + o + D], buf3)
            _fold_step4(a_sum, a_max, a_min, v0, v1, v2, v3, do_max, do_min)
        if end < q:
            _flush(hi, A_SUM, a_sum, k == 0)
        k = end
        end = min(k + BLOCK, q)


@helper
def _unsure(a_sum, hi, flushed, a_max, a_min, do_max, do_min):
    """Whether plain compares may have got a run's max or min wrong: a NaN among its values
    (which makes the sum NaN: its last block ``a_sum`` or, when ``flushed``, the earlier
    blocks' ``hi[A_SUM]``; an inf - inf sum only costs a needless redo), or an extreme of
    zero (the plain compare keeps either sign of two equal zeros)."""
    bad = False
    for e in range(a_sum.shape[0]):
        bad |= a_sum[e] != a_sum[e]
        bad |= flushed and hi[A_SUM, e] != hi[A_SUM, e]
        bad |= do_max and a_max[e] == 0
        bad |= do_min and a_min[e] == 0
    return bad


@helper
def _fold_run(a_sum, hi, a_max, a_min, rows, x, off, step, n, do_sum, do_max, do_min):
    """The common modes (sum, max, min; NaN propagating) over a run of ``n`` plain tokens.

    Stream ``s`` is tokens ``[s*q, (s+1)*q)`` with ``q = n // STREAMS``; the ``n % STREAMS``
    tokens after them follow one at a time, with the IEEE rule.  The streams' max and min
    are taken with plain compares in the same loop as the sum (kept in ``a_sum`` even when
    no mode wants it; the caller clears it when one does); a run the sum or the extremes
    show to need IEEE's NaN and signed-zero rules is read again, one row at a time with
    them.  ``rows``: STREAMS float16 decode buffers.  The flags are tested outside the
    feature loops, and each fold has one call site (every copy adds to the compile time).
    A block of the sum is steps of the streams (FIRST_BLOCK // STREAMS, then BLOCK); the
    tail is added to the last block's partial.  Returns whether earlier blocks were flushed
    into ``hi[A_SUM]`` (see :func:`_total`).
    """
    if not (do_sum or do_max or do_min):  # only cls / last: nothing to read
        return False
    q = n // STREAMS
    flushed = do_sum and q > FIRST_BLOCK // STREAMS
    if not do_sum:
        a_sum[:] = 0
    for redo in range(2):
        if redo and not (q and (do_max or do_min) and _unsure(a_sum, hi, flushed, a_max,
                                                                a_min, do_max, do_min)):
            return flushed
        if do_max:
            a_max[:] = -np.inf
        if do_min:
            a_min[:] = np.inf
        first = STREAMS * q
        if redo:
            first = 0
        else:
            _fold_streams(a_sum, hi, a_max, a_min, rows, x, off, step, q, do_sum, do_max,
                          do_min)
        _fold_rows(a_sum, a_max, a_min, x, off + first * step, step, n - first, rows[0],
                   not redo, do_max, do_min)
    return flushed


@helper
def _add_scaled(acc, v, c):
    for e in range(acc.shape[0]):
        acc[e] += c * v[e]


@helper
def _add_scaled_omit(acc, den, v, c, zero):
    """``acc += c * v`` and ``den += c`` where ``v`` is not NaN."""
    for e in range(acc.shape[0]):
        ok = v[e] == v[e]
        acc[e] += c * v[e] if ok else zero
        den[e] += c if ok else zero


@helper
def _add_omit(acc, v, zero):
    for e in range(acc.shape[0]):
        acc[e] += v[e] if v[e] == v[e] else zero


@helper
def _count_valid(cnt, v):
    for e in range(cnt.shape[0]):
        cnt[e] += v[e] == v[e]


@helper
def _linear(acc, den, v, c, zero, omit):
    if omit:
        _add_scaled_omit(acc, den, v, c, zero)
    else:
        _add_scaled(acc, v, c)


@helper
def _score_max(seqs, coefs, b, n):
    m = -np.inf
    for j in range(n):
        m = max(m, coefs.scores[b * coefs.stride + _position(seqs, b, j)])
    return m


@helper
def _flush_linear(acc, hi, wanted, first):
    """:func:`_flush` of each wanted linear row of ``acc`` into its row of ``hi``."""
    for i in range(len(LINEAR_ROWS)):
        if wanted[i]:
            _flush(hi, LINEAR_ROWS[i], acc[LINEAR_ROWS[i]], first)


@helper
def accumulate(x, acc, hi, cnt, tot, rows, b, j0, j1, arena, seqs, coefs, needs, omit,
               zero):
    """Fold tokens ``[j0, j1)`` of sequence ``b`` into ``acc`` (rows A_*), ``hi``, ``cnt``,
    ``tot``.

    The linear rows are summed in blocks (see the module docstring): on return their rows
    of ``acc`` hold the last block's partials and, when ``tot[T_FLUSHED]`` says so, their
    rows of ``hi`` the float64 sums of the earlier blocks (:func:`_total` adds the two).
    ``rows``: STREAMS buffers for decoded float16 token rows.
    """
    D, sl = arena.features, arena.token_stride
    wts, sco, wb = coefs.weights, coefs.scores, coefs.stride
    need_sum, need_pos, need_w, need_att, need_max, need_min = needs
    # only the partials the modes use are cleared (a row each per sequence adds up); their
    # float64 totals are set by the first flush, if any
    wanted = _linear_wanted(needs)
    for i in range(len(LINEAR_ROWS)):
        if wanted[i]:
            acc[LINEAR_ROWS[i], :] = zero
    if omit:
        cnt[:] = 0
    tot[:] = 0.0
    smax = _score_max(seqs, coefs, b, seqs.count[b]) if need_att else 0.0
    row0 = arena.base + b * arena.seq_stride
    # row views made once, not per token (each view costs reference-count updates)
    a_sum, a_pos, a_w, a_att = acc[A_SUM], acc[A_POS], acc[A_W], acc[A_ATT]
    d_pos, d_w, d_att = acc[A_POS_DEN], acc[A_W_DEN], acc[A_ATT_DEN]
    a_max, a_min = acc[A_MAX], acc[A_MIN]
    linear = need_sum | need_pos | need_w | need_att
    if not (need_pos | need_w | need_att | omit | seqs.indexed):  # a run of plain tokens
        tot[T_FLUSHED] = _fold_run(a_sum, hi, a_max, a_min, rows, x,
                                   row0 + (seqs.first[b] + j0) * sl, sl, j1 - j0, need_sum,
                                   need_max, need_min)
        return
    vbuf = rows[0]
    tot[T_FLUSHED] = j1 - j0 > FIRST_BLOCK
    jb = j0
    je = min(j0 + FIRST_BLOCK, j1)
    while jb < j1:  # blocks [jb, je)
        for j in range(jb, je):
            p = _position(seqs, b, j)
            off = row0 + p * sl
            v = row_values(x[off:off + D], vbuf)
            if omit and linear:
                _count_valid(cnt, v)
            fused = need_sum and need_max and j > j0 and not omit
            if fused:
                _add_update_max(a_sum, a_max, v)
            elif need_sum:
                if omit:
                    _add_omit(a_sum, v, zero)
                else:
                    _add(a_sum, v)
            if need_pos:
                _linear(a_pos, d_pos, v, cast(zero, j + 1), zero, omit)
            if need_w:
                c = cast(zero, wts[b * wb + p])
                tot[T_W] += c
                _linear(a_w, d_w, v, c, zero, omit)
            if need_att:
                c = cast(zero, np.exp(sco[b * wb + p] - smax))
                tot[T_ATT] += c
                _linear(a_att, d_att, v, c, zero, omit)
            if need_max and not fused:
                if j == j0:
                    _assign(a_max, v)
                else:
                    _update_extreme(a_max, v, False, omit)
            if need_min:
                if j == j0:
                    _assign(a_min, v)
                else:
                    _update_extreme(a_min, v, True, omit)
        if je < j1:
            _flush_linear(acc, hi, wanted, jb == j0)
        jb = je
        je = min(jb + BLOCK, j1)


# The results below are computed in float64 from the blocked sums (a row of ``acc`` and
# row ``r`` of ``hi``, see _total) and rounded once, to the accumulator type (then to the
# output's).


@helper
def _ratio(o, acc, den, hi, r, r_den, flushed, cnt, total, zero, omit):
    """``acc / total`` into ``o``; a zero total leaves ``acc`` (0, or NaN under propagate).

    Under omit the per-feature ``den`` replaces ``total`` and a feature whose tokens are all
    NaN gives NaN.
    """
    if omit:
        nan = cast(zero, np.nan)
        for e in range(o.shape[0]):
            a = _total(acc, hi, r, flushed, e)
            d = _total(den, hi, r_den, flushed, e)
            if cnt[e] == 0:
                store(o, e, nan)
            elif d > 0.0:
                store(o, e, cast(zero, a / d))
            else:
                store(o, e, cast(zero, a))
    elif total > 0.0:
        for e in range(o.shape[0]):
            store(o, e, cast(zero, _total(acc, hi, r, flushed, e) / total))
    else:
        for e in range(o.shape[0]):
            store(o, e, cast(zero, _total(acc, hi, r, flushed, e)))


@helper
def _sum_out(o, acc, hi, flushed, cnt, zero, omit):
    """The sum; under omit a feature whose tokens are all NaN gives NaN."""
    nan = cast(zero, np.nan)
    for e in range(o.shape[0]):
        s = cast(zero, _total(acc, hi, A_SUM, flushed, e))
        store(o, e, nan if omit and cnt[e] == 0 else s)


@helper
def _mean(o, acc, hi, flushed, cnt, n, sqrt, zero, omit):
    """``sum / n`` (or ``/ sqrt(n)``); under omit n is each feature's count of non-NaNs."""
    if omit:
        nan = cast(zero, np.nan)
        for e in range(o.shape[0]):
            d = float(cnt[e])
            d = np.sqrt(d) if sqrt else d
            s = _total(acc, hi, A_SUM, flushed, e)
            store(o, e, cast(zero, s / d) if cnt[e] else nan)
    else:
        d = float(n)
        d = np.sqrt(d) if sqrt else d
        inv = 1.0 / d
        if flushed:  # tested outside the loops, which vectorise
            for e in range(o.shape[0]):
                store(o, e, quotient(zero, hi[A_SUM, e] + acc[e], d, inv))
        else:
            for e in range(o.shape[0]):
                store(o, e, quotient(zero, float(acc[e]), d, inv))


@helper
def _copy_token(o, x, off):
    for e in range(o.shape[0]):
        store(o, e, load(x, off + e))


@helper
def finish(dst, x, acc, hi, cnt, tot, b, arena, seqs, codes, omit, zero):
    """Write every mode's slot of ``dst`` (``out[b]``) from a whole sequence's accumulators
    (:func:`accumulate`'s)."""
    D, sl = arena.features, arena.token_stride
    n = seqs.count[b]
    row0 = arena.base + b * arena.seq_stride
    fl = tot[T_FLUSHED] != 0
    for k in range(codes.shape[0]):
        o = dst[k * D:(k + 1) * D]
        c = codes[k]
        if c == M_CLS:
            _copy_token(o, x, row0 + _position(seqs, b, 0) * sl)
        elif c == M_LAST:
            _copy_token(o, x, row0 + _position(seqs, b, n - 1) * sl)
        elif c == M_MAX:
            for e in range(D):
                store(o, e, acc[A_MAX, e])
        elif c == M_MIN:
            for e in range(D):
                store(o, e, acc[A_MIN, e])
        elif c == M_SUM:
            _sum_out(o, acc[A_SUM], hi, fl, cnt, zero, omit)
        elif c == M_MEAN or c == M_MEAN_SQRT_LEN:  # one call site: one compile
            _mean(o, acc[A_SUM], hi, fl, cnt, n, c == M_MEAN_SQRT_LEN, zero, omit)
        else:  # the ratios, again through one call site
            if c == M_WEIGHTED_MEAN:
                r, r_den, total = A_POS, A_POS_DEN, float(n * (n + 1) // 2)
            elif c == M_WEIGHTED:
                r, r_den, total = A_W, A_W_DEN, tot[T_W]
            else:
                r, r_den, total = A_ATT, A_ATT_DEN, tot[T_ATT]
            _ratio(o, acc[r], acc[r_den], hi, r, r_den, fl, cnt, total, zero, omit)


@njit(cache=True, nogil=True)
def token_tasks(x, out, t0, t1, arena, seqs, tasks, coefs, codes, needs, omit, zero, parts):
    """Run tasks ``[t0, t1)`` of :class:`Tasks` ``tasks`` (empty: task ``t`` is sequence
    ``t``, whole).

    A task with ``part == -1`` covers its whole sequence and writes ``out[b]`` (``(M*D,)``,
    slot ``k`` holds mode ``codes[k]``); the others leave their accumulators in row
    ``part`` of :class:`Parts` ``parts``.
    """
    D = arena.features
    acc = np.empty((N_ACC, D), np.asarray(zero).dtype)
    hi = np.empty((N_ACC, D))
    cnt = np.zeros(D, np.int64)
    tot = np.zeros(N_TOT)
    rows = np.empty((STREAMS, D), acc.dtype)
    listed = tasks.seq.shape[0] > 0
    for t in range(t0, t1):
        b = tasks.seq[t] if listed else t
        if seqs.count[b] == 0:
            o = out[b]
            for e in range(o.shape[0]):
                store(o, e, zero)
            continue
        r = tasks.part[t] if listed else -1
        j0 = tasks.j0[t] if listed else 0
        j1 = tasks.j1[t] if listed else seqs.count[b]
        if r < 0:
            accumulate(x, acc, hi, cnt, tot, rows, b, j0, j1, arena, seqs, coefs, needs,
                       omit, zero)
            finish(out[b], x, acc, hi, cnt, tot, b, arena, seqs, codes, omit, zero)
        else:
            accumulate(x, parts.acc[r], parts.hi[r], parts.cnt[r], parts.tot[r], rows, b,
                       j0, j1, arena, seqs, coefs, needs, omit, zero)


@njit(cache=True)
def combine_tasks(x, out, s0, s1, arena, seqs, splits, codes, needs, omit, zero, parts):
    """Merge the parts of split sequences ``splits.seq[s0:s1]`` and write their results.

    Each sequence's pieces, in token order, are folded into its first part row: the sums
    of each piece (:func:`_total`) are added into its float64 totals.
    """
    D = arena.features
    wanted = _linear_wanted(needs)
    for s in range(s0, s1):
        b = splits.seq[s]
        r0 = splits.rows[s]
        acc, hi, cnt, tot = parts.acc[r0], parts.hi[r0], parts.cnt[r0], parts.tot[r0]
        # the first piece's last block joins its totals: the row then holds no partial
        _flush_linear(acc, hi, wanted, tot[T_FLUSHED] == 0)
        tot[T_FLUSHED] = 1
        for r in range(r0 + 1, splits.rows[s + 1]):
            src = parts.acc[r]
            src_hi = parts.hi[r]
            src_fl = parts.tot[r, T_FLUSHED] != 0
            for i in range(len(LINEAR_ROWS)):
                if wanted[i]:
                    row = LINEAR_ROWS[i]
                    v = src[row]
                    for e in range(D):
                        hi[row, e] += _total(v, src_hi, row, src_fl, e)
            if needs.max:
                _update_extreme(acc[A_MAX], src[A_MAX], False, omit)
            if needs.min:
                _update_extreme(acc[A_MIN], src[A_MIN], True, omit)
            if omit:  # NaN-free counts are only kept (and cleared) under omit
                c = parts.cnt[r]
                for e in range(D):
                    cnt[e] += c[e]
            tot[T_W] += parts.tot[r, T_W]
            tot[T_ATT] += parts.tot[r, T_ATT]
        finish(out[b], x, acc, hi, cnt, tot, b, arena, seqs, codes, omit, zero)


@helper
def _sequences(masked, mask, runs):
    """The :class:`~numbapool.token_plan.Sequences` of the rows of the bool ``mask`` when
    ``masked``, else of ``runs = (first, count)`` (packed, or no mask)."""
    if masked:
        return mask_runs(mask)
    return Sequences(runs[0], runs[1], np.zeros(0, np.int64), False)


@helper
def _part_rows(n, D, zero):
    """:class:`Parts` with ``n`` rows, one for each piece of a split sequence."""
    return Parts(np.empty((n, N_ACC, D), np.asarray(zero).dtype), np.empty((n, N_ACC, D)),
                 np.empty((n, D), np.int64), np.empty((n, N_TOT)))


@njit(cache=True, nogil=True)
def token_serial(x, out, arena, masked, mask, runs, coefs, codes, needs, omit, zero):
    """Pool every sequence on this thread (small inputs): one whole-sequence task each."""
    seqs = _sequences(masked, mask, runs)
    none = np.zeros(0, np.int64)
    # t0 as an int64, not a literal 0: the threads call token_tasks from Python, and a
    # literal would make this a second signature, compiled again on the first large input
    token_tasks(x, out, np.int64(0), out.shape[0], arena, seqs, Tasks(none, none, none, none),
                coefs, codes, needs, omit, zero, _part_rows(0, arena.features, zero))


@njit(cache=True)
def token_schedule(masked, mask, runs, n_threads, piece_min, D, zero):
    """The work of a call on ``n_threads`` threads: the sequences (as in
    :func:`token_serial`), the tasks, split sequences and chunk boundaries of
    :func:`plan_tasks` (``piece_min`` as there), and the :class:`Parts` for the pieces of
    split sequences.  One call from Python plans it all (each call costs microseconds);
    the threads then run :func:`token_tasks` over ranges of chunks, and
    :func:`combine_tasks` merges the split sequences.
    """
    seqs = _sequences(masked, mask, runs)
    tasks, splits, cuts = plan_tasks(seqs.count, n_threads, piece_min)
    return seqs, tasks, splits, cuts, _part_rows(splits.rows[-1], D, zero)
