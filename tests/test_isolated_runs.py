"""Subsets of the suite that need their own process (Numba reads its config at import).

* ``NUMBA_BOUNDSCHECK=1``: every array access in the kernels is bounds-checked, so an
  out-of-bounds read raises IndexError instead of passing silently.
* ``NUMBA_ENABLE_CUDASIM=1``: the CUDA kernels run in Numba's CUDA simulator.

Each run gets a private Numba cache directory, so code compiled with different settings is
never shared.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INNER = "NUMBAPOOL_ISOLATED_RUN"

pytestmark = pytest.mark.skipif(bool(os.environ.get(INNER)), reason="already inside an isolated run")


def _pytest(tmp_path, env_extra, *args):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"), **{INNER: "1"})
    env.update(env_extra)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{tail}"
    assert " passed" in proc.stdout, tail
    return proc.stdout


def test_bounds_checked_subset(tmp_path):
    _pytest(tmp_path, {"NUMBA_BOUNDSCHECK": "1"}, "tests/test_bounds_subset.py")


@pytest.mark.skipif(not (ROOT / "tests" / "test_cuda_sim.py").exists(), reason="no CUDA tests")
def test_cuda_simulator(tmp_path):
    pytest.importorskip("numba.cuda")
    _pytest(tmp_path, {"NUMBA_ENABLE_CUDASIM": "1"}, "tests/test_cuda_sim.py")
