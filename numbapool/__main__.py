"""Command line: ``python -m numbapool {demo,bench,info}``.

* ``demo``: pool a random image batch and time each call (first call vs warm);
* ``bench [--quick]``: the benchmark suite against PyTorch CPU, NumPy and the copy roofline;
* ``info``: versions, threading layer, thread count and CUDA availability.
"""

from __future__ import annotations

import argparse
import sys
import time


def _demo(args) -> int:
    import numpy as np

    import numbapool as nbp

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 64, 112, 112), dtype=np.float32)
    print(f"input: float32 {x.shape} ({x.nbytes / 2**20:.0f} MiB), channels-first")
    calls = [
        ("max_pool2d(x, 2)", lambda: nbp.max_pool2d(x, 2)),
        ("max_pool2d(x, 3, 2, 1)", lambda: nbp.max_pool2d(x, 3, 2, 1)),
        ("avg_pool2d(x, 3, 2, 1)", lambda: nbp.avg_pool2d(x, 3, 2, 1)),
        ("adaptive_avg_pool2d(x, 7)", lambda: nbp.adaptive_avg_pool2d(x, 7)),
        ("global_max_pool(x)", lambda: nbp.global_max_pool(x)),
        ("gem_pool(x, p=3)", lambda: nbp.gem_pool(x, 3.0)),
    ]
    print(f"{'call':28s} {'result shape':>20s} {'first call':>11s} {'warm':>9s}")
    for name, call in calls:
        t0 = time.perf_counter()
        result = call()
        first = time.perf_counter() - t0
        warm = min(_timed(call) for _ in range(3))
        print(f"{name:28s} {str(result.shape):>20s} {first:10.2f}s {warm * 1e3:7.1f}ms")
    # the 2x2 max pool written with NumPy, as a point of comparison
    b, c, h, w = x.shape
    t0 = time.perf_counter()
    ref = x.reshape(b, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
    numpy_time = time.perf_counter() - t0
    assert np.array_equal(ref, nbp.max_pool2d(x, 2))
    print(f"NumPy reshape-max of the 2x2 pool: {numpy_time * 1e3:.1f}ms (same values)")
    print("first calls include compiling (or loading cached) kernels; see README")
    return 0


def _timed(call) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def _bench(args) -> int:
    from . import bench

    rows = bench.run(quick=args.quick)
    print(bench.format_table(rows))
    if args.quick:
        print("(quick mode: tiny shapes, which time call overhead, not bandwidth)")
    return 0


def _info(args) -> int:
    from ._info import info

    for key, value in info().items():
        print(f"{key:24s} {value}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m numbapool", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="pool a random image batch and time each call")
    demo.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    demo.set_defaults(func=_demo)
    bench = sub.add_parser("bench", help="run the benchmark suite and print the table")
    bench.add_argument("--quick", action="store_true", help="tiny shapes: a smoke run in seconds")
    bench.set_defaults(func=_bench)
    info = sub.add_parser("info", help="versions, threads, CUDA availability")
    info.set_defaults(func=_info)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
