"""Graphs whose tasks read a region of the input (a chunk with its halo) and pool it.

A pooled axis is split into output chunks, each a run of output windows; the region of
input it reads is where those windows' taps lie, which may reach into the next input
chunks (the halo) or span several small ones.  Each task gathers its region from the input
chunks that hold it (a view when one chunk holds it all) and calls the pooling function on
it.  Axes that are not pooled keep the input's chunks: their regions are the chunks.
"""

from __future__ import annotations

import itertools
import operator

import numpy as np
from dask.array import Array
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

__all__ = ["chunk_regions", "gather_map", "bounds", "owner_chunks"]


def bounds(chunks):
    """The start of every chunk of one axis, and the axis length at the end."""
    return np.concatenate(([0], np.cumsum(chunks, dtype=np.int64))).tolist()


def chunk_regions(chunks):
    """``[(lo, hi)]``: the chunks of an axis that keeps them, as regions."""
    edges = bounds(chunks)
    return list(zip(edges[:-1], edges[1:]))


def owner_chunks(starts, chunks, n_out):
    """Split outputs ``0 .. n_out - 1`` by the input chunk their first input position
    ``starts(o)`` (non-decreasing) falls in: ``[(o0, o1)]``, empty runs dropped.

    ``first_at(b)`` is found by bisection, so long axes cost O(chunks * log n_out).
    """
    edges = bounds(chunks)[1:-1]
    cuts = [0]
    for b in edges:
        lo, hi = cuts[-1], n_out
        while lo < hi:  # the first o with starts(o) >= b
            mid = (lo + hi) // 2
            if starts(mid) >= b:
                hi = mid
            else:
                lo = mid + 1
        cuts.append(lo)
    cuts.append(n_out)
    runs = [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
    return runs or [(0, 0)]


def _pieces(chunks, lo, hi):
    """``[(chunk index, slice in the chunk, slice in the region)]`` covering ``[lo, hi)``."""
    edges = bounds(chunks)
    out = []
    for c, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        s, e = max(a, lo), min(b, hi)
        if s < e or (lo == hi == a and b == a):
            out.append((c, slice(s - a, e - a), slice(s - lo, e - lo)))
    if not out:  # an empty region: an empty slice of the nearest chunk
        c = min(max(int(np.searchsorted(edges, lo, side="right")) - 1, 0), len(chunks) - 1)
        out.append((c, slice(0, 0), slice(0, 0)))
    return out


def _assemble(shape, placements, *blocks):
    """The region of ``shape`` from ``blocks``: a view of the one block that holds it, or a
    new array that each block's part is copied into."""
    if len(blocks) == 1:
        return blocks[0][placements[0][0]]
    first = blocks[0]
    region = np.empty_like(first, shape=shape)  # CuPy blocks give a CuPy region
    for block, (source, target) in zip(blocks, placements):
        region[target] = block[source]
    return region


def _call(fn, block_arg, region):
    return fn(region, block_arg)


def gather_map(x, regions, fn, out_chunks, meta, n_outputs=1, name="numbapool",
               block_arg=None):
    """Dask array(s) whose block ``i`` is ``fn(x[region i], block_arg(i))``.

    ``regions[a]`` lists the ``(lo, hi)`` range of axis ``a`` read by each output chunk of
    that axis; ``out_chunks[a]`` its sizes.  ``block_arg(i)`` (default: ``i`` itself) is
    what a task needs to know of its block, kept small: it travels with every task, while
    ``fn`` is shared.  ``fn`` returns one array, or a tuple of ``n_outputs`` arrays (one
    dask array each; ``meta`` is then a tuple too).
    """
    token = tokenize(x, regions, fn, out_chunks, n_outputs)
    base = f"{name}-{token}"
    dsk = {}
    per_axis = [[_pieces(x.chunks[a], lo, hi) for lo, hi in regions[a]]
                for a in range(x.ndim)]
    for index in itertools.product(*(range(len(r)) for r in regions)):
        shape = tuple(hi - lo for (lo, hi) in (regions[a][i] for a, i in enumerate(index)))
        keys, placements = [], []
        for combo in itertools.product(*(per_axis[a][i] for a, i in enumerate(index))):
            keys.append((x.name,) + tuple(c[0] for c in combo))
            placements.append((tuple(c[1] for c in combo), tuple(c[2] for c in combo)))
        region = (_assemble, shape, placements, *keys)
        dsk[(base,) + index] = (_call, fn, index if block_arg is None else block_arg(index),
                                region)
    layers = HighLevelGraph.from_collections(base, dsk, dependencies=[x])
    if n_outputs == 1:
        return Array(layers, base, out_chunks, meta=meta)
    outputs = []
    for k in range(n_outputs):
        part = f"{base}-{k}"
        sub = {(part,) + key[1:]: (operator.getitem, key, k) for key in dsk}
        graph = HighLevelGraph.from_collections(part, sub, dependencies=[Array(
            layers, base, out_chunks, meta=meta[0])])
        outputs.append(Array(graph, part, out_chunks, meta=meta[k]))
    return tuple(outputs)
