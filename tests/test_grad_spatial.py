"""numbapool.grad for the spatial pools against the naive gradient oracle (grad_reference.py)
and against PyTorch's autograd, both layouts; ties, NaN, indices= and bad input."""

import numpy as np
import pytest

import grad_reference
import numbapool as nbp
from conftest import LAYOUTS, make_values
from numbapool import grad

# (spatial shape, kernel, stride, padding, dilation, ceil_mode): N = 1, 2, 3, asymmetric and
# "same" padding, dilation, overlapping windows, ceil_mode's partial last window
SLIDING = [
    ((7,), (3,), 3, 1, 1, False),
    ((6, 7), (2, 3), (1, 2), ((1, 0), (0, 1)), (2, 2), True),
    ((4, 5, 3), (2, 2, 2), (1, 1, 3), "same", 1, False),
    ((5, 6), (3, 3), (2, 3), 1, 1, True),
]
# the window shapes avoid the forward's unrolled variants (each is one more compile)
LP = [((7,), (3,), None, False), ((5, 6), (2, 4), (2, 1), True)]  # no padding for lp_pool
ADAPTIVE = [((7,), (3,)), ((5, 6), (3, 4)), ((3, 4, 2), (2, None, 3))]


def _x(rng, spatial, layout, kind="normal", dtype="float64"):
    x = make_values(rng, (2, 3) + spatial, dtype, kind)
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)) if layout == "channels_last" else x


def _check(name, g, x, *args, rtol=1e-12, **kwargs):
    want = getattr(grad_reference, name)(g, x, *args, **kwargs)
    got = getattr(grad, name)(g, x, *args, **kwargs)
    assert got.shape == x.shape and got.dtype == g.dtype
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
    return got


