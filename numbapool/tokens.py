"""Token pooling: sentence embeddings from per-token hidden states.

:func:`pool_tokens` validates its arguments, builds a
:class:`~numbapool.token_plan.TokenPlan` (the bool token mask of the padded form, or the
sequence starts and lengths of the packed form, and the requested modes as integer codes)
and hands it to the backend chosen by :mod:`numbapool.dispatch`.  Every requested mode is
computed in one pass over the hidden states; no padding is ever materialised.

CUDA inputs.  A CUDA ``attention_mask`` of CUDA ``hidden`` stays on the device: only its
shape and dtype are checked (on the host, from its attributes), and the kernels read which
positions are tokens (nonzero entries), so a call on device ``hidden`` and a device mask,
or on padded ``hidden`` with no mask, copies nothing either way and waits for nothing.
``lengths``, ``offsets``, ``weights`` and ``scores`` are checked before any kernel runs
(lengths add up to ``T``, offsets rise, weights are finite and >= 0, ...), which needs
their values: a CUDA array of those is copied to the host once (a copy that waits for the
device), and so is a CUDA mask when a weighted or attention mode needs the token
positions to check the coefficients.  See :func:`pool_tokens`, Notes.
"""

from __future__ import annotations

import operator

import numpy as np

from . import dispatch
from ._dask import dask_aware
from ._checks import FLOAT_DTYPES, NAN_POLICIES, check_choice
from ._typing import Array, Device, NanPolicy, Stream, TokenMode
from .token_plan import (
    M_ATTENTION, M_WEIGHTED, MODE_CODES, TOKEN_MODES, TokenPlan, scale_weights, shift_scores,
)

__all__ = ["pool_tokens", "TOKEN_MODES"]

_EMPTY_F = np.zeros(0, np.float64)


# --------------------------------------------------------------------------- argument checks


def _parse_modes(mode):
    if isinstance(mode, str):
        names = [mode]
    elif isinstance(mode, (list, tuple)):
        names = list(mode)
        if not names:
            raise ValueError("mode must not be an empty sequence; pass at least one mode name")
    else:
        raise TypeError(f"mode must be a mode name or a list/tuple of names; got {mode!r}")
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"mode entries must be strings; got {name!r} in mode={mode!r}")
        if name not in MODE_CODES:
            raise ValueError(
                f"mode {name!r} is unknown; token pooling modes are "
                f"{', '.join(map(repr, TOKEN_MODES))}"
            )
    return names


def _wide_integers(value, name):
    """``value``'s integers as int64 or uint64 when NumPy made a float or object array of
    them (some were past int64: ``np.asarray([2**64 - 6, 16])`` is float64, inexact);
    ``None`` when ``value`` holds anything else.  ``ValueError`` for what no 64-bit integer
    holds, naming the entry."""
    try:
        obj = np.asarray(value, dtype=object)
    except (TypeError, ValueError):
        return None
    items = obj.reshape(-1).tolist()
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
               for v in items):
        return None
    items = [int(v) for v in items]
    for dtype in (np.int64, np.uint64):
        info = np.iinfo(dtype)
        if all(int(info.min) <= v <= int(info.max) for v in items):
            return np.array(items, dtype).reshape(obj.shape)
    i, v = next((i, v) for i, v in enumerate(items) if v < 0 or v > 2**64 - 1)
    if v < 0:
        raise ValueError(f"{name} must be >= 0; got {name}[{i}]={v}")
    raise ValueError(f"{name}[{i}]={v} is too large for a 64-bit integer")


