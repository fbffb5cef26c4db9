"""block_reduce and pyramid: against the naive oracle (tests/block_reference.py), against
scikit-image and scipy where installed, and the shared conventions (errors, views, out=,
zero-size inputs, NaN policies).

Kernels compile per dtype, not per block shape, so the dtype matrix is kept to the six
dtypes below; shapes and block sizes vary freely.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import block_reference as ref
import numbapool as nbp
from conftest import VIEWS, as_view
from numbapool import blocks, dispatch
from numbapool._cpu import blocks as cpu_blocks
from numbapool._cpu import parallel

DTYPES = ("uint8", "int64", "uint64", "float16", "float32", "float64")
EXACT = ("max", "min", "mode")
#: one shape per rank, with axes that blocks of 2 and 3 do and do not divide
SHAPES = {1: (11,), 2: (6, 7), 3: (4, 5, 6), 4: (2, 3, 4, 5)}
BLOCKS = {1: (3,), 2: (2, 3), 3: (1, 2, 3), 4: (2, 1, 3, 2)}


def values(shape, dtype, seed=0, nan=False, small=None):
    """Test data: integers over the whole range or (``small``) from a few values, so that
    modes have ties; floats with some repeats, and NaNs when asked."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    small = (seed % 2 == 0) if small is None else small
    if dtype.kind in "iu":
        if small:
            return rng.integers(0, 4, shape).astype(dtype)
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    a = rng.standard_normal(shape) * 3
    if small:
        a = np.round(a)
    if nan:
        a[rng.random(shape) < 0.3] = np.nan
    return a.astype(dtype)


def check(got, want, func, x, block):
    """``got`` equals ``want``: exactly for max, min, mode and integer results; within a
    few ulps of the data's magnitude times the block size for sums, means and medians."""
    assert isinstance(got, np.ndarray)
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype,
                                                                want.shape, want.dtype)
    if func in EXACT or want.dtype.kind in "iu":
        np.testing.assert_array_equal(got, want)
        return
    assert np.array_equal(np.isnan(got), np.isnan(want)), (got, want)
    eps = float(np.finfo(want.dtype).eps)
    finite = np.abs(x[np.isfinite(x)].astype(np.float64)) if x.dtype.kind == "f" else \
        np.abs(x.astype(np.float64))
    scale = float(finite.max()) if finite.size else 1.0
    atol = 8 * eps * int(np.prod(block)) * max(scale, 1.0)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=4 * eps,
                               atol=atol)


def compare(x, block, func, **kwargs):
    """numbapool and the reference agree, or both raise ValueError."""
    args = dict(cval=kwargs.get("cval", 0), boundary=kwargs.get("boundary", "pad"),
                nan_policy=kwargs.get("nan_policy", "propagate"))
    try:
        want = ref.block_reduce(x, block, func, **args)
    except ValueError:
        with pytest.raises(ValueError):
            nbp.block_reduce(x, block, func, **args)
        return None
    got = nbp.block_reduce(x, block, func, **args)
    check(got, want, func, x, ref._blocks(block, x.ndim))
    return got


# --------------------------------------------------------------------------- the oracle


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("boundary", ref.BOUNDARIES)
@pytest.mark.parametrize("func", ref.FUNCS)
def test_matches_reference(func, boundary, dtype):
    for rank, shape in SHAPES.items():
        for seed in (rank, rank + 1):  # small values (ties), then the whole range
            x = values(shape, dtype, seed)
            compare(x, BLOCKS[rank], func, boundary=boundary, cval=2)
    # blocks that every axis divides, so that "exact" runs too
    compare(values((4, 6), dtype, 7), (2, 3), func, boundary=boundary)
    # wide blocks on the last axis: halved pass by pass (8: three halvings; 12: two, then
    # thirds; 10: one, then windows of 5)
    for seed, (shape, block) in enumerate([((3, 35), (2, 8)), ((2, 40), (1, 12)),
                                           ((2, 3, 24), (1, 2, 10))]):
        compare(values(shape, dtype, seed), block, func, boundary=boundary)


