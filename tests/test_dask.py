"""Dask arrays: lazy results equal to the NumPy path on the computed input.

The oracle is the NumPy path itself (whose own tests compare it with the naive reference
and PyTorch): ``f(dask_x).compute()`` must equal ``f(dask_x.compute())`` bit for bit for
max/min/mode/median/cls/last and indices, within float rounding for sums, on chunkings
that cut windows, hold less than a window, or hold one element.  One test runs on a real
two-process ``distributed`` cluster and checks that a worker compiles each kernel at most
once; one builds the graph of a 64 GiB array and computes a corner of it.
"""

import itertools

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import numbapool as nbp  # noqa: E402
from numbapool._dask import is_dask_array  # noqa: E402

RNG = np.random.default_rng(20240611)
X = RNG.standard_normal((2, 3, 13, 11))
X[0, 1, 4, 5] = X[1, 2, 0, 0] = np.nan
X[0, 0, 2, 2:4] = X[0, 0, 3, 2]  # ties
CHUNKINGS = {
    # chunk edges inside windows, a chunk smaller than a window, a one-element chunk
    "irregular": (1, (2, 1), (4, 1, 5, 3), (2, 2, 7)),
    "single-elements": (2, 3, (1,) * 13, (5, 1, 1, 4)),
}


@pytest.fixture(autouse=True, scope="module")
def _synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


def _same(got, want, exact):
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            _same(g, w, exact)
        return
    assert is_dask_array(got), type(got)
    value = got.compute()
    assert isinstance(value, np.ndarray)
    assert value.shape == want.shape and value.dtype == want.dtype, (value.shape, want.shape)
    if exact:
        np.testing.assert_array_equal(value, want)
    else:
        np.testing.assert_allclose(value, want, rtol=1e-12, atol=1e-12)


def _check(x, chunks, name, *args, exact=True, **kwargs):
    d = da.from_array(x, chunks=chunks)
    got = getattr(nbp, name)(d, *args, **kwargs)
    _same(got, getattr(nbp, name)(x, *args, **kwargs), exact)
    return d, got


SPATIAL = [
    ("max_pool", ((3, 3), 2), dict(padding=1, return_indices=True), True),
    ("max_pool", ((3, 2), (1, 3)),
     dict(padding=((2, 0), (1, 1)), dilation=(2, 1), ceil_mode=True, return_indices=True), True),
    ("min_pool", ((3, 4),), dict(stride=(2, 3), padding="same", nan_policy="omit"), True),
    ("avg_pool", ((3, 3), 2), dict(padding=1, ceil_mode=True), False),
    ("avg_pool", ((3, 2), (2, 3)),
     dict(padding=(1, 1), ceil_mode=True, count_include_pad=False, nan_policy="omit"), False),
    ("avg_pool", ((2, 4), 3), dict(padding=(1, 2), ceil_mode=True, divisor_override=3), False),
    ("avg_pool", ((3, 3),), dict(dilation=2, padding="same"), False),
    ("lp_pool", (2.0, (3, 2), 2), dict(ceil_mode=True), False),
    ("adaptive_max_pool", ((5, 4),), dict(return_indices=True), True),
    ("adaptive_max_pool", ((13, None),), dict(nan_policy="omit"), True),
    ("adaptive_avg_pool", ((4, 20),), {}, False),
    ("global_max_pool", (), {}, True),
    ("global_max_pool", (), dict(nan_policy="omit", keepdims=True), True),
    ("global_avg_pool", (), {}, False),
    ("global_avg_pool", (), dict(nan_policy="omit", keepdims=True), False),
    ("gem_pool", (2.5, 0.1), {}, False),
]


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("name, args, kwargs, exact", SPATIAL,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(SPATIAL)])
def test_spatial_equals_numpy_path(name, args, kwargs, exact, chunking):
    x = np.nan_to_num(X, nan=0.5) if name in ("lp_pool", "gem_pool") else X
    if name == "lp_pool":
        x = np.abs(x)
    _check(x, CHUNKINGS[chunking], name, *args, exact=exact, **kwargs)


@pytest.mark.parametrize("name, args, kwargs", [
    ("max_pool2d", (3, 1), dict(return_indices=True)),
    ("avg_pool1d", (4, 2), dict(padding=2, ceil_mode=True, count_include_pad=False)),
    ("adaptive_max_pool2d", ((3, 4),), dict(return_indices=True)),
    ("global_avg_pool2d", (), {}),
])
def test_channels_last(name, args, kwargs):
    # (batch, *spatial, C): the channel axis keeps its chunks
    exact = "avg" not in name
    d, got = _check(np.moveaxis(X, 1, -1), (1, (4, 1, 5, 3), (2, 9), (2, 1)), name, *args,
                    layout="channels_last", exact=exact, **kwargs)
    first = got[0] if isinstance(got, tuple) else got
    assert first.chunks[0] == d.chunks[0] and first.chunks[-1] == d.chunks[-1]


def _region_shapes(result):
    """The shape of the input region each task of ``result`` reads (its first layer)."""
    layer = result.dask.layers[result.name]
    return [task[3][1] for task in layer.values() if isinstance(task, tuple) and
            len(task) == 4 and isinstance(task[3], tuple)]


