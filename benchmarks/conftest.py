"""Shared pieces of the benchmark suite: the copy roofline and optional PyTorch."""

import numpy as np
import pytest
from numba import njit, prange


@njit(parallel=True, cache=True)
def _parallel_copy(src, dst):
    for i in prange(src.size):
        dst[i] = src[i]


def copy_roofline(n_bytes):
    """A callable that moves ``n_bytes`` (read + write) with a parallel Numba copy.

    Pooling reads its input and writes its output once, so the time of this copy for
    ``(input bytes + output bytes) / 2`` read and written is the memory-bandwidth floor.
    """
    n = max(1, n_bytes // 2 // 4)
    src = np.ones(n, np.float32)
    dst = np.empty_like(src)
    _parallel_copy(src, dst)
    return lambda: _parallel_copy(src, dst)


@pytest.fixture(scope="session")
def torch_cpu():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(__import__("numba").get_num_threads())
    return torch
