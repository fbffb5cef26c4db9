"""The registry of outside formulations (numbapool.comparisons) against the naive oracle.

The benchmark's torch and NumPy columns and the PyTorch comparison tests both read the
registry, so every formulation in it is checked here against ``reference.py`` and
``token_reference.py`` on small inputs, across the arguments its docstring says it covers;
arguments it does not cover must raise ``NotImplementedError`` naming them.  Extremes and
indices compare exactly, averages within float tolerance.
"""

import inspect
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import numbapool as nbp
import reference
import token_reference
from conftest import LAYOUTS, VIEWS, as_view, assert_matches, make_values
from numbapool.comparisons import COMPARISONS, Formulations

IMPLS = Formulations._fields  # ("torch", "numpy")


def _pooling_families():
    """Every public pooling function, the fixed-rank aliases folded into their family
    (unpooling is not a pooling: tests/test_unpool.py compares it with torch and a loop)."""
    names = [n for n in nbp.__all__
             if "pool" in n and "unpool" not in n and callable(getattr(nbp, n))]
    return {re.sub(r"[123]d$", "", n) for n in names}


def _oracle(name):
    """The naive oracle of a function family (None: there is none)."""
    if name == "pool_tokens":
        return token_reference.pool_tokens_ref
    return getattr(reference, name, None)


def _formulation(name, impl):
    if impl == "torch":
        pytest.importorskip("torch")
    formulation = getattr(COMPARISONS[name], impl)
    assert formulation is not None, f"{name} has no {impl} formulation"
    return formulation


def _check(name, impl, x, *args, **kwargs):
    """The formulation and the oracle agree: exactly for extremes, else within tolerance."""
    got = _formulation(name, impl)(x, *args, **kwargs)
    want = _oracle(name)(x, *args, **kwargs)
    assert_matches(got, want, exact="max" in name or "min" in name)
    return got


def _torch_has_kernel(name, dtype, n):
    """Whether torch's CPU kernel takes ``dtype`` (values only, no indices): it has no integer
    kernels for adaptive max pooling (global max pooling goes through it up to three
    dimensions) nor for max_pool1d without indices."""
    if np.dtype(dtype).kind == "f":
        return True
    if name in ("adaptive_max_pool", "global_max_pool"):
        return n > 3
    return n > 1


def _input(spatial, dtype, values="normal", layout="channels_first", seed=0):
    """A ``(2, 3, *spatial)`` input, moved to ``(2, *spatial, 3)`` for channels-last."""
    x = make_values(np.random.default_rng(seed), (2, 3) + spatial, dtype, values)
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)) if layout == "channels_last" else x


# --------------------------------------------------------------------------- the registry


def test_every_pooling_function_has_formulations_and_an_oracle():
    families = _pooling_families()
    assert families == set(COMPARISONS)
    for name, entry in COMPARISONS.items():
        assert isinstance(entry, Formulations)
        assert any(f is not None for f in entry), f"{name} has no outside formulation"
        assert callable(_oracle(name)), f"{name} has no naive oracle"


@pytest.mark.parametrize("name", sorted(COMPARISONS))
def test_formulations_take_numbapools_arguments(name):
    """Same parameter names, kinds and defaults as numbapool's, less ``out``, ``device`` and
    ``stream``."""
    public = inspect.signature(getattr(nbp, name)).parameters.values()
    want = [(p.name, p.kind, p.default) for p in public
            if p.name not in ("out", "device", "stream") and not p.name.startswith("_")]
    for formulation in COMPARISONS[name]:
        if formulation is not None:
            got = [(p.name, p.kind, p.default)
                   for p in inspect.signature(formulation).parameters.values()]
            assert got == want, formulation.__name__


def test_importing_the_registry_leaves_torch_alone():
    import subprocess
    import sys

    code = "import sys, numbapool.comparisons; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- sliding windows

SLIDING = [  # (spatial, kernel, stride, padding, dilation, ceil_mode), inside torch's limits
    ((8, 8), 2, None, 0, 1, False),  # tiles the input: NumPy's reshaped-block form
    ((9, 9), 3, 2, 1, 1, False),
    ((7, 10), 3, 2, 1, 1, True),
    ((5, 5), 2, 3, 1, 1, True),  # ceil_mode drops a last window starting in the padding
    ((6, 7), (3, 2), (2, 1), (1, 1), (2, 3), True),
    ((11,), 4, 3, 2, 2, True),
    ((4, 5, 6), (2, 3, 2), (2, 1, 3), ((1, 1), (1, 1), (0, 0)), (1, 1, 2), True),
]
EXTREME_INPUTS = [("float32", "ties"), ("float64", "nan"), ("float16", "ties"),
                  ("int32", "ties"), ("uint8", "ties")]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("spatial, k, s, p, d, ceil_mode", SLIDING)
