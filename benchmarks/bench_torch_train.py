"""End-to-end CPU training with numbapool.torch's pooling against torch's own.

* ``stem``: a ResNet-style stem (conv 7x7/2 3->64, batch norm, ReLU, max pool 3x3/s2/p1)
  on (32, 3, 224, 224) float32, so the max pool sees (32, 64, 112, 112).  Each layer is
  timed alone, forward + backward (``layer`` = conv, bn, relu, maxpool), and the whole
  stem too; only the max pool differs between the ``torch`` and ``numbapool`` variants.
* ``train_step``: one SGD step of a small CNN (two conv-bn-relu-maxpool blocks, adaptive
  average pool, linear) on (32, 3, 64, 64), with torch's or numbapool's pooling modules.

Both memory formats (``contiguous`` = NCHW, ``channels_last``).  ``NUMBAPOOL_BENCH_QUICK=1``
swaps in tiny shapes::

    python -m pytest benchmarks/bench_torch_train.py --benchmark-only \\
        --benchmark-group-by=group --benchmark-columns=median,iqr,rounds
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as in bench_tokens.py

import pytest  # noqa: E402

from conftest import QUICK  # noqa: E402

BATCH, SIZE = (2, 32) if QUICK else (32, 224)
STEP_SIZE = 16 if QUICK else 64
FORMATS = ("contiguous", "channels_last")
IMPLS = ("torch", "numbapool")
LAYERS = ("conv", "bn", "relu", "maxpool", "stem")


def _modules(torch, impl):
    if impl == "torch":
        return torch.nn
    import numbapool.torch.nn as nbp_nn

    return nbp_nn


def _fmt(torch, name):
    return torch.channels_last if name == "channels_last" else torch.contiguous_format


def _stem(torch, impl, fmt):
    nn = _modules(torch, impl)
    layers = {"conv": torch.nn.Conv2d(3, 64, 7, 2, 3, bias=False),
              "bn": torch.nn.BatchNorm2d(64), "relu": torch.nn.ReLU(),
              "maxpool": nn.MaxPool2d(3, 2, 1)}
    for m in layers.values():
        m.to(memory_format=_fmt(torch, fmt))
    return layers


def _layer_input(torch, layers, layer, fmt):
    """The input the layer sees in the stem (computed once, without autograd)."""
    x = torch.randn(BATCH, 3, SIZE, SIZE).to(memory_format=_fmt(torch, fmt))
    with torch.no_grad():
        for name in ("conv", "bn", "relu", "maxpool"):
            if name == layer:
                break
            x = layers[name](x)
    return x.requires_grad_()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("layer", LAYERS)
def test_stem(benchmark, torch_cpu, layer, fmt, impl):
    torch = torch_cpu
    torch.manual_seed(0)
    layers = _stem(torch, impl, fmt)
    x = _layer_input(torch, layers, "conv" if layer == "stem" else layer, fmt)
    run = (torch.nn.Sequential(*layers.values()) if layer == "stem" else layers[layer])
    y = run(x)
    g = torch.randn_like(y)

    def step():
        x.grad = None
        run(x).backward(g)

    benchmark.group = f"stem-{layer}-{fmt}"
    benchmark.pedantic(step, rounds=3 if QUICK else 10, warmup_rounds=1)


def _cnn(torch, impl):
    nn = _modules(torch, impl)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
        nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.BatchNorm2d(64), torch.nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
        nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 10))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_train_step(benchmark, torch_cpu, fmt, impl):
    torch = torch_cpu
    torch.manual_seed(0)
    model = _cnn(torch, impl).to(memory_format=_fmt(torch, fmt))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(BATCH, 3, STEP_SIZE, STEP_SIZE).to(memory_format=_fmt(torch, fmt))
    target = torch.randint(0, 10, (BATCH,))

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), target).backward()
        opt.step()

    benchmark.group = f"train_step-{fmt}"
    benchmark.pedantic(step, rounds=3 if QUICK else 10, warmup_rounds=1)
