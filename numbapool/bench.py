"""The benchmark cases: numbapool against PyTorch CPU, NumPy and the memory-copy roofline.

One list of cases feeds both the pytest-benchmark suite in ``benchmarks/`` and the command
line (``python -m numbapool bench``).  Every case times, on the same input in the same run:

* ``numbapool``: the call under test;
* ``torch``: the same op with PyTorch CPU in the same layout and thread count (when installed);
* ``numpy``: a plain NumPy formulation (where one is reasonable);
* ``naive``: the plain Numba loop a user would write (2-D float pools), a floor;
* ``roofline``: a parallel copy of as many bytes as the op must read and write.  Pooling is
  memory-bound, so ``roofline time / numbapool time`` is the fraction of the bandwidth limit
  that numbapool reaches.

A case names a public function and its arguments; the torch and NumPy columns are that
function's formulations in :mod:`numbapool.comparisons`, the registry the test suite checks
against a naive oracle, so every column computes the same thing.  A formulation that does
not cover a case's arguments leaves its column empty.

>>> [c.name for c in cases(quick=True)][:2]
['max2d_k2_nchw', 'max2d_k3s2p1_nchw']
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
import sys
import time
from typing import Callable, Mapping, Optional

import numpy as np

from .comparisons import COMPARISONS, NAIVE

IMPLS = ("numbapool", "torch", "numpy", "naive", "roofline")

# full-size shapes (the suite's reference sizes) and the quick ones used for smoke runs
_IMAGE = {False: (32, 64, 112, 112), True: (2, 8, 28, 28)}
_VOLUME = {False: (4, 32, 64, 64, 64), True: (1, 2, 8, 8, 8)}
_SIGNAL = {False: (64, 256, 4096), True: (2, 4, 64)}
_TOKENS = {False: (64, 256, 768), True: (4, 16, 32)}


@dataclasses.dataclass(frozen=True)
class Inputs:
    """The array arguments of a case's call, and the bytes the op must read from them."""

    arrays: tuple
    read_bytes: int


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark: ``function(*inputs.arrays, *args, **kwargs)`` on what ``make()`` builds.

    ``function`` names a public numbapool function; its torch and NumPy formulations are
    those of :data:`numbapool.comparisons.COMPARISONS`, called with the same arguments.
    """

    name: str
    function: str
    args: tuple
    kwargs: Mapping
    make: Callable[[], Inputs]

    def implementation(self, impl) -> Optional[Callable]:
        """The callable of ``impl`` ("numbapool", "torch", "numpy" or "naive"); None when there
        is none."""
        if impl == "numbapool":
            import numbapool

            return getattr(numbapool, self.function)
        if impl == "naive":
            return NAIVE.get(self.function)
        return getattr(COMPARISONS[self.function], impl)

    def run(self, impl, inputs):
        """``impl``'s result on ``inputs``."""
        return self.implementation(impl)(*inputs.arrays, *self.args, **self.kwargs)

    def ours(self, inputs):
        """numbapool's result on ``inputs``."""
        return self.run("numbapool", inputs)

    def moved_bytes(self, inputs) -> int:
        """Bytes the op must read and write: its input (valid tokens only) plus its output."""
        result = self.ours(inputs)
        outputs = result if isinstance(result, tuple) else (result,)
        return int(inputs.read_bytes + sum(np.asarray(r).nbytes for r in outputs))


# --------------------------------------------------------------------------- inputs


def image_inputs(shape, layout="nchw"):
    """A maker of float32 ``(N, C, *spatial)`` input, made ``(N, *spatial, C)`` for "nhwc"."""
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    if layout == "nhwc":
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    return lambda: Inputs((x,), x.nbytes)


def token_inputs(shape):
    """A maker of float32 ``(B, L, D)`` hidden states with random lengths, right-padded."""
    b, length, d = shape
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal(shape, dtype=np.float32)
    lengths = rng.integers(1, length + 1, size=b)
    mask = np.arange(length)[None, :] < lengths[:, None]
    return lambda: Inputs((hidden, mask), int(lengths.sum()) * d * 4)


# --------------------------------------------------------------------------- the cases