@pytest.mark.parametrize("name", ["max_pool", "min_pool"])
def test_max_min_pool(name, spatial, k, s, p, d, ceil_mode, layout, impl):
    n = len(spatial)
    for dtype, values in EXTREME_INPUTS:
        x = _input(spatial, dtype, values, layout)
        if impl == "numpy" or _torch_has_kernel(name, dtype, n):
            got = _check(name, impl, x, k, s, p, d, ceil_mode, layout=layout)
        if impl == "torch" and values != "nan":  # torch indexes a window's last NaN
            _check(name, impl, x, k, s, p, d, ceil_mode, layout=layout, return_indices=True)
        if impl == "numpy" and dtype.startswith("float"):
            _check(name, impl, x, k, s, p, d, ceil_mode, layout=layout, nan_policy="omit")
    if impl == "torch" and layout == "channels_last" and n == 2:
        assert got.flags.c_contiguous  # torch pooled in its channels_last format


AVG = [  # (spatial, kernel, stride, padding, ceil_mode): torch pads at most half a kernel
    ((8, 8), 2, None, 0, False),
    ((9, 9), 3, 2, 1, False),
    ((7, 10), 3, 2, 1, True),
    ((5, 5), 2, 3, 1, True),
    ((6, 7), (3, 2), (2, 1), (1, 1), True),
    ((11,), 4, 3, 2, True),
    ((4, 5, 6), (2, 3, 2), (2, 1, 3), (1, 1, 0), True),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("spatial, k, s, p, ceil_mode", AVG)
def test_avg_pool(spatial, k, s, p, ceil_mode, layout, impl):
    for count_include_pad in (True, False):
        for divisor_override in (None, 5):
            if impl == "torch" and len(spatial) == 1 and divisor_override:
                continue  # not covered: test_uncovered_arguments_say_so
            for dtype in ("float32", "float64", "int32"):
                x = _input(spatial, dtype, "normal", layout)
                _check("avg_pool", impl, x, k, s, p, ceil_mode, count_include_pad,
                       divisor_override, layout=layout)
    x = _input(spatial, "float64", "nan", layout)
    _check("avg_pool", impl, x, k, s, p, ceil_mode, layout=layout)


@st.composite
def numpy_sliding(draw):
    """Geometry beyond torch's: dilated averages, asymmetric and "same" padding, any
    leading shape, any memory layout of the input."""
    n = draw(st.integers(1, 3))
    layout = draw(st.sampled_from(LAYOUTS))
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    spatial = tuple(draw(st.integers(3, 7)) for _ in range(n))
    shape = lead + spatial + ((2,) if layout == "channels_last" else ())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype, values = draw(st.sampled_from([("float32", "ties"), ("float64", "nan"),
                                          ("int16", "normal")]))
    x = as_view(make_values(rng, shape, dtype, values), draw(st.sampled_from(VIEWS)))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(n))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(n))
    if draw(st.booleans()):
        padding = draw(st.sampled_from(["same", "valid"]))
    else:  # each side less than the dilated kernel, so every window holds an element
        padding = tuple((draw(st.integers(0, (k - 1) * d)), draw(st.integers(0, (k - 1) * d)))
                        for k, d in zip(kernel, dilation))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(n))
    return x, dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
                   ceil_mode=draw(st.booleans()), layout=layout)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=numpy_sliding(), count_include_pad=st.booleans(),
       nan_policy=st.sampled_from(["propagate", "omit"]))
def test_numpy_sliding_beyond_torch(case, count_include_pad, nan_policy):
    x, geometry = case
    try:
        reference.max_pool(x, **geometry)
    except ValueError:  # a window with no input element: numbapool refuses the geometry
        return
    for name in ("max_pool", "min_pool"):
        _check(name, "numpy", x, nan_policy=nan_policy, **geometry)
    _check("avg_pool", "numpy", x, count_include_pad=count_include_pad, **geometry)


LP = [  # (spatial, kernel, stride, ceil_mode)
    ((8, 8), 2, None, False),
    ((9, 7), 3, 2, False),
    ((9, 9), 3, 2, True),  # ceil_mode whose windows all lie inside the input
    ((7, 10), (2, 3), (2, 3), True),  # partial last windows
    ((11,), 4, 3, False),
    ((4, 5, 6), (2, 3, 2), (2, 1, 3), False),
]