@pytest.mark.parametrize("func", ref.FUNCS)
@pytest.mark.parametrize("nan_policy", ["propagate", "omit"])
def test_nan_policies_match_reference(func, nan_policy):
    for boundary in ("pad", "partial"):
        for seed, (shape, block) in enumerate([((9,), 2), ((5, 7), (2, 3)),
                                               ((3, 4, 5), (2, 2, 2))]):
            for dtype in ("float16", "float64"):
                x = values(shape, dtype, seed, nan=True)
                compare(x, block, func, boundary=boundary, nan_policy=nan_policy)
        x = values((4, 6), "float64", 0, nan=True)
        compare(x, (2, 3), func, boundary=boundary, nan_policy=nan_policy, cval=np.nan)


@pytest.mark.parametrize("func, propagate, omit", [
    ("sum", [np.nan, 8.0, np.nan], [1.0, 8.0, np.nan]),
    ("mean", [np.nan, 4.0, np.nan], [1.0, 4.0, np.nan]),
    ("max", [np.nan, 5.0, np.nan], [1.0, 5.0, np.nan]),
    ("min", [np.nan, 3.0, np.nan], [1.0, 3.0, np.nan]),
    ("median", [np.nan, 4.0, np.nan], [1.0, 4.0, np.nan]),
    ("mode", [np.nan, 3.0, np.nan], [1.0, 3.0, np.nan]),
])
def test_nan_rules(func, propagate, omit):
    """A NaN gives NaN; under "omit" NaNs are left out and a block of only NaNs gives NaN,
    for every reducer (sums too)."""
    x = np.array([1.0, np.nan, 3.0, 5.0, np.nan, np.nan])
    np.testing.assert_array_equal(nbp.block_reduce(x, 2, func), propagate)
    np.testing.assert_array_equal(nbp.block_reduce(x, 2, func, nan_policy="omit"), omit)


@pytest.mark.parametrize("func, pool", [("max", nbp.max_pool), ("min", nbp.min_pool)])
@pytest.mark.parametrize("nan_policy", ["propagate", "omit"])
def test_max_min_follow_the_pooling_nan_rules(func, pool, nan_policy):
    x = values((3, 8, 12), "float32", 3, nan=True)
    x[0, :2, :2] = np.nan  # a block of only NaNs
    x[1, 0, 0] = np.inf
    np.testing.assert_array_equal(nbp.block_reduce(x, (1, 2, 2), func, nan_policy=nan_policy),
                                  pool(x, (2, 2), nan_policy=nan_policy))


def test_infinities():
    x = np.array([np.inf, -np.inf, np.inf, 1.0, -np.inf, -np.inf])
    np.testing.assert_array_equal(nbp.block_reduce(x, 2, "sum"), [np.nan, np.inf, -np.inf])
    np.testing.assert_array_equal(nbp.block_reduce(x, 2, "median"), [np.nan, np.inf, -np.inf])
    np.testing.assert_array_equal(nbp.block_reduce(x, 2, "mode"), [-np.inf, 1.0, -np.inf])


# --------------------------------------------------------------------------- outside oracles


SKIMAGE_FUNCS = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min,
                 "median": np.median}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("func", list(SKIMAGE_FUNCS))
def test_matches_skimage(func, dtype):
    measure = pytest.importorskip("skimage.measure")
    for seed, (shape, block) in enumerate([((7, 10), 3), ((6, 5), (2, 2)), ((5, 4, 6), (2, 1, 4)),
                                           ((13,), (5,))]):
        x = values(shape, dtype, seed)
        want = measure.block_reduce(x, block, SKIMAGE_FUNCS[func], cval=1)
        got = nbp.block_reduce(x, block, func, cval=1)
        assert got.dtype == want.dtype
        if dtype == "float16" and func in ("sum", "mean"):  # NumPy sums in float16 steps
            np.testing.assert_allclose(got.astype(float), want.astype(float), rtol=1e-2,
                                       atol=0.1)
        else:
            check(got, want, func, x, ref._blocks(block, x.ndim))


