"""Count the host work of CUDA calls under Numba's CUDA simulator.

:func:`host_work` wraps the simulator's transfer, allocation, synchronisation and launch
entry points for the duration of a ``with`` block and counts what goes through them:

* ``to_device``: host-to-device copies (``cuda.to_device``, ``DeviceNDArray.copy_to_device``);
* ``to_host``: device-to-host copies (``copy_to_host``), each of which also waits for the GPU;
* ``synchronize``: explicit waits (``cuda.synchronize``, ``stream.synchronize``);
* ``alloc``: device allocations (``cuda.device_array``);
* ``host_args``: kernel launches given a host NumPy array, which Numba would copy over and
  back around the launch;
* ``launches``: kernel launches.

On a real GPU each of the first five costs a driver call or a wait; a call on CUDA-resident
inputs whose plan was seen before should make none of them but the result's allocation.
"""

from __future__ import annotations

import collections
import contextlib

import numpy as np
import pytest


@contextlib.contextmanager
def host_work():
    """``with host_work() as counts:`` counts the host work in the block."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield from _counting(monkeypatch)


def _counting(monkeypatch):
    from numba import cuda
    from numba.cuda.simulator import api, kernel
    from numba.cuda.simulator.cudadrv import devicearray

    counts = collections.Counter()

    def counting(key, func):
        def wrapper(*args, **kwargs):
            counts[key] += 1
            return func(*args, **kwargs)
        return wrapper

    fake = devicearray.FakeCUDAArray
    to_device = counting("to_device", devicearray.to_device)
    device_array = counting("alloc", devicearray.device_array)
    synchronize = counting("synchronize", api.synchronize)
    for module in (cuda, devicearray, api):
        for name, value in (("to_device", to_device), ("device_array", device_array),
                            ("synchronize", synchronize)):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, value)
    monkeypatch.setattr(fake, "copy_to_host", counting("to_host", fake.copy_to_host))
    monkeypatch.setattr(fake, "copy_to_device", counting("to_device", fake.copy_to_device))
    monkeypatch.setattr(api.stream, "synchronize", counting("synchronize", api.stream.synchronize))

    call = kernel.FakeCUDAKernel.__call__

    def launch(self, *args):
        if self._device or kernel._kernel_context:  # a device function, or inside a kernel
            return call(self, *args)
        counts["launches"] += 1
        if any(isinstance(a, np.ndarray) for a in args):
            counts["host_args"] += 1
        return call(self, *args)

    monkeypatch.setattr(kernel.FakeCUDAKernel, "__call__", launch)
    yield counts


#: The kinds of host work that a call on device inputs with a known plan must not do.
NONE_EXPECTED = ("to_device", "to_host", "synchronize", "host_args")

