"""The spatial pools called from 8 Python threads at once give the single-threaded results.

Large inputs are split across numbapool's threads (the threshold is lowered to 2**16
elements here, below their size), small ones run on the calling thread.
"""

import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import numbapool as nbp
from conftest import make_values

THREADS = 8


@pytest.fixture(autouse=True)
def _split_large_inputs(monkeypatch):
    from numbapool._cpu import parallel

    monkeypatch.setattr(parallel, "PARALLEL_MIN_ELEMENTS", 1 << 16)


def _calls():
    rng = np.random.default_rng(21)
    big = make_values(rng, (4, 8, 64, 48), "float32", "nan")  # 98304 elements: parallel
    big_cl = np.ascontiguousarray(np.moveaxis(big, 1, -1))
    big16 = big.astype(np.float16)
    small = make_values(rng, (2, 3, 9, 7), "float64")
    small_int = make_values(rng, (2, 3, 9, 7), "int16")
    return [
        (nbp.max_pool2d, (big, 3, 2, 1), dict(return_indices=True)),
        (nbp.max_pool2d, (big, 2), dict(nan_policy="omit")),
        (nbp.min_pool, (big_cl, (3, 3), 2, 1), dict(layout="channels_last")),
        (nbp.avg_pool2d, (big, 3, 2, 1), dict(nan_policy="omit")),
        (nbp.avg_pool, (big_cl, (2, 2)), dict(layout="channels_last")),
        (nbp.adaptive_avg_pool2d, (big, 7), {}),
        (nbp.global_max_pool, (big16,), dict(nan_policy="omit")),
        (nbp.max_pool2d, (big16, 2), dict(return_indices=True)),
        (nbp.lp_pool2d, (np.abs(big), 2.0, 2), {}),
        (nbp.max_pool2d, (small, 3, 1, 1), dict(return_indices=True)),
        (nbp.avg_pool2d, (small, 2), dict(ceil_mode=True)),
        (nbp.adaptive_max_pool2d, (small_int, (4, 5)), {}),
        (nbp.gem_pool, (small,), {}),
    ]


def _same(a, b):
    if isinstance(a, tuple):
        return all(_same(x, y) for x, y in zip(a, b))
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def test_threads_match_single_threaded():
    calls = _calls()
    expected = [f(*args, **kwargs) for f, args, kwargs in calls]

    def worker(seed):
        order = list(range(len(calls))) * 3
        random.Random(seed).shuffle(order)
        return [(i, calls[i][0](*calls[i][1], **calls[i][2])) for i in order]

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(worker, range(THREADS)))
    for per_thread in results:
        for i, got in per_thread:
            assert _same(got, expected[i]), calls[i][0].__name__


def test_threads_with_out():
    """Each thread writes its own ``out``; no thread sees another's result."""
    rng = np.random.default_rng(22)
    xs = [make_values(rng, (2, 8, 64, 64), "float32") for _ in range(THREADS)]
    expected = [nbp.avg_pool2d(x, 3, 2, 1) for x in xs]
    outs = [np.empty_like(e) for e in expected]

    def worker(i):
        for _ in range(5):
            nbp.avg_pool2d(xs[i], 3, 2, 1, out=outs[i])
            assert np.array_equal(outs[i], expected[i])
        return True

    with ThreadPoolExecutor(THREADS) as pool:
        assert all(pool.map(worker, range(THREADS)))
