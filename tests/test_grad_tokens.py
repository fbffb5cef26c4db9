"""numbapool.grad.pool_tokens against the naive oracle (token_grad_reference.py) and against
torch autograd of the forward's formulas written in torch (float64).

Shapes are tiny; float64 is the main dtype (float32 and float16 once each), so that the
module compiles few kernels.
"""

import numpy as np
import pytest

from numbapool import grad
from numbapool.token_plan import TOKEN_MODES
from token_grad_reference import pool_tokens_grad_ref

B, L, D = 4, 5, 3
ALL_MODES = list(TOKEN_MODES)


def _mask(kind):
    """Right and left padding with an empty row, or a mask with holes."""
    rows = {"right": [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]],
            "left": [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1]],
            "holes": [[1, 0, 1, 0, 1], [0, 1, 1, 0, 1], [0, 0, 0, 0, 0], [1, 1, 0, 1, 1]]}
    return np.array(rows[kind], np.int64)


def _inputs(rng, packed, mask_kind="right", dtype=np.float64, nan=False):
    """``(hidden, kwargs)``: distinct random values (no ties), weights and scores."""
    if packed:
        lengths = np.array([3, 0, 5, 1])
        hidden = rng.permutation(lengths.sum() * D).reshape(-1, D) / 7.0 - 1.0
        kw = {"lengths": lengths}
        coef_shape = hidden.shape[:1]
    else:
        hidden = rng.permutation(B * L * D).reshape(B, L, D) / 11.0 - 2.0
        kw = {"attention_mask": _mask(mask_kind)}
        coef_shape = (B, L)
    if nan:
        hidden[rng.random(hidden.shape) < 0.3] = np.nan
    kw["weights"] = rng.random(coef_shape) * 3
    kw["scores"] = rng.standard_normal(coef_shape)
    return hidden.astype(dtype), kw


def _call(modes, hidden, kw, g, **extra):
    """grad.pool_tokens with the coefficients that ``modes`` use."""
    kw = dict(kw)
    if "weighted" not in modes:
        kw.pop("weights")
    if "attention" not in modes:
        kw.pop("scores")
    return grad.pool_tokens(g, hidden, mode=modes, **kw, **extra), kw


def _as_tuple(r):
    return r if isinstance(r, tuple) else (r,)


def _check(modes, hidden, kw, rng, nan_policy="propagate", rtol=1e-12):
    g = rng.standard_normal((len(kw.get("lengths", hidden)), D * len(modes)))
    got, used = _call(modes, hidden, kw, g.astype(hidden.dtype), nan_policy=nan_policy)
    want = pool_tokens_grad_ref(g.astype(hidden.dtype), hidden, mode=modes,
                                nan_policy=nan_policy, **used)
    got, want = _as_tuple(got), _as_tuple(want)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.dtype == hidden.dtype and a.shape == b.shape
        np.testing.assert_allclose(a.astype(np.float64), b, rtol=rtol, atol=rtol)
    return got


# --------------------------------------------------------------------------- the oracle


@pytest.mark.parametrize("form", ["right", "left", "holes", "packed"])
@pytest.mark.parametrize("mode", ALL_MODES)
def test_each_mode_matches_the_reference(form, mode):
    rng = np.random.default_rng(abs(hash((form, mode))) % 2**32)
    hidden, kw = _inputs(rng, form == "packed", form)
    _check([mode], hidden, kw, rng)


@pytest.mark.parametrize("form", ["right", "packed"])
def test_several_modes_add_up(form):
    rng = np.random.default_rng(1)
    hidden, kw = _inputs(rng, form == "packed", form)
    modes = ["attention", "max", "mean", "weighted", "cls", "min", "last", "sum",
             "mean_sqrt_len", "weighted_mean", "mean"]  # a mode twice adds twice
    _check(modes, hidden, kw, rng)


@pytest.mark.parametrize("nan_policy", ["propagate", "omit"])
def test_nan_values(nan_policy):
    """Under omit NaNs get zero gradient and the rest follow the per-feature formulas;
    under propagate max/min route to the first NaN."""
    rng = np.random.default_rng(2)
    hidden, kw = _inputs(rng, False, "right", nan=True)
    _check(ALL_MODES, hidden, kw, rng, nan_policy)
    if nan_policy == "omit":  # (cls and last select a token as it is, NaN or not)
        linear = ["mean", "sum", "weighted", "attention", "weighted_mean", "mean_sqrt_len"]
        got = _check(linear, hidden, kw, rng, nan_policy)[0]
        assert (got[np.isnan(hidden)] == 0).all()


