"""Property tests: numbapool's spatial pools against the naive reference.

Hypothesis varies geometry (rank, leading shape, kernel, stride, padding, dilation,
ceil_mode, layout), values (ties, NaN, inf) and memory layout on float32/float64, which keeps
the number of compiled kernel specialisations small; every dtype gets one focused test.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import numbapool as nbp
from conftest import (ALL_DTYPES, LAYOUTS, VALUES, VIEWS, as_view, check_reference,
                      make_values)

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
FLOATS = st.sampled_from(["float32", "float64"])


def _per_dim(draw, values, n):
    """An int or an n-tuple; an int only where the tuple would be constant anyway."""
    items = tuple(draw(values) for _ in range(n))
    if len(set(items)) == 1 and draw(st.booleans()):
        return items[0]
    return items


@st.composite
def inputs(draw, n, layout, max_size=7, dtype=FLOATS, values=st.sampled_from(VALUES)):
    """``(x, int_ok)``: an input of rank ``n`` in ``layout`` in one of the memory layouts.

    ``int_ok``: whether an int kernel_size/output_size means N == n (``x.ndim - 2 == n``).
    """
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    spatial = tuple(draw(st.integers(1, max_size if n < 3 else 5)) for _ in range(n))
    shape = lead + spatial + ((draw(st.integers(1, 3)),) if layout == "channels_last" else ())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = as_view(make_values(rng, shape, draw(dtype), draw(values)), draw(st.sampled_from(VIEWS)))
    return x, x.ndim - 2 == n


@st.composite
def sliding(draw, padding=True, dilation=True):
    """``(x, geometry kwargs, layout)`` for a sliding-window pool."""
    n = draw(st.sampled_from([1, 2, 2, 3]))
    layout = draw(st.sampled_from(LAYOUTS))
    x, int_ok = draw(inputs(n, layout))
    spatial = x.shape[x.ndim - n - (layout == "channels_last"):][:n]
    # mostly windows that fit, sometimes one too many (an error both sides must agree on)
    kernel = tuple(draw(st.integers(1, min(4, L + 1))) for L in spatial)
    geo = dict(kernel_size=kernel, ceil_mode=draw(st.booleans()))
    if int_ok and len(set(kernel)) == 1 and draw(st.booleans()):
        geo["kernel_size"] = kernel[0]
    if draw(st.booleans()):
        geo["stride"] = _per_dim(draw, st.integers(1, 3), n)
    dil = (1,) * n
    if dilation:
        geo["dilation"] = _per_dim(draw, st.integers(1, 2), n)
        dil = geo["dilation"] if isinstance(geo["dilation"], tuple) else (geo["dilation"],) * n
    if padding:
        # below the window's span, or rarely equal to it: then an edge window is empty
        spans = [d * (k - 1) + 1 for k, d in zip(kernel, dil)]
        spans = [sp + (draw(st.integers(0, 15)) == 0) for sp in spans]
        pad = [st.integers(0, min(3, sp - 1)) for sp in spans]
        geo["padding"] = draw(st.one_of(
            st.sampled_from(["same", "valid"]),
            st.integers(0, min(2, min(spans) - 1)),
            st.tuples(*pad),
            st.tuples(*[st.tuples(p, p) for p in pad]),
        ))
    return x, geo, layout


def _note(result):
    """Label the example in hypothesis' statistics (``--hypothesis-show-statistics``)."""
    event("both raise ValueError" if result is None else "compared")


@settings(max_examples=600, **SETTINGS)
@given(case=sliding(), name=st.sampled_from(["max_pool", "min_pool"]),
       return_indices=st.booleans(), nan_policy=st.sampled_from(["propagate", "omit"]))
def test_max_min_pool(case, name, return_indices, nan_policy):
    x, geo, layout = case
    _note(check_reference(name, x, **geo, return_indices=return_indices,
                          nan_policy=nan_policy, layout=layout))


@settings(max_examples=500, **SETTINGS)
@given(case=sliding(), count_include_pad=st.booleans(),
       divisor_override=st.sampled_from([None, None, 1, 3, 2.5]),
       nan_policy=st.sampled_from(["propagate", "omit"]))
def test_avg_pool(case, count_include_pad, divisor_override, nan_policy):
    x, geo, layout = case
    _note(check_reference("avg_pool", x, **geo, count_include_pad=count_include_pad,
                          divisor_override=divisor_override, nan_policy=nan_policy,
                          layout=layout))


@settings(max_examples=300, **SETTINGS)
@given(case=sliding(padding=False, dilation=False), p=st.sampled_from([1, 2, 3.0, 1.5, 4]))
def test_lp_pool(case, p):
    x, geo, layout = case
    _note(check_reference("lp_pool", x, p, geo.pop("kernel_size"), **geo, layout=layout))


@settings(max_examples=80, **SETTINGS)
@given(data=st.data(), n=st.integers(1, 2), layout=st.sampled_from(LAYOUTS),
       seed=st.integers(0, 2**32 - 1))
