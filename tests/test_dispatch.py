"""The dispatcher in an ordinary process: families, device=, errors, lazy imports, info().

What needs CUDA (or its simulator) to run is in test_cuda_sim.py.  The last test compiles
every CUDA kernel specialisation to PTX for a real GPU where libNVVM is installed (no GPU
needed), and skips elsewhere.
"""

import os
import subprocess
import sys

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numbapool as nbp
from numbapool import dispatch

NO_CUDA = not nbp.cuda_available()
needs_no_cuda = pytest.mark.skipif(not NO_CUDA, reason="CUDA (or its simulator) is available")


def test_numpy_in_numpy_out():
    x = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4)
    for device in (None, "cpu"):
        assert isinstance(nbp.avg_pool2d(x, 2, device=device), np.ndarray)
        v, i = nbp.max_pool2d(x, 2, return_indices=True, device=device)
        assert isinstance(v, np.ndarray) and isinstance(i, np.ndarray)
    np.testing.assert_array_equal(nbp.max_pool2d(x, 2, device="cpu"), nbp.max_pool2d(x, 2))
    out = np.empty((1, 2, 2, 2), np.float32)
    assert nbp.max_pool2d(x, 2, device="cpu", out=out) is out


def test_resolve_interface():
    x = np.zeros((2, 3))
    backend, same = dispatch.resolve(x)
    assert same is x and callable(backend.run_spatial)
    assert dispatch.resolve(x, "cpu")[0] is backend
    assert dispatch.host_array(None, "mask") is None
    np.testing.assert_array_equal(dispatch.host_array([1, 2], "lengths"), [1, 2])


@needs_no_cuda
def test_cuda_requested_but_absent():
    x = np.ones((1, 1, 4, 4), np.float32)
    with pytest.raises(RuntimeError, match="device='cuda' was requested, but CUDA is not "
                                           "available") as info:
        nbp.max_pool2d(x, 2, device="cuda")
    message = str(info.value)
    assert "NUMBA_ENABLE_CUDASIM" in message or "numbapool[cuda]" in message


class _ForeignCudaArray:
    """Looks like another library's CUDA array (only the interface is there)."""

    shape, dtype, ndim = (1, 1, 4, 4), np.dtype(np.float32), 4
    __cuda_array_interface__ = {"shape": (1, 1, 4, 4), "typestr": "<f4", "data": (0, False),
                                "version": 3, "strides": None}


@needs_no_cuda
def test_cuda_array_without_cuda():
    with pytest.raises(RuntimeError, match="x is a CUDA array .* CUDA is not available"):
        nbp.max_pool2d(_ForeignCudaArray(), 2)


class _BrokenInterface:
    @property
    def __cuda_array_interface__(self):
        raise TypeError("not on a GPU")


@pytest.mark.parametrize("bad,fragment", [
    ([[1.0, 2.0]], "NumPy ndarray or a CUDA array"),
    ("abc", "got builtins.str"),
    (None, "got builtins.NoneType"),
    ({"a": 1}, "numpy.asarray"),
    (_BrokenInterface(), "NumPy ndarray or a CUDA array"),
])
def test_unsupported_inputs(bad, fragment):
    with pytest.raises(TypeError, match=fragment):
        nbp.max_pool(bad, (2,))


@pytest.mark.parametrize("device", ["gpu", "CUDA", 0, "cuda:0", ("cuda",)])
def test_bad_device_value(device):
    with pytest.raises(ValueError, match="device must be None, 'cpu' or 'cuda'"):
        nbp.max_pool2d(np.ones((1, 1, 4, 4)), 2, device=device)


def test_torch_cpu_tensor_is_refused_with_advice():
    torch = pytest.importorskip("torch")
    for device in (None, "cpu", "cuda"):
        with pytest.raises(TypeError, match=r"CPU torch.Tensor; pass x.numpy\(\)"):
            nbp.max_pool2d(torch.ones(1, 1, 4, 4), 2, device=device)
    # auxiliary arrays may be CPU tensors
    np.testing.assert_array_equal(dispatch.host_array(torch.tensor([1, 2]), "lengths"), [1, 2])


def test_errors_name_the_parameter():
    with pytest.raises(TypeError, match="^hidden must be a NumPy ndarray"):
        dispatch.resolve([1.0, 2.0], name="hidden")
    with pytest.raises(TypeError, match="^lengths must be array-like"):
        dispatch.host_array([[1, 2], [3]], "lengths")  # ragged


def _hint(message):
    """The expression an error message tells the caller to pass."""
    return re.search(r"pass (\S+) ", message).group(1)


