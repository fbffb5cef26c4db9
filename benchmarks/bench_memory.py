"""Memory of long-signal pools: the peak resident memory a call adds, against its result.

Pooling needs no memory beyond its result and a few row buffers per thread, whatever the
input length; window tables grow with an axis's borders, not its length, and the memos
that keep them are bounded.  Each case records, next to its time:

* ``result_bytes``: what the call returns (it must write that much);
* ``peak_extra_bytes``: the peak resident memory the call adds (Linux; see
  :func:`numbapool.bench.peak_extra_bytes`), result included;
* ``held_after_bytes``: resident memory still held once the result is dropped (memoised
  tables, for instance)::

    python -m pytest benchmarks/bench_memory.py --benchmark-only \\
        --benchmark-columns=median,rounds
    python benchmarks/bench_memory.py          # the same cases as a Markdown table

``NUMBAPOOL_BENCH_QUICK=1`` swaps in short signals (a smoke run of every case).  Inputs
are filled before the call, so that reading them adds no resident pages.
"""

import gc
import sys
import time

import numpy as np
import pytest

import numbapool as nbp
from numbapool.bench import _status_kib, peak_extra_bytes

try:
    from conftest import QUICK
except ImportError:  # run as a script from elsewhere
    QUICK = False

#: (name, shape, dtype, call): long 1-D signals (one plane: the old worst case), a
#: channels-last signal (whose C-contiguous input must not be copied) and windows wider
#: than a task's row buffer.
CASES = [
    ("max1d_k16_indices_int8", (1, 1, 2**28 + 64), np.int8,
     lambda x: nbp.max_pool1d(x, 16, return_indices=True)),
    ("max1d_k256_indices_int8", (1, 1, 2**28 + 64), np.int8,
     lambda x: nbp.max_pool1d(x, 256, return_indices=True)),
    ("max1d_k2_float32", (1, 1, 2**26), np.float32, lambda x: nbp.max_pool1d(x, 2)),
    ("max1d_k3s1p1_float32", (1, 1, 2**23), np.float32, lambda x: nbp.max_pool1d(x, 3, 1, 1)),
    ("avg1d_k3s1p1_float32", (1, 1, 2**23), np.float32, lambda x: nbp.avg_pool1d(x, 3, 1, 1)),
    ("max1d_k2_nlc_float32", (1, 2**23, 8), np.float32,
     lambda x: nbp.max_pool1d(x, 2, layout="channels_last")),
    ("max1d_wide_indices_float32", (1, 1, 2**24), np.float32,  # kernel 2**20, stride 2**19
     lambda x: nbp.max_pool1d(x, x.shape[-1] // 16, x.shape[-1] // 32, return_indices=True)),
]
_QUICK_SCALE = 2**10  # divides the longest axis in quick mode


def make(shape, dtype):
    """The input of a case, filled (resident before the call, unlike zeros)."""
    if QUICK:
        i = int(np.argmax(shape))
        shape = shape[:i] + (max(1, shape[i] // _QUICK_SCALE),) + shape[i + 1:]
    x = np.empty(shape, dtype)
    x.reshape(-1)[:] = np.arange(x.size) % 251
    return x


def measure(call):
    """``(result_bytes, peak_extra_bytes, held_after_bytes)`` of ``call()``, warmed up."""
    call()  # compiles
    gc.collect()
    before = _status_kib("VmRSS")
    results = []
    peak = peak_extra_bytes(lambda: results.append(call()))
    got = results[0] if isinstance(results[0], tuple) else (results[0],)
    result_bytes = sum(a.nbytes for a in got)
    del results, got
    gc.collect()
    held = (_status_kib("VmRSS") - before) * 1024
    return result_bytes, peak, held


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_memory(benchmark, case):
    name, shape, dtype, pool = case
    x = make(shape, dtype)
    result_bytes, peak, held = measure(lambda: pool(x))
    benchmark.extra_info.update(result_bytes=result_bytes, peak_extra_bytes=peak,
                                held_after_bytes=held)
    benchmark.group = f"memory: {name}"
    if peak is not None:
        # the result, and row buffers for every thread: never a copy of the signal
        assert peak - result_bytes < 64 * 2**20, (peak, result_bytes)
    benchmark.pedantic(pool, args=(x,), rounds=3)


def main():
    mib = 2**20
    print("| case | input MiB | result MiB | peak extra MiB | beyond result MiB "
          "| held after MiB | ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, shape, dtype, pool in CASES:
        x = make(shape, dtype)
        result_bytes, peak, held = measure(lambda: pool(x))
        t0 = time.perf_counter()
        pool(x)
        ms = (time.perf_counter() - t0) * 1e3
        peak = float("nan") if peak is None else peak
        print(f"| {name} | {x.nbytes / mib:.0f} | {result_bytes / mib:.1f} | {peak / mib:.1f} "
              f"| {(peak - result_bytes) / mib:.1f} | {held / mib:.1f} | {ms:.0f} |")
        del x
        sys.stdout.flush()


if __name__ == "__main__":
    main()
