"""Design choices of the CPU kernels, each timed against the alternative it replaced.

The kernels' comments say *why* a choice was made; this file measures *how much* it buys.
Each pytest-benchmark group holds both variants of one choice on one input, so their ratio
comes from one run, and every case first checks that the variants compute the same result::

    python -m pytest benchmarks/bench_design.py --benchmark-only \\
        --benchmark-columns=median,iqr,rounds

``benchmarks/design_choices.md`` explains each group and records a run.  The kernels are
called directly (they are plain ``@njit`` functions), with their inputs built as the
runners in ``numbapool/_cpu/spatial.py`` and ``numbapool/_cpu/tokens.py`` build them; the
spatial cases time the serial kernels, so the ratios are of the work of one core.
``NUMBAPOOL_BENCH_QUICK=1`` swaps in tiny shapes (a smoke run of every case).
"""

import time

import numba
import numpy as np
import pytest
from numba import njit

import numbapool as nbp
from numbapool._cpu import parallel
from numbapool._cpu import spatial as spatial_runner
from numbapool._cpu import plane_kernels, token_kernels, window_kernels
from numbapool._cpu import tokens as token_runner
from numbapool._cpu.half import as_kernel_array, half_bits_to_f32
from numbapool._cpu.specialise import UNROLLED_WINDOWS, window_code
from numbapool.plan import FINISHES, TRANSFORMS

from conftest import QUICK

_INPUTS = {}


def _random(shape, dtype=np.float32):
    """Standard normal data of ``shape``; one large input is kept alive at a time."""
    key = (shape, np.dtype(dtype).str)
    if key not in _INPUTS:
        _INPUTS.clear()
        data = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        _INPUTS[key] = data.astype(dtype, copy=False)
    return _INPUTS[key]


def _timed(benchmark, fn, *args):
    """``benchmark(fn, *args)`` after 0.2 s of untimed calls (full size only), so that both
    variants start from warm caches and a running thread pool (pytest-benchmark does no
    warm-up by default)."""
    if not QUICK:
        end = time.perf_counter() + 0.2
        while time.perf_counter() < end:
            fn(*args)
    return benchmark(fn, *args)


def _arena(hidden):
    """The read-only flat view of ``hidden`` the token kernels read (float16 as HALF)."""
    arena, base, _ = token_runner._token_arena(hidden)
    assert base == 0
    return as_kernel_array(arena)


# --------------------------------------------------------------------------- 1. streams
# token_kernels._fold_run reads a run of tokens as STREAMS streams side by side;
# _fold_rows reads it one row at a time.  The drivers loop over the sequences of a
# (B, L, D) batch in compiled code and leave sequence b's sum in tot[b] (float64) and its
# max in acc[b, 1].  A 256-token run is one block of the kernels' blocked sum (see
# token_kernels), so both add every row into one float32 partial; should _fold_run flush
# earlier blocks into its float64 total ``h_sum``, the driver adds them in.

TOKEN_RUNS = {"one_run": {False: (1, 256, 768), True: (1, 16, 32)},
              "batch": {False: (64, 256, 768), True: (4, 16, 32)}}
FOLDS = {"sum": False, "sum_max": True}


@njit
def _runs_streamed(x, acc, tot, rows, L, D, do_max):
    for b in range(acc.shape[0]):
        a_sum, a_max, a_min, h_sum = acc[b, 0], acc[b, 1], acc[b, 2], tot[b]
        a_sum[:] = 0
        # _fold_run flushes into row A_SUM (0) of its float64 totals: tot[b] here
        flushed = token_kernels._fold_run(a_sum, tot[b:b + 1], a_max, a_min, rows, x,
                                          b * L * D, D, L, True, do_max, False)
        for e in range(D):
            h_sum[e] = (h_sum[e] if flushed else 0.0) + a_sum[e]


@njit
def _runs_row_by_row(x, acc, tot, rows, L, D, do_max):
    for b in range(acc.shape[0]):
        a_sum, a_max, a_min, h_sum = acc[b, 0], acc[b, 1], acc[b, 2], tot[b]
        a_sum[:] = 0
        a_max[:] = -np.inf
        token_kernels._fold_rows(a_sum, a_max, a_min, x, b * L * D, D, L, rows[0], True,
                                 do_max, False)
        for e in range(D):
            h_sum[e] = a_sum[e]


