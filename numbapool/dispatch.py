"""Where an array lives, which backend computes, and how results go back to the caller.

Interface for public functions (``spatial.py``, ``tokens.py``)::

    backend, x = dispatch.resolve(x, device)     # before any other use of x
    ...validate, build a plan from x.shape / x.dtype...
    return backend.run_spatial(plan, x, out, result_shape)   # or backend.run_tokens(...)

``resolve`` picks the backend from the main input's family and ``device`` (None, "cpu" or
"cuda") and returns it with ``x`` as that backend wants it: a NumPy array for the CPU, a
Numba device array for CUDA.  The backend's entry points take ``out`` as the caller gave
it and return results in the caller's family, without a copy:

* NumPy in -> CPU kernels -> NumPy out;
* a Numba device array (or a simulator one) -> CUDA kernels -> Numba device array;
* a CuPy array / PyTorch CUDA tensor -> CUDA kernels on a zero-copy Numba view, run on the
  library's current stream and device; results allocated by that library -> CuPy / torch;
* any other ``__cuda_array_interface__`` object -> CUDA kernels -> Numba device array;
* ``device="cuda"`` with NumPy input: copied to the GPU, Numba device array out;
  ``device="cpu"`` with a CUDA input: copied to the host, NumPy out.

CUDA entry points are called as ``run_x(plan, x, out, *rest, env=Env(...))``: a CUDA
backend function must accept the ``env`` keyword (stream and result allocator, see
:class:`numbapool._cuda.backend.Env`).  ``hasattr(backend, "run_tokens")`` says whether a
backend has an entry point.  Backends are imported lazily, so ``import numbapool`` loads
neither Numba's compiler nor the CUDA stack.  :func:`host_array` brings auxiliary arrays
(masks, lengths, weights) to the host, where plans are built.

The input checks every function shares live here, so that each function gets them: a
``numpy.ma.MaskedArray`` (main input or auxiliary array) is refused with a ``TypeError``
rather than having its mask silently dropped, and a CPU torch tensor is refused with a hint
that names the parameter and works for tensors that require grad.

>>> import numpy as np
>>> backend, x = resolve(np.zeros((2, 3)))
>>> backend.__name__, type(x).__name__
('numbapool._cpu.backend', 'ndarray')
"""

from __future__ import annotations

import importlib
import sys

import numpy as np

DEVICES = (None, "cpu", "cuda")
CUDA_FAMILIES = ("numba", "cupy", "torch", "cuda")


_BACKENDS = {}


def _backend(name):
    """The backend module (imported on first use; a dict lookup after that, since
    ``import_module`` costs microseconds on every call)."""
    module = _BACKENDS.get(name)
    if module is None:
        module = _BACKENDS[name] = importlib.import_module(f"numbapool._{name}.backend")
    return module


def _compat():
    from ._cuda import compat
    return compat


def _family(x):
    """'numpy', 'numba', 'cupy', 'torch', 'torch_cpu', 'cuda' (another CUDA array) or None."""
    if isinstance(x, np.ndarray):
        return "numpy"
    torch = sys.modules.get("torch")  # a tensor exists only if torch was imported
    if torch is not None and isinstance(x, torch.Tensor):
        return "torch" if x.is_cuda else "torch_cpu"
    try:
        # Numba device arrays, real or simulated (which lack __cuda_array_interface__)
        if getattr(x, "__cuda_ndarray__", False) is True and hasattr(x, "copy_to_host"):
            return "numba"
        cai = hasattr(x, "__cuda_array_interface__")
    except Exception:  # a property that raises: not an array we can use
        return None
    if cai:
        return "cupy" if type(x).__module__.split(".")[0] == "cupy" else "cuda"
    return None


def _require_cuda(why):
    compat = _compat()
    if not compat.available():
        raise RuntimeError(f"{why}, but CUDA is not available: {compat.why_unavailable()}")
    return compat


