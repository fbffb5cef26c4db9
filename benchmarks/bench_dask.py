"""A large dask volume reduced 8x per axis on a two-worker ``distributed`` cluster.

``block_reduce(x, 8)`` (the mean of 8x8x8 blocks) against
``dask.array.coarsen(np.mean, x, {0: 8, 1: 8, 2: 8})``, the blocks-only baseline, on the
same ``LocalCluster`` (2 worker processes, 1 thread each, loopback).  The input is
generated lazily in the workers, so both sides pay for generating it: by default
(``random``) with ``da.random.default_rng(0)`` (``random`` for floats, ``integers`` for
uint8, about 1.4 GB/s on two workers), or with ``ramp``, a pattern written in one pass per
chunk that costs little more than the memory it fills (a stand-in for data arriving from
storage).  The ``generate`` case runs the generation alone (each chunk reduced to one
element), the share of the time neither side can save.  Each case reports, in ``extra_info``, the input's GB/s and the peak
resident memory of the workers (sampled every 50 ms with ``psutil`` in the workers).

Sizes (environment variables)::

    NUMBAPOOL_BENCH_DASK_EDGE=1024     # the cube's edge (2048 with uint8: 8 GiB)
    NUMBAPOOL_BENCH_DASK_DTYPE=float32 # or uint8
    NUMBAPOOL_BENCH_DASK_CHUNK=256     # the chunks' edge (256**3 float32: 64 MiB)
    NUMBAPOOL_BENCH_DASK_SOURCE=random # or ramp

    python -m pytest benchmarks/bench_dask.py --benchmark-only -s

``NUMBAPOOL_BENCH_QUICK=1`` runs a 64**3 volume (a smoke run).
"""

import os
import threading
import time

import numpy as np
import pytest

import numbapool as nbp

from conftest import QUICK

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

EDGE = 64 if QUICK else int(os.environ.get("NUMBAPOOL_BENCH_DASK_EDGE", "1024"))
CHUNK = 32 if QUICK else int(os.environ.get("NUMBAPOOL_BENCH_DASK_CHUNK", "256"))
DTYPE = np.dtype(os.environ.get("NUMBAPOOL_BENCH_DASK_DTYPE", "float32"))
SOURCE = os.environ.get("NUMBAPOOL_BENCH_DASK_SOURCE", "random")
FACTOR = 8


def _ramp_block(block_info=None):
    """One chunk of the ``ramp`` source: ``i + 2j + 3k`` at global position ``(i, j, k)``
    (modulo 256 for uint8), written in one pass (a cheap stand-in for data read from
    storage)."""
    info = block_info[None]
    (i0, i1), (j0, j1), (k0, k1) = info["array-location"]
    dtype = info["dtype"]
    ij = np.add.outer(np.arange(i0, i1), 2 * np.arange(j0, j1)).astype(dtype)
    return np.add(ij[:, :, None], (3 * np.arange(k0, k1)).astype(dtype), dtype=dtype)


def _volume():
    shape, chunks = (EDGE,) * 3, (CHUNK,) * 3
    if SOURCE == "ramp":
        return da.map_blocks(_ramp_block, dtype=DTYPE, chunks=tuple(
            tuple(min(CHUNK, EDGE - s) for s in range(0, EDGE, CHUNK)) for _ in range(3)))
    rng = da.random.default_rng(0)
    if DTYPE.kind == "u":
        return rng.integers(0, 256, shape, dtype=DTYPE, chunks=chunks)
    return rng.random(shape, dtype=DTYPE, chunks=chunks)


IMPLS = {
    "numbapool": lambda x: nbp.block_reduce(x, FACTOR),
    "coarsen": lambda x: da.coarsen(np.mean, x, {0: FACTOR, 1: FACTOR, 2: FACTOR}),
    "generate": lambda x: x.map_blocks(lambda b: b[:1, :1, :1].copy(), chunks=(1,) * 3),
}


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def _rss():
    import psutil

    return psutil.Process().memory_info().rss


class PeakMemory:
    """The largest resident size of each worker while the block runs (sampled)."""

    def __init__(self, client, every=0.05):
        self.client, self.every, self.peak = client, every, {}
        self._stop = threading.Event()

    def _poll(self):
        while not self._stop.is_set():
            for worker, rss in self.client.run(_rss).items():
                self.peak[worker] = max(self.peak.get(worker, 0), rss)
            time.sleep(self.every)

    def __enter__(self):
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


@pytest.mark.parametrize("impl", IMPLS)
def test_block_mean_8x8x8(benchmark, client, impl):
    benchmark.group = f"dask-mean8-{EDGE}^3-{DTYPE.name}-{SOURCE}"
    x = _volume()
    client.compute(IMPLS[impl](_volume()[:CHUNK, :CHUNK, :CHUNK]), sync=True)  # warm: kernels
    client.run(__import__("gc").collect)
    with PeakMemory(client) as memory:
        result = benchmark.pedantic(lambda: client.compute(IMPLS[impl](x), sync=True),
                                    rounds=1 if not QUICK else 2, iterations=1)
    seconds = benchmark.stats.stats.mean
    benchmark.extra_info.update(
        input_gb=x.nbytes / 1e9, gb_per_s=x.nbytes / 1e9 / seconds,
        peak_worker_rss_gb=max(memory.peak.values()) / 1e9)
    print(f"\n{impl}: {seconds:.2f} s, {x.nbytes / 1e9 / seconds:.2f} GB/s of input, "
          f"peak worker RSS {max(memory.peak.values()) / 1e9:.2f} GB")
    if impl == "numbapool":
        want = IMPLS["coarsen"](x[:CHUNK, :CHUNK, :CHUNK]).compute()
        np.testing.assert_allclose(result[:CHUNK // FACTOR, :CHUNK // FACTOR, :CHUNK // FACTOR],
                                   want, rtol=1e-5)
