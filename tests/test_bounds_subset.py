"""A small, broad subset of the spatial tests for the ``NUMBA_BOUNDSCHECK=1`` run.

tests/test_isolated_runs.py runs this file in a subprocess with bounds checking on and an
empty Numba cache, so every kernel specialisation compiles afresh: the configurations
below use few dtypes (float32, float16, uint8, int32) but reach every window path (edge
windows, padding, dilation, ceil_mode, unrolled interiors, channels-last, indices, NaN,
parallel chunks). An out-of-bounds access raises IndexError instead of passing silently.
"""

import numpy as np
import pytest

from conftest import check_reference, make_values

F32, F16 = "float32", "float16"

CASES = [  # (id, dtype, shape, values, function, args, kwargs)
    ("max k2s2", F32, (2, 3, 8, 9), "ties", "max_pool", ((2, 2),), dict(return_indices=True)),
    ("max k3s2p1 cl", F32, (2, 7, 9, 3), "nan", "max_pool", ((3, 3), 2, 1),
     dict(return_indices=True, layout="channels_last")),
    ("max k3s1p1", F32, (2, 6, 7), "normal", "max_pool", ((3, 3), 1, 1), {}),
    ("min k2s1 omit", F32, (2, 6, 7), "nan", "min_pool", ((2, 2), 1),
     dict(nan_policy="omit", return_indices=True)),
    ("max ceil drop", F32, (1, 5, 5), "normal", "max_pool", ((2, 2), 3, 1, 1, True),
     dict(return_indices=True)),
    ("max dilation", F32, (2, 9, 10), "ties", "max_pool",
     ((3, 2), (2, 3), ((2, 1), (0, 2)), (2, 3), True), dict(return_indices=True)),
    ("max same", F32, (3, 7, 6), "normal", "max_pool", ((4, 3), (2, 3), "same"), {}),
    ("max 1d", F32, (2, 11), "nan", "max_pool", ((4,), 3, 2, 2, True),
     dict(return_indices=True)),
    ("max 3d", F32, (2, 5, 4, 6), "ties", "max_pool", ((2, 3, 2), (2, 1, 3), 1),
     dict(return_indices=True)),
    ("max 4d cl", F32, (3, 4, 3, 5, 2), "normal", "max_pool", ((2, 2, 2, 3), 1),
     dict(layout="channels_last")),
    ("max whole input", F32, (2, 4, 5), "normal", "max_pool", ((4, 5),),
     dict(return_indices=True)),
    ("max one element", F32, (1, 1, 1), "normal", "max_pool", ((1, 1),),
     dict(return_indices=True)),
    ("avg k3s2p1", F32, (2, 3, 9, 8), "normal", "avg_pool", ((3, 3), 2, 1, True), {}),
    ("avg no pad count", F32, (2, 9, 8), "normal", "avg_pool", ((3, 3), 2, 1, True, False), {}),
    ("avg override cl", F32, (2, 9, 8, 3), "normal", "avg_pool", ((2, 3), 1, 1),
     dict(divisor_override=5, layout="channels_last")),
    ("avg omit dilation", F32, (2, 9, 8), "nan", "avg_pool", ((2, 2), 2, 1),
     dict(nan_policy="omit", dilation=2)),
    ("avg 3d", F32, (2, 5, 6, 7), "normal", "avg_pool", ((2, 2, 3), (1, 2, 2)), {}),
    ("lp ceil", F32, (2, 7, 8), "normal", "lp_pool", (2.0, (3, 3), 2, True), {}),
    ("lp cl", F32, (2, 7, 8, 2), "normal", "lp_pool", (3.0, (2, 2)),
     dict(layout="channels_last")),
    ("adaptive max up", F32, (2, 3, 5), "ties", "adaptive_max_pool", ((7, 4),),
     dict(return_indices=True)),
    ("adaptive max cl", F32, (2, 9, 7, 3), "nan", "adaptive_max_pool", ((4, None),),
     dict(return_indices=True, layout="channels_last", nan_policy="omit")),
    ("adaptive avg", F32, (2, 9, 7), "normal", "adaptive_avg_pool", ((4, 5),), {}),
    ("adaptive avg wide", F32, (1, 40, 40), "normal", "adaptive_avg_pool", ((3, 2),), {}),
    ("global max", F32, (2, 3, 17, 19), "nan", "global_max_pool", (),
     dict(nan_policy="omit")),
    ("global avg cl", F32, (2, 300, 7, 3), "normal", "global_avg_pool", (),
     dict(keepdims=True, layout="channels_last")),
    ("gem", F32, (2, 3, 13, 11), "normal", "gem_pool", (3.0,), {}),
    ("zero batch", F32, (0, 3, 5, 5), "normal", "max_pool", ((2, 2),),
     dict(return_indices=True)),
    # split across threads (>= 2**16 elements: see test_bounds)
    ("par max", F32, (4, 8, 64, 48), "nan", "max_pool", ((3, 3), 2, 1),
     dict(return_indices=True)),
    ("par max plain", F32, (4, 8, 64, 48), "normal", "max_pool", ((2, 2),), {}),
    ("par avg cl", F32, (4, 64, 48, 8), "normal", "avg_pool", ((3, 3), 2, 1),
     dict(layout="channels_last")),
    ("par global", F32, (4, 8, 64, 48), "normal", "global_avg_pool", (), {}),
    # float16 (loaded and stored through its own code path)
    ("f16 max", F16, (2, 3, 9, 8), "inf", "max_pool", ((3, 3), 2, 1),
     dict(return_indices=True)),
    ("f16 min cl", F16, (2, 9, 8, 3), "nan", "min_pool", ((2, 2),),
     dict(layout="channels_last")),
    ("f16 avg", F16, (2, 9, 8), "normal", "avg_pool", ((3, 3), 2, 1, True, False), {}),
    ("f16 gem", F16, (2, 9, 8), "normal", "gem_pool", (2.0,), {}),
    # integers
    ("u8 max", "uint8", (2, 3, 9, 8), "normal", "max_pool", ((3, 3), 2, 1),
     dict(return_indices=True)),
    ("u8 min", "uint8", (2, 9, 8), "normal", "min_pool", ((2, 3), 1, 1), {}),
    ("i32 avg", "int32", (2, 9, 8), "normal", "avg_pool", ((3, 3), 2, 1), {}),
]


@pytest.mark.parametrize("dtype, shape, values, name, args, kwargs",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bounds(dtype, shape, values, name, args, kwargs, monkeypatch):
    from numbapool._cpu import parallel

    # the "par" cases (98304 elements) run on several threads, as inputs of 2**18 do
    monkeypatch.setattr(parallel, "PARALLEL_MIN_ELEMENTS", 1 << 16)
    x = make_values(np.random.default_rng(len(shape)), shape, dtype, values)
    if name in ("lp_pool", "gem_pool"):
        x = np.abs(x)
    assert check_reference(name, x, *args, **kwargs) is not None
