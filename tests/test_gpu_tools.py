"""The GPU tools in benchmarks/, without a GPU.

``bench_gpu.py``: its cases build, and without a GPU the script stops with a message.  ``cuda_registers.py``: the
faked CUDA backend collects spatial and token launches and leaves the backend as it was;
the PTX compile step runs where libNVVM is installed and is skipped where it is not.
"""

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import numbapool as nbp

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _load(name):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench_gpu():
    return _load("bench_gpu")


@pytest.fixture(scope="module")
def cuda_registers():
    return _load("cuda_registers")


# --------------------------------------------------------------------------- bench_gpu


@pytest.mark.parametrize("quick", [False, True])
def test_bench_gpu_cases_build_without_a_gpu(bench_gpu, quick):
    cases = bench_gpu.cases(quick=quick)
    names = [c.name for c in cases]
    assert len(names) == len(set(names))
    for required in ("max2d_k2_nchw", "max2d_k2_nhwc", "max2d_k3s2p1_nchw",
                     "max2d_k3s2p1_nhwc", "avg2d_k2_nchw", "global_avg_nchw",
                     "global_max_large_nchw", "gem_p3_nchw", "lp2d_p2_k2_nchw",
                     "tokens_mean", "tokens_max", "tokens_mean_f16", "max2d_k2_nchw_f16"):
        assert required in names
    for case in cases + [bench_gpu.small_case()]:
        assert callable(getattr(nbp, case.function)), case.name
        assert callable(case.reference) and case.reference_text
        assert all(isinstance(n, int) and n > 0 for n in case.shape), case.name
        assert case.dtype in ("float16", "float32")
        assert case.layout in ("channels_first", "channels_last", "tokens")
        assert (len(case.shape) == 3) == (case.kind == "tokens")
    by_name = {c.name: c for c in bench_gpu.cases()}
    assert by_name["max2d_k2_nchw"].shape == (32, 64, 112, 112)
    assert by_name["global_avg_nchw"].shape == (64, 2048, 7, 7)
    assert by_name["global_max_large_nchw"].shape == (1, 3, 2048, 2048)
    assert by_name["tokens_mean"].shape == (64, 512, 768)


def test_bench_gpu_without_a_gpu_exits_with_a_message(bench_gpu, capsys):
    reason = bench_gpu.unavailable_reason()
    if reason is None:
        pytest.skip("a GPU with torch CUDA is here: the benchmark would run")
    with pytest.raises(SystemExit) as exc:
        bench_gpu.main(["--quick"])
    message = str(exc.value.code)
    assert message.startswith("bench_gpu: cannot run here: ") and reason in message
    assert "GPU" in message and "pip install" in message
    assert "Traceback" not in capsys.readouterr().err


# --------------------------------------------------------------------------- cuda_registers


def _compat():
    if SIMULATOR:
        pytest.skip("launches are collected without Numba's CUDA simulator")
    compat = pytest.importorskip("numbapool._cuda.compat")
    if compat.cuda is None:
        pytest.skip("numba-cuda is not installed")
    return compat


def test_cuda_registers_collects_spatial_and_token_kernels(cuda_registers):
    compat = _compat()
    before = {name: getattr(compat, name) for name in ("launch", "launch_blocks", "_require",
                                                       "available")}
    records = cuda_registers.collect()
    assert {name: getattr(compat, name) for name in before} == before  # put back
    groups = {r.group for r in records}
    assert groups == {"spatial", "tokens"}
    assert all(r.threads > 0 and r.blocks > 0 for r in records)
    found = cuda_registers.variants(records)
    kinds = {g for v in found for g in v.groups}
    assert {"spatial", "tokens"} <= kinds
    for v in found:
        assert v.signature and len(v.signature) == len(v.params), v.name
    spec = cuda_registers.specialisations(found)
    assert len({(v.name, spec[id(v)]) for v in found}) == len(found)  # told apart


def test_cuda_registers_tells_factory_kernels_apart(cuda_registers):
    """Kernels made by a factory (closures) are variants by their closure values."""
    compat = _compat()

    def factory(taps):
        def kernel(x, out):
            i = compat.cuda.grid(1)
            if i < out.size:
                out[i] = x[i] * taps
        return compat.jit(kernel)

    x = cuda_registers.StandIn(np.zeros(4, np.float32))
    records = [cuda_registers.Recorded(factory(t), (x, x), 1, 256, 0, f"taps {t}", "spatial")
               for t in (2, 3, 2)]
    found = cuda_registers.variants(records)
    assert [dict(v.closure)["taps"] for v in found] == ["2", "3"]
    assert found[0].calls == 2 and found[1].calls == 1
    spec = cuda_registers.specialisations(found)
    assert [spec[id(v)] for v in found] == ["taps=2", "taps=3"]


def test_cuda_registers_compiles_or_skips(cuda_registers):
    """The compile step, where libNVVM (and ptxas) are installed; a clean skip elsewhere."""
    _compat()
    try:
        compile_ = cuda_registers.ptx_compiler((9, 0))
    except cuda_registers.ToolchainMissing as exc:
        assert "pip install" in str(exc)
        pytest.skip(f"no PTX compiler here: {exc}")
    host = np.zeros((2, 3, 8, 9), np.float32)
    calls = [("spatial", "strided max_pool2d",
              lambda: nbp.max_pool2d(cuda_registers.StandIn(host[..., ::2]), 2))]
    found = cuda_registers.variants(cuda_registers.collect(calls))
    assert len(found) == 2  # the strided copy, then the pool
    copy = found[0]
    ptx = compile_(copy.func, copy.signature, copy.options)
    assert ".target sm_90" in ptx
    ptxas, how = cuda_registers.find_ptxas()
    if ptxas is None:
        pytest.skip(how)
    res = cuda_registers.assemble(ptxas, ptx, (9, 0))
    assert 0 < res.registers <= 255


def test_occupancy_formula(cuda_registers):
    occupancy = cuda_registers.occupancy
    assert occupancy(80, 256) == (3, "registers", 0.375)  # 2560 regs/warp: 6 warps/quarter
    assert occupancy(46, 256) == (5, "registers", 0.625)
    assert occupancy(32, 256) == (8, "threads/registers", 1.0)
    assert occupancy(16, 64) == (32, "threads/blocks", 1.0)
    assert occupancy(16, 32) == (32, "blocks", 0.5)
    assert occupancy(92, 256, 24576) == (2, "registers", 0.25)
    assert occupancy(16, 256, 100 * 1024) == (2, "shared memory", 0.25)
    assert occupancy(255, 1024)[0] == 0  # 1024 threads of 255 registers do not fit


def test_parse_ptxas(cuda_registers):
    report = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_Z6kernel' for 'sm_90'
ptxas info    : Function properties for _Z6kernel
    16 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 72 registers, used 1 barriers, 24576 bytes smem, 400 bytes cmem[0]
ptxas info    : Compile time = 12.000 ms
"""
    res = cuda_registers.parse_ptxas(report)
    assert (res.registers, res.shared, res.stack, res.spill_stores, res.spill_loads) == \
        (72, 24576, 16, 8, 12)
    with pytest.raises(RuntimeError, match="one entry function"):
        cuda_registers.parse_ptxas("ptxas info    : 0 bytes gmem\n")
