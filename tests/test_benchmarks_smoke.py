"""Smoke runs of the benchmark suite, its report script and the command line (tiny shapes).

These check that every benchmark case runs, agrees with its PyTorch/NumPy formulations and
produces a report; they time nothing that is asserted.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numbapool import bench

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("case", bench.cases(quick=True), ids=lambda c: c.name)
def test_case_formulations_agree(case):
    """numbapool, NumPy and PyTorch compute the same thing in every benchmark case."""
    inputs = case.make()
    ours = case.ours(inputs)
    ours = ours[0] if isinstance(ours, tuple) else ours
    if case.numpy is not None:
        np.testing.assert_allclose(ours, case.numpy(inputs), rtol=1e-5, atol=1e-6)
    torch = pytest.importorskip("torch") if case.torch is not None else None
    if torch is not None:
        theirs = case.torch(torch, inputs)
        theirs = theirs[0] if isinstance(theirs, tuple) else theirs
        theirs = theirs.numpy()
        if "nhwc" in case.name:  # torch reports NCHW-shaped tensors; ours keep NHWC
            theirs = np.moveaxis(theirs, 1, -1)
        np.testing.assert_allclose(ours, theirs.reshape(ours.shape), rtol=1e-5, atol=1e-6)


def test_suite_and_report(tmp_path):
    pytest.importorskip("pytest_benchmark")
    env = dict(os.environ, NUMBAPOOL_BENCH_QUICK="1")
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "benchmarks/bench_suite.py", "--benchmark-only", f"--benchmark-json={out}",
           "--benchmark-min-time=0.0001", "--benchmark-max-time=0.001"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    md = tmp_path / "RESULTS.md"
    proc = subprocess.run([sys.executable, "benchmarks/report.py", str(out), "--out", str(md),
                           "--png", str(tmp_path / "r.png")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    text = md.read_text()
    for case in bench.cases(quick=True):
        assert f"| {case.name} |" in text
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- results:start -->\nold table\n<!-- results:end -->\ntail\n")
    proc = subprocess.run([sys.executable, "benchmarks/report.py", str(out), "--out", str(md),
                           "--png", str(tmp_path / "r.png"), "--readme", str(readme)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    updated = readme.read_text()
    assert "old table" not in updated and updated.endswith("<!-- results:end -->\ntail\n")
    assert "| max2d_k2_nchw |" in updated and "threading layer" in updated


def test_cli_bench_quick():
    proc = subprocess.run([sys.executable, "-m", "numbapool", "bench", "--quick"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "geometric mean" in proc.stdout and "max2d_k2_nchw" in proc.stdout
