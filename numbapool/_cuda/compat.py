"""Every use of ``numba.cuda`` goes through this module.

``numba.cuda`` comes from the ``numba-cuda`` package, which is in maintenance mode; its
successor has a different API and no simulator.  The few things numbapool needs (device
arrays, recognising and wrapping foreign CUDA arrays, streams, device properties, kernel
launch syntax) live here, so a port touches one small file.  Importing this module imports
the CUDA stack: only :mod:`numbapool._cuda`, :mod:`numbapool._info` and the dispatcher's
CUDA branch do, lazily.

Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` before Numba is imported) device
arrays are ``FakeCUDAArray`` wrappers of NumPy arrays: they have no
``__cuda_array_interface__`` and ``cuda.as_cuda_array`` does not exist, so device arrays are
recognised by the ``__cuda_ndarray__`` marker that real and simulated ones share.

>>> from numbapool._cuda import compat
>>> isinstance(compat.available(), bool)
True
"""

from __future__ import annotations

import collections
import contextlib
import functools
import importlib
import threading

import numpy as np

try:
    from numba import cuda
    _IMPORT_ERROR = None
except Exception as exc:  # ImportError, or numba-cuda failing to find its CUDA bindings
    cuda = None
    _IMPORT_ERROR = exc

#: Threads per block of every launch.  Tests lower it (with MAX_BLOCKS) so that tiny inputs
#: span several blocks and the grid-stride loops wrap.
THREADS_PER_BLOCK = 256
#: Cap on the blocks of one launch; None sizes the grid from the device (see launch).
MAX_BLOCKS = None
#: Grids are at least this many blocks on a real GPU: Numba warns (NumbaPerformanceWarning)
#: on every launch of a smaller grid, and the surplus blocks of a grid-stride kernel exit
#: at once.
MIN_BLOCKS = 128
#: Grids hold at most this many full waves of resident blocks; the loops cover the rest.
WAVES = 4


def _simulator_config() -> bool:
    if cuda is None:
        return False
    for name in ("numba.cuda.core.config", "numba.core.config"):  # numba-cuda, then numba
        try:
            config = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(config, "ENABLE_CUDASIM"):
            return bool(config.ENABLE_CUDASIM)
    return False


_SIMULATOR = _simulator_config()


def simulator() -> bool:
    """Whether kernels run in Numba's CUDA simulator (read once, when Numba was imported)."""
    return _SIMULATOR


def _require():
    if cuda is None:
        raise RuntimeError(f"CUDA is not available: {why_unavailable()}")
    return cuda


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """A usable CUDA device, or the simulator."""
    if cuda is None:
        return False
    try:
        return bool(cuda.is_available())
    except Exception:  # a broken driver install counts as "not available"
        return False


def why_unavailable() -> str:
    """Why :func:`available` is False, as advice for an error message."""
    if cuda is None:
        return (f"numba.cuda cannot be imported ({type(_IMPORT_ERROR).__name__}: "
                f"{_IMPORT_ERROR}); install it with pip install 'numbapool[cuda]' for a GPU, "
                "or 'numbapool[cuda-sim]' for Numba's CUDA simulator")
    if available():
        return "CUDA is available"
    return ("no CUDA GPU or driver was found (numba.cuda.is_available() is False); to run "
            "the CUDA kernels without a GPU, set NUMBA_ENABLE_CUDASIM=1 before importing "
            "numba or numbapool (Numba's CUDA simulator: correct but slow)")


def device_name() -> str | None:
    """Name of the current CUDA device (``None`` when CUDA is not available)."""
    if not available():
        return None
    if _SIMULATOR:
        return "Numba CUDA simulator"
    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


# --------------------------------------------------------------------------- device arrays


def is_device_array(obj) -> bool:
    """A Numba device array, real or simulated (both carry ``__cuda_ndarray__``)."""
    return getattr(obj, "__cuda_ndarray__", False) is True and hasattr(obj, "copy_to_host")


def as_device_array(obj):
    """A Numba device array viewing ``obj`` (a ``__cuda_array_interface__`` object), no copy.

    The view does not wait for the producer's stream (``sync=False``): the kernels run on
    the stream the caller named, by default the producer's current one, where the data is
    ready in stream order.  Data made on another stream is the caller's to order, as it is
    for the producer's own functions.
    """
    if is_device_array(obj):
        return obj
    if _SIMULATOR:
        raise TypeError(
            f"Numba's CUDA simulator cannot use {type(obj).__name__} arrays (it has no "
            "__cuda_array_interface__ support); pass a numba.cuda device array"
        )
    return _require().as_cuda_array(obj, sync=False)


def device_empty(shape, dtype, stream=0):
    """An uninitialised C-contiguous device array."""
    return _require().device_array(tuple(shape), np.dtype(dtype), stream=stream)


def to_device(host, stream=0):
    """A device copy of a host array (made C-contiguous first)."""
    return _require().to_device(np.ascontiguousarray(host), stream=stream)


