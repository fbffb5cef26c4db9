"""Max/min values carry the sign of the first winner in row-major window order.

The values path reduced a window column by column, so among a window's zeros it kept the
first of the first column: ``max_pool2d([[-1, -0.], [0., -2]], 2)`` gave +0.0 where the
indices path (and torch) give -0.0.  The property below ties the two paths together: the
values are exactly the input elements the indices point at, signs of zeros included.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numbapool as nbp

REPROS = [
    (lambda x: nbp.max_pool2d(x, 2), [[-1.0, -0.0], [0.0, -2.0]], -0.0),
    (lambda x: nbp.min_pool2d(x, 2), [[1.0, 0.0], [-0.0, 2.0]], 0.0),
    (lambda x: nbp.adaptive_max_pool2d(x, 1), [[-1.0, -0.0], [0.0, -2.0]], -0.0),
    (lambda x: nbp.global_max_pool(x), [[-1.0, -0.0], [0.0, -2.0]], -0.0),
]


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("case", range(len(REPROS)))
def test_repros(case, dtype):
    pool, plane, want = REPROS[case]
    got = pool(np.array(plane, dtype).reshape(1, 1, 2, 2)).reshape(-1)[0]
    assert got == 0 and np.signbit(got) == np.signbit(want)


def test_channels_last_and_long_global_rows():
    x = np.array([[-1.0, -0.0], [0.0, -2.0]]).reshape(1, 2, 2, 1)
    assert np.signbit(nbp.max_pool2d(x, 2, layout="channels_last")[0, 0, 0, 0])
    flat = np.full(512, -1.0)
    flat[1], flat[256] = -0.0, 0.0  # a global plane is reduced as rows of a few hundred
    assert np.signbit(nbp.global_max_pool(flat.reshape(1, 1, 512))[0, 0])
    assert np.signbit(nbp.global_max_pool(flat.reshape(1, 1, 16, 32))[0, 0])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3), k=st.integers(1, 3),
       s=st.integers(1, 3), pad=st.booleans(), is_min=st.booleans(),
       layout=st.sampled_from(["channels_first", "channels_last"]),
       dtype=st.sampled_from(["float16", "float32", "float64"]),
       omit=st.booleans())
def test_values_are_the_elements_the_indices_name(seed, n, k, s, pad, is_min, layout, dtype,
                                                  omit):
    rng = np.random.default_rng(seed)
    spatial = tuple(int(v) for v in rng.integers(k, k + 5, size=n))
    shape = (2,) + spatial + ((3,) if layout == "channels_last" else ())
    x = rng.choice(np.array([-0.0, 0.0, -1.0, 1.0, np.nan]), size=shape,
                   p=[0.35, 0.35, 0.1, 0.1, 0.1]).astype(dtype)
    pool = nbp.min_pool if is_min else nbp.max_pool
    kw = dict(padding=k // 2 if pad else 0, layout=layout,
              nan_policy="omit" if omit else "propagate")
    values = pool(x, (k,) * n, s, **kw)
    v_idx, idx = pool(x, (k,) * n, s, return_indices=True, **kw)
    np.testing.assert_array_equal(values, v_idx)
    np.testing.assert_array_equal(np.signbit(values), np.signbit(v_idx))
    # the indices are flat positions within each plane: gather them back
    if layout == "channels_last":
        planes = np.moveaxis(x, -1, 1).reshape(2, 3, -1)
        gathered = np.take_along_axis(planes, np.moveaxis(idx, -1, 1).reshape(2, 3, -1), 2)
        gathered = np.moveaxis(gathered.reshape((2, 3) + idx.shape[1:-1]), 1, -1)
    else:
        gathered = np.take_along_axis(x.reshape(2, -1), idx.reshape(2, -1), 1).reshape(idx.shape)
    finite = ~np.isnan(values)
    np.testing.assert_array_equal(np.signbit(values[finite]), np.signbit(gathered[finite]))
