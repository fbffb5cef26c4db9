"""Outside formulations of every public pooling function: PyTorch CPU and plain NumPy.

``COMPARISONS[name]`` is a :class:`Formulations` pair for the public function
``numbapool.<name>``: ``torch`` (PyTorch CPU) and ``numpy`` (NumPy alone), or ``None`` where no
such formulation is reasonable.  Each takes the numbapool function's arguments (less ``out``
and ``device``) and returns NumPy arrays shaped exactly as numbapool's result, so results
compare directly.  A formulation that covers only some arguments raises
``NotImplementedError`` naming the argument it does not cover; its docstring lists what it
covers.  torch's own limits show as torch's errors: ``RuntimeError`` for a geometry it
refuses, ``NotImplementedError`` for a dtype its CPU kernel lacks (integers in
``max_pool1d`` without indices and in adaptive max pooling).  Inputs are NumPy arrays.

Two readers keep these honest.  The benchmark (:mod:`numbapool.bench`) times them next to
numbapool, so they are written as fast as their library allows: torch shares the input's
memory (channels-last input is seen as torch's ``channels_last`` format, never copied), and
NumPy reduces window views or reshaped blocks.  The test suite checks each of them against
a naive oracle written from the formulas, so every benchmark column is known to compute
the same thing as numbapool.  PyTorch is imported on first use, not with this package.
The formulations live in ``_torch`` and ``_numpy``, the helpers they share in
``_shared``.

:data:`NAIVE` holds a third kind, for a few functions only: the plain Numba loop a user
would write (``_naive``), the benchmark's floor.

Examples
--------
>>> import numpy as np
>>> from numbapool.comparisons import COMPARISONS
>>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
>>> COMPARISONS["max_pool"].numpy(x, 2)[0, 0]
array([[ 5.,  7.],
       [13., 15.]], dtype=float32)
>>> COMPARISONS["max_pool"].numpy(x, 2, return_indices=True)
Traceback (most recent call last):
...
NotImplementedError: return_indices=True: NumPy gives no positions of window maxima
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

from ._naive import (
    _naive_avg_pool, _naive_global_avg_pool, _naive_global_max_pool, _naive_max_pool,
)
from ._numpy import (
    _np_adaptive_avg_pool, _np_adaptive_max_pool, _np_avg_pool, _np_gem_pool,
    _np_global_avg_pool, _np_global_max_pool, _np_lp_pool, _np_max_pool, _np_min_pool,
    _np_pool_tokens,
)
from ._torch import (
    _torch_adaptive_avg_pool, _torch_adaptive_max_pool, _torch_avg_pool, _torch_gem_pool,
    _torch_global_avg_pool, _torch_global_max_pool, _torch_lp_pool, _torch_max_pool,
    _torch_min_pool, _torch_pool_tokens,
)

__all__ = ["COMPARISONS", "Formulations", "NAIVE"]


class Formulations(NamedTuple):
    """The outside formulations of one numbapool function (``None``: there is none).

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> from numbapool.comparisons import COMPARISONS
    >>> x = np.random.default_rng(0).random((2, 3, 8, 8))
    >>> np.allclose(COMPARISONS["avg_pool"].numpy(x, 3, 2, 1), nbp.avg_pool(x, 3, 2, 1))
    True
    """

    torch: Optional[Callable]
    numpy: Optional[Callable]


# --------------------------------------------------------------------------- the registry

#: ``{public function name: Formulations(torch=..., numpy=...)}``.
COMPARISONS = {
    "max_pool": Formulations(_torch_max_pool, _np_max_pool),
    "min_pool": Formulations(_torch_min_pool, _np_min_pool),
    "avg_pool": Formulations(_torch_avg_pool, _np_avg_pool),
    "lp_pool": Formulations(_torch_lp_pool, _np_lp_pool),
    "adaptive_max_pool": Formulations(_torch_adaptive_max_pool, _np_adaptive_max_pool),
    "adaptive_avg_pool": Formulations(_torch_adaptive_avg_pool, _np_adaptive_avg_pool),
    "global_max_pool": Formulations(_torch_global_max_pool, _np_global_max_pool),
    "global_avg_pool": Formulations(_torch_global_avg_pool, _np_global_avg_pool),
    "gem_pool": Formulations(_torch_gem_pool, _np_gem_pool),
    "pool_tokens": Formulations(_torch_pool_tokens, _np_pool_tokens),
}

#: ``{public function name: the plain Numba loop}`` for the benchmark's main cases (2-D
#: float pools, NaN propagated); see :mod:`numbapool.comparisons._naive`.
NAIVE = {
    "max_pool": _naive_max_pool,
    "avg_pool": _naive_avg_pool,
    "global_max_pool": _naive_global_max_pool,
    "global_avg_pool": _naive_global_avg_pool,
}
