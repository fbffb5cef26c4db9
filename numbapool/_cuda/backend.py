"""The CUDA backend: checks and allocates device results, moves plan tables over, launches.

Entry points take Numba device arrays (the dispatcher wraps CuPy/torch arrays without a
copy) and an optional :class:`Env` saying which stream to run on and how to allocate
results (with the caller's library, so that they can be handed back without a copy).
They return Numba device arrays; the dispatcher maps them back to the caller's family.

``run_spatial(plan, x, out, result_shape, env=None)`` has the CPU backend's contract:
``out`` (or a ``(values, indices)`` pair with ``return_indices``) is checked for family,
shape, dtype and overlap with the input, and is what gets returned; ``run_tokens(plan,
hidden, out, inputs, env=None)`` is the same for token pooling, and ``run_block_reduce(plan,
x, out, cval=None, env=None)`` for block reduction.  The gradients' entry points
(``run_index_scatter``, ``run_window_grad``, ``run_token_grad`` and the factor steps of
:mod:`numbapool.grad`) are at the end; their kernels are in :mod:`numbapool._cuda.grad`.

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

import numba
import numpy as np

from ..plan import OFF
from . import blocks as _blocks
from . import compat, strided
from . import grad as _grad
from . import plane as _plane
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
    """The plan's window tables for the kernels: one uint64 (and, for sums, one float64) array.

    ``put`` moves a host array to where the kernels read it (``compat.to_device``; the
    identity for compile checks), so it is called once or twice.  ``axes`` (read by pools
    of four or more spatial axes; the others get the runs by value) has its ``OFF`` column
    negated, so that every entry is non-negative and the kernels' index arithmetic stays
    unsigned.  The edge tables get a sentinel entry, so that none of the views is empty.
    Reads nothing of the plan but its tables and its reducer.
    """
    t = plan.tables
    axes = t.axes.copy()
    axes[:, OFF] = -axes[:, OFF]
    pad = np.zeros(1, np.int64)
    parts = [axes, np.concatenate((t.first, pad)), np.concatenate((t.count, pad))]
    ints = put(np.concatenate([np.ravel(p) for p in parts]).astype(np.uint64))
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


def spatial_launch(plan, xc, vc, ic, tables, stream=0):
    """The :class:`Launch` list of a spatial pool over canonical views ``xc`` -> ``vc`` (``ic``).

    ``ic`` is the int64 index view, or an empty int64 placeholder when there are no indices.
    Pools of few large windows (global pools, adaptive or window pools with large windows
    and few outputs) take the plane path (:mod:`numbapool._cuda.plane`: a block of threads
    per window, two launches when the windows are split over several blocks, with the
    partial results in a buffer kept per device and ``stream``, the stream the launches will
    run on); the others one launch of the window kernels (:mod:`numbapool._cuda.spatial`).
    """
    fill = _plane.fill_threads()
    if _plane.suits(plan, vc.size, fill):
        parts = _plane.launches(plan, xc, vc, ic, tables, stream)
    else:
        parts = [_spatial.window_launch(plan, xc, vc, ic, tables, fill)]
    return [Launch(*part) for part in parts]


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
        for launch in spatial_launch(plan, xc, vc, ic, tables, env.stream):
            launch.run(env.stream)
        _finish_out(work_v, ret_v, env)
        if work_i is not None:
            _finish_out(work_i, ret_i, env)
    return (ret_v, ret_i) if plan.return_indices else ret_v


def run_block_reduce(plan, x, out, cval=None, env=None):
    """Reduce device array ``x`` by a :class:`~numbapool.blocks.BlockPlan` (one launch of
    :mod:`numbapool._cuda.blocks`); ``cval`` (None: blocks cut short reduce what they
    have) fills the elements of blocks past the input's end, for ``boundary="pad"``."""
    env = env or DEFAULT_ENV
    work, ret = _result(out, plan.result_shape, plan.out_dtype, (x,), "out", env)
    if work.size:
        xc = strided.contiguous(x, env.stream).reshape(plan.in_shape)
        table = _blocks.outer_table(plan, env.stream)
        Launch(*_blocks.block_launch(plan, xc, work.reshape(plan.out_shape), table,
                                     cval)).run(env.stream)
        _finish_out(work, ret, env)
    return ret


