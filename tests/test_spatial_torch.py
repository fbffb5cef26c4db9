"""numbapool against torch.nn.functional, the outside oracle, over every configuration torch
accepts: max/min values and indices compare exactly, averages within float tolerance, in
both layouts (channels-last input is the NCHW array permuted).  The torch calls are the
formulations of numbapool.comparisons (the benchmark's torch column, checked against the
naive oracle in test_comparisons.py), given numbapool's arguments.

Where docs/guide/spatial.md departs from torch, the docs win; these tests stay inside the overlap:
torch's index of a NaN is the last NaN's (API: the first), and torch's lp_pool scales a
partial ceil_mode window by kernel/count (API: the plain sum over the in-bounds part).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import numbapool as nbp
from conftest import as_view, make_values, tolerances
from numbapool.comparisons import COMPARISONS

pytest.importorskip("torch")
TORCH = {name: formulations.torch for name, formulations in COMPARISONS.items()}

pytestmark = pytest.mark.torch
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _cl(a):
    """NC(spatial) -> N(spatial)C, C-contiguous."""
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def _both_layouts(func, x, *args, **kwargs):
    """numbapool's result on NCHW input and, permuted back, on channels-last input."""
    first = func(x, *args, **kwargs)
    last = func(_cl(x), *args, layout="channels_last", **kwargs)
    if isinstance(first, tuple):
        return [first, tuple(np.moveaxis(a, -1, 1) for a in last)]
    return [first, np.moveaxis(last, -1, 1)]