def test_ties_and_signed_zeros_go_to_the_first_winner():
    h = np.array([[[1.0, -0.0, 2.0], [1.0, 0.0, 2.0], [0.5, -0.0, 2.0]]])
    g = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    got = grad.pool_tokens(g, h, mode=["max", "min"])
    # max: 1 (first of the tie), +0 (the larger zero), 2 (first); min: 0.5, -0 (first), 2
    want = np.array([[[1.0, 5.0, 3.0 + 6.0], [0.0, 2.0, 0.0], [4.0, 0.0, 0.0]]])
    np.testing.assert_array_equal(got, want)


def test_zero_total_weight_and_huge_weights():
    """Weights all 0 give zero gradients; only the weights' ratios matter, so 1e300-sized
    weights give the gradient of their ratios (scaled back)."""
    rng = np.random.default_rng(3)
    h = rng.standard_normal((2, 3, D))
    g = rng.standard_normal((2, D))
    w = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    dh, dw = grad.pool_tokens(g, h, mode="weighted", weights=w)
    assert (dh[0] == 0).all() and (dw[0] == 0).all()
    dh_big, dw_big = grad.pool_tokens(g, h, mode="weighted", weights=w * 1e300)
    np.testing.assert_allclose(dh_big, dh, rtol=1e-12)
    np.testing.assert_allclose(dw_big * 1e300, dw, rtol=1e-12)


def test_float32_float16_and_out():
    rng = np.random.default_rng(4)
    modes = ["mean", "max", "attention"]
    for dtype, rtol in ((np.float32, 1e-5), (np.float16, 2e-3)):
        hidden, kw = _inputs(rng, False, "left", dtype=dtype)
        _check(modes, hidden, kw, rng, rtol=rtol)
    hidden, kw = _inputs(rng, True, dtype=np.float32)
    g = rng.standard_normal((4, D)).astype(np.float32)
    out = np.full(hidden.shape, np.nan, np.float32)
    kw.pop("weights"), kw.pop("scores")
    assert grad.pool_tokens(g, hidden, mode="sum", out=out, **kw) is out
    np.testing.assert_allclose(out, pool_tokens_grad_ref(g, hidden, mode="sum", **kw))
    # padded: every padding row (holes, an empty sequence) is written, as zeros
    padded, padded_kw = _inputs(rng, False, "holes", dtype=np.float32)
    mask, g2 = padded_kw["attention_mask"], rng.standard_normal((B, 2 * D)).astype(np.float32)
    out = np.full(padded.shape, np.nan, np.float32)
    assert grad.pool_tokens(g2, padded, mask, mode=["mean", "max"], out=out) is out
    np.testing.assert_allclose(out, pool_tokens_grad_ref(g2, padded, mask, mode=["mean", "max"]),
                               rtol=1e-5)
    # a float64 upstream gradient of float32 states gives a float64 gradient
    assert grad.pool_tokens(g.astype(np.float64), hidden, mode="sum", **kw).dtype == np.float64