def _partial_last_window(spatial, kernel, stride):
    """Whether ceil_mode's last window (no padding) reaches past the input on some axis."""
    kernel = np.broadcast_to(kernel, len(spatial))
    stride = kernel if stride is None else np.broadcast_to(stride, len(spatial))
    return any(-(-(L - k) // s) * s + k > L for L, k, s in zip(spatial, kernel, stride))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("spatial, k, s, ceil_mode", LP)
def test_lp_pool(spatial, k, s, ceil_mode, layout, impl):
    partial = ceil_mode and _partial_last_window(spatial, k, s)
    for p in (1.0, 2.0, 3.0, 1.5):
        for dtype in ("float32", "float64", "int32"):
            x = np.abs(_input(spatial, dtype, "normal", layout))  # torch's domain: x >= 0
            if impl == "torch" and partial:
                with pytest.raises(NotImplementedError, match="ceil_mode"):
                    _formulation("lp_pool", impl)(x, p, k, s, ceil_mode, layout=layout)
            else:
                _check("lp_pool", impl, x, p, k, s, ceil_mode, layout=layout)
    if impl == "numpy":  # negative window sums give 0, NaN stays NaN
        for values in ("normal", "nan"):
            x = _input(spatial, "float64", values, layout)
            _check("lp_pool", impl, x, 1.0, k, s, ceil_mode, layout=layout)


# --------------------------------------------------------------------------- adaptive, global

ADAPTIVE = [  # (spatial, output_size)
    ((8, 8), 4),  # sizes that divide the input: NumPy's reshaped-block form
    ((8, 8), (3, 4)),
    ((7, 10), (None, 4)),
    ((9,), 4),
    ((5,), (7,)),  # more outputs than inputs: overlapping windows
    ((4, 5, 6), (2, 3, None)),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("spatial, size", ADAPTIVE)
def test_adaptive_pools(spatial, size, layout, impl):
    for dtype, values in EXTREME_INPUTS:
        if impl == "torch" and not _torch_has_kernel("adaptive_max_pool", dtype, len(spatial)):
            continue
        x = _input(spatial, dtype, values, layout)
        _check("adaptive_max_pool", impl, x, size, layout=layout)
        if impl == "torch" and values != "nan":
            _check("adaptive_max_pool", impl, x, size, layout=layout, return_indices=True)
        if impl == "numpy" and dtype.startswith("float"):
            _check("adaptive_max_pool", impl, x, size, layout=layout, nan_policy="omit")
    for dtype, values in (("float32", "normal"), ("float64", "nan"), ("int32", "normal")):
        _check("adaptive_avg_pool", impl, _input(spatial, dtype, values, layout), size,
               layout=layout)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("spatial, spatial_dims", [((5, 6), None), ((7,), 1), ((4, 5), 1),
                                                   ((2, 3, 2, 3), 4)])
def test_global_pools(spatial, spatial_dims, layout, impl):
    for keepdims in (False, True):
        kwargs = dict(keepdims=keepdims, layout=layout)
        for dtype, values in (("float32", "normal"), ("float64", "nan"), ("int32", "normal")):
            x = _input(spatial, dtype, values, layout)
            n = x.ndim - 2 if spatial_dims is None else spatial_dims
            if impl == "numpy" or _torch_has_kernel("global_max_pool", dtype, n):
                _check("global_max_pool", impl, x, spatial_dims, **kwargs)
            _check("global_avg_pool", impl, x, spatial_dims, **kwargs)
            for p, eps in ((3.0, 1e-6), (1.0, 0.5), (2.5, 0.0)):
                _check("gem_pool", impl, x, p, eps, spatial_dims, **kwargs)
            if impl == "numpy" and values == "nan":
                for name in ("global_max_pool", "global_avg_pool"):
                    _check(name, impl, x, spatial_dims, nan_policy="omit", **kwargs)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("lead", [(), (4,), (2, 1, 3)])
def test_any_leading_shape(lead, layout, impl):
    """Tuple kernels and sizes fix N, so any leading axes are independent planes (torch sees
    them as batch and channels)."""
    shape = lead + (6, 7) + ((2,) if layout == "channels_last" else ())
    x = make_values(np.random.default_rng(1), shape, "float64", "ties")
    _check("max_pool", impl, x, (3, 2), (2, 2), (1, 1), layout=layout)
    _check("avg_pool", impl, x, (3, 2), (2, 1), (1, 0), True, False, layout=layout)
    _check("adaptive_avg_pool", impl, x, (4, None), layout=layout)
    _check("global_max_pool", impl, x, 2, layout=layout)
    _check("gem_pool", impl, x, 2.0, 1e-6, 2, keepdims=True, layout=layout)


# --------------------------------------------------------------------------- tokens


def _tokens(dtype, seed=0):
    """Hidden states, a mask with right and left padding, a hole and an empty sequence,
    weights (one sequence's all zero) and scores."""
    rng = np.random.default_rng(seed)
    hidden = rng.standard_normal((5, 6, 4)).astype(dtype)
    mask = np.array([[1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1], [1, 0, 1, 1, 0, 1],
                     [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
    weights = rng.random((5, 6)) * (rng.random((5, 6)) < 0.7)
    weights[2] = 0.0
    return hidden, mask, dict(weights=weights, scores=rng.standard_normal((5, 6)) * 2)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", list(nbp.TOKEN_MODES) + [["cls", "mean", "max", "attention"]],
                         ids=str)
def test_pool_tokens(mode, impl):
    for dtype in ("float32", "float64"):
        hidden, mask, coefficients = _tokens(dtype)
        _check("pool_tokens", impl, hidden, mask, mode, **coefficients)
        _check("pool_tokens", impl, hidden, mask.astype(bool), mode, **coefficients)
        _check("pool_tokens", impl, hidden, None, mode, **coefficients)
        nan = hidden.copy()
        nan[0, 1, 2] = np.nan  # a NaN token propagates, as in numbapool
        _check("pool_tokens", impl, nan, mask, mode, **coefficients)


# --------------------------------------------------------------------------- uncovered


UNCOVERED = [  # (function, impl, positional arguments after x, keyword arguments, named)
    ("max_pool", "numpy", (2,), dict(return_indices=True), "return_indices"),
    ("adaptive_max_pool", "numpy", (2,), dict(return_indices=True), "return_indices"),
    ("avg_pool", "numpy", (2,), dict(nan_policy="omit"), "nan_policy"),
    ("adaptive_avg_pool", "numpy", (2,), dict(nan_policy="omit"), "nan_policy"),
    ("max_pool", "torch", (2,), dict(nan_policy="omit"), "nan_policy"),
    ("min_pool", "torch", (3,), dict(padding="same"), "padding"),
    ("max_pool", "torch", (3,), dict(padding=((0, 1), (1, 1))), "padding"),
    ("max_pool", "torch", ((2, 2, 1, 1),), {}, "4 spatial dimensions"),
    ("avg_pool", "torch", (3,), dict(dilation=2), "dilation"),
    ("avg_pool", "torch", ((3,),), dict(divisor_override=2), "divisor_override"),
    ("lp_pool", "torch", (2.0, (3, 3), 2), dict(ceil_mode=True), "ceil_mode"),
    ("adaptive_max_pool", "torch", (2,), dict(nan_policy="omit"), "nan_policy"),
    ("adaptive_avg_pool", "torch", (2,), dict(nan_policy="omit"), "nan_policy"),
    ("global_max_pool", "torch", (), dict(nan_policy="omit"), "nan_policy"),
    ("global_avg_pool", "torch", (), dict(nan_policy="omit"), "nan_policy"),
]
UNCOVERED_TOKENS = [(impl, kwargs, named) for impl in IMPLS for kwargs, named in (
    (dict(lengths=[2, 4]), "lengths"), (dict(offsets=[0, 2, 6]), "offsets"),
    (dict(nan_policy="omit"), "nan_policy"))]


@pytest.mark.parametrize("name, impl, args, kwargs, named", UNCOVERED)
def test_uncovered_arguments_say_so(name, impl, args, kwargs, named):
    x = _input((2, 3, 2, 3) if named == "4 spatial dimensions" else (6, 6), "float32")
    with pytest.raises(NotImplementedError, match=re.escape(named)):
        _formulation(name, impl)(x, *args, **kwargs)


@pytest.mark.parametrize("impl, kwargs, named", UNCOVERED_TOKENS)
def test_uncovered_token_arguments_say_so(impl, kwargs, named):
    hidden = np.zeros((6, 4), np.float32) if "nan_policy" not in kwargs else np.zeros((2, 3, 4))
    with pytest.raises(NotImplementedError, match=named):
        _formulation("pool_tokens", impl)(hidden, **kwargs)
