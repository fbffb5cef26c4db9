"""Argument checks shared by every public function.

They run before any kernel: ``TypeError`` for a wrong type or dtype, ``ValueError`` for a
wrong value or shape, each message naming the parameter, what was given and what is
accepted.
"""

from __future__ import annotations

import numbers

import numpy as np

INT_DTYPES = tuple(np.dtype(t) for t in (
    np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64))
FLOAT_DTYPES = tuple(np.dtype(t) for t in (np.float16, np.float32, np.float64))
EXTREME_DTYPES = INT_DTYPES + FLOAT_DTYPES

NAN_POLICIES = ("propagate", "omit")
LAYOUTS = ("channels_first", "channels_last")


def _names(dtypes) -> str:
    return ", ".join(d.name for d in dtypes)


def check_extreme_dtype(x, name: str = "x") -> np.dtype:
    """dtype for max/min pooling: any integer or float16/32/64."""
    dt = np.dtype(x.dtype)
    if dt not in EXTREME_DTYPES:
        raise TypeError(f"{name} has dtype {dt}; max/min pooling accepts {_names(EXTREME_DTYPES)}")
    return dt


def averaging_dtypes(x, name: str = "x") -> tuple[np.dtype, np.dtype]:
    """(result dtype, accumulator dtype) of an averaging reduction.

    Floats keep their dtype (float16 accumulates in float32); integers give float64.
    """
    dt = np.dtype(x.dtype)
    if dt in FLOAT_DTYPES:
        acc = np.dtype(np.float64) if dt == np.float64 else np.dtype(np.float32)
        return dt, acc
    if dt in INT_DTYPES:
        return np.dtype(np.float64), np.dtype(np.float64)
    raise TypeError(
        f"{name} has dtype {dt}; averaging reductions accept {_names(FLOAT_DTYPES + INT_DTYPES)}"
    )


def check_choice(value, name: str, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool; got {value!r}")
    return bool(value)


def check_positive_real(value, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}; got {value!r}")
    return v


def check_out(out, shape, dtype, inputs, name: str = "out") -> np.ndarray:
    """Validate a caller-supplied result array (exact shape and dtype, writeable, no overlap)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a NumPy ndarray for NumPy input; got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} has shape {out.shape}; expected {tuple(shape)}")
    if out.dtype != dtype:
        raise TypeError(f"{name} has dtype {out.dtype}; expected {np.dtype(dtype)}")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    for arr in inputs:
        if arr is None or not isinstance(arr, np.ndarray):
            continue
        try:
            overlap = np.shares_memory(out, arr, max_work=100_000)
        except np.exceptions.TooHardError:
            overlap = True
        if overlap:
            raise ValueError(f"{name} overlaps an input array; pass a separate result array")
    return out
