"""The CUDA kernels of block_reduce and pyramid, on tiny shapes.

Runs where CUDA is usable (Numba's simulator, as tests/test_isolated_runs.py runs it, or a
GPU); skips elsewhere.  Results are compared with the naive oracle of
tests/block_reference.py (exact for max, min, mode and integer sums; within the rounding of
the kernels' float32 or float64 arithmetic otherwise), and with the CPU path for one input
that takes every kernel family; compiling the CPU kernels is most of a simulator test's
time, so the CPU side is called for one dtype only.  Launches use 8 threads per block and
at most 3 blocks, so the grid-stride loops wrap; each test checks that the CUDA kernels ran.
"""

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")

import numbapool as nbp  # noqa: E402
from numbapool import dispatch  # noqa: E402

if not nbp.cuda_available():
    pytest.skip("no CUDA GPU, and NUMBA_ENABLE_CUDASIM is not set", allow_module_level=True)

import block_reference as ref  # noqa: E402
from numbapool._cuda import compat  # noqa: E402
from numbapool._cuda import blocks as cuda_blocks  # noqa: E402

from conftest import assert_matches  # noqa: E402

pytestmark = pytest.mark.usefixtures("small_grids")

FUNCS = ("sum", "mean", "max", "min", "median", "mode")
EXACT = ("max", "min", "mode")


def _data(shape, dtype, seed=0, nans=0.0):
    """Floats with repeats (integers, so that modes have ties) and a fraction of NaNs;
    integers from a few values."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0, 4, shape).astype(dtype)
    a = np.round(rng.standard_normal(shape) * 3)
    a[rng.random(shape) < nans] = np.nan
    return a.astype(dtype)


def _tolerance(dtype):
    return {"float16": 2e-3, "float32": 1e-5}.get(np.dtype(dtype).name, 1e-12)


def _to_host(a):
    assert compat.is_device_array(a), type(a)
    return a.copy_to_host()


def _check(got, want, func):
    """A device result equals ``want`` (exactly for max, min, mode and integers)."""
    tol = _tolerance(want.dtype)
    assert_matches(got, want, func in EXACT or want.dtype.kind in "iu", to_host=_to_host,
                   rtol=tol, atol=tol)


def _same(x, block, func, **kw):
    """The CUDA result on ``x`` (a Numba device array of it) matches the oracle's."""
    got = nbp.block_reduce(cuda.to_device(np.ascontiguousarray(x)), block, func, **kw)
    _check(got, ref.block_reduce(x, block, func, **kw), func)
    return got


def _kinds(names):
    return {n.split("_kernel")[0] for n in names}


# --------------------------------------------------------------------------- every reducer


@pytest.mark.parametrize("boundary", ["pad", "partial", "trim", "exact"])
@pytest.mark.parametrize("nan_policy", ["propagate", "omit"])
def test_every_reducer_and_boundary(boundary, nan_policy, launched):
    """float32 with NaNs, a block of 2 x 3 on 5 x 7 (cut short on both axes; 4 x 6 for
    "exact"), and a padding value that takes part."""
    x = _data((5, 7), np.float32, seed=1, nans=0.15)
    x[0:2, 0:3] = np.nan  # a block of only NaNs
    if boundary == "exact":
        x = x[:4, :6]
    for func in FUNCS:
        _same(x, (2, 3), func, boundary=boundary, nan_policy=nan_policy, cval=2.0)
    assert _kinds(launched) == {"block_sum", "block_extreme", "block_order"}


def test_matches_the_cpu_path():
    """One input through both backends, every reducer: the CPU kernels' NaN rules, dtypes
    and rounding (mean: the float64 reciprocal; median: float32) are the GPU's."""
    x = _data((3, 5, 7), np.float32, seed=2, nans=0.1)
    for func in FUNCS:
        for kw in (dict(boundary="pad", cval=-1.0), dict(boundary="partial",
                                                          nan_policy="omit")):
            got = nbp.block_reduce(cuda.to_device(x), (1, 2, 3), func, **kw)
            want = nbp.block_reduce(x, (1, 2, 3), func, **kw)
            assert_matches(got, want, True, to_host=_to_host)


