"""Block reduction and image pyramids: non-overlapping blocks of any axes, any rank.

:func:`block_reduce` is ``skimage.measure.block_reduce`` with numbapool's kernels: every
axis is cut into blocks of ``block_size`` elements, aligned at index 0, and each block is
reduced to one value.  :func:`pyramid` repeats it level after level.

The reducers ``"sum"``, ``"mean"``, ``"max"``, ``"min"``, ``"median"`` and ``"mode"`` run
compiled kernels (:mod:`numbapool._cpu.block_kernels`); any other callable taking
``axis=`` is applied to a blocked NumPy view, as scikit-image does.  A plan (the canonical
view of the input, see :class:`BlockPlan`) is built here and run by the backend of the
input's device.  On the CPU, ``"pad"`` reduces the interior as ``"partial"`` and then the
edge blocks again from padded copies of the thin edge slabs, so no copy of the whole input
is made; the CUDA kernels (:mod:`numbapool._cuda.blocks`) read ``cval`` for the elements
past the input's end themselves.  The generic callable runs on the CPU only.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple, Union

import numpy as np

from . import dispatch
from ._dask import dask_aware
from ._checks import EXTREME_DTYPES, NAN_POLICIES, check_choice, check_out
from ._typing import Array, Device, NanPolicy

__all__ = ["block_reduce", "pyramid", "BLOCK_FUNCS", "BOUNDARIES"]

#: The reducers with compiled kernels.
BLOCK_FUNCS = ("sum", "mean", "max", "min", "median", "mode")
#: What happens to a last block that is cut short.
BOUNDARIES = ("pad", "trim", "exact", "partial")

#: A reducer's name, or a callable ``f(array, axis=tuple)``.
BlockFunc = Union[Literal["sum", "mean", "max", "min", "median", "mode"], Callable[..., Any]]
#: A value of ``boundary``.
Boundary = Literal["pad", "trim", "exact", "partial"]

#: NumPy's reductions that name a kernel.
_NUMPY_FUNCS = {np.sum: "sum", np.mean: "mean", np.max: "max", np.amax: "max", np.min: "min",
                np.amin: "min", np.median: "median"}


class BlockPlan(NamedTuple):
    """A block reduction as the CPU kernels run it.

    The input is viewed as ``in_shape == (P, R, W*C)``: P planes (the leading axes with a
    block of 1), R rows (the outer axes, from the first blocked axis to the one before the
    last blocked axis), and the last blocked axis of length W times C channels (the
    trailing axes with a block of 1).  ``outer`` lists ``(input size, block, output size)``
    of each outer axis (runs of unblocked axes merged; a unit axis when there is none).
    """

    func: str
    in_shape: tuple
    out_shape: tuple
    outer: tuple
    W: int
    bw: int
    Wo: int
    C: int
    out_dtype: np.dtype
    acc_dtype: np.dtype | None
    omit: bool
    result_shape: tuple


# --------------------------------------------------------------------------- checks


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _blocks(value, ndim, name):
    """``value`` (an int, or one int per axis) as a tuple of ``ndim`` ints >= 1."""
    if _is_int(value):
        items = (int(value),) * ndim
    elif isinstance(value, (tuple, list)) and all(_is_int(v) for v in value):
        if len(value) != ndim:
            raise ValueError(
                f"{name} must be an int or a sequence of {ndim} ints (one per axis of x, "
                f"1 to leave an axis alone); got {tuple(value)!r} of length {len(value)}")
        items = tuple(int(v) for v in value)
    else:
        raise TypeError(f"{name} must be an int or a sequence of ints (one per axis of x); "
                        f"got {value!r}")
    if any(v < 1 for v in items):
        raise ValueError(f"{name} must be >= 1 on every axis; got {value!r}")
    return items


def _func(func):
    """``(name, callable)``: a kernel's name and None, or None and a generic callable."""
    if isinstance(func, str):
        return check_choice(func, "func", BLOCK_FUNCS), None
    try:
        name = _NUMPY_FUNCS.get(func)
    except TypeError:  # unhashable
        name = None
    if name is not None:
        return name, None
    if callable(func):
        return None, func
    raise TypeError(f"func must be one of {', '.join(map(repr, BLOCK_FUNCS))} or a callable "
                    f"taking axis=; got {func!r}")