_TORCH_CALLS = {  # public function, its input's name, and a call on that input
    "max_pool": ("x", lambda a: nbp.max_pool(a, (2,))),
    "avg_pool": ("x", lambda a: nbp.avg_pool(a, (2,))),
    "pool_tokens": ("hidden", lambda a: nbp.pool_tokens(a, mode=["mean", "max"])),
}


@settings(max_examples=20, deadline=None)
@given(func=st.sampled_from(sorted(_TORCH_CALLS)), requires_grad=st.booleans(),
       dtype=st.sampled_from(["float32", "float64", "bfloat16"]),
       device=st.sampled_from([None, "cpu"]), seed=st.integers(0, 2**31))
def test_torch_cpu_hint_names_the_parameter_and_works(func, requires_grad, dtype, device,
                                                      seed):
    """The refusal of a CPU tensor names the function's own parameter, and what it says to
    pass works: ``.numpy()`` fails on a tensor that requires grad, and on bfloat16."""
    torch = pytest.importorskip("torch")
    name, call = _TORCH_CALLS[func]
    data = np.random.default_rng(seed).standard_normal((2, 3, 4))
    t = torch.tensor(data, dtype=getattr(torch, dtype), requires_grad=requires_grad)
    with pytest.raises(TypeError, match=f"^{name} is a CPU torch.Tensor; pass {name}") as info:
        call(t) if device is None else (
            nbp.pool_tokens(t, device=device) if func == "pool_tokens"
            else nbp.max_pool(t, (2,), device=device))
    hint = _hint(str(info.value))
    assert ("detach()" in hint) == requires_grad
    converted = eval(hint, {name: t})  # noqa: S307 - the message's own advice
    assert isinstance(converted, np.ndarray)
    expected = call(t.detach().to(torch.float64).numpy().astype(converted.dtype))
    np.testing.assert_array_equal(call(converted), expected)


_MASKED_CALLS = {  # (name, call on the input, the same call leaving NaNs out)
    "max_pool": ("x", lambda a, **kw: nbp.max_pool(a, (2,), **kw)),
    "avg_pool": ("x", lambda a, **kw: nbp.avg_pool(a, (2,), **kw)),
    "global_max_pool": ("x", lambda a, **kw: nbp.global_max_pool(a, **kw)),
    "pool_tokens": ("hidden", lambda a, **kw: nbp.pool_tokens(a, mode="mean", **kw)),
}


def _ma_reference(func, xm):
    """What the function computes over the unmasked elements, by numpy.ma."""
    n, c, length = xm.shape
    if func == "global_max_pool":
        return xm.max(axis=-1).filled(np.nan)
    if func == "pool_tokens":  # (B, L, D): tokens on axis 1
        return xm.mean(axis=1).filled(np.nan)
    win = xm[..., :length // 2 * 2].reshape(n, c, length // 2, 2)
    return (win.max(axis=-1) if func == "max_pool" else win.mean(axis=-1)).filled(np.nan)


@settings(max_examples=25, deadline=None)
@given(func=st.sampled_from(sorted(_MASKED_CALLS)), dtype=st.sampled_from(["float32",
                                                                          "float64"]),
       shape=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(2, 7)),
       density=st.sampled_from([0.0, 0.3, 1.0]), device=st.sampled_from([None, "cpu"]),
       seed=st.integers(0, 2**31))
def test_masked_arrays_are_refused_and_the_hint_honours_the_mask(func, dtype, shape, density,
                                                                 device, seed):
    """A masked array's mask used to be ignored: its masked values were pooled as if they
    were data.  Now it is a TypeError naming the parameter, and the advice it gives (fill
    with NaN, nan_policy="omit") pools exactly the unmasked values."""
    name, call = _MASKED_CALLS[func]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    xm = np.ma.masked_array(x, mask=rng.random(shape) < density)
    with pytest.raises(TypeError, match=f"^{name} is a numpy.ma.MaskedArray") as info:
        call(xm, device=device)
    message = str(info.value)
    assert f"{name}.filled(np.nan)" in message and "nan_policy='omit'" in message
    assert f"np.asarray({name})" in message
    ours = call(xm.filled(np.nan), nan_policy="omit")
    np.testing.assert_allclose(ours, _ma_reference(func, xm), rtol=1e-6)
    np.testing.assert_array_equal(call(np.asarray(xm)), call(x))  # the mask dropped