def _view(a, what):
    """A zero-copy Numba view of a ``__cuda_array_interface__`` object."""
    interface = a.__cuda_array_interface__
    if any(s < 0 for s in interface.get("strides") or ()):
        raise ValueError(f"{what} has negative strides, which Numba cannot view; pass a "
                         "contiguous copy")
    try:
        return _compat().as_device_array(a)
    except (TypeError, ValueError, NotImplementedError) as exc:
        raise TypeError(f"{what} ({type(a).__name__}, dtype {getattr(a, 'dtype', '?')}) "
                        f"cannot be used as a CUDA array: {exc}") from None


# --------------------------------------------------------------------------- array families


class _NumbaFamily:
    """Numba device arrays (and other CUDA arrays, whose results are Numba arrays)."""

    allocates = False  # results come from Numba's allocator
    label = "Numba device array"

    def __init__(self, x=None):
        self.device_id = None  # Numba's current device

    def owns(self, a):
        return _family(a) in ("numba", "cuda")

    def input(self, a):
        return a if _family(a) == "numba" else _view(a, "x")

    def view(self, a):
        return a if _family(a) == "numba" else _view(a, "out")

    def stream(self):
        return 0

    def empty(self, shape, dtype):  # pragma: no cover - allocates is False
        raise NotImplementedError


class _TorchFamily:
    """PyTorch CUDA tensors: results are torch tensors on the input's device and stream."""

    allocates = True
    label = "torch CUDA tensor"

    def __init__(self, x):
        import torch
        self._torch = torch
        self.device = x.device
        self.device_id = x.device.index

    def owns(self, a):
        return isinstance(a, self._torch.Tensor) and a.is_cuda

    def input(self, a):
        # detach: tensors that require grad refuse __cuda_array_interface__ (no autograd here)
        return _view(a.detach().contiguous(), "x")

    def view(self, a):
        return _view(a.detach(), "out")

    def stream(self):
        handle = self._torch.cuda.current_stream(self.device).cuda_stream
        return _compat().external_stream(handle) if handle else 0

    def empty(self, shape, dtype):
        like = self._torch.from_numpy(np.empty(0, dtype))  # numpy dtype -> torch dtype
        return self._torch.empty(shape, dtype=like.dtype, device=self.device)


class _CupyFamily:
    """CuPy arrays: results are CuPy arrays on the input's device and current stream."""

    allocates = True
    label = "CuPy array"

    def __init__(self, x):
        import cupy
        self._cupy = cupy
        self.device_id = x.device.id

    def owns(self, a):
        return isinstance(a, self._cupy.ndarray)

    def input(self, a):
        return _view(self._cupy.ascontiguousarray(a), "x")

    def view(self, a):
        return _view(a, "out")

    def stream(self):
        handle = self._cupy.cuda.get_current_stream().ptr
        return _compat().external_stream(handle) if handle else 0

    def empty(self, shape, dtype):
        with self._cupy.cuda.Device(self.device_id):
            return self._cupy.empty(shape, dtype)


FAMILIES = {"numba": _NumbaFamily, "cuda": _NumbaFamily, "torch": _TorchFamily,
            "cupy": _CupyFamily}


