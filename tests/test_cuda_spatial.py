"""The CUDA spatial kernels' paths and specialisations, against the CPU path, on tiny shapes.

Runs where CUDA is usable (Numba's simulator, as tests/test_isolated_runs.py runs it, or a
GPU); skips elsewhere.  Grids are kept small (8 threads per block of the window kernels,
a warp per block of the plane kernels, two where that is tested, at most 3 blocks) and the
plane path's thresholds low, so that tiny inputs take every path: plane reductions over
two warps and split over several blocks, the 32- and 64-bit index forms, several channels
per thread, every compile-time specialisation.  The tests check which kernels ran, so a
change of the choice rules cannot leave a path untested silently.  The calls mostly repeat
tests/test_cuda_sim.py's (dtypes, shapes, options), whose CPU kernels are then compiled
already: compiling the CPU side is most of the time of a simulator test.
"""

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")

import numbapool as nbp  # noqa: E402

if not nbp.cuda_available():
    pytest.skip("no CUDA GPU, and NUMBA_ENABLE_CUDASIM is not set", allow_module_level=True)

from numbapool._cuda import compat, plane, spatial  # noqa: E402

from conftest import assert_matches  # noqa: E402


@pytest.fixture(autouse=True)
def small_grids(monkeypatch):
    monkeypatch.setattr(compat, "THREADS_PER_BLOCK", 8)
    monkeypatch.setattr(compat, "MAX_BLOCKS", 3)
    monkeypatch.setattr(plane, "THREADS", 32)  # one warp (64 where two are tested)
    monkeypatch.setattr(plane, "MIN_TAPS", 8)
    monkeypatch.setattr(plane, "SPLIT_TAPS", 1)
    monkeypatch.setattr(plane, "fill_threads", lambda: 512)  # 8 resident blocks of 64


@pytest.fixture
def window_only(monkeypatch):
    """Every pool takes the window kernels (the plane path is slow in the simulator)."""
    monkeypatch.setattr(plane, "MIN_TAPS", 1 << 30)


def _data(shape, dtype, nans=0.0, seed=0):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        x = rng.standard_normal(shape).astype(dtype)
        x[rng.random(shape) < nans] = np.nan
        return x
    info = np.iinfo(dtype)
    x = rng.integers(-20 if info.min else 0, 20, shape).astype(dtype)
    flat = x.reshape(-1)
    flat[::5] = info.max
    flat[2::7] = info.min
    return x


def _cl(x):
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


def _same(op, x, exact, launched=None, **kw):
    """GPU and CPU agree; returns the kernels launched."""
    if launched is not None:
        launched.clear()
    got = op(cuda.to_device(x), **kw)
    want = op(x, **kw)
    first = want[0] if isinstance(want, tuple) else want
    tol = {np.float16: 2e-3, np.float32: 2e-6}.get(first.dtype.type, 1e-12)
    assert_matches(got, want, exact, to_host=lambda a: a.copy_to_host(), rtol=tol, atol=tol,
                   signs=True)
    return list(launched or [])


def _kinds(names):
    return {n.split("_kernel")[0] for n in names}


# --------------------------------------------------------------------------- plane path


@pytest.mark.parametrize("policy", ["propagate", "omit"])
def test_plane_extremes_split_over_blocks_and_warps(policy, launched, monkeypatch):
    monkeypatch.setattr(plane, "THREADS", 64)  # windows of 64 lanes: two warps
    x = _data((1, 2, 12, 12), np.float32, nans=0.05)
    x[0, 0, 5, :] = np.nan if policy == "omit" else 0.0  # whole rows: some shares all-NaN
    x[0, 1, 2, 3] = x[0, 1, 7, 9] = x[0, 1].max() if policy == "omit" else 50.0  # a tie
    names = _same(lambda a, **k: nbp.global_max_pool(a, **k), x, True, launched,
                  nan_policy=policy)
    assert _kinds(names) == {"plane_extreme", "plane_extreme_combine"}
    assert plane.layout(_plan(nbp.global_max_pool, x), 512) == (64, 1, 1, 2)  # 2 warps, 2 splits
    names = _same(lambda a, **k: nbp.min_pool2d(a, 12, return_indices=True, **k), x, True,
                  launched, nan_policy=policy)
    assert _kinds(names) == {"plane_extreme", "plane_extreme_combine"}
    names = _same(lambda a, **k: nbp.adaptive_max_pool2d(a, (2, 3), return_indices=True, **k),
                  x, True, launched, nan_policy=policy)
    assert "plane_extreme" in _kinds(names)


