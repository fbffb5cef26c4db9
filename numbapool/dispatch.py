"""Where an array lives, which backend computes, and how results go back to the caller.

``resolve(x, device)`` returns ``(backend, x)``: the backend module that will run the op and
the main input as that backend wants it.  Backend modules are imported lazily, so
``import numbapool`` loads neither Numba's compiler nor the CUDA stack.
"""

from __future__ import annotations

import importlib

import numpy as np

DEVICES = (None, "cpu", "cuda")


def _backend(name):
    return importlib.import_module(f"numbapool._{name}.backend")


def resolve(x, device=None):
    """Pick the backend for main input ``x`` and the requested ``device``."""
    if device not in DEVICES:
        raise ValueError(f"device must be None, 'cpu' or 'cuda'; got {device!r}")
    if isinstance(x, np.ndarray):
        if device == "cuda":
            raise RuntimeError(
                "device='cuda' was requested but numbapool's CUDA backend is not available in "
                "this build"
            )
        return _backend("cpu"), x
    raise TypeError(
        f"x must be a NumPy ndarray; got {type(x).__module__}.{type(x).__qualname__} "
        "(convert lists and other array-likes with numpy.asarray)"
    )
