"""Shared helpers: test inputs in many memory layouts, and comparison with the reference."""

import os

import numpy as np
import pytest

import numbapool as nbp
import reference

INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
FLOAT_DTYPES = ("float16", "float32", "float64")
ALL_DTYPES = INT_DTYPES + FLOAT_DTYPES
LAYOUTS = ("channels_first", "channels_last")
EXTREME = ("max_pool", "min_pool", "adaptive_max_pool", "global_max_pool")
VIEWS = ("contiguous", "fortran", "strided", "negative", "readonly")
VALUES = ("normal", "ties", "nan", "inf")


def child_env(**extra):
    """The environment for a pytest child process: this one's, less pytest-xdist's worker
    variables (a child that sees them takes itself for a worker, and pytest-benchmark then
    turns itself off), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env.update(extra)
    return env


def make_values(rng, shape, dtype, kind="normal"):
    """Test data: ``ties`` draws from a few integers, ``nan``/``inf`` sprinkle specials."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
        if kind == "ties":
            a = rng.integers(0, 3, size=shape).astype(dtype)
        return a
    if kind == "ties":
        a = rng.integers(-3, 4, size=shape).astype(np.float64)
    else:
        a = rng.standard_normal(shape) * 3
    if kind == "nan":
        a[rng.random(shape) < 0.25] = np.nan
    if kind == "inf":
        specials = np.array([np.inf, -np.inf, np.nan])
        mask = rng.random(shape) < 0.2
        a[mask] = specials[rng.integers(0, 3, size=int(mask.sum()))]
    return a.astype(dtype)


def as_view(a, kind):
    """An array equal to ``a`` with the memory layout ``kind`` (see VIEWS)."""
    if kind == "contiguous":
        return np.ascontiguousarray(a)
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "strided":  # every other element of a larger buffer full of junk
        big = np.full(tuple(2 * n + 1 for n in a.shape), a.dtype.type(1), a.dtype)
        view = big[tuple(slice(1, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if kind == "negative":
        flip = tuple(slice(None, None, -1) for _ in a.shape)
        return np.ascontiguousarray(a[flip])[flip]
    if kind == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return b
    raise ValueError(kind)


def tolerances(dtype):
    """(rtol, atol) for averaging reductions: float32 sums accumulate in float32."""
    return {"float16": (1e-3, 1e-6), "float32": (1e-5, 1e-5)}.get(np.dtype(dtype).name,
                                                                  (1e-12, 1e-12))


def assert_matches(got, want, exact, *, to_host=None, rtol=None, atol=None, signs=False):
    """Same type, shape and dtype; values equal (NaN where NaN) or within tolerance.

    ``to_host`` turns each result into a NumPy array first (device arrays: it also checks
    their type); ``rtol``/``atol`` replace :func:`tolerances`; ``signs`` also compares the
    signs of exact float results (zeros included).
    """
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            assert_matches(g, w, exact, to_host=to_host, rtol=rtol, atol=atol, signs=signs)
        return
    if to_host is not None:
        got = to_host(got)
    assert isinstance(got, np.ndarray), type(got)
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype,
                                                                want.shape, want.dtype)
    if exact:
        np.testing.assert_array_equal(got, want)
        if signs and want.dtype.kind == "f":
            np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    else:
        assert np.array_equal(np.isnan(got), np.isnan(want)), (got, want)
        default_rtol, default_atol = tolerances(want.dtype)
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                                   rtol=default_rtol if rtol is None else rtol,
                                   atol=default_atol if atol is None else atol)


def check_reference(name, x, *args, **kwargs):
    """Run ``nbp.<name>`` and the reference; both must agree, or both raise ValueError."""
    try:
        want = getattr(reference, name)(x, *args, **kwargs)
    except ValueError:
        with pytest.raises(ValueError):
            getattr(nbp, name)(x, *args, **kwargs)
        return None
    got = getattr(nbp, name)(x, *args, **kwargs)
    assert_matches(got, want, exact=name in EXTREME)
    return got


@pytest.fixture
def small_grids(monkeypatch):
    """CUDA launch grids of a few small blocks, so that the grid-stride loops take several
    turns on tiny inputs (``pytestmark = pytest.mark.usefixtures("small_grids")``)."""
    from numbapool._cuda import compat

    monkeypatch.setattr(compat, "THREADS_PER_BLOCK", 8)
    monkeypatch.setattr(compat, "MAX_BLOCKS", 3)


@pytest.fixture
def launched(monkeypatch):
    """The names of the CUDA kernels launched while the test runs."""
    from numbapool._cuda import backend

    names = []
    run = backend.Launch.run
    monkeypatch.setattr(backend.Launch, "run",
                        lambda self, stream=0: (names.append(self.kernel.__name__),
                                                run(self, stream))[1])
    return names
