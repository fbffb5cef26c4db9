"""The dispatcher in a process without CUDA: families, device=, errors, lazy imports."""

import os
import subprocess
import sys

import numpy as np
import pytest

import numbapool as nbp

NO_CUDA = not nbp.cuda_available()


def test_numpy_in_numpy_out():
    x = np.ones((2, 3, 4, 4), np.float32)
    assert isinstance(nbp.max_pool2d(x, 2), np.ndarray)
    assert isinstance(nbp.max_pool2d(x, 2, device="cpu"), np.ndarray)


@pytest.mark.skipif(not NO_CUDA, reason="CUDA is available here")
def test_cuda_requested_but_absent():
    with pytest.raises(RuntimeError, match="CUDA was requested but is not available"):
        nbp.max_pool2d(np.ones((1, 1, 4, 4), np.float32), 2, device="cuda")


@pytest.mark.parametrize("bad,exc,fragment", [
    ([[1.0, 2.0]], TypeError, "NumPy ndarray or a CUDA array"),
    ("abc", TypeError, "NumPy ndarray"),
    (None, TypeError, "NumPy ndarray"),
])
def test_unsupported_inputs(bad, exc, fragment):
    with pytest.raises(exc, match=fragment):
        nbp.max_pool(bad, (2,))


def test_bad_device_value():
    with pytest.raises(ValueError, match="device must be None, 'cpu' or 'cuda'"):
        nbp.max_pool2d(np.ones((1, 1, 4, 4)), 2, device="gpu")


def test_torch_cpu_tensor_is_refused_with_advice():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"x.numpy\(\)"):
        nbp.max_pool2d(torch.ones(1, 1, 4, 4), 2)


def test_info_and_cuda_available():
    info = nbp.info()
    for key in ("numba", "threading_layer", "threads", "cuda_available", "cuda_device",
                "cuda_simulator"):
        assert key in info
    assert info["cuda_available"] == nbp.cuda_available()
    assert isinstance(info["threads"], int) and info["threads"] >= 1


def test_import_is_light():
    """``import numbapool`` compiles nothing: it imports neither Numba nor the CUDA stack."""
    code = ("import sys, numbapool; "
            "print(any(m == 'numba' or m.startswith(('numba.', 'numba_cuda')) "
            "for m in sys.modules))")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.strip()
    assert out == "False"