# --------------------------------------------------------------------------- token pooling

#: Feature threads per token lane at most (a warp: one coalesced read per token), token
#: lanes per block at most (a narrow D gets fewer feature threads and more lanes), and the
#: tokens a lane should get at least, on average (short sequences get fewer lanes: each
#: level of the lanes' merge costs two barriers).
TOKEN_FEATURES = 32
TOKEN_LANES = 8
TOKENS_PER_LANE = 8
#: Features per thread: ``None`` lets :func:`token_shape` choose (tests force a value).
TOKEN_VEC = None


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


def _pow2_floor(n):
    return 1 << (max(1, int(n)).bit_length() - 1)


def token_block(features, vec=1, tokens=None):
    """``(TX, TY)``: feature threads and token lanes of a block of the token kernel.

    ``TX`` is a power of two (a compile-time constant of the kernel, like ``TY``): the
    fewest that cover ``features`` with ``vec`` features each, at most
    :data:`TOKEN_FEATURES`.  A narrow ``TX`` leaves room for more lanes, up to
    ``TOKEN_LANES * TOKEN_FEATURES`` threads; ``tokens`` (a sequence's tokens on average)
    caps the lanes at a power of two giving each :data:`TOKENS_PER_LANE` tokens.
    """
    need = -(-max(1, features) // vec)
    tx = min(TOKEN_FEATURES, 1 << (need - 1).bit_length())
    ty = max(1, min(TOKEN_LANES * TOKEN_FEATURES, _tokens.MAX_THREADS) // tx)
    if tokens is not None:
        ty = min(ty, _pow2_floor(tokens // TOKENS_PER_LANE))
    return tx, ty


def token_shape(plan, rows):
    """``(vec, TX, TY)`` of a call: features per thread, feature threads, token lanes.

    ``vec`` is the most the kernel's registers allow (:func:`_tokens.max_vec`), halved
    while a warp would not be filled or the grid would have fewer blocks than twice the
    multiprocessors (wider tiles are fewer).  ``rows``: the token rows of ``hidden``.
    """
    codes = tuple(plan.codes.tolist())
    wide = plan.acc_dtype == np.float64
    D = plan.features
    vec = TOKEN_VEC or _tokens.max_vec(codes, plan.omit_nan, wide)
    if TOKEN_VEC is None:
        sms = compat.properties(compat.current_device_id())["multiprocessors"]
        while vec > 1 and (D <= TOKEN_FEATURES * (vec // 2)
                           or plan.batch * -(-D // (TOKEN_FEATURES * vec)) < 2 * sms):
            vec //= 2
    reads = _tokens.reads_tokens(codes)
    tokens = (plan.length if not plan.packed else rows // max(1, plan.batch)) if reads else 0
    tx, ty = token_block(D, vec, tokens)
    return vec, tx, ty


_EMPTY: dict = {}
_EMPTY_LOCK = threading.Lock()


def _empty(shape, dtype):
    """An empty device array of ``dtype`` (one per device), for the arrays a kernel takes
    but does not read."""
    key = (compat.current_device_id(), shape, np.dtype(dtype))
    with _EMPTY_LOCK:
        if key not in _EMPTY:
            _EMPTY[key] = compat.device_empty(shape, dtype)
        return _EMPTY[key]


def _device_integers(a):
    """A Numba view of CUDA integer array ``a`` (``None`` for host arrays and the rest)."""
    if a is None or isinstance(a, np.ndarray):
        return None
    try:
        view = compat.as_device_array(a)
    except Exception:  # a list, a CPU tensor, an array Numba cannot view: use the host copy
        return None
    return view if np.dtype(view.dtype).kind in "iu" and view.ndim == 1 else None


def token_sequences(plan, inputs, stream=0):
    """``(kind, offs, mask)``: how the kernel finds each sequence's tokens (a
    :data:`_tokens.KINDS` code) and the device arrays it reads for that.

    Packed: the caller's CUDA ``offsets`` as they are, or the plan's offsets copied over
    (one transfer).  Padded: the caller's CUDA mask as it is, a host mask copied over, or
    no mask at all.  ``inputs``: the caller's ``(hidden, attention_mask, weights, scores,
    lengths, offsets)``.
    """
    no_offs = _empty((0,), np.int64)
    no_mask = _empty((0, 0), np.bool_)
    if plan.packed:
        offs = _device_integers(inputs[5])
        if offs is None:
            offs = compat.to_device(np.append(plan.first, plan.first[-1] + plan.count[-1])
                                    .astype(np.int64), stream)
        return _tokens.K_OFFSETS, offs, no_mask
    if plan.device_mask is not None:
        return _tokens.K_MASK, no_offs, plan.device_mask
    if plan.mask is not None:
        return _tokens.K_MASK, no_offs, compat.to_device(plan.mask, stream)
    return _tokens.K_FULL, no_offs, no_mask


def _sequence_sums(values, plan):
    """Each sequence's sum of ``values`` (flat, by position), float64."""
    if not plan.packed:
        return values.reshape(plan.batch, plan.length).sum(axis=1)
    sums = np.zeros(plan.batch)
    full = plan.count > 0
    if full.any():  # the sequences that hold tokens, in order, tile the rows
        sums[full] = np.add.reduceat(values, plan.first[full])
    return sums


def token_coefficients(plan, stream=0):
    """``(wts, atts, wtot, atot)``: the per-position weights and softmax terms of the
    weighted and attention modes, and (propagate) each sequence's totals, on the device.

    The kernels' coefficients, as the CPU computes them: the plan's scaled weights and
    ``exp`` of its shifted scores, each rounded to the accumulator type (and 0 at padding
    positions); the totals are their float64 sums.  One transfer; empty arrays when no mode
    uses them.
    """
    need = plan.needs
    if not (need.w or need.att):
        none = _empty((0,), np.float64)
        return none, none, none, none
    acc = plan.acc_dtype.type
    w = plan.weights.astype(acc).astype(np.float64)
    with np.errstate(under="ignore"):
        a = np.exp(plan.scores).astype(acc).astype(np.float64)
    if need.att and not plan.packed and plan.mask is not None:
        a = np.where(plan.mask.reshape(-1), a, 0.0)
    totals = []
    if not plan.omit_nan:  # under omit each feature has its own total, kept by the kernel
        totals = [_sequence_sums(w, plan) if need.w else w[:0],
                  _sequence_sums(a, plan) if need.att else a[:0]]
    else:
        totals = [w[:0], w[:0]]
    parts = [w, a] + totals
    cut = np.cumsum([0] + [p.size for p in parts])
    flat = compat.to_device(np.concatenate(parts + [np.zeros(1)]), stream)
    return tuple(flat[int(cut[i]):int(cut[i + 1])] for i in range(4))


def token_launch(plan, rows, work, seqs, coefs, vec, tx, ty):
    """The :class:`Launch` of the token kernel: ``rows`` (``hidden``'s elements, flat and
    C-contiguous) into ``work``; ``seqs`` from :func:`token_sequences`, ``coefs`` from
    :func:`token_coefficients`, ``(vec, tx, ty)`` from :func:`token_shape`."""
    kind, offs, mask = seqs
    codes = tuple(plan.codes.tolist())
    kernel = _tokens.token_kernel(codes, plan.omit_nan, kind, plan.acc_dtype == np.float64,
                                  vec, tx, ty)
    sb = 0 if plan.packed else plan.length
    tiles = -(-plan.features // (tx * vec))
    return Launch(kernel, (rows, work, sb, offs, mask, *coefs, plan.coef_stride),
                  plan.batch * tiles, tx * ty)


def run_tokens(plan, hidden, out, inputs, env=None):
    """Pool device array ``hidden`` by a :class:`~numbapool.token_plan.TokenPlan`.

    ``inputs``: the caller's ``(hidden, attention_mask, weights, scores, lengths,
    offsets)`` (CUDA ones are checked for overlap with ``out``; CUDA ``offsets`` are read
    in place).  Host work per call: the result's allocation, plus one copy to the device
    for a host mask, for offsets not given as a CUDA integer array, and for the
    coefficients of the weighted and attention modes.  Nothing waits.
    """
    env = env or DEFAULT_ENV
    work, ret = _result(out, plan.out_shape, plan.out_dtype,
                        [hidden] + _device_views(inputs), "out", env)
    if work.size:
        rows = strided.contiguous(hidden, env.stream).reshape(-1)
        vec, tx, ty = token_shape(plan, rows.size // plan.features)
        launch = token_launch(plan, rows, work, token_sequences(plan, inputs, env.stream),
                              token_coefficients(plan, env.stream), vec, tx, ty)
        launch.run(env.stream)
        _finish_out(work, ret, env)
    return ret



# --------------------------------------------------------------------------- gradients
#
# The CPU backend's gradient entry points (numbapool._cpu.grad_kernels,
# numbapool._cpu.token_grad_kernels) for device arrays, plus an optional ``finish``: an
# object with ``dtype`` (the result's, when the plan's is only the accumulator's), ``nans``
# (an array shaped as the result whose NaN positions get 0, or None), ``power_of`` and
# ``power`` (the result is multiplied by ``power_of ** power``; None: not).  Arrays handed
# in may be results of earlier calls, which come back in the caller's array family: they
# are viewed again here.

_STORE_VIEWS = {np.dtype(np.float16): np.uint16, np.dtype(np.bool_): np.uint8}


def _device_input(a, stream=0):
    """``a`` as a C-contiguous Numba device array: CUDA arrays viewed (no copy unless
    strided), host arrays copied over."""
    if isinstance(a, np.ndarray):
        return compat.to_device(a, stream)
    if not compat.is_device_array(a):
        a = compat.as_device_array(a.detach() if hasattr(a, "detach") else a)
    return strided.contiguous(a, stream)


def _flat(a, stream):
    return None if a is None else _device_input(a, stream).reshape(-1)


def _finish_parts(finish, dtype, stream):
    """``(result dtype, flat nans array or None, flat power_of array or None, power)``."""
    if finish is None:
        return np.dtype(dtype), None, None, 1.0
    return (np.dtype(finish.dtype), _flat(finish.nans, stream),
            _flat(getattr(finish, "power_of", None), stream),
            float(getattr(finish, "power", 1.0)))


def indices_in_range(plan, indices, out=None, env=None):
    """Whether every entry of ``indices`` lies in ``[0, plan.in_size)``: one kernel, then
    a one-byte flag comes back (a wait)."""
    env = env or DEFAULT_ENV
    idx = _device_input(indices, env.stream).reshape(-1)
    if idx.size == 0:
        return True
    bad = compat.device_empty((1,), np.int8, stream=env.stream)
    Launch(_grad.zero_kernel, (bad,), 1).run(env.stream)
    Launch(_grad.bad_index_kernel, (idx, plan.in_size, bad), idx.size).run(env.stream)
    flag = bad.copy_to_host(stream=env.stream)
    if env.stream:  # on the default stream the copy has waited already
        compat.wait(env.stream)
    return not flag[0]


def run_index_scatter(plan, src, out, indices, finish=None, checked=False, env=None):
    """:func:`numbapool._cpu.grad_kernels.run_index_scatter` on the device.

    Returns ``None`` (writing nothing) when an index is out of range, which costs a check
    kernel and a wait; ``checked=True`` (indices known to be in range) skips both.  Adds
    with atomics (``plan.accumulate``) into the zeroed result, or a float32 buffer for a
    float16 ``finish.dtype``; stores otherwise, any one of values sharing an index winning.
    """
    env = env or DEFAULT_ENV
    idx = _device_input(indices, env.stream).reshape(-1)
    if not checked and not indices_in_range(plan, idx, None, env):
        return None
    dtype = np.dtype(plan.dtype)
    final, nans, _, _ = _finish_parts(finish, dtype, env.stream)
    work, ret = _result(out, plan.result_shape, final, (src, indices, nans), "out", env)
    if work.size:
        s = _device_input(src, env.stream).reshape(-1)
        acc = work if final == dtype else compat.device_empty(work.shape, dtype,
                                                                stream=env.stream)
        dst = acc.reshape(-1)
        view = None if plan.accumulate else _STORE_VIEWS.get(dtype)
        if view is not None:  # stores copy bits
            dst, s = dst.view(view), s.view(view)
        launches = [Launch(_grad.zero_kernel, (dst,), dst.size)]
        if s.size:
            kernel = _grad.scatter_kernel(plan.accumulate, numba.from_dtype(dst.dtype))
            launches.append(Launch(kernel, (s, idx, dst, plan.out_size, plan.in_size,
                                            plan.channels), s.size))
        if acc is not work or nans is not None:
            kernel = _grad.finish_kernel(nans is not None, _grad.result_type(final))
            launches.append(Launch(kernel, (acc.reshape(-1), work.reshape(-1),
                                            dst if nans is None else nans), work.size))
        for launch in launches:
            launch.run(env.stream)
        _finish_out(work, ret, env)
    return ret


def run_window_grad(plan, coef, out, row_scale, col_scale, finish=None, env=None):
    """:func:`numbapool._cpu.grad_kernels.run_window_grad` on the device: a gather, a
    thread per input element, accumulated in ``plan.dtype``.  ``row_scale`` and
    ``col_scale`` are small host arrays (one copy over); ``coef`` may be of any float
    dtype."""
    env = env or DEFAULT_ENV
    dtype = np.dtype(plan.dtype)
    final, nans, power_of, power = _finish_parts(finish, dtype, env.stream)
    work, ret = _result(out, plan.result_shape, final, (coef, nans, power_of), "out", env)
    if work.size:
        c = _device_input(coef, env.stream).reshape(-1)
        scales = compat.to_device(np.concatenate([np.ravel(row_scale), np.ravel(col_scale)])
                                  .astype(dtype), env.stream)
        x = nans if nans is not None else power_of if power_of is not None else c
        kernel = _grad.window_grad_kernel(len(plan.axes), nans is not None,
                                          power_of is not None, numba.from_dtype(dtype),
                                          _grad.result_type(final))
        Ro = int(np.prod([a.out_size for a in plan.axes[:-1]], dtype=np.int64))
        Launch(kernel, (c, work.reshape(-1), x, _grad.window_table(plan.axes, env.stream),
                        scales, plan.channels, Ro, power), work.size).run(env.stream)
        _finish_out(work, ret, env)
    return ret


def run_mean_coef(plan, grad_out, out, x, divisors, override, env=None):
    """The ``"omit"`` coefficients of a mean over ``plan``'s windows
    (:class:`~numbapool._cpu.grad_kernels.WindowGradPlan`): ``grad_out / d`` with ``d``
    the divisor (the product of the per-axis host ``divisors``, or ``override`` when
    non-zero) less the window's NaNs in ``x``, 0 where no value is left; of ``plan.dtype``
    and ``grad_out``'s shape.  ``out`` is unused (None)."""
    env = env or DEFAULT_ENV
    g = _device_input(grad_out, env.stream).reshape(-1)
    coef = compat.device_empty(g.shape, plan.dtype, stream=env.stream)
    if g.size:
        divs = compat.to_device(np.concatenate(divisors).astype(np.float64), env.stream)
        kernel = _grad.mean_coef_kernel(len(plan.axes), numba.from_dtype(np.dtype(plan.dtype)))
        Launch(kernel, (g, _device_input(x, env.stream).reshape(-1), coef,
                        _grad.window_table(plan.axes, env.stream), divs, plan.channels,
                        float(override)), g.size).run(env.stream)
    return coef.reshape(tuple(grad_out.shape))


def run_lp_coef(plan, grad_out, out, y, p, env=None):
    """``grad_out * y ** (1 - p)`` (0 where the pooled ``y`` is not positive, NaN where it
    is NaN), float64, shaped as ``grad_out``; ``plan`` and ``out`` are unused (None)."""
    env = env or DEFAULT_ENV
    g = _device_input(grad_out, env.stream).reshape(-1)
    coef = compat.device_empty(g.shape, np.float64, stream=env.stream)
    Launch(_grad.lp_coef_kernel, (g, _device_input(y, env.stream).reshape(-1), coef,
                                  float(p)), g.size).run(env.stream)
    return coef.reshape(tuple(grad_out.shape))


def run_gem_grad(plan, x, out, grad_out, y, p, eps, env=None):
    """The gradient of GeM pooling over ``plan``'s whole planes
    (:class:`~numbapool._cpu.grad_kernels.WindowGradPlan`), from the pooled ``y``
    (float64, one value per plane and channel), computed in float64 and stored as
    ``plan.dtype``."""
    env = env or DEFAULT_ENV
    work, ret = _result(out, plan.result_shape, plan.dtype, (x, grad_out, y), "out", env)
    if work.size:
        size = int(np.prod([a.in_size for a in plan.axes], dtype=np.int64))
        Launch(_grad.gem_grad_kernel(_grad.result_type(plan.dtype)),
               (_device_input(grad_out, env.stream).reshape(-1),
                _device_input(y, env.stream).reshape(-1),
                _device_input(x, env.stream).reshape(-1), work.reshape(-1), size,
                plan.channels, float(p), float(eps)), work.size).run(env.stream)
        _finish_out(work, ret, env)
    return ret


def run_token_grad(plan, hidden, out, grad_out, inputs, top, env=None):
    """The gradient of a :class:`~numbapool.token_plan.TokenPlan`'s pooling on the device.

    ``grad_out``: ``plan.out_shape``, any float dtype; ``inputs``: the forward's
    ``(hidden, attention_mask, weights, scores, lengths, offsets)``; ``top``: float64 per
    coefficient position, the largest weight of its sequence (the plan's weights are
    scaled by it), or empty.  Unlike the CPU entry point (which takes ``grad_out`` before
    ``out``, the dispatcher's slot), returns ``(d_hidden, d_weights, d_scores)``, finished
    (``plan.out_dtype``, the coefficients' shapes), None for those not requested.
    """
    env = env or DEFAULT_ENV
    dtype = np.dtype(plan.out_dtype)
    work, ret = _result(out, tuple(hidden.shape), dtype,
                        [hidden, grad_out] + _device_views(inputs), "out", env)
    n_coef = max(plan.weights.size, plan.scores.size)
    coef_shape = (plan.batch, plan.length) if not plan.packed else (n_coef,)
    d_w = env.alloc(coef_shape, dtype) if plan.weights.size else None
    d_s = env.alloc(coef_shape, dtype) if plan.scores.size else None
    B, D, M = plan.batch, plan.features, len(plan.codes)
    rows = hidden.shape[0] if plan.packed else B * plan.length
    if work.size or d_w is not None or d_s is not None:
        codes = tuple(plan.codes.tolist())
        kind, offs, mask = token_sequences(plan, inputs, env.stream)
        none = _empty((0,), np.float64)
        host = [plan.weights if plan.weights.size else np.zeros(n_coef),
                plan.scores if plan.scores.size else np.zeros(n_coef),
                np.ravel(top) if np.size(top) else np.zeros(n_coef)]
        coefs = compat.to_device(np.concatenate(host + [np.zeros(1)]), env.stream)
        ratio = d_w is not None or d_s is not None
        fac, mix = ((compat.device_empty((B * M * D,), np.float64, stream=env.stream)
                     for _ in range(2)) if ratio else (none, none))
        x = strided.contiguous(hidden, env.stream).reshape(-1)
        g = _device_input(grad_out, env.stream).reshape(-1)
        rt = _grad.result_type(dtype)
        if B * D:
            kernel = _grad.token_grad_kernel(codes, plan.omit_nan, kind, ratio, rt)
            Launch(kernel, (x, g, work.reshape(-1), offs, mask, coefs, fac, mix, B,
                            plan.length, D, n_coef, plan.coef_stride), B * D).run(env.stream)
        if ratio and rows:
            empty = _empty((0,), dtype)
            kernel = _grad.token_coef_kernel(codes, plan.omit_nan, kind, rt)
            Launch(kernel, (x, fac, mix, offs, mask, coefs, coefs[2 * n_coef:],
                            empty if d_w is None else d_w.reshape(-1),
                            empty if d_s is None else d_s.reshape(-1), B, plan.length, D,
                            n_coef, rows), rows).run(env.stream)
        _finish_out(work, ret, env)
    return ret, d_w, d_s
