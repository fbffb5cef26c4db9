"""numbapool.torch's functions against torch.nn.functional: forward and backward, both
memory formats, float32 and float64, gradcheck, no_grad / inference_mode, torch.compile.

Shapes are tiny and the configurations few (each dtype compiles its own kernels); the
values are distinct (a permutation) except in the tests of ties and NaN.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
nt = pytest.importorskip("numbapool.torch")

# (function name, positional arguments after the input, spatial rank)
CASES = [
    ("max_pool1d", (3, 2, 1), 1),
    ("max_pool2d", (3, 2, 1), 2),
    ("max_pool2d", (2, 1, 0, 2, True), 2),  # dilation, ceil_mode
    ("max_pool3d", (2,), 3),
    ("avg_pool2d", (3, 2, 1, True, False), 2),  # ceil_mode, count_include_pad=False
    ("avg_pool2d", (2, 1, 1, False, True, 3), 2),  # divisor_override
    ("avg_pool3d", (2,), 3),
    ("lp_pool2d", (3.0, 2), 2),
    ("lp_pool2d", (2.0, 3, 2, True), 2),  # ceil_mode: torch's partial-window rule
    ("adaptive_max_pool2d", ((3, None),), 2),
    ("adaptive_avg_pool1d", (4,), 1),
    ("adaptive_avg_pool2d", ((3, 2),), 2),
]
SHAPES = {1: (2, 3, 7), 2: (2, 3, 5, 6), 3: (1, 2, 4, 5, 3)}
IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(CASES)]


def _distinct(shape, dtype, positive=False, seed=0):
    """Distinct values (no ties), positive for lp_pool (torch's gradient of x**p at x < 0
    for a non-integer p is NaN)."""
    n = int(np.prod(shape))
    v = np.random.default_rng(seed).permutation(n).reshape(shape) / n
    return torch.tensor(v + 0.1 if positive else v - 0.5, dtype=dtype)


def _input(name, rank, dtype, channels_last=False, seed=0):
    x = _distinct(SHAPES[rank], dtype, name.startswith("lp"), seed)
    if channels_last:
        x = x.to(memory_format=torch.channels_last if rank == 2 else torch.channels_last_3d)
    return x.requires_grad_()


def _first(r):
    return r[0] if isinstance(r, tuple) else r


def _compare(name, args, rank, dtype, fmt):
    """Forward and backward of numbapool.torch's ``name`` and torch's agree."""
    x = _input(name, rank, dtype, fmt == "channels_last")
    x_ref = x.detach().clone().requires_grad_()
    ours = getattr(nt, name)(x, *args)
    ref = getattr(F, name)(x_ref, *args)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(ours, ref, rtol=tol, atol=tol)
    if fmt == "channels_last":
        fmt_ = torch.channels_last if rank == 2 else torch.channels_last_3d
        assert ours.is_contiguous(memory_format=fmt_)
    g = _distinct(ref.shape, dtype, seed=1)
    ours.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=tol, atol=tol)


@pytest.mark.parametrize("name, args, rank", CASES, ids=IDS)
def test_float32_forward_and_backward_match_torch(name, args, rank):
    _compare(name, args, rank, torch.float32, "contiguous")


# channels_last compiles the kernels again for that layout: a few cases, one per kind
LAST_CASES = [CASES[i] for i in (1, 3, 4, 7, 9, 11)]


@pytest.mark.parametrize("name, args, rank", LAST_CASES, ids=[c[0] for c in LAST_CASES])
def test_channels_last_forward_and_backward_match_torch(name, args, rank):
    _compare(name, args, rank, torch.float32, "channels_last")


@pytest.mark.parametrize("name, args, rank", CASES, ids=IDS)
def test_float64_gradcheck_and_torch(name, args, rank):
    _compare(name, args, rank, torch.float64, "contiguous")
    x = _input(name, rank, torch.float64)
    assert torch.autograd.gradcheck(lambda t: _first(getattr(nt, name)(t, *args)), (x,))


@pytest.mark.parametrize("name", ["max_pool2d", "adaptive_max_pool2d"])
def test_return_indices_unbatched_and_unpool(name):
    x = _input("max", 2, torch.float64)[0].detach()  # unbatched (C, H, W)
    args = (3, 2, 1) if name == "max_pool2d" else ((2, 3),)
    v, i = getattr(nt, name)(x, *args, return_indices=True)
    rv, ri = getattr(F, name)(x, *args, return_indices=True)
    torch.testing.assert_close(v, rv)
    assert torch.equal(i, ri)
    if name == "max_pool2d":
        v = v.detach().requires_grad_()
        size = x.shape[-2:]
        up = nt.max_unpool2d(v, i, 3, 2, 1, output_size=size)
        torch.testing.assert_close(up, F.max_unpool2d(v, i, 3, 2, 1, output_size=size))
        # windows that do not overlap: no position is two windows' winner
        v2, i2 = F.max_pool2d(x, 2, return_indices=True)
        assert torch.autograd.gradcheck(
            lambda t: nt.max_unpool2d(t, i2, 2, output_size=size),
            (v2.requires_grad_(),))


@pytest.mark.parametrize("n", [1, 3])
def test_max_unpool_other_ranks(n):
    x = _input("max", n, torch.float64).detach()
    v, i = F.__dict__[f"max_pool{n}d"](x, 2, return_indices=True)
    size = x.shape[-n:]
    got = getattr(nt, f"max_unpool{n}d")(v, i, 2, output_size=size)
    torch.testing.assert_close(got, F.__dict__[f"max_unpool{n}d"](v, i, 2, output_size=size))


def test_ties_route_to_the_winner_as_torch_does():
    x = torch.tensor([[[1.0, 1.0, 0.0, 2.0, 2.0, 2.0, 3.0, 3.0]]], dtype=torch.float64)
    for args in ((2,), (3, 1), (4, 2, 1)):
        a = x.clone().requires_grad_()
        b = x.clone().requires_grad_()
        ours, ref = nt.max_pool1d(a, *args), F.max_pool1d(b, *args)
        torch.testing.assert_close(ours, ref)
        ours.sum().backward()
        ref.sum().backward()
        assert torch.equal(a.grad, b.grad)


def test_nan_routes_to_the_first_nan_of_the_window():
    """torch's CPU kernel takes the last NaN of a window; numbapool the first (its
    contract): the values agree, the NaN windows' gradients go to different NaNs."""
    nan = float("nan")
    x = torch.tensor([[[1.0, nan, 0.0, nan, 2.0, 3.0]]], dtype=torch.float64)
    v, i = nt.max_pool1d(x, 4, 2, 1, return_indices=True)
    rv, ri = F.max_pool1d(x, 4, 2, 1, return_indices=True)
    torch.testing.assert_close(v, rv, equal_nan=True)
    assert i.tolist() == [[[1, 1, 3]]] and ri.tolist() == [[[1, 3, 3]]]
    a = x.clone().requires_grad_()
    nt.max_pool1d(a, 4, 2, 1).sum().backward()
    assert a.grad.tolist() == [[[0.0, 2.0, 0.0, 1.0, 0.0, 0.0]]]


