"""Token pooling of dask arrays: a task per group of whole sequences.

Padded ``(B, L, D)`` states are pooled per batch chunk, with the sequence axis ``L`` in
one chunk (a sequence is never split); the masks, weights and scores, as dask or NumPy
arrays, are chunked to match.  Packed ``(T, D)`` states are rechunked at sequence
boundaries (each task gets whole sequences, at most one sequence more than a chunk);
``lengths``/``offsets`` say where those are, so they are computed when the graph is built
(they are small), as are packed ``weights``/``scores``' shapes.  ``D`` keeps its chunks
for a single mode (every mode pools each feature on its own); several modes, whose
results are laid side by side per sequence, take ``D`` in one chunk.  The values of
weights and scores are checked by the tasks, when the result is computed.
"""

from __future__ import annotations

import functools

import numpy as np

import dask.array as da

from .. import tokens
from .._checks import FLOAT_DTYPES, NAN_POLICIES, check_choice
from . import is_dask_array
from .spatial import no_out

__all__ = ["pool_tokens"]


def _as_dask(value, name, shape, chunks):
    """An auxiliary array (dask or anything NumPy takes) as a dask array of ``chunks``."""
    if value is None:
        return None
    arr = value if is_dask_array(value) else np.asarray(value)
    if tuple(arr.shape) != shape:
        raise ValueError(f"{name} has shape {tuple(arr.shape)}; it must be shaped like the "
                         f"tokens, {shape}")
    arr = arr if is_dask_array(arr) else da.from_array(arr, chunks=chunks)
    return arr.rechunk(chunks)


def _probe(numpy_path, dtype, packed, aux, kwargs):
    """The call on one token of one feature: checks modes, dtypes and which coefficients
    are needed now, before any task runs, and gives the result's type."""
    hidden = np.zeros((1, 1) if packed else (1, 1, 1), dtype)
    extra = {name: None if value is None else np.zeros((1,) if packed else (1, 1),
                                                        np.dtype(value.dtype))
             for name, value in aux.items()}
    if packed:
        extra["lengths"] = np.ones(1, np.int64)
    return numpy_path(hidden, **extra, **kwargs)


def _padded_block(numpy_path, kwargs, hidden, mask, weights, scores):
    return numpy_path(hidden, mask, weights=weights, scores=scores, **kwargs)


def _packed_block(numpy_path, kwargs, groups, count, hidden, weights, scores, block_id=None):
    b0, b1 = groups[block_id[0]]
    return numpy_path(hidden, lengths=count[b0:b1],
                      weights=None if weights is None else weights[:, 0],
                      scores=None if scores is None else scores[:, 0], **kwargs)


def _sequence_groups(first, count, chunks, n_rows):
    """``[(b0, b1)]``: consecutive sequences grouped at the first sequence start at or
    after each chunk boundary; a group of no tokens joins its neighbour."""
    offsets = np.append(first, n_rows) if first.size else np.zeros(1, np.int64)
    cuts = [0]
    for edge in np.cumsum(chunks)[:-1]:
        j = int(np.searchsorted(offsets[:-1], edge, side="left"))
        if j > cuts[-1] and offsets[j] > offsets[cuts[-1]]:
            cuts.append(j)
    cuts.append(count.size)
    groups = [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a or count.size == 0]
    return groups, tuple(int(offsets[b] - offsets[a]) for a, b in groups)


def pool_tokens(numpy_path, hidden, attention_mask, mode, weights, scores, lengths, offsets,
                nan_policy, out, device, stream):
    no_out(out)
    check_choice(nan_policy, "nan_policy", NAN_POLICIES)
    dtype = np.dtype(hidden.dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"hidden has dtype {dtype}; token pooling accepts float16, float32, "
                        "float64 (convert integer states with hidden.astype(np.float32))")
    names = tokens._parse_modes(mode)
    kwargs = dict(mode=mode, nan_policy=nan_policy, device=device, stream=stream)
    features = hidden.shape[-1]
    if len(names) > 1:  # the modes' results sit side by side: D in one chunk
        hidden = hidden.rechunk({hidden.ndim - 1: -1})
    out_cols = hidden.chunks[-1] if len(names) == 1 else (features * len(names),)
    if hidden.ndim == 3:
        for name, value in (("lengths", lengths), ("offsets", offsets)):
            if value is not None:
                raise ValueError(f"{name} is for packed (T, D) hidden; padded (B, L, D) "
                                 "hidden takes attention_mask instead")
        batch, length, _ = hidden.shape
        hidden = hidden.rechunk({1: -1})
        chunks = (hidden.chunks[0], (length,))
        aux = {"attention_mask": attention_mask, "weights": weights, "scores": scores}
        aux = {name: _as_dask(v, name, (batch, length), chunks) for name, v in aux.items()}
        probe = _probe(numpy_path, dtype, False, aux, kwargs)
        args = [hidden, "bld"]
        for value in aux.values():
            args += [value, None if value is None else "bl"]
        fn = functools.partial(_padded_block, numpy_path, kwargs)
        if len(names) == 1:
            return da.blockwise(fn, "bd", *args, concatenate=True, dtype=probe.dtype,
                                meta=probe[:0, :0])
        return da.blockwise(fn, "be", *args, new_axes={"e": out_cols}, concatenate=True,
                            dtype=probe.dtype, meta=probe[:0, :0])
    if hidden.ndim != 2:
        raise ValueError(f"hidden must be padded (B, L, D) or packed (T, D); got shape "
                         f"{hidden.shape}")
    if attention_mask is not None:
        raise ValueError("attention_mask is for padded (B, L, D) hidden; packed (T, D) hidden "
                         "takes lengths or offsets (no padding)")
    n_rows = hidden.shape[0]
    lengths, offsets = (None if v is None else np.asarray(v.compute() if is_dask_array(v) else v)
                        for v in (lengths, offsets))
    first, count = tokens._check_counts(lengths, offsets, n_rows)
    groups, token_chunks = _sequence_groups(first, count, hidden.chunks[0], n_rows)
    hidden = hidden.rechunk({0: token_chunks})
    aux = {name: _as_dask(v, name, (n_rows,), (token_chunks,))
           for name, v in (("weights", weights), ("scores", scores))}
    probe = _probe(numpy_path, dtype, True, aux, kwargs)
    columns = {name: None if v is None else v.reshape(n_rows, 1).rechunk((token_chunks, 1))
               for name, v in aux.items()}
    fn = functools.partial(_packed_block, numpy_path, kwargs, groups, count)
    arrays = [hidden] + [v for v in columns.values()]
    return da.map_blocks(fn, *arrays, chunks=(tuple(b - a for a, b in groups), out_cols),
                         dtype=probe.dtype, meta=probe[:0, :0])