@pytest.mark.parametrize("func", FUNCS)
def test_integers(func):
    """int16 (sums to int64, means and medians to float64) with a padding value, and
    uint8 sums to uint64."""
    x = _data((5, 7), np.int16, seed=3)
    x[0, 0] = np.iinfo(np.int16).min
    x[4, 6] = np.iinfo(np.int16).max
    _same(x, (2, 3), func, cval=-5)
    _same(x, 3, func, boundary="partial")
    if func == "sum":
        _same(_data((4, 6), np.uint8, seed=4) + np.uint8(250), 2, "sum")


def test_uint64_labels_above_2_53():
    """Modes (and maxima) of labels that float64 cannot tell apart stay exact."""
    base = np.uint64(2 ** 53)
    labels = base + _data((6, 5), np.uint64, seed=5)
    labels[0, 0] = np.uint64(2 ** 64 - 1)
    for func in ("mode", "max", "min"):
        got = _same(labels, (2, 2), func, cval=7)
        assert got.dtype == np.uint64
    got = _same(labels, (3, 5), "mode", boundary="partial")
    assert int(got.copy_to_host().max()) > 2 ** 53


def test_float16():
    x = _data((4, 6, 2), np.float16, seed=6, nans=0.1)
    for func in FUNCS:
        _same(x, (2, 4, 1), func, nan_policy="omit")
    _same(x, (3, 3, 1), "mean", boundary="pad", cval=0.5)


# --------------------------------------------------------------------------- shapes


def test_large_blocks_are_counted_not_sorted(launched):
    """Medians and modes of blocks of more than SORT_MAX elements, with NaNs (a block of
    only NaNs too) and ties; the edge blocks hold fewer."""
    assert cuda_blocks.SORT_MAX < 81
    x = _data((9, 11), np.float32, seed=7, nans=0.1)
    x[:, 9:] = np.nan
    for func in ("median", "mode"):
        for policy in ("propagate", "omit"):
            _same(x, 9, func, boundary="partial", nan_policy=policy)
    _same(_data((9, 10), np.int64, seed=8), (9, 9), "median", cval=3)
    tie = np.random.default_rng(0).permutation([5] * 40 + [2] * 40 + [7]).reshape(9, 9)
    got = _same(tie.astype(np.int32), 9, "mode")  # a tie goes to the smaller value
    assert got.copy_to_host().item() == 2
    assert _kinds(launched) == {"block_order"}


def test_outer_axes_channels_and_planes():
    """Channels-last data (C = 2 trailing channels), two outer axes padded on both, an
    unblocked leading axis (planes) and an unblocked axis among the outer ones."""
    x = _data((3, 4, 5, 2), np.float32, seed=9, nans=0.05)
    for func in ("mean", "max", "median"):
        _same(x, (2, 3, 2, 1), func, cval=1.0)
    y = _data((2, 3, 2, 5), np.float64, seed=10)
    for func in ("sum", "mode"):
        _same(y, (1, 2, 1, 3), func, boundary="partial")


def test_blocks_of_one_and_zero_size():
    x = _data((3, 4), np.float32, seed=11)
    for func in ("mean", "median"):
        _same(x, 1, func)
    scalar = nbp.block_reduce(cuda.to_device(np.array(2.5)), 3, "max")  # 0-d
    _check(scalar, nbp.block_reduce(np.array(2.5), 3, "max"), "max")
    empty = nbp.block_reduce(cuda.to_device(np.zeros((0, 5), np.int32)), 2, "sum")
    assert empty.shape == (0, 3) and empty.dtype == np.int64


def test_strided_input_and_out(launched):
    x = _data((6, 10), np.float32, seed=12, nans=0.1)
    d = cuda.to_device(x)[:, ::2]  # non-contiguous: gathered on the device
    _check(nbp.block_reduce(d, 2, "max"), ref.block_reduce(x[:, ::2], 2, "max"), "max")
    x5 = np.ascontiguousarray(x[:, :5])
    out = cuda.device_array((3, 3), np.float32)
    assert nbp.block_reduce(cuda.to_device(x5), 2, out=out) is out
    _check(out, ref.block_reduce(x5, 2), "mean")
    wide = cuda.device_array((3, 6), np.float32)
    view = wide[:, ::2]  # a strided out=: scattered on the device
    assert nbp.block_reduce(cuda.to_device(x5), 2, "median", out=view) is view
    _check(view, ref.block_reduce(x[:, :5], 2, "median"), "median")


