"""Compile the common CPU kernels into Numba's on-disk cache ahead of time.

numbapool compiles each kernel on its first use (seconds each) and caches it on disk, so
later processes only load it.  ``python -m numbapool warm`` (or :func:`warm`) pays that
cost up front, in a Docker build, a cluster image or a CI cache step: it calls each
common pooling function once on a tiny input, in parallel worker processes (Numba
compiles one function at a time per process), and then checks in this process that
every kernel loads from the cache, compiling anything a concurrent worker's cache write
lost.  The kernels land where Numba caches them: next to the package, or in
``NUMBA_CACHE_DIR``.

Examples
--------
>>> from numbapool.warm import CALLS, COMMON
>>> set(COMMON) <= set(CALLS)
True
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: The dtypes warmed unless asked otherwise.
DEFAULT_DTYPES = ("float32",)
#: Every dtype the CPU kernels take.
ALL_DTYPES = ("float32", "float64", "float16", "int8", "uint8", "int16", "int32", "int64")


def _image(dtype, layout="channels_first"):
    x = (np.arange(2 * 3 * 6 * 6) % 7).astype(dtype).reshape(2, 3, 6, 6)
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)) if layout == "channels_last" else x


def _tokens(dtype):
    hidden = (np.arange(2 * 5 * 4) % 5).astype(dtype).reshape(2, 5, 4)
    return hidden, np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)


def _spatial(name, *args, layout="channels_first", **kwargs):
    def call(dtype):
        import numbapool as nbp

        return getattr(nbp, name)(_image(dtype, layout), *args, layout=layout, **kwargs)

    return call


def _pool_tokens(modes):
    def call(dtype):
        import numbapool as nbp

        return nbp.pool_tokens(*_tokens(dtype), modes)

    call.floats_only = True  # token pooling takes floating hidden states only
    return call


def _blocks(block_size, func):
    def call(dtype):
        import numbapool as nbp

        volume = (np.arange(4 * 6 * 6) % 5).astype(dtype).reshape(4, 6, 6)
        return nbp.block_reduce(volume, block_size, func)

    return call


def _gradient(name, *args):
    def call(dtype):
        import numbapool as nbp
        from numbapool import grad

        if name == "pool_tokens":
            hidden, mask = _tokens(dtype)
            g = np.ones((hidden.shape[0], hidden.shape[2] * len(args[0])), dtype)
            return grad.pool_tokens(g, hidden, mask, args[0])
        x = _image(dtype)
        y = getattr(nbp, name)(x, *args)
        return getattr(grad, name)(np.ones(y.shape, dtype), x, *args)

    call.floats_only = True  # gradients are floating
    return call


#: Every call this module can warm, by name: one kernel variant each.
CALLS = {
    "max_pool2d 2x2": _spatial("max_pool2d", 2),
    "max_pool2d 3x3/s2/p1": _spatial("max_pool2d", 3, 2, 1),
    "max_pool2d indices": _spatial("max_pool2d", 2, return_indices=True),
    "avg_pool2d 2x2": _spatial("avg_pool2d", 2),
    "avg_pool2d 3x3/s2/p1": _spatial("avg_pool2d", 3, 2, 1),
    "adaptive_avg_pool2d 4": _spatial("adaptive_avg_pool2d", 4),
    "global_avg_pool": _spatial("global_avg_pool"),
    "global_max_pool": _spatial("global_max_pool"),
    "pool_tokens mean": _pool_tokens("mean"),
    "max_pool2d channels_last": _spatial("max_pool2d", 2, layout="channels_last"),
    "avg_pool2d channels_last": _spatial("avg_pool2d", 3, 2, 1, layout="channels_last"),
    "global_max_pool channels_last": _spatial("global_max_pool", layout="channels_last"),
    "max_pool2d omit": _spatial("max_pool2d", 2, nan_policy="omit"),
    "avg_pool2d omit": _spatial("avg_pool2d", 2, nan_policy="omit"),
    "max_pool1d 3/s2": lambda dtype: __import__("numbapool").max_pool1d(
        _image(dtype)[:, :, 0], 3, 2),
    "max_pool3d 2": lambda dtype: __import__("numbapool").max_pool3d(
        _image(dtype)[:, :, None].repeat(2, axis=2), 2),
    "gem_pool": _spatial("gem_pool"),
    "lp_pool2d": _spatial("lp_pool2d", 2.0, 2),
    "pool_tokens all modes": _pool_tokens(("cls", "last", "mean", "max", "min", "sum")),
    "block_reduce mean 2x2": _blocks((1, 2, 2), "mean"),
    "block_reduce max 2x2": _blocks((1, 2, 2), "max"),
    "block_reduce median 2x2x2": _blocks(2, "median"),
    "block_reduce mode 2x2x2": _blocks(2, "mode"),
    "grad max_pool2d": _gradient("max_pool2d", 3, 2, 1),
    "grad avg_pool2d": _gradient("avg_pool2d", 3, 2, 1),
    "grad pool_tokens": _gradient("pool_tokens", ("cls", "mean", "max")),
}
#: The calls warmed without ``--all``: the commonest pools, channels-first.
COMMON = ("max_pool2d 2x2", "max_pool2d 3x3/s2/p1", "avg_pool2d 3x3/s2/p1",
          "adaptive_avg_pool2d 4", "global_avg_pool", "global_max_pool", "pool_tokens mean",
          "block_reduce mean 2x2")


def run_call(name, dtype):
    """Run call ``name`` on ``dtype`` in this process (a worker's job); a call that takes
    floating inputs only is skipped for an integer ``dtype``."""
    call = CALLS[name]
    if getattr(call, "floats_only", False) and np.dtype(dtype).kind != "f":
        return
    call(dtype)


def _worker(name, dtype):
    code = f"from numbapool.warm import run_call; run_call({name!r}, {dtype!r})"
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"warming {name} ({dtype}) failed:\n{done.stderr}")
    return time.perf_counter() - t0


def warm(dtypes=DEFAULT_DTYPES, everything=False, jobs=None, progress=sys.stderr, names=None):
    """Compile the kernels of the common calls (every call of :data:`CALLS` when
    ``everything``, or the calls ``names``) for ``dtypes`` into Numba's on-disk cache.

    Runs ``jobs`` worker processes at once (default: the CPU count), writing a line to
    ``progress`` as each finishes, then loads every kernel here to check the cache.
    Returns ``(jobs_run, compiled_in_check)``: the second is the number of kernels the
    check had to compile again (0 when every worker's cache write survived).

    Calls that do not take a dtype (token pooling of integers) are skipped.
    """
    if names is None:
        names = tuple(CALLS) if everything else COMMON
    unknown = sorted(set(names) - set(CALLS))
    if unknown:
        raise ValueError(f"names: no such call {unknown}; the calls are {sorted(CALLS)}")
    todo = [(name, np.dtype(d).name) for d in dtypes for name in names]
    workers = jobs or os.cpu_count() or 1
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        futures = {pool.submit(_worker, name, dtype): (name, dtype) for name, dtype in todo}
        for n, future in enumerate(futures, 1):
            name, dtype = futures[future]
            seconds = future.result()
            if progress is not None:
                progress.write(f"[{n}/{len(todo)}] {name} ({dtype}): {seconds:.1f} s\n")
                progress.flush()
    compiled = _check(todo)
    if progress is not None:
        progress.write(f"warmed {len(todo)} calls in {time.perf_counter() - t0:.1f} s with "
                       f"{workers} workers; {compiled} kernels compiled again in the check\n")
    return len(todo), compiled


def _check(todo):
    """Run every call here; the number of kernels that did not load from the cache."""
    from numba.core import event

    compiled = []
    depth = [0]

    class Counter(event.Listener):  # counts the outermost compiles: one per kernel
        def on_start(self, ev):
            if depth[0] == 0:
                compiled.append(ev)
            depth[0] += 1

        def on_end(self, ev):
            depth[0] -= 1

    counter = Counter()
    event.register("numba:compile", counter)
    try:
        for name, dtype in todo:
            run_call(name, dtype)
    finally:
        event.unregister("numba:compile", counter)
    return sum(1 for ev in compiled if ev.data["dispatcher"].py_func.__module__.startswith(
        "numbapool"))