@pytest.mark.parametrize("name, args, kwargs", [
    ("max_pool", ((3, 3), 2), dict(padding=1)),
    ("avg_pool", ((5, 2), (1, 2)), dict(padding=(2, 0), ceil_mode=True)),
    ("adaptive_avg_pool", ((7, 9),), {}),
    ("block_reduce", ((1, 1, 3, 4),), dict(boundary="pad")),
])
def test_chunks_stay_bounded_and_unpooled_axes_keep_theirs(name, args, kwargs):
    x = da.zeros((3, 4, 40, 50), chunks=((1, 2), (3, 1), (16, 16, 8), (17, 13, 20)))
    got = getattr(nbp, name)(x, *args, **kwargs)
    assert got.chunks[:2] == x.chunks[:2]
    largest = max(np.prod(c) for c in _block_shapes(x.chunks))
    shapes = _region_shapes(got)
    assert len(shapes) == got.npartitions
    assert max(np.prod(s) for s in shapes) <= 2 * largest
    # each region reads at most one window past its input chunk
    assert all(s[2] <= 16 + 5 and s[3] <= 20 + 5 for s in shapes)


def _block_shapes(chunks):
    return list(itertools.product(*chunks))


def test_errors_are_raised_when_the_graph_is_built():
    d = da.from_array(X, chunks=(1, 3, 5, 5))
    with pytest.raises(TypeError, match="out= cannot be used with a dask array"):
        nbp.max_pool(d, (2, 2), out=np.empty((2, 3, 6, 5)))
    with pytest.raises(ValueError, match="nan_policy"):
        nbp.max_pool(d, (2, 2), nan_policy="ignore")
    with pytest.raises(ValueError, match="window spans"):
        nbp.avg_pool(d, (20, 2))
    with pytest.raises(ValueError, match="divisor_override"):
        nbp.avg_pool(d, (2, 2), divisor_override=0)
    with pytest.raises(TypeError, match="dtype"):
        nbp.avg_pool(d.astype(bool), (2, 2))
    with pytest.raises(ValueError, match="boundary='exact'"):
        nbp.block_reduce(d, 2, boundary="exact")
    with pytest.raises(ValueError, match="weighted"):
        nbp.pool_tokens(d[0], mode="weighted")


# --------------------------------------------------------------------------- blocks


@pytest.mark.parametrize("func, boundary", [
    ("mean", "pad"), ("max", "trim"), ("median", "partial"), ("sum", "exact"),
    (np.ptp, "partial"), ("min", "pad"),
])
def test_block_reduce_equals_numpy_path(func, boundary):
    x = X[0, :, :12, :10] if boundary == "exact" else X[0]
    kwargs = dict(boundary=boundary, cval=1.5) if boundary == "pad" else dict(boundary=boundary)
    if func is np.ptp:
        x = np.nan_to_num(x)
    chunks = ((2, 1), (5, 1, 1, x.shape[1] - 7), (4, x.shape[2] - 4))
    _check(x, chunks, "block_reduce", (1, 3, 2), func, exact=func not in ("mean", "sum"), **kwargs)


def test_block_reduce_mode_of_labels():
    labels = RNG.integers(0, 4, (14, 9)).astype(np.int64)
    _check(labels, ((5, 1, 8), (2, 7)), "block_reduce", (3, 2), "mode", exact=True)
    _check(labels, ((5, 1, 8), (2, 7)), "block_reduce", 2, "max", nan_policy="omit",
           exact=True)


def test_pyramid_levels_are_lazy_and_equal():
    x = np.abs(X[:, 0])
    d = da.from_array(x, chunks=(1, (3, 1, 1, 8), (2, 2, 7)))
    got = nbp.pyramid(d, (1, 2, 2))
    want = nbp.pyramid(x, (1, 2, 2))
    assert got[0] is d and len(got) == len(want)
    for level, expected in zip(got[1:], want[1:]):
        _same(level, expected, exact=False)
    medians = nbp.pyramid(d, 2, levels=2, func="median", boundary="trim")
    for level, expected in zip(medians[1:], nbp.pyramid(x, 2, levels=2, func="median",
                                                         boundary="trim")[1:]):
        _same(level, expected, exact=True)


# --------------------------------------------------------------------------- tokens


H = RNG.standard_normal((7, 5, 6))
MASK = RNG.random((7, 5)) > 0.3
MASK[2] = False  # a sequence with no tokens
WEIGHTS = RNG.random((7, 5))
SCORES = RNG.standard_normal((7, 5))


@pytest.mark.parametrize("mode", ["max", "cls", "last", ["mean", "weighted", "attention"]])
@pytest.mark.parametrize("aux", ["numpy", "dask"])
def test_pool_tokens_padded(mode, aux):
    hidden = da.from_array(H, chunks=(3, 2, 4))
    wrap = (lambda a: da.from_array(a, chunks=2)) if aux == "dask" else (lambda a: a)
    coef = {} if isinstance(mode, str) else dict(weights=WEIGHTS, scores=SCORES)
    got = nbp.pool_tokens(hidden, wrap(MASK), mode, **{k: wrap(v) for k, v in coef.items()})
    if isinstance(mode, str):
        assert got.chunks == (hidden.chunks[0], hidden.chunks[2])
    _same(got, nbp.pool_tokens(H, MASK, mode, **coef), exact=mode in ("max", "cls", "last"))