def test_mode_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    x = values((6, 9, 8), "uint8", 0)  # values 0..3: ties in most blocks
    got = nbp.block_reduce(x, (2, 3, 2), "mode")
    blocked = x.reshape(3, 2, 3, 3, 4, 2).transpose(0, 2, 4, 1, 3, 5).reshape(3, 3, 4, -1)
    want = stats.mode(blocked, axis=-1, keepdims=False).mode
    np.testing.assert_array_equal(got, want)
    f = values((4, 6), "float32", 2)
    blocked = f.reshape(2, 2, 3, 2).transpose(0, 2, 1, 3).reshape(2, 3, -1)
    np.testing.assert_array_equal(nbp.block_reduce(f, 2, "mode"),
                                  stats.mode(blocked, axis=-1, keepdims=False).mode)


def test_numpy_functions_name_the_kernels():
    x = values((6, 8), "float32", 1)
    for f, name in [(np.sum, "sum"), (np.mean, "mean"), (np.max, "max"), (np.amax, "max"),
                    (np.min, "min"), (np.amin, "min"), (np.median, "median")]:
        np.testing.assert_array_equal(nbp.block_reduce(x, 2, f), nbp.block_reduce(x, 2, name))


@pytest.mark.parametrize("boundary", ref.BOUNDARIES)
def test_any_callable_runs_on_blocked_views(boundary):
    x = values((7, 9), "float64", 3, nan=True)
    block = (2, 3) if boundary != "exact" else (7, 3)
    want = ref.block_reduce(x, block, "max", cval=-5.0, boundary=boundary, nan_policy="omit")
    got = nbp.block_reduce(x, block, np.nanmax, cval=-5.0, boundary=boundary)
    np.testing.assert_array_equal(got, want)
    spread = nbp.block_reduce(x, block, np.ptp, cval=-5.0, boundary=boundary)
    np.testing.assert_array_equal(
        spread, ref.block_reduce(x, block, "max", cval=-5.0, boundary=boundary)
        - ref.block_reduce(x, block, "min", cval=-5.0, boundary=boundary))
    out = np.empty_like(got)
    assert nbp.block_reduce(x, block, np.nanmax, cval=-5.0, boundary=boundary, out=out) is out
    np.testing.assert_array_equal(out, got)


# --------------------------------------------------------------------------- dtypes, accuracy


@pytest.mark.parametrize("dtype, results", [
    ("uint8", {"sum": "uint64", "mean": "float64", "max": "uint8", "median": "float64",
               "mode": "uint8"}),
    ("int16", {"sum": "int64", "mean": "float64", "min": "int16", "median": "float64",
               "mode": "int16"}),
    ("float16", {"sum": "float16", "mean": "float16", "max": "float16", "median": "float16",
                 "mode": "float16"}),
    ("float32", {"sum": "float32", "mean": "float32", "min": "float32", "median": "float32",
                 "mode": "float32"}),
])
def test_result_dtypes(dtype, results):
    x = values((4, 4), dtype, 0)
    for func, result in results.items():
        # blocks of one element compile nothing, and have the dtypes of any other blocks
        assert nbp.block_reduce(x, 1, func).dtype == np.dtype(result), func
        if dtype != "int16":  # a dtype whose kernels the other tests compile anyway
            assert nbp.block_reduce(x, 2, func).dtype == np.dtype(result), func


