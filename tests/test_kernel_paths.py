"""Every specialised CPU path is reached, and agrees with the oracle where it is.

The CPU runner chooses a kernel family per plan (plane kernels for global pools, window
kernels otherwise) and the window kernels choose a stage-B loop per window shape
(``numbapool._cpu.specialise.uniform_loop``) and whether stage A can be skipped.  These
tests record which kernel each call launched (``_choose``, wrapped) and ask
``kernel_path`` for the rest, so a path that silently stops being used fails here, and
check each path's results against ``reference.py`` on data with NaN, ties, -0.0 and +0.0,
for float16/32/64 and integers.
"""

import numpy as np
import pytest

import numbapool as nbp
import reference
from conftest import assert_matches, make_values
from numbapool._cpu import spatial as cpu_spatial

# (label, public function, args, kwargs, input shape, expected kernel_path entries)
PATHS = [
    ("global max, planes", "global_max_pool", (), {}, (2, 3, 9, 11),
     {"kernel": "plane_extreme"}),
    ("global max, long planes", "global_max_pool", (), {}, (1, 2, 40, 41),
     {"kernel": "plane_extreme"}),
    ("global min via a whole-plane window", "min_pool", ((9, 11),), {}, (2, 3, 9, 11),
     {"kernel": "plane_extreme"}),
    ("global max, channels last", "global_max_pool", (), {"layout": "channels_last"},
     (2, 9, 11, 5), {"kernel": "pixel_extreme"}),
    ("global mean, planes", "global_avg_pool", (), {}, (2, 3, 9, 11),
     {"kernel": "plane_mean"}),
    ("max 3x3/s2/p1", "max_pool", (3, 2, 1), {}, (2, 3, 9, 12),
     {"kernel": "windows_extreme", "uniform_loop": "phased", "rows_in_place": False}),
    ("max 2x2", "max_pool", (2,), {}, (2, 3, 8, 12),
     {"kernel": "windows_extreme", "uniform_loop": "unrolled", "rows_in_place": False}),
    ("max 1-D 3/s2", "max_pool", ((3,), (2,)), {}, (2, 3, 41),
     {"kernel": "windows_extreme", "uniform_loop": "phased", "rows_in_place": True}),
    ("max (1, 4)/s1: one input row per output row", "max_pool", ((1, 4), 1), {},
     (2, 3, 5, 30), {"kernel": "windows_extreme", "uniform_loop": "contiguous",
                     "rows_in_place": True}),
    ("max (1, 1, 3): one input row per output row, two outer axes", "max_pool",
     ((1, 1, 3), (1, 1, 2)), {}, (2, 2, 3, 4, 12), {"kernel": "windows_extreme", "uniform_loop": "phased",
                            "rows_in_place": True}),
    ("max 4/s3", "max_pool", (4, 3), {}, (2, 3, 10, 30),
     {"kernel": "windows_extreme", "uniform_loop": "strided"}),
    ("max of two long windows", "max_pool", ((1, 64),), {}, (1, 2, 3, 128),
     {"kernel": "windows_extreme", "uniform_loop": "window-major", "rows_in_place": True}),
    ("max 3x3/s2/p1 with indices", "max_pool", (3, 2, 1), {"return_indices": True},
     (2, 3, 9, 12), {"kernel": "windows_indexed", "uniform_loop": "unrolled",
                     "rows_in_place": False}),
    ("max 4/s1 with indices", "max_pool", (4, 1), {"return_indices": True},
     (2, 3, 9, 12), {"kernel": "windows_indexed", "uniform_loop": "window-major"}),
    ("mean 3x3/s2/p1", "avg_pool", (3, 2, 1), {}, (2, 3, 9, 12),
     {"kernel": "windows_sum", "uniform_loop": "phased"}),
    ("mean (1, 5)/s1", "avg_pool", ((1, 5), 1), {}, (2, 3, 4, 30),
     {"kernel": "windows_sum", "uniform_loop": "contiguous"}),
    ("channels-last max 3x3/s2/p1", "max_pool", (3, 2, 1), {"layout": "channels_last"},
     (2, 9, 12, 4), {"kernel": "windows_extreme", "uniform_loop": None}),
]
DTYPES = ["float16", "float32", "float64", "int8", "uint16", "int64"]


@pytest.fixture
def launched(monkeypatch):
    """The (plan, kernel name) of every CPU launch while the test runs."""
    seen = []
    choose = cpu_spatial._choose

    def recording(plan, x, out, indices):
        launch = choose(plan, x, out, indices)
        seen.append((plan, launch.name))
        return launch

    monkeypatch.setattr(cpu_spatial, "_choose", recording)
    return seen


def _data(shape, dtype, kind, seed):
    x = make_values(np.random.default_rng(seed), shape, dtype, kind)
    if np.dtype(dtype).kind == "f" and kind == "ties":
        x[..., ::3] = -0.0  # zeros of both signs tie with each other
        x[..., 1::5] = 0.0
    return x


@pytest.mark.parametrize("label,name,args,kwargs,shape,expected", PATHS,
                         ids=[p[0] for p in PATHS])
@pytest.mark.parametrize("dtype", DTYPES)
def test_path_is_taken_and_exact(launched, label, name, args, kwargs, shape, expected, dtype):
    is_sum = name in ("avg_pool", "global_avg_pool")
    kinds = ["normal", "ties"] + (["nan", "inf"] if np.dtype(dtype).kind == "f" else [])
    for seed, kind in enumerate(kinds):
        x = _data(shape, dtype, kind, seed)
        # sums under omit run the window kernels; extremes keep their path under both
        policies = ["propagate", "omit"] if not is_sum and "nan" in kinds else [None]
        for policy in policies:
            extra = {} if policy is None else {"nan_policy": policy}
            got = getattr(nbp, name)(x, *args, **kwargs, **extra)
            want = getattr(reference, name)(x, *args, **kwargs, **extra)
            assert_matches(got, want, exact=not is_sum, signs=not is_sum)
    plan, kernel = launched[-1]
    assert kernel == expected["kernel"]
    path = cpu_spatial.kernel_path(plan, np.dtype(dtype))
    for key, value in expected.items():
        if key == "rows_in_place" and dtype == "float16":
            value = False  # float16 rows are decoded into the buffer
        assert path[key] == value, (label, key, path)


def test_rows_in_place_with_read_only_input():
    """A read-only input row stands in for the row buffer without a copy or an error."""
    x = _data((2, 3, 41), "float32", "ties", 0)
    x.flags.writeable = False
    assert_matches(nbp.max_pool1d(x, 3, 2), reference.max_pool(x, 3, 2), exact=True,
                   signs=True)
