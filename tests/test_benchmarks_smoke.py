"""Smoke runs of the benchmark suite, its report script and the command line (tiny shapes).

These check that every benchmark case runs, agrees with its PyTorch/NumPy formulations and
produces a report; they time nothing that is asserted.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numbapool import bench

from conftest import child_env

ROOT = Path(__file__).resolve().parent.parent


def _arrays(result):
    return result if isinstance(result, tuple) else (result,)


@pytest.mark.parametrize("case", bench.cases(quick=True), ids=lambda c: c.name)
def test_case_formulations_agree(case):
    """numbapool, NumPy, the naive loops and PyTorch compute the same thing in every
    benchmark case."""
    inputs = case.make()
    ours = case.ours(inputs)
    impls = ["numpy", "naive"] + (["torch"] if importlib.util.find_spec("torch") else [])
    compared = 0
    for impl in impls:
        call = bench.prepared(case, impl, inputs)
        if call is None:
            continue
        for got, want in zip(_arrays(ours), _arrays(call()), strict=True):
            assert got.shape == want.shape and got.dtype == want.dtype, impl
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=impl)
        compared += 1
    assert compared, "no outside formulation covers this case"


def test_numpy_column_is_empty_only_for_indices():
    """Every case has a NumPy formulation except the indices ones (NumPy gives none)."""
    for case in bench.cases(quick=True):
        covered = bench.prepared(case, "numpy", case.make()) is not None
        assert covered != case.kwargs.get("return_indices", False), case.name


def test_suite_and_report(tmp_path):
    pytest.importorskip("pytest_benchmark")
    env = child_env(NUMBAPOOL_BENCH_QUICK="1")
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
    out = proc.stdout
    assert "geometric-mean speedup over naive" in out and "max2d_k2_nchw" in out
    # tiny shapes time call overhead: the quick table gives no roofline fraction
    assert "of roofline" not in out and "roofline fraction" not in out
    assert "kernels compiled for" in out  # the CPU and its instruction set head the table


@pytest.mark.parametrize("path", ["benchmarks/bench_design.py", "benchmarks/bench_tokens.py",
                                  "benchmarks/bench_crossover.py",
                                  "benchmarks/bench_coldstart.py"])
def test_other_benchmark_files_run(path):
    """Each benchmark file runs once on tiny shapes (the design benchmark calls private
    kernels directly, so a change of their signatures must show here)."""
    pytest.importorskip("pytest_benchmark")
    env = child_env(NUMBAPOOL_BENCH_QUICK="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", path,
           "--benchmark-disable"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert " passed" in proc.stdout
