"""numbapool: fast, exact pooling for NumPy (and CUDA) arrays, built on Numba.

Spatial pooling (max, min, average, Lp, adaptive, global, GeM) over any number of spatial
dimensions in channels-first or channels-last layout, and token pooling of sequences
(sentence embeddings: cls, last, mean, max, weighted, attention, ...; padded or packed),
and block reduction of arrays of any rank (sum, mean, max, min, median, mode) with pyramids.
NumPy arrays run on the CPU; CUDA arrays (Numba, CuPy, torch) on the GPU.  Importing this
package compiles nothing and does not import the CUDA stack; kernels are compiled (or
loaded from Numba's on-disk cache) on first use.

>>> import numpy as np, numbapool as nbp
>>> x = np.random.default_rng(0).random((8, 3, 32, 32), dtype=np.float32)
>>> nbp.max_pool2d(x, 2).shape
(8, 3, 16, 16)
"""

from . import spatial
from ._info import __version__ as __version__  # "as": an explicit re-export
from ._info import cuda_available, info
from .blocks import block_reduce, pyramid
from .spatial import *  # noqa: F401,F403 -- the names listed in spatial.__all__
from .tokens import TOKEN_MODES, pool_tokens
from .unpool import max_unpool

__all__ = ["pool_tokens", "TOKEN_MODES", "block_reduce", "pyramid", "max_unpool",
           "cuda_available", "info"]
__all__ += spatial.__all__  # a form that type checkers and IDEs follow


def __getattr__(name):
    """``numbapool.grad`` loads on first use: ``import numbapool`` stays light."""
    if name == "grad":
        import importlib

        return importlib.import_module(".grad", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