class _CudaBackend:
    """The CUDA backend seen through a caller's array family.

    Attribute access returns the backend module's entry point wrapped so that ``out`` is
    viewed as Numba arrays, the kernels run on the family's device and the call's stream
    (:func:`cuda_stream`), results are
    allocated by the family's library, and what is returned is the caller's objects:
    ``out`` itself where it was given (in the first place of a tuple of results when it is
    one array), and None when the entry point returns None (a refusal, such as an index
    out of range, which the caller raises).
    """

    def __init__(self, module, family, stream):
        self._module = module
        self._family = family
        self._stream = stream

    def _device(self):
        return _compat().on_device(self._family.device_id)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        run = getattr(self._module, name)
        family = self._family

        def call(plan, x, out, *rest):
            from ._cuda.backend import Env
            made = {}

            def empty(shape, dtype):
                lib = family.empty(shape, dtype)
                view = family.view(lib)
                made[id(view)] = (view, lib)  # the view is kept alive, so ids stay unique
                return view

            def theirs(v):
                return made[id(v)][1] if id(v) in made else v

            work = _map(out, lambda a: _out_view(family, a))
            with self._device():
                env = Env(stream=self._stream, empty=empty if family.allocates else None)
                result = run(plan, x, work, *rest, env=env)
            if result is None or out is None:  # None: refused (the caller raises)
                return _map(result, theirs)
            if isinstance(result, tuple) and not isinstance(out, tuple):
                # the first result was computed into ``out``; the others are new
                return (out, *(_map(v, theirs) for v in result[1:]))
            return out

        call.__name__ = name
        return call


def _out_view(family, a):
    """A Numba view of a caller's ``out`` array, which must be of the input's family."""
    if not family.owns(a):
        raise TypeError(f"out must be a CUDA array of the input's family ({family.label}); "
                        f"got {type(a).__module__}.{type(a).__qualname__}")
    return family.view(a)


def _map(value, f):
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(_map(v, f) for v in value)
    return f(value)


def cuda_stream(stream, family):
    """The Numba stream a CUDA call runs on, from the public ``stream=`` argument.

    ``None``: the family's current stream (CuPy's and torch's current stream, Numba's
    default stream 0).  Otherwise a Numba stream, a ``torch.cuda.Stream`` (its
    ``cuda_stream`` handle) or a CuPy stream (its ``ptr``), wrapped without a copy or a wait.
    """
    if stream is None:
        return family.stream()
    if isinstance(stream, int) and not isinstance(stream, bool) and stream == 0:
        return 0
    module = type(stream).__module__.split(".")[0]
    handle = None
    if module == "torch" and hasattr(stream, "cuda_stream"):
        handle = stream.cuda_stream
    elif module == "cupy" and hasattr(stream, "ptr"):
        handle = stream.ptr
    elif module == "numba" or module == "numba_cuda":
        return stream
    if handle is None:
        raise TypeError(f"stream must be None, 0, a Numba stream, a torch.cuda.Stream or a "
                        f"CuPy stream; got {type(stream).__module__}.{type(stream).__qualname__}")
    return _compat().external_stream(int(handle)) if handle else 0


# --------------------------------------------------------------------------- input checks


def _refuse_masked(a, name, main):
    """A ``TypeError`` for a ``numpy.ma.MaskedArray``: no kernel reads a mask, and silently
    pooling the values under it would be wrong, so the caller says what the mask means."""
    if not isinstance(a, np.ma.MaskedArray):
        return
    if main:
        how = (f"to leave the masked elements out, pass {name}.filled(np.nan) (floating-point "
               f"data) with nan_policy='omit'; to ignore the mask, pass np.asarray({name})")
    else:
        how = (f"pass {name}.filled(value) with the value the masked entries should take, "
               f"or np.asarray({name}) to ignore the mask")
    raise TypeError(f"{name} is a numpy.ma.MaskedArray, whose mask numbapool does not read; "
                    f"{how}")


def _torch_cpu_hint(x, name):
    """How to hand a CPU tensor to the CPU kernels: ``.numpy()`` shares its memory, but
    refuses a tensor that requires grad (``.detach()`` first) and has no bfloat16."""
    fix = f"{name}.detach()" if x.requires_grad else name
    if str(x.dtype) == "torch.bfloat16":  # NumPy has no bfloat16: a float32 copy
        return f"{fix}.float().numpy() (NumPy has no bfloat16)"
    return f"{fix}.numpy() (no copy)"


# --------------------------------------------------------------------------- public helpers


