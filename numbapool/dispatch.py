"""Where an array lives, which backend computes, and how results go back to the caller.

``resolve(x, device)`` returns ``(backend, x)``: an object with the backend's ``run_*``
entry points (``run_spatial(plan, x, out, result_shape)``, ``run_tokens(...)``) and the
main input as that backend wants it (a NumPy array, or a Numba device array).  The
entry points return results in the caller's family:

* NumPy in -> CPU kernels -> NumPy out;
* a Numba device array (or a simulator one) -> CUDA kernels -> Numba device array;
* CuPy / PyTorch CUDA arrays (anything with ``__cuda_array_interface__``) -> CUDA kernels
  on a zero-copy Numba view -> the result wrapped back, zero-copy, as CuPy / torch;
* ``device="cuda"`` with NumPy input: copied to the GPU, Numba device array out;
  ``device="cpu"`` with a CUDA input: copied to the host, NumPy out.

Backend modules are imported lazily, so ``import numbapool`` loads neither Numba's
compiler nor the CUDA stack.  :func:`host_array` brings auxiliary arrays (masks, lengths,
weights) to the host, where plans are built.
"""

from __future__ import annotations

import importlib
import sys

import numpy as np

DEVICES = (None, "cpu", "cuda")


def _backend(name):
    return importlib.import_module(f"numbapool._{name}.backend")


def _family(x):
    """'numpy', 'numba', 'cupy', 'torch', 'cuda' (another CUDA array) or None."""
    if isinstance(x, np.ndarray):
        return "numpy"
    module = type(x).__module__.split(".")[0]
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return "torch" if x.is_cuda else "torch_cpu"
    if module == "cupy":
        return "cupy"
    if module in ("numba", "numba_cuda") and hasattr(x, "copy_to_host"):
        return "numba"  # simulator arrays too, which lack __cuda_array_interface__
    if hasattr(x, "__cuda_array_interface__"):
        return "cuda"
    return None


def _compat():
    from ._cuda import compat
    return compat


def _require_cuda():
    compat = _compat()
    if not compat.available():
        raise RuntimeError(f"CUDA was requested but is not available: {compat.why_unavailable()}")
    return compat


def _to_numba(x, family):
    """A contiguous Numba device view of a CUDA array of ``family`` (copying only if strided)."""
    if family == "cupy":
        import cupy
        x = cupy.ascontiguousarray(x)
    elif family == "torch":
        x = x.contiguous()
    return _compat().as_device_array(x)


def _from_numba(arr, family):
    """A Numba device result handed back as ``family``, without a copy."""
    if family == "cupy":
        import cupy
        return cupy.asarray(arr)
    if family == "torch":
        import torch
        return torch.as_tensor(arr, device="cuda")
    return arr


class _CudaBackend:
    """The CUDA backend seen through a caller's array family (CuPy, torch or Numba)."""

    def __init__(self, module, family):
        self._module = module
        self._family = family

    def __getattr__(self, name):
        run = getattr(self._module, name)

        def call(plan, x, out, *rest):
            # an out= of another family goes through unconverted, for the backend to reject
            work = _map(out, lambda a: _to_numba(a, self._family)
                        if _family(a) == self._family else a)
            result = run(plan, x, work, *rest)
            if out is not None:
                return out
            return _map(result, lambda a: _from_numba(a, self._family))

        return call


def _map(value, f):
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(_map(v, f) for v in value)
    return f(value)


def host_array(a, name):
    """An auxiliary array (mask, lengths, weights, ...) as NumPy, wherever it lives."""
    if a is None or isinstance(a, np.ndarray):
        return a
    family = _family(a)
    if family in ("numba", "cupy", "torch", "cuda"):
        if family == "torch":
            return a.detach().cpu().numpy()
        if family == "cupy":
            return a.get()
        return _to_numba(a, family).copy_to_host()
    if family == "torch_cpu":
        return a.detach().numpy()
    return np.asarray(a)


def resolve(x, device=None):
    """Pick the backend for main input ``x`` and the requested ``device``."""
    if device not in DEVICES:
        raise ValueError(f"device must be None, 'cpu' or 'cuda'; got {device!r}")
    family = _family(x)
    if family == "numpy":
        if device == "cuda":
            compat = _require_cuda()
            return _CudaBackend(_backend("cuda"), "numba"), compat.to_device(x)
        return _backend("cpu"), x
    if family in ("numba", "cupy", "torch", "cuda"):
        if device == "cpu":
            return _backend("cpu"), host_array(x, "x")
        _require_cuda()
        return _CudaBackend(_backend("cuda"), family), _to_numba(x, family)
    if family == "torch_cpu":
        raise TypeError("x is a CPU torch.Tensor; pass x.numpy() (no copy) or a CUDA tensor")
    raise TypeError(
        f"x must be a NumPy ndarray or a CUDA array (Numba device array, CuPy, torch CUDA "
        f"tensor); got {type(x).__module__}.{type(x).__qualname__} (convert lists and other "
        "array-likes with numpy.asarray)"
    )
