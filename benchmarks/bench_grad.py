"""Gradient benchmarks: numbapool.grad against PyTorch CPU autograd, in the same layout.

Each group is one case, layout and phase, holding ``numbapool`` and ``torch``:

* ``backward``: the gradient alone.  numbapool's is ``grad.f(grad_out, x, ...)`` (max pools
  given the forward's indices); torch's is its aten backward op called directly
  (``max_pool2d_with_indices_backward`` with the saved indices, ``avg_pool2d_backward``,
  ``_adaptive_avg_pool2d_backward``), so neither side pays for autograd's bookkeeping;
* ``forward_backward``: the forward (max pools with indices) then the backward; torch's is
  a forward with ``requires_grad`` and ``torch.autograd.grad``.

Input: float32 (32, 64, 112, 112), NCHW or channels-last (numbapool's ``(N, H, W, C)``, the
same memory as torch's channels_last tensor).

``test_bench_suite_cases`` adds the rest of the benchmark suite's cases on its shapes:
adaptive and global max pools of that image (both layouts), max and average 3-D pools of
(4, 32, 64, 64, 64), a 1-D max pool of (64, 256, 4096), and ``pool_tokens`` (mean, max,
and cls+mean+max) of (64, 256, 768) hidden states with random lengths, against torch
autograd of sentence-transformers' formulas.  There torch's backward alone is
``torch.autograd.grad`` on a kept graph.  ``NUMBAPOOL_BENCH_QUICK=1`` swaps in tiny
shapes::

    python -m pytest benchmarks/bench_grad.py --benchmark-only --benchmark-json=grad.json
"""

import os

# as in bench_tokens.py: OpenMP threads that spin after a region starve the other runtime
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import numbapool as nbp  # noqa: E402
from numbapool import grad  # noqa: E402

from conftest import QUICK  # noqa: E402

SHAPE = (2, 4, 12, 12) if QUICK else (32, 64, 112, 112)
CASES = {  # name: (numbapool function, positional arguments)
    "max_pool2d_2x2": ("max_pool2d", (2,)),
    "max_pool2d_3x3_s2_p1": ("max_pool2d", (3, 2, 1)),
    "avg_pool2d_2x2": ("avg_pool2d", (2,)),
    "avg_pool2d_3x3_s2_p1": ("avg_pool2d", (3, 2, 1)),
    "adaptive_avg_pool2d_7": ("adaptive_avg_pool2d", (7,)),
    "global_avg_pool2d": ("global_avg_pool2d", ()),
}
LAYOUTS = ("channels_first", "channels_last")
PHASES = ("backward", "forward_backward")
IMPLS = ("numbapool", "torch")
_X = {}


def _x():
    if "x" not in _X:
        _X["x"] = np.random.default_rng(0).standard_normal(SHAPE, dtype=np.float32)
    return _X["x"]


def _numbapool(case, layout, phase):
    name, args = CASES[case]
    x = _x()
    if layout == "channels_last":
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    forward, backward = getattr(nbp, name), getattr(grad, name)
    extreme = name.startswith("max")
    kwargs = dict(layout=layout)
    y = forward(x, *args, return_indices=True, **kwargs) if extreme else forward(x, *args,
                                                                                 **kwargs)
    g = np.ones((y[0] if extreme else y).shape, np.float32)

    def run_backward():
        if extreme:
            return backward(g, x, *args, indices=y[1], **kwargs)
        return backward(g, x, *args, **kwargs)

    def run_both():
        if extreme:
            _, i = forward(x, *args, return_indices=True, **kwargs)
            return backward(g, x, *args, indices=i, **kwargs)
        forward(x, *args, **kwargs)
        return backward(g, x, *args, **kwargs)

    return run_backward if phase == "backward" else run_both


def _torch(torch, case, layout, phase):
    F = torch.nn.functional
    aten = torch.ops.aten
    name, args = CASES[case]
    x = torch.from_numpy(_x())
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    if name == "max_pool2d":
        k, s, p = (args[0], args[0], 0) if len(args) == 1 else args

        def fwd(t):
            return F.max_pool2d(t, k, s, p, return_indices=True)

        y, i = fwd(x)
        g = torch.ones_like(y)

        def back():
            return aten.max_pool2d_with_indices_backward(g, x, [k, k], [s, s], [p, p], [1, 1],
                                                         False, i)
    elif name == "avg_pool2d":
        k, s, p = (args[0], args[0], 0) if len(args) == 1 else args

        def fwd(t):
            return (F.avg_pool2d(t, k, s, p),)

        y = fwd(x)[0]
        g = torch.ones_like(y)

        def back():
            return aten.avg_pool2d_backward(g, x, [k, k], [s, s], [p, p], False, True, None)
    else:
        size = args[0] if args else 1

        def fwd(t):
            return (F.adaptive_avg_pool2d(t, size),)

        y = fwd(x)[0]
        g = torch.ones_like(y)

        def back():
            return aten._adaptive_avg_pool2d_backward(g, x)

    def both():
        return torch.autograd.grad(fwd(x)[0], x, g)

    def run(f):
        def call():
            with torch.no_grad() if f is back else torch.enable_grad():
                return f()
        return call

    return run(back) if phase == "backward" else run(both)


COMBOS = [(c, lay, ph, impl) for c in CASES for lay in LAYOUTS for ph in PHASES for impl in IMPLS]


@pytest.mark.parametrize("case,layout,phase,impl", COMBOS,
                         ids=["-".join(c) for c in COMBOS])