def host_array(a, name):
    """An auxiliary array (mask, lengths, weights, ...) as NumPy, wherever it lives.

    Raises ``TypeError`` for a masked array (its mask would be lost) and for what NumPy
    cannot make an array of.

    >>> host_array([1, 2], "lengths")
    array([1, 2])
    """
    if a is None:
        return a
    if isinstance(a, np.ndarray):
        _refuse_masked(a, name, main=False)
        return a
    family = _family(a)
    if family in ("torch", "torch_cpu"):
        a = a.detach()
        if str(a.dtype) == "torch.bfloat16":  # NumPy has no bfloat16: exact in float32
            a = a.float()
        return a.cpu().numpy()
    if family == "cupy":
        return a.get()
    if family == "numba":
        return a.copy_to_host()
    if family == "cuda":
        _require_cuda(f"{name} is a CUDA array")
        return _view(a, name).copy_to_host()
    try:
        return np.asarray(a)
    except (TypeError, ValueError) as exc:  # ragged lists, objects NumPy cannot convert
        raise TypeError(f"{name} must be array-like; got {type(a).__name__} ({exc})") from None


def follow_to_cuda(a, name, stream=None):
    """``a`` (an auxiliary array following a CUDA main input) on the device: a list
    becomes a NumPy array first, a host array is copied over."""
    if not hasattr(a, "shape"):
        a = host_array(a, name)
    return resolve(a, "cuda", name=name, stream=stream)[1]


def resolve(x, device=None, name="x", stream=None):
    """``(backend, x)``: the backend for main input ``x`` and ``device``, and ``x`` for it.

    ``name`` is what error messages call the input (the public function's parameter);
    ``stream`` is the public ``stream=`` argument (see :func:`cuda_stream`).

    >>> import numpy as np
    >>> resolve(np.ones(3), device="cpu")[0].__name__
    'numbapool._cpu.backend'
    >>> resolve([1.0, 2.0])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: x must be a NumPy ndarray or a CUDA array ...
    """
    if not (device is None or (isinstance(device, str) and device in DEVICES)):
        raise ValueError(f"device must be None, 'cpu' or 'cuda'; got {device!r}")
    family = _family(x)
    on_cuda = (family == "numpy" and device == "cuda") or (family in CUDA_FAMILIES
                                                          and device != "cpu")
    if stream is not None and not on_cuda:
        raise ValueError(f"stream is for calls that run on CUDA; this one runs on the CPU "
                         f"({name} is {type(x).__module__}.{type(x).__qualname__}, "
                         f"device={device!r}): leave stream=None")
    if family == "numpy":
        _refuse_masked(x, name, main=True)
        if device == "cuda":
            compat = _require_cuda("device='cuda' was requested")
            s = cuda_stream(stream, _NumbaFamily())
            return _CudaBackend(_backend("cuda"), _NumbaFamily(), s), compat.to_device(x, s)
        return _backend("cpu"), x
    if family in CUDA_FAMILIES:
        if device == "cpu":
            return _backend("cpu"), host_array(x, name)
        _require_cuda(f"{name} is a CUDA array ({type(x).__name__})")
        adapter = FAMILIES[family](x)
        backend = _CudaBackend(_backend("cuda"), adapter, cuda_stream(stream, adapter))
        try:
            with backend._device():
                return backend, adapter.input(x)
        except (TypeError, ValueError) as exc:  # a family's view calls its input "x"
            msg = str(exc)
            if name == "x" or not msg.startswith("x "):
                raise
            raise type(exc)(name + msg[1:]) from None
    if family == "torch_cpu":
        raise TypeError(f"{name} is a CPU torch.Tensor; pass {_torch_cpu_hint(x, name)} for "
                        "the CPU kernels, or a CUDA tensor for the GPU ones")
    raise TypeError(
        f"{name} must be a NumPy ndarray or a CUDA array (Numba device array, CuPy array, torch "
        f"CUDA tensor); got {type(x).__module__}.{type(x).__qualname__} (convert lists and "
        "other array-likes with numpy.asarray)"
    )