def _aux(value, name, kinds, what):
    """A small auxiliary array (mask, lengths, weights...) as NumPy, with a dtype check."""
    # CUDA arrays come to the host; TypeError for masked arrays and what is not array-like
    arr = np.asarray(dispatch.host_array(value, name))
    if arr.size == 0 and arr.dtype.kind == "f" and "i" in kinds:
        arr = arr.astype(np.int64)  # np.asarray([]) is float64
    if arr.dtype.kind in "fO" and kinds == "iu":
        wide = _wide_integers(value, name)
        arr = arr if wide is None else wide
    if arr.dtype.kind not in kinds:
        raise TypeError(f"{name} must be {what}; got dtype {arr.dtype}")
    return arr


def _check_bounds(arr, name, n_rows):
    """Every entry of integer array ``arr`` lies in ``[0, n_rows]``.

    Each entry is compared on its own, in its own dtype (uint64 included), before anything
    is converted or added up: a sum or difference could wrap around and pass for a valid
    value.
    """
    if not arr.size:
        return
    if arr.dtype.kind == "i" and arr.min() < 0:
        i = int(np.argmax(arr < 0))
        raise ValueError(f"{name} must be >= 0; got {name}[{i}]={int(arr[i])}")
    if arr.max() > n_rows:
        i = int(np.argmax(arr > n_rows))
        raise ValueError(f"{name}[{i}]={int(arr[i])} exceeds the number of token rows of "
                         f"hidden ({n_rows})")


def _check_counts(lengths, offsets, n_rows):
    """``(first, count)`` of packed sequences from exactly one of lengths / offsets.

    Every sequence found lies within the ``n_rows`` token rows: this is what keeps the
    kernels, which trust the plan, inside the array.
    """
    if lengths is not None and offsets is not None:
        raise ValueError("pass either lengths or offsets for packed (T, D) hidden, not both")
    if lengths is None and offsets is None:
        raise ValueError(
            "hidden is 2-D, i.e. packed (T, D) tokens: pass lengths (B,) or offsets (B+1,) "
            "to say where each sequence starts (or pass padded (B, L, D) hidden with a mask)"
        )
    if lengths is not None:
        arr = _aux(lengths, "lengths", "iu", "an integer array")
        if arr.ndim != 1:
            raise ValueError(f"lengths must be 1-D (B,); got shape {arr.shape}")
        _check_bounds(arr, "lengths", n_rows)
        count = arr.astype(np.int64)  # each in [0, T]: exact
        ends = np.cumsum(count)
        # every step adds at most T < 2**63, so a running sum that passes the int64 range
        # turns negative at once: ends[-1] == T with no negative entry means the exact sum
        if (int(ends[-1]) if ends.size else 0) != n_rows or (ends.size and ends.min() < 0):
            total = sum(arr.tolist())  # Python integers: exact
            raise ValueError(
                f"lengths add up to {total} but hidden has {n_rows} token rows; they must match"
            )
        first = np.zeros(count.size, np.int64)
        first[1:] = ends[:-1]
        return first, count
    arr = _aux(offsets, "offsets", "iu", "an integer array")
    if arr.ndim != 1 or arr.size < 1:
        raise ValueError(
            f"offsets must be 1-D (B+1,) with at least one entry; got shape {arr.shape}"
        )
    _check_bounds(arr, "offsets", n_rows)
    off = arr.astype(np.int64)  # each in [0, T]: exact, and so are their differences
    if off[0] != 0 or off[-1] != n_rows:
        raise ValueError(
            f"offsets must start at 0 and end at the number of token rows ({n_rows}); "
            f"got offsets[0]={int(off[0])}, offsets[-1]={int(off[-1])}"
        )
    down = off[1:] < off[:-1]
    if down.any():
        bad = int(np.argmax(down))
        raise ValueError(
            f"offsets must be non-decreasing; offsets[{bad + 1}]={int(off[bad + 1])} < "
            f"offsets[{bad}]={int(off[bad])}"
        )
    return off[:-1].copy(), np.diff(off)


