"""CUDA kernels and the CUDA side of the dispatcher, against the CPU path, on tiny shapes.

Runs where CUDA is usable: under Numba's simulator (``NUMBA_ENABLE_CUDASIM=1``, which
tests/test_isolated_runs.py sets in its own process) or on a real GPU; skips elsewhere.
Launches use 8 threads per block and at most 3 blocks, so even tiny inputs span several
blocks and the grid-stride loops wrap.
"""

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")

import numbapool as nbp  # noqa: E402
from numbapool import dispatch  # noqa: E402

if not nbp.cuda_available():
    pytest.skip("no CUDA GPU, and NUMBA_ENABLE_CUDASIM is not set", allow_module_level=True)

from numbapool._cuda import backend, compat, strided  # noqa: E402

from conftest import assert_matches  # noqa: E402

pytestmark = pytest.mark.usefixtures("small_grids")

INTS = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]
FLOATS = ["float16", "float32", "float64"]


def _rng(seed=0):
    return np.random.default_rng(seed)


def _data(shape, dtype, nans=0.0, seed=0, extremes=True):
    """Random data of ``dtype``; floats get a fraction ``nans`` of NaNs, ints their extremes."""
    rng = _rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        x = rng.standard_normal(shape).astype(dtype)
        if nans:
            x[rng.random(shape) < nans] = np.nan
        return x
    info = np.iinfo(dtype)
    x = rng.integers(-50 if info.min else 0, 50, shape).astype(dtype)
    if not extremes:  # sums of int64 extremes cancel catastrophically in any float order
        return x
    flat = x.reshape(-1)
    flat[::7] = info.max  # extremes: comparisons must not overflow or wrap
    flat[3::11] = info.min
    return x


def _layout(x, layout):
    """``x`` (channels-first, channel axis 1) moved to ``layout``."""
    return x if layout == "channels_first" else np.ascontiguousarray(np.moveaxis(x, 1, -1))


def _to_host(gpu):
    assert compat.is_device_array(gpu), type(gpu)
    return gpu.copy_to_host()


def _check(gpu, cpu, exact):
    """GPU result(s) (Numba device arrays) equal the CPU's (NumPy), signs of zeros included."""
    first = cpu[0] if isinstance(cpu, tuple) else cpu
    tol = {np.float16: 2e-3, np.float32: 2e-6}.get(first.dtype.type, 1e-12)
    assert_matches(gpu, cpu, exact, to_host=_to_host, rtol=tol, atol=tol, signs=True)


def _same(op, x, exact, **kw):
    _check(op(cuda.to_device(x), **kw), op(x, **kw), exact)


# --------------------------------------------------------------------------- every op, 2-D

