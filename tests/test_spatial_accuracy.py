"""One accumulation rule for every averaging pool: long windows sum in float64.

A sliding average over a long window used to accumulate float16/float32 data in float32
while global and adaptive averages switched to float64 past 64 taps, so the same window
gave different answers by path.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import numbapool as nbp


def test_long_sliding_window_is_as_accurate_as_the_global_mean():
    big = np.full((1, 1, 3162, 3162), 10000.01, np.float32)
    want = np.float32(10000.01)
    assert nbp.avg_pool2d(big, 3162)[0, 0, 0, 0] == want  # was 9988.12
    assert nbp.global_avg_pool(big)[0, 0] == want
    assert nbp.adaptive_avg_pool2d(big, 1)[0, 0, 0, 0] == want


@settings(max_examples=25, deadline=None)
@given(h=st.integers(9, 40), w=st.integers(8, 40), seed=st.integers(0, 2**16),
       dtype=st.sampled_from(["float16", "float32"]),
       offset=st.sampled_from([0.0, 1000.0]))
def test_whole_plane_window_agrees_with_global_and_adaptive(h, w, seed, dtype, offset):
    """A window over the whole plane (> 64 taps) is the same mean by every path."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((2, 3, h, w)) + offset).astype(dtype)
    exact = x.astype(np.float64).mean(axis=(2, 3))
    results = [nbp.avg_pool2d(x, (h, w))[..., 0, 0], nbp.global_avg_pool(x),
               nbp.adaptive_avg_pool2d(x, 1)[..., 0, 0]]
    for got in results:
        assert got.dtype == np.dtype(dtype)
        # float64 accumulation leaves only the rounding of the result: within one ulp
        ulp = np.spacing(np.abs(exact).astype(dtype)).astype(np.float64)
        assert np.all(np.abs(got.astype(np.float64) - exact) <= ulp), (got, exact)