def test_plane_ties_and_signed_zeros_keep_the_first():
    x = np.zeros((1, 1, 12, 12), np.float32)
    x[0, 0, ::3, ::2] = -0.0  # -0 == +0: the first in row-major order is the result
    _same(lambda a: nbp.global_max_pool(a), x, True)
    _same(lambda a: nbp.min_pool2d(a, 6, return_indices=True), x, True)
    ones = np.ones((2, 3, 9, 8), np.int16)
    _same(lambda a: nbp.max_pool2d(a, (9, 4), return_indices=True), ones, True)


def test_plane_only_nan_windows():
    x = np.full((1, 2, 6, 6), np.nan, np.float32)
    x[0, 1, 5, 5] = 1.0
    for policy in ("propagate", "omit"):
        _same(lambda a, p=policy: nbp.adaptive_max_pool2d(a, (1, 1), return_indices=True,
                                                         nan_policy=p), x, True)
        _same(lambda a, p=policy: nbp.global_avg_pool(a, nan_policy=p), x, False)


@pytest.mark.parametrize("C", [3, 40])
def test_plane_channels_last(C, launched, monkeypatch):
    """C=3: a group of 4 channels, one idle, split over blocks; C=40: two channel blocks of
    32, the second partly idle, in one pass."""
    if C == 40:
        monkeypatch.setattr(plane, "fill_threads", lambda: 64)  # two resident blocks
    x = _cl(_data((1, C) + ((6, 7) if C == 3 else (3, 3)), np.float32, nans=0.05, seed=C))
    names = _same(lambda a: nbp.global_max_pool(a, layout="channels_last"), x, True, launched)
    assert "plane_extreme" in _kinds(names)
    names = _same(lambda a: nbp.global_avg_pool(a, layout="channels_last", nan_policy="omit"),
                  x, False, launched)
    assert "plane_sum" in _kinds(names)
    if C == 3:
        _same(lambda a: nbp.adaptive_max_pool2d(a, (2, 1), return_indices=True,
                                                layout="channels_last"), x, True)


@pytest.mark.parametrize("dtype", ["int8", "uint32", "uint64", "float16", "float64"])
def test_plane_dtypes(dtype, launched):
    """Each value type crosses the shuffles in its own way (widened, or bits kept)."""
    x = _data((1, 2, 9, 10), dtype, nans=0.05)
    names = _same(lambda a: nbp.global_max_pool(a, nan_policy="omit"), x, True, launched)
    assert _kinds(names) == {"plane_extreme", "plane_extreme_combine"}
    _same(lambda a: nbp.max_pool2d(a, (9, 5), return_indices=True), x, True)


def test_plane_sums_every_finish(launched):
    x = np.abs(_data((1, 2, 8, 8), np.float32)) + np.float32(0.1)
    names = _same(lambda a: nbp.avg_pool2d(a, 4, divisor_override=7), x, False, launched)
    assert "plane_sum" in _kinds(names)
    _same(lambda a: nbp.adaptive_avg_pool2d(a, (2, 3), nan_policy="omit"), x, False)
    _same(lambda a: nbp.lp_pool2d(a, 2.5, 4), x, False)        # float32 powers, root 4
    _same(lambda a: nbp.gem_pool(a, 3.0), x, False)            # cubes, root 4
    _same(lambda a: nbp.gem_pool(a, 2.5), x.astype(np.float64), False)  # float64 pow, root 3
    names = _same(lambda a: nbp.gem_pool(a, 2.5), x.astype(np.float16), False, launched)
    assert _kinds(names) == {"plane_sum", "plane_sum_combine"}


def test_plane_one_pass_when_the_grid_is_full(monkeypatch, launched):
    monkeypatch.setattr(plane, "fill_threads", lambda: 64)  # one resident block: no split
    x = _data((2, 3, 6, 6), np.float32, nans=0.1)
    names = _same(lambda a: nbp.global_max_pool(a), x, True, launched)
    assert names == [n for n in names if "combine" not in n] and len(names) == 1
    _same(lambda a: nbp.global_avg_pool(a, nan_policy="omit"), x, False)


def test_partials_are_kept_per_stream(monkeypatch):
    monkeypatch.setattr(plane, "_PARTIALS", type(plane._PARTIALS)())
    a = plane.partials(10, np.float32)
    again = plane.partials(5, np.float32)
    assert again.size == 5 and compat.extent(again)[0] == compat.extent(a)[0]
    other = plane.partials(10, np.float32, cuda.stream())
    assert compat.extent(other)[0] != compat.extent(a)[0]
    assert plane.partials(10, np.int64).dtype == np.int64
    assert plane.partials(1000, np.float32).size == 1000
    assert len(plane._PARTIALS) == 3


