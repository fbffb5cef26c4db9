"""Result arrays of the CPU backend: fresh, or the caller's ``out=`` checked and honoured."""

from __future__ import annotations

import numpy as np

from .._checks import check_out


def result_arrays(out, shape, dtype, inputs, name):
    """``(work, result)``: a C-contiguous array to compute into, and the one to return.

    They are one array unless the caller's ``out`` is not C-contiguous; then the kernels
    write ``work`` and :func:`hand_back` copies it into ``out``.
    """
    if out is None:
        arr = np.empty(shape, dtype)
        return arr, arr
    check_out(out, shape, dtype, inputs, name)
    if out.flags.c_contiguous:
        return out, out
    return np.empty(shape, dtype), out


def hand_back(work, result):
    """Copy ``work`` into ``result`` when they differ (a non-contiguous ``out=``)."""
    if work is not result:
        result[...] = work