def test_masked_auxiliary_arrays_are_refused():
    m = np.ma.masked_array([1, 0, 1], mask=[False, True, False])
    with pytest.raises(TypeError, match=r"mask is a numpy.ma.MaskedArray.*mask.filled\(value\)"):
        dispatch.host_array(m, "mask")
    assert dispatch.host_array(m.filled(0), "mask") is not None


def test_info_and_cuda_available():
    info = nbp.info()
    for key in ("numba", "threading_layer", "threads", "cuda_available", "cuda_device",
                "cuda_simulator"):
        assert key in info
    assert info["cuda_available"] is nbp.cuda_available()
    assert isinstance(info["threads"], int) and info["threads"] >= 1
    assert isinstance(info["cuda_simulator"], bool)
    if NO_CUDA:
        assert info["cuda_device"] is None and info["cuda_simulator"] is False


def test_import_is_light():
    """``import numbapool`` compiles nothing: it imports neither Numba nor the CUDA stack."""
    code = ("import sys, numbapool; "
            "print(sorted(m for m in sys.modules if m == 'numba' or m.startswith("
            "('numba.', 'numba_cuda', 'numbapool._cuda', 'cuda'))))")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.strip()
    assert out == "[]"


# --------------------------------------------------------------------------- PTX for real GPUs

INTS = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]
FLOATS = ["float16", "float32", "float64"]


