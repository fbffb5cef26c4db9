"""The CUDA backend: checks and allocates device results, moves plan tables over, launches.

Entry points take Numba device arrays (the dispatcher wraps CuPy/torch arrays without a
copy) and an optional :class:`Env` saying which stream to run on and how to allocate
results (with the caller's library, so that they can be handed back without a copy).
They return Numba device arrays; the dispatcher maps them back to the caller's family.

``run_spatial(plan, x, out, result_shape, env=None)`` has the CPU backend's contract:
``out`` (or a ``(values, indices)`` pair with ``return_indices``) is checked for family,
shape, dtype and overlap with the input, and is what gets returned; ``run_tokens(plan,
hidden, out, inputs, env=None)`` is the same for token pooling.

No host work on the hot path: a plan's window tables go to the device once per device
(:func:`device_tables`, kept for the :data:`TABLE_CACHE_SIZE` most recent geometries),
input views are made without waiting, every launch goes on the caller's stream, and the
only allocation of a call on a C-contiguous input is its result.  Nothing comes back to
the host until the caller asks.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from numba import njit

from .. import token_plan
from ..plan import FINISHES, TRANSFORMS
from . import compat, strided
from . import spatial as _spatial
from . import tokens as _tokens


@dataclass(frozen=True)
class Env:
    """Where a call runs: a Numba stream (0: the default stream) and a result allocator.

    ``empty(shape, dtype)`` must return a C-contiguous Numba device array (possibly a view
    of another library's allocation).
    """

    stream: object = 0
    empty: Callable | None = None

    def alloc(self, shape, dtype):
        if self.empty is not None:
            return self.empty(tuple(shape), np.dtype(dtype))
        return compat.device_empty(shape, dtype, stream=self.stream)


DEFAULT_ENV = Env()


def check_out(out, shape, dtype, inputs, name="out"):
    """Validate a preallocated device result: family, exact shape and dtype, no overlap."""
    if not compat.is_device_array(out):
        raise TypeError(f"{name} must be a CUDA array of the input's family for CUDA input; "
                        f"got {type(out).__module__}.{type(out).__qualname__}")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(out.shape)}; expected {tuple(shape)}")
    if np.dtype(out.dtype) != np.dtype(dtype):
        raise TypeError(f"{name} has dtype {np.dtype(out.dtype)}; expected {np.dtype(dtype)}")
    o0, o1 = compat.extent(out)
    for a in inputs:
        if a is None or not compat.is_device_array(a):
            continue
        a0, a1 = compat.extent(a)
        if a0 < o1 and o0 < a1:
            raise ValueError(f"{name} overlaps an input array; pass a separate result array")
    return out


def _result(out, shape, dtype, inputs, name, env):
    """``(work, ret)``: a C-contiguous device array to compute into, and the one to return."""
    if out is None:
        arr = env.alloc(shape, dtype)
        return arr, arr
    check_out(out, shape, dtype, inputs, name)
    if out.is_c_contiguous():
        return out, out
    return compat.device_empty(shape, dtype, stream=env.stream), out


def _finish_out(work, ret, env):
    if work is not ret:
        strided.copy(work, ret, env.stream)


def spatial_tables(plan, put):
    """The plan's window tables as views of one int64 (and one float64) array.

    ``put`` moves a host array to where the kernels read it (``compat.to_device``; the
    identity for compile checks), so each call makes one or two small transfers.  The edge
    tables get a sentinel entry, so that none of the views is empty.
    """
    t = plan.tables
    pad = np.zeros(1, np.int64)
    parts = [t.axes, np.concatenate((t.first, pad)), np.concatenate((t.count, pad))]
    ints = put(np.concatenate([np.ravel(p) for p in parts]).astype(np.int64))
    cut = np.cumsum([0] + [p.size for p in parts])
    views = [ints[int(cut[i]):int(cut[i + 1])].reshape(p.shape) for i, p in enumerate(parts)]
    tables = dict(zip(("axes", "first", "count"), views))
    if plan.reducer == "sum":
        tables["div"] = put(np.concatenate((t.div, [1.0])).astype(np.float64))
    return tables


@dataclass(frozen=True)
class Launch:
    """One kernel launch: ``kernel(*args)`` over ``items``.

    ``block_threads`` None: a grid-stride kernel with a thread per item
    (:func:`compat.launch`); else a block-stride kernel with a block of that many threads
    per item (:func:`compat.launch_blocks`).  Every launch of the backend goes through
    :meth:`run`, so tools that audit the kernels (register counts, host work) see them all.
    """

    kernel: object
    args: tuple
    items: int
    block_threads: int | None = None

    def run(self, stream=0):
        if self.block_threads is None:
            compat.launch(self.kernel, self.items, *self.args, stream=stream)
        else:
            compat.launch_blocks(self.kernel, self.items, self.block_threads, *self.args,
                                 stream=stream)


#: Plans whose window tables stay on each device (least recently used dropped first).
TABLE_CACHE_SIZE = 256
_TABLES: collections.OrderedDict = collections.OrderedDict()
_NO_INDICES: dict = {}
_LOCK = threading.Lock()


def device_tables(plan, stream=0):
    """:func:`spatial_tables` of ``plan`` on the current device, copied there once.

    The host tables are memoised by geometry (:attr:`SpatialPlan.tables`), so a plan of a
    geometry seen before finds the device copy made for it, keyed by the host object's
    identity (held alive by the cache, so the identity is not reused).  The first copy
    waits until it has landed, since later calls may read it from other streams; no later
    call of the geometry copies or waits.  ``spatial_tables`` reads nothing of the plan but
    its tables and its reducer.
    """
    host = plan.tables
    key = (compat.current_device_id(), id(host), plan.reducer)
    with _LOCK:
        hit = _TABLES.get(key)
        if hit is not None:
            _TABLES.move_to_end(key)
            return hit[1]
    tables = spatial_tables(plan, lambda a: compat.to_device(a, stream))
    compat.wait(stream)
    with _LOCK:
        _TABLES[key] = (host, tables)
        while len(_TABLES) > TABLE_CACHE_SIZE:
            _TABLES.popitem(last=False)
    return tables


def no_indices():
    """An empty int64 device array standing for "no indices" (one per device)."""
    device = compat.current_device_id()
    with _LOCK:
        if device not in _NO_INDICES:
            _NO_INDICES[device] = compat.device_empty((0, 0, 0), np.int64)
        return _NO_INDICES[device]


def spatial_launch(plan, xc, vc, ic, tables):
    """The :class:`Launch` of a spatial pool over canonical views ``xc`` -> ``vc`` (``ic``).

    ``ic`` is the int64 index view, or an empty int64 placeholder when there are no indices
    (so one compiled kernel serves both).
    """
    t = tables
    geo = (t["axes"], t["first"], t["count"])
    if plan.reducer in ("max", "min"):
        dtype = plan.out_dtype  # the input's
        one = np.float32(1) if dtype == np.float16 else dtype.type(1)
        return Launch(_spatial.extreme_kernel,
                      (xc, vc, ic, *geo, one, plan.channels, plan.reducer == "min",
                       plan.omit_nan, plan.return_indices), vc.size)
    return Launch(_spatial.sum_kernel,
                  (xc, vc, *geo, t["div"], plan.channels, plan.acc_dtype.type(0),
                   TRANSFORMS[plan.transform], float(plan.power), float(plan.eps),
                   FINISHES[plan.finish], plan.omit_nan, float(plan.divisor_override)),
                  vc.size)


def run_spatial(plan, x, out, result_shape, env=None):
    """Pool device array ``x`` by ``plan``; device result(s) shaped ``result_shape``."""
    env = env or DEFAULT_ENV
    out_v, out_i = plan.split_out(out)
    names = ("out[0]", "out[1]") if plan.return_indices else ("out", None)
    work_v, ret_v = _result(out_v, result_shape, plan.out_dtype, (x,), names[0], env)
    work_i = ret_i = None
    if plan.return_indices:
        work_i, ret_i = _result(out_i, result_shape, np.int64, (x, ret_v), names[1], env)
    if work_v.size:
        xc = strided.contiguous(x, env.stream).reshape(plan.canonical_in_shape)
        vc = work_v.reshape(plan.canonical_out_shape)
        ic = no_indices() if work_i is None else work_i.reshape(plan.canonical_out_shape)
        tables = device_tables(plan, env.stream)
        spatial_launch(plan, xc, vc, ic, tables).run(env.stream)
        _finish_out(work_v, ret_v, env)
        if work_i is not None:
            _finish_out(work_i, ret_i, env)
    return (ret_v, ret_i) if plan.return_indices else ret_v


# --------------------------------------------------------------------------- token pooling

#: Features per block (a warp's worth: one coalesced read per token) and token lanes per
#: block of the token kernel; small D gives fewer features and more lanes per block.
TOKEN_FEATURES = 32
TOKEN_LANES = 8


def _device_views(arrays):
    """The CUDA arrays among ``arrays`` as Numba views (for the overlap check of ``out``)."""
    views = []
    for a in arrays:
        if a is None or isinstance(a, np.ndarray):
            continue
        try:
            views.append(compat.as_device_array(a))
        except Exception:  # not a CUDA array (a list, a CPU tensor): cannot overlap
            continue
    return views


_mask_runs = njit(cache=True)(token_plan.mask_runs)


def token_sequences(plan):
    """The :class:`~numbapool.token_plan.Sequences` of the plan, on the host."""
    runs = plan.runs()
    if runs is None:
        return _mask_runs(plan.mask)
    return token_plan.Sequences(runs[0], runs[1], np.zeros(0, np.int64), False)


def token_block(features):
    """``(TX, TY)``: features and token lanes of one block of the token kernel."""
    tx = max(1, min(TOKEN_FEATURES, features))
    ty = max(1, min(TOKEN_LANES * TOKEN_FEATURES, _tokens.MAX_THREADS) // tx)
    return tx, ty


def run_tokens(plan, hidden, out, inputs, env=None):
    """Pool device array ``hidden`` by a :class:`~numbapool.token_plan.TokenPlan`."""
    env = env or DEFAULT_ENV
    work, ret = _result(out, plan.out_shape, plan.out_dtype,
                        [hidden] + _device_views(inputs), "out", env)
    if work.size:
        first, count, positions, indexed = token_sequences(plan)
        D = plan.features
        rows = strided.contiguous(hidden, env.stream).reshape(-1, D)
        cut = np.cumsum([0, first.size, count.size, positions.size, plan.codes.size])
        ints = compat.to_device(np.concatenate([first, count, positions, plan.codes])
                                .astype(np.int64), env.stream)
        first_d, count_d, pos_d, codes_d = (ints[int(cut[i]):int(cut[i + 1])] for i in range(4))
        coefs = compat.to_device(np.concatenate([plan.weights, plan.scores, [0.0]]), env.stream)
        n_w = plan.weights.size
        weights_d = coefs[:n_w]
        scores_d = coefs[n_w:n_w + plan.scores.size]
        needs = tuple(plan.needs)
        sb = 0 if plan.packed else plan.length
        tx, ty = token_block(D)
        Launch(_tokens.token_kernel,
               (rows, work, first_d, count_d, pos_d, bool(indexed), sb, weights_d, scores_d,
                plan.coef_stride, codes_d, needs, plan.omit_nan, plan.acc_dtype.type(1), tx,
                ty), plan.batch * (-(-D // tx)), tx * ty).run(env.stream)
        _finish_out(work, ret, env)
    return ret