def _dtypes(name, dt):
    """``(result dtype, accumulator dtype)`` of kernel ``name`` on ``dt`` data."""
    if name in ("max", "min", "mode"):
        return dt, None
    if dt.kind == "f":
        return dt, (np.dtype(np.float64) if dt == np.float64 else np.dtype(np.float32))
    if name == "sum":
        wide = np.dtype(np.uint64 if dt.kind == "u" else np.int64)
        return wide, wide
    return np.dtype(np.float64), np.dtype(np.float64)


def _cval(cval, dt, needed):
    """``cval`` as a scalar of ``dt``; ``ValueError`` (when it is ``needed``, for
    ``boundary="pad"``) if it does not fit."""
    if isinstance(cval, (bool, np.bool_)) or not isinstance(cval, numbers.Real):
        raise TypeError(f"cval must be a real number; got {cval!r}")
    if not needed:
        return None
    if dt.kind == "f":
        with np.errstate(over="ignore"):
            value = dt.type(cval)
        if np.isfinite(float(cval)) and not np.isfinite(value):
            raise ValueError(f"cval={cval!r} overflows x's dtype {dt}")
        return value
    info = np.iinfo(dt)
    exact = _is_int(cval) or (np.isfinite(float(cval)) and float(cval).is_integer())
    if not exact or not info.min <= int(cval) <= info.max:
        raise ValueError(f"cval={cval!r} is not a value of x's dtype {dt} (integers from "
                         f"{info.min} to {info.max}); it pads the last blocks with "
                         f"boundary='pad'")
    return dt.type(int(cval))