def _exact(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def _close(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    rtol, atol = tolerances(want.dtype)
    np.testing.assert_allclose(got, want, rtol=max(rtol, 1e-6), atol=max(atol, 1e-6))


@st.composite
def torch_input(draw, n, dtype=st.sampled_from(["float32", "float64"]), min_size=1,
                values="normal"):
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)))
    shape += tuple(draw(st.integers(min_size, 9 if n < 3 else 6)) for _ in range(n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return make_values(rng, shape, draw(dtype), values)


@st.composite
def torch_sliding(draw, dilation=True, padding=True, values="ties"):
    """A configuration torch's pooling accepts: padding <= half the (effective) kernel."""
    n = draw(st.integers(1, 3))
    x = draw(torch_input(n, values=values))
    k = tuple(draw(st.integers(1, min(4, L))) for L in x.shape[2:])
    s = tuple(draw(st.integers(1, 3)) for _ in range(n))
    d = tuple(draw(st.integers(1, 2)) for _ in range(n)) if dilation else (1,) * n
    half = [((ki - 1) * di + 1) // 2 if dilation else ki // 2 for ki, di in zip(k, d)]
    p = tuple(draw(st.integers(0, h)) for h in half) if padding else (0,) * n
    return x, n, k, s, p, d, draw(st.booleans())


def _torch(name, *args, **kwargs):
    """torch's result, or a rejected example when torch refuses the configuration."""
    try:
        return TORCH[name](*args, **kwargs)
    except NotImplementedError:  # a RuntimeError too, but one the formulation declares
        raise
    except RuntimeError:
        event("torch refuses")
        assume(False)


@settings(max_examples=300, **SETTINGS)
@given(case=torch_sliding())
def test_max_min_pool(case):
    x, n, k, s, p, d, ceil_mode = case
    want_v, want_i = _torch("max_pool", x, k, s, p, d, ceil_mode, return_indices=True)
    min_v, min_i = TORCH["min_pool"](x, k, s, p, d, ceil_mode, return_indices=True)
    alias = getattr(nbp, f"max_pool{n}d")
    for got_v, got_i in _both_layouts(alias, x, k, s, p, d, ceil_mode, return_indices=True):
        _exact(got_v, want_v)
        _exact(got_i, want_i)
    for got_v, got_i in _both_layouts(nbp.min_pool, x, k, s, p, d, ceil_mode,
                                      return_indices=True):
        _exact(got_v, min_v)
        _exact(got_i, min_i)


@settings(max_examples=120, **SETTINGS)
@given(case=torch_sliding(values="nan"))
def test_max_pool_nan_values(case):
    """NaN propagates as in torch (indices differ by contract: first NaN, not last)."""
    x, n, k, s, p, d, ceil_mode = case
    want = _torch("max_pool", x, k, s, p, d, ceil_mode)
    for got in _both_layouts(nbp.max_pool, x, k, s, p, d, ceil_mode):
        _exact(got, want)


@settings(max_examples=300, **SETTINGS)
@given(case=torch_sliding(dilation=False, values="normal"), count_include_pad=st.booleans(),
       divisor_override=st.sampled_from([None, None, 1, 5]))
def test_avg_pool(case, count_include_pad, divisor_override):
    x, n, k, s, p, _, ceil_mode = case
    kwargs = dict(ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    if n > 1:  # avg_pool1d has no divisor_override
        kwargs["divisor_override"] = divisor_override
    want = _torch("avg_pool", x, k, s, p, **kwargs)
    for got in _both_layouts(getattr(nbp, f"avg_pool{n}d"), x, k, s, p, **kwargs):
        _close(got, want)


@settings(max_examples=160, **SETTINGS)
@given(case=torch_sliding(dilation=False, padding=False, values="normal"),
       norm_type=st.sampled_from([1.0, 2.0, 3.0, 1.5]))
def test_lp_pool(case, norm_type):
    x, _, k, s, _, _, ceil_mode = case
    x = np.abs(x) + 0.1  # torch takes a signed root of negative sums; docs/guide/spatial.md gives 0
    try:
        want = _torch("lp_pool", x, norm_type, k, s, ceil_mode)
    except NotImplementedError:  # the formulation declines a partial last window
        event("partial ceil_mode window: torch rescales it, docs/guide/spatial.md does not")
        assume(False)
    for got in _both_layouts(nbp.lp_pool, x, norm_type, k, s, ceil_mode):
        _close(got, want)


@st.composite
def torch_adaptive(draw):
    n = draw(st.integers(1, 3))
    x = draw(torch_input(n, values="ties"))
    size = tuple(draw(st.one_of(st.none(), st.integers(1, 11))) for _ in range(n))
    return x, n, size  # the formulations give a None size the input's (torch's 1-D cannot)


@settings(max_examples=200, **SETTINGS)
@given(case=torch_adaptive())
def test_adaptive_max_pool(case):
    x, n, size = case
    want_v, want_i = TORCH["adaptive_max_pool"](x, size, return_indices=True)
    alias = getattr(nbp, f"adaptive_max_pool{n}d")
    for got_v, got_i in _both_layouts(alias, x, size, return_indices=True):
        _exact(got_v, want_v)
        _exact(got_i, want_i)


@settings(max_examples=200, **SETTINGS)
@given(case=torch_adaptive())
def test_adaptive_avg_pool(case):
    x, _, size = case
    want = TORCH["adaptive_avg_pool"](x, size)
    for got in _both_layouts(nbp.adaptive_avg_pool, x, size):
        _close(got, want)


@settings(max_examples=100, **SETTINGS)
@given(n=st.integers(1, 3), data=st.data(), keepdims=st.booleans(),
       p=st.sampled_from([1.0, 3.0, 2.5]))
def test_global_and_gem(n, data, keepdims, p):
    x = data.draw(torch_input(n))
    for g in _both_layouts(nbp.global_max_pool, x, keepdims=True):
        _exact(g, TORCH["global_max_pool"](x, keepdims=True))
    for g in _both_layouts(nbp.global_avg_pool, x, n, keepdims=True):
        _close(g, TORCH["global_avg_pool"](x, n, keepdims=True))
    gem = TORCH["gem_pool"](x, p, spatial_dims=n, keepdims=keepdims)
    _close(getattr(nbp, f"gem_pool{n}d")(x, p, keepdims=keepdims), gem)


# --------------------------------------------------------------------------- fixed cases

CLASSIC = [  # (spatial, kernel, stride, padding, dilation, ceil_mode)
    ((8, 8), 2, None, 0, 1, False),
    ((9, 9), 3, 2, 1, 1, False),
    ((7, 10), 3, 2, 1, 1, True),
    ((5, 5), 2, 3, 1, 1, True),      # ceil_mode drops a last window starting in the padding
    ((6, 7), (3, 2), (2, 1), (1, 1), (2, 3), True),
    ((11,), 4, 3, 2, 2, True),
    ((4, 5, 6), (2, 3, 2), (2, 1, 3), (1, 1, 0), (1, 1, 2), True),
]


@pytest.mark.parametrize("spatial, k, s, p, d, ceil_mode", CLASSIC)
@pytest.mark.parametrize("dtype", ["float16", "int8", "int32", "int64", "uint8", "float64"])
def test_max_pool_dtypes(dtype, spatial, k, s, p, d, ceil_mode):
    """Exact values and indices in the dtypes torch's CPU max pooling also supports."""
    x = make_values(np.random.default_rng(3), (2, 3) + spatial, dtype, "ties")
    n = len(spatial)
    want_v, want_i = TORCH["max_pool"](x, k, s, p, d, ceil_mode, return_indices=True)
    for got_v, got_i in _both_layouts(getattr(nbp, f"max_pool{n}d"), x, k, s, p, d, ceil_mode,
                                      return_indices=True):
        _exact(got_v, want_v)
        _exact(got_i, want_i)


@pytest.mark.parametrize("spatial, k, s, p, d, ceil_mode", CLASSIC)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_classic(spatial, k, s, p, d, ceil_mode, count_include_pad):
    x = make_values(np.random.default_rng(4), (2, 3) + spatial, "float32")
    n = len(spatial)
    if isinstance(k, int):
        k = (k,) * n
    p = (p,) * n if isinstance(p, int) else p
    p = tuple(min(pi, ki // 2) for pi, ki in zip(p, k))  # torch's avg limit
    want = TORCH["avg_pool"](x, k, s, p, ceil_mode, count_include_pad)
    for got in _both_layouts(nbp.avg_pool, x, k, s, p, ceil_mode, count_include_pad):
        _close(got, want)


def test_strided_views_match_torch():
    """Views (non-contiguous, negative strides, Fortran) pool like torch on the same data."""
    x = make_values(np.random.default_rng(5), (2, 3, 9, 8), "float32", "ties")
    want_v, want_i = TORCH["max_pool"](x, 3, 2, 1, return_indices=True)
    want_a = TORCH["avg_pool"](x, 3, 2, 1)
    for kind in ("fortran", "strided", "negative", "readonly"):
        v = as_view(x, kind)
        got_v, got_i = nbp.max_pool2d(v, 3, 2, 1, return_indices=True)
        _exact(got_v, want_v)
        _exact(got_i, want_i)
        _close(nbp.avg_pool2d(v, 3, 2, 1), want_a)