def _check_mask(mask, batch, length):
    """The attention mask as a C-contiguous bool array (``None`` stays ``None``)."""
    if mask is None:
        return None
    m = _aux(mask, "attention_mask", "biuf", "a bool or numeric array")
    if m.shape != (batch, length):
        raise ValueError(
            f"attention_mask has shape {m.shape}; hidden (B, L, D) needs it (B, L) = "
            f"{(batch, length)}"
        )
    return np.ascontiguousarray(m if m.dtype == np.bool_ else m != 0)


def _device_mask(mask, batch, length):
    """A CUDA ``attention_mask`` as a Numba device array viewing it (no copy, no wait).

    ``None`` when ``mask`` is not a CUDA array, or not one the kernels read (Numba cannot
    view an array with negative strides; a bfloat16 or complex dtype): the caller then
    takes the host path, :func:`_check_mask`.  Only the shape is checked here; the values
    are the kernels' to read.
    """
    family = None if mask is None else dispatch._family(mask)
    if family not in dispatch.CUDA_FAMILIES:
        return None
    from ._cuda import compat  # CUDA hidden: the CUDA stack is loaded already

    try:
        view = compat.as_device_array(mask.detach() if family == "torch" else mask)
    except Exception:  # not viewable: the host path copies it, and says what is wrong
        return None
    if np.dtype(view.dtype).kind not in "biuf":  # bfloat16 ("V2"), complex...: the host
        return None  # path converts what it can and words the error for the rest
    if tuple(view.shape) != (batch, length):
        raise ValueError(
            f"attention_mask has shape {tuple(view.shape)}; hidden (B, L, D) needs it (B, L) "
            f"= {(batch, length)}"
        )
    return view


def _coefficients(value, name, shape, token_mask, nonnegative):
    """Per-token weights or scores as a flat float64 array, checked at token positions."""
    arr = _aux(value, name, "biuf", "a bool or numeric array")
    if arr.shape != shape:
        raise ValueError(
            f"{name} has shape {arr.shape}; it must be shaped like the tokens, {shape}"
        )
    arr = np.ascontiguousarray(arr, dtype=np.float64).reshape(-1)
    used = arr if token_mask is None else arr[token_mask.reshape(-1)]
    if not np.isfinite(used).all():
        raise ValueError(f"{name} must be finite at every token position; found "
                         f"{used[~np.isfinite(used)][0]!r}")
    if nonnegative and used.size and used.min() < 0:
        raise ValueError(f"{name} must be >= 0 at every token position; found {used.min()!r}")
    return arr


# --------------------------------------------------------------------------- public function


