"""numbapool.grad and max_unpool on CUDA, against the CPU gradients, on tiny shapes.

Runs where CUDA is usable (Numba's simulator, as tests/test_isolated_runs.py runs it, or a
GPU); skips elsewhere.  The CPU gradients are themselves tested against a naive oracle and
PyTorch (tests/test_grad_spatial.py, tests/test_grad_tokens.py), so each CUDA result is
compared with the CPU's for the same call: within the rounding of a different summation
order (the atomics of the max/min scatter, the gather of the window sums).  Launches use 8
threads per block and at most 3 blocks, so the grid-stride loops wrap.
"""

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")

import numbapool as nbp  # noqa: E402

if not nbp.cuda_available():
    pytest.skip("no CUDA GPU, and NUMBA_ENABLE_CUDASIM is not set", allow_module_level=True)

from numbapool import grad  # noqa: E402
from numbapool._cuda import backend, compat  # noqa: E402

from conftest import LAYOUTS, assert_matches, make_values  # noqa: E402
from cuda_counting import host_work  # noqa: E402

pytestmark = pytest.mark.usefixtures("small_grids")

TOKEN_MODES = list(nbp.TOKEN_MODES)

# (spatial shape, kernel, stride, padding, dilation, ceil_mode): 1-D, 2-D with asymmetric
# padding, dilation and ceil_mode's partial window, 3-D with padding and ceil_mode
SLIDING = [
    ((7,), (3,), 2, 1, 1, False),
    ((5, 6), (2, 3), (1, 2), ((1, 0), (0, 1)), (2, 2), True),
    ((3, 4, 3), (2, 2, 2), (1, 2, 2), 1, 1, True),
]


def _x(rng, spatial, layout, kind="normal", dtype="float64"):
    """``(1, 2, *spatial)`` values (``(1, *spatial, 2)`` channels-last)."""
    x = make_values(rng, (1, 2) + spatial, dtype, kind)
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)) if layout == "channels_last" else x


def _to_host(a):
    assert compat.is_device_array(a), type(a)
    return a.copy_to_host()


def _tol(dtype):
    return {"float16": 2e-3, "float32": 2e-5}.get(np.dtype(dtype).name, 1e-12)


def _same(name, g, x, *args, **kwargs):
    """The CUDA gradient of device ``g`` and ``x`` matches the CPU's; returns it."""
    want = getattr(grad, name)(g, x, *args, **kwargs)
    got = getattr(grad, name)(cuda.to_device(g), cuda.to_device(x), *args, **kwargs)
    tol = _tol(g.dtype)
    assert_matches(got, want, False, to_host=_to_host, rtol=tol, atol=tol)
    return got


def _g(rng, forward, x, *args, dtype=np.float64, **kwargs):
    """An upstream gradient shaped as ``nbp.<forward>(x, ...)``'s result."""
    shape = getattr(nbp, forward)(x, *args, **kwargs).shape
    return rng.standard_normal(shape).astype(dtype)


