"""Shared pieces of the benchmark suite: quick mode, the copy roofline and optional PyTorch.

Set ``NUMBAPOOL_BENCH_QUICK=1`` to run every case on tiny shapes (a smoke run of each code
path, as the test suite does with ``--benchmark-disable``).
"""

import os

import pytest

from numbapool.bench import copy_roofline  # noqa: F401  (imported by the bench modules)

QUICK = os.environ.get("NUMBAPOOL_BENCH_QUICK", "") not in ("", "0")


@pytest.fixture(scope="session")
def torch_cpu():
    """PyTorch with as many threads as Numba uses, or a skip when it is not installed."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(__import__("numba").get_num_threads())
    return torch


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record Numba's thread count, threading layer (known once a kernel has run) and the
    instruction set the kernels were compiled for."""
    import numba

    from numbapool._info import cpu_code

    machine_info["numba_threads"] = numba.get_num_threads()
    machine_info["numbapool_cpu_code"] = cpu_code()
    try:
        machine_info["numba_threading_layer"] = numba.threading_layer()
    except ValueError:  # no parallel kernel ran in this session
        pass
