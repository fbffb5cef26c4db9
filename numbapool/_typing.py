"""Type aliases of the public signatures.

The public modules use ``from __future__ import annotations``, so these names cost
nothing at call time; they are imported at run time (not under ``TYPE_CHECKING``) so that
``typing.get_type_hints`` resolves every public signature.

``Array`` is ``Any``: the functions take NumPy arrays and CUDA arrays of several libraries
(Numba device arrays, CuPy arrays, PyTorch CUDA tensors, any object with
``__cuda_array_interface__``), which share no common static type, and they return an array
of the input's family.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Optional, Tuple, Union

__all__ = ["Array", "Padding", "NanPolicy", "Layout", "Device", "Stream", "TokenMode"]

#: A NumPy array or a CUDA array (Numba, CuPy, PyTorch, ``__cuda_array_interface__``).
Array = Any

#: One int for every spatial dimension, one int per dimension, one ``(before, after)`` pair
#: per dimension, or a named rule.
Padding = Union[int, Sequence[int], Sequence[Tuple[int, int]], Literal["same", "valid"]]

#: What a NaN inside a window (or sequence) does to its result.
NanPolicy = Literal["propagate", "omit"]

#: Whether the channel axis, if any, follows the spatial axes.
Layout = Literal["channels_first", "channels_last"]

#: Where to compute; ``None`` means where the input lives.
Device = Optional[Literal["cpu", "cuda"]]

#: The CUDA stream of a call: ``None`` (the input library's current stream; Numba's default
#: stream for Numba device arrays), a Numba stream, a ``torch.cuda.Stream`` or a CuPy stream.
Stream = Any

#: A token pooling mode (the entries of :data:`numbapool.TOKEN_MODES`).
TokenMode = Literal["cls", "last", "mean", "sum", "max", "min", "mean_sqrt_len",
                    "weighted_mean", "weighted", "attention"]
