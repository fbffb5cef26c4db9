"""Benchmarks of :func:`numbapool.block_reduce` against scikit-image, NumPy and the copy roofline.

Four cases, one pytest-benchmark group each:

* ``mean2x2``: the mean of 2x2 blocks of a float32 image;
* ``max4x4``: the max of 4x4 blocks of a float32 image;
* ``median3x3x3``: the median of 3x3x3 blocks of a float32 volume;
* ``mode2x2x2``: the mode of 2x2x2 blocks of a uint32 label volume (50 labels).

Each group times ``numbapool``, ``skimage`` (``skimage.measure.block_reduce`` with
``np.mean``, ``np.max``, ``np.median``, or a ``scipy.stats.mode`` wrapper for the mode),
``numpy`` (the reshape-reduce a NumPy user writes: ``x.reshape(h, 2, w, 2).mean((1, 3))``,
``np.median`` over the block axes, and for the mode the same reshape with
``scipy.stats.mode``) and ``roofline`` (a parallel copy of the bytes the op reads and
writes).  ``test_roofline_fraction`` calls numbapool and the copy alternately for the mean
and max cases and prints the fraction of the roofline (the two measured in the same
moments: separate groups can land in different phases of a shared machine);
``test_plain_loop_fraction`` does the same for the plainest fused Numba loops of those two
cases, the bound a simple kernel meets on the machine::

    python -m pytest benchmarks/bench_blocks.py --benchmark-only --benchmark-group-by=group

``NUMBAPOOL_BENCH_QUICK=1`` runs tiny shapes (a smoke run).
"""

import os

# the roofline's OpenMP threads must not spin on the cores after their copy while the next
# call runs (as in bench_tokens.py)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import numbapool as nbp  # noqa: E402

from conftest import QUICK, copy_roofline  # noqa: E402

IMPLS = ("numbapool", "skimage", "numpy", "roofline")


def _mode_blocks(blocked, axis):
    """``scipy.stats.mode`` over the trailing block axes ``axis`` (it takes one axis):
    the blocks flattened into one axis first (a copy of the blocked view)."""
    import scipy.stats

    lead = blocked.shape[:blocked.ndim - len(axis)]
    flat = blocked.reshape(lead + (-1,))
    return scipy.stats.mode(flat, axis=-1, keepdims=False).mode


