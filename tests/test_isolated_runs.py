"""Subsets of the suite that need their own process (Numba reads its config at import).

* ``NUMBA_BOUNDSCHECK=1``: every array access in the kernels is bounds-checked, so an
  out-of-bounds read raises IndexError instead of passing silently.
* ``NUMBA_ENABLE_CUDASIM=1``: the CUDA kernels run in Numba's CUDA simulator.

Each run gets a private Numba cache directory, so code compiled with different settings is
never shared.  The runs take minutes, so the child's per-test lines are shown as they come
(through pytest's terminal reporter, past output capture) instead of a long silence.
"""

import collections
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import child_env

ROOT = Path(__file__).resolve().parent.parent
INNER = "NUMBAPOOL_ISOLATED_RUN"
TAIL_CHARS = 6000  # of the child's output, in the failure message

pytestmark = pytest.mark.skipif(bool(os.environ.get(INNER)), reason="already inside an isolated run")


def _live_writer(config, label):
    """A function that prints one line on the terminal now, even while output is captured."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:  # terminal output turned off (-p no:terminal)
        return lambda line: None

    def write(line):
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            reporter.write_line(f"  [{label}] {line}")
    return write


def _pytest(request, tmp_path, label, env_extra, *args):
    """Run pytest on ``args`` in a child process, streaming its per-test lines as they come."""
    env = child_env(NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"), PYTHONUNBUFFERED="1",
                    **{INNER: "1"})
    env.update(env_extra)
    cmd = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", *args]
    show = _live_writer(request.config, label)
    tail = collections.deque()
    tail_chars = 0
    collected = False  # the session header before "collected N items" is not shown
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        for line in proc.stdout:
            collected = collected or "collected" in line
            if collected and line.strip():
                show(line.rstrip())
            tail.append(line)
            tail_chars += len(line)
            while tail_chars > TAIL_CHARS and len(tail) > 1:
                tail_chars -= len(tail.popleft())
    output = "".join(tail)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{output}"
    assert " passed" in output, output


def test_bounds_checked_subset(request, tmp_path):
    _pytest(request, tmp_path, "boundscheck", {"NUMBA_BOUNDSCHECK": "1"},
            "tests/test_bounds_subset.py")


CUDA_TESTS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_cuda_*.py"))


@pytest.mark.skipif(not CUDA_TESTS, reason="no CUDA tests")
def test_cuda_simulator(request, tmp_path):
    pytest.importorskip("numba.cuda")
    _pytest(request, tmp_path, "cuda-sim", {"NUMBA_ENABLE_CUDASIM": "1"}, *CUDA_TESTS)
