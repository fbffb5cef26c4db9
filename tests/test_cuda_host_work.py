"""CUDA calls do no host work on the hot path: no copies, no waits, one allocation.

Counted under Numba's CUDA simulator with :func:`cuda_counting.host_work` (the simulator
process of tests/test_isolated_runs.py runs this module; it skips where CUDA is not usable).
A call on device inputs whose plan was seen before copies nothing either way, waits for
nothing, launches with no host array, and allocates only its result (nothing with
``out=``), on the stream the caller named.
"""

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")

import numbapool as nbp  # noqa: E402

if not nbp.cuda_available():
    pytest.skip("no CUDA GPU, and NUMBA_ENABLE_CUDASIM is not set", allow_module_level=True)

from numbapool import dispatch  # noqa: E402
from numbapool._cuda import backend, compat  # noqa: E402

from cuda_counting import NONE_EXPECTED, host_work  # noqa: E402


@pytest.fixture(autouse=True)
def small_grids(monkeypatch):
    monkeypatch.setattr(compat, "THREADS_PER_BLOCK", 32)
    monkeypatch.setattr(compat, "MAX_BLOCKS", 2)


def _device(shape, dtype=np.float32, seed=0):
    return cuda.to_device(np.random.default_rng(seed).random(shape).astype(dtype))


SPATIAL_CALLS = [
    ("max_pool2d", lambda x, **kw: nbp.max_pool2d(x, 2, **kw), 1),
    ("max_pool2d indices", lambda x, **kw: nbp.max_pool2d(x, 3, 2, 1, return_indices=True,
                                                          **kw), 2),
    ("avg_pool2d channels-last", lambda x, **kw: nbp.avg_pool2d(x, 3, 2, 1,
                                                                layout="channels_last", **kw), 1),
    ("lp_pool2d", lambda x, **kw: nbp.lp_pool2d(x, 2.0, 2, **kw), 1),
    ("adaptive_avg_pool2d", lambda x, **kw: nbp.adaptive_avg_pool2d(x, 3, **kw), 1),
    ("global_max_pool2d", lambda x, **kw: nbp.global_max_pool2d(x, **kw), 1),
    ("global_avg_pool2d", lambda x, **kw: nbp.global_avg_pool2d(x, **kw), 1),
    ("gem_pool2d", lambda x, **kw: nbp.gem_pool2d(x, **kw), 1),
]


@pytest.mark.parametrize("name, call, results", SPATIAL_CALLS, ids=[c[0] for c in SPATIAL_CALLS])
def test_repeated_spatial_call_does_no_host_work(name, call, results):
    x = _device((2, 3, 7, 6))
    first = call(x)  # compiles, and copies the plan's tables to the device once
    with host_work() as counts:
        again = call(x)
    assert {k: counts[k] for k in NONE_EXPECTED} == dict.fromkeys(NONE_EXPECTED, 0), counts
    assert counts["alloc"] == results, counts
    assert counts["launches"] >= 1
    pairs = zip(first, again) if results == 2 else [(first, again)]
    for a, b in pairs:
        np.testing.assert_array_equal(a.copy_to_host(), b.copy_to_host())


def test_out_means_no_allocation_at_all():
    x = _device((2, 3, 8, 8))
    out = cuda.device_array((2, 3, 4, 4), np.float32)
    nbp.max_pool2d(x, 2, out=out)
    with host_work() as counts:
        assert nbp.max_pool2d(x, 2, out=out) is out
    assert counts["alloc"] == 0 and counts["to_device"] == counts["to_host"] == 0, counts
    np.testing.assert_array_equal(out.copy_to_host(), nbp.max_pool2d(x.copy_to_host(), 2))


def test_a_new_geometry_copies_its_tables_once():
    x = _device((1, 2, 9, 9))
    with host_work() as counts:
        nbp.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
    assert 1 <= counts["to_device"] <= 2 and counts["to_host"] == 0, counts
    with host_work() as counts:
        nbp.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
    assert counts["to_device"] == 0, counts


def test_table_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(backend, "TABLE_CACHE_SIZE", 2)
    x = _device((1, 1, 12, 12))
    for k in (2, 3, 4, 5):
        got = nbp.max_pool2d(x, k).copy_to_host()
        np.testing.assert_array_equal(got, nbp.max_pool2d(x.copy_to_host(), k))
    assert len(backend._TABLES) <= 2


def test_launches_go_on_the_named_stream(monkeypatch):
    seen = []
    run = backend.Launch.run
    monkeypatch.setattr(backend.Launch, "run",
                        lambda self, stream=0: (seen.append(stream), run(self, stream))[1])
    x = _device((1, 2, 6, 6))
    stream = cuda.stream()
    got = nbp.max_pool2d(x, 2, stream=stream)
    assert seen and all(s is stream for s in seen)
    np.testing.assert_array_equal(got.copy_to_host(), nbp.max_pool2d(x.copy_to_host(), 2))
    seen.clear()
    nbp.max_pool2d(x, 2)
    assert seen and all(s == 0 for s in seen)  # Numba arrays: the default stream


def test_device_cuda_copies_over_on_the_named_stream():
    stream = cuda.stream()
    x = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4)
    got = nbp.max_pool2d(x, 2, device="cuda", stream=stream)
    np.testing.assert_array_equal(got.copy_to_host(), nbp.max_pool2d(x, 2))


@pytest.mark.parametrize("bad, error, fragment", [
    ("default", TypeError, "stream must be None, 0, a Numba stream"),
    (1.5, TypeError, "stream must be None"),
])
def test_bad_streams_are_refused(bad, error, fragment):
    with pytest.raises(error, match=fragment):
        nbp.max_pool2d(_device((1, 1, 4, 4)), 2, stream=bad)


def test_stream_on_the_cpu_is_refused():
    with pytest.raises(ValueError, match="stream is for calls that run on CUDA"):
        nbp.max_pool2d(np.ones((1, 1, 4, 4), np.float32), 2, stream=cuda.stream())
    with pytest.raises(ValueError, match="stream is for calls that run on CUDA"):
        nbp.max_pool2d(_device((1, 1, 4, 4)), 2, device="cpu", stream=0)


def test_zero_is_the_default_stream():
    assert dispatch.cuda_stream(0, dispatch._NumbaFamily()) == 0