def _out_sizes(shape, blocks, boundary):
    sizes = []
    for axis, (L, b) in enumerate(zip(shape, blocks)):
        if boundary == "exact" and L % b:
            raise ValueError(
                f"boundary='exact' needs every axis to divide into whole blocks; axis {axis} "
                f"has length {L}, which block size {b} does not divide (use boundary='pad', "
                "'trim' or 'partial')")
        sizes.append(L // b if boundary in ("trim", "exact") else -(-L // b))
    return tuple(sizes)


def _host(x, device):
    """``(backend, x)``: the backend of ``x`` and ``device``, and ``x`` as it takes it (a
    NumPy array for the CPU kernels, a Numba device array for the CUDA ones)."""
    backend, x = dispatch.resolve(x, device)
    if not hasattr(backend, "run_block_reduce"):
        raise NotImplementedError(
            f"x is a {type(x).__name__}, whose backend has no block reduction (it runs on "
            "the CPU only there); pass a NumPy array, or device='cpu' to copy a CUDA array "
            "to the host")
    return backend, x


def _on_cuda(x):
    """Whether ``x`` (as :func:`_host` gives it) is for the CUDA kernels."""
    return not isinstance(x, np.ndarray)


# --------------------------------------------------------------------------- kernels


def _plan(name, shape, blocks, sizes, out_dtype, acc_dtype, omit):
    """The :class:`BlockPlan` of a reduction with at least one block above 1."""
    # (every block 1, which only the CUDA path plans: the last axis stands as blocked)
    blocked = [a for a, b in enumerate(blocks) if b > 1] or [len(shape) - 1]
    first, last = blocked[0], blocked[-1]
    outer = []
    for a in range(first, last):
        L, b, o = shape[a], blocks[a], sizes[a]
        if b == 1 and outer and outer[-1][1] == 1:  # merge runs of unblocked axes
            outer[-1] = (outer[-1][0] * L, 1, outer[-1][2] * L)
        else:
            outer.append((L, b, o))
    outer = tuple(outer) or ((1, 1, 1),)
    P = math.prod(shape[:first])
    C = math.prod(shape[last + 1:])
    W, bw, Wo = shape[last], blocks[last], sizes[last]
    R = math.prod(o[0] for o in outer)
    Ro = math.prod(o[2] for o in outer)
    return BlockPlan(name, (P, R, W * C), (P, Ro, Wo * C), outer, W, bw, Wo, C, out_dtype,
                     acc_dtype, omit, tuple(sizes))


def _reduce(backend, name, x, blocks, sizes, out_dtype, acc_dtype, omit, out, cval=None):
    """Run the kernel of ``name`` on ``x`` (blocks cut short where the input ends; on CUDA,
    filled up with ``cval`` unless it is None)."""
    if _on_cuda(x):  # one launch, whatever the blocks (a 0-d x is seen as 1-D)
        if name in ("sum", "mean") and acc_dtype == np.float32 and math.prod(blocks) > 64:
            acc_dtype = np.dtype(np.float64)
        plan = _plan(name, tuple(x.shape) or (1,), blocks or (1,), sizes or (1,), out_dtype,
                     acc_dtype, omit)
        return backend.run_block_reduce(plan._replace(result_shape=tuple(sizes)), x, out,
                                        cval)
    if all(b == 1 for b in blocks):  # every block one element: the element itself
        result = np.empty(sizes, out_dtype) if out is None else out
        if result.size:
            np.copyto(result, x, casting="unsafe")
        return result
    if name in ("sum", "mean") and acc_dtype == np.float32 and math.prod(blocks) > 64:
        acc_dtype = np.dtype(np.float64)  # long float32 sums lose digits (as avg_pool)
    if name == "mean" and x.dtype.kind in "iu" and x.dtype.itemsize <= 4:
        # exact int64 sums (no block of under 2**31 elements can overflow them) are
        # cheaper than float64 ones: integer adds, no conversion per element
        acc_dtype = np.dtype(np.int64)
    plan = _plan(name, tuple(x.shape), blocks, sizes, out_dtype, acc_dtype, omit)
    return backend.run_block_reduce(plan, x, out)


def _pad_edges(backend, name, x, blocks, sizes, cval, out_dtype, acc_dtype, omit, result):
    """Redo the blocks that ``boundary="pad"`` fills with ``cval``: for each axis cut short,
    the slab of its last blocks (less those of earlier such axes), copied with the padding
    and reduced with whole blocks into its place in ``result``."""
    done = []
    for axis, (L, b) in enumerate(zip(x.shape, blocks)):
        if L % b == 0:
            continue
        source, target, padded = [], [], []
        for a, (La, ba) in enumerate(zip(x.shape, blocks)):
            full = La // ba
            if a == axis:
                source.append(slice(full * ba, La))
                target.append(slice(full, full + 1))
                padded.append(ba)
            elif a in done:
                source.append(slice(0, full * ba))
                target.append(slice(0, full))
                padded.append(full * ba)
            else:
                source.append(slice(0, La))
                target.append(slice(0, sizes[a]))
                padded.append(sizes[a] * ba)
        done.append(axis)
        region = result[tuple(target)]
        if region.size == 0:
            continue
        part = x[tuple(source)]
        slab = np.full(padded, cval, x.dtype)
        slab[tuple(slice(0, n) for n in part.shape)] = part
        _reduce(backend, name, slab, blocks, region.shape, out_dtype, acc_dtype, omit, region)


# --------------------------------------------------------------------------- any callable


def _blocked_view(a, blocks):
    """``a`` (whole blocks on every axis) as a read-only view ``(*counts, *blocks)``."""
    counts = tuple(n // b for n, b in zip(a.shape, blocks))
    strides = tuple(s * b for s, b in zip(a.strides, blocks)) + a.strides
    return np.lib.stride_tricks.as_strided(a, counts + tuple(blocks), strides,
                                           writeable=False)


def _apply(func, a, blocks):
    ndim = a.ndim
    view = _blocked_view(a, blocks)
    result = np.asarray(func(view, axis=tuple(range(ndim, 2 * ndim))))
    if result.shape != view.shape[:ndim]:
        raise ValueError(f"func={func!r} returned shape {result.shape} for blocks viewed as "
                         f"{view.shape}; it must reduce the axes given as axis= (the last "
                         f"{ndim})")
    return result


def _generic(func, x, blocks, sizes, boundary, cval):
    """``func`` over blocked views: the whole-block part, and for ``"partial"`` each part of
    the edge blocks (of one shape each) on its own."""
    if boundary == "pad":
        widths = [(0, o * b - L) for L, b, o in zip(x.shape, blocks, sizes)]
        if any(w for _, w in widths):
            x = np.pad(x, widths, constant_values=cval)
        return _apply(func, x, blocks)
    if boundary != "partial":
        return _apply(func, x[tuple(slice(0, o * b) for o, b in zip(sizes, blocks))], blocks)
    # every combination of (whole blocks, the cut-short last block) over the axes
    parts = [[(slice(0, L // b * b), slice(0, L // b), b)] + (
        [(slice(L // b * b, L), slice(L // b, L // b + 1), L % b)] if L % b else [])
        for L, b in zip(x.shape, blocks)]
    pieces = []
    for combo in _product(parts):
        source = tuple(c[0] for c in combo)
        target = tuple(c[1] for c in combo)
        if all(s.stop > s.start for s in target):
            pieces.append((target, _apply(func, x[source], tuple(c[2] for c in combo))))
    dtype = np.result_type(*(p for _, p in pieces)) if pieces else x.dtype
    result = np.empty(sizes, dtype)
    for target, piece in pieces:
        result[target] = piece
    return result


def _product(lists):
    combos = [()]
    for options in lists:
        combos = [c + (o,) for c in combos for o in options]
    return combos


# --------------------------------------------------------------------------- public


@dask_aware("block_reduce")
def block_reduce(x: Array, block_size: int | Sequence[int], func: BlockFunc = "mean", *,
                 cval: float = 0, boundary: Boundary = "pad",
                 nan_policy: NanPolicy = "propagate", out: Array | None = None,
                 device: Device = None) -> Array:
    """Reduce non-overlapping blocks of ``x`` (``skimage.measure.block_reduce``, compiled).

    Every axis of ``x`` is cut into blocks of ``block_size`` elements, aligned at index 0,
    and each block gives one value; an axis with a block of 1 is left alone.  Any rank,
    any axes.

    Parameters
    ----------
    x : array
        A NumPy array or a CUDA array (Numba device array, CuPy array, torch CUDA
        tensor) of any shape; integer (8-64 bit, signed or unsigned) or float16/32/64.
        May be non-contiguous, negatively strided, Fortran-ordered or read-only.
    block_size : int or tuple of int
        The block length on every axis (an int), or on each axis of ``x`` (one int per
        axis, 1 to leave an axis alone), each >= 1.
    func : {"sum", "mean", "max", "min", "median", "mode"} or callable
        The reducer.  ``"median"`` of an even count is the mean of the middle two (as
        ``numpy.median``); ``"mode"`` is the most frequent value, ties going to the
        smallest (as ``scipy.stats.mode``), the reducer for label images.
        ``numpy.sum``, ``numpy.mean``, ``numpy.max``/``amax``, ``numpy.min``/``amin`` and
        ``numpy.median`` name the same kernels.  Any other callable is called as
        ``func(view, axis=axes)`` on a read-only view of the blocks (``view.shape ==
        (*counts, *block_size)``, ``axes`` its last ``x.ndim`` axes), as scikit-image does:
        slow, with NumPy's speed and the callable's dtype and NaN rules, and on the CPU
        only.
    cval : float
        The value that pads the last blocks with ``boundary="pad"``; it must be a value
        of ``x``'s dtype (an integer in range for integer ``x``).
    boundary : {"pad", "trim", "exact", "partial"}
        What to do with a last block that the axis cuts short: ``"pad"`` fills it up
        with ``cval``, which takes part in the reduction (scikit-image's rule);
        ``"trim"`` drops it; ``"exact"`` raises ``ValueError`` unless every axis divides
        into whole blocks; ``"partial"`` reduces the elements it has (the mean over
        them, their median, ...).
    nan_policy : {"propagate", "omit"}
        ``"propagate"``: a NaN in a block gives NaN.  ``"omit"``: NaNs are left out (of a
        mean's divisor too), and a block of only NaNs gives NaN, for every reducer.  With a
        callable only ``"propagate"`` is accepted (pass a NaN-aware callable instead).
    out : array, optional
        Preallocated result of the exact shape and dtype, of the result's family and
        device, not overlapping ``x``.
    device : {None, "cpu", "cuda"}
        Where to compute: ``None`` where ``x`` lives (a CUDA array runs on the CUDA
        kernels, its result of its family and on its device); ``"cpu"`` copies a CUDA
        array to the host; ``"cuda"`` copies a NumPy array to the GPU and returns a Numba
        device array.

    Returns
    -------
    array
        One value per block: along an axis of length L and block b, ``ceil(L / b)``
        values (``"pad"``, ``"partial"``) or ``L // b`` (``"trim"``, ``"exact"``).  dtype:
        max, min and mode keep ``x``'s; sum keeps a float dtype and gives int64 for
        signed and uint64 for unsigned integers (wrapping around as NumPy does); mean and
        median keep a float dtype and give float64 for integers.  float16 is computed in
        float32; float32 sums of more than 64 elements in float64.

    Raises
    ------
    TypeError
        For an unsupported type or dtype of ``x``, ``out``, ``block_size``, ``func`` or
        ``cval``.
    ValueError
        For a value or shape that does not fit: a block size below 1, an unknown
        ``func`` or ``boundary``, an axis that a block does not divide under ``"exact"``,
        a ``cval`` that is not a value of ``x``'s dtype, an ``out`` of another shape or
        overlapping ``x``.
    NotImplementedError
        For a callable ``func`` (other than the NumPy reductions named above) on CUDA.
    RuntimeError
        For ``device="cuda"`` where no CUDA device (or simulator) is available.

    See Also
    --------
    pyramid : block reduction repeated, level after level.
    avg_pool, max_pool : sliding windows, with strides and padding.

    Notes
    -----
    Max and min follow the NaN rules of the pooling functions.  Which of equal values a
    max, min or mode returns matters only for the sign of a zero, which is that of one of
    the block's zeros.  On the CPU, medians and modes of blocks of up to 256 elements sort
    32 blocks at once with a sorting network; larger blocks are gathered one at a time,
    into a scratch of one block per thread.  On the GPU a thread reduces one output's
    block: medians and modes sort blocks of up to 64 elements in the thread's local
    memory and count larger ones without scratch (``n**2`` reads of a block of ``n``
    elements); ``cval`` fills the padded blocks in the kernel, without a copy.  The
    kernels are compiled once per dtype, whatever the block shape (the first call of a
    dtype takes seconds; later processes load them from Numba's cache).

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> x = np.arange(20).reshape(4, 5)
    >>> nbp.block_reduce(x, 2)  # the last column's blocks are padded with 0
    array([[ 3.  ,  5.  ,  3.25],
           [13.  , 15.  ,  8.25]])
    >>> nbp.block_reduce(x, 2, boundary="partial")  # or reduce what they have
    array([[ 3. ,  5. ,  6.5],
           [13. , 15. , 16.5]])
    >>> nbp.block_reduce(x, 2, "max", boundary="trim")
    array([[ 6,  8],
           [16, 18]])
    >>> nbp.block_reduce(x, (2, 5), "sum", boundary="exact")
    array([[ 45],
           [145]])
    >>> nbp.block_reduce(x, (1, 2), "median", boundary="partial")[0]
    array([0.5, 2.5, 4. ])
    >>> labels = np.array([[1, 1, 2, 2], [3, 1, 2, 3]], dtype=np.uint32)
    >>> nbp.block_reduce(labels, 2, "mode")
    array([[1, 2]], dtype=uint32)
    >>> nbp.block_reduce(np.array([1.0, np.nan, 3.0, 5.0]), 2, nan_policy="omit")
    array([1., 4.])
    """
    backend, x = _host(x, device)
    dt = np.dtype(x.dtype)
    blocks = _blocks(block_size, x.ndim, "block_size")
    name, call = _func(func)
    boundary = check_choice(boundary, "boundary", BOUNDARIES)
    nan_policy = check_choice(nan_policy, "nan_policy", NAN_POLICIES)
    if dt not in EXTREME_DTYPES:
        raise TypeError(f"x has dtype {dt}; block_reduce accepts "
                        f"{', '.join(d.name for d in EXTREME_DTYPES)}")
    pad = _cval(cval, dt, boundary == "pad")
    sizes = _out_sizes(x.shape, blocks, boundary)
    if call is not None:
        if _on_cuda(x):
            raise NotImplementedError(
                f"func={func!r} runs on the CPU only (only the named reducers "
                f"{', '.join(map(repr, BLOCK_FUNCS))} have CUDA kernels); pass device='cpu' "
                "to copy x to the host")
        if nan_policy != "propagate":
            raise ValueError("nan_policy='omit' applies to the named reducers; a callable "
                             "func sees the NaNs itself (pass a NaN-aware one, such as "
                             "np.nanmean)")
        if out is not None:
            check_out(out, sizes, getattr(out, "dtype", None), (x,))
        result = _generic(call, x, blocks, sizes, boundary, pad)
        if out is None:
            return result
        check_out(out, sizes, result.dtype, (x,))
        out[...] = result
        return out
    out_dtype, acc_dtype = _dtypes(name, dt)
    omit = nan_policy == "omit" and dt.kind == "f"
    if _on_cuda(x):  # the backend checks out= (of the input's family) before any kernel
        return _reduce(backend, name, x, blocks, sizes, out_dtype, acc_dtype, omit, out, pad)
    if out is not None:
        check_out(out, sizes, out_dtype, (x,))
    # "pad" reduces the blocks cut short as "partial" does, then redoes them with padding
    result = _reduce(backend, name, x, blocks, sizes, out_dtype, acc_dtype, omit, out)
    if boundary == "pad" and result.size:
        _pad_edges(backend, name, x, blocks, sizes, pad, out_dtype, acc_dtype, omit, result)
    return result


@dask_aware("pyramid")
def pyramid(x: Array, factor: int | Sequence[int] = 2, *, levels: int | None = None,
            func: BlockFunc = "mean", boundary: Boundary = "partial",
            nan_policy: NanPolicy = "propagate") -> list[Array]:
    """A pyramid of ever coarser block reductions: ``[x, level_1, level_2, ...]``.

    Level ``k + 1`` is ``block_reduce(level_k, factor, func, boundary=boundary,
    nan_policy=nan_policy)``: each level is computed from the previous one, not from
    ``x``.

    Parameters
    ----------
    x : array
        As for :func:`block_reduce`.
    factor : int or tuple of int
        The block of each level, on every axis (an int) or on each axis of ``x`` (1
        leaves an axis alone), each >= 1.
    levels : int, optional
        How many levels to compute after ``x`` (>= 0).  ``None`` goes on until every
        reduced axis (factor > 1) has length 1 (or 0), or until the next level would be
        empty (``"trim"``) or cannot be cut into whole blocks (``"exact"``).
    func : str or callable
        The reducer of every level, as for :func:`block_reduce`.
    boundary : {"pad", "trim", "exact", "partial"}
        As for :func:`block_reduce`; ``"partial"`` by default, so that the edge blocks
        of every level are reduced over the elements they have.  ``"pad"`` pads with 0.
    nan_policy : {"propagate", "omit"}
        As for :func:`block_reduce`.

    Returns
    -------
    list of array
        ``x`` itself, then ``levels`` reductions (of ``x``'s family, on its device), each
        in the dtype :func:`block_reduce` gives (so integer ``x`` gives float64 levels for
        means).

    Raises
    ------
    TypeError
        For an unsupported type or dtype of ``x``, or of ``factor`` or ``levels``.
    ValueError
        As for :func:`block_reduce`, and for ``levels < 0``.
    NotImplementedError
        For a callable ``func`` (other than the NumPy reductions) on a CUDA array.

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> levels = nbp.pyramid(np.arange(36.0).reshape(6, 6))
    >>> [level.shape for level in levels]
    [(6, 6), (3, 3), (2, 2), (1, 1)]
    >>> levels[2]  # the edge blocks of level 1 (3 x 3) hold 2 values, or 1
    array([[10.5, 13.5],
           [28.5, 31.5]])
    >>> [a.shape for a in nbp.pyramid(np.zeros((8, 8, 3)), (2, 2, 1), levels=2)]
    [(8, 8, 3), (4, 4, 3), (2, 2, 3)]
    """
    _, view = _host(x, None)  # checks x; the levels are of x's family
    factors = _blocks(factor, view.ndim, "factor")
    if levels is not None:
        if not _is_int(levels):
            raise TypeError(f"levels must be an int or None; got {levels!r}")
        if levels < 0:
            raise ValueError(f"levels must be >= 0; got {levels!r}")
    _func(func)
    check_choice(boundary, "boundary", BOUNDARIES)
    check_choice(nan_policy, "nan_policy", NAN_POLICIES)
    result = [x]
    while levels is None or len(result) <= levels:
        current = result[-1]
        if levels is None and not _goes_on(current.shape, factors, boundary):
            break
        result.append(block_reduce(current, factors, func, boundary=boundary,
                                   nan_policy=nan_policy))
    return result


def _goes_on(shape, factors, boundary):
    """Whether ``levels=None`` makes another level of an array of ``shape``."""
    reduced = [L for L, f in zip(shape, factors) if f > 1]
    if not any(L > 1 for L in reduced):
        return False
    if boundary == "trim":
        return all(L >= f for L, f in zip(shape, factors))
    if boundary == "exact":
        return all(L % f == 0 for L, f in zip(shape, factors))
    return True