RUN_VARIANTS = {"streams": _runs_streamed, "rows": _runs_row_by_row}


def _run_buffers(B, D):
    """``(acc, tot)``: each sequence's float32 rows (partial sum, max, min) and float64
    sum."""
    return np.empty((B, 3, D), np.float32), np.empty((B, D), np.float64)


@pytest.mark.parametrize("variant", RUN_VARIANTS)
@pytest.mark.parametrize("fold", FOLDS)
@pytest.mark.parametrize("shape_name", TOKEN_RUNS)
def test_token_streams(benchmark, shape_name, fold, variant):
    B, L, D = TOKEN_RUNS[shape_name][QUICK]
    hidden = _random((B, L, D))
    x = _arena(hidden)
    do_max = FOLDS[fold]
    rows = np.empty((token_kernels.STREAMS, D), np.float32)
    results = {}
    for name, driver in RUN_VARIANTS.items():  # compiles both before timing
        acc, tot = _run_buffers(B, D)
        driver(x, acc, tot, rows, L, D, do_max)
        results[name] = acc, tot
    (streams, streams_sum), (one_by_one, one_by_one_sum) = results["streams"], results["rows"]
    # the sums differ only in the order of the additions; the maxima are exact
    np.testing.assert_allclose(streams_sum, one_by_one_sum, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(streams_sum, hidden.sum(1, dtype=np.float64), rtol=1e-5,
                               atol=1e-4)
    if do_max:
        np.testing.assert_array_equal(streams[:, 1], one_by_one[:, 1])
        np.testing.assert_array_equal(streams[:, 1], hidden.max(1))
    benchmark.group = f"1 token runs: {fold}, {shape_name} {B}x{L}x{D} float32"
    _timed(benchmark, RUN_VARIANTS[variant], x, *_run_buffers(B, D), rows, L, D, do_max)


# --------------------------------------------------------------------------- 2. float16
# token_kernels._decode_half_row decodes a row without branches; the loop below calls the
# scalar half.half_bits_to_f32 per element.  Row r of ``src`` (R rows of D halfs) is
# decoded into ``out[r % len(out)]``: one row buffer, as in the kernels, when timing;
# one row each when checking.

HALF_ROWS = {"64_rows": {False: (64, 768), True: (4, 32)},
             "16384_rows": {False: (64 * 256, 768), True: (16, 32)}}


@njit
def _decode_vectorised(src, out, D):
    n_buf = out.shape[0]
    for r in range(src.shape[0] // D):
        token_kernels._decode_half_row(src[r * D:(r + 1) * D], out[r % n_buf])


@njit
def _decode_scalar(src, out, D):
    n_buf = out.shape[0]
    for r in range(src.shape[0] // D):
        row = src[r * D:(r + 1) * D]
        dst = out[r % n_buf]
        for e in range(D):
            dst[e] = half_bits_to_f32(row[e].bits)


DECODERS = {"vectorised": _decode_vectorised, "scalar": _decode_scalar}


def _check_every_half():
    """Both decoders give the same float32 bits for all 65536 float16 bit patterns, NaN
    payloads included, and NumPy's values for the others."""
    halfs = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    src = as_kernel_array(halfs)
    decoded = {}
    for name, decode in DECODERS.items():
        out = np.empty((halfs.size // 256, 256), np.float32)
        decode(src, out, 256)
        decoded[name] = out.reshape(-1)
    np.testing.assert_array_equal(decoded["vectorised"].view(np.uint32),
                                  decoded["scalar"].view(np.uint32))
    numbers = ~np.isnan(halfs)
    np.testing.assert_array_equal(decoded["vectorised"][numbers].view(np.uint32),
                                  halfs[numbers].astype(np.float32).view(np.uint32))


@pytest.mark.parametrize("variant", DECODERS)
@pytest.mark.parametrize("rows_name", HALF_ROWS)
def test_half_decode(benchmark, rows_name, variant):
    R, D = HALF_ROWS[rows_name][QUICK]
    _check_every_half()
    hidden = _random((R, D), np.float16)
    src = _arena(hidden)
    for decode in DECODERS.values():  # compiles both, and checks them on this input
        out = np.empty((R, D), np.float32)
        decode(src, out, D)
        np.testing.assert_array_equal(out, hidden.astype(np.float32))
    benchmark.group = f"2 float16 decode: {R} rows of {D}"
    _timed(benchmark, DECODERS[variant], src, np.empty((1, D), np.float32), D)


# --------------------------------------------------------------------------- spatial plans


def _captured_plan(pool, x):
    """``(plan, result)``: the plan the public ``pool(x)`` runs, and its result."""
    seen = []
    original = spatial_runner._run_kernels

    def record(plan, *args):
        seen.append(plan)
        return original(plan, *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(spatial_runner, "_run_kernels", record)
        result = pool(x)
    assert len(seen) == 1
    return seen[0], result


def _spatial_call(plan, tables, xc, out):
    """The serial kernel the runner picks for ``plan`` on ``tables`` and its arguments, to
    run every task of canonical ``xc`` into ``out``."""
    last = plan.axes[-1]
    run = tuple(int(v) for v in tables.l_uniform)
    window = window_code(run, last.step, plan.channels, UNROLLED_WINDOWS)
    geometry = (tables.axes, tables.first, tables.count, tables.l_uniform)
    n_tasks = window_kernels.task_count(xc.shape, out.shape, tables.buffer, plan.channels)
    if plan.reducer in ("max", "min"):
        family, kernel = "windows_extreme", window_kernels.extreme_tasks(window)
        params = (*geometry, tables.buffer, plan.channels, plan.reducer == "min",
                  plan.omit_nan)
        dtype = xc.dtype
    else:
        family, kernel = "windows_sum", window_kernels.sum_tasks(window, plan.omit_nan)
        params = (*geometry, tables.div, tables.inv, tables.buffer, plan.channels,
                  plan.acc_dtype.type(0), TRANSFORMS[plan.transform], float(plan.power),
                  float(plan.eps), FINISHES[plan.finish], float(plan.divisor_override))
        dtype = plan.acc_dtype
    scratch = window_kernels.task_scratch(family, xc.shape, out.shape, tables, plan.channels,
                                          dtype, plan.omit_nan)
    return kernel, (xc, out, 0, n_tasks, *params, *scratch)


# --------------------------------------------------------------------------- 3. unrolled taps
# The plan's l_uniform sends the interior windows of the last axis through fold_uniform,
# whose taps are constants for the shapes in specialise.UNROLLED_WINDOWS; an empty run
# ([0, 0, 0, 0, 0]) sends every window through the general fold_windows loop.

WINDOW_SHAPE = {False: (8, 64, 112, 112), True: (1, 2, 16, 16)}
WINDOW_POOLS = {"max2d_k2s2": lambda x: nbp.max_pool2d(x, 2),
                "avg2d_k3s2p1": lambda x: nbp.avg_pool2d(x, 3, 2, 1)}
TAP_VARIANTS = ("constant_taps", "window_loop")


def _no_uniform_run(tables):
    empty = np.zeros(5, np.int64)
    empty.flags.writeable = False  # as the plan's tables: the same compiled kernel
    return tables._replace(l_uniform=empty)


@pytest.mark.parametrize("variant", TAP_VARIANTS)
@pytest.mark.parametrize("pool", WINDOW_POOLS)
def test_window_taps(benchmark, pool, variant):
    x = _random(WINDOW_SHAPE[QUICK])
    plan, expected = _captured_plan(WINDOW_POOLS[pool], x)
    assert plan.tables.l_uniform[1] > plan.tables.l_uniform[0]  # the interior is a run
    xc = x.reshape(plan.canonical_in_shape)
    calls = {}
    for name, tables in zip(TAP_VARIANTS, (plan.tables, _no_uniform_run(plan.tables))):
        out = np.empty(plan.canonical_out_shape, plan.out_dtype)
        kernel, args = _spatial_call(plan, tables, xc, out)
        kernel(*args)
        # both combine the same taps in the same order: each equals the public result
        np.testing.assert_array_equal(out.reshape(expected.shape), expected)
        calls[name] = (kernel, args)
    benchmark.group = f"3 window taps: {pool} {'x'.join(map(str, x.shape))} float32"
    kernel, args = calls[variant]
    _timed(benchmark, kernel, *args)


# --------------------------------------------------------------------------- 4. plane means
# A plain global average of channels-first data runs plane_mean_tasks, one pass over each
# contiguous plane; the alternative is the stage A/B sum_tasks path of the same plan.

PLANE_SHAPE = {False: (32, 64, 112, 112), True: (2, 3, 16, 16)}
MEAN_VARIANTS = ("plane_mean", "row_sums")


@pytest.mark.parametrize("variant", MEAN_VARIANTS)
def test_global_mean(benchmark, variant):
    x = _random(PLANE_SHAPE[QUICK])
    plan, expected = _captured_plan(nbp.global_avg_pool2d, x)
    assert spatial_runner.kernel_path(plan, x.dtype)["kernel"] == "plane_mean"
    planes = plan.canonical_in_shape[0]
    zero = plan.acc_dtype.type(0)
    flat_in = x.reshape(planes, -1)
    flat_out = np.empty(planes, plan.out_dtype)
    rows_in = x.reshape(plan.canonical_in_shape)
    rows_out = np.empty(plan.canonical_out_shape, plan.out_dtype)
    calls = {"plane_mean": (plane_kernels.plane_mean_tasks,
                            (flat_in, flat_out, 0, planes, zero)),
             "row_sums": _spatial_call(plan, plan.tables, rows_in, rows_out)}
    for fn, args in calls.values():
        fn(*args)
    # both sum in plan.acc_dtype (float64 here), in different orders
    np.testing.assert_array_equal(flat_out.reshape(expected.shape), expected)
    np.testing.assert_allclose(rows_out.reshape(expected.shape), expected, rtol=1e-6,
                               atol=1e-7)
    benchmark.group = f"4 global mean: {'x'.join(map(str, x.shape))} float32"
    fn, args = calls[variant]
    _timed(benchmark, fn, *args)


# --------------------------------------------------------------------------- 5. token crossover
# pool_tokens with numbapool._cpu.parallel.PARALLEL_MIN_ELEMENTS forced to 0 (always
# the threaded path) or out of reach (always token_serial), as bench_crossover.py does for
# spatial pools.  The runner goes parallel from
# TOKEN_PARALLEL_FACTOR * PARALLEL_MIN_ELEMENTS token-row elements.

CROSSOVER_L, CROSSOVER_D = (64, 384) if not QUICK else (8, 16)
CROSSOVER_BATCHES = [1, 2, 4, 8, 16, 32, 64] if not QUICK else [1, 4]
_MIN_ELEMENTS = parallel.PARALLEL_MIN_ELEMENTS  # the threshold, before any test patches it


@pytest.mark.parametrize("mode", ["serial", "parallel"])
@pytest.mark.parametrize("batch", CROSSOVER_BATCHES)
def test_token_crossover(benchmark, monkeypatch, batch, mode):
    if numba.get_num_threads() < 2:
        pytest.skip("the parallel kernel needs two threads")
    hidden = _random((batch, CROSSOVER_L, CROSSOVER_D))
    results = {}
    for name, threshold in (("serial", 1 << 62), ("parallel", 0)):
        monkeypatch.setattr(parallel, "PARALLEL_MIN_ELEMENTS", threshold)
        results[name] = nbp.pool_tokens(hidden, mode="mean")  # compiles outside the timing
    # a parallel run may split a long sequence, which changes the order of the additions
    np.testing.assert_allclose(results["parallel"], results["serial"], rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_ELEMENTS", 1 << 62 if mode == "serial" else 0)
    elements = hidden.size
    benchmark.extra_info["elements"] = elements
    benchmark.extra_info["runner_goes_parallel"] = bool(
        elements >= token_runner.TOKEN_PARALLEL_FACTOR * _MIN_ELEMENTS)
    shape = f"{batch:2d}x{CROSSOVER_L}x{CROSSOVER_D}"  # padded: the groups sort by size
    benchmark.group = f"5 token crossover: {shape} float32 ({elements} elements)"
    _timed(benchmark, nbp.pool_tokens, hidden, None, "mean")
