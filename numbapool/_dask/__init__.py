"""Dask arrays in, lazy dask arrays out: the routing decorator of the public functions.

:func:`dask_aware` wraps a public function so that a ``dask.array.Array`` as its main
input is handed to the dask implementation of the same name (``numbapool._dask.spatial``,
``.blocks``, ``.tokens``), which builds a graph whose tasks call the public function on
NumPy (or CuPy) blocks.  Anything else goes straight to the function.  The check reads
the type's module name, so dask is imported only when a dask array is given, and the
implementations (which import dask) are loaded on first use, as the backends are.
"""

from __future__ import annotations

import functools
import importlib
import inspect

__all__ = ["dask_aware", "is_dask_array"]

#: Which implementation module holds each public function's dask version.
_MODULES = {"block_reduce": "blocks", "pyramid": "blocks", "pool_tokens": "tokens"}


def is_dask_array(x) -> bool:
    """Whether ``x`` is a dask array (or another dask collection with chunks), without
    importing dask."""
    module = type(x).__module__
    return (module == "dask" or module.startswith("dask.")) and hasattr(x, "dask") \
        and hasattr(x, "chunks")


def _run(name, func, arguments):
    """Call the dask implementation of ``name`` with ``func`` (the NumPy path, what each
    task runs) and every argument by name."""
    module = importlib.import_module(f"numbapool._dask.{_MODULES.get(name, 'spatial')}")
    return getattr(module, name)(func, **arguments)


def dask_aware(name: str):
    """Decorator: route a dask array given as ``func``'s first argument (by position or
    by name) to the dask implementation ``name``, with every argument bound by name;
    anything else goes straight to ``func``.  The wrapper keeps ``func``'s signature
    (:func:`inspect.signature` follows ``__wrapped__``)."""

    def decorate(func):
        sig = inspect.signature(func)
        first = next(iter(sig.parameters))

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if is_dask_array(args[0] if args else kwargs.get(first)):
                bound = sig.bind(*args, **kwargs)
                bound.apply_defaults()
                return _run(name, func, bound.arguments)
            return func(*args, **kwargs)

        return wrapper

    return decorate