@dask_aware("pool_tokens")
def pool_tokens(hidden: Array, attention_mask: Array | None = None,
                mode: TokenMode | list[TokenMode] | tuple[TokenMode, ...] = "mean", *,
                weights: Array | None = None, scores: Array | None = None,
                lengths: Array | None = None, offsets: Array | None = None,
                nan_policy: NanPolicy = "propagate", out: Array | None = None,
                device: Device = None, stream: Stream = None) -> Array:
    """Pool per-token hidden states into one vector per sequence (sentence embeddings).

    Parameters
    ----------
    hidden : array
        Padded ``(B, L, D)`` or packed ``(T, D)`` token states; float16, float32 or float64
        (the result keeps the dtype; float16 is accumulated in float32, without a copy).
    attention_mask : array, optional
        Padded form only: ``(B, L)``, bool or numeric, nonzero marks a token.  Left and right
        padding (and masks with holes) all work.  ``None`` means every position is a token.
    mode : str or sequence of str
        One of ``"cls"`` (first token), ``"last"`` (last token), ``"mean"``, ``"sum"``,
        ``"max"``, ``"min"`` (IEEE 754-2019's, with -0 below +0: the same bits whatever
        order the tokens are read in), ``"mean_sqrt_len"`` (sum / sqrt(n)), ``"weighted_mean"``
        (position weights 1..n: sentence-transformers' ``weightedmean`` under right padding),
        ``"weighted"`` (``sum(w x) / sum(w)`` with ``weights``; a zero total weight gives
        zeros) and ``"attention"`` (``sum(softmax(scores) x)``).  A sequence of modes is
        computed in one pass; the results are concatenated in the given order.
    weights, scores : array, optional
        Per-token coefficients for ``"weighted"`` (finite, >= 0) and ``"attention"`` (finite),
        shaped like the mask (``(B, L)``) or ``(T,)`` when packed.  Entries at padding
        positions are ignored.  Only the ratios of a sequence's weights matter: they are
        divided by the sequence's largest weight first, so any finite magnitude works.
    lengths : array of int, optional
        Packed form: ``(B,)`` sequence lengths, each from 0 to ``T``, that add up to ``T``.
    offsets : array of int, optional
        Packed form: ``(B+1,)``, non-decreasing from 0 to ``T``; sequence ``b`` is
        ``hidden[offsets[b]:offsets[b+1]]``.  Pass exactly one of lengths and offsets.
    nan_policy : {"propagate", "omit"}
        ``"propagate"``: a NaN among a sequence's values of a feature makes that output NaN.
        ``"omit"``: NaNs are left out (means divide by the count of the other values,
        weighted modes by the sum of their weights); a feature whose tokens are all NaN gives
        NaN.  ``"cls"`` and ``"last"`` select a token and return it as it is.
    out : array, optional
        Preallocated ``(B, D * len(modes))`` result of the input's dtype.
    device : {None, "cpu", "cuda"}
        Where to compute; ``None`` means where ``hidden`` lives.
    stream : stream, optional
        CUDA only: the stream to run on (a Numba, ``torch.cuda`` or CuPy stream).  ``None``
        means the current stream of the library ``hidden`` comes from (Numba device arrays:
        the default stream).  Nothing waits for the result: read it on that stream.

    Returns
    -------
    array of shape ``(B, D * len(modes))``.  A sequence with no tokens gives zeros in every
    mode.

    Notes
    -----
    With CUDA ``hidden`` (or ``device="cuda"``) the kernels are queued on the stream and the
    call returns without waiting.  What crosses between host and device per call:

    * A CUDA ``attention_mask`` stays on the device: only its shape and dtype are checked,
      and the kernel reads its values (nonzero = token; they are not validated).  So padded
      ``hidden`` with a CUDA mask, or with no mask, is pooled with no copy either way and
      no wait; the only allocation is the result (none with ``out=``).  A host mask is
      copied to the device once.
    * ``lengths``, ``offsets``, ``weights`` and ``scores`` are checked before any kernel
      runs, which needs their values: a CUDA array of them is copied to the host once (a
      copy that waits for the device), and so is a CUDA mask for mode ``"weighted"`` or
      ``"attention"``, whose coefficients are checked at the token positions.  CUDA
      ``offsets`` are then read by the kernel where they are; host offsets and CUDA or
      host ``lengths`` reach the device as offsets, in one copy.  The scaled weights and
      softmax terms (and their per-sequence totals) go over in one copy.

    Examples
    --------
    >>> import numpy as np
    >>> from numbapool.tokens import pool_tokens
    >>> h = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    >>> mask = np.array([[1, 1, 0], [1, 1, 1]])
    >>> pool_tokens(h, mask)
    array([[1., 2.],
           [8., 9.]], dtype=float32)
    >>> pool_tokens(h, mask, ["cls", "max"])
    array([[ 0.,  1.,  2.,  3.],
           [ 6.,  7., 10., 11.]], dtype=float32)

    The packed form holds the same tokens without padding:

    >>> packed = np.concatenate([h[0, :2], h[1]])
    >>> pool_tokens(packed, lengths=[2, 3], mode="last")
    array([[ 2.,  3.],
           [10., 11.]], dtype=float32)
    >>> pool_tokens(packed, offsets=[0, 2, 5], mode="attention", scores=[0, 0, 0, 0, 1e9])
    array([[ 1.,  2.],
           [10., 11.]], dtype=float32)
    """
    backend, hidden = dispatch.resolve(hidden, device, name="hidden", stream=stream)
    check_choice(nan_policy, "nan_policy", NAN_POLICIES)
    dtype = np.dtype(hidden.dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"hidden has dtype {dtype}; token pooling accepts float16, float32, float64 "
            "(convert integer states with hidden.astype(np.float32))"
        )
    names = _parse_modes(mode)
    code_list = [MODE_CODES[n] for n in names]
    codes = np.array(code_list, np.int64)
    if hidden.ndim == 3:
        for name, value in (("lengths", lengths), ("offsets", offsets)):
            if value is not None:
                raise ValueError(
                    f"{name} is for packed (T, D) hidden; padded (B, L, D) hidden takes "
                    "attention_mask instead"
                )
        batch, length, features = hidden.shape
        # CUDA: a CUDA mask stays where it is, for the kernel to read; the host needs its
        # values only to check weights and scores at the token positions
        device_mask = (None if isinstance(hidden, np.ndarray)
                       else _device_mask(attention_mask, batch, length))
        token_mask = None
        if device_mask is None or M_WEIGHTED in code_list or M_ATTENTION in code_list:
            token_mask = _check_mask(attention_mask, batch, length)
        first = count = None
        coef_shape, coef_stride = (batch, length), length
    elif hidden.ndim == 2:
        if attention_mask is not None:
            raise ValueError(
                "attention_mask is for padded (B, L, D) hidden; packed (T, D) hidden takes "
                "lengths or offsets (no padding)"
            )
        first, count = _check_counts(lengths, offsets, hidden.shape[0])
        batch, length, features = count.size, 0, hidden.shape[1]
        token_mask = device_mask = None
        coef_shape, coef_stride = (hidden.shape[0],), 0
    else:
        raise ValueError(
            f"hidden must be padded (B, L, D) or packed (T, D); got shape {hidden.shape}"
        )
    coefs = {}
    for name, value, wanted, nonneg in (("weights", weights, M_WEIGHTED, True),
                                        ("scores", scores, M_ATTENTION, False)):
        used = wanted in code_list
        mode_name = TOKEN_MODES[wanted]
        if used and value is None:
            raise ValueError(
                f"mode {mode_name!r} needs {name}=, shaped like the tokens {coef_shape}"
            )
        if value is not None and not used:
            raise ValueError(f"{name} is only used by mode {mode_name!r}, which was not requested")
        coefs[name] = (_coefficients(value, name, coef_shape, token_mask, nonneg) if used
                       else _EMPTY_F)
    acc_dtype = np.dtype(np.float64 if dtype == np.float64 else np.float32)
    runs = None if first is None else (first, count)
    if M_WEIGHTED in code_list:
        # only the ratios matter: each sequence's largest weight becomes 1, so no sum of
        # weights can overflow or underflow the accumulator type
        coefs["weights"] = scale_weights(coefs["weights"], batch, length, token_mask, runs,
                                         float(np.finfo(acc_dtype).tiny))
    if M_ATTENTION in code_list:  # a softmax ignores shifts: each largest score becomes 0
        coefs["scores"] = shift_scores(coefs["scores"], batch, length, token_mask, runs)
    plan = TokenPlan(
        packed=hidden.ndim == 2, batch=operator.index(batch), length=operator.index(length),
        features=operator.index(features), codes=codes, out_dtype=dtype,
        acc_dtype=acc_dtype,
        omit_nan=nan_policy == "omit", mask=token_mask, first=first, count=count,
        weights=coefs["weights"], scores=coefs["scores"], coef_stride=coef_stride,
        device_mask=device_mask,
    )
    inputs = (hidden, attention_mask, weights, scores, lengths, offsets)
    return backend.run_tokens(plan, hidden, out, inputs)