def test_views_offsets_and_parallel_path(monkeypatch):
    """A strided, reversed input and offsets=; then the threaded path, same result."""
    import numba

    from numbapool._cpu import parallel

    rng = np.random.default_rng(5)
    hidden, kw = _inputs(rng, False, "holes")
    view = np.ascontiguousarray(hidden[::-1])[::-1]
    g = rng.standard_normal((B, 2 * D))
    modes = ["max", "weighted"]
    want = grad.pool_tokens(g, hidden, kw["attention_mask"], modes, weights=kw["weights"])
    got = grad.pool_tokens(g, view, kw["attention_mask"], modes, weights=kw["weights"])
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    packed, kp = _inputs(rng, True)
    offsets = np.concatenate([[0], np.cumsum(kp["lengths"])])
    gp = rng.standard_normal((4, D))
    np.testing.assert_array_equal(grad.pool_tokens(gp, packed, mode="mean", offsets=offsets),
                                  grad.pool_tokens(gp, packed, mode="mean",
                                                   lengths=kp["lengths"]))
    if numba.get_num_threads() < 2:
        pytest.skip("needs at least two Numba threads")
    monkeypatch.setattr(parallel, "PARALLEL_MIN_ELEMENTS", 0)
    threaded = grad.pool_tokens(g, hidden, kw["attention_mask"], modes, weights=kw["weights"])
    for a, b in zip(threaded, want):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("call, exc, fragment", [
    (lambda h, g: grad.pool_tokens(g[:, :2], h), ValueError, "grad_out has shape"),
    (lambda h, g: grad.pool_tokens(g.astype(np.int64), h), TypeError, "grad_out has dtype"),
    (lambda h, g: grad.pool_tokens(g, h.astype(np.int32)), TypeError, "hidden has dtype"),
    (lambda h, g: grad.pool_tokens(g, h, mode="weighted"), ValueError, "needs weights"),
    (lambda h, g: grad.pool_tokens(g, h, mode="bogus"), ValueError, "mode 'bogus'"),
    (lambda h, g: grad.pool_tokens(g, h, nan_policy="skip"), ValueError, "nan_policy"),
    (lambda h, g: grad.pool_tokens(g, h[0], lengths=[1, 1]), ValueError, "lengths add up"),
])
def test_errors(call, exc, fragment):
    h = np.zeros((2, 3, D))
    g = np.zeros((2, D))
    with pytest.raises(exc, match=fragment):
        call(h, g)


def test_a_backend_without_gradient_kernels_says_so():
    from numbapool.grad import tokens

    class NoGrad:  # a backend object with no run_token_grad (the CUDA one, for now)
        pass

    with pytest.raises(NotImplementedError, match="device='cpu'"):
        tokens._runner(NoGrad())


# --------------------------------------------------------------------------- torch autograd


def _torch_pool(torch, x, w, s, modes):
    """The forward's table, in torch, on one sequence's tokens ``x`` (n, D)."""
    n = x.shape[0]
    outs = []
    for m in modes:
        if n == 0:
            outs.append(x.sum(0) * 0)
        elif m == "cls":
            outs.append(x[0])
        elif m == "last":
            outs.append(x[-1])
        elif m == "max":
            outs.append(x.max(0).values)
        elif m == "min":
            outs.append(x.min(0).values)
        elif m == "sum":
            outs.append(x.sum(0))
        elif m == "mean":
            outs.append(x.mean(0))
        elif m == "mean_sqrt_len":
            outs.append(x.sum(0) / n ** 0.5)
        elif m == "weighted_mean":
            pos = torch.arange(1, n + 1, dtype=x.dtype)
            outs.append((pos[:, None] * x).sum(0) / pos.sum())
        elif m == "weighted":
            outs.append((w[:, None] * x).sum(0) / w.sum())
        else:
            outs.append((torch.softmax(s, 0)[:, None] * x).sum(0))
    return torch.cat(outs)


@pytest.mark.parametrize("form", ["left", "packed"])
def test_matches_torch_autograd(form):
    torch = pytest.importorskip("torch")
    from token_grad_reference import token_positions

    rng = np.random.default_rng(6)
    hidden, kw = _inputs(rng, form == "packed", form)
    modes = ALL_MODES
    g = rng.standard_normal((4, D * len(modes)))
    h = torch.tensor(hidden, requires_grad=True)
    w = torch.tensor(kw["weights"], requires_grad=True)
    s = torch.tensor(kw["scores"], requires_grad=True)
    seqs = token_positions(hidden, kw.get("attention_mask"), kw.get("lengths"))
    rows = []
    for where, idx in seqs:
        x = torch.stack([h[i] for i in where]) if where else h.reshape(-1, D)[:0]
        rows.append(_torch_pool(torch, x, w.reshape(-1)[idx], s.reshape(-1)[idx], modes))
    torch.stack(rows).backward(torch.tensor(g))
    got = grad.pool_tokens(g, hidden, mode=modes, **kw)
    for ours, ref in zip(got, (h.grad, w.grad, s.grad)):
        np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-12, atol=1e-12)
