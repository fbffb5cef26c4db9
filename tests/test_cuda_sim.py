"""CUDA kernels against the CPU path, on tiny shapes.

Runs where CUDA is usable: under Numba's simulator (``NUMBA_ENABLE_CUDASIM=1``, which
tests/test_isolated_runs.py sets in its own process) or on a real GPU.  Launches use 8
threads per block, so even tiny inputs span several blocks and grid-stride loops wrap.
"""

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")

import numbapool as nbp  # noqa: E402

if not nbp.cuda_available():
    pytest.skip("no CUDA device or simulator", allow_module_level=True)

from numbapool._cuda import compat  # noqa: E402


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(compat, "THREADS_PER_BLOCK", 8)


RNG = np.random.default_rng(0)


def _same(gpu, cpu, exact):
    if isinstance(cpu, tuple):
        for g, c in zip(gpu, cpu):
            _same(g, c, exact)
        return
    assert compat.is_device_array(gpu)
    host = gpu.copy_to_host()
    assert host.dtype == cpu.dtype and host.shape == cpu.shape
    if exact:
        np.testing.assert_array_equal(host, cpu)
    else:
        tol = 1e-3 if cpu.dtype == np.float16 else 1e-5
        np.testing.assert_allclose(host, cpu, rtol=tol, atol=tol)


def _input(shape, dtype, nans=False):
    if np.dtype(dtype).kind == "f":
        x = RNG.standard_normal(shape).astype(dtype)
        if nans:
            x[RNG.random(shape) < 0.15] = np.nan
        return x
    info = np.iinfo(dtype)
    return RNG.integers(max(info.min, -100), min(info.max, 100), shape).astype(dtype)


SPATIAL = [
    ("max k3 s2 p1", lambda x, **kw: nbp.max_pool2d(x, 3, 2, 1, **kw), True),
    ("max k2 indices", lambda x, **kw: nbp.max_pool2d(x, 2, return_indices=True, **kw), True),
    ("min k2 s1 dil2 ceil", lambda x, **kw: nbp.min_pool2d(x, 2, 1, 0, 2, True,
                                                          return_indices=True, **kw), True),
    ("max same", lambda x, **kw: nbp.max_pool2d(x, 3, 2, "same", **kw), True),
    ("avg k3 s2 p1", lambda x, **kw: nbp.avg_pool2d(x, 3, 2, 1, **kw), False),
    ("avg no pad count", lambda x, **kw: nbp.avg_pool2d(x, 3, 2, 1, True, False, **kw), False),
    ("avg divisor", lambda x, **kw: nbp.avg_pool2d(x, 2, divisor_override=3, **kw), False),
    ("adaptive max", lambda x, **kw: nbp.adaptive_max_pool2d(x, (3, 2), return_indices=True,
                                                            **kw), True),
    ("adaptive avg", lambda x, **kw: nbp.adaptive_avg_pool2d(x, (4, 3), **kw), False),
    ("global max", lambda x, **kw: nbp.global_max_pool(x, **kw), True),
    ("global avg", lambda x, **kw: nbp.global_avg_pool(x, **kw), False),
]


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("name,op,exact", SPATIAL, ids=[s[0] for s in SPATIAL])
def test_spatial_ops_match_cpu(name, op, exact, layout):
    x = _input((2, 3, 7, 6), np.float32, nans=True)
    if layout == "channels_last":
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    for policy in ("propagate", "omit"):
        _same(op(cuda.to_device(x), layout=layout, nan_policy=policy),
              op(x, layout=layout, nan_policy=policy), exact)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "int32", "uint32",
                                   "int64", "uint64", "float16", "float32", "float64"])
def test_dtypes(dtype):
    x = _input((2, 5, 6), dtype)
    d = cuda.to_device(x)
    _same(nbp.max_pool(d, (2, 2), 1, return_indices=True),
          nbp.max_pool(x, (2, 2), 1, return_indices=True), True)
    _same(nbp.avg_pool(d, (2, 3), 1, 1), nbp.avg_pool(x, (2, 3), 1, 1), False)


def test_lp_and_gem():
    x = np.abs(_input((2, 3, 6, 5), np.float32))
    d = cuda.to_device(x)
    _same(nbp.lp_pool2d(d, 2.0, 2), nbp.lp_pool2d(x, 2.0, 2), False)
    _same(nbp.lp_pool2d(d, 3.0, (3, 2), 1), nbp.lp_pool2d(x, 3.0, (3, 2), 1), False)
    _same(nbp.gem_pool(d, 3.0), nbp.gem_pool(x, 3.0), False)


@pytest.mark.parametrize("n", [1, 3, 4])
def test_other_ranks(n):
    x = _input((2,) + (5,) * n, np.float64, nans=True)
    d = cuda.to_device(x)
    k = (2,) * n
    _same(nbp.max_pool(d, k, 1, return_indices=True), nbp.max_pool(x, k, 1, return_indices=True),
          True)
    _same(nbp.avg_pool(d, k, 2, 1), nbp.avg_pool(x, k, 2, 1), False)


def test_out_and_zero_size():
    x = _input((2, 3, 6, 6), np.float32)
    out = cuda.device_array((2, 3, 3, 3), np.float32)
    assert nbp.max_pool2d(cuda.to_device(x), 2, out=out) is out
    np.testing.assert_array_equal(out.copy_to_host(), nbp.max_pool2d(x, 2))
    with pytest.raises(ValueError, match="shape"):
        nbp.max_pool2d(cuda.to_device(x), 2, out=cuda.device_array((2, 3, 2, 2), np.float32))
    with pytest.raises(TypeError, match="CUDA array"):
        nbp.max_pool2d(cuda.to_device(x), 2, out=np.empty((2, 3, 3, 3), np.float32))
    empty = nbp.avg_pool2d(cuda.to_device(np.zeros((0, 3, 6, 6), np.float32)), 2)
    assert empty.shape == (0, 3, 3, 3)


def test_device_argument_moves_arrays():
    x = _input((2, 3, 6, 6), np.float32)
    gpu = nbp.max_pool2d(x, 2, device="cuda")
    assert compat.is_device_array(gpu)
    np.testing.assert_array_equal(gpu.copy_to_host(), nbp.max_pool2d(x, 2))
    host = nbp.max_pool2d(cuda.to_device(x), 2, device="cpu")
    assert isinstance(host, np.ndarray)
    np.testing.assert_array_equal(host, nbp.max_pool2d(x, 2))


def test_strided_device_input():
    x = _input((2, 3, 8, 8), np.float32)
    d = cuda.to_device(x)[:, :, ::2]
    _same(nbp.max_pool2d(d, 2), nbp.max_pool2d(x[:, :, ::2], 2), True)


def test_cupy_and_torch_families():
    cupy = None if compat.simulator() else pytest.importorskip("cupy")
    x = _input((2, 3, 6, 6), np.float32)
    if cupy is not None:
        r = nbp.max_pool2d(cupy.asarray(x), 2)
        assert isinstance(r, cupy.ndarray)
        np.testing.assert_array_equal(cupy.asnumpy(r), nbp.max_pool2d(x, 2))
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device here")
    r = nbp.max_pool2d(torch.from_numpy(x).cuda(), 2)
    assert isinstance(r, torch.Tensor) and r.is_cuda
    np.testing.assert_array_equal(r.cpu().numpy(), nbp.max_pool2d(x, 2))
