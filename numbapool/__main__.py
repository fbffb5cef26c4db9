"""Command line: ``python -m numbapool {demo,bench,warm,info}``.

Run ``python -m numbapool --help`` (or ``COMMAND --help``) for what each command does.
"""

from __future__ import annotations

import argparse
import sys
import time

# PyTorch CPU is what the benchmark compares with; the README's install commands pin it too
TORCH_REQUIREMENT = "torch==2.13.0"

DESCRIPTION = "numbapool: fast, exact pooling for NumPy and CUDA arrays, built on Numba."

EXAMPLES = """\
examples:
  python -m numbapool demo              a quick look (compiles or loads the kernels)
  python -m numbapool bench --quick     a smoke run of every case in seconds
  python -m numbapool bench             the full comparison (a few minutes)
  python -m numbapool warm              compile the common kernels into the cache
  python -m numbapool warm --all --dtypes float32 float64
  python -m numbapool info              what this environment provides
"""

DEMO_DESCRIPTION = """\
Pool a random float32 (batch, 64, 112, 112) image batch with max, average, adaptive,
global and GeM pooling, and time each call twice: the first call (which compiles the
kernel, or loads it from the on-disk cache) and the best of three warm calls.  Ends with
NumPy's reshape-max of the same 2x2 pool as a point of comparison.
"""

BENCH_DESCRIPTION = f"""\
Time every benchmark case (image, volume, signal and token pooling, float32) with
numbapool, PyTorch CPU (same layout and thread count), NumPy, and a parallel copy of
the bytes the op must read and write (the memory-bandwidth roofline).  Prints a table
of median times, "vs torch" and "vs numpy" speedups, the fraction of the roofline
reached and the extra memory each call needs.  The full sizes take a few minutes.

Without PyTorch the torch column and the speedup over it are missing; install the
CPU build first to see them:
  python -m pip install "{TORCH_REQUIREMENT}"
"""

WARM_DESCRIPTION = """\
Compile the kernels of the common pooling calls (every call numbapool.warm lists with
--all) for the given dtypes into Numba's on-disk kernel cache, so that later processes
load them in a fraction of a second instead of compiling them on first use: for Docker
builds, cluster images and CI caches.  Runs one worker process per core, prints a line
as each call is warmed, then checks that every kernel loads from the cache.  The cache
lives next to the package, or in NUMBA_CACHE_DIR when that is set.
"""

INFO_DESCRIPTION = """\
Print the versions of numbapool, Numba, NumPy and numba-cuda, Numba's thread count
(how many threads a large call runs on) and threading layer, the size above which
kernels run on several threads, whether CUDA (a GPU or Numba's simulator) is
available, and where compiled kernels are cached.
"""


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


def _torch_installed() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def torch_missing_note() -> str:
    """What the benchmark table lacks without PyTorch, and the command that adds it."""
    return ("PyTorch is not installed: the table's torch columns stay empty (-) and there is "
            "no speedup over PyTorch.\nTo compare with it, install its CPU build and run again:"
            f'\n    python -m pip install "{TORCH_REQUIREMENT}"')


def _bench(args) -> int:
    from . import bench

    # said before the run (which takes minutes) and again under the table, where it is read
    have_torch = _torch_installed()
    if not have_torch:
        print(torch_missing_note(), flush=True)
    rows = bench.run(quick=args.quick)
    print(bench.format_table(rows, quick=args.quick))
    if args.quick:
        print("(quick mode: tiny shapes, which time call overhead, not bandwidth, so the table "
              "has no roofline column)")
    if not have_torch:
        print()
        print(torch_missing_note())
    return 0


def _warm(args) -> int:
    from .warm import warm

    warm(args.dtypes, everything=args.all, jobs=args.jobs, progress=sys.stdout)
    return 0


def _info(args) -> int:
    from ._info import info

    for key, value in info().items():
        print(f"{key:24s} {value}")
    return 0


def _parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="python -m numbapool", description=DESCRIPTION,
                                     epilog=EXAMPLES, formatter_class=raw)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands", description="run 'python -m numbapool "
                                "COMMAND --help' for a command's details and options")
    demo = sub.add_parser("demo", help="pool a random image batch, timing each call",
                          description=DEMO_DESCRIPTION, formatter_class=raw)
    demo.add_argument("--batch", type=int, default=8, metavar="N",
                      help="images in the batch (default 8; 1 is enough to warm the cache)")
    demo.set_defaults(func=_demo)
    bench = sub.add_parser("bench", help="benchmark against PyTorch CPU, NumPy and a memory copy",
                           description=BENCH_DESCRIPTION, formatter_class=raw)
    bench.add_argument("--quick", action="store_true",
                       help="tiny shapes: a smoke run of every case in seconds (times call "
                            "overhead, not bandwidth)")
    bench.set_defaults(func=_bench)
    warm = sub.add_parser("warm", help="compile the common kernels into the on-disk cache",
                          description=WARM_DESCRIPTION, formatter_class=raw)
    warm.add_argument("--dtypes", nargs="+", default=["float32"], metavar="DTYPE",
                      help="the input dtypes to compile for (default: float32)")
    warm.add_argument("--all", action="store_true",
                      help="every listed call (channels-last, NaN-omitting, 1-D, 3-D, "
                           "indices, Lp, GeM, all token modes), not only the commonest")
    warm.add_argument("--jobs", type=int, default=None, metavar="N",
                      help="worker processes at once (default: the CPU count)")
    warm.set_defaults(func=_warm)
    info = sub.add_parser("info", help="versions, threads and CUDA availability",
                          description=INFO_DESCRIPTION, formatter_class=raw)
    info.set_defaults(func=_info)
    return parser


def main(argv=None) -> int:
    """Parse ``argv`` (default: the command line) and run the command; returns the exit code."""
    args = _parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