# (id, op, exact, takes nan_policy)
OPS = [
    ("max k3 s2 p1 idx", lambda x, **kw: nbp.max_pool2d(x, 3, 2, 1, return_indices=True, **kw),
     True, True),
    ("max k2 s1 dil2 ceil idx", lambda x, **kw: nbp.max_pool2d(
        x, 2, 1, 0, 2, True, return_indices=True, **kw), True, True),
    ("max k(3,2) s(2,3) ceil", lambda x, **kw: nbp.max_pool2d(x, (3, 2), (2, 3), 1,
                                                            ceil_mode=True, **kw), True, True),
    ("min k3 s2 p1 idx", lambda x, **kw: nbp.min_pool2d(x, 3, 2, 1, return_indices=True, **kw),
     True, True),
    ("max same", lambda x, **kw: nbp.max_pool2d(x, (4, 3), 2, "same", **kw), True, True),
    ("avg k3 s2 p1", lambda x, **kw: nbp.avg_pool2d(x, 3, 2, 1, **kw), False, True),
    ("avg no pad count", lambda x, **kw: nbp.avg_pool2d(x, 3, 2, 1, False, False, **kw),
     False, True),
    ("avg ceil overhang", lambda x, **kw: nbp.avg_pool2d(x, 3, 2, 1, True, **kw), False, True),
    ("avg divisor", lambda x, **kw: nbp.avg_pool2d(x, 2, divisor_override=3, **kw),
     False, True),
    ("avg dilation", lambda x, **kw: nbp.avg_pool2d(x, 2, 1, dilation=2, **kw), False, True),
    ("lp p2", lambda x, **kw: nbp.lp_pool2d(x, 2.0, 2, **kw), False, False),
    ("lp p3 ceil", lambda x, **kw: nbp.lp_pool2d(x, 3.0, (3, 2), 2, True, **kw), False, False),
    ("lp p1.5", lambda x, **kw: nbp.lp_pool2d(x, 1.5, 2, 1, **kw), False, False),
    ("adaptive max idx", lambda x, **kw: nbp.adaptive_max_pool2d(
        x, (3, 4), return_indices=True, **kw), True, True),
    ("adaptive max upsample", lambda x, **kw: nbp.adaptive_max_pool2d(x, (9, 2), **kw),
     True, True),
    ("adaptive avg", lambda x, **kw: nbp.adaptive_avg_pool2d(x, (4, None), **kw), False, True),
    ("global max", lambda x, **kw: nbp.global_max_pool(x, **kw), True, True),
    ("global avg keepdims", lambda x, **kw: nbp.global_avg_pool(x, keepdims=True, **kw),
     False, True),
    ("gem", lambda x, **kw: nbp.gem_pool(x, 3.0, **kw), False, False),
    ("gem p2.5", lambda x, **kw: nbp.gem_pool(x, 2.5, 1e-3, keepdims=True, **kw), False, False),
]


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("name,op,exact,policy", OPS, ids=[o[0] for o in OPS])
def test_op_matches_cpu(name, op, exact, policy, layout):
    x = _layout(_data((2, 3, 7, 6), np.float32, nans=0.1 if policy else 0.0), layout)
    if not policy:
        x = np.abs(x) + np.float32(0.1) * (name.startswith("lp"))
        _same(op, x, exact, layout=layout)
        return
    for nan_policy in ("propagate", "omit"):
        _same(op, x, exact, layout=layout, nan_policy=nan_policy)


# --------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", INTS + FLOATS)
def test_dtypes(dtype):
    x = _data((2, 2, 5, 6), dtype, nans=0.1)
    plain = _data((2, 2, 5, 6), dtype, nans=0.1, extremes=False)
    for layout in ("channels_first", "channels_last"):
        xl = _layout(x, layout)
        _same(lambda a, **kw: nbp.max_pool(a, (2, 3), 1, 1, return_indices=True, **kw), xl,
              True, layout=layout)
        _same(lambda a, **kw: nbp.min_pool(a, (3, 2), (2, 1), **kw), xl, True, layout=layout)
        _same(lambda a, **kw: nbp.avg_pool(a, (2, 3), 1, 1, **kw), _layout(plain, layout),
              False, layout=layout)
    _same(lambda a: nbp.adaptive_avg_pool(a, (4, 4), nan_policy="omit"), plain, False)
    _same(lambda a: nbp.global_avg_pool(a, 2), plain, False)
    _same(lambda a: nbp.global_max_pool(a, 2, nan_policy="omit"), x, True)
    if dtype in FLOATS:
        pos = np.abs(x)
        _same(lambda a: nbp.lp_pool(a, 2.0, (2, 2)), pos, False)
        _same(lambda a: nbp.gem_pool(a, spatial_dims=2), pos, False)


def test_uint64_above_int64_range():
    x = np.array([[[1, 2**64 - 1, 2**63, 5, 2**63 + 1, 0]]], np.uint64)
    _same(lambda a: nbp.max_pool(a, (2,), return_indices=True), x, True)
    _same(lambda a: nbp.min_pool(a, (3,), 1, return_indices=True), x, True)


# --------------------------------------------------------------------------- ties and NaN