def restrided(a, shape, strides):
    """A view of device array ``a`` with another shape and (non-negative, byte) strides.

    The view starts at ``a``'s first element; every element it reaches must lie inside
    ``a``'s memory (the caller's duty).
    """
    if _SIMULATOR:
        view = np.lib.stride_tricks.as_strided(a._ary, tuple(shape), tuple(strides))
        return type(a)(view)
    from numba.cuda.cudadrv.devicearray import DeviceNDArray
    return DeviceNDArray(tuple(shape), tuple(strides), a.dtype, stream=a.stream,
                         gpu_data=a.gpu_data)


def extent(a) -> tuple[int, int]:
    """``(first, end)`` byte addresses spanned by device array ``a`` (``(0, 0)`` if empty)."""
    if a.size == 0:
        return 0, 0
    if _SIMULATOR:
        start = a._ary.__array_interface__["data"][0]
    else:
        start = a.__cuda_array_interface__["data"][0]
    lo = hi = start
    for n, s in zip(a.shape, a.strides):
        if s < 0:
            lo += (n - 1) * s
        else:
            hi += (n - 1) * s
    return lo, hi + a.dtype.itemsize


# --------------------------------------------------------------------------- streams, devices


def external_stream(handle: int):
    """A Numba stream object for another library's stream (a ``cudaStream_t`` as int)."""
    if _SIMULATOR:
        return 0  # the simulator runs everything synchronously
    return _require().external_stream(handle)


def wait(stream=0):
    """Block the host until the work queued on ``stream`` (0: the whole device) is done."""
    if stream == 0 or stream is None:
        _require().synchronize()
    else:
        stream.synchronize()


def current_device_id() -> int:
    return 0 if _SIMULATOR else int(_require().get_current_device().id)


def on_device(device_id):
    """Context manager that makes ``device_id`` current for Numba (no-op for ``None``)."""
    if device_id is None or _SIMULATOR or device_id == current_device_id():
        return contextlib.nullcontext()
    return _require().gpus[int(device_id)]


@functools.lru_cache(maxsize=None)
def properties(device_id: int) -> dict:
    """Launch-relevant properties of a device: SMs, max threads per block and per SM."""
    if _SIMULATOR:
        return {"multiprocessors": 1, "max_threads_per_block": 1024,
                "max_threads_per_multiprocessor": 1024}
    dev = _require().get_current_device()
    if dev.id != device_id:
        with _require().gpus[device_id]:
            return properties(device_id)
    return {"multiprocessors": int(dev.MULTIPROCESSOR_COUNT),
            "max_threads_per_block": int(dev.MAX_THREADS_PER_BLOCK),
            "max_threads_per_multiprocessor": int(dev.MAX_THREADS_PER_MULTIPROCESSOR)}


# --------------------------------------------------------------------------- kernels


def jit(*args, **kwargs):
    """``numba.cuda.jit``."""
    return _require().jit(*args, **kwargs)


def grid_size(n_items: int) -> tuple[int, int]:
    """``(blocks, threads_per_block)`` for a grid-stride kernel over ``n_items`` items.

    Enough blocks to give every item a thread, capped at ``WAVES`` waves of the blocks the
    device keeps resident at once (the grid-stride loops cover the rest), and at least
    ``MIN_BLOCKS`` on a real GPU.
    """
    props = properties(current_device_id())
    tpb = max(1, min(THREADS_PER_BLOCK, props["max_threads_per_block"]))
    blocks = _capped_blocks(-(-n_items // tpb), tpb)
    if not _SIMULATOR:  # the simulator runs every thread of every block in Python
        blocks = max(blocks, MIN_BLOCKS)
    return max(1, blocks), tpb


def launch(kernel, n_items: int, *args, stream=0):
    """Launch grid-stride ``kernel(*args)`` over ``n_items`` items on ``stream``."""
    if n_items <= 0:
        return
    blocks, tpb = grid_size(n_items)
    kernel[blocks, tpb, stream](*args)


def launch_blocks(kernel, n_work: int, threads: int, *args, stream=0):
    """Launch ``kernel(*args)`` with ``threads`` per block over ``n_work`` block-sized items.

    For kernels that loop over their items with a block-stride loop: one block per item,
    capped like :func:`grid_size` at ``WAVES`` waves of resident blocks (and ``MAX_BLOCKS``).
    """
    if n_work <= 0:
        return
    kernel[max(1, _capped_blocks(n_work, threads)), threads, stream](*args)


def _capped_blocks(blocks: int, threads: int) -> int:
    """``blocks`` capped at ``WAVES`` waves of the device's resident blocks of ``threads``
    threads (and at ``MAX_BLOCKS``)."""
    props = properties(current_device_id())
    resident = props["multiprocessors"] * max(1, props["max_threads_per_multiprocessor"] // threads)
    blocks = min(blocks, WAVES * resident)
    return blocks if MAX_BLOCKS is None else min(blocks, MAX_BLOCKS)


class DeviceTables:
    """Small host tables copied to each device once per key, the ``size`` most recently
    used kept (thread-safe).  The first copy waits until it has landed, since later calls
    may read it from other streams; no later call of the key copies or waits."""

    def __init__(self, size=256):
        self.size = size
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, host, stream=0):
        """The device copy of ``host()`` (a NumPy array) for ``key`` on this device."""
        key = (current_device_id(), key)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        table = to_device(host(), stream)
        wait(stream)
        with self._lock:
            self._cache[key] = table
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return table
