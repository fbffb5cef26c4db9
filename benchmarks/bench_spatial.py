"""2-D pooling on (32, 64, 112, 112) float32: numbapool vs PyTorch CPU vs the copy roofline.

Run: ``python -m pytest benchmarks/bench_spatial.py --benchmark-only``; each case is one
benchmark group, so the ratios within a group come from one run.
"""

import numpy as np
import pytest

import numbapool as nbp

from conftest import copy_roofline

SHAPE = (32, 64, 112, 112)

# name -> (numbapool call, torch call, output elements per input element)
CASES = {
    "max2d_k2_nchw": (lambda x: nbp.max_pool2d(x, 2),
                      lambda F, t: F.max_pool2d(t, 2), 0.25),
    "max2d_k3s2p1_nchw": (lambda x: nbp.max_pool2d(x, 3, 2, 1),
                          lambda F, t: F.max_pool2d(t, 3, 2, 1), 0.25),
    "avg2d_k2_nchw": (lambda x: nbp.avg_pool2d(x, 2),
                      lambda F, t: F.avg_pool2d(t, 2), 0.25),
    "avg2d_k3s2p1_nchw": (lambda x: nbp.avg_pool2d(x, 3, 2, 1),
                          lambda F, t: F.avg_pool2d(t, 3, 2, 1), 0.25),
}


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).standard_normal(SHAPE, dtype=np.float32)


@pytest.mark.parametrize("case", CASES)
def test_numbapool(benchmark, x, case):
    ours, _, _ = CASES[case]
    benchmark.group = case
    result = benchmark(ours, x)
    assert result.shape[:2] == SHAPE[:2]


@pytest.mark.parametrize("case", CASES)
def test_torch(benchmark, x, case, torch_cpu):
    _, theirs, _ = CASES[case]
    benchmark.group = case
    t = torch_cpu.from_numpy(x)
    benchmark(theirs, torch_cpu.nn.functional, t)


@pytest.mark.parametrize("case", CASES)
def test_roofline(benchmark, x, case):
    _, _, out_ratio = CASES[case]
    benchmark.group = case
    benchmark(copy_roofline(int(x.nbytes * (1 + out_ratio))))
