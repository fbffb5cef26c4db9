"""Gradient benchmarks: numbapool.grad against PyTorch CPU autograd, in the same layout.

Each group is one case, layout and phase, holding ``numbapool`` and ``torch``:

* ``backward``: the gradient alone.  numbapool's is ``grad.f(grad_out, x, ...)`` (max pools
  given the forward's indices); torch's is its aten backward op called directly
  (``max_pool2d_with_indices_backward`` with the saved indices, ``avg_pool2d_backward``,
  ``_adaptive_avg_pool2d_backward``), so neither side pays for autograd's bookkeeping;
* ``forward_backward``: the forward (max pools with indices) then the backward; torch's is
  a forward with ``requires_grad`` and ``torch.autograd.grad``.

Input: float32 (32, 64, 112, 112), NCHW or channels-last (numbapool's ``(N, H, W, C)``, the
same memory as torch's channels_last tensor); ``NUMBAPOOL_BENCH_QUICK=1`` swaps in tiny
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