# (name, function, args, kwargs) of the image cases, each run in both layouts
_IMAGE_CASES = [
    ("max2d_k2", "max_pool", (2,), {}),
    ("max2d_k3s2p1", "max_pool", (3, 2, 1), {}),
    ("max2d_k2_indices", "max_pool", (2,), {"return_indices": True}),
    ("max2d_k3s2p1_indices", "max_pool", (3, 2, 1), {"return_indices": True}),
    ("avg2d_k3s2p1", "avg_pool", (3, 2, 1), {}),
    ("adaptive_avg_7x7", "adaptive_avg_pool", (7,), {}),
    ("adaptive_max_7x7", "adaptive_max_pool", (7,), {}),
    ("global_avg", "global_avg_pool", (), {}),
    ("global_max", "global_max_pool", (), {}),
]
_TOKEN_CASES = [("mean", "mean"), ("max", "max"), ("multi", ("cls", "mean", "max"))]


def cases(quick=False):
    """The suite's cases; ``quick`` swaps in tiny shapes (a smoke run of every code path)."""
    out = []
    for layout in ("nchw", "nhwc"):
        make = image_inputs(_IMAGE[quick], layout)
        kwargs = {"layout": "channels_last" if layout == "nhwc" else "channels_first"}
        for name, function, args, extra in _IMAGE_CASES:
            out.append(Case(f"{name}_{layout}", function, args, {**extra, **kwargs}, make))
    volume, signal = image_inputs(_VOLUME[quick]), image_inputs(_SIGNAL[quick])
    out.append(Case("max3d_k2_ncdhw", "max_pool", (2,), {}, volume))
    out.append(Case("avg3d_k2_ncdhw", "avg_pool", (2,), {}, volume))
    out.append(Case("max1d_k3s2_ncl", "max_pool", (3, 2), {}, signal))
    tokens = token_inputs(_TOKENS[quick])
    for label, modes in _TOKEN_CASES:
        out.append(Case(f"tokens_{label}", "pool_tokens", (modes,), {}, tokens))
    return out


# --------------------------------------------------------------------------- copy roofline


def _copy_kernel():
    from numba import njit, prange

    @njit(parallel=True, cache=True)
    def parallel_copy(src, dst):
        for i in prange(src.size):
            dst[i] = src[i]

    return parallel_copy


_COPY = []


