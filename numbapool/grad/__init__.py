"""Gradients of numbapool's pooling functions with respect to their inputs.

For every differentiable function ``f`` of :mod:`numbapool` (the spatial pools and
:func:`numbapool.pool_tokens`), ``numbapool.grad.f(grad_out, x, *args, **kwargs)`` takes the
forward's arguments after the upstream gradient and returns the gradient with respect to
``x`` (for ``pool_tokens`` with ``weights`` or ``scores``, a tuple that adds theirs).

Arrays are taken where they live, as by the forward functions: NumPy arrays on the CPU,
CUDA arrays (Numba, CuPy, torch) on the GPU, with ``device=`` and ``stream=`` as the
forward's.  On CUDA the max/min gradients add with atomics, so a sum at a winner shared by
several windows may differ in its last bits between runs; the other gradients are
deterministic.

>>> import numpy as np
>>> from numbapool import grad
>>> grad.avg_pool(np.ones((1, 1, 2)), np.zeros((1, 1, 4)), (2,))
array([[[0.5, 0.5, 0.5, 0.5]]])
"""

from . import spatial
from .spatial import *  # noqa: F401,F403 -- the names listed in spatial.__all__
from .tokens import pool_tokens

__all__ = ["pool_tokens"]
__all__ += spatial.__all__