# --------------------------------------------------------------------------- spatial


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("config", range(len(SLIDING)))
def test_sliding(config, layout, launched):
    """max/min (with ties, so overlapping windows share winners) and avg with each divisor
    rule, N = 1, 2, 3."""
    spatial, k, s, p, d, ceil = SLIDING[config]
    rng = np.random.default_rng(config)
    x = _x(rng, spatial, layout, "ties")
    for name in ("max_pool", "min_pool"):
        g = _g(rng, name, x, k, s, p, d, ceil, layout=layout)
        _same(name, g, x, k, s, p, d, ceil, layout=layout)
    for include_pad, override in ((True, None), (False, None), (True, 3)):
        kw = dict(ceil_mode=ceil, count_include_pad=include_pad, divisor_override=override,
                  dilation=d, layout=layout)
        _same("avg_pool", _g(rng, "avg_pool", x, k, s, p, **kw), x, k, s, p, **kw)
    assert "scatter_kernel_add_float64" in launched
    assert any(n.startswith(f"window_grad_kernel_n{len(spatial)}") for n in launched)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_nan_policies(layout):
    """omit: NaNs get 0, averages divide by the non-NaN count, all-NaN windows pass
    nothing; propagate: the first NaN of a max window wins."""
    rng = np.random.default_rng(7)
    spatial, k, s, p, d, ceil = SLIDING[1]
    x = _x(rng, spatial, layout, "nan")
    x[0, ..., :2] = np.nan  # whole windows of NaNs
    for policy in ("propagate", "omit"):
        kw = dict(nan_policy=policy, layout=layout)
        _same("max_pool", _g(rng, "max_pool", x, k, s, p, d, ceil, **kw), x, k, s, p, d, ceil,
              **kw)
        g = _g(rng, "avg_pool", x, k, s, p, ceil, **kw)
        _same("avg_pool", g, x, k, s, p, ceil, False, **kw)
        _same("avg_pool", g, x, k, s, p, ceil, divisor_override=2, dilation=1, **kw)
        g = _g(rng, "adaptive_avg_pool", x, (2, 4), **kw)
        _same("adaptive_avg_pool", g, x, (2, 4), **kw)
        _same("adaptive_max_pool", g, x, (2, 4), **kw)
        g = _g(rng, "global_avg_pool", x, **kw)
        _same("global_avg_pool", g, x, **kw)
        _same("global_max_pool", g, x, **kw)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_adaptive_global_lp_gem(layout):
    rng = np.random.default_rng(3)
    x = _x(rng, (3, 4, 2), layout)
    for size in ((2, None, 3), (1, 3, 1)):
        g = _g(rng, "adaptive_avg_pool", x, size, layout=layout)
        _same("adaptive_avg_pool", g, x, size, layout=layout)
        _same("adaptive_max_pool", g, x, size, layout=layout)
    for keep in (False, True):
        g = _g(rng, "global_avg_pool", x, keepdims=keep, layout=layout)
        _same("global_avg_pool", g, x, keepdims=keep, layout=layout)
        _same("global_max_pool", g, x, keepdims=keep, layout=layout)
    x2 = np.abs(_x(rng, (5, 6), layout))
    x2[0, 0, 0] = 0.0  # a window of zeros: its sum is not positive
    if layout == "channels_first":
        x2[0, 0, :2, :2] = 0.0
    for p, k, s, ceil in ((2.0, (2, 3), None, False), (1.5, (2, 4), (2, 1), True)):
        g = _g(rng, "lp_pool", x2, p, k, s, ceil, layout=layout)
        _same("lp_pool", g, x2, p, k, s, ceil, layout=layout)
    x1 = np.abs(rng.standard_normal((2, 7)))  # 1-D, p = 1: no power factor
    _same("lp_pool", _g(rng, "lp_pool", x1, 1.0, (3,)), x1, 1.0, (3,))
    x3 = _x(rng, (3, 4), layout)  # negative values: below eps, no gradient
    for p, eps in ((3.0, 1e-6), (1.0, 0.5)):
        for keep in (False, True):
            g = _g(rng, "gem_pool", x3, p, eps, keepdims=keep, layout=layout)
            _same("gem_pool", g, x3, p, eps, keepdims=keep, layout=layout)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_dtypes_and_out(dtype):
    """float16 accumulates in float32 and rounds once; ``out=`` is filled and returned."""
    rng = np.random.default_rng(4)
    x = _x(rng, (5, 6), "channels_first", "ties", "float32")
    calls = [("max_pool", ((3, 3), (2, 1), 1), {}),
             ("avg_pool", ((2, 3), 1, 1), {"nan_policy": "omit"}),
             ("adaptive_avg_pool", ((2, 4),), {}),
             ("lp_pool", (2.0, (2, 2)), {}),
             ("gem_pool", (3.0,), {})]
    for name, args, kw in calls:
        xx = np.abs(x) if name in ("lp_pool", "gem_pool") else x
        g = _g(rng, name, xx, *args, dtype=dtype, **kw)
        got = _same(name, g, xx, *args, **kw)
        assert got.dtype == np.dtype(dtype)
        out = cuda.to_device(np.full(x.shape, 7, dtype))
        res = getattr(grad, name)(cuda.to_device(g), cuda.to_device(xx), *args, out=out, **kw)
        assert res is out
        np.testing.assert_array_equal(out.copy_to_host(), got.copy_to_host())
    xi = (x * 3).astype(np.int16)  # integer x, float gradient
    _same("max_pool", _g(rng, "max_pool", xi, (2, 2), dtype=dtype), xi, (2, 2))


