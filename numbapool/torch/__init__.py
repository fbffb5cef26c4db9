"""PyTorch integration: ``torch.nn.functional``'s pooling functions computed by numbapool.

``import numbapool.torch`` (it needs torch; ``import numbapool`` alone never imports it)
gives functions with ``torch.nn.functional``'s names, signatures and defaults --
``max_pool1d/2d/3d`` (with ``return_indices``), ``avg_pool…``, ``lp_pool…``,
``adaptive_max_pool…``, ``adaptive_avg_pool…``, ``max_unpool…`` -- plus
:func:`pool_tokens`, and :mod:`numbapool.torch.nn` gives the matching modules and a
sentence-transformers ``Pooling``.  Tensors in, tensors out, on the input's device;
differentiable, the backward computed by :mod:`numbapool.grad`.

* CPU tensors reach the kernels without a copy (the NumPy array viewing their memory) and
  the results are wrapped without one; CUDA tensors go to numbapool's CUDA kernels as they
  are, forward and backward.
* A ``channels_last`` (or ``channels_last_3d``) tensor is pooled in place through its
  ``(N, *spatial, C)`` view, and the result is ``channels_last`` too, as torch's is.
* Max pools compute the winners' indices only when ``return_indices=True`` or a gradient
  will be needed (``torch.is_grad_enabled()`` and ``input.requires_grad``); the backward
  routes each output's gradient to its winner: the first in window order among ties, the
  first NaN when there is one (torch's CPU rule).
* Works under ``torch.no_grad()`` and ``torch.inference_mode()``.

Where this differs from torch:

* Padding: torch requires ``padding <= kernel_size // 2`` (and for dilated max pools the
  effective kernel's half); numbapool accepts any padding that leaves every window at
  least one element, so calls torch refuses may succeed here.
* Integer inputs: ``max_pool…`` and ``adaptive_max_pool…`` take them (torch's CPU
  max_pool does too; its adaptive max pool does not); the averaging pools raise
  ``TypeError`` where torch returns a truncated integer average.  bfloat16 raises
  ``TypeError`` (NumPy has no bfloat16).
* ``lp_pool…`` with ``ceil_mode=True`` follows torch's formula, which scales the mean of a
  last, partial window by the whole kernel's size: it is computed as torch computes it,
  from an average pool of ``input ** norm_type``.

``torch.compile``: every function is built from ``torch.library.custom_op`` operators
(``numbapool::pool``, ``numbapool::pool_with_indices``, ``numbapool::pool_backward``,
``numbapool::max_unpool``, ``numbapool::pool_tokens``, ``numbapool::pool_tokens_backward``)
with fake implementations and registered autograd formulas, so a compiled function keeps
them in its graph as opaque calls: ``fullgraph=True`` works, and the graph around them is
compiled as usual.

>>> import torch, numbapool.torch as nt
>>> x = torch.arange(16.).reshape(1, 1, 4, 4)
>>> nt.max_pool2d(x, 2)
tensor([[[[ 5.,  7.],
          [13., 15.]]]])
"""

from . import functional
from .functional import *  # noqa: F401,F403 -- the names listed in functional.__all__
from . import nn  # noqa: E402 -- numbapool.torch.nn, the modules

__all__ = list(functional.__all__) + ["nn"]
