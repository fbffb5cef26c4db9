"""The benchmark suite: every case of :mod:`numbapool.bench`, four implementations each.

Each case is one pytest-benchmark group holding ``numbapool``, ``torch`` (PyTorch CPU, same
layout and thread count), ``numpy`` and ``roofline`` (a parallel copy of the bytes the op
must move), so the ratios within a group come from one run::

    python -m pytest benchmarks/bench_suite.py --benchmark-only --benchmark-json=bench.json
    python benchmarks/report.py bench.json          # writes RESULTS.md and results.png
"""

import numpy as np
import pytest

from numbapool import bench

from conftest import QUICK, copy_roofline

CASES = {case.name: case for case in bench.cases(quick=QUICK)}
_INPUTS = {}


def _inputs(name):
    if name not in _INPUTS:
        _INPUTS.clear()  # keep one case's (large) inputs alive at a time
        _INPUTS[name] = CASES[name].make()
    return _INPUTS[name]


PAIRS = [(case, impl) for case in CASES for impl in bench.IMPLS]


@pytest.mark.parametrize("case,impl", PAIRS, ids=[f"{c}-{i}" for c, i in PAIRS])
def test_bench(benchmark, case, impl, request):
    spec = CASES[case]
    inputs = _inputs(case)
    benchmark.group = case
    if impl == "numbapool":
        spec.ours(inputs)  # compile outside the timing
        benchmark.extra_info["peak_extra_bytes"] = bench.peak_extra_bytes(lambda: spec.ours(inputs))
        result = benchmark(spec.ours, inputs)
        first = result[0] if isinstance(result, tuple) else result
        assert np.all(np.isfinite(first))
    elif impl == "torch":
        if spec.torch is None:
            pytest.skip("no PyTorch formulation")
        torch = request.getfixturevalue("torch_cpu")
        benchmark(spec.torch, torch, inputs)
    elif impl == "numpy":
        if spec.numpy is None:
            pytest.skip("no NumPy formulation")
        benchmark(spec.numpy, inputs)
    else:
        benchmark.extra_info["bytes"] = spec.moved_bytes(inputs)
        benchmark(copy_roofline(benchmark.extra_info["bytes"]))
