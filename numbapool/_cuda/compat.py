"""Every use of ``numba.cuda`` goes through this module.

``numba.cuda`` comes from the ``numba-cuda`` package, which is in maintenance mode; its
successor differs (and has no simulator).  Keeping the imports and the few APIs we rely on
here means a port touches one small file.  Importing this module imports the CUDA stack,
so only :mod:`numbapool._cuda` and the dispatcher's CUDA branch (lazily) do.
"""

from __future__ import annotations

import os

import numpy as np

try:
    from numba import cuda
except ImportError:  # numba-cuda is an optional extra
    cuda = None

#: threads per block for every launch; tests lower it so tiny inputs span several blocks
THREADS_PER_BLOCK = 256


def simulator() -> bool:
    """Whether Numba's CUDA simulator is on (``NUMBA_ENABLE_CUDASIM=1``)."""
    return cuda is not None and os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def available() -> bool:
    """A usable CUDA device (or the simulator)."""
    if cuda is None:
        return False
    try:
        return bool(cuda.is_available())
    except Exception:  # a broken driver install reports itself as "not available"
        return False


def why_unavailable() -> str:
    if cuda is None:
        return ("numba-cuda is not installed (pip install 'numbapool[cuda]'), and the CUDA "
                "simulator needs it too")
    return ("no CUDA device or driver was found (numba.cuda.is_available() is False); set "
            "NUMBA_ENABLE_CUDASIM=1 before importing numbapool to use Numba's CUDA simulator")


def device_name() -> str | None:
    if not available():
        return None
    if simulator():
        return "Numba CUDA simulator"
    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def multiprocessors() -> int:
    """Streaming multiprocessors of the current device (1 under the simulator)."""
    if simulator():
        return 1
    return int(cuda.get_current_device().MULTIPROCESSOR_COUNT)


def is_device_array(obj) -> bool:
    """A Numba device array (real or simulated)."""
    if cuda is None:
        return False
    if simulator():
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
        return isinstance(obj, FakeCUDAArray)
    return cuda.is_cuda_array(obj) and hasattr(obj, "copy_to_host")


def as_device_array(obj):
    """A Numba view of any ``__cuda_array_interface__`` object, without a copy."""
    if is_device_array(obj):
        return obj
    return cuda.as_cuda_array(obj)


def to_device(host):
    return cuda.to_device(np.ascontiguousarray(host))


def device_empty(shape, dtype):
    return cuda.device_array(shape, dtype)


def jit(*args, **kwargs):
    return cuda.jit(*args, **kwargs)


def launch(kernel, n_items, *args):
    """Launch ``kernel`` with a 1-D grid sized for ``n_items`` and the device.

    Blocks are capped at a few waves of the device's multiprocessors; the kernels loop
    grid-stride over the rest.
    """
    if n_items == 0:
        return
    tpb = THREADS_PER_BLOCK
    blocks = max(1, min(-(-n_items // tpb), 32 * multiprocessors()))
    kernel[blocks, tpb](*args)
