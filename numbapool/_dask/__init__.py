"""Dask arrays in, lazy dask arrays out: the routing decorator of the public functions.

:func:`dask_aware` wraps a public function so that a ``dask.array.Array`` as its main
input is handed to the dask implementation of the same name (``numbapool._dask.spatial``,
``.blocks``, ``.tokens``), which builds a graph whose tasks call the public function on
NumPy (or CuPy) blocks.  Anything else goes straight to the function.  The check reads
the type's module name, so dask is imported only when a dask array is given, and the
implementations (which import dask) are loaded on first use, as the backends are.
"""

from __future__ import annotations

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
    """Decorator: route a dask array given as ``func``'s first argument to the dask
    implementation ``name``.

    The wrapper is generated with ``func``'s own parameters and defaults (as
    :mod:`dataclasses` generates ``__init__``), so its code object names the same
    arguments as ``func``'s (the fixed-rank aliases read it) and a NumPy call costs one
    type check, with no packing of ``*args``.
    """

    def decorate(func):
        sig = inspect.signature(func)
        params, call, names = [], [], []
        star = False
        for p in sig.parameters.values():
            if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                raise TypeError(f"dask_aware cannot wrap {func.__name__}: parameter {p}")
            if p.kind is p.KEYWORD_ONLY and not star:
                params.append("*")
                star = True
            default = "" if p.default is p.empty else f"=_defaults[{p.name!r}]"
            params.append(p.name + default)
            call.append(p.name if p.kind is p.POSITIONAL_OR_KEYWORD else f"{p.name}={p.name}")
            names.append(p.name)
        first = names[0]
        arguments = ", ".join(f"{n!r}: {n}" for n in names)
        source = (
            f"def {func.__name__}({', '.join(params)}):\n"
            f"    if _is_dask({first}):\n"
            f"        return _run({name!r}, _func, {{{arguments}}})\n"
            f"    return _func({', '.join(call)})\n"
        )
        namespace = {"_defaults": {p.name: p.default for p in sig.parameters.values()},
                     "_is_dask": is_dask_array, "_run": _run, "_func": func}
        exec(compile(source, f"<dask_aware {func.__name__}>", "exec"), namespace)
        wrapper = namespace[func.__name__]
        wrapper.__module__ = func.__module__
        wrapper.__qualname__ = func.__qualname__
        wrapper.__doc__ = func.__doc__
        wrapper.__annotations__ = dict(func.__annotations__)
        wrapper.__wrapped__ = func
        wrapper.__dict__.update(func.__dict__)
        return wrapper

    return decorate
