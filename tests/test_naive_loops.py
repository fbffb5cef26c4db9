"""The benchmark's ``naive`` column (numbapool.comparisons.NAIVE) against the oracle.

The naive loops are a floor the kernels are measured against, so they must compute the
same thing: each is checked against ``reference.py`` over the arguments it covers (2-D
float pools, NaN propagated), and the rest must raise ``NotImplementedError``.
"""

import numpy as np
import pytest

import reference
from conftest import LAYOUTS, assert_matches, make_values
from numbapool.comparisons import NAIVE

GEOMETRIES = [  # (kernel, stride, padding)
    (2, 2, 0), (3, 2, 1), (3, 1, 1), ((2, 3), (1, 2), (1, 0)), (4, 4, 2),
]


def _input(layout, dtype, kind, shape=(2, 3, 9, 8)):
    x = make_values(np.random.default_rng(7), shape, dtype, kind)
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)) if layout == "channels_last" else x


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["normal", "ties", "nan", "inf"])
@pytest.mark.parametrize("k,s,p", GEOMETRIES)
def test_sliding(layout, dtype, kind, k, s, p):
    x = _input(layout, dtype, kind)
    for name in ("max_pool", "avg_pool"):
        got = NAIVE[name](x, k, s, p, layout=layout)
        want = getattr(reference, name)(x, k, s, p, layout=layout)
        assert_matches(got, want, exact=name == "max_pool")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["normal", "nan", "inf"])
def test_global(layout, dtype, kind):
    x = _input(layout, dtype, kind)
    for name in ("global_max_pool", "global_avg_pool"):
        assert_matches(NAIVE[name](x, layout=layout), getattr(reference, name)(x, layout=layout),
                       exact=name == "global_max_pool")


@pytest.mark.parametrize("call", [
    lambda x: NAIVE["max_pool"](x, 2, return_indices=True),
    lambda x: NAIVE["max_pool"](x, 2, nan_policy="omit"),
    lambda x: NAIVE["max_pool"](x, 2, dilation=2),
    lambda x: NAIVE["max_pool"](x, 2, ceil_mode=True),
    lambda x: NAIVE["max_pool"](x, 2, padding=((1, 0), (0, 0))),
    lambda x: NAIVE["max_pool"](x.astype(np.int32), 2),
    lambda x: NAIVE["max_pool"](x[0], (2,)),
    lambda x: NAIVE["avg_pool"](x, 2, count_include_pad=False),
    lambda x: NAIVE["avg_pool"](x, 2, divisor_override=3),
    lambda x: NAIVE["global_max_pool"](x, keepdims=True),
    lambda x: NAIVE["global_avg_pool"](x, spatial_dims=1),
])
def test_uncovered_arguments_raise(call):
    with pytest.raises(NotImplementedError):
        call(_input("channels_first", "float32", "normal"))