def test_integer_sums_are_exact_and_wrap_as_numpy():
    big = np.array([2**62, 2**62, 2**62, 2**62 - 1], np.int64)
    np.testing.assert_array_equal(nbp.block_reduce(big, 2, "sum"), [big[:2].sum(),
                                                                     big[2:].sum()])
    u = np.full(4, 2**64 - 1, np.uint64)
    np.testing.assert_array_equal(nbp.block_reduce(u, 4, "sum"), [u.sum()])
    odd = np.array([2**53 + 1, 2**53 + 3, 7], np.int64)  # beyond float64's integers
    np.testing.assert_array_equal(nbp.block_reduce(odd, 3, "sum"), [odd.sum()])
    np.testing.assert_array_equal(nbp.block_reduce(odd, 3, "max"), [2**53 + 3])
    np.testing.assert_array_equal(nbp.block_reduce(np.array([2**64 - 2, 2**64 - 1, 5],
                                                            np.uint64), 3, "mode"), [5])


def test_long_float32_sums_accumulate_in_float64():
    x = np.full((1, 1000), 10000.01, np.float32)
    assert float(nbp.block_reduce(x, (1, 1000))[0, 0]) == float(np.float32(10000.01))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("block", [(2, 2), (4, 4), (2, 3), (1, 5)])
def test_means_round_the_sum_over_the_count_once(dtype, block):
    """A mean is the block's sum (in row order, as a sum reduction gives it) times the
    float64 reciprocal of the count, rounded once; subnormal sums included (a count that
    is a power of two is scaled in the sum's own type, which must round the same)."""
    rng = np.random.default_rng(7)
    tiny = np.finfo(dtype).tiny
    x = (rng.standard_normal((24, 60)) * tiny * 4).astype(dtype)
    x[:12] = rng.standard_normal((12, 60)).astype(dtype)
    sums = nbp.block_reduce(x, block, "sum")
    expect = (sums.astype(np.float64) * (1.0 / np.prod(block))).astype(dtype)
    assert np.count_nonzero(np.abs(expect) < tiny) > 10
    np.testing.assert_array_equal(nbp.block_reduce(x, block, "mean"), expect)


def test_medians_of_even_counts_average_the_middle_two():
    x = np.array([[1, 9, 2, 7], [3, 3, 100, 0]], np.int64)
    np.testing.assert_array_equal(nbp.block_reduce(x, (1, 4), "median"), [[4.5], [3.0]])
    big = np.array([2**63 - 1, 2**63 - 3], np.int64)
    assert nbp.block_reduce(big, 2, "median")[0] == np.median(big)


def test_modes_tie_to_the_smallest():
    x = np.array([[5, 2, 5, 2, 9, 9, 1, 1, 1]], np.uint64)
    np.testing.assert_array_equal(nbp.block_reduce(x, (1, 4), "mode", boundary="partial"),
                                  [[2, 1, 1]])


# --------------------------------------------------------------------------- kernel paths


def test_threads_and_chunks_give_the_serial_result(monkeypatch):
    """Many threads over ranges of tasks, and rows split into chunks, change nothing."""
    x = values((5, 40, 37), "float32", 4, nan=True)
    labels = values((6, 33, 20), "int64", 2)
    cases = [(x, (2, 3, 4), f, b) for f in ref.FUNCS for b in ("partial", "pad")]
    cases += [(labels, (3, 2, 1), "mode", "partial"), (labels, (1, 4, 3), "sum", "pad")]
    want = [nbp.block_reduce(a, blk, f, boundary=b, nan_policy="omit") for a, blk, f, b in cases]
    monkeypatch.setattr(parallel, "PARALLEL_MIN_ELEMENTS", 0)
    monkeypatch.setattr(cpu_blocks, "BUFFER", 16)
    for (a, blk, f, b), w in zip(cases, want):
        got = nbp.block_reduce(a, blk, f, boundary=b, nan_policy="omit")
        np.testing.assert_array_equal(got, w)


