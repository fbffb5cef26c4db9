"""numbapool.max_unpool against a naive loop and PyTorch's F.max_unpool1d/2d/3d, both layouts."""

import numpy as np
import pytest

import numbapool as nbp
from numbapool.unpool import max_unpool


def _naive(values, indices, lead_ndim, size, channels_last):
    """Zeros, then ``plane.flat[i] = v`` in row-major order of ``values`` (a later duplicate
    wins)."""
    vals = np.moveaxis(values, -1, lead_ndim) if channels_last else values
    idx = np.moveaxis(indices, -1, lead_ndim) if channels_last else indices
    planes = int(np.prod(vals.shape[:vals.ndim - len(size)]))
    v = vals.reshape(planes, -1)
    i = idx.reshape(planes, -1)
    res = np.zeros((planes, int(np.prod(size))), values.dtype)
    for p in range(planes):
        for k in range(v.shape[1]):
            res[p, i[p, k]] = v[p, k]
    res = res.reshape(vals.shape[:vals.ndim - len(size)] + tuple(size))
    return np.moveaxis(res, lead_ndim, -1) if channels_last else res


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int16"])
def test_against_naive(dtype, layout):
    rng = np.random.default_rng(0)
    size = (5, 6)
    shape = (2, 3, 3, 3) if layout == "channels_first" else (2, 3, 3, 3)
    values = (rng.standard_normal(shape) * 10).astype(dtype)
    indices = rng.integers(0, 30, shape)  # duplicates included
    lead = 2 if layout == "channels_first" else 1
    got = max_unpool(values, indices, size, layout=layout)
    assert got.dtype == values.dtype
    np.testing.assert_array_equal(got, _naive(values, indices, lead, size,
                                              layout == "channels_last"))


@pytest.mark.torch
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_against_torch(n, layout):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(n)
    x = rng.standard_normal((2, 3) + (5, 4, 3)[:n])
    v, i = nbp.max_pool(x, (2,) * n, return_indices=True)
    unpool = getattr(F, f"max_unpool{n}d")
    want = unpool(torch.from_numpy(v), torch.from_numpy(i), 2, output_size=x.shape[2:]).numpy()
    if layout == "channels_first":
        got = max_unpool(v, i, x.shape[2:])
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(max_unpool(v, i, x.shape), want)  # a full shape
    else:
        cl = lambda a: np.ascontiguousarray(np.moveaxis(a, 1, -1))  # noqa: E731
        got = max_unpool(cl(v), cl(i), x.shape[2:], layout=layout)
        np.testing.assert_array_equal(got, cl(want))
    # duplicates: the last wins, as on torch's CPU
    dv = np.arange(1.0, 7.0).reshape(1, 1, 6)
    di = np.array([[[1, 1, 0, 3, 3, 3]]])
    want = F.max_unpool1d(torch.from_numpy(dv), torch.from_numpy(di), 2, output_size=(12,))
    np.testing.assert_array_equal(max_unpool(dv, di, (12,)), want.numpy())


def test_out_and_errors():
    v = np.ones((1, 2, 2))
    i = np.array([[[0, 3], [1, 2]]])
    out = np.full((1, 2, 4), 9.0)
    assert max_unpool(v, i, (4,), out=out) is out
    np.testing.assert_array_equal(out, [[[1, 0, 0, 1], [0, 1, 1, 0]]])
    cases = [
        (lambda: max_unpool(v, i + 2, (4,), out=out), ValueError, "outside"),
        (lambda: max_unpool(v, i - 1, (4,)), ValueError, "outside"),
        (lambda: max_unpool(v, i[..., :1], (4,)), ValueError, "shaped as values"),
        (lambda: max_unpool(v, i.astype(float), (4,)), TypeError, "integer"),
        (lambda: max_unpool(v, i, 4), TypeError, "output_size"),
        (lambda: max_unpool(v, i, (1, 3, 4)), ValueError, "full output shape"),
        (lambda: max_unpool(v, i, (4,), layout="x"), ValueError, "layout"),
        (lambda: max_unpool(v.astype(complex), i, (4,)), TypeError, "dtype"),
    ]
    for call, error, fragment in cases:
        with pytest.raises(error, match=fragment):
            call()
    np.testing.assert_array_equal(out, [[[1, 0, 0, 1], [0, 1, 1, 0]]])  # left untouched
