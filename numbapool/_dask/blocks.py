"""Block reduction and pyramids of dask arrays.

Blocks are aligned at index 0, so an output chunk of a blocked axis is the run of blocks
that start in one input chunk and reads from its first block's start to its last block's
end: at most one block past the input chunk, no halo between chunks.  Each task is
:func:`numbapool.block_reduce` on its region with the caller's ``boundary``, which only
acts in the axis's last chunk (every other region holds whole blocks).
"""

from __future__ import annotations

import functools

import numpy as np

from .. import blocks
from .._checks import EXTREME_DTYPES, NAN_POLICIES, check_choice
from .graph import chunk_regions, gather_map, owner_chunks
from .spatial import no_out

__all__ = ["block_reduce", "pyramid"]


def _reduce_region(numpy_path, block_size, func, kwargs, region, index):
    return numpy_path(region, block_size, func, **kwargs)


def block_reduce(numpy_path, x, block_size, func, cval, boundary, nan_policy, out, device):
    no_out(out)
    dt = np.dtype(x.dtype)
    size = blocks._blocks(block_size, x.ndim, "block_size")
    blocks._func(func)
    boundary = check_choice(boundary, "boundary", blocks.BOUNDARIES)
    check_choice(nan_policy, "nan_policy", NAN_POLICIES)
    if dt not in EXTREME_DTYPES:
        raise TypeError(f"x has dtype {dt}; block_reduce accepts "
                        f"{', '.join(d.name for d in EXTREME_DTYPES)}")
    blocks._cval(cval, dt, boundary == "pad")
    sizes = blocks._out_sizes(x.shape, size, boundary)
    kwargs = dict(cval=cval, boundary=boundary, nan_policy=nan_policy, device=device)
    # every other check (a callable's result, ...) and the result's type, on a tiny input
    probe_kwargs = dict(kwargs, boundary="partial" if boundary == "exact" else boundary)
    probe = numpy_path(np.zeros(tuple(min(1, n) for n in x.shape), dt), size, func,
                       **probe_kwargs)
    regions, out_chunks = [], []
    for L, b, n_out, chunks in zip(x.shape, size, sizes, x.chunks):
        if b == 1:
            regions.append(chunk_regions(chunks))
            out_chunks.append(chunks)
            continue
        runs = owner_chunks(lambda j, b=b: j * b, chunks, n_out)
        regions.append([(j0 * b, min(j1 * b, L)) for j0, j1 in runs])
        out_chunks.append(tuple(j1 - j0 for j0, j1 in runs))
    fn = functools.partial(_reduce_region, numpy_path, size, func, kwargs)
    meta = probe[tuple(slice(0, 0) for _ in range(probe.ndim))]
    return gather_map(x, regions, fn, tuple(out_chunks), meta, name="block_reduce")


def _regrouped(level, largest, factors):
    """``level`` with the chunks of its reduced axes merged back up to about the input's
    largest chunk length on that axis (a multiple of the factor, so blocks stay whole)
    once they have shrunk below half of it: deep levels keep a sensible number of tasks."""
    new = {}
    for a, f in enumerate(factors):
        if f == 1 or len(level.chunks[a]) == 1:
            continue
        target = max(largest[a] // f * f, f)
        if max(level.chunks[a]) * 2 <= target:
            new[a] = target
    return level.rechunk(new) if new else level


def pyramid(numpy_path, x, factor, levels, func, boundary, nan_policy):
    factors = blocks._blocks(factor, x.ndim, "factor")
    if levels is not None:
        if not blocks._is_int(levels):
            raise TypeError(f"levels must be an int or None; got {levels!r}")
        if levels < 0:
            raise ValueError(f"levels must be >= 0; got {levels!r}")
    blocks._func(func)
    check_choice(boundary, "boundary", blocks.BOUNDARIES)
    check_choice(nan_policy, "nan_policy", NAN_POLICIES)
    largest = [max(c) if c else 1 for c in x.chunks]
    result = [x]
    while levels is None or len(result) <= levels:
        current = result[-1]
        if levels is None and not blocks._goes_on(current.shape, factors, boundary):
            break
        if len(result) > 1:
            current = _regrouped(current, largest, factors)
        result.append(block_reduce(blocks.block_reduce, current, factors, func, 0, boundary,
                                   nan_policy, None, None))
    return result