@pytest.mark.parametrize("func", ["median", "mode"])
def test_blocks_too_large_for_the_network(func, monkeypatch):
    """Blocks above NETWORK_MAX elements are sorted one at a time: same results."""
    x = values((9, 20), "float32", 1, nan=True)
    y = values((9, 20), "int64", 0)
    for nan_policy in ("propagate", "omit"):
        compare(x, (4, 6), func, boundary="partial", nan_policy=nan_policy)
    monkeypatch.setattr(cpu_blocks, "NETWORK_MAX", 4)
    for nan_policy in ("propagate", "omit"):
        compare(x, (4, 6), func, boundary="partial", nan_policy=nan_policy)
        compare(x, (3, 1), func, boundary="pad", nan_policy=nan_policy)
    compare(y, (2, 7), func, boundary="partial")


@pytest.mark.parametrize("dtype", ["float16", "float32", "uint8", "int64"])
def test_long_rows_take_the_vector_paths(dtype):
    """Rows of more than LANES whole blocks: medians and modes gather LANES blocks at a
    time (block widths 2 and 3 with vector shuffles, others with loads at a stride, and
    channels-last rows through an offset table)."""
    lanes = cpu_blocks.kernels.LANES
    for shape, block in [((2, 4, 2 * lanes * 2 + 3), (1, 2, 2)),
                         ((3, 2 * lanes * 3 + 4), (3, 3)),
                         ((2, 2, 2 * lanes * 4 + 1), (1, 2, 4)),
                         ((4, 2 * lanes + 6, 3), (2, 2, 1))]:
        x = values(shape, dtype, 2, nan=True)
        for func in ("median", "mode"):
            for nan_policy in ("propagate", "omit"):
                compare(x, block, func, boundary="partial", nan_policy=nan_policy)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 27, 64])