def _reshaped(x, block):
    """``x`` viewed as ``(n0, b0, n1, b1, ...)`` (whole blocks) and the block axes."""
    shape = []
    for n, b in zip(x.shape, block):
        shape += [n // b, b]
    return x.reshape(shape), tuple(range(1, 2 * x.ndim, 2))


def _numpy_mode(x, block):
    blocked, axes = _reshaped(x, block)
    order = tuple(range(0, 2 * x.ndim, 2)) + axes
    return _mode_blocks(blocked.transpose(order), axes)


class Case:
    def __init__(self, name, shape, dtype, block, func):
        self.name, self.shape, self.dtype, self.block, self.func = name, shape, dtype, block, func

    def make(self):
        rng = np.random.default_rng(0)
        if np.dtype(self.dtype).kind == "u":
            return rng.integers(0, 50, self.shape).astype(self.dtype)
        return rng.random(self.shape, dtype=self.dtype)

    def moved_bytes(self, x):
        return x.nbytes + x.nbytes // int(np.prod(self.block))

    def call(self, impl, x):
        block, func = self.block, self.func
        if impl == "numbapool":
            out = np.empty(tuple(n // b for n, b in zip(x.shape, block)), x.dtype)
            return lambda: nbp.block_reduce(x, block, func, out=out)
        if impl == "skimage":
            measure = pytest.importorskip("skimage.measure")
            reducer = {"mean": np.mean, "max": np.max, "median": np.median,
                       "mode": _mode_blocks}[func]
            return lambda: measure.block_reduce(x, block, reducer)
        if impl == "numpy":
            if func == "mode":
                pytest.importorskip("scipy.stats")
                return lambda: _numpy_mode(x, block)
            reducer = {"mean": np.mean, "max": np.max, "median": np.median}[func]

            def numpy_call():
                blocked, axes = _reshaped(x, block)
                return reducer(blocked, axis=axes)

            return numpy_call
        return copy_roofline(self.moved_bytes(x))


if QUICK:
    CASES = [Case("mean2x2", (64, 64), np.float32, (2, 2), "mean"),
             Case("max4x4", (64, 64), np.float32, (4, 4), "max"),
             Case("median3x3x3", (12, 12, 12), np.float32, (3, 3, 3), "median"),
             Case("mode2x2x2", (16, 16, 16), np.uint32, (2, 2, 2), "mode")]
else:
    CASES = [Case("mean2x2", (4096, 4096), np.float32, (2, 2), "mean"),
             Case("max4x4", (4096, 4096), np.float32, (4, 4), "max"),
             Case("median3x3x3", (192, 192, 192), np.float32, (3, 3, 3), "median"),
             Case("mode2x2x2", (256, 256, 256), np.uint32, (2, 2, 2), "mode")]

_INPUTS = {}


def _input(case):
    if case.name not in _INPUTS:
        _INPUTS.clear()  # one case's (large) input alive at a time
        _INPUTS[case.name] = case.make()
    return _INPUTS[case.name]


PAIRS = [(case, impl) for case in CASES for impl in IMPLS]


@pytest.mark.parametrize("case,impl", PAIRS, ids=[f"{c.name}-{i}" for c, i in PAIRS])
def test_block_reduce(benchmark, case, impl):
    benchmark.group = case.name
    x = _input(case)
    call = case.call(impl, x)
    if impl == "roofline":
        benchmark.extra_info["bytes"] = case.moved_bytes(x)
        benchmark(call)
        return
    want = nbp.block_reduce(x, case.block, case.func)  # compiles numbapool, untimed
    if impl == "numbapool":
        result = benchmark(call)
    else:  # slow: a few rounds
        result = benchmark.pedantic(call, rounds=3, iterations=1, warmup_rounds=1)
    np.testing.assert_allclose(np.asarray(result), want, rtol=1e-5)


ROOFLINE_CASES = [c for c in CASES if c.func in ("mean", "max")]


def _alternating_fraction(call, roof):
    """The copy's median time over ``call``'s, the two called alternately."""
    import time

    call(), roof()
    t_call, t_roof = [], []
    for _ in range(5 if QUICK else 60):
        for f, times in ((call, t_call), (roof, t_roof)):
            start = time.perf_counter()
            f()
            times.append(time.perf_counter() - start)
    return float(np.median(t_roof) / np.median(t_call))


@pytest.mark.parametrize("case", ROOFLINE_CASES, ids=[c.name for c in ROOFLINE_CASES])
def test_roofline_fraction(benchmark, case):
    """numbapool and the roofline copy called alternately, so that both see the same
    moments of a shared machine: ``extra_info["roofline_fraction"]`` is the copy's median
    time over numbapool's (the time benchmarked is numbapool's)."""
    benchmark.group = f"{case.name}-roofline-fraction"
    x = _input(case)
    ours = case.call("numbapool", x)
    fraction = _alternating_fraction(ours, case.call("roofline", x))
    benchmark.extra_info["roofline_fraction"] = fraction
    print(f"\n{case.name}: {fraction:.2f} of the copy roofline (alternating calls)")
    benchmark.pedantic(ours, rounds=3, iterations=1)


def _plain_loops():
    """The two roofline cases as the plainest fused Numba loops (``prange`` over output
    rows, the same arithmetic as numbapool's: float32 sums in row order, NaN-propagating
    maxima): what a simple kernel reaches on this machine."""
    from numba import njit, prange

    @njit(parallel=True, cache=True)
    def mean2x2(x, out):
        for r in prange(out.shape[0]):
            a, b, o = x[2 * r], x[2 * r + 1], out[r]
            for c in range(out.shape[1]):
                s = (a[2 * c] + a[2 * c + 1]) + (b[2 * c] + b[2 * c + 1])
                o[c] = s * np.float32(0.25)

    @njit(parallel=True, cache=True)
    def max4x4(x, out):
        for r in prange(out.shape[0]):
            o = out[r]
            for c in range(out.shape[1]):
                m = x[4 * r, 4 * c]
                for i in range(4):
                    row = x[4 * r + i]
                    for j in range(4):
                        v = row[4 * c + j]
                        m = v if (v > m) | (v != v) else m
                o[c] = m

    return {"mean2x2": mean2x2, "max4x4": max4x4}


@pytest.mark.parametrize("case", ROOFLINE_CASES, ids=[c.name for c in ROOFLINE_CASES])
def test_plain_loop_fraction(benchmark, case):
    """The roofline fraction of the plain loop of :func:`_plain_loops`, measured as
    numbapool's (``extra_info["roofline_fraction"]``), checked against numbapool's
    result: a bound to read numbapool's fraction against."""
    benchmark.group = f"{case.name}-plain-loop-fraction"
    x = _input(case)
    out = np.empty(tuple(n // b for n, b in zip(x.shape, case.block)), x.dtype)
    loop = _plain_loops()[case.name]

    def plain():
        loop(x, out)

    fraction = _alternating_fraction(plain, case.call("roofline", x))
    np.testing.assert_array_equal(out, nbp.block_reduce(x, case.block, case.func))
    benchmark.extra_info["roofline_fraction"] = fraction
    print(f"\n{case.name}: {fraction:.2f} of the copy roofline for a plain Numba loop")
    benchmark.pedantic(plain, rounds=3, iterations=1)