@pytest.mark.parametrize("mode", ["last", ["sum", "weighted"]])
def test_pool_tokens_packed(mode):
    lengths = np.array([3, 0, 5, 1, 4, 0, 2])
    packed = RNG.standard_normal((lengths.sum(), 6))
    weights = RNG.random(lengths.sum())
    hidden = da.from_array(packed, chunks=((4, 4, 7), (3, 3)))
    coef = {} if isinstance(mode, str) else dict(weights=weights)
    got = nbp.pool_tokens(hidden, mode=mode, lengths=da.from_array(lengths, chunks=3),
                          **{k: da.from_array(v, chunks=5) for k, v in coef.items()})
    _same(got, nbp.pool_tokens(packed, mode=mode, lengths=lengths, **coef),
          exact=mode == "last")
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    _same(nbp.pool_tokens(hidden, mode=mode, offsets=offsets, **coef),
          nbp.pool_tokens(packed, mode=mode, offsets=offsets, **coef), exact=mode == "last")


# --------------------------------------------------------------------------- scale


def test_graph_of_a_64_gib_array_and_a_corner_of_it():
    shape, chunks = (64, 1024, 1024, 256), (1, 256, 256, 256)  # float32: 64 GiB, 64 MiB chunks
    x = da.random.default_rng(7).random(shape, dtype=np.float32, chunks=chunks)
    assert x.nbytes == 64 << 30
    got = nbp.avg_pool(x, (5, 5), stride=4, padding=2, layout="channels_last")
    assert got.shape == (64, 256, 256, 256) and got.chunks[0] == x.chunks[0]
    shapes = _region_shapes(got)
    assert len(shapes) == got.npartitions == 64 * 4 * 4
    assert max(np.prod(s) for s in shapes) * 4 <= 2 * (64 << 20)
    corner = got[3, :5, 60:70].compute()  # two input chunks of one plane run, no more
    region = x[3:4, :24, 238:288].compute()  # column 238 starts output column 60
    want = nbp.avg_pool(region, (5, 5), stride=4, padding=((2, 2), (0, 0)),
                        layout="channels_last")[0, :5, :10]
    np.testing.assert_allclose(corner, want, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- distributed


def test_distributed_cluster_compiles_each_kernel_once_per_worker():
    distributed = pytest.importorskip("distributed")
    x = RNG.standard_normal((4, 2, 24, 20))
    h = RNG.standard_normal((8, 6, 4))
    mask = RNG.random((8, 6)) > 0.2

    def graphs(seed):
        # the same kernels each round, on other values and other chunk geometries
        xs = x + seed
        d = da.from_array(xs, chunks=(1, 2, (7 + seed, 17 - seed), (9, 11)))
        return [nbp.max_pool(d, (3, 3), 2, padding=1), nbp.avg_pool(d, (2, 2)),
                nbp.block_reduce(d, (1, 1, 4, 4)), *nbp.pyramid(d, (1, 1, 2, 2), levels=2)[1:],
                nbp.pool_tokens(da.from_array(h + seed, chunks=(3, 6, 4)), mask)]

    def expected(seed):
        xs = x + seed
        return [nbp.max_pool(xs, (3, 3), 2, padding=1), nbp.avg_pool(xs, (2, 2)),
                nbp.block_reduce(xs, (1, 1, 4, 4)),
                *nbp.pyramid(xs, (1, 1, 2, 2), levels=2)[1:],
                nbp.pool_tokens(h + seed, mask)]

    def compiles(dask_worker):
        """``{(dispatcher, function, signature): times compiled or loaded from the cache}``
        over every Numba dispatcher of numbapool in the worker."""
        import gc

        from numba.core.dispatcher import Dispatcher

        counts = {}
        for d in gc.get_objects():
            if isinstance(d, Dispatcher) and d.py_func.__module__.startswith("numbapool"):
                for sig, n in (d._cache_hits + d._cache_misses).items():
                    counts[f"{id(d)} {d.py_func.__qualname__} {sig}"] = n
        return counts

    wanted = expected(0), expected(1)  # the parent fills Numba's cache for the workers
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        for got, want in zip(client.compute(graphs(0), sync=True), wanted[0]):
            np.testing.assert_allclose(got, want, rtol=1e-12)
        first = client.run(compiles)
        for got, want in zip(client.compute(graphs(1), sync=True), wanted[1]):
            np.testing.assert_allclose(got, want, rtol=1e-12)
        second = client.run(compiles)
    assert all(len(v) > 0 for v in first.values()), "a worker ran no kernel"
    for worker, counts in second.items():
        twice = {k: n for k, n in counts.items() if n > 1}
        assert not twice, f"{worker} compiled (or loaded) kernels more than once: {twice}"
        # the second round may reach kernels a worker had not run yet, never redo one
        assert {k: counts[k] for k in first[worker]} == first[worker], worker