# --------------------------------------------------------------------------- window kernels


def _plan(func, x, *args, **kw):
    """The SpatialPlan of a call (captured at the backend)."""
    from numbapool import dispatch
    seen = []

    class _Capture:
        def run_spatial(self, plan, x, out, shape, *a, **k):
            seen.append(plan)
            raise _Stop

    class _Stop(Exception):
        pass

    resolve = dispatch.resolve
    dispatch.resolve = lambda x, device=None, **k: (_Capture(), x)
    try:
        func(x, *args, **kw)
    except _Stop:
        pass
    finally:
        dispatch.resolve = resolve
    return seen[0]


@pytest.mark.parametrize("C", [8, 6])
def test_channels_per_thread(C, monkeypatch, launched, window_only):
    """C=8: 4 channels per thread for max/min, 2 for sums; C=6: 2 for both."""
    monkeypatch.setattr(plane, "fill_threads", lambda: 1)
    x = _cl(_data((2, C, 5, 6), np.float32, nans=0.1))
    for policy in ("propagate", "omit"):
        names = _same(lambda a: nbp.max_pool2d(a, 3, 2, 1, return_indices=True,
                                               layout="channels_last", nan_policy=policy),
                      x, True, launched)
        assert names[0].endswith(f"c{4 if C == 8 else 2}_grouped"), names
    names = _same(lambda a: nbp.avg_pool2d(a, 3, 2, 1, layout="channels_last",
                                           nan_policy="omit"), x, False, launched)
    assert names[0].endswith("c2_grouped"), names
    _same(lambda a: nbp.lp_pool2d(a, 3.0, 2, layout="channels_last"), np.abs(x), False)


def test_wide_index_arithmetic(monkeypatch, launched):
    """The uint64 forms, as taken by arrays of 2**31 elements or more."""
    monkeypatch.setattr(spatial, "WIDE", 1)
    monkeypatch.setattr(plane, "MIN_TAPS", 1 << 30)
    x = _data((2, 3, 7, 6), np.float32, nans=0.1)
    names = _same(lambda a: nbp.max_pool2d(a, 3, 2, 1, return_indices=True), x, True,
                  launched)
    assert "uint64" in names[0]
    x3 = _cl(_data((2, 2, 4, 5, 3), np.float64, nans=0.1))
    _same(lambda a: nbp.avg_pool(a, (2, 2, 2), 2, 1, True, False, layout="channels_last",
                                 nan_policy="omit"), x3, False)
    monkeypatch.setattr(plane, "MIN_TAPS", 8)
    names = _same(lambda a: nbp.global_max_pool(a), x, True, launched)
    assert names and all("uint64" in n for n in names)
    _same(lambda a: nbp.global_avg_pool(a), x, False)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_three_and_four_outer_dims(layout, launched, window_only):
    """3-D pools take the outer axes by value (o2), 4-D ones from the table (o0)."""
    for n, outer in ((3, "_o2_"), (4, "_o0_")):
        if n == 4 and layout == "channels_last":
            continue
        x = _data((2, 2) + ((4, 5, 3) if n == 3 else (3, 3, 2, 3)), np.float64, nans=0.1)
        if layout == "channels_last":
            x = _cl(x)
        k = (2,) * n
        for policy in ("propagate", "omit"):
            kw = dict(layout=layout, nan_policy=policy)
            names = _same(lambda a: nbp.max_pool(a, k, 1, 1, return_indices=True, **kw), x,
                          True, launched)
            assert outer in names[0], names
            _same(lambda a: nbp.avg_pool(a, k, 2, 1, True, False, **kw), x, False)


def test_every_extreme_specialisation(launched, window_only):
    """Max and min, both NaN policies, with and without indices: min(x) is -max(-x),
    values and indices, so the CPU's max with indices checks all eight."""
    x = _data((2, 3, 7, 6), np.float32, nans=0.15, seed=3)
    x[0, 0, :3, :3] = np.nan  # an all-NaN window
    x[1, 1, 2:5, 2:5] = 0.0
    x[1, 1, 3, 3] = -0.0  # ties of signed zeros
    for policy in ("propagate", "omit"):
        for is_min in (False, True):
            sign = np.float32(-1 if is_min else 1)
            want_v, want_i = nbp.max_pool2d(sign * x, 3, 2, 1, return_indices=True,
                                            nan_policy=policy)
            want_v = sign * want_v
            op = nbp.min_pool2d if is_min else nbp.max_pool2d
            for indices in (False, True):
                launched.clear()
                got = op(cuda.to_device(x), 3, 2, 1, return_indices=indices,
                         nan_policy=policy)
                name = launched[0]
                assert ("min" in name) == is_min and ("omit" in name) == (policy == "omit")
                assert ("idx" in name) == indices
                want = (want_v, want_i) if indices else want_v
                assert_matches(got, want, True, to_host=lambda a: a.copy_to_host(),
                               signs=True)