def test_ties_go_to_the_first_in_row_major_order():
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, ::2, ::2] = -0.0  # equal to 0.0: the first of the window wins, sign and index
    v, i = nbp.max_pool2d(cuda.to_device(x), 2, return_indices=True)
    np.testing.assert_array_equal(i.copy_to_host()[0, 0], [[0, 2], [8, 10]])
    assert np.signbit(v.copy_to_host()).all()
    _same(lambda a, **kw: nbp.max_pool2d(a, 3, 1, 1, return_indices=True, **kw), x, True)
    ints = np.ones((2, 1, 5, 5), np.int16)
    _same(lambda a, **kw: nbp.min_pool2d(a, 3, 2, 1, 2, return_indices=True, **kw), ints, True)


@pytest.mark.parametrize("dtype", FLOATS)
def test_nan_index_is_the_first_nan(dtype):
    x = np.arange(16, dtype=dtype).reshape(1, 1, 4, 4)
    x[0, 0, 1, 0] = x[0, 0, 0, 1] = np.nan  # window (0, 0): flat 1 before flat 4
    x[0, 0, 3, 3] = np.nan
    v, i = nbp.max_pool2d(cuda.to_device(x), 2, return_indices=True)
    np.testing.assert_array_equal(i.copy_to_host()[0, 0], [[1, 7], [13, 15]])
    assert np.isnan(v.copy_to_host()[0, 0, 0, 0])
    for policy in ("propagate", "omit"):
        for op in (nbp.max_pool2d, nbp.min_pool2d):
            _same(lambda a, **kw: op(a, 2, 1, return_indices=True, **kw), x, True,
                  nan_policy=policy)
    only_nan = np.full((1, 1, 2, 2), np.nan, dtype)
    for op in (nbp.max_pool2d, nbp.min_pool2d, nbp.avg_pool2d):
        r = op(cuda.to_device(only_nan), 2, nan_policy="omit")
        assert np.isnan(r.copy_to_host()).all()


# --------------------------------------------------------------------------- ranks


@pytest.mark.parametrize("n", [1, 3, 4])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_other_ranks(n, layout):
    if n == 4 and layout == "channels_last":
        pytest.skip("one 4-D case is enough")
    shape = (2, 2) + ((6,) if n == 1 else (4, 5, 3) if n == 3 else (3, 3, 2, 3))
    x = _layout(_data(shape, np.float64, nans=0.1), layout)
    k = (2,) * n
    for policy in ("propagate", "omit"):
        kw = dict(layout=layout, nan_policy=policy)
        _same(lambda a, **kw: nbp.max_pool(a, k, 1, 1, return_indices=True, **kw), x, True,
              **kw)
        _same(lambda a, **kw: nbp.avg_pool(a, k, 2, 1, True, False, **kw), x, False, **kw)
        _same(lambda a, **kw: nbp.adaptive_max_pool(a, (3,) * n, return_indices=True, **kw),
              x, True, **kw)
    _same(lambda a, **kw: nbp.gem_pool(a, spatial_dims=n, **kw), np.abs(x), False,
          layout=layout)


