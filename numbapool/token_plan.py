"""The execution plan of a token pooling, shared by the public function and every backend.

:class:`TokenPlan` says which tokens make up each sequence and which modes to compute.  The
mode codes and the accumulators each mode needs are defined here once; both backends read
them from this module, and nothing here imports a backend or Numba's compiler.

:func:`mask_runs` is the host-side planner of a padded batch's mask.  It is plain Python,
compiled by each backend with ``njit`` where it is used (as :mod:`numbapool._arith` is), so
importing this module stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

#: The pooling modes, in the order of their codes (the kernels' runtime mode flags).
TOKEN_MODES = ("cls", "last", "mean", "sum", "max", "min", "mean_sqrt_len", "weighted_mean",
               "weighted", "attention")
MODE_CODES = {name: code for code, name in enumerate(TOKEN_MODES)}
(M_CLS, M_LAST, M_MEAN, M_SUM, M_MAX, M_MIN, M_MEAN_SQRT_LEN, M_WEIGHTED_MEAN, M_WEIGHTED,
 M_ATTENTION) = range(len(TOKEN_MODES))


class Needs(NamedTuple):
    """Which accumulators the requested modes use (see :data:`NEEDED_BY`)."""

    sum: bool
    pos: bool
    w: bool
    att: bool
    max: bool
    min: bool


#: The modes that need each accumulator, in the order of :class:`Needs`' fields: a running
#: sum, a position-weighted sum, a weighted sum, a softmax-weighted sum, a max and a min.
NEEDED_BY = Needs(sum=(M_MEAN, M_SUM, M_MEAN_SQRT_LEN), pos=(M_WEIGHTED_MEAN,),
                  w=(M_WEIGHTED,), att=(M_ATTENTION,), max=(M_MAX,), min=(M_MIN,))


class Sequences(NamedTuple):
    """The tokens of each sequence: positions ``first[b] + j`` for ``j < count[b]`` when
    every sequence is one run of tokens, else (``indexed``) ``positions[first[b] + j]``."""

    first: np.ndarray
    count: np.ndarray
    positions: np.ndarray
    indexed: bool


@dataclass(frozen=True, eq=False)
class TokenPlan:
    """Everything a backend needs to pool the tokens of ``batch`` sequences.

    Padded form: ``mask`` is the ``(B, L)`` bool token mask, C-contiguous (``None``: every
    position is a token).  Packed form: sequence ``b`` is rows ``first[b]`` to
    ``first[b] + count[b]`` of ``hidden``.  ``weights`` and ``scores`` (float64, empty when
    unused) hold the coefficient of position ``p`` (``l`` padded, ``t`` packed) of sequence
    ``b`` at ``b * coef_stride + p``; the weights come scaled by :func:`scale_weights`
    (each sequence's largest is 1), the scores shifted by :func:`shift_scores` (each
    sequence's largest is 0), and both hold 0 at padding positions.  ``codes`` are the
    requested modes (:data:`MODE_CODES`), one output slot each.  The sequences lie within
    ``hidden`` (the public function checks this): the kernels do not check again.

    ``device_mask``: for the CUDA backend only, the caller's ``(B, L)`` attention mask as a
    Numba device array (any bool or numeric dtype, nonzero = token), left on the device
    (:func:`~numbapool.tokens.pool_tokens` checks only its shape and dtype): the kernels
    read which positions are tokens from it.  ``mask`` is then ``None``, or its host copy
    when the weighted or attention modes need the token positions on the host.
    """

    packed: bool
    batch: int
    length: int
    features: int
    codes: np.ndarray
    out_dtype: np.dtype
    acc_dtype: np.dtype
    omit_nan: bool
    mask: np.ndarray | None
    first: np.ndarray | None
    count: np.ndarray | None
    weights: np.ndarray
    scores: np.ndarray
    coef_stride: int
    device_mask: object = None

    @property
    def out_shape(self) -> tuple[int, int]:
        return (self.batch, self.features * len(self.codes))

    @property
    def needs(self) -> Needs:
        """The accumulators this plan's modes use."""
        codes = set(self.codes.tolist())
        return Needs(*(bool(codes.intersection(group)) for group in NEEDED_BY))

    def runs(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(first, count)`` when every sequence is known to be one run without looking at
        a mask (packed, or padded without a mask); ``None`` when the mask decides."""
        if self.mask is not None or self.device_mask is not None:
            return None
        if self.packed:
            return self.first, self.count
        return (np.zeros(self.batch, np.int64), np.full(self.batch, self.length, np.int64))


def _sequence_max(values, batch, length, mask, runs, fill):
    """``(rows, top)``: ``values`` with ``fill`` at padding positions, and each position's
    sequence maximum, broadcastable against ``rows`` (``fill`` for a sequence without
    tokens).  The layouts are :func:`scale_weights`'."""
    if runs is None:
        rows = values.reshape(batch, length)
        if mask is not None:
            rows = np.where(mask, rows, fill)
        return rows, rows.max(axis=1, keepdims=True)
    first, count = runs
    seq_top = np.full(count.size, fill)
    full = count > 0
    if full.any():  # the sequences that hold tokens, in order, tile the rows
        seq_top[full] = np.maximum.reduceat(values, first[full])
    return values, np.repeat(seq_top, count)


def scale_weights(weights, batch, length, mask, runs, tiny):
    """Each sequence's weights divided by its largest weight at a token position.

    A weighted mean depends only on the ratios of the weights, so this changes no result,
    while every sequence's weights come to lie in [0, 1] with a largest of exactly 1 (or
    are all 0): their sum is between 1 and the token count, and cannot overflow or
    underflow the accumulator, whatever the finite weights were.  A scaled weight below
    ``tiny`` (the accumulator type's smallest normal number) becomes 0, so that no backend
    meets subnormal weights, whose few bits would make a ratio of them inexact.

    ``weights``: float64, flat, finite and >= 0 at token positions (checked by the caller).
    Padded form (``runs`` None): position ``l`` of sequence ``b`` at ``b * length + l``,
    tokens where ``mask`` (``None``: everywhere); padding positions become 0.  Packed form:
    ``runs = (first, count)``, sequence ``b`` at ``first[b]:first[b] + count[b]``.  Returns
    a new float64 array shaped like ``weights``.

    >>> scale_weights(np.array([1e-300, 3e-300, 0.0, 4e300]), 2, 2, None, None, 1e-308)
    array([0.33333333, 1.        , 0.        , 1.        ])
    """
    if weights.size == 0:
        return weights.copy()
    rows, top = _sequence_max(weights, batch, length, mask, runs, 0.0)
    scaled = np.divide(rows, top, out=np.zeros(rows.shape), where=top > 0)
    scaled[scaled < tiny] = 0.0
    return scaled.reshape(weights.shape)


def shift_scores(scores, batch, length, mask, runs):
    """Each sequence's scores minus its largest score at a token position.

    A softmax does not change when its scores are shifted; after this shift every
    sequence's largest score is 0 and ``exp`` of any score is in (0, 1], so the kernels'
    stable softmax meets no overflow.  A difference beyond the float64 range (scores more
    than about ``1.8e308`` apart) becomes the most negative float64, whose ``exp`` is 0, as
    that token's softmax weight is.  Padding positions become 0.  The layouts and the
    caller's checks (finite scores at token positions) are :func:`scale_weights`'.

    >>> shift_scores(np.array([1e308, -1e308, 2.0, 5.0]), 2, 2, None, None).tolist()
    [0.0, -1.7976931348623157e+308, -3.0, 0.0]
    """
    if scores.size == 0:
        return scores.copy()
    rows, top = _sequence_max(scores, batch, length, mask, runs, -np.inf)
    with np.errstate(over="ignore", invalid="ignore"):
        shifted = np.maximum(rows - top, -np.finfo(np.float64).max)
    if runs is None and mask is not None:
        shifted = np.where(mask, shifted, 0.0)
    return shifted.reshape(scores.shape)


def mask_runs(m):
    """:class:`Sequences` of a C-contiguous bool ``(B, L)`` mask.

    Rows that are one run of tokens (any padding side) give ``first`` = the run's start; a
    mask with holes anywhere gives ``indexed`` and the token positions of every row in
    ``positions``, row ``b``'s from ``first[b]``.  Plain Python for Numba to compile: a
    backend calls ``njit(cache=True)(mask_runs)``.

    >>> mask_runs(np.array([[False, True, True], [True, False, False]]))
    Sequences(first=array([1, 0]), count=array([2, 1]), positions=array([], dtype=int64), indexed=False)
    """
    B, L = m.shape
    first = np.zeros(B, np.int64)
    count = np.zeros(B, np.int64)
    holes = False
    for b in range(B):
        row = m[b]
        n = 0
        for l in range(L):
            n += row[l]
        count[b] = n
        if n:
            f = 0
            while not row[f]:
                f += 1
            last = L - 1
            while not row[last]:
                last -= 1
            first[b] = f
            holes |= last - f + 1 != n
    if not holes:
        return Sequences(first, count, np.zeros(0, np.int64), False)
    positions = np.empty(count.sum(), np.int64)
    k = 0
    for b in range(B):
        first[b] = k
        row = m[b]
        for l in range(L):
            if row[l]:
                positions[k] = l
                k += 1
    return Sequences(first, count, positions, True)
