"""Max unpooling: the values of a max pool put back at their indices, zeros elsewhere.

Both backends run it as an index scatter (``run_index_scatter`` with stores): the CPU one a
task per plane, the CUDA one a thread per value.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

import numpy as np

from . import dispatch
from ._checks import EXTREME_DTYPES, LAYOUTS, check_choice
from ._typing import Array, Device, Layout, Stream

__all__ = ["max_unpool"]

_VALUE_DTYPES = EXTREME_DTYPES + (np.dtype(np.bool_),)


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _result_shape(values, output_size, layout):
    """The result's shape and N from ``output_size`` (spatial sizes or a full shape)."""
    if not isinstance(output_size, (tuple, list)) or not all(_is_int(v) for v in output_size):
        raise TypeError(f"output_size must be a tuple of ints (the spatial sizes, or the full "
                        f"output shape); got {output_size!r}")
    size = tuple(int(v) for v in output_size)
    tail = 1 if layout == "channels_last" else 0
    if len(size) == values.ndim and values.ndim >= 3:  # a full shape: (N, C, *spatial) rule
        n = values.ndim - 2
        keep = [i for i in range(values.ndim) if not (values.ndim - n - tail <= i < values.ndim - tail)]
        if any(size[i] != values.shape[i] for i in keep):
            raise ValueError(f"output_size {size} is read as a full output shape (it has "
                             f"values.ndim = {values.ndim} entries) and must keep the batch "
                             f"and channel sizes of values {tuple(values.shape)}")
        size = size[values.ndim - n - tail:values.ndim - tail]
    n = len(size)
    if n == 0 or values.ndim < n + tail:
        raise ValueError(f"output_size {tuple(output_size)} needs values with at least "
                         f"{n + tail} dimensions in layout {layout!r}; got values.ndim == "
                         f"{values.ndim}")
    if any(v < 1 for v in size):
        raise ValueError(f"output_size must hold sizes >= 1; got {tuple(output_size)}")
    lead = tuple(values.shape[:values.ndim - n - tail])
    channels = values.shape[values.ndim - 1] if tail else 1  # (simulated shapes: no [-1])
    return lead + size + ((channels,) if tail else ()), lead, size, channels, n


def max_unpool(values: Array, indices: Array, output_size: Sequence[int], *,
               layout: Layout = "channels_first", out: Array | None = None,
               device: Device = None, stream: Stream = None) -> Array:
    """Max unpooling (``torch.nn.functional.max_unpool{1,2,3}d``, N-D, both layouts).

    The result is zero except that, in every plane, ``result.flat_plane[indices] = values``:
    the inverse of :func:`numbapool.max_pool` with ``return_indices=True`` at the winners.

    Parameters
    ----------
    values : array
        ``(*lead, *pooled)`` (channels-first) or ``(*lead, *pooled, C)`` (channels-last):
        a pool's result, of any max/min pooling dtype (or bool).
    indices : int array
        Shaped as ``values``: for each value, the flat row-major position inside its plane's
        output spatial extent (a pool's ``return_indices``).  With CUDA ``values`` they are
        checked on the device, and the host waits for the verdict; host indices are copied
        over.
    output_size : tuple of ints
        The N output spatial sizes (N is its length), or, as PyTorch accepts, a full output
        shape: with ``values.ndim`` entries (and ``values.ndim >= 3``) it is read as
        ``(batch, channel, *spatial)`` (channels-last: ``(batch, *spatial, channel)``),
        N = ``values.ndim - 2``, and the batch and channel sizes must be those of ``values``.
    layout : {"channels_first", "channels_last"}
        Whether a channel axis follows the spatial axes.
    out : array, optional
        The result, of the shape below and ``values``'s dtype.
    device : {None, "cpu", "cuda"}
        Where to compute; ``None`` means where ``values`` lives.
    stream : stream, optional
        CUDA only: the stream to run on (a Numba, ``torch.cuda`` or CuPy stream).  ``None``
        means the current stream of the library ``values`` comes from (Numba device arrays:
        the default stream).  Nothing waits for the result: read it on that stream.

    Returns
    -------
    array
        ``(*lead, *output_size)`` (channels-first) or ``(*lead, *output_size, C)``, of
        ``values``'s dtype.  Where several values share an index, the last one in row-major
        order of ``values`` wins on the CPU, as on PyTorch's; on CUDA any one of them may
        win (a thread per value stores it), as on PyTorch's CUDA.

    Raises
    ------
    TypeError
        Non-array input, a dtype outside those above, non-integer ``indices`` or an
        ``output_size`` that is not a tuple of ints.
    ValueError
        ``indices`` not shaped as ``values``, an index outside ``[0, prod(output_size))``
        (raised before anything is written), or a bad ``output_size``.

    Examples
    --------
    >>> import numpy as np, numbapool as nbp
    >>> x = np.array([[[1.0, 5.0, 3.0, 2.0]]])
    >>> v, i = nbp.max_pool(x, (2,), return_indices=True)
    >>> nbp.max_unpool(v, i, (4,))
    array([[[0., 5., 3., 0.]]])
    >>> nbp.max_unpool(v, i, (1, 1, 5)).shape  # a full shape, as torch accepts
    (1, 1, 5)
    """
    backend, values = dispatch.resolve(values, device, name="values", stream=stream)
    on_cuda = not isinstance(values, np.ndarray)
    check_choice(layout, "layout", LAYOUTS)
    if np.dtype(values.dtype) not in _VALUE_DTYPES:
        raise TypeError(f"values has dtype {values.dtype}; max_unpool accepts bool, "
                        f"{', '.join(d.name for d in EXTREME_DTYPES)}")
    if on_cuda and hasattr(indices, "shape"):  # stays on (or goes to) the device
        indices = dispatch.resolve(indices, "cuda", name="indices")[1]
    else:
        indices = dispatch.host_array(indices, "indices")
    if not hasattr(indices, "dtype") or np.dtype(indices.dtype).kind not in "iu":
        raise TypeError(f"indices must be an integer array; got dtype "
                        f"{getattr(indices, 'dtype', type(indices).__name__)}")
    if tuple(indices.shape) != tuple(values.shape):
        raise ValueError(f"indices has shape {tuple(indices.shape)}; it must be shaped as "
                         f"values {tuple(values.shape)}")
    shape, lead, size, channels, n = _result_shape(values, output_size, layout)
    from ._cpu import grad_kernels
    plane = prod(size)
    pooled = prod(values.shape[len(lead):len(lead) + n])
    plan = grad_kernels.ScatterPlan(prod(lead), plane, pooled, channels, shape,
                                    np.dtype(values.dtype), False)
    if on_cuda:
        result = backend.run_index_scatter(plan, values, out, indices)
    else:
        result = grad_kernels.run_index_scatter(plan, values, out, indices)
    if result is None:
        raise ValueError(f"indices holds positions outside [0, {plane}), the flat positions "
                         f"of an output plane of spatial size {size}")
    return result