def copy_roofline(n_bytes):
    """A callable that reads and writes ``n_bytes`` in all with a parallel copy."""
    if not _COPY:
        _COPY.append(_copy_kernel())
    copy = _COPY[0]
    n = max(1, n_bytes // 2 // 4)
    src = np.ones(n, np.float32)
    dst = np.empty_like(src)
    copy(src, dst)
    return lambda: copy(src, dst)


# --------------------------------------------------------------------------- running


def prepared(case, impl, inputs):
    """``impl`` ("numbapool", "torch", "numpy" or "naive") on ``inputs`` as a zero-argument
    callable.

    It is called once here, untimed (numbapool compiles or loads its kernels then); None
    when ``impl`` has no formulation for the case's arguments.
    """
    func = case.implementation(impl)
    if func is None:
        return None
    call = functools.partial(func, *inputs.arrays, *case.args, **case.kwargs)
    try:
        call()
    except NotImplementedError:
        return None
    return call


def callables(case, inputs, impls=IMPLS):
    """``{impl: zero-argument callable}`` for those of ``impls`` that cover the case."""
    calls = {}
    for impl in impls:
        if impl == "roofline":
            calls[impl] = copy_roofline(case.moved_bytes(inputs))
        else:
            call = prepared(case, impl, inputs)
            if call is not None:
                calls[impl] = call
    return calls


def peak_extra_bytes(call):
    """Peak resident memory a call adds beyond what was resident before it (Linux only)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak-RSS mark
        before = _status_kib("VmRSS")
        call()
        return (_status_kib("VmHWM") - before) * 1024
    except OSError:
        return None


def _status_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise OSError(key)


def time_call(call, min_time=0.2, min_rounds=5, max_rounds=200):
    """Median seconds of ``call`` after one warm-up call."""
    call()
    times = []
    start = time.perf_counter()
    while len(times) < min_rounds or (time.perf_counter() - start < min_time
                                      and len(times) < max_rounds):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(quick=False, progress=sys.stderr):
    """Time every case; returns a list of per-case dicts of seconds and ratios."""
    import numba

    impls = IMPLS
    try:
        import torch
        torch.set_num_threads(numba.get_num_threads())
    except ImportError:
        impls = tuple(impl for impl in IMPLS if impl != "torch")
    todo = cases(quick)
    compile_kernels(todo, progress)
    rows = []
    for n, case in enumerate(todo, 1):
        if progress is not None:
            bar = "#" * (20 * n // len(todo))
            progress.write(f"\r[{bar:20s}] {n}/{len(todo)} {case.name:28s}")
            progress.flush()
        inputs = case.make()
        calls = callables(case, inputs, impls)
        row = {"case": case.name}
        for impl, call in calls.items():
            row[impl] = time_call(call, min_time=0.05 if quick else 0.3)
        row["peak_extra_mib"] = (peak_extra_bytes(calls["numbapool"]) or 0) / 2**20
        rows.append(row)
    if progress is not None:
        progress.write("\n")
    return rows


def compile_kernels(todo, progress=sys.stderr):
    """Call numbapool and the naive loops once on each case, so that the compiling (or the
    loading of cached kernels) is a phase of its own, shown as such, not part of a timing."""
    if progress is not None:
        progress.write("compiling kernels (loaded from the on-disk cache after the first run)")
        progress.flush()
    t0 = time.perf_counter()
    for case in todo:
        for call in callables(case, case.make(), ("numbapool", "naive")).values():
            call()
        if progress is not None:
            progress.write(".")
            progress.flush()
    if progress is not None:
        progress.write(f" {time.perf_counter() - t0:.1f} s\n")


def machine_line():
    """The CPU, the instruction set the kernels were compiled for, and the thread count."""
    import numba

    from ._info import cpu_code, cpu_model

    return (f"CPU: {cpu_model()}; kernels compiled for {cpu_code()}; "
            f"{numba.get_num_threads()} threads")


def _geometric_mean(values):
    return float(np.exp(np.mean(np.log(values))))


def format_table(rows, quick=False, machine=True):
    """A Markdown table: times in ms and the ratios that matter.

    ``quick`` runs time tiny shapes, where a call's fixed cost swamps its memory traffic,
    so their table gives no roofline fraction.  ``machine`` heads the table with
    :func:`machine_line` (the machine this process runs on).
    """
    columns = ["case", "numbapool ms", "torch ms", "numpy ms", "naive ms", "vs torch",
               "vs numpy", "vs naive"]
    if not quick:
        columns.append("of roofline")
    columns.append("peak extra MiB")
    lines = [machine_line(), ""] if machine else []
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        def ms(k):
            return f"{r[k] * 1e3:.2f}" if k in r else "-"

        def ratio(k):
            return f"{r[k] / r['numbapool']:.2f}x" if k in r else "-"
        cells = [r["case"], ms("numbapool"), ms("torch"), ms("numpy"), ms("naive"),
                 ratio("torch"), ratio("numpy"), ratio("naive")]
        if not quick:
            cells.append(f"{r['roofline'] / r['numbapool']:.2f}")
        cells.append(f"{r['peak_extra_mib']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for impl in ("torch", "naive"):
        timed = [r for r in rows if impl in r]
        if timed:
            worst = min(timed, key=lambda r: r[impl] / r["numbapool"])
            lines.append(f"geometric-mean speedup over {impl}: "
                         f"{_geometric_mean([r[impl] / r['numbapool'] for r in timed]):.2f}x; "
                         f"worst case {worst['case']} at "
                         f"{worst[impl] / worst['numbapool']:.2f}x")
    if not quick:
        worst = min(rows, key=lambda r: r["roofline"] / r["numbapool"])
        lines.append(f"roofline fraction: geometric mean "
                     f"{_geometric_mean([r['roofline'] / r['numbapool'] for r in rows]):.2f}, "
                     f"worst {worst['case']} at {worst['roofline'] / worst['numbapool']:.2f}")
    return "\n".join(lines)
