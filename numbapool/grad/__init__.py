"""Gradients of numbapool's pooling functions with respect to their inputs.

For every differentiable function ``f`` of :mod:`numbapool` (the spatial pools and
:func:`numbapool.pool_tokens`), ``numbapool.grad.f(grad_out, x, *args, **kwargs)`` takes the
forward's arguments after the upstream gradient and returns the gradient with respect to
``x`` (for ``pool_tokens`` with ``weights`` or ``scores``, a tuple that adds theirs).
"""

from . import spatial
from .spatial import *  # noqa: F401,F403 -- the names listed in spatial.__all__
from .tokens import pool_tokens

__all__ = ["pool_tokens"]
__all__ += spatial.__all__