def _random_case(rng):
    """A random pool (op, kwargs, input) over 1-3 spatial dims; may be geometrically invalid."""
    n = int(rng.integers(1, 4))
    spatial = tuple(int(v) for v in rng.integers(1, 7, n))
    layout = ["channels_first", "channels_last"][int(rng.integers(2))]
    dtype = rng.choice(INTS + FLOATS)
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + spatial
    x = _layout(_data(shape, dtype, nans=0.15, seed=int(rng.integers(1 << 30)),
                      extremes=False), layout)
    k = tuple(int(v) for v in rng.integers(1, 4, n))
    kw = dict(layout=layout, stride=tuple(int(v) for v in rng.integers(1, 4, n)),
              padding=tuple(int(rng.integers(0, 1 + kk // 2)) for kk in k),
              ceil_mode=bool(rng.integers(2)))
    policy = ["propagate", "omit"][int(rng.integers(2))]
    kind = int(rng.integers(4))
    dilation = tuple(int(v) for v in rng.integers(1, 3, n))
    if kind == 0:
        return (lambda a: nbp.max_pool(a, k, dilation=dilation, return_indices=True,
                                       nan_policy=policy, **kw)), x, True
    if kind == 1:
        return (lambda a: nbp.min_pool(a, k, nan_policy=policy, **kw)), x, True
    if kind == 2:
        include = bool(rng.integers(2))
        return (lambda a: nbp.avg_pool(a, k, count_include_pad=include, nan_policy=policy,
                                       **kw)), x, False
    out = tuple(int(v) for v in rng.integers(1, 8, n))
    return (lambda a: nbp.adaptive_max_pool(a, out, layout=layout, nan_policy=policy,
                                            return_indices=True)), x, True


@pytest.mark.parametrize("seed", range(8))
def test_random_configurations(seed):
    rng = _rng(100 + seed)
    done = 0
    while done < 25:
        op, x, exact = _random_case(rng)
        try:
            want = op(x)
        except ValueError:  # an empty window: not a valid configuration
            continue
        _check(op(cuda.to_device(x)), want, exact)
        done += 1


# --------------------------------------------------------------------------- out=


def test_out_contiguous_and_pairs():
    x = _data((2, 3, 6, 6), np.float32)
    d = cuda.to_device(x)
    out = cuda.device_array((2, 3, 3, 3), np.float32)
    assert nbp.max_pool2d(d, 2, out=out) is out
    np.testing.assert_array_equal(out.copy_to_host(), nbp.max_pool2d(x, 2))
    pair = (cuda.device_array((2, 3, 3, 3), np.float32), cuda.device_array((2, 3, 3, 3), np.int64))
    got = nbp.max_pool2d(d, 2, return_indices=True, out=pair)
    assert got[0] is pair[0] and got[1] is pair[1]
    _check(got, nbp.max_pool2d(x, 2, return_indices=True), True)


def test_out_strided_is_written_in_place():
    x = _data((2, 3, 6, 6), np.float64, nans=0.1)
    big = cuda.to_device(np.full((2, 3, 3, 6), -7.0))
    out = big[:, :, :, ::2]  # non-contiguous: computed elsewhere, then scattered on device
    assert nbp.avg_pool2d(cuda.to_device(x), 2, out=out) is out
    host = big.copy_to_host()
    np.testing.assert_allclose(host[..., ::2], nbp.avg_pool2d(x, 2))
    assert (host[..., 1::2] == -7.0).all()


def test_out_errors_write_nothing():
    x = _data((2, 3, 6, 6), np.float32)
    d = cuda.to_device(x)
    out = cuda.to_device(np.full((2, 3, 3, 3), 5.0, np.float32))
    cases = [
        (dict(out=cuda.device_array((2, 3, 2, 2), np.float32)), ValueError, "shape"),
        (dict(out=cuda.device_array((2, 3, 3, 3), np.float64)), TypeError, "dtype"),
        (dict(out=np.empty((2, 3, 3, 3), np.float32)), TypeError, "CUDA array"),
        (dict(out=out, return_indices=True), TypeError, "pair"),
    ]
    for kw, exc, fragment in cases:
        with pytest.raises(exc, match=fragment):
            nbp.max_pool2d(d, 2, **kw)
    assert (out.copy_to_host() == 5.0).all()
    with pytest.raises(ValueError, match="overlaps"):
        nbp.max_pool2d(d, 1, out=d)
    values = cuda.device_array((2, 3, 3, 3), np.float64)
    with pytest.raises(ValueError, match="overlaps"):  # indices aliasing the values
        nbp.max_pool2d(cuda.to_device(x.astype(np.float64)), 2, return_indices=True,
                       out=(values, values.view(np.int64)))


def test_zero_size():
    for shape, layout, want in [((0, 3, 6, 6), "channels_first", (0, 3, 3, 3)),
                                ((2, 6, 6, 0), "channels_last", (2, 3, 3, 0))]:
        d = cuda.to_device(np.zeros(shape, np.float32))
        assert nbp.avg_pool2d(d, 2, layout=layout).shape == want
        v, i = nbp.max_pool2d(d, 2, return_indices=True, layout=layout)
        assert v.shape == i.shape == want and i.dtype == np.int64
        assert nbp.global_max_pool(d, layout=layout).shape == (want[0], want[-1] if
                                                               layout == "channels_last"
                                                               else want[1])


# --------------------------------------------------------------------------- inputs, devices


def test_strided_and_reversed_device_inputs():
    x = _data((2, 3, 8, 10), np.float32, nans=0.1)
    d = cuda.to_device(x)
    views = [(d[:, :, ::2], x[:, :, ::2]),                 # gathered on the device
             (d[:, 1:, 1:7, ::3], x[:, 1:, 1:7, ::3]),
             (d.T, x.T),                                    # Fortran order
             (d[:, :, ::-1], x[:, :, ::-1])]                # negative strides: via the host
    for dv, xv in views:
        _check(nbp.max_pool(dv, (2, 2), return_indices=True),
               nbp.max_pool(xv, (2, 2), return_indices=True), True)
        _check(nbp.avg_pool(dv, (3, 2), 1, 1), nbp.avg_pool(xv, (3, 2), 1, 1), False)


def test_strided_copy_beyond_eight_axes():
    x = _data((2,) * 9 + (3,), np.int32)
    src = cuda.to_device(x)[(slice(None),) * 9 + (slice(None, None, 2),)]  # 10 unmergeable
    dst = cuda.device_array(src.shape, np.int32)
    strided.copy(src, dst)
    np.testing.assert_array_equal(dst.copy_to_host(), x[..., ::2])
    assert strided._simplify((2, 1, 3), [(24, 99, 8)]) == ((6,), [(8,)])


def test_device_argument_moves_arrays():
    x = _data((2, 3, 6, 6), np.float32)
    gpu = nbp.max_pool2d(x, 2, device="cuda")
    assert compat.is_device_array(gpu)
    np.testing.assert_array_equal(gpu.copy_to_host(), nbp.max_pool2d(x, 2))
    out = cuda.device_array((2, 3, 3, 3), np.float32)
    assert nbp.max_pool2d(x, 2, device="cuda", out=out) is out
    host = nbp.max_pool2d(cuda.to_device(x), 2, device="cpu")
    assert isinstance(host, np.ndarray)
    np.testing.assert_array_equal(host, nbp.max_pool2d(x, 2))
    v, i = nbp.max_pool2d(cuda.to_device(x), 2, return_indices=True, device="cpu")
    assert isinstance(v, np.ndarray) and isinstance(i, np.ndarray)
    assert isinstance(nbp.max_pool2d(cuda.to_device(x), 2, device=None), type(gpu))
    assert dispatch.host_array(cuda.to_device(x), "mask").shape == x.shape


def test_compat_reports_the_simulator():
    info = nbp.info()
    assert info["cuda_available"] is True
    assert info["cuda_simulator"] == compat.simulator()
    assert isinstance(info["cuda_device"], str)
    assert compat.grid_size(10_000) == (3, 8)  # capped by the fixture's MAX_BLOCKS
    assert not compat.is_device_array(np.zeros(3))
    if compat.simulator():
        with pytest.raises(TypeError, match="simulator"):
            compat.as_device_array(object())


class _Box:
    """Stands in for another library's CUDA array (a CuPy array, a torch tensor)."""

    def __init__(self, arr):
        self.arr = arr


class _BoxFamily:
    """A family adapter like dispatch._TorchFamily, whose library is _Box."""

    allocates = True
    device_id = None
    label = "box"

    def __init__(self, x=None):
        self.allocated = []

    def owns(self, a):
        return isinstance(a, _Box)

    def input(self, a):
        return a.arr

    def view(self, a):
        return a.arr

    def stream(self):
        return 0

    def empty(self, shape, dtype):
        box = _Box(cuda.device_array(shape, dtype))
        self.allocated.append(box)
        return box


def test_family_adapters_allocate_and_hand_back(monkeypatch):
    """The path CuPy and torch take: results allocated by the family, returned as its own."""
    monkeypatch.setattr(dispatch, "_family", lambda x, f=dispatch._family:
                        "box" if isinstance(x, _Box) else f(x))
    monkeypatch.setattr(dispatch, "CUDA_FAMILIES", dispatch.CUDA_FAMILIES + ("box",))
    monkeypatch.setitem(dispatch.FAMILIES, "box", _BoxFamily)
    x = _data((2, 3, 6, 6), np.float32, nans=0.1)
    v, i = nbp.max_pool2d(_Box(cuda.to_device(x)), 2, return_indices=True)
    assert isinstance(v, _Box) and isinstance(i, _Box)
    _check((v.arr, i.arr), nbp.max_pool2d(x, 2, return_indices=True), True)
    out = _Box(cuda.device_array((2, 3, 3, 3), np.float32))
    assert nbp.avg_pool2d(_Box(cuda.to_device(x)), 2, out=out) is out
    _check(out.arr, nbp.avg_pool2d(x, 2), False)
    for wrong in (np.empty((2, 3, 3, 3), np.float32), cuda.device_array((2, 3, 3, 3), np.float32)):
        with pytest.raises(TypeError, match=r"input's family \(box\)"):
            nbp.avg_pool2d(_Box(cuda.to_device(x)), 2, out=wrong)


# --------------------------------------------------------------------------- CuPy, torch


def test_cupy_family():
    if compat.simulator():
        pytest.skip("the simulator cannot view __cuda_array_interface__ arrays")
    cupy = pytest.importorskip("cupy")
    x = _data((2, 3, 6, 6), np.float32, nans=0.1)
    c = cupy.asarray(x)
    v, i = nbp.max_pool2d(c, 2, return_indices=True)
    assert isinstance(v, cupy.ndarray) and isinstance(i, cupy.ndarray)
    want = nbp.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(cupy.asnumpy(v), want[0])
    np.testing.assert_array_equal(cupy.asnumpy(i), want[1])
    r = nbp.avg_pool2d(c[:, :, ::-1], 2)  # negative strides: CuPy makes it contiguous
    np.testing.assert_allclose(cupy.asnumpy(r), nbp.avg_pool2d(x[:, :, ::-1], 2), rtol=1e-6)
    out = cupy.empty((2, 3, 3, 3), np.float32)
    assert nbp.avg_pool2d(c, 2, out=out) is out
    assert isinstance(nbp.avg_pool2d(c, 2, device="cpu"), np.ndarray)


def test_torch_family():
    if compat.simulator():
        pytest.skip("the simulator cannot view __cuda_array_interface__ arrays")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device here")
    x = _data((2, 3, 6, 6), np.float32, nans=0.1)
    t = torch.from_numpy(x).cuda().requires_grad_()
    v, i = nbp.max_pool2d(t, 2, return_indices=True)
    assert isinstance(v, torch.Tensor) and v.is_cuda and v.device == t.device
    want = nbp.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(v.cpu().numpy(), want[0])
    np.testing.assert_array_equal(i.cpu().numpy(), want[1])
    r = nbp.avg_pool2d(t.transpose(2, 3), 2)  # non-contiguous: torch makes it contiguous
    np.testing.assert_allclose(r.cpu().numpy(), nbp.avg_pool2d(x.transpose(0, 1, 3, 2), 2),
                               rtol=1e-6)
    out = torch.empty((2, 3, 3, 3), device=t.device)
    assert nbp.avg_pool2d(t, 2, out=out) is out
    assert isinstance(nbp.avg_pool2d(t, 2, device="cpu"), np.ndarray)


# --------------------------------------------------------------------------- token pooling

MODES = ["cls", "last", "mean", "sum", "max", "min", "mean_sqrt_len", "weighted_mean",
         "weighted", "attention"]


@pytest.fixture
def small_token_blocks(monkeypatch):
    """4 feature threads x 3 token lanes per block, lanes however short the sequences:
    sequences split unevenly over lanes."""
    monkeypatch.setattr(backend, "TOKEN_FEATURES", 4)
    monkeypatch.setattr(backend, "TOKEN_LANES", 3)
    monkeypatch.setattr(backend, "TOKENS_PER_LANE", 1)


def _token_inputs(dtype, nans=0.0, seed=1):
    rng = _rng(seed)
    h = _data((4, 7, 6), dtype, nans=nans, seed=seed)
    mask = np.array([[1, 1, 1, 0, 0, 0, 0],   # right padding
                     [0, 0, 1, 1, 1, 1, 1],   # left padding
                     [1, 0, 1, 1, 0, 1, 0],   # holes
                     [0, 0, 0, 0, 0, 0, 0]],  # no tokens
                    bool)
    return h, mask, rng.random((4, 7)), rng.standard_normal((4, 7))


def _same_tokens(h, exact=False, **kw):
    got = nbp.pool_tokens(cuda.to_device(h), **kw)
    _check(got, nbp.pool_tokens(h, **kw), exact)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("policy", ["propagate", "omit"])
def test_tokens_every_mode_in_one_pass(dtype, policy, small_token_blocks):
    h, mask, w, s = _token_inputs(dtype, nans=0.15 if policy == "omit" else 0.0)
    _same_tokens(h, attention_mask=mask, mode=MODES, weights=w, scores=s, nan_policy=policy)


@pytest.mark.parametrize("mode", MODES)
def test_tokens_each_mode_against_the_reference(mode, small_token_blocks):
    from token_reference import pool_tokens_ref
    h, mask, w, s = _token_inputs(np.float64, seed=2)
    kw = {"weights": w} if mode == "weighted" else {"scores": s} if mode == "attention" else {}
    got = nbp.pool_tokens(cuda.to_device(h), mask, mode, **kw).copy_to_host()
    np.testing.assert_allclose(got, pool_tokens_ref(h, mask, mode, **kw), rtol=1e-12, atol=1e-12)


def test_tokens_nan_propagates_and_extremes_are_exact(small_token_blocks):
    h, mask, _, _ = _token_inputs(np.float32, nans=0.1, seed=3)
    h[0, 1, 2] = -0.0  # -0 < +0 (IEEE 754-2019), as on the CPU, however lanes split
    h[0, 2, 2] = 0.0
    h[2, :, 1] = np.where(np.arange(h.shape[1]) % 3, -0.0, 0.0)
    h[3, :, 3] = -0.0
    _same_tokens(h, True, attention_mask=mask, mode=["max", "min", "cls", "last"])
    _same_tokens(h, attention_mask=mask, mode=["mean", "sum", "weighted_mean"])


def test_tokens_packed_and_unmasked(small_token_blocks):
    h, _, _, s = _token_inputs(np.float32, seed=4)
    _same_tokens(h, mode=["mean", "max", "attention"], scores=s)  # no mask
    packed = h.reshape(-1, 6)
    lengths = np.array([5, 0, 13, 1, 9])
    _same_tokens(packed, lengths=lengths, mode=MODES, weights=np.abs(s).ravel(),
                 scores=s.ravel())
    _same_tokens(packed, offsets=np.concatenate([[0], np.cumsum(lengths)]), mode="last")


def test_tokens_default_blocks_views_and_aux_on_the_device():
    h, mask, w, _ = _token_inputs(np.float32, seed=5)
    d = cuda.to_device(h)
    m2, w2 = np.ascontiguousarray(mask[:, ::2]), np.ascontiguousarray(w[:, ::2])
    got = nbp.pool_tokens(d[:, ::2], cuda.to_device(m2), ["mean", "weighted"],
                          weights=cuda.to_device(w2))
    want = nbp.pool_tokens(h[:, ::2], mask[:, ::2], ["mean", "weighted"], weights=w[:, ::2])
    _check(got, want, False)
    assert backend.token_block(768) == (32, 8) and backend.token_block(768, 4) == (32, 8)
    assert backend.token_block(3) == (4, 64)  # a power of two: a compile-time constant
    assert backend.token_block(768, 1, tokens=20) == (32, 2)  # 8 tokens a lane at least


def test_tokens_out_device_and_errors():
    h, mask, _, _ = _token_inputs(np.float32, seed=6)
    out = cuda.device_array((4, 12), np.float32)
    assert nbp.pool_tokens(h, mask, ["mean", "max"], device="cuda", out=out) is out
    _check(out, nbp.pool_tokens(h, mask, ["mean", "max"]), False)
    host = nbp.pool_tokens(cuda.to_device(h), mask, device="cpu")
    assert isinstance(host, np.ndarray)
    d = cuda.to_device(h)
    with pytest.raises(ValueError, match="overlaps"):
        nbp.pool_tokens(d, mask, out=d.reshape(-1)[:24].reshape(4, 6))
    with pytest.raises(TypeError, match="out must be a CUDA array"):
        nbp.pool_tokens(d, mask, out=np.empty((4, 6), np.float32))
    with pytest.raises(TypeError, match="float16, float32, float64"):
        nbp.pool_tokens(cuda.to_device(np.zeros((2, 3, 4), np.int32)))
    empty = nbp.pool_tokens(cuda.to_device(np.zeros((0, 3, 4), np.float32)))
    assert empty.shape == (0, 4)


def test_readme_gpu_block():
    """The README's GPU example takes its CUDA branch and prints what its comments say."""
    from test_docs import readme_blocks, run_readme_block

    (block,) = [b for b in readme_blocks() if b.id == "on-the-gpu"]
    output = run_readme_block(block)
    assert "(2, 3, 4, 4)" in output and "not available" not in output


def test_tokens_long_float32_sums_are_blocked(monkeypatch):
    """A lane sums its tokens in float32 blocks added into float64 totals: one lane over a
    long sequence comes out as exact as the float64 sum rounded to float32, where a float32
    running sum of the same tokens is off by far more."""
    monkeypatch.setattr(backend, "TOKEN_FEATURES", 4)
    monkeypatch.setattr(backend, "TOKEN_LANES", 1)  # one lane: the whole sequence
    rng = _rng(7)
    length = 3000
    h = (1 + rng.random((1, length, 4))).astype(np.float32)  # every mantissa bit in use
    w = rng.random((1, length))
    s = rng.standard_normal((1, length))
    modes = ["sum", "mean", "weighted_mean", "weighted", "attention"]
    got = nbp.pool_tokens(cuda.to_device(h), None, modes, weights=w, scores=s)
    got = got.copy_to_host()
    x = h[0].astype(np.float64)
    pos = np.arange(1, length + 1)[:, None]
    a = np.exp(s[0] - s[0].max())[:, None]
    refs = [x.sum(0), x.mean(0), (pos * x).sum(0) / pos.sum(), (w[0][:, None] * x).sum(0)
            / w.sum(), (a * x).sum(0) / a.sum()]
    bound = 2.0 ** -22  # a few float32 roundings
    for k, (mode, ref) in enumerate(zip(modes, refs)):
        err = np.max(np.abs(got[0, 4 * k:4 * (k + 1)] / ref - 1))
        assert err <= bound, (mode, err)
    running = np.cumsum(h[0], axis=0, dtype=np.float32)[-1]  # a float32 running sum
    assert np.max(np.abs(running / refs[0] - 1)) > 4 * bound
