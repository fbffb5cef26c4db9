"""The first-call machinery: warming the kernel cache, the INFO notice of a compile, and the
threads that run one kernel over ranges of tasks.

Compiles run in child processes with their own empty ``NUMBA_CACHE_DIR``, so that what is
measured is a cold start, and the shared cache is left alone.
"""

import ast
import os
import subprocess
import sys

import numpy as np
import pytest

from numbapool._cpu import parallel
from numbapool.warm import CALLS, COMMON, warm


def _child(code, cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


#: A child's prologue: ``seen`` collects the functions Numba compiles (not those it loads
#: from the cache).
RECORD_COMPILES = """
from numba.core import event
import numpy as np, numbapool as nbp
seen = []
class L(event.Listener):
    def on_start(self, ev): seen.append(ev.data["dispatcher"].py_func)
    def on_end(self, ev): pass
event.register("numba:compile", L())
"""

COUNT_COMPILES = RECORD_COMPILES + """
nbp.global_max_pool(np.ones((2, 3, 6, 6), np.float32))
print(sum(f.__module__.startswith("numbapool") for f in seen))
"""


def test_warm_fills_the_cache_for_later_processes(tmp_path):
    proc = _child("import sys; from numbapool.warm import warm; "
                  "print(warm(names=['global_max_pool'], jobs=1, progress=sys.stdout))",
                  tmp_path)
    assert "[1/1] global_max_pool (float32)" in proc.stdout
    assert proc.stdout.strip().endswith("(1, 0)")  # one call, nothing lost in the check
    # a later process loads the kernel: not one numbapool function compiles
    assert _child(COUNT_COMPILES, tmp_path).stdout.split()[-1] == "0"


def test_a_cold_process_compiles(tmp_path):
    """The counterpart of the test above: with an empty cache the same call compiles."""
    assert int(_child(COUNT_COMPILES, tmp_path).stdout.split()[-1]) > 0


def test_warm_cli_help_and_names():
    proc = subprocess.run([sys.executable, "-m", "numbapool", "warm", "--help"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "--dtypes" in proc.stdout and "--all" in proc.stdout
    assert set(COMMON) <= set(CALLS)
    with pytest.raises(ValueError, match="no such call"):
        warm(names=["max_pool9d"])


def test_every_warm_call_runs_here():
    """Each call the warm command can make runs (in this process, on the shared cache) and
    gives a result; integer dtypes skip the calls that do not take them."""
    for name, call in CALLS.items():
        assert call("float32") is not None, name
    from numbapool.warm import run_call

    run_call("pool_tokens mean", "int32")  # token pooling takes floats only: skipped


def test_a_warm_call_that_fails_is_not_hidden(monkeypatch):
    """Only the declared float-only calls are skipped for integers; any other error of a
    call (a TypeError included) reaches the caller."""
    from numbapool import warm as warm_module

    def broken(dtype):
        raise TypeError("a real bug")

    monkeypatch.setitem(warm_module.CALLS, "broken", broken)
    with pytest.raises(TypeError, match="a real bug"):
        warm_module.run_call("broken", "int32")


def test_first_compile_is_announced_once_at_info(tmp_path):
    code = ("import logging; logging.basicConfig(level=logging.INFO)\n"
            "import numpy as np, numbapool as nbp\n"
            "x = np.ones((1, 2, 6, 6), np.float32)\n"
            "nbp.global_max_pool(x); nbp.global_avg_pool(x)\n")
    proc = _child(code, tmp_path)
    notices = [line for line in proc.stderr.splitlines() if "compiling CPU kernels" in line]
    assert len(notices) == 1 and notices[0].startswith("INFO:numbapool:"), proc.stderr
    assert "float32" in notices[0] and "numbapool warm" in notices[0]
    # nothing is printed: the notice goes through logging only
    assert proc.stdout == ""


def test_run_split_covers_every_range_once_with_its_own_scratch():
    seen = []

    def kernel(tag, t0, t1, scale, buf):
        seen.append((tag, t0, t1, scale, id(buf)))

    bounds = parallel.cuts(10, 3)
    assert bounds == [0, 3, 6, 10]
    buffers = []  # kept alive, so that no two can share an id
    parallel.run_split(kernel, ("k",), bounds, (2,), lambda: (buffers.append([]) or buffers[-1],))
    assert sorted(s[:4] for s in seen) == [("k", 0, 3, 2), ("k", 3, 6, 2), ("k", 6, 10, 2)]
    assert len({s[4] for s in seen}) == 3


def test_run_split_raises_a_worker_error():
    def kernel(t0, t1):
        if t0 > 0:
            raise RuntimeError(f"range {t0}")

    with pytest.raises(RuntimeError, match="range"):
        parallel.run_split(kernel, (), parallel.cuts(4, 2))


def test_run_split_raises_the_first_range_error_after_every_range_ended():
    """The error of the lowest failing range is raised (not one chained onto another), and
    only once every range has returned."""
    import time

    ended = []

    def kernel(t0, t1):
        if t0 > 0:
            time.sleep(0.05)
            ended.append(t0)
        raise RuntimeError(f"range {t0}")

    with pytest.raises(RuntimeError, match="range 0") as caught:
        parallel.run_split(kernel, (), parallel.cuts(9, 3))
    assert caught.value.__context__ is None
    assert sorted(ended) == [3, 6]


def test_threads_follow_numba_setting(monkeypatch):
    """numba.set_num_threads governs how many ranges a large call is split into."""
    import numba

    import numbapool as nbp
    from numbapool._cpu import spatial

    calls = []
    original = parallel.run_split

    def spy(kernel, before, bounds, after=(), scratch=tuple):
        calls.append(len(bounds) - 1)
        return original(kernel, before, bounds, after, scratch)

    monkeypatch.setattr(spatial, "run_split", spy)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_ELEMENTS", 0)
    x = np.random.default_rng(0).standard_normal((4, 8, 64, 64)).astype(np.float32)
    want = nbp.max_pool2d(x, 2)
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one thread only")
    saved = numba.get_num_threads()
    try:
        for n in (1, 2):
            numba.set_num_threads(n)
            calls.clear()
            np.testing.assert_array_equal(nbp.max_pool2d(x, 2), want)
            assert calls == ([] if n == 1 else [2])
    finally:
        numba.set_num_threads(saved)


ONE_WINDOW_LOOP = RECORD_COMPILES + """
x = np.ones((1, 2, 8, 8), np.float32)
nbp.max_pool2d(x, 2)
nbp.avg_pool2d(x, 2)
names = {f.__qualname__ for f in seen}
print(sorted(q for q in names if "fold_uniform" in q or "count_" in q))
"""


def test_a_call_compiles_only_its_window_loop(tmp_path):
    """A 2x2 max pool and a 2x2 average compile the unrolled uniform loop only, not the
    phased one nor the runtime one (a switch over specialise.UNROLLED_WINDOWS compiled them
    all); the average under propagate compiles no NaN-count loop, only empty stand-ins."""
    compiled = ast.literal_eval(_child(ONE_WINDOW_LOOP, tmp_path).stdout)
    assert compiled == ["_ol_count_last_axis.<locals>.<lambda>",
                        "_ol_count_taps.<locals>.<lambda>",
                        "_ol_fold_uniform.<locals>.unrolled"]


def test_window_code():
    from numbapool._cpu.specialise import (
        NO_UNIFORM, RUNTIME_WINDOW, UNROLLED_WINDOWS, window_code,
    )

    k3s2 = UNROLLED_WINDOWS.index((3, 2, 1))
    assert window_code((1, 9, 3, 2, -1), 1, 1, UNROLLED_WINDOWS) == k3s2
    assert window_code((1, 9, 5, 2, -1), 1, 1, UNROLLED_WINDOWS) == RUNTIME_WINDOW
    assert window_code((1, 9, 3, 2, -1), 2, 1, UNROLLED_WINDOWS) == RUNTIME_WINDOW  # dilated
    assert window_code((0, 0, 3, 2, 0), 1, 1, UNROLLED_WINDOWS) == NO_UNIFORM  # empty run
    assert window_code((1, 9, 3, 2, -1), 1, 3, UNROLLED_WINDOWS) == NO_UNIFORM  # channels-last