def test_bench(benchmark, case, layout, phase, impl, request):
    benchmark.group = f"{case}-{layout}-{phase}"
    if impl == "torch":
        torch = request.getfixturevalue("torch_cpu")
        call = _torch(torch, case, layout, phase)
    else:
        call = _numbapool(case, layout, phase)
    call()  # compiles numbapool (and warms torch) outside the timing
    benchmark(call)


# --------------------------------------------------------------------------- the rest of the suite
# The suite's other cases (numbapool.bench.cases): adaptive and global max, 3-D, 1-D and
# tokens, on its shapes.  torch's side is autograd here (``torch.autograd.grad`` on a kept
# graph for the backward alone), as these ops have no public backward to call directly.

MORE = {  # name: (input kind, numbapool function, positional args, torch forward)
    "adaptive_max_pool2d_7": ("image", "adaptive_max_pool2d", (7,),
                              lambda F, t: F.adaptive_max_pool2d(t, 7)),
    "global_max_pool2d": ("image", "global_max_pool2d", (),
                          lambda F, t: F.adaptive_max_pool2d(t, 1)),
    "max_pool3d_2": ("volume", "max_pool3d", (2,), lambda F, t: F.max_pool3d(t, 2)),
    "avg_pool3d_2": ("volume", "avg_pool3d", (2,), lambda F, t: F.avg_pool3d(t, 2)),
    "max_pool1d_3s2": ("signal", "max_pool1d", (3, 2), lambda F, t: F.max_pool1d(t, 3, 2)),
    "tokens_mean": ("tokens", "pool_tokens", ("mean",), None),
    "tokens_max": ("tokens", "pool_tokens", ("max",), None),
    "tokens_multi": ("tokens", "pool_tokens", (("cls", "mean", "max"),), None),
}
_SHAPES = {"image": SHAPE, "volume": (1, 2, 8, 8, 8) if QUICK else (4, 32, 64, 64, 64),
           "signal": (2, 4, 64) if QUICK else (64, 256, 4096),
           "tokens": (4, 16, 32) if QUICK else (64, 256, 768)}
MORE_COMBOS = [(c, lay, ph, impl) for c, (kind, *_) in MORE.items()
               for lay in (LAYOUTS if kind == "image" else ("channels_first",))
               for ph in PHASES for impl in IMPLS]


def _more_inputs(kind):
    """float32 input of ``kind`` (for tokens: hidden states and a right-padding mask)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(_SHAPES[kind], dtype=np.float32)
    if kind != "tokens":
        return x, None
    b, length, _ = x.shape
    lengths = rng.integers(1, length + 1, size=b)
    return x, np.arange(length)[None, :] < lengths[:, None]


def _numbapool_more(case, layout, phase):
    kind, name, args, _ = MORE[case]
    x, mask = _more_inputs(kind)
    if kind == "tokens":
        g = np.ones(nbp.pool_tokens(x, mask, *args).shape, np.float32)

        def back():
            return grad.pool_tokens(g, x, mask, *args)

        def both():
            nbp.pool_tokens(x, mask, *args)
            return back()

        return back if phase == "backward" else both
    if layout == "channels_last":
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    forward, backward = getattr(nbp, name), getattr(grad, name)
    # the global max returns no indices: its gradient finds the winners again
    indexed = "max" in name and not name.startswith("global")
    y, idx = forward(x, *args, layout=layout, return_indices=True) if indexed else (
        forward(x, *args, layout=layout), None)
    g = np.ones(y.shape, np.float32)
    extra = {} if idx is None else {"indices": idx}

    def both():
        if idx is None:
            forward(x, *args, layout=layout)
            return backward(g, x, *args, layout=layout)
        _, i = forward(x, *args, layout=layout, return_indices=True)
        return backward(g, x, *args, layout=layout, indices=i)

    if phase == "backward":
        return lambda: backward(g, x, *args, layout=layout, **extra)
    return both


def _torch_tokens(torch, modes, h, m):
    """sentence-transformers' formulas: masked mean, max over the kept tokens, cls."""
    keep = m[:, :, None]
    parts = {"cls": lambda: h[:, 0],
             "mean": lambda: (h * keep).sum(1) / keep.sum(1).clamp(min=1e-9),
             "max": lambda: h.masked_fill(~keep, float("-inf")).amax(1)}
    modes = (modes,) if isinstance(modes, str) else modes
    return torch.cat([parts[k]() for k in modes], dim=-1)


def _torch_more(torch, case, layout, phase):
    kind, _, args, forward = MORE[case]
    x, mask = _more_inputs(kind)
    x = torch.from_numpy(x)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    if kind == "tokens":
        m = torch.from_numpy(mask)

        def fwd():
            return _torch_tokens(torch, args[0], x, m)
    else:
        def fwd():
            return forward(torch.nn.functional, x)
    y = fwd()
    g = torch.ones_like(y)
    if phase == "backward":
        return lambda: torch.autograd.grad(y, x, g, retain_graph=True)
    return lambda: torch.autograd.grad(fwd(), x, g)


@pytest.mark.parametrize("case,layout,phase,impl", MORE_COMBOS,
                         ids=["-".join(c) for c in MORE_COMBOS])
def test_bench_suite_cases(benchmark, case, layout, phase, impl, request):
    benchmark.group = f"{case}-{layout}-{phase}"
    if impl == "torch":
        call = _torch_more(request.getfixturevalue("torch_cpu"), case, layout, phase)
    else:
        call = _numbapool_more(case, layout, phase)
    call()  # compiles numbapool (and warms torch) outside the timing
    benchmark(call)
