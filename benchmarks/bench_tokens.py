"""Token pooling benchmarks: pool_tokens against PyTorch CPU, NumPy and the copy roofline.

Each case is one pytest-benchmark group holding ``numbapool``, ``torch`` and ``numpy`` (the
masked formulations of :mod:`numbapool.comparisons`: ``(x*m).sum(1) / m.sum(1).clamp(min=1)``
for the mean, ``masked_fill(-inf).amax(1)`` for the max) and ``roofline`` (a parallel copy of
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

from bench_suite import measure  # noqa: E402  (the suite's per-implementation timing)
from conftest import QUICK  # noqa: E402

_SHAPES = {"batch": {False: (64, 256, 768), True: (4, 16, 32)},
           "long": {False: (1, 16384, 768), True: (1, 64, 32)}}
CASES = {  # name: (input shape, mode)
    "pool_tokens_mean": ("batch", "mean"),
    "pool_tokens_max": ("batch", "max"),
    "pool_tokens_cls_mean_max": ("batch", ("cls", "mean", "max")),
    "pool_tokens_mean_one_long_sequence": ("long", "mean"),
}
_INPUTS = {}


def _make(shape_name):
    shape = _SHAPES[shape_name][QUICK]
    if shape_name == "batch":
        return bench.token_inputs(shape)()  # random lengths, right padding (the suite's input)
    hidden = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    return bench.Inputs((hidden, np.ones(shape[:2], bool)), hidden.nbytes)


def _inputs(shape_name):
    if shape_name not in _INPUTS:
        _INPUTS.clear()  # keep one shape's (large) inputs alive at a time
        _INPUTS[shape_name] = _make(shape_name)
    return _INPUTS[shape_name]


def _case(name):
    shape_name, mode = CASES[name]
    return bench.Case(name, "pool_tokens", (mode,), {}, lambda: _make(shape_name))


PAIRS = [(case, impl) for case in CASES for impl in bench.IMPLS]


@pytest.mark.parametrize("case,impl", PAIRS, ids=[f"{c}-{i}" for c, i in PAIRS])
def test_bench(benchmark, case, impl, request):
    spec, inputs = _case(case), _inputs(CASES[case][0])
    result = measure(benchmark, spec, impl, inputs, request)
    if impl == "numbapool":
        np.testing.assert_allclose(result, spec.run("numpy", inputs), rtol=1e-4, atol=1e-5)
