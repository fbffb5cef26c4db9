"""Device-side copies between strided and contiguous device arrays.

Numba device arrays have no strided device-to-device copy, and the pooling kernels read a
C-contiguous canonical view.  A strided input is gathered into a contiguous temporary (and
a contiguous result scattered into a strided ``out=``) by one grid-stride kernel over
8-D views: both arrays' axes are first simplified (size-1 axes dropped, axes that are
contiguous with each other in both arrays merged), then padded with leading size-1 axes.
Only the rare array that still needs more than 8 axes, or has negative strides, takes a
trip through the host.

>>> import numpy as np
>>> _simplify((4, 1, 3, 2), [(48, 48, 16, 8), (24, 24, 8, 4)])
((4, 6), [(48, 8), (24, 4)])
"""

from __future__ import annotations

import numpy as np

from . import compat
from .compat import cuda, jit

DIMS = 8


@jit(cache=True)
def _copy_kernel(src, dst):
    n1, n2, n3, n4, n5, n6, n7 = dst.shape[1:]
    total = dst.size
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        rem = i
        i7 = rem % n7
        rem //= n7
        i6 = rem % n6
        rem //= n6
        i5 = rem % n5
        rem //= n5
        i4 = rem % n4
        rem //= n4
        i3 = rem % n3
        rem //= n3
        i2 = rem % n2
        rem //= n2
        i1 = rem % n1
        i0 = rem // n1
        dst[i0, i1, i2, i3, i4, i5, i6, i7] = src[i0, i1, i2, i3, i4, i5, i6, i7]


def _simplify(shape, strides_list):
    """Fewest axes that describe ``shape`` under every stride tuple of ``strides_list``."""
    axes = [(n, [s[a] for s in strides_list]) for a, n in enumerate(shape) if n != 1]
    merged = []
    for n, st in axes:
        if merged:
            pn, pst = merged[-1]
            if all(p == s * n for p, s in zip(pst, st)):
                merged[-1] = (pn * n, st)
                continue
        merged.append((n, st))
    new_shape = tuple(n for n, _ in merged)
    new_strides = [tuple(st[i] for _, st in merged) for i in range(len(strides_list))]
    return new_shape, new_strides


def copy(src, dst, stream=0):
    """``dst[...] = src`` for device arrays of one shape and dtype, on the device if possible."""
    if dst.size == 0:
        return
    shape, (s_src, s_dst) = _simplify(tuple(dst.shape), [tuple(src.strides),
                                                         tuple(dst.strides)])
    if len(shape) > DIMS or min(s_src + s_dst, default=0) < 0:
        # rare: host round trip (negative strides cannot be re-viewed from the first element)
        host = np.empty(tuple(dst.shape), dst.dtype)
        host[...] = src.copy_to_host()
        if dst.is_c_contiguous():
            dst.copy_to_device(host, stream=stream)
        else:
            raise ValueError("out must be C-contiguous, or strided with at most 8 merged axes "
                             "and no negative strides, on CUDA")
        return
    pad = DIMS - len(shape)
    full = (1,) * pad + shape
    compat.launch(_copy_kernel, dst.size,
                  compat.restrided(src, full, (0,) * pad + s_src),
                  compat.restrided(dst, full, (0,) * pad + s_dst), stream=stream)


def contiguous(x, stream=0):
    """``x`` itself when C-contiguous, else a C-contiguous device copy of it."""
    if x.is_c_contiguous():
        return x
    dst = compat.device_empty(x.shape, x.dtype, stream=stream)
    copy(x, dst, stream)
    return dst