def test_sorting_networks_sort(n):
    rng = np.random.default_rng(n)
    net = cpu_blocks.sorting_network(n)
    half = cpu_blocks.sorting_network(n, lower_half=True)
    assert len(half) <= len(net)
    for _ in range(200):
        a = rng.integers(0, 4, n)
        for pairs, upto in ((net, n), (half, n // 2 + 1)):
            b = a.copy()
            for i, j in pairs:
                if b[j] < b[i]:
                    b[i], b[j] = b[j], b[i]
            np.testing.assert_array_equal(b[:upto], np.sort(a)[:upto])


# --------------------------------------------------------------------------- conventions


@pytest.mark.parametrize("view", VIEWS)
def test_views_give_the_contiguous_result(view):
    # a read-only array is a type of its own to Numba: one dtype compiles for it
    cases = [("float32", "mean"), ("uint64", "mode"), ("float16", "median"), ("int64", "max")]
    for dtype, func in cases[:1] if view == "readonly" else cases:
        x = values((5, 6, 7), dtype, 2)
        a = as_view(x, view)
        for block in [(2, 2, 3), (1, 3, 1), (5, 1, 2)]:
            np.testing.assert_array_equal(nbp.block_reduce(a, block, func),
                                          nbp.block_reduce(x, block, func))


def test_inputs_are_left_alone():
    x = values((6, 7), "float64", 1, nan=True)
    before = x.copy()
    for func in ref.FUNCS:
        nbp.block_reduce(x, 2, func, cval=3.0)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("boundary", ref.BOUNDARIES)
def test_out_is_filled_and_returned(boundary):
    x = values((6, 9), "float32", 3)
    block = (2, 3)
    want = nbp.block_reduce(x, block, "median", boundary=boundary, cval=1)
    out = np.empty_like(want)
    assert nbp.block_reduce(x, block, "median", boundary=boundary, cval=1, out=out) is out
    np.testing.assert_array_equal(out, want)
    big = np.zeros((want.shape[0] * 2, want.shape[1]), want.dtype)
    strided = big[::2]  # not contiguous
    assert nbp.block_reduce(x, block, "median", boundary=boundary, cval=1, out=strided) is strided
    np.testing.assert_array_equal(strided, want)
    assert not big[1::2].any()


def test_out_with_padding_that_is_not_contiguous():
    x = values((7, 5), "int64", 0)
    want = nbp.block_reduce(x, 2, "sum", cval=9)
    out = np.zeros((4, 6), np.int64).T[:3].T  # Fortran-ordered view
    assert nbp.block_reduce(x, 2, "sum", cval=9, out=out) is out
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("shape, block, boundary, result", [
    ((0, 5), 2, "pad", (0, 3)),
    ((4, 0), (2, 2), "partial", (2, 0)),
    ((0,), 3, "exact", (0,)),
    ((3, 5), (4, 1), "trim", (0, 5)),
    ((2, 0, 3), (1, 2, 3), "trim", (2, 0, 1)),
])
def test_zero_size(shape, block, boundary, result):
    x = np.zeros(shape, np.float32)
    for func in ("mean", "mode", np.nanmean):
        got = nbp.block_reduce(x, block, func, boundary=boundary)
        assert got.shape == result
    out = np.empty(result, np.float32)
    assert nbp.block_reduce(x, block, "max", boundary=boundary, out=out) is out


def test_blocks_of_one_and_zero_dimensional_arrays():
    x = values((3, 4), "int16", 1)
    np.testing.assert_array_equal(nbp.block_reduce(x, 1, "sum"), x.astype(np.int64))
    np.testing.assert_array_equal(nbp.block_reduce(x, (1, 1), "median"), x.astype(np.float64))
    assert nbp.block_reduce(np.full((), 2.5), (), "mean") == 2.5
    assert nbp.block_reduce(np.array(7, np.uint8), 3, "mode").shape == ()


# --------------------------------------------------------------------------- errors


X = np.arange(24, dtype=np.float64).reshape(4, 6)
XI = np.arange(24, dtype=np.uint8).reshape(4, 6)


class _NoBlockBackend:
    """A backend without block reduction, as the CUDA backend is for now."""


@pytest.mark.parametrize("call, exc, fragment", [
    (lambda: nbp.block_reduce(X.tolist(), 2), TypeError, "x must be a NumPy ndarray"),
    (lambda: nbp.block_reduce(X > 3, 2), TypeError, "x has dtype bool; block_reduce accepts"),
    (lambda: nbp.block_reduce(X.astype(complex), 2), TypeError, "x has dtype complex128"),
    (lambda: nbp.block_reduce(np.ma.masked_array(X), 2), TypeError, "MaskedArray"),
    (lambda: nbp.block_reduce(X, 0), ValueError, "block_size must be >= 1 on every axis; got 0"),
    (lambda: nbp.block_reduce(X, (2, -1)), ValueError, "block_size must be >= 1"),
    (lambda: nbp.block_reduce(X, (2,)), ValueError,
     "block_size must be an int or a sequence of 2 ints"),
    (lambda: nbp.block_reduce(X, 2.0), TypeError, "block_size must be an int or a sequence"),
    (lambda: nbp.block_reduce(X, True), TypeError, "block_size"),
    (lambda: nbp.block_reduce(X, (2, "a")), TypeError, "block_size"),
    (lambda: nbp.block_reduce(X, 2, "avg"), ValueError,
     "func must be one of 'sum', 'mean', 'max', 'min', 'median', 'mode'; got 'avg'"),
    (lambda: nbp.block_reduce(X, 2, 3), TypeError, "func must be one of"),
    (lambda: nbp.block_reduce(X, 2, boundary="same"), ValueError,
     "boundary must be one of 'pad', 'trim', 'exact', 'partial'; got 'same'"),
    (lambda: nbp.block_reduce(X, 2, nan_policy="raise"), ValueError, "nan_policy must be one of"),
    (lambda: nbp.block_reduce(X, 4, boundary="exact"), ValueError,
     "axis 1 has length 6, which block size 4 does not divide"),
    (lambda: nbp.block_reduce(X, 2, cval="a"), TypeError, "cval must be a real number"),
    (lambda: nbp.block_reduce(X, 2, cval=True), TypeError, "cval"),
    (lambda: nbp.block_reduce(XI, 4, cval=0.5), ValueError, "cval=0.5 is not a value of x's dtype uint8"),
    (lambda: nbp.block_reduce(XI, 4, cval=256), ValueError, "integers from 0 to 255"),
    (lambda: nbp.block_reduce(XI, 4, cval=np.nan), ValueError, "cval=nan"),
    (lambda: nbp.block_reduce(X.astype(np.float16), 4, cval=1e6), ValueError, "overflows"),
    (lambda: nbp.block_reduce(X, 2, out=np.empty((2, 2))), ValueError,
     "out has shape (2, 2); expected (2, 3)"),
    (lambda: nbp.block_reduce(X, 2, out=np.empty((2, 3), np.float32)), TypeError,
     "out has dtype float32; expected float64"),
    (lambda: nbp.block_reduce(X, 2, out=[[0.0] * 3] * 2), TypeError, "out must be a NumPy ndarray"),
    (lambda: nbp.block_reduce(X, 2, out=X[:2, :3]), ValueError, "out overlaps an input"),
    (lambda: nbp.block_reduce(X, 2, np.nanmax, out=X[:2, :3]), ValueError, "out overlaps"),
    (lambda: nbp.block_reduce(X, 2, device="tpu"), ValueError, "device must be None, 'cpu' or 'cuda'"),
    (lambda: nbp.block_reduce(X, 2, np.nanmean, nan_policy="omit"), ValueError,
     "nan_policy='omit' applies to the named reducers"),
    (lambda: nbp.block_reduce(X, 2, lambda a, axis: a), ValueError, "it must reduce the axes"),
    (lambda: nbp.pyramid(X, 0), ValueError, "factor must be >= 1"),
    (lambda: nbp.pyramid(X, (2, 2, 2)), ValueError, "factor must be an int or a sequence of 2"),
    (lambda: nbp.pyramid(X, levels=-1), ValueError, "levels must be >= 0; got -1"),
    (lambda: nbp.pyramid(X, levels=1.5), TypeError, "levels must be an int or None"),
    (lambda: nbp.pyramid(X, func="avg"), ValueError, "func must be one of"),
    (lambda: nbp.pyramid(X, boundary="edge"), ValueError, "boundary must be one of"),
    (lambda: nbp.pyramid(X.tolist()), TypeError, "x must be a NumPy ndarray"),
])
def test_errors(call, exc, fragment):
    with pytest.raises(exc) as info:
        call()
    assert fragment in str(info.value)


@pytest.mark.skipif(nbp.cuda_available(), reason="a CUDA device (or the simulator) is here")
def test_device_cuda_without_cuda_says_why():
    with pytest.raises(RuntimeError, match="device='cuda' was requested"):
        nbp.block_reduce(X, 2, device="cuda")


def test_a_backend_without_block_kernels_is_refused(monkeypatch):
    monkeypatch.setattr(dispatch, "resolve", lambda x, device=None: (_NoBlockBackend(), x))
    with pytest.raises(NotImplementedError, match="device='cpu' to copy a CUDA array"):
        nbp.block_reduce(X, 2)
    with pytest.raises(NotImplementedError, match="no block reduction"):
        nbp.pyramid(X)


def test_nothing_is_written_into_out_on_error():
    out = np.full((2, 2), -7.0)
    for bad in [dict(cval="a"), dict(boundary="exact"), dict(func="avg"),
                dict(nan_policy="x")]:
        args = dict(func="mean", cval=0, boundary="pad", nan_policy="propagate")
        args.update(bad)
        with pytest.raises((TypeError, ValueError)):
            nbp.block_reduce(X[:, :5], (2, 3), args.pop("func"), out=out, **args)
        assert (out == -7.0).all()


def test_device_cpu_runs_here():
    np.testing.assert_array_equal(nbp.block_reduce(X, 2, device="cpu"), nbp.block_reduce(X, 2))


# --------------------------------------------------------------------------- pyramid


def test_pyramid_levels_are_built_from_the_previous_level():
    x = values((13, 10), "float64", 5)
    levels = nbp.pyramid(x, func="median")
    assert levels[0] is x
    assert [a.shape for a in levels] == [(13, 10), (7, 5), (4, 3), (2, 2), (1, 1)]
    for prev, level in zip(levels, levels[1:]):
        np.testing.assert_array_equal(level, nbp.block_reduce(prev, 2, "median",
                                                              boundary="partial"))
    assert len(nbp.pyramid(x, levels=0)) == 1
    two = nbp.pyramid(x, 3, levels=2, func="max", boundary="pad")
    assert [a.shape for a in two] == [(13, 10), (5, 4), (2, 2)]
    np.testing.assert_array_equal(two[2], nbp.block_reduce(two[1], 3, "max"))
    more = nbp.pyramid(x, levels=6)  # past length 1, reducing a length 1 changes nothing
    assert [a.shape for a in more][-3:] == [(1, 1)] * 3


@pytest.mark.parametrize("shape, factor, boundary, shapes", [
    ((8, 8, 3), (2, 2, 1), "partial", [(8, 8, 3), (4, 4, 3), (2, 2, 3), (1, 1, 3)]),
    ((12, 5), 2, "trim", [(12, 5), (6, 2), (3, 1)]),
    ((12, 8), 2, "exact", [(12, 8), (6, 4), (3, 2)]),
    ((1, 9), (4, 3), "pad", [(1, 9), (1, 3), (1, 1)]),
    ((0, 4), 2, "partial", [(0, 4), (0, 2), (0, 1)]),
    ((1, 1), 2, "partial", [(1, 1)]),
])
def test_pyramid_stops_when_every_reduced_axis_is_one(shape, factor, boundary, shapes):
    x = values(shape, "uint8", 0)
    levels = nbp.pyramid(x, factor, func="mode", boundary=boundary)
    assert [a.shape for a in levels] == shapes
    assert all(a.dtype == np.uint8 for a in levels)


def test_pyramid_means_of_integers_are_float64():
    levels = nbp.pyramid(np.arange(16, dtype=np.int64).reshape(4, 4))
    assert [a.dtype for a in levels] == [np.int64, np.float64, np.float64]
    assert levels[-1][0, 0] == 7.5


# --------------------------------------------------------------------------- properties


@st.composite
def _cases(draw):
    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 7), min_size=rank, max_size=rank)))
    block = tuple(draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    return shape, block, draw(st.sampled_from(ref.FUNCS)), draw(st.sampled_from(ref.BOUNDARIES))


@settings(max_examples=40, deadline=None)
@given(case=_cases(), seed=st.integers(0, 3), nan_policy=st.sampled_from(["propagate", "omit"]))
def test_property_matches_reference(case, seed, nan_policy):
    shape, block, func, boundary = case
    for dtype in ("int64", "float64"):
        x = values(shape, dtype, seed, nan=seed == 3)
        compare(x, block, func, boundary=boundary, nan_policy=nan_policy, cval=seed)


@settings(max_examples=30, deadline=None)
@given(case=_cases(), seed=st.integers(0, 9))
def test_property_sums_of_partial_blocks_keep_the_total(case, seed):
    shape, block, _, _ = case
    x = values(shape, "int64", seed, small=True)
    sums = nbp.block_reduce(x, block, "sum", boundary="partial")
    assert sums.sum() == x.sum()
    shape_out = tuple(-(-n // b) for n, b in zip(shape, block))
    assert sums.shape == shape_out
    padded = nbp.block_reduce(x, block, "sum", cval=1)
    assert padded.sum() == x.sum() + (int(np.prod(np.multiply(shape_out, block))) - x.size)


def test_blocks_module_names():
    assert blocks.BLOCK_FUNCS == ref.FUNCS and blocks.BOUNDARIES == ref.BOUNDARIES
