"""How the CPU kernels' helper functions are compiled.

Numba gives every ``@njit`` function a CPython wrapper, the code that unboxes its
arguments when it is called from Python.  A helper only ever called from jitted code never
runs that wrapper, yet compiling it costs as much as a small kernel (every argument's
unboxing, through LLVM): over the few dozen helpers of a kernel, about a quarter of a
first call's compile time.  So helpers are compiled without it; the entry points that
Python calls (``*_tasks``, ``token_serial``, ...) keep theirs.
"""

from numba import njit


def helper(func=None, **options):
    """``@njit(cache=True)`` for a function that only jitted code calls: ``@helper`` or
    ``@helper(inline="always", ...)``."""
    decorate = njit(cache=True, no_cpython_wrapper=True, **options)
    return decorate if func is None else decorate(func)