SUMS = [  # (name, dtype, call): every transform, finish, root and override, once
    ("avg", "float16", lambda a: nbp.avg_pool2d(a, 3, 2, 1)),
    ("avg omit", "float32", lambda a: nbp.avg_pool2d(a, 3, 2, 1, nan_policy="omit")),
    ("avg override", "float64", lambda a: nbp.avg_pool2d(a, 2, divisor_override=3)),
    ("avg override omit", "float32", lambda a: nbp.avg_pool2d(a, 2, divisor_override=3,
                                                               nan_policy="omit")),
    ("lp 1", "float32", lambda a: nbp.lp_pool2d(a, 1.0, 2)),
    ("lp 2", "float16", lambda a: nbp.lp_pool2d(a, 2.0, 2)),
    ("lp 3", "float64", lambda a: nbp.lp_pool2d(a, 3.0, (3, 2))),
    ("lp 2.5 float32 powers", "float32", lambda a: nbp.lp_pool2d(a, 2.5, 2, ceil_mode=True)),
    ("lp 2.5 float64 powers", "float64", lambda a: nbp.lp_pool2d(a, 2.5, 2)),
    ("lp 0.5 float64 powers", "float32", lambda a: nbp.lp_pool2d(a, 0.5, 2)),
    ("gem 3", "float16", lambda a: nbp.gem_pool(a, 3.0, 1e-3)),
]


@pytest.mark.parametrize("name, dtype, op", SUMS, ids=[s[0] for s in SUMS])
def test_every_sum_specialisation(name, dtype, op, window_only):
    x = _data((1, 2, 5, 6), dtype, nans=0.1 if "omit" in name else 0.0, seed=4)
    if name.startswith(("lp", "gem")):
        x = np.abs(x) + x.dtype.type(0.05)
    _same(op, x, False)


@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_float32_powers_out_of_float32_range(window_only):
    """Terms float32 would overflow or flush are recomputed in float64: no inf, no 0."""
    x = np.full((1, 1, 4, 4), 3e15, np.float32)  # (3e15)**2.5 ~ 5e38 > float32's max
    x[0, 0, 2:, :] = 1e-20  # (1e-20)**2.5 = 1e-50 < float32's tiny
    x[0, 0, 3, 3] = 0.0
    _same(lambda a: nbp.lp_pool2d(a, 2.5, 2), x, False)
    r = nbp.lp_pool2d(cuda.to_device(x), 2.5, 2).copy_to_host()
    assert np.isfinite(r).all() and (r > 0).all()
    neg = -np.abs(_data((1, 1, 4, 4), np.float32))
    _same(lambda a: nbp.lp_pool2d(a, 3.0, 2), neg, False)   # cubes of negatives: 0
    _same(lambda a: nbp.lp_pool2d(a, 2.5, 2), neg, False)   # NaN powers


def test_choices():
    """The Python side of the specialisation: term, root, index width, layout."""
    x32 = np.zeros((1, 1, 8, 8), np.float32)
    lp = _plan(nbp.lp_pool2d, x32, 2.5, 2)
    assert spatial.summed_term(lp, np.float32) == (spatial.X_POW32, False)
    assert spatial.summed_term(lp, np.float64) == (spatial.X_POW, False)
    assert spatial.root_kind(lp, np.float32) == 4 and spatial.root_kind(lp, np.float64) == 3
    small = _plan(nbp.lp_pool2d, x32, 0.5, 2)
    assert spatial.summed_term(small, np.float32) == (spatial.X_POW, False)
    assert spatial.summed_term(small, np.float16) == (spatial.X_POW32, False)
    gem = _plan(nbp.gem_pool, x32, 2.0)
    assert spatial.summed_term(gem, np.float32) == (spatial.X_SQUARE, True)
    assert spatial.root_kind(gem, np.float32) == 2
    assert spatial.index_type(2**31 - 1).name == "uint32"
    assert spatial.index_type(10, 2**31).name == "uint64"
    big = _plan(nbp.global_max_pool, np.zeros((1, 3, 2048, 2048), np.float32))
    assert plane.suits(big, 3, 132 * 2048)
    assert plane.layout(big, 132 * 2048)[3] > 1  # split over blocks
    assert not plane.suits(_plan(nbp.max_pool2d, x32, 2), 16, 1)  # 4 taps