def _ptx_compiler(monkeypatch):
    """``compile(pyfunc, signature)`` to PTX, or a skip where libNVVM is missing."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        pytest.skip("the simulator compiles nothing")
    try:
        from numba import cuda
        import numba.cuda.dispatcher
        cc = (9, 0)
        if cuda.is_available():
            cc = cuda.get_current_device().compute_capability
        else:
            class _Device:  # device functions ask the current device's compute capability
                compute_capability = cc

            monkeypatch.setattr(numba.cuda.dispatcher, "get_current_device", _Device)
        cuda.compile_ptx(lambda a: None, (cuda.types.float32[::1],), cc=cc)
    except Exception as exc:  # no numba-cuda, or no libNVVM
        pytest.skip(f"cannot compile PTX here: {type(exc).__name__}")
    return lambda func, sig: cuda.compile_ptx(func, sig, cc=cc)


def test_kernels_compile_for_a_real_gpu(monkeypatch):
    """Every kind of kernel the spatial ops launch compiles for a GPU: each dtype through
    the window and plane kernels (split, with the combining pass), and in float32 every
    other specialisation once: several channels per thread, 3-D and 4-D pools, each
    summed term, finish and root, both index widths.  (The simulator runs Python, so this
    is what checks the kernels against Numba's CUDA type system.)"""
    compile_ptx = _ptx_compiler(monkeypatch)
    import numba
    from numbapool._cuda import backend, plane, spatial, strided

    launches = []

    class _Capture:
        def run_spatial(self, plan, x, out, shape):
            xc = np.zeros(plan.canonical_in_shape, x.dtype)
            vc = np.zeros(plan.canonical_out_shape, plan.out_dtype)
            ic = np.zeros(plan.canonical_out_shape if plan.return_indices else (0, 0, 0),
                          np.int64)
            tables = backend.spatial_tables(plan, lambda a: a)
            launches.extend(backend.spatial_launch(plan, xc, vc, ic, tables))

    monkeypatch.setattr(dispatch, "resolve", lambda x, device=None, stream=None: (_Capture(), x))
    monkeypatch.setattr(plane, "partials", lambda n, dtype, stream=0, role="values":
                        np.zeros(n, dtype))
    monkeypatch.setattr(plane, "fill_threads", lambda: 1 << 20)  # few outputs: split planes
    monkeypatch.setattr(plane, "SPLIT_TAPS", 1)
    monkeypatch.setattr(plane, "MIN_TAPS", 1)
    for dtype in INTS + FLOATS:  # the value types: window and plane kernels, both passes
        x = np.zeros((2, 3, 6, 5), dtype)
        nbp.max_pool2d(x, 2, return_indices=True)
        nbp.global_max_pool(np.zeros((2, 6, 5, 8), dtype), layout="channels_last",
                            nan_policy="omit")
        nbp.avg_pool2d(x, 3, 2, 1)
    x = np.zeros((2, 3, 6, 5), np.float32)
    cl = np.zeros((2, 6, 5, 8), np.float32)
    nbp.global_avg_pool(cl, layout="channels_last", nan_policy="omit")
    nbp.gem_pool(x.astype(np.float64), 2.5)  # the float64 root: a combining pass
    monkeypatch.setattr(plane, "fill_threads", lambda: 1)  # several channels per thread
    nbp.min_pool2d(cl, 3, 2, 1, return_indices=True, nan_policy="omit", layout="channels_last")
    nbp.avg_pool2d(cl, 3, 2, 1, layout="channels_last", divisor_override=2, nan_policy="omit")
    nbp.min_pool(x, (2, 2, 2), nan_policy="omit")
    nbp.max_pool(np.zeros((1, 2, 3, 3, 3, 3), np.float32), 2, return_indices=True)
    nbp.avg_pool(x, (2, 2, 2), 1, 1)
    nbp.avg_pool(np.zeros((1, 2, 3, 3, 3, 3), np.float32), 2)
    for p in (1.0, 2.0, 2.5, 0.5):
        nbp.lp_pool2d(x, p, 2)
    nbp.gem_pool(x, 3.0)
    nbp.gem_pool(np.zeros((2, 3, 6, 5), np.float16), 2.5)
    monkeypatch.setattr(spatial, "WIDE", 1)  # the uint64 forms
    nbp.max_pool2d(x, 2, return_indices=True)
    nbp.avg_pool2d(cl, 2, layout="channels_last", nan_policy="omit")
    monkeypatch.setattr(plane, "fill_threads", lambda: 1 << 20)
    nbp.global_max_pool(x)
    nbp.gem_pool(x)
    signatures = {(launch.kernel.py_func, tuple(numba.typeof(a) for a in launch.args))
                  for launch in launches}
    kinds = {launch.kernel.__name__.split("_kernel")[0] for launch in launches}
    assert kinds == {"extreme", "sum", "plane_extreme", "plane_extreme_combine", "plane_sum",
                     "plane_sum_combine"}, kinds
    for func, sig in signatures:
        _, restype = compile_ptx(func, sig)
        assert str(restype) == "none"
    for dtype in INTS + FLOATS:
        a = numba.types.Array(numba.from_dtype(np.dtype(dtype)), strided.DIMS, "A")
        compile_ptx(strided._copy_kernel.py_func, (a, a))


def test_foreign_cuda_arrays_are_viewed_without_waiting(monkeypatch):
    """CuPy arrays and torch tensors are viewed with ``sync=False``: the kernels run on the
    producer's stream (or the one named), so waiting for it would only stall the host."""
    compat = pytest.importorskip("numbapool._cuda.compat")
    calls = []

    class _Cuda:
        def as_cuda_array(self, obj, sync=True):
            calls.append(sync)
            return "view"

    monkeypatch.setattr(compat, "_SIMULATOR", False)
    monkeypatch.setattr(compat, "cuda", _Cuda())
    assert compat.as_device_array(object()) == "view" and calls == [False]


ALL_TOKEN_MODES = ["cls", "last", "mean", "sum", "max", "min", "mean_sqrt_len", "weighted_mean",
                   "weighted", "attention"]
#: (modes, sequence kind, nan_policy, dtypes): each mode's code, each kind, policy and
#: dtype at least once, and the widest mode set (the most registers) for each dtype
TOKEN_CASES = [
    (["mean"], "mask", "propagate", FLOATS), (["mean"], "full", "propagate", ["float32"]),
    (["mean"], "packed", "omit", ["float32"]), (["max", "min"], "mask", "omit", ["float16"]),
    (["max", "min"], "full", "propagate", ["float64"]), (["cls", "last"], "mask", "omit",
                                                         ["float32"]),
    (["cls", "last"], "packed", "propagate", ["float16"]),
    (["sum", "mean_sqrt_len"], "full", "omit", ["float32"]),
    (["mean", "max", "weighted_mean"], "mask", "propagate", ["float16"]),
    (["weighted", "attention"], "packed", "omit", ["float64"]),
    (["weighted", "attention"], "mask", "propagate", ["float32"]),
    (ALL_TOKEN_MODES, "mask", "omit", FLOATS), (ALL_TOKEN_MODES, "full", "propagate",
                                                ["float32"]),
    (ALL_TOKEN_MODES, "packed", "propagate", ["float16"]),
]


def _ptxas_report(ptx):
    """``(registers, spill store bytes)`` from ``ptxas -v`` for sm_90, or ``None`` where no
    ptxas is found (on PATH, or in ``$CUDA_HOME/bin``)."""
    import shutil
    import tempfile

    ptxas = shutil.which("ptxas")
    if ptxas is None and os.environ.get("CUDA_HOME"):
        ptxas = shutil.which("ptxas", path=os.path.join(os.environ["CUDA_HOME"], "bin"))
    if ptxas is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "k.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        err = subprocess.run([ptxas, "-arch=sm_90", "-v", src, "-o", os.path.join(tmp, "k.o")],
                             capture_output=True, text=True, check=True).stderr
    regs = int(re.search(r"Used (\d+) registers", err).group(1))
    spill = re.search(r"(\d+) bytes spill stores", err)
    return regs, int(spill.group(1)) if spill else 0