def test_indices_given_and_bad_indices():
    rng = np.random.default_rng(8)
    x = _x(rng, (6, 6), "channels_first", "ties", "float32")
    v, i = nbp.max_pool2d(x, 3, (2, 3), 1, return_indices=True)
    g = rng.standard_normal(v.shape).astype(np.float32)
    want = grad.max_pool2d(g, x, 3, (2, 3), 1)
    dg, dx = cuda.to_device(g), cuda.to_device(x)
    for idx in (cuda.to_device(i), i, i.astype(np.int32)):  # device or host, any int type
        got = grad.max_pool2d(dg, dx, 3, (2, 3), 1, indices=idx)
        assert_matches(got, want, False, to_host=_to_host, rtol=1e-6, atol=1e-6)
    gi = nbp.adaptive_max_pool2d(x, 1, return_indices=True)[1].reshape(1, 2)
    g2 = rng.standard_normal((1, 2)).astype(np.float32)
    got = grad.global_max_pool2d(cuda.to_device(g2), dx, indices=cuda.to_device(gi))
    assert_matches(got, grad.global_max_pool2d(g2, x), True, to_host=_to_host)
    out = cuda.to_device(np.full(x.shape, 5, np.float32))
    for bad in (i + 100, i - 100):
        with pytest.raises(ValueError, match="outside"):
            grad.max_pool2d(dg, dx, 3, (2, 3), 1, indices=cuda.to_device(bad), out=out)
    assert np.all(out.copy_to_host() == 5)
    # the entry point's own contract: None, and nothing written
    from numbapool._cpu.grad_kernels import ScatterPlan
    plan = ScatterPlan(2, 36, i[0, 0].size, 1, x.shape, np.dtype(np.float32), True)
    assert backend.run_index_scatter(plan, dg, out, cuda.to_device(i + 100)) is None
    assert np.all(out.copy_to_host() == 5)
    with pytest.raises(TypeError, match="integer"):
        grad.max_pool2d(dg, dx, 3, (2, 3), 1, indices=cuda.to_device(i.astype(float)))
    with pytest.raises(ValueError, match="indices has shape"):
        grad.max_pool2d(dg, dx, 3, (2, 3), 1,
                        indices=cuda.to_device(np.ascontiguousarray(i[..., :1])))


@pytest.mark.skipif(not compat.simulator(), reason="counted in Numba's CUDA simulator")
def test_no_host_round_trips():
    """Device inputs of a geometry seen before: nothing comes back to the host and nothing
    waits, with the forward's own indices; given indices cost one check."""
    rng = np.random.default_rng(5)
    x = _x(rng, (4, 5), "channels_first", "nan", "float32")
    dx = cuda.to_device(x)
    dv, di = nbp.max_pool(dx, (2, 2), return_indices=True)
    dg = cuda.to_device(rng.standard_normal(dv.shape).astype(np.float32))
    calls = [lambda: grad.max_pool(dg, dx, (2, 2), nan_policy="omit"),
             lambda: grad.avg_pool(dg, dx, (2, 2), nan_policy="omit"),
             lambda: grad.lp_pool(dg, dx, 2.0, (2, 2))]
    for call in calls:
        call()
        with host_work() as counts:
            call()
        assert counts["to_host"] == counts["synchronize"] == counts["host_args"] == 0, counts
    with host_work() as counts:
        grad.max_pool(dg, dx, (2, 2), indices=di)
    assert counts["to_host"] == 1 and counts["host_args"] == 0, counts
    # the PyTorch integration's saved indices are trusted: no check, no wait
    want = grad.max_pool(dg, dx, (2, 2), indices=di).copy_to_host()
    with grad.spatial._trusting_indices(), host_work() as counts:
        got = grad.max_pool(dg, dx, (2, 2), indices=di)
    assert counts["to_host"] == counts["synchronize"] == counts["host_args"] == 0, counts
    np.testing.assert_array_equal(got.copy_to_host(), want)
    assert not grad.spatial._INDICES_TRUSTED.get()  # reset on leaving


def test_stream_and_device():
    rng = np.random.default_rng(6)
    x = _x(rng, (4, 5), "channels_last")
    g = _g(rng, "avg_pool", x, (2, 2), layout="channels_last")
    want = grad.avg_pool(g, x, (2, 2), layout="channels_last")
    stream = cuda.stream()
    got = grad.avg_pool(cuda.to_device(g), cuda.to_device(x), (2, 2), layout="channels_last",
                        stream=stream)
    stream.synchronize()
    assert_matches(got, want, False, to_host=_to_host, rtol=1e-12, atol=1e-12)
    got = grad.avg_pool(g, x, (2, 2), layout="channels_last", device="cuda")
    assert_matches(got, want, False, to_host=_to_host, rtol=1e-12, atol=1e-12)
    got = grad.avg_pool(cuda.to_device(g), cuda.to_device(x), (2, 2), layout="channels_last",
                        device="cpu")
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    with pytest.raises(ValueError, match="stream"):
        grad.avg_pool(g, x, (2, 2), stream=stream)


# --------------------------------------------------------------------------- max_unpool


