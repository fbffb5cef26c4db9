"""Where the parallel kernels start to pay: serial vs parallel on growing inputs.

``numbapool._cpu.parallel.PARALLEL_MIN_ELEMENTS`` is set from this benchmark: below the
crossover, waking the thread pool costs more than it saves.  Run::

    python -m pytest benchmarks/bench_crossover.py --benchmark-only --benchmark-group-by=param:size
"""

import numpy as np
import pytest

import numbapool as nbp
from numbapool._cpu import parallel

SIZES = [1 << p for p in range(10, 21, 2)]  # elements of a (1, C, 32, 32) float32 input
OPS = {"max2d_k2": lambda x: nbp.max_pool2d(x, 2), "avg2d_k3s2p1": lambda x: nbp.avg_pool2d(x, 3, 2, 1)}


@pytest.mark.parametrize("mode", ["serial", "parallel"])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("size", SIZES)
def test_crossover(benchmark, monkeypatch, size, op, mode):
    x = np.random.default_rng(0).standard_normal((1, size // 1024, 32, 32), dtype=np.float32)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_ELEMENTS", 0 if mode == "parallel" else 1 << 62)
    benchmark.group = f"{op} {size} elements"
    benchmark(OPS[op], x)
