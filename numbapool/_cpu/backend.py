"""The CPU backend: the entry points the dispatcher calls for NumPy arrays.

``run_spatial(plan, x, out, result_shape)`` runs a :class:`~numbapool.plan.SpatialPlan`
(:mod:`numbapool._cpu.spatial`); ``run_tokens(plan, hidden, out, inputs)`` a
:class:`~numbapool.token_plan.TokenPlan` (:mod:`numbapool._cpu.tokens`);
``run_block_reduce(plan, x, out)`` a block reduction's plan (:mod:`numbapool._cpu.blocks`).
All honour ``out=`` and return NumPy arrays.  The first compile in a process is announced
at INFO on the ``numbapool`` logger (:mod:`numbapool._cpu.compile_notice`).
"""

from . import compile_notice
from .blocks import run_block_reduce
from .spatial import run_spatial
from .tokens import run_tokens

compile_notice.install()

__all__ = ["run_spatial", "run_tokens", "run_block_reduce"]