def _grad_out(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("config", range(len(SLIDING)))
def test_sliding_against_reference(config, layout):
    spatial, k, s, p, d, ceil = SLIDING[config]
    rng = np.random.default_rng(config)
    x = _x(rng, spatial, layout)
    for name in ("max_pool", "min_pool"):
        g = _grad_out(rng, getattr(nbp, name)(x, k, s, p, d, ceil, layout=layout).shape)
        _check(name, g, x, k, s, p, d, ceil, layout=layout)
    for include_pad, override in ((True, None), (False, None), (True, 3)):
        kw = dict(ceil_mode=ceil, count_include_pad=include_pad, divisor_override=override,
                  dilation=d, layout=layout)
        g = _grad_out(rng, nbp.avg_pool(x, k, s, p, **kw).shape)
        _check("avg_pool", g, x, k, s, p, **kw)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_lp_against_reference(layout):
    rng = np.random.default_rng(5)
    for spatial, k, s, ceil in LP:
        x = np.abs(_x(rng, spatial, layout))
        x.flat[0] = 0.0  # a zero element, whose x**(p-1) is 0 for p > 1
        for p in (1.0, 2.0, 3.5):
            g = _grad_out(rng, nbp.lp_pool(x, p, k, s, ceil, layout=layout).shape)
            _check("lp_pool", g, x, p, k, s, ceil, layout=layout, rtol=1e-10)
    # a window of zeros pools to 0 and passes no gradient (PyTorch's rule for a zero sum)
    z = np.zeros((1, 4))
    np.testing.assert_array_equal(grad.lp_pool(np.ones((1, 2)), z, 2, (2,)), z)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_adaptive_and_global_against_reference(layout):
    rng = np.random.default_rng(6)
    for spatial, size in ADAPTIVE:
        x = _x(rng, spatial, layout)
        for name in ("adaptive_max_pool", "adaptive_avg_pool"):
            g = _grad_out(rng, getattr(nbp, name)(x, size, layout=layout).shape)
            _check(name, g, x, size, layout=layout)
    x = _x(rng, (3, 4), layout)
    for keepdims in (False, True):
        for name in ("global_max_pool", "global_avg_pool"):
            g = _grad_out(rng, getattr(nbp, name)(x, keepdims=keepdims, layout=layout).shape)
            _check(name, g, x, keepdims=keepdims, layout=layout)
        g = _grad_out(rng, nbp.gem_pool(x, keepdims=keepdims, layout=layout).shape)
        xg = np.where(rng.random(x.shape) < 0.2, 1e-9, np.abs(x))  # some below eps: clipped
        _check("gem_pool", g, xg, 3.0, 1e-6, keepdims=keepdims, layout=layout, rtol=1e-10)
        _check("gem_pool", g, xg, 1.5, 1e-6, None, keepdims=keepdims, layout=layout,
               rtol=1e-10)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_nan_policies(layout):
    """omit: NaNs get 0 and averages divide by the non-NaN count (all-NaN windows pass
    nothing); propagate: the first NaN of a max window wins its gradient."""
    rng = np.random.default_rng(7)
    spatial, k, s, p, d, ceil = SLIDING[3]
    x = _x(rng, spatial, layout, "nan")
    x[0, ..., :2] = np.nan  # whole windows of NaNs
    for policy in ("propagate", "omit"):
        g = _grad_out(rng, nbp.max_pool(x, k, s, p, d, ceil, layout=layout).shape)
        _check("max_pool", g, x, k, s, p, d, ceil, nan_policy=policy, layout=layout)
        kw = dict(ceil_mode=ceil, count_include_pad=False, nan_policy=policy, layout=layout)
        _check("avg_pool", g, x, k, s, p, **kw)
        _check("avg_pool", g, x, k, s, p, divisor_override=2, **kw)
        g = _grad_out(rng, nbp.adaptive_avg_pool(x, (2, 3), layout=layout).shape)
        _check("adaptive_avg_pool", g, x, (2, 3), nan_policy=policy, layout=layout)
        _check("adaptive_max_pool", g, x, (2, 3), nan_policy=policy, layout=layout)
        g = _grad_out(rng, nbp.global_avg_pool(x, layout=layout).shape)
        _check("global_avg_pool", g, x, nan_policy=policy, layout=layout)
        _check("global_max_pool", g, x, nan_policy=policy, layout=layout)
    ones = np.ones(nbp.avg_pool(x, k, s, p, layout=layout).shape)
    got = grad.avg_pool(ones, x, k, s, p, nan_policy="omit", layout=layout)
    assert np.all(got[np.isnan(x)] == 0)


def test_indices_given_and_aliases():
    rng = np.random.default_rng(8)
    x = make_values(rng, (2, 3, 6, 6), "float32", "ties")  # ties: the first tap wins
    v, i = nbp.max_pool2d(x, 3, (2, 3), 1, return_indices=True)
    g = _grad_out(rng, v.shape, np.float32)
    got = grad.max_pool2d(g, x, 3, (2, 3), 1, indices=i)
    np.testing.assert_array_equal(got, grad.max_pool(g, x, (3, 3), (2, 3), 1))
    np.testing.assert_allclose(got, grad_reference.max_pool(g, x, 3, (2, 3), 1), rtol=1e-6)
    out = np.full(x.shape, 7.0, np.float32)
    assert grad.max_pool2d(g, x, 3, (2, 3), 1, indices=i, out=out) is out
    np.testing.assert_array_equal(out, got)
    # global max: per-plane flat indices, those of an adaptive pool to one
    gi = nbp.adaptive_max_pool2d(x, 1, return_indices=True)[1].reshape(2, 3)
    g2 = _grad_out(rng, (2, 3), np.float32)
    np.testing.assert_array_equal(grad.global_max_pool2d(g2, x, indices=gi),
                                  grad.global_max_pool(g2, x))
    # float16: accumulated in float32, returned in float16; integer x for max
    g16 = g.astype(np.float16)
    got16 = grad.max_pool2d(g16, x.astype(np.int32), 3, (2, 3), 1, indices=i)
    assert got16.dtype == np.float16
    np.testing.assert_array_equal(got16, grad.max_pool2d(g16.astype(np.float32),
                                                         x.astype(np.int32), 3, (2, 3), 1,
                                                         indices=i).astype(np.float16))


@pytest.mark.parametrize("call, error, fragment", [
    (lambda g, x, i: grad.max_pool2d(g[..., :1], x, 2), ValueError, "grad_out has shape"),
    (lambda g, x, i: grad.max_pool2d(g.astype(np.int32), x, 2), TypeError, "grad_out has dtype"),
    (lambda g, x, i: grad.max_pool2d(g, x, 2, indices=i[..., :1]), ValueError, "indices has shape"),
    (lambda g, x, i: grad.max_pool2d(g, x, 2, indices=i + 100), ValueError, "outside"),
    (lambda g, x, i: grad.max_pool2d(g, x, 2, indices=i - 100, out=np.zeros_like(x)),
     ValueError, "outside"),
    (lambda g, x, i: grad.max_pool2d(g, x, 2, indices=i.astype(float)), TypeError, "integer"),
    (lambda g, x, i: grad.avg_pool2d(g, x, 2, out=np.zeros(x.shape, np.float32)), TypeError,
     "dtype"),
    (lambda g, x, i: grad.avg_pool2d(g, x, 2, divisor_override=0), ValueError, "divisor"),
    (lambda g, x, i: grad.avg_pool2d(g, x, 2, layout="nchw"), ValueError, "layout"),
    (lambda g, x, i: grad.avg_pool2d(list(g), x, 2), TypeError, "grad_out must be"),
])
def test_errors(call, error, fragment):
    x = np.random.default_rng(9).standard_normal((1, 2, 4, 4))
    v, i = nbp.max_pool2d(x, 2, return_indices=True)
    out = np.full(x.shape, 5.0)
    with pytest.raises(error, match=fragment):
        call(np.ones_like(v), x, i)
    assert np.all(out == 5.0)


# --------------------------------------------------------------------------- PyTorch


def _torch_grad(torch, fn, x, g, layout):
    """torch's gradient of ``fn`` at ``x`` (NCHW values) for ``g``, in numbapool's layout."""
    xt = torch.from_numpy(x)
    if layout == "channels_last":
        xt = xt.contiguous(memory_format=torch.channels_last if x.ndim == 4 else
                           torch.channels_last_3d)
    xt.requires_grad_(True)
    y = fn(xt)
    gt = torch.from_numpy(g)
    (dx,) = torch.autograd.grad(y, xt, gt)
    dx = dx.detach().numpy()
    return np.ascontiguousarray(np.moveaxis(dx, 1, -1)) if layout == "channels_last" else dx


TORCH_CASES = [  # (name, numbapool args, torch call)
    ("max_pool", ((3, 3), (2, 3), 1), lambda F, t: F.max_pool2d(t, 3, (2, 3), 1)),
    ("max_pool", ((2, 2, 2), (1, 1, 3), 0, 1, True),
     lambda F, t: F.max_pool3d(t, 2, (1, 1, 3), 0, 1, True)),
    ("avg_pool", ((3, 3), (2, 3), 1, True, False),
     lambda F, t: F.avg_pool2d(t, 3, (2, 3), 1, True, False)),
    ("avg_pool", ((3, 2), 1, (1, 0), False, True, 5),
     lambda F, t: F.avg_pool2d(t, (3, 2), 1, (1, 0), False, True, 5)),
    ("lp_pool", (2.0, (2, 4), (2, 1)), lambda F, t: F.lp_pool2d(t, 2.0, (2, 4), (2, 1))),
    ("adaptive_max_pool", ((3, 4),), lambda F, t: F.adaptive_max_pool2d(t, (3, 4))),
    ("adaptive_avg_pool", ((4, 3),), lambda F, t: F.adaptive_avg_pool2d(t, (4, 3))),
    ("global_avg_pool", (), lambda F, t: F.adaptive_avg_pool2d(t, 1).flatten(2).squeeze(2)),
]


@pytest.mark.torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_against_torch(dtype, layout):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(10)
    for name, args, call in TORCH_CASES:
        shape = (2, 3, 5, 6, 4) if name == "max_pool" and len(args[0]) == 3 else (2, 3, 7, 6)
        x = rng.standard_normal(shape).astype(dtype)
        if name == "lp_pool":
            x = np.abs(x)
        xn = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if layout == "channels_last" else x
        y = getattr(nbp, name)(xn, *args, layout=layout)
        g = rng.standard_normal(y.shape).astype(dtype)
        g_nchw = np.ascontiguousarray(np.moveaxis(g, -1, 1)) if layout == "channels_last" else g
        want = _torch_grad(torch, lambda t: call(F, t), x, g_nchw, layout)
        got = getattr(grad, name)(g, xn, *args, layout=layout)
        rtol = 1e-5 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, err_msg=name)


@pytest.mark.torch
def test_ties_like_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(11).integers(0, 2, (2, 2, 6, 6)).astype(np.float32)
    g = np.random.default_rng(12).standard_normal((2, 2, 3, 3)).astype(np.float32)
    want = _torch_grad(torch, lambda t: torch.nn.functional.max_pool2d(t, 3, 2, 1), x, g,
                       "channels_first")
    np.testing.assert_array_equal(grad.max_pool2d(g, x, 3, 2, 1), want)
