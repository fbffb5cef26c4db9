"""The benchmark suite: every case of :mod:`numbapool.bench`, four implementations each.

Each case is one pytest-benchmark group holding ``numbapool``, ``torch`` (PyTorch CPU, same
layout and thread count), ``numpy`` and ``roofline`` (a parallel copy of the bytes the op
must move), so the ratios within a group come from one run.  The torch and NumPy columns
are the formulations of :mod:`numbapool.comparisons`, called with the case's arguments::

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


def measure(benchmark, case, impl, inputs, request):
    """Time ``impl`` on one case in ``benchmark``; skip when it has no formulation for it."""
    benchmark.group = case.name
    if impl == "roofline":
        benchmark.extra_info["bytes"] = case.moved_bytes(inputs)
        benchmark(copy_roofline(benchmark.extra_info["bytes"]))
        return None
    if impl == "torch":
        request.getfixturevalue("torch_cpu")  # torch's thread count, or a skip without torch
    call = bench.prepared(case, impl, inputs)  # compiles numbapool outside the timing
    if call is None:
        pytest.skip(f"no {impl} formulation of {case.function} with these arguments")
    if impl == "numbapool":
        benchmark.extra_info["peak_extra_bytes"] = bench.peak_extra_bytes(call)
    return benchmark(call)


@pytest.mark.parametrize("case,impl", PAIRS, ids=[f"{c}-{i}" for c, i in PAIRS])
def test_bench(benchmark, case, impl, request):
    result = measure(benchmark, CASES[case], impl, _inputs(case), request)
    if impl == "numbapool":
        first = result[0] if isinstance(result, tuple) else result
        assert np.all(np.isfinite(first))