def test_long_rows(data, n, layout, seed):
    """Rows long enough for the vectorised loops' main bodies and remainders."""
    spatial = tuple(data.draw(st.integers(20, 70 if n == 1 else 36)) for _ in range(n))
    shape = (2,) + spatial + ((data.draw(st.integers(1, 9)),) if layout == "channels_last"
                              else ())
    x = make_values(np.random.default_rng(seed), shape, data.draw(FLOATS),
                    data.draw(st.sampled_from(VALUES)))
    k = tuple(data.draw(st.integers(1, 5)) for _ in range(n))
    s = tuple(data.draw(st.integers(1, 4)) for _ in range(n))
    d = tuple(data.draw(st.integers(1, 3)) for _ in range(n))
    p = tuple(data.draw(st.integers(0, ki - 1)) for ki in k)
    c = data.draw(st.booleans())
    policy = data.draw(st.sampled_from(["propagate", "omit"]))
    kw = dict(layout=layout)
    check_reference("max_pool", x, k, s, p, d, c, return_indices=True, nan_policy=policy, **kw)
    check_reference("avg_pool", x, k, s, p, c, data.draw(st.booleans()), dilation=d,
                    nan_policy=policy, **kw)
    check_reference("adaptive_max_pool", x, tuple(L // 3 + 1 for L in spatial),
                    nan_policy=policy, **kw)


@st.composite
def adaptive(draw):
    n = draw(st.sampled_from([1, 2, 2, 3]))
    layout = draw(st.sampled_from(LAYOUTS))
    x, int_ok = draw(inputs(n, layout, max_size=9))
    size = tuple(draw(st.one_of(st.none(), st.integers(1, 10))) for _ in range(n))
    if int_ok and size[0] is not None and len(set(size)) == 1 and draw(st.booleans()):
        size = size[0]
    return x, size, layout


@settings(max_examples=300, **SETTINGS)
@given(case=adaptive(), return_indices=st.booleans(),
       nan_policy=st.sampled_from(["propagate", "omit"]))
def test_adaptive_max_pool(case, return_indices, nan_policy):
    x, size, layout = case
    check_reference("adaptive_max_pool", x, size, return_indices=return_indices,
                    nan_policy=nan_policy, layout=layout)


@settings(max_examples=200, **SETTINGS)
@given(case=adaptive(), nan_policy=st.sampled_from(["propagate", "omit"]))
def test_adaptive_avg_pool(case, nan_policy):
    x, size, layout = case
    check_reference("adaptive_avg_pool", x, size, nan_policy=nan_policy, layout=layout)


@st.composite
def global_case(draw):
    n = draw(st.integers(1, 3))
    layout = draw(st.sampled_from(LAYOUTS))
    x, int_ok = draw(inputs(n, layout, max_size=9))
    spatial_dims = None if int_ok and draw(st.booleans()) else n
    return x, dict(spatial_dims=spatial_dims, keepdims=draw(st.booleans()), layout=layout)


@settings(max_examples=200, **SETTINGS)
@given(case=global_case(), name=st.sampled_from(["global_max_pool", "global_avg_pool"]),
       nan_policy=st.sampled_from(["propagate", "omit"]))
def test_global_pool(case, name, nan_policy):
    x, kw = case
    check_reference(name, x, **kw, nan_policy=nan_policy)


@settings(max_examples=120, **SETTINGS)
@given(case=global_case(), p=st.sampled_from([1.0, 2, 3.0, 4.5]),
       eps=st.sampled_from([0.0, 1e-6, 0.5]))
def test_gem_pool(case, p, eps):
    x, kw = case
    check_reference("gem_pool", x, p, eps, **kw)


# --------------------------------------------------------------------------- every dtype

# One small fixed geometry per function, so each dtype costs a bounded number of kernel
# specialisations (extreme, extreme with indices, sum) however many checks use it.
DTYPE_CALLS = [
    ("max_pool", ((3, 3),), dict(stride=2, padding=1)),
    ("min_pool", ((3, 2),), dict(stride=(2, 1), padding=((1, 0), (0, 1)), ceil_mode=True,
                                 return_indices=True)),
    ("max_pool", ((2, 2),), dict(dilation=(1, 2), layout="channels_last",
                                 return_indices=True)),
    ("avg_pool", ((3, 3),), dict(stride=2, padding=1, count_include_pad=False)),
    ("avg_pool", ((2, 3),), dict(padding="same", layout="channels_last")),
    ("lp_pool", (2, (2, 2)), dict(ceil_mode=True)),
    ("adaptive_max_pool", ((3, 4),), dict(return_indices=True)),
    ("adaptive_avg_pool", ((3, 4),), {}),
    ("global_max_pool", (), dict(keepdims=True)),
    ("global_avg_pool", (), {}),
    ("gem_pool", (2.0,), {}),
]


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_every_dtype(dtype):
    rng = np.random.default_rng(7)
    x = make_values(rng, (2, 3, 7, 6), dtype)
    if np.dtype(dtype).kind in "iu":  # the extremes of the range must survive exactly
        info = np.iinfo(dtype)
        x[0, 0, :2, :2] = info.max
        x[0, 1, -2:, -2:] = info.min
    for name, args, kwargs in DTYPE_CALLS:
        if name in ("lp_pool", "gem_pool") and np.dtype(dtype).kind in "iu":
            x_use = x // 4  # keep x**p finite and exact enough in float64
        else:
            x_use = x
        got = check_reference(name, x_use, *args, **kwargs)
        assert got is not None, name


@pytest.mark.parametrize("dtype", ["uint8", "uint64", "int8", "float16"])
def test_padding_never_wins(dtype):
    """Padded positions never win: not as zeros, nor as the dtype's extremes."""
    big = np.iinfo(dtype).max if np.dtype(dtype).kind in "iu" else np.finfo(dtype).max
    x = np.full((1, 5, 5), big, dtype)
    x[0, 2, 2] = 1
    low = nbp.min_pool(x, (3, 3), 1, 2)
    assert low.dtype == x.dtype and low.shape == (1, 7, 7)
    inside = np.zeros((7, 7), bool)
    inside[2:5, 2:5] = True  # the windows that hold x[0, 2, 2]
    assert np.all(low[0][inside] == 1) and np.all(low[0][~inside] == big)
    small = np.iinfo(dtype).min if np.dtype(dtype).kind in "iu" else -np.finfo(dtype).max
    high = nbp.max_pool(np.full((1, 5, 5), small, dtype), (3, 3), 1, 2)
    assert np.all(high == small)
