"""Cold start: the first calls of a fresh process whose kernel cache is empty.

Each case runs one public function on one dtype in a new process with an empty
``NUMBA_CACHE_DIR``, as a new user (or a fresh container, CI job or dask worker) would,
and records three phases: ``import numbapool``, the first call on a small input (which
compiles its kernels) and the first call on a large input (the same kernels, now on
several threads).  pytest-benchmark times the whole process; the phases are in each
case's ``extra_info`` and ``benchmarks/report.py`` tabulates them.  A warm cache's start
is ``bench_startup.py``.

    python -m pytest benchmarks/bench_coldstart.py --benchmark-only --benchmark-json=cold.json
    python benchmarks/report.py cold.json   # (or merged into the suite's run)
"""

import json
import subprocess
import sys
import tempfile

import pytest

from conftest import QUICK

#: The child: times import, a small first call and a large first call; prints JSON.
CHILD = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import numbapool as nbp
t1 = time.perf_counter()
name, dtype = sys.argv[1], np.dtype(sys.argv[2])
rng = np.random.default_rng(0)
def images(shape):
    return rng.standard_normal(shape).astype(dtype)
def tokens(b, length, d):
    mask = np.arange(length)[None, :] < rng.integers(1, length + 1, b)[:, None]
    return rng.standard_normal((b, length, d)).astype(dtype), mask
calls = {
    "max_pool2d": lambda x: nbp.max_pool2d(x, 2),
    "avg_pool2d": lambda x: nbp.avg_pool2d(x, 3, 2, 1),
    "adaptive_avg_pool2d": lambda x: nbp.adaptive_avg_pool2d(x, 7),
    "global_max_pool": lambda x: nbp.global_max_pool(x),
    "global_avg_pool": lambda x: nbp.global_avg_pool(x),
    "pool_tokens": lambda x: nbp.pool_tokens(*x, "mean"),
}
small = tokens(2, 5, 8) if name == "pool_tokens" else images((1, 4, 14, 14))
large = tokens(64, 256, 384) if name == "pool_tokens" else images((8, 64, 112, 112))
t2 = time.perf_counter()
calls[name](small)
t3 = time.perf_counter()
calls[name](large)
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "small": t3 - t2, "large": t4 - t3}))
"""

FUNCTIONS = ("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "global_max_pool",
             "global_avg_pool", "pool_tokens")
CASES = [("global_max_pool", "float32")] if QUICK else [
    (f, d) for d in ("float32", "float64") for f in FUNCTIONS]


def cold_run(function, dtype):
    """The phases of one cold process, in seconds."""
    with tempfile.TemporaryDirectory() as cache:
        proc = subprocess.run([sys.executable, "-c", CHILD, function, dtype],
                              env={**__import__("os").environ, "NUMBA_CACHE_DIR": cache},
                              capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("function,dtype", CASES)
def test_cold_first_call(benchmark, function, dtype):
    phases = {}

    def run():
        phases.update(cold_run(function, dtype))

    benchmark.group = "cold start: empty kernel cache, fresh process"
    benchmark.pedantic(run, rounds=1, iterations=1)
    assert set(phases) == {"import", "small", "large"}
    benchmark.extra_info.update(function=function, dtype=dtype, **phases)