@pytest.mark.parametrize("layout", LAYOUTS)
def test_unpool(layout):
    """Unique indices: exactly the CPU's result, every dtype family; duplicate indices (of
    overlapping windows): each position holds one of the values sent there."""
    rng = np.random.default_rng(9)
    for dtype in ("bool", "int16", "float16", "float64"):
        x = _x(rng, (4, 6), layout, "ties", "float64")
        v, i = nbp.max_pool(x, (2, 3), return_indices=True, layout=layout)
        v = v.astype(dtype)
        want = nbp.max_unpool(v, i, (4, 6), layout=layout)
        got = nbp.max_unpool(cuda.to_device(v), cuda.to_device(i), (4, 6), layout=layout)
        assert_matches(got, want, True, to_host=_to_host)
    x = _x(rng, (5,), layout, "ties")
    v, i = nbp.max_pool(x, (3,), stride=1, return_indices=True, layout=layout)
    v = v + np.arange(v.size).reshape(v.shape)  # distinct values per index
    out = cuda.to_device(np.full(x.shape, -1.0))
    got = nbp.max_unpool(cuda.to_device(v), cuda.to_device(i), (5,), layout=layout, out=out)
    assert got is out
    got = got.copy_to_host()
    def planes(a):
        a = np.moveaxis(a, -1, 1) if layout == "channels_last" else a
        return a.reshape(-1, a.shape[-1])

    for gp, vp, ip in zip(planes(got), planes(v), planes(i)):
        for pos in range(5):
            sent = vp[ip == pos]
            assert (gp[pos] == 0 if sent.size == 0 else gp[pos] in sent), (pos, gp, sent)
    bad = cuda.to_device(i + 5)
    with pytest.raises(ValueError, match="outside"):
        nbp.max_unpool(cuda.to_device(v), bad, (5,), layout=layout, out=out)
    assert np.array_equal(out.copy_to_host(), got)


# --------------------------------------------------------------------------- tokens


#: right padding, left padding, holes, no tokens, one token
MASK = np.array([[1, 1, 1, 0, 0],
                 [0, 0, 1, 1, 1],
                 [1, 0, 1, 0, 1],
                 [0, 0, 0, 0, 0],
                 [0, 0, 0, 1, 0]], bool)


def _tokens_same(g, h, mask, modes, *, weights=None, scores=None, **kw):
    want = grad.pool_tokens(g, h, mask, modes, weights=weights, scores=scores, **kw)
    got = grad.pool_tokens(cuda.to_device(np.ascontiguousarray(g)), cuda.to_device(h),
                           None if mask is None else cuda.to_device(mask), modes,
                           weights=weights, scores=scores, **kw)
    tol = _tol(g.dtype)
    assert_matches(got, want, False, to_host=_to_host, rtol=tol, atol=tol)
    return got


@pytest.mark.parametrize("policy", ["propagate", "omit"])
def test_tokens_padded(policy, launched):
    """Every mode at once (and each ratio mode alone), with a mask of right and left
    padding, holes and empty rows, and without a mask."""
    rng = np.random.default_rng(10)
    h = rng.standard_normal((5, 5, 3))
    h[rng.random(h.shape) < 0.2] = np.nan
    h[0, 1] = h[0, 0]  # ties for max/min
    w = rng.random((5, 5))
    w[1] = 0.0  # a sequence of zero weights
    s = rng.standard_normal((5, 5)) * 3
    g = rng.standard_normal((5, 3 * len(TOKEN_MODES)))
    _tokens_same(g, h, MASK, TOKEN_MODES, weights=w, scores=s, nan_policy=policy)
    _tokens_same(g[:, :3], h, None, "weighted", weights=w, nan_policy=policy)
    _tokens_same(g[:, :6], h, MASK, ["attention", "max"], scores=s, nan_policy=policy)
    assert any(n.startswith("token_coef_kernel") for n in launched)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_tokens_packed(dtype):
    """Packed sequences (one empty), lengths or offsets, grad_out of each float dtype."""
    rng = np.random.default_rng(11)
    h = rng.standard_normal((7, 4)).astype(np.float32)
    w = rng.random(7)
    s = rng.standard_normal(7)
    g = rng.standard_normal((3, 4 * len(TOKEN_MODES))).astype(dtype)
    got = _tokens_same(g, h, None, TOKEN_MODES, weights=w, scores=s, lengths=[2, 0, 5])
    assert all(a.dtype == np.dtype(dtype) for a in got)
    _tokens_same(g[:, :8], h, None, ["mean", "last"], offsets=cuda.to_device(
        np.array([0, 2, 2, 7])))


def test_tokens_out():
    """``out=`` with and without coefficient gradients."""
    rng = np.random.default_rng(12)
    h = rng.standard_normal((5, 5, 2))
    g = rng.standard_normal((5, 4))
    s = rng.standard_normal((5, 5))
    for modes, kw in ((["mean", "min"], {}), (["sum", "attention"], {"scores": s})):
        want = grad.pool_tokens(g, h, MASK, modes, **kw)
        out = cuda.to_device(np.full(h.shape, 3.0))
        got = grad.pool_tokens(cuda.to_device(g), cuda.to_device(h), MASK, modes, out=out, **kw)
        first = got[0] if kw else got
        assert first is out
        assert_matches(got, want, False, to_host=_to_host, rtol=1e-12, atol=1e-12)
