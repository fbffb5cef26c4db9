"""Shared docstring text: each description common to several public functions, written once.

A docstring names shared entries by placeholder lines: a line holding only ``{name}``, or
``{name, name, ...}`` for several in a row.  :func:`fill` replaces each such line by the
entries of :data:`SHARED`, indented as the placeholder was, so the function's ``__doc__``
is a complete numpydoc docstring at run time, for ``help()``, Sphinx and doctest alike.
Lines indented under a placeholder go on with the description of its last entry: that is
where a function adds what is particular to it.  With ``like=other``, a placeholder may
also name a section of ``other``'s docstring (``{Raises}``), for a function whose section
is the same as another's.  Any other braces (``{"propagate", "omit"}``,
``max_pool{1,2,3}d``) are left as written.

Examples
--------
>>> @fill
... def pool(x, layout="channels_first"):
...     '''Pool.
...
...     Parameters
...     ----------
...     {x, layout}
...         Only this one's own words.
...     '''
>>> print(pool.__doc__)
Pool.
<BLANKLINE>
    Parameters
    ----------
    x : array
        ``(*lead, *spatial)`` (channels-first) or ``(*lead, *spatial, C)`` (channels-last);
        integer (8-64 bit, signed or unsigned) or float16/32/64.
    layout : {"channels_first", "channels_last"}
        Whether a channel axis follows the spatial axes.
        Only this one's own words.
<BLANKLINE>
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Callable
from typing import TypeVar

__all__ = ["SHARED", "fill"]

_Func = TypeVar("_Func", bound=Callable)


#: ``{placeholder name: numpydoc entry}``: a parameter (or exception) line and its
#: description, indented by four spaces.
SHARED = {
    # --- the input
    "x": (
        "x : array\n"
        "    ``(*lead, *spatial)`` (channels-first) or ``(*lead, *spatial, C)`` (channels-last);\n"
        "    integer (8-64 bit, signed or unsigned) or float16/32/64."
    ),
    # --- sliding windows
    "kernel_size": (
        "kernel_size : int or tuple of int\n"
        "    Window size; its length is N when a tuple, else N = ``x.ndim - 2``."
    ),
    "stride": (
        "stride : int or tuple of int, optional\n"
        "    Defaults to ``kernel_size``."
    ),
    "padding": (
        'padding : int, tuple, tuple of (before, after) pairs, "same" or "valid"\n'
        "    Every window must hold at least one input element."
    ),
    "dilation": (
        "dilation : int or tuple of int\n"
        "    Distance between window taps."
    ),
    "ceil_mode": (
        "ceil_mode : bool\n"
        "    Round the output size up; a last window starting in the right padding is dropped."
    ),
    "return_indices": (
        "return_indices : bool\n"
        "    Also return int64 indices (``out`` is then a ``(values, indices)`` pair): the flat\n"
        "    row-major position of each winner within its plane's unpadded spatial extent\n"
        "    (PyTorch's convention, in both layouts).  Ties go to the first element in\n"
        '    row-major window order; under ``"propagate"`` to the first NaN.'
    ),
    # --- adaptive windows
    "output_size": (
        "output_size : int or tuple of (int or None)\n"
        "    Output size per spatial dimension; a ``None`` entry keeps that dimension's\n"
        "    size.  Its length is N when a tuple, else N = ``x.ndim - 2``."
    ),
    # --- global pools
    "spatial_dims": (
        "spatial_dims : int, optional\n"
        "    How many spatial axes to reduce (default ``x.ndim - 2``): the last ones for\n"
        "    channels-first, the ones before the channel axis for channels-last."
    ),
    "keepdims": (
        "keepdims : bool\n"
        "    Keep the reduced axes with size 1 instead of dropping them."
    ),
    # --- NaN
    "nan_policy": (
        'nan_policy : {"propagate", "omit"}\n'
        '    ``"propagate"``: a NaN in a window gives NaN.  ``"omit"``: NaNs are ignored; a\n'
        "    window of only NaNs gives NaN."
    ),
    # --- every function
    "layout": (
        'layout : {"channels_first", "channels_last"}\n'
        "    Whether a channel axis follows the spatial axes."
    ),
    "out": (
        "out : array, optional\n"
        "    Preallocated result of the exact shape and dtype."
    ),
    "device": (
        'device : {None, "cpu", "cuda"}\n'
        "    Where to compute; ``None`` means where ``x`` lives.  The result is in the array\n"
        "    family of ``x`` (or of ``device``)."
    ),
    "stream": (
        "stream : stream, optional\n"
        "    CUDA only: the stream to run on (a Numba, ``torch.cuda`` or CuPy stream).  ``None``\n"
        "    means the current stream of the library ``x`` comes from (Numba device arrays: the\n"
        "    default stream).  Nothing waits for the result: read it on that stream."
    ),
    # --- Raises
    "TypeError": (
        "TypeError\n"
        "    For an unsupported type or dtype of ``x``, ``out`` or a parameter."
    ),
    "RuntimeError": (
        "RuntimeError\n"
        '    For ``device="cuda"`` where no CUDA device is available.'
    ),
    "ValueError": (
        "ValueError\n"
        "    For a value or shape that does not fit."
    ),
}

_PLACEHOLDER = re.compile(
    r"^(?P<indent>[ \t]*)\{(?P<names>[A-Za-z_]\w*(?:, *[A-Za-z_]\w*)*)\}[ \t]*$", re.M)
_SECTION = re.compile(r"^(\w[\w ]*)\n-+\n", re.M)


def _sections(func):
    """``{title: the whole section, header included}`` of ``func``'s numpydoc docstring."""
    doc = inspect.cleandoc(func.__doc__ or "")
    heads = list(_SECTION.finditer(doc))
    return {head[1]: doc[head.start(): after.start() if after else len(doc)].strip()
            for head, after in zip(heads, heads[1:] + [None])}


def fill(func: _Func | None = None, /, *, like: Callable | None = None
         ) -> _Func | Callable[[_Func], _Func]:
    """Decorator: expand the placeholder lines of ``func.__doc__``.

    Used bare (``@fill``), or as ``@fill(like=other)`` to let placeholders name the
    sections of ``other``'s (already filled) docstring as well.  A name that is neither
    raises ``KeyError`` when the module loads.
    """
    if func is None:
        return lambda f: fill(f, like=like)
    table = SHARED if like is None else {**SHARED, **_sections(like)}

    def expand(match):
        names = [n.strip() for n in match["names"].split(",")]
        missing = [n for n in names if n not in table]
        if missing:
            raise KeyError(f"{func.__qualname__}'s docstring names unknown entries {missing}")
        return textwrap.indent("\n".join(table[n] for n in names), match["indent"])

    func.__doc__ = _PLACEHOLDER.sub(expand, func.__doc__ or "")
    return func
