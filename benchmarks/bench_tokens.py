"""Token pooling benchmarks: pool_tokens against PyTorch CPU, NumPy and the copy roofline.

Each case is one pytest-benchmark group holding ``numbapool``, ``torch`` (the masked
formulation people write: ``(x*m).sum(1) / m.sum(1).clamp(min=1)`` for the mean,
``masked_fill(-inf).amax(1)`` for the max), ``numpy`` and ``roofline`` (a parallel copy of
the bytes the op must move: the valid tokens it reads plus the result it writes), so the
ratios within a group come from one run::

    python -m pytest benchmarks/bench_tokens.py --benchmark-only --benchmark-json=tokens.json
    python benchmarks/report.py tokens.json --out TOKENS.md

Inputs: float32 hidden states (64, 256, 768) with random lengths in [1, 256] and right
padding (the suite's reference shape), and one unpadded long sequence (1, 16384, 768),
which the kernel splits across threads.  ``NUMBAPOOL_BENCH_QUICK=1`` swaps in tiny shapes.
"""

import os

# Numba's and PyTorch's OpenMP runtimes each keep spinning threads after a parallel region;
# on a machine with few cores they starve each other (Numba calls measured 10-30x slower
# once torch had set its thread count).  Passive waiting has to be set before either
# runtime loads; it made torch faster here too.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from numbapool import bench  # noqa: E402
from numbapool.tokens import pool_tokens  # noqa: E402

from conftest import QUICK, copy_roofline  # noqa: E402

_SHAPES = {"batch": {False: (64, 256, 768), True: (4, 16, 32)},
           "long": {False: (1, 16384, 768), True: (1, 64, 32)}}
CASES = {
    "pool_tokens_mean": ("batch", ["mean"]),
    "pool_tokens_max": ("batch", ["max"]),
    "pool_tokens_cls_mean_max": ("batch", ["cls", "mean", "max"]),
    "pool_tokens_mean_one_long_sequence": ("long", ["mean"]),
}
IMPLS = ("numbapool", "torch", "numpy", "roofline")
_INPUTS = {}


def _make(shape_name):
    shape = _SHAPES[shape_name][QUICK]
    if shape_name == "batch":
        return bench._tokens(shape)()  # random lengths, right padding (the suite's input)
    hidden = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    return {"x": hidden, "mask": np.ones(shape[:2], bool), "read_bytes": hidden.nbytes}


def _inputs(shape_name):
    if shape_name not in _INPUTS:
        _INPUTS.clear()  # keep one shape's (large) inputs alive at a time
        _INPUTS[shape_name] = _make(shape_name)
    return _INPUTS[shape_name]


def _ours(modes):
    mode = modes[0] if len(modes) == 1 else modes
    return lambda i: pool_tokens(i["x"], i["mask"], mode)


PAIRS = [(case, impl) for case in CASES for impl in IMPLS]


@pytest.mark.parametrize("case,impl", PAIRS, ids=[f"{c}-{i}" for c, i in PAIRS])
def test_bench(benchmark, case, impl, request):
    shape_name, modes = CASES[case]
    inputs = _inputs(shape_name)
    benchmark.group = case
    ours = _ours(modes)
    if impl == "numbapool":
        result = ours(inputs)  # compile outside the timing
        benchmark.extra_info["peak_extra_bytes"] = bench.peak_extra_bytes(lambda: ours(inputs))
        result = benchmark(ours, inputs)
        np.testing.assert_allclose(result, bench._np_tokens(modes)(inputs), rtol=1e-4,
                                   atol=1e-5)
    elif impl == "torch":
        torch = request.getfixturevalue("torch_cpu")
        benchmark(bench._torch_tokens(modes), torch, inputs)
    elif impl == "numpy":
        benchmark(bench._np_tokens(modes), inputs)
    else:
        n_out = inputs["x"].shape[0] * inputs["x"].shape[2] * len(modes) * 4
        benchmark.extra_info["bytes"] = int(inputs["read_bytes"] + n_out)
        benchmark(copy_roofline(benchmark.extra_info["bytes"]))