def test_token_kernels_compile_for_a_real_gpu(monkeypatch):
    """Every specialisation the token path launches (sequence kind, NaN policy, dtype,
    features per thread, modes; masks and offsets of other dtypes) compiles for a GPU, and,
    where ptxas is found, stays within 64 registers (the kernels' launch bounds); only the
    widest mode set, and a strided mask, may spill a few registers."""
    _ptx_compiler(monkeypatch)  # skips where libNVVM is missing; stands in for the device
    import numba
    from numba import cuda
    from numbapool._cuda import backend, compat

    monkeypatch.setattr(compat, "to_device", lambda a, stream=0: np.ascontiguousarray(a))
    monkeypatch.setattr(compat, "device_empty", lambda shape, dtype, stream=0:
                        np.empty(shape, dtype))
    monkeypatch.setattr(compat, "current_device_id", lambda: 0)
    monkeypatch.setattr(compat, "properties", lambda device: {"multiprocessors": 1})
    monkeypatch.setattr(backend, "_EMPTY", {})
    launches = []

    class _Capture:
        def run_tokens(self, plan, hidden, out, inputs):
            rows = hidden.reshape(-1)
            vec, tx, ty = backend.token_shape(plan, rows.size // plan.features)
            work = np.zeros(plan.out_shape, plan.out_dtype)
            seqs = backend.token_sequences(plan, inputs)
            launch = backend.token_launch(plan, rows, work, seqs,
                                          backend.token_coefficients(plan), vec, tx, ty)
            launches.append(launch)
            if seqs[0] != 0:  # another dtype and layout of the mask, or of the offsets
                args = list(launch.args)
                i, other = ((4, np.zeros((4, 16), np.int8)[:, ::2]) if seqs[0] == 2
                            else (3, np.zeros(5, np.uint16)))
                args[i] = other
                launches.append(backend.Launch(launch.kernel, tuple(args), launch.items,
                                               launch.block_threads))

    monkeypatch.setattr(dispatch, "resolve", lambda x, device=None, name="x", stream=None:
                        (_Capture(), x))
    B, L, D = 4, 64, 768  # 32 feature threads x 8 lanes: a block of the real GPU's shape
    mask = np.random.default_rng(0).random((B, L)) < 0.7
    for modes, kind, policy, dtypes in TOKEN_CASES:
        shape = (B * L,) if kind == "packed" else (B, L)
        kw = dict(mode=modes, nan_policy=policy,
                  weights=np.ones(shape) if "weighted" in modes else None,
                  scores=np.ones(shape) if "attention" in modes else None)
        for dtype in dtypes:
            h = np.zeros((B, L, D), dtype)
            if kind == "packed":
                nbp.pool_tokens(h.reshape(B * L, D), lengths=[L] * B, **kw)
            else:
                nbp.pool_tokens(h, mask if kind == "mask" else None, **kw)
    compiled = {}
    for launch in launches:
        sig = tuple(numba.typeof(a) for a in launch.args)
        key = (launch.kernel, sig)
        if key in compiled:
            continue
        bounds = launch.kernel.targetoptions.get("launch_bounds")
        assert bounds == (launch.block_threads, 1024 // launch.block_threads)
        ptx, restype = cuda.compile_ptx(launch.kernel.py_func, sig, cc=(9, 0),
                                        launch_bounds=bounds)
        assert str(restype) == "none"
        compiled[key] = _ptxas_report(ptx)
    assert len(compiled) >= 25
    for (kernel, sig), report in compiled.items():
        if report is None:
            continue
        regs, spills = report
        assert regs <= 64, (kernel.__name__, sig, regs)
        if "0123456789" not in kernel.__name__ and sig[4].layout == "C":
            assert spills == 0, (kernel.__name__, sig, spills)


def test_bfloat16_auxiliary_tensors_come_to_the_host_as_float32():
    torch = pytest.importorskip("torch")
    w = torch.tensor([[0.5, 1.0, 3.0]], dtype=torch.bfloat16)
    got = dispatch.host_array(w, "weights")
    assert got.dtype == np.float32 and got.tolist() == [[0.5, 1.0, 3.0]]