# --------------------------------------------------------------------------- the API


def test_pyramid_of_three_levels():
    x = _data((9, 10, 2), np.float32, seed=13, nans=0.05)
    d = cuda.to_device(x)
    levels = nbp.pyramid(d, (2, 2, 1), levels=3, func="median", nan_policy="omit")
    assert levels[0] is d and len(levels) == 4
    want = x
    for level in levels[1:]:
        want = ref.block_reduce(want, (2, 2, 1), "median", boundary="partial",
                                nan_policy="omit")
        _check(level, want, "median")
    assert [a.shape for a in nbp.pyramid(cuda.to_device(np.zeros((4, 4))))] == \
        [(4, 4), (2, 2), (1, 1)]


def test_devices_and_errors():
    x = _data((4, 6), np.float32, seed=14)
    got = nbp.block_reduce(x, 2, "sum", device="cuda")  # NumPy copied over
    _check(got, ref.block_reduce(x, 2, "sum"), "sum")
    host = nbp.block_reduce(cuda.to_device(x), 2, "sum", device="cpu")
    assert isinstance(host, np.ndarray)
    d = cuda.to_device(x)
    with pytest.raises(NotImplementedError, match="runs on the CPU only"):
        nbp.block_reduce(d, 2, np.nanmax)
    with pytest.raises(TypeError, match="input's family"):
        nbp.block_reduce(d, 2, out=np.empty((2, 3)))
    with pytest.raises(ValueError, match=r"out has shape \(2, 2\); expected \(2, 3\)"):
        nbp.block_reduce(d, 2, out=cuda.device_array((2, 2)))
    with pytest.raises(TypeError, match="out has dtype float32; expected float64"):
        nbp.block_reduce(cuda.to_device(x.astype(np.float64)), 2,
                         out=cuda.device_array((2, 3), np.float32))
    with pytest.raises(ValueError, match="cval"):
        nbp.block_reduce(cuda.to_device(np.zeros(4, np.uint8)), 3, cval=-1)


class _Box:
    """Stands in for another library's CUDA array (a CuPy array, a torch tensor)."""

    def __init__(self, arr):
        self.arr = arr
        self.shape = arr.shape


class _BoxFamily:
    """A family adapter like dispatch._TorchFamily, whose library is _Box."""

    allocates = True
    device_id = None
    label = "box"

    def __init__(self, x=None):
        pass

    def owns(self, a):
        return isinstance(a, _Box)

    def input(self, a):
        return a.arr

    def view(self, a):
        return a.arr

    def stream(self):
        return 0

    def empty(self, shape, dtype):
        return _Box(cuda.device_array(shape, dtype))


def test_results_are_of_the_input_family(monkeypatch):
    """The path CuPy arrays and torch tensors take: results allocated by their library,
    returned as its arrays (pyramid levels too)."""
    monkeypatch.setattr(dispatch, "_family", lambda x, f=dispatch._family:
                        "box" if isinstance(x, _Box) else f(x))
    monkeypatch.setattr(dispatch, "CUDA_FAMILIES", dispatch.CUDA_FAMILIES + ("box",))
    monkeypatch.setitem(dispatch.FAMILIES, "box", _BoxFamily)
    x = _data((4, 5), np.uint32, seed=15)
    got = nbp.block_reduce(_Box(cuda.to_device(x)), 2, "mode")
    assert isinstance(got, _Box)
    _check(got.arr, ref.block_reduce(x, 2, "mode"), "mode")
    out = _Box(cuda.device_array((2, 3), np.float64))
    assert nbp.block_reduce(_Box(cuda.to_device(x)), 2, "median", out=out) is out
    _check(out.arr, ref.block_reduce(x, 2, "median"), "median")
    box = _Box(cuda.to_device(x))
    levels = nbp.pyramid(box, levels=2, func="max")
    assert levels[0] is box and all(isinstance(a, _Box) for a in levels)