def test_integer_input_and_refusals():
    xi = torch.arange(16).reshape(1, 1, 4, 4)
    assert torch.equal(nt.max_pool2d(xi, 2), F.max_pool2d(xi, 2))
    with pytest.raises(TypeError, match="floating-point"):
        nt.avg_pool2d(xi, 2)
    with pytest.raises(ValueError, match="4-D"):
        nt.max_pool2d(torch.zeros(4, 4), 2)
    with pytest.raises(TypeError, match="bfloat16"):
        nt.max_pool2d(torch.zeros(1, 4, 4, dtype=torch.bfloat16), 2)


def test_no_copy_and_no_grad_modes():
    """A CPU input is read in place; with no gradient wanted no indices are computed."""
    x = _input("avg", 2, torch.float32, channels_last=True).detach()
    view = nt.functional._ops.as_array(x.permute(0, 2, 3, 1))
    assert view.ctypes.data == x.data_ptr() and view.flags.c_contiguous
    ref = F.max_pool2d(x, 3, 2, 1)
    xg = x.clone().requires_grad_()
    with torch.no_grad():
        r = nt.max_pool2d(xg, 3, 2, 1)
        assert not r.requires_grad
        torch.testing.assert_close(r, ref)
    with torch.inference_mode():
        torch.testing.assert_close(nt.max_pool2d(x, 3, 2, 1), ref)
        h = x[:, 0].double()  # float64: the token kernels of test_pool_tokens_gradients
        torch.testing.assert_close(nt.pool_tokens(h, None, "max"), h.amax(1))


def test_pool_tokens_gradients():
    h = _distinct((3, 4, 2), torch.float64).requires_grad_()
    w = torch.rand(3, 4, dtype=torch.float64).add(0.1).requires_grad_()
    s = torch.randn(3, 4, dtype=torch.float64).requires_grad_()
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 1, 1, 0]])
    modes = ["mean", "max", "weighted", "attention", "last"]
    assert torch.autograd.gradcheck(
        lambda a, b, c: nt.pool_tokens(a, mask, modes, weights=b, scores=c), (h, w, s))
    rows = h[mask.bool()].detach().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a: nt.pool_tokens(a, mode=["sum", "cls"], lengths=[2, 4, 2]), (rows,))


def test_torch_compile_fullgraph():
    """The custom ops stay in a compiled graph: fullgraph=True, forward and backward."""
    pytest.importorskip("torch._dynamo")

    def f(x):
        return (nt.max_pool2d(torch.relu(x), 2) * 2).sum()

    x = _input("max", 2, torch.float32).detach()
    try:
        compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    except RuntimeError as exc:  # pragma: no cover - a torch without dynamo support
        pytest.skip(str(exc))
    a = x.clone().requires_grad_()
    b = x.clone().requires_grad_()
    compiled(a).backward()
    f(b).backward()
    torch.testing.assert_close(a.grad, b.grad)
