"""Registers, shared memory, spills and occupancy of every CUDA kernel numbapool launches.

No GPU is needed.  The script

1. **collects the launches**: it runs representative calls of every public function (each
   spatial op in 1-D to 3-D, both layouts, indices, ``nan_policy="omit"``, every dtype;
   ``pool_tokens`` in every mode, with holes in the mask, packed, ...; ``block_reduce``
   with every reducer and dtype; and large inputs,
   which hold no memory, where sizes select variants) on host NumPy arrays posing as
   Numba device arrays, with the CUDA layer (``numbapool._cuda.compat``) faked so that
   CUDA counts as available, allocations and transfers return such stand-ins, and each
   launch is recorded (kernel, arguments, block size) instead of run;
2. **derives each kernel variant**: the kernel's Python function (a kernel made by a
   cached factory of the CUDA modules is named by the factory's arguments; any other
   closure is told apart by its closure values) and the Numba signature of the recorded
   arguments (``numba.typeof``, which types a C-contiguous host array as it types a
   C-contiguous device array);
3. **compiles each variant** to PTX for sm_90 with ``numba.cuda.compile_ptx`` (libNVVM)
   and assembles it with ``ptxas -arch=sm_90 -v``, which reports registers, shared memory
   and spills;
4. **writes** ``benchmarks/CUDA_REGISTERS.md``: a table of the variants with the block
   size the backend launches each with and the theoretical occupancy on sm_90.

A kernel that cannot be compiled makes the script fail (exit status 1) and leaves the
table as it was; so does a representative call that fails on the faked backend (a
traceback names the call).  Without libNVVM, libNVRTC or ptxas it exits with status 2 and
says what to install.  It takes a few minutes (about 0.5 s per kernel variant).

Toolchain (libNVVM, libNVRTC and ptxas, no GPU, no driver): the project's ``cuda`` extra
installs all three as NVIDIA's pip wheels (``numba-cuda[cu12]`` pulls
``nvidia-cuda-nvcc-cu12``, which ships ``ptxas`` and libNVVM, and ``nvidia-cuda-nvrtc-cu12``)::

    pip install -e ".[cuda]"
    python benchmarks/cuda_registers.py

ptxas is looked for in this order: ``--ptxas PATH``; ``$CUDA_HOME/bin`` (or
``$CUDA_PATH/bin``); the ``bin/`` folder of the toolkit or pip wheel whose libNVVM Numba
loaded (so the two come from one CUDA release); ``PATH``.  With a CUDA 13 toolkit instead:
``pip install "numba-cuda[cu13]" nvidia-cuda-nvcc``.

Usage::

    python benchmarks/cuda_registers.py                  # writes benchmarks/CUDA_REGISTERS.md
    python benchmarks/cuda_registers.py --collect-only   # the variants, nothing compiled
    python benchmarks/cuda_registers.py --out FILE --ptxas PATH --cc 9.0
    python benchmarks/cuda_registers.py --calls spatial  # only the spatial functions' kernels
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import datetime
import functools
import importlib
import importlib.metadata
import inspect
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path(__file__).resolve().parent / "CUDA_REGISTERS.md"
PIP_HINT = ('pip install -e ".[cuda]"  (numba-cuda[cu12]: the nvidia-cuda-nvcc-cu12 and '
            'nvidia-cuda-nvrtc-cu12 wheels)')

#: What the backend sees of the device while launches are collected: an sm_90 part
#: (H100/H200 SXM: 132 SMs).  Grid sizes depend on it; block sizes do not.
FAKE_PROPERTIES = {"multiprocessors": 132, "max_threads_per_block": 1024,
                   "max_threads_per_multiprocessor": 2048}


# =========================================================================== 1. collect


class StandIn:
    """A host NumPy array posing as a Numba device array.

    It has the ``__cuda_ndarray__`` marker and the part of ``DeviceNDArray``'s surface
    that numbapool's CUDA backend uses; any other attribute raises ``AttributeError``
    naming it, so a backend that starts using more fails loudly here.  A *virtual* stand-in
    (:meth:`virtual`) has a shape and a dtype but no memory: it stands for the large
    C-contiguous inputs (and results) whose size picks a kernel variant.
    """

    __cuda_ndarray__ = True
    stream = 0

    def __init__(self, ary, virtual=False):
        self._ary = ary  # the simulator's FakeCUDAArray keeps its array under this name too
        self._virtual = virtual

    @classmethod
    def virtual(cls, shape, dtype):
        """A C-contiguous stand-in of ``shape`` and ``dtype`` holding no memory."""
        return cls(np.broadcast_to(np.zeros((), np.dtype(dtype)), tuple(shape)), True)

    shape = property(lambda self: self._ary.shape)
    dtype = property(lambda self: self._ary.dtype)
    size = property(lambda self: self._ary.size)
    ndim = property(lambda self: self._ary.ndim)
    nbytes = property(lambda self: self._ary.size * self._ary.itemsize)
    alloc_size = nbytes

    @property
    def strides(self):
        if not self._virtual:
            return self._ary.strides
        strides, step = [], self._ary.itemsize
        for n in reversed(self._ary.shape):
            strides.append(step)
            step *= max(n, 1)
        return tuple(reversed(strides))

    @property
    def __cuda_array_interface__(self):
        face = self._ary.__array_interface__
        return {"shape": self.shape, "strides": None if self._virtual else face["strides"],
                "typestr": face["typestr"], "data": face["data"], "version": 3,
                "stream": None}

    def is_c_contiguous(self):
        return self._virtual or bool(self._ary.flags.c_contiguous)

    def is_f_contiguous(self):
        return (self._virtual and self.ndim <= 1) or bool(self._ary.flags.f_contiguous)

    def copy_to_host(self, ary=None, stream=0):
        if self._virtual:
            raise RuntimeError("a virtual stand-in has no data to copy to the host")
        if ary is None:
            return self._ary.copy()
        ary[...] = self._ary
        return ary

    def copy_to_device(self, ary, stream=0):
        if not self._virtual:
            self._ary[...] = ary._ary if isinstance(ary, StandIn) else ary

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if self._virtual:
            shape = list(shape)
            if -1 in shape:
                known = math.prod(n for n in shape if n != -1)
                shape[shape.index(-1)] = self.size // known if known else 0
            if math.prod(shape) != self.size:
                raise ValueError(f"cannot reshape {self.shape} into {tuple(shape)}")
            return StandIn.virtual(shape, self.dtype)
        if not self._ary.flags.c_contiguous and self._ary.size > 1:
            raise NotImplementedError("a device array reshape needs a contiguous array")
        return StandIn(self._ary.reshape(shape, order=order))

    def ravel(self, order="C", stream=0):
        return self.reshape(-1)

    def view(self, dtype):
        if self._virtual:
            dtype = np.dtype(dtype)
            last = self.shape[-1] * self.dtype.itemsize // dtype.itemsize
            return StandIn.virtual(self.shape[:-1] + (last,), dtype)
        return StandIn(self._ary.view(dtype))

    def __getitem__(self, key):
        got = self._ary[key]
        if not isinstance(got, np.ndarray):
            return got
        return StandIn.virtual(got.shape, got.dtype) if self._virtual else StandIn(got)

    def __setitem__(self, key, value):
        if not self._virtual:
            self._ary[key] = value._ary if isinstance(value, StandIn) else value

    def __len__(self):
        return len(self._ary)

    def __getattr__(self, name):
        raise AttributeError(
            f"StandIn (a host stand-in for a Numba device array) has no {name!r}: the CUDA "
            f"backend uses more of the device-array API than benchmarks/cuda_registers.py "
            f"fakes; add {name!r} to StandIn")


def stand_in(a):
    """A :class:`StandIn` holding a writeable copy of ``a``."""
    return StandIn(np.array(a, copy=True))


#: Device allocations of this many elements or more are virtual stand-ins.
VIRTUAL_FROM = 1 << 22


@dataclasses.dataclass
class Recorded:
    """One launch: ``kernel[blocks, threads, stream, shared](*args)``, made by call ``label``."""

    kernel: object
    args: tuple
    blocks: int
    threads: int
    dynamic_shared: int
    label: str
    group: str
    factory: tuple = ()  # (factory name, ((parameter, value text), ...)) of a made kernel


def _prod(dim):
    if isinstance(dim, (tuple, list)):
        return math.prod(int(d) for d in dim)
    return int(dim)


class NotAKernel(TypeError):
    """The backend launched something that has no ``[grid, block]`` launch syntax."""


class _Probe:
    """Stands for a kernel in ``compat.launch``/``launch_blocks``: records the launch
    configuration they choose and the arguments, runs nothing."""

    def __init__(self, kernel, sink):
        self._kernel = kernel
        self._sink = sink

    def __getattr__(self, name):  # what the launch helpers may ask of the kernel
        return getattr(self._kernel, name)

    def __getitem__(self, config):
        if not hasattr(type(self._kernel), "__getitem__"):  # as the real launch would fail
            raise NotAKernel(f"the backend launches {self._kernel!r}, which is not a CUDA "
                             "kernel (it has no [grid, block] launch syntax)")
        config = tuple(config) if isinstance(config, (tuple, list)) else (config,)
        blocks, threads = config[0], config[1]
        shared = int(config[3]) if len(config) > 3 else 0

        def run(*args):
            self._sink(self._kernel, args, _prod(blocks), _prod(threads), shared)

        return run


class _FakeDevice:
    """The current device while launches are collected: an sm_90 part."""

    id = 0
    name = b"faked sm_90"
    compute_capability = (9, 0)
    MULTIPROCESSOR_COUNT = FAKE_PROPERTIES["multiprocessors"]
    MAX_THREADS_PER_BLOCK = FAKE_PROPERTIES["max_threads_per_block"]
    MAX_THREADS_PER_MULTIPROCESSOR = FAKE_PROPERTIES["max_threads_per_multiprocessor"]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _FakeCuda:
    """What ``compat._require()`` returns while launches are collected: ``numba.cuda`` with
    its driver calls answered on the host (allocations and transfers give stand-ins, waits
    return at once); everything else (``jit``, types) is the real ``numba.cuda``'s."""

    def __init__(self, real):
        self._real = real
        self.gpus = [_FakeDevice()]

    def synchronize(self):
        pass

    def get_current_device(self):
        return self.gpus[0]

    def is_available(self):
        return True

    def device_array(self, shape, dtype=np.float64, strides=None, order="C", stream=0):
        shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
        if math.prod(shape) >= VIRTUAL_FROM and order == "C":
            return StandIn.virtual(shape, dtype)
        return StandIn(np.zeros(shape, np.dtype(dtype), order=order))

    def to_device(self, obj, stream=0, copy=True, to=None):
        if to is not None:
            to.copy_to_device(obj)
            return to
        return stand_in(obj)

    def as_cuda_array(self, obj, sync=True):
        if isinstance(obj, StandIn):
            return obj
        raise TypeError(f"no stand-in for {type(obj).__name__} (only StandIn arrays are "
                        "device arrays while launches are collected)")

    def external_stream(self, handle):
        return 0

    def __getattr__(self, name):
        return getattr(self._real, name)


@contextlib.contextmanager
def faked_cuda():
    """CUDA faked for the duration: yields ``(records, state)``, the list that launches are
    recorded into and a dict whose ``label``/``group`` tag them.

    ``numbapool._cuda.compat`` is left as it is but for ``available`` (True), ``_require``
    (a :class:`_FakeCuda`), ``restrided`` (a host view) and the launch helpers, which still
    run (so the grid and block sizes are the ones they choose, for an sm_90 device) but
    launch a probe that records the kernel and its arguments.  State that the CUDA modules
    cache per device (their dicts and ``lru_cache`` functions) is put back afterwards.
    """
    from numbapool._cuda import compat

    importlib.import_module("numbapool._cuda.backend")  # and the kernel modules it imports
    records = []
    state = {"label": "?", "group": "?"}
    made = {}  # id(kernel) -> (kernel, factory call): kernels stay alive, so ids stay unique

    def sink(kernel, args, blocks, threads, shared):
        factory = made.get(id(kernel), (None, ()))[1]
        records.append(Recorded(kernel, args, blocks, threads, shared, state["label"],
                                state["group"], factory))

    def restrided(a, shape, strides):
        view = np.lib.stride_tricks.as_strided(a._ary, tuple(shape), tuple(strides))
        return StandIn(view)

    fake = _FakeCuda(compat.cuda)
    launch, launch_blocks = compat.launch, compat.launch_blocks
    fakes = {
        "available": lambda: True,
        "_require": lambda: fake,
        "restrided": restrided,
        "launch": lambda kernel, *a, **k: launch(_Probe(kernel, sink), *a, **k),
        "launch_blocks": lambda kernel, *a, **k: launch_blocks(_Probe(kernel, sink), *a, **k),
    }
    factories = {}  # (module, name) -> the kernel factory it holds
    for module in _cuda_modules():
        if module is compat:
            continue
        for name, value in list(vars(module).items()):
            if isinstance(value, functools._lru_cache_wrapper):
                factories[(module, name)] = value
    missing = [name for name in fakes if not hasattr(compat, name)]
    if missing:
        raise RuntimeError(f"numbapool._cuda.compat has no {missing}: update faked_cuda() in "
                           "benchmarks/cuda_registers.py")
    if compat.simulator():
        raise RuntimeError("NUMBA_ENABLE_CUDASIM is set: collect launches without the "
                           "simulator (its kernels are not Numba CUDA dispatchers)")
    saved_caches = _snapshot_caches()
    originals = {name: getattr(compat, name) for name in fakes}
    try:
        for name, value in fakes.items():
            setattr(compat, name, value)
        for (module, name), factory in factories.items():
            setattr(module, name, _noting(factory, name, made))
        _clear_lru_caches()  # e.g. available() and properties() answered for the real device
        yield records, state
    finally:
        for name, value in originals.items():
            setattr(compat, name, value)
        for (module, name), factory in factories.items():
            setattr(module, name, factory)
        _restore_caches(saved_caches)


def _noting(factory, name, made):
    """``factory`` (a cached function of a CUDA module), noting in ``made`` the arguments
    of each call that returns a kernel, so the table can name kernel factories' variants."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None

    @functools.wraps(factory)
    def noted(*args, **kwargs):
        result = factory(*args, **kwargs)
        if id(result) not in made and hasattr(result, "py_func"):
            try:
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                params = tuple((k, _describe(v)) for k, v in bound.arguments.items())
            except (AttributeError, TypeError):
                params = tuple((str(i), _describe(v)) for i, v in enumerate(args))
            made[id(result)] = (result, (name, params))
        return result

    return noted


def _cuda_modules():
    return [m for name, m in list(sys.modules.items())
            if m is not None and (name == "numbapool.dispatch"
                                  or name.startswith("numbapool._cuda"))]


def _snapshot_caches():
    """The dicts held by numbapool's CUDA modules (device-keyed caches), copied."""
    saved = []
    for module in _cuda_modules():
        for name, value in vars(module).items():
            if isinstance(value, dict) and not name.startswith("__"):
                saved.append((value, value.copy()))
    return saved


def _clear_lru_caches():
    for module in _cuda_modules():
        for value in list(vars(module).values()):
            if isinstance(value, functools._lru_cache_wrapper):
                value.cache_clear()


def _restore_caches(saved):
    for value, copy in saved:
        value.clear()
        value.update(copy)
    _clear_lru_caches()  # memoised answers may hold stand-ins or the fake device's properties


# --------------------------------------------------------------------------- the calls

INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
FLOATS = ("float16", "float32", "float64")
LAYOUTS = ("channels_first", "channels_last")
SPATIAL = {1: (9,), 2: (6, 7), 3: (4, 5, 6)}  # spatial extents of each rank


def _values(shape, dtype, rng):
    a = rng.standard_normal(shape) * 20
    return a.astype(dtype)


def spatial_calls(dtypes=INTS + FLOATS, ranks=(1, 2, 3), layouts=LAYOUTS):
    """``[(label, thunk)]``: every spatial public function in every rank, layout, dtype."""
    import numbapool as nbp

    rng = np.random.default_rng(0)
    calls = []
    for dtype in dtypes:
        is_float = dtype in FLOATS
        for n in ranks:
            for layout in layouts:
                spatial = SPATIAL[n]
                shape = (2, 3, *spatial) if layout == "channels_first" else (2, *spatial, 3)
                host = _values(shape, dtype, rng)
                kw = {"layout": layout}

                def add(what, func, *args, _host=host, **kwargs):
                    def thunk():
                        return func(stand_in(_host), *args, **kwargs)
                    calls.append((f"{what} {dtype} {n}-D {layout}", thunk))

                add("max_pool", getattr(nbp, f"max_pool{n}d"), 2, **kw)
                add("max_pool k3 s2 p1 indices", getattr(nbp, f"max_pool{n}d"), 3, 2, 1,
                    return_indices=True, **kw)
                add("min_pool ceil", getattr(nbp, f"min_pool{n}d"), 2, 2, 0, 1, True, **kw)
                add("avg_pool k3 s2 p1", getattr(nbp, f"avg_pool{n}d"), 3, 2, 1, **kw)
                add("avg_pool divisor_override", getattr(nbp, f"avg_pool{n}d"), 2,
                    divisor_override=3.0, **kw)
                add("adaptive_max_pool", getattr(nbp, f"adaptive_max_pool{n}d"), 3, **kw)
                add("adaptive_avg_pool", getattr(nbp, f"adaptive_avg_pool{n}d"), 3, **kw)
                add("global_max_pool", getattr(nbp, f"global_max_pool{n}d"), **kw)
                add("global_avg_pool", getattr(nbp, f"global_avg_pool{n}d"), **kw)
                if is_float:
                    add("max_pool omit indices", getattr(nbp, f"max_pool{n}d"), 2,
                        return_indices=True, nan_policy="omit", **kw)
                    add("avg_pool omit", getattr(nbp, f"avg_pool{n}d"), 2,
                        nan_policy="omit", **kw)
                    add("global_max_pool omit", getattr(nbp, f"global_max_pool{n}d"),
                        nan_policy="omit", **kw)
                    add("lp_pool p=2", getattr(nbp, f"lp_pool{n}d"), 2.0, 2, **kw)
                    add("lp_pool p=3", getattr(nbp, f"lp_pool{n}d"), 3.0, 2, **kw)
                    add("gem_pool", getattr(nbp, f"gem_pool{n}d"), **kw)
        # strided input and a strided out=: the backend's device copies
        host = _values((2, 3, 12, 14), dtype, rng)

        def strided_in(_host=host):
            return nbp.max_pool2d(StandIn(np.array(_host)[..., ::2]), 2)

        def strided_out(_host=host):
            out = StandIn(np.zeros((2, 3, 6, 14), _host.dtype)[..., ::2])
            return nbp.max_pool2d(stand_in(_host), 2, out=out)

        calls.append((f"max_pool strided input {dtype} 2-D channels_first", strided_in))
        calls.append((f"max_pool strided out= {dtype} 2-D channels_first", strided_out))
    return calls


#: Calls on large (virtual) inputs, whose sizes pick kernel variants of their own: channels
#: per thread of channels-last data, 64-bit index arithmetic from 2**31 elements, and the
#: shapes of benchmarks/bench_gpu.py.  (label, function, args, kwargs, shape, layout)
LARGE = [
    ("max_pool k2, C=4", "max_pool2d", (2,), {}, (32, 256, 256, 4), "channels_last"),
    ("max_pool k3 s2 p1 indices, C=4", "max_pool2d", (3, 2, 1), {"return_indices": True},
     (32, 256, 256, 4), "channels_last"),
    ("avg_pool k3 s2 p1, C=4", "avg_pool2d", (3, 2, 1), {}, (32, 256, 256, 4),
     "channels_last"),
    ("max_pool k2, C=6", "max_pool2d", (2,), {}, (32, 256, 256, 6), "channels_last"),
    ("avg_pool k2, C=6", "avg_pool2d", (2,), {}, (32, 256, 256, 6), "channels_last"),
    ("max_pool k2, 2**31 elements", "max_pool2d", (2,), {}, (64, 64, 512, 1024),
     "channels_first"),
    ("max_pool k3 s2 p1 indices, 2**31 elements", "max_pool2d", (3, 2, 1),
     {"return_indices": True}, (64, 64, 512, 1024), "channels_first"),
    ("avg_pool k2, 2**31 elements", "avg_pool2d", (2,), {}, (64, 64, 512, 1024),
     "channels_first"),
    ("max_pool k2, 2**31 elements", "max_pool2d", (2,), {}, (64, 512, 1024, 64),
     "channels_last"),
    ("max_pool k2", "max_pool2d", (2,), {}, (32, 64, 112, 112), "channels_first"),
    ("max_pool k2", "max_pool2d", (2,), {}, (32, 112, 112, 64), "channels_last"),
    ("max_pool k3 s2 p1", "max_pool2d", (3, 2, 1), {}, (32, 64, 112, 112), "channels_first"),
    ("max_pool k3 s2 p1", "max_pool2d", (3, 2, 1), {}, (32, 112, 112, 64), "channels_last"),
    ("avg_pool k2", "avg_pool2d", (2,), {}, (32, 64, 112, 112), "channels_first"),
    ("avg_pool k2", "avg_pool2d", (2,), {}, (32, 112, 112, 64), "channels_last"),
    ("lp_pool p=2 k2", "lp_pool2d", (2.0, 2), {}, (32, 64, 112, 112), "channels_first"),
    ("adaptive_max_pool 7", "adaptive_max_pool2d", (7,), {}, (32, 64, 112, 112),
     "channels_first"),
    ("adaptive_avg_pool 1", "adaptive_avg_pool2d", (1,), {}, (64, 2048, 7, 7),
     "channels_first"),
    ("adaptive_avg_pool 1", "adaptive_avg_pool2d", (1,), {}, (64, 7, 7, 2048),
     "channels_last"),
    ("gem_pool p=3", "gem_pool2d", (3.0,), {}, (64, 2048, 7, 7), "channels_first"),
    ("global_max_pool", "global_max_pool2d", (), {}, (1, 3, 2048, 2048), "channels_first"),
    ("global_avg_pool", "global_avg_pool2d", (), {}, (1, 3, 2048, 2048), "channels_first"),
    ("max_pool3d k2", "max_pool3d", (2,), {}, (4, 32, 64, 64, 64), "channels_first"),
    ("max_pool1d k3 s2", "max_pool1d", (3, 2), {}, (64, 256, 4096), "channels_first"),
]


def large_calls(dtypes=("float16", "float32")):
    """``[(label, thunk)]``: :data:`LARGE` on virtual inputs of each dtype."""
    import numbapool as nbp

    calls = []
    for dtype in dtypes:
        for what, function, args, kwargs, shape, layout in LARGE:
            def thunk(_f=getattr(nbp, function), _a=args, _k=kwargs, _s=shape, _d=dtype,
                      _l=layout):
                return _f(StandIn.virtual(_s, _d), *_a, layout=_l, **_k)
            calls.append((f"{what} {dtype} {shape} {layout}", thunk))
    return calls


def token_calls(dtypes=FLOATS):
    """``[(label, thunk)]``: ``pool_tokens`` in every mode and mask form, each dtype.

    ``hidden`` is virtual and of the GPU benchmark's size, (64, 512, 768), where the block
    shape and the features per thread are those of real workloads; masks, lengths, weights
    and scores are real (the backend reads them on the host).  A few calls on small inputs
    (a sequence of 7 tokens, 40 or 5 features) add the narrow block shapes.
    """
    import numbapool as nbp

    rng = np.random.default_rng(1)
    calls = []
    B, L, D = 64, 512, 768
    lengths = rng.integers(1, L + 1, size=B)
    right = np.arange(L)[None, :] < lengths[:, None]
    left = right[:, ::-1].copy()
    holes = rng.random((B, L)) < 0.6
    holes[:, 0] = True
    weights = rng.random((B, L))
    scores = rng.standard_normal((B, L))
    for dtype in dtypes:
        def add(what, *args, _d=dtype, _shape=(B, L, D), **kwargs):
            def thunk():
                return nbp.pool_tokens(StandIn.virtual(_shape, _d), *args, **kwargs)
            calls.append((f"pool_tokens {what} {dtype} {_shape}", thunk))

        for mode in nbp.TOKEN_MODES:
            extra = {"weights": weights} if mode == "weighted" else (
                {"scores": scores} if mode == "attention" else {})
            add(mode, right, mode, **extra)
        add("cls+mean+max, left padding", left, ["cls", "mean", "max"])
        add("mean+min, mask with holes", holes, ["mean", "min"])
        add("mean, mask on the device", StandIn(right.copy()), "mean")
        add("max, mask on the device", StandIn(right.copy()), "max")
        add("mean, no mask", None, "mean")
        add("mean+max+weighted, omit", right, ["mean", "max", "weighted"], weights=weights,
            nan_policy="omit")
        add("packed mean+max+attention", _shape=(int(lengths.sum()), D), lengths=lengths,
            mode=["mean", "max", "attention"], scores=scores[right])
    small = np.array([[True] * 7, [True] * 4 + [False] * 3, [True] + [False] * 6])
    for d in (40, 5):
        for what, modes in (("mean", "mean"), ("cls+mean+max", ["cls", "mean", "max"])):
            def thunk(_d=d, _m=modes):
                return nbp.pool_tokens(stand_in(_values((3, 7, _d), "float32", rng)), small,
                                       _m)
            calls.append((f"pool_tokens {what} float32 (3, 7, {d})", thunk))
    return calls


def block_calls(dtypes=INTS + FLOATS):
    """``[(label, thunk)]``: ``block_reduce`` with every reducer on each dtype (both NaN
    policies for floats; the 7 columns give a padded edge), means of float16/float32
    blocks of more than 64 elements (float64 sums), and each reducer on a large (virtual)
    input of the GPU benchmark's size."""
    import numbapool as nbp
    from numbapool.blocks import BLOCK_FUNCS

    rng = np.random.default_rng(2)
    calls = []
    for dtype in dtypes:
        host = _values((2, 6, 7, 3), dtype, rng)
        policies = ("propagate", "omit") if dtype in FLOATS else ("propagate",)
        for func in BLOCK_FUNCS:
            for policy in policies:
                def thunk(_h=host, _f=func, _p=policy):
                    return nbp.block_reduce(stand_in(_h), (1, 2, 2, 1), _f, nan_policy=_p)
                calls.append((f"block_reduce {func} {policy} {dtype} (2, 6, 7, 3)", thunk))
        if dtype in ("float16", "float32"):  # a block of more than 64: float64 sums
            def wide(_h=host):
                return nbp.block_reduce(stand_in(_h), (2, 6, 7, 1), "mean")
            calls.append((f"block_reduce mean {dtype} 2x6x7 blocks", wide))
    for func in BLOCK_FUNCS:
        def large(_f=func):
            return nbp.block_reduce(StandIn.virtual((32, 64, 112, 112), "float32"),
                                    (1, 1, 2, 2), _f)
        calls.append((f"block_reduce {func} float32 (32, 64, 112, 112)", large))
    return calls


GROUPS = ("spatial", "tokens")


def representative_calls(groups=GROUPS):
    """``[(group, label, thunk)]`` of every public call the table covers (of ``groups``)."""
    calls = []
    if "spatial" in groups:
        calls += [("spatial", label, f)
                  for label, f in spatial_calls() + large_calls() + block_calls()]
    if "tokens" in groups:
        calls += [("tokens", label, f) for label, f in token_calls()]
    return calls


def collect(calls=None):
    """Run ``calls`` (default :func:`representative_calls`) on the faked backend; returns
    the recorded launches.  A call that fails raises, naming the call."""
    if calls is None:
        calls = representative_calls()
    with faked_cuda() as (records, state):
        for group, label, thunk in calls:
            state["label"], state["group"] = label, group
            try:
                thunk()
            except Exception as exc:
                hint = ("" if isinstance(exc, NotAKernel) else
                        "; if the backend now uses a CUDA API that faked_cuda() does not "
                        "answer, extend it")
                raise RuntimeError(
                    f"representative call {label!r} failed under the faked CUDA backend "
                    f"({type(exc).__name__}: {exc}){hint}") from exc
    return records


# =========================================================================== 2. variants


def py_function(kernel):
    """The Python function of a launched kernel (a Numba CUDA dispatcher's ``py_func``)."""
    for attr in ("py_func", "fn"):  # real dispatchers; the simulator's FakeCUDAKernel
        func = getattr(kernel, attr, None)
        if inspect.isfunction(func):
            return func
    dispatcher = getattr(kernel, "dispatcher", None)  # a configured launch
    if dispatcher is not None and dispatcher is not kernel:
        return py_function(dispatcher)
    raise TypeError(f"launched kernel {kernel!r} has no Python function (py_func) to compile")


def _describe(value):
    """A short, stable text for a closure value (what a kernel factory specialised on)."""
    if isinstance(value, (bool, int, float, str, type(None), np.generic)):
        return repr(value.item() if isinstance(value, np.generic) else value)
    if isinstance(value, tuple) and len(value) <= 12:
        inner = ", ".join(_describe(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, np.dtype):
        return str(value)
    if inspect.ismodule(value):
        return value.__name__
    if type(value).__module__.startswith(("numba.", "numba_cuda.")):  # numba types
        return str(value)
    if isinstance(value, type):
        return value.__name__
    func = getattr(value, "py_func", value)
    name = getattr(func, "__qualname__", None)
    if name is not None:
        return f"{getattr(func, '__module__', '?')}.{name}"
    return f"<{type(value).__name__}>"


def closure_values(func):
    """``((name, description), ...)`` of ``func``'s closure (empty for a plain function)."""
    cells = func.__closure__ or ()
    return tuple((name, _describe(cell.cell_contents))
                 for name, cell in zip(func.__code__.co_freevars, cells))


def arg_type(value):
    """The Numba type a CUDA launch gives ``value``.

    A stand-in is typed as its device array would be (``DeviceNDArray._numba_type_``: C or
    F layout when contiguous and not broadcast, else A); anything else by ``numba.typeof``.
    """
    import numba
    from numba.core.typing.typeof import Purpose

    if isinstance(value, StandIn):
        a = value._ary
        if value._virtual:
            return numba.types.Array(numba.from_dtype(a.dtype), a.ndim, "C")
        broadcast = 0 in a.strides and a.size != 0
        layout = ("C" if a.flags.c_contiguous and not broadcast
                  else "F" if a.flags.f_contiguous and not broadcast else "A")
        return numba.types.Array(numba.from_dtype(a.dtype), a.ndim, layout)
    return numba.typeof(value, Purpose.argument)


@dataclasses.dataclass
class Variant:
    """One compiled kernel: a Python function, its closure values and a signature; with the
    block sizes it is launched with and the calls that launched it."""

    name: str
    func: object
    closure: tuple
    signature: tuple
    options: dict
    factory: tuple = ()  # (factory name, ((parameter, value text), ...)), when known
    threads: dict = dataclasses.field(default_factory=dict)  # threads -> first call label
    dynamic_shared: int = 0
    calls: int = 0
    groups: set = dataclasses.field(default_factory=set)

    @property
    def params(self):
        code = self.func.__code__
        return code.co_varnames[:code.co_argcount]


def variants(records):
    """The distinct kernel variants of ``records``, in order of first launch."""
    found = {}
    for rec in records:
        func = py_function(rec.kernel)
        closure = closure_values(func)
        try:
            signature = tuple(arg_type(a) for a in rec.args)
        except Exception as exc:
            raise TypeError(f"cannot type the arguments of {func.__qualname__} launched by "
                            f"{rec.label!r}: {exc}") from exc
        key = (func.__code__, closure, rec.factory, signature)
        v = found.get(key)
        if v is None:
            module = func.__module__.rsplit(".", 1)[-1]
            if rec.factory:  # a kernel made by a factory: named after it
                name = f"{module}.{rec.factory[0]}(...)"
            else:
                name = f"{module}.{func.__qualname__}"
            options = dict(getattr(rec.kernel, "targetoptions", {}) or {})
            v = found[key] = Variant(name, func, closure, signature, options, rec.factory)
        v.threads.setdefault(rec.threads, rec.label)
        v.dynamic_shared = max(v.dynamic_shared, rec.dynamic_shared)
        v.calls += 1
        v.groups.add(rec.group)
    return list(found.values())


def _short_type(t):
    import numba

    if isinstance(t, numba.types.Array):
        layout = "" if t.layout == "C" else f", {t.layout}"
        return f"{t.dtype}[{t.ndim}d{layout}]"
    if isinstance(t, numba.types.UniTuple):
        return f"({_short_type(t.dtype)} x{t.count})"
    if isinstance(t, numba.types.BaseTuple):
        return "(" + ", ".join(_short_type(e) for e in t.types) + ")"
    return {"boolean": "bool"}.get(str(t), str(t))


def factory_call(v):
    """``name(parameter=value, ...)`` of the factory call that made ``v``'s kernel ("" for a
    kernel that no noted factory made)."""
    if not v.factory:
        return ""
    name, params = v.factory
    return f"{name}(" + ", ".join(f"{k}={value}" for k, value in params) + ")"


def specialisations(found):
    """``{id(variant): text}``: what sets each variant apart from the other variants of its
    kernel: the factory arguments (for a kernel made by a factory; else the closure values)
    and the argument types that differ among them; all the factory arguments for a kernel
    with one variant."""
    by_kernel = collections.defaultdict(list)
    for v in found:
        by_kernel[(v.name, v.func.__code__)].append(v)
    text = {}
    for group in by_kernel.values():

        def differing(rows):
            n = len(rows[0])
            if any(len(r) != n for r in rows):
                return list(range(max(len(r) for r in rows)))
            return [i for i in range(n) if len({r[i] for r in rows}) > 1]

        made = [v.factory[1] if v.factory else v.closure for v in group]
        made_idx = differing(made) if len(group) > 1 else list(range(len(made[0])))
        sig_idx = differing([v.signature for v in group]) if len(group) > 1 else []
        if len(group) == 1 and not made_idx and group[0].signature:
            sig_idx = [0]  # a plain kernel with one variant: name the first argument's type
        for v, pairs in zip(group, made):
            parts = [f"{pairs[i][0]}={pairs[i][1]}" for i in made_idx if i < len(pairs)]
            parts += [f"{v.params[i] if i < len(v.params) else i}: "
                      f"{_short_type(v.signature[i])}" for i in sig_idx if i < len(v.signature)]
            text[id(v)] = ", ".join(parts) or "-"
    return text


# =========================================================================== 3. compile


class ToolchainMissing(RuntimeError):
    """libNVVM (or Numba's CUDA compiler) is not usable here."""


@contextlib.contextmanager
def _compiling_for(cc):
    """Numba set up to compile for ``cc`` without a GPU: the "current device" that device
    functions ask for has that compute capability."""
    from numba import cuda

    if cuda.is_available():
        yield cuda
        return
    import numba.cuda.dispatcher as dispatcher

    class _Device:
        compute_capability = cc
        id = 0

    saved = dispatcher.get_current_device
    dispatcher.get_current_device = _Device
    try:
        yield cuda
    finally:
        dispatcher.get_current_device = saved


def _simulating():
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def ptx_compiler(cc=(9, 0)):
    """``compile(func, signature, options) -> ptx`` for ``cc``; raises
    :class:`ToolchainMissing` (saying what to install) when libNVVM cannot be used."""
    if _simulating():
        raise ToolchainMissing("NUMBA_ENABLE_CUDASIM is set: Numba's CUDA simulator compiles "
                               "nothing; unset it")
    try:
        with _compiling_for(cc) as cuda:
            cuda.compile_ptx(lambda a: None, (cuda.types.float32[::1],), cc=cc)
    except Exception as exc:  # no numba-cuda, libNVVM or libNVRTC (DynamicLibNotFoundError)
        raise ToolchainMissing(f"Numba cannot compile PTX here ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}); install "
                               f"libNVVM and libNVRTC with {PIP_HINT}") from exc
    accepted = set(inspect.signature(cuda.compile_ptx).parameters)

    def compile_(func, signature, options):
        link = options.get("link") or ()
        if link:
            raise RuntimeError(f"{func.__qualname__} links external code ({link}); "
                               "compile_ptx cannot build it")
        kwargs = {k: v for k, v in options.items()
                  if k in accepted and k in ("debug", "lineinfo", "fastmath", "opt",
                                             "launch_bounds", "forceinline")
                  and v is not None}
        with _compiling_for(cc) as cuda_:
            ptx, restype = cuda_.compile_ptx(func, signature, cc=cc, **kwargs)
        if str(restype) != "none":
            raise RuntimeError(f"{func.__qualname__} returns {restype}; a kernel returns None")
        return ptx

    return compile_


def nvvm_library():
    """Where the libNVVM Numba loads lives (None when it cannot be told)."""
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib
        return Path(load_nvidia_dynamic_lib("nvvm").abs_path)
    except Exception:
        return None


def find_ptxas(explicit=None):
    """``(path, how found)`` of ptxas, or ``(None, advice)``; see the module docstring."""
    if explicit:
        path = shutil.which(explicit) or (explicit if os.access(explicit, os.X_OK) else None)
        return (path, "--ptxas") if path else (None, f"--ptxas {explicit} is not an executable")
    for var in ("CUDA_HOME", "CUDA_PATH"):
        home = os.environ.get(var)
        if home and os.access(os.path.join(home, "bin", "ptxas"), os.X_OK):
            return os.path.join(home, "bin", "ptxas"), f"${var}/bin"
    lib = nvvm_library()
    if lib is not None:
        for up in list(lib.parents)[:4]:  # .../lib/libnvvm.so or .../nvvm/lib64/libnvvm.so
            candidate = up / "bin" / "ptxas"
            if os.access(candidate, os.X_OK):
                return str(candidate), "beside the libNVVM Numba loaded"
    path = shutil.which("ptxas")
    if path:
        return path, "PATH"
    return None, f"no ptxas found (--ptxas, $CUDA_HOME/bin, the nvcc pip wheel, PATH); {PIP_HINT}"


def tool_release(text):
    """``"13.0, V13.0.88"`` from a ``Cuda compilation tools, release ...`` line."""
    m = re.search(r"release ([\d.]+), V([\d.]+)", text)
    return f"{m.group(1)} (V{m.group(2)})" if m else "unknown"


@dataclasses.dataclass
class Resources:
    registers: int
    shared: int  # static shared memory, bytes
    stack: int
    spill_stores: int
    spill_loads: int


def parse_ptxas(text):
    """The :class:`Resources` of the (single) entry function in ``ptxas -v`` output."""
    entries = re.split(r"Compiling entry function", text)[1:]
    if len(entries) != 1:
        raise RuntimeError(f"expected one entry function in ptxas' report, found "
                           f"{len(entries)}:\n{text}")
    block = entries[0]

    def number(pattern, default=None):
        m = re.search(pattern, block)
        if m is None:
            if default is None:
                raise RuntimeError(f"ptxas' report has no match for {pattern!r}:\n{text}")
            return default
        return int(m.group(1))

    return Resources(registers=number(r"Used (\d+) registers"),
                     shared=number(r"(\d+) bytes smem", 0),
                     stack=number(r"(\d+) bytes stack frame", 0),
                     spill_stores=number(r"(\d+) bytes spill stores", 0),
                     spill_loads=number(r"(\d+) bytes spill loads", 0))


def assemble(ptxas, ptx, cc=(9, 0), max_registers=None):
    """``ptxas -arch=sm_XY -v`` on ``ptx``: the entry's :class:`Resources`."""
    arch = f"sm_{cc[0]}{cc[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "kernel.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        cmd = [ptxas, f"-arch={arch}", "-v", "-o", os.path.join(tmp, "kernel.cubin"), src]
        if max_registers:
            cmd[1:1] = ["-maxrregcount", str(int(max_registers))]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    report = proc.stdout + proc.stderr
    if proc.returncode != 0:
        version = re.search(r"^\.version\s+(\S+)", ptx, re.M)
        raise RuntimeError(f"ptxas failed ({proc.returncode}) on PTX version "
                           f"{version.group(1) if version else '?'}; use the ptxas of the "
                           f"CUDA release whose libNVVM made it (--ptxas):\n{report}")
    return parse_ptxas(report)


# =========================================================================== 4. occupancy

#: sm_90 (H100/H200) per-SM limits.
SM90 = {
    "regs_per_sm": 65536, "regs_per_block": 65536, "max_regs_per_thread": 255,
    "reg_unit": 256,  # registers are allocated to a warp in units of 256
    "sub_partitions": 4,  # an SM's register file is split over 4 schedulers
    "max_threads_per_sm": 2048, "max_blocks_per_sm": 32, "warp": 32,
    "smem_per_sm": 228 * 1024, "smem_reserved_per_block": 1024, "smem_unit": 128,
}


def occupancy(registers, threads, shared=0, limits=SM90):
    """``(blocks per SM, limiting resource, occupancy)`` of a kernel on one SM.

    The rules of CUDA's occupancy calculator (``cuda_occupancy.h``)::

        warps/block  = ceil(threads / 32)
        regs/warp    = ceil(registers * 32 / 256) * 256
        by regs      = floor(floor(65536 / 4 / regs/warp) * 4 / warps/block)
        by threads   = floor(2048 / (32 * warps/block))
        by blocks    = 32
        by smem      = floor(228 KiB / ceil((shared + 1 KiB) / 128) * 128)   (if shared)
        blocks/SM    = min of the above
        occupancy    = blocks/SM * warps/block / 64        (64 = 2048 / 32 warps per SM)
    """
    L = limits
    warps = -(-threads // L["warp"])
    limits_found = {"threads": L["max_threads_per_sm"] // (warps * L["warp"]),
                    "blocks": L["max_blocks_per_sm"]}
    if registers:
        per_warp = -(-registers * L["warp"] // L["reg_unit"]) * L["reg_unit"]
        parts = L["sub_partitions"]
        per_block = per_warp * (-(-warps // parts) * parts)
        if registers > L["max_regs_per_thread"] or per_block > L["regs_per_block"]:
            limits_found["registers"] = 0
        else:
            warps_per_sm = (L["regs_per_sm"] // parts // per_warp) * parts
            limits_found["registers"] = warps_per_sm // warps
    if shared:
        per_block = -(-(shared + L["smem_reserved_per_block"]) // L["smem_unit"]) * L["smem_unit"]
        limits_found["shared memory"] = L["smem_per_sm"] // per_block
    blocks = min(limits_found.values())
    limiter = "/".join(k for k, v in limits_found.items() if v == blocks)
    max_warps = L["max_threads_per_sm"] // L["warp"]
    return blocks, limiter, blocks * warps / max_warps


# =========================================================================== 5. the table


def _versions():
    out = {}
    for dist in ("numba", "numba-cuda"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def render(rows, meta):
    """The Markdown of CUDA_REGISTERS.md."""
    cc = meta["cc"]
    lines = [
        f"# CUDA kernels: registers and occupancy on sm_{cc[0]}{cc[1]}",
        "",
        "Generated by `python benchmarks/cuda_registers.py` (see its docstring); do not edit "
        "by hand. No GPU was used: every kernel variant that the public functions launch "
        "(collected by running representative calls on a faked CUDA backend) was compiled "
        f"to PTX by Numba's libNVVM for compute capability {cc[0]}.{cc[1]} and assembled by "
        f"`ptxas -arch=sm_{cc[0]}{cc[1]} -v`. The driver's JIT, which assembles the same "
        "PTX at run time, may allocate slightly differently.",
        "",
        f"- generated: {meta['date']}",
        f"- numbapool commit: {meta['commit']}",
        f"- numba {meta['versions']['numba']}, numba-cuda {meta['versions']['numba-cuda']}; "
        f"libNVVM from CUDA {meta['nvvm']}, ptxas from CUDA {meta['ptxas']}",
        f"- {meta['n_calls']} representative calls ({meta['groups']}), "
        f"{meta['n_launches']} launches, {meta['n_variants']} kernel variants",
        "",
        "| kernel | specialisation | registers | shared memory (B) | spills (st/ld B) "
        "| block | blocks/SM (limit) | occupancy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['kernel']}` | {r['specialisation']} | {r['registers']} | {r['shared']} "
            f"| {r['spill_stores']}/{r['spill_loads']} | {r['threads']} "
            f"| {r['blocks_per_sm']} ({r['limiter']}) | {r['occupancy']:.0%} |")
    lines += [
        "",
        "*kernel*: module and kernel function; `name(...)` is a kernel made by the cached "
        "kernel factory `name` of that module. *specialisation*: what sets the variant apart "
        "from the kernel's other variants: the factory's arguments (for other kernels made "
        "in a closure, the closure's values) and the Numba types of the launch arguments "
        "that differ (`float32[1d]`: a C-contiguous 1-D array; `A`: any layout). *shared "
        "memory*: static, per block. *block*: threads per block the backend launches it "
        "with. The variants are those that the representative calls launch (every function, "
        "rank, layout and dtype on small inputs, and large inputs whose size selects "
        "variants: channels per thread, 64-bit indexing, the GPU benchmark's shapes), not "
        "every combination the factories can make.",
        *_legends(),
        "",
        "## Occupancy",
        "",
        "Theoretical occupancy on one sm_90 SM (65,536 registers, 2,048 threads, at most 32 "
        "blocks, 228 KiB of shared memory), by the rules of CUDA's occupancy calculator. "
        "Registers are allocated per warp, in units of 256, from the register file of one "
        "of the SM's 4 sub-partitions:",
        "",
        "```",
        "warps/block = ceil(threads / 32)",
        "regs/warp   = ceil(registers * 32 / 256) * 256",
        "by regs     = floor(floor(65536 / 4 / regs/warp) * 4 / warps/block)",
        "by threads  = floor(2048 / (32 * warps/block))",
        "by blocks   = 32",
        "by smem     = floor(233472 / (ceil((shared + 1024) / 128) * 128))     (shared > 0)",
        "blocks/SM   = min(by regs, by threads, by blocks, by smem)",
        "occupancy   = blocks/SM * warps/block / 64",
        "```",
        "",
        "For example 40 registers at 256 threads: regs/warp = 1280, by regs = "
        "floor(floor(16384 / 1280) * 4 / 8) = floor(48 / 8) = 6 blocks, 48 of 64 warps: 75%.",
        "",
        "## Calls that launched each variant first",
        "",
        "| kernel | made by | block | first launched by | launches |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| `{r['kernel']}` | {r['made_by']} | {r['threads']} "
                     f"| {r['first_call']} | {r['launches']} |")
    return "\n".join(lines) + "\n"


def _legends():
    """Lines naming the codes of the token kernel factory's arguments (when it has them)."""
    lines = []
    try:
        from numbapool.token_plan import MODE_CODES
        lines.append("Token `codes`: " + ", ".join(f"{c} {name}" for name, c in
                                                    sorted(MODE_CODES.items(), key=lambda i: i[1]))
                     + ".")
    except ImportError:
        pass
    kinds = getattr(sys.modules.get("numbapool._cuda.tokens"), "KINDS", None)
    if isinstance(kinds, tuple):
        lines.append("Token `kind`: " + ", ".join(f"{i} {k}" for i, k in enumerate(kinds)) + ".")
    spatial = sys.modules.get("numbapool._cuda.spatial")
    terms = sorted((v, k[2:].lower()) for k, v in vars(spatial or object()).items()
                   if k.startswith("X_") and isinstance(v, int))
    if terms:
        lines.append("Spatial `transform`: " + ", ".join(f"{v} {k}" for v, k in terms) + ".")
    try:
        from numbapool.plan import FINISHES
        lines.append("Spatial `finish`: " + ", ".join(
            f"{c} {name}" for name, c in sorted(FINISHES.items(), key=lambda i: i[1])) + ".")
    except ImportError:
        pass
    return ["", " ".join(lines)] if lines else []


def _commit():
    try:
        proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "numbapool"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return proc.stdout.strip() + (" with uncommitted changes to numbapool/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Registers, shared memory and sm_90 occupancy of numbapool's CUDA "
                    "kernels (no GPU needed).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="the Markdown table to write (default: %(default)s)")
    parser.add_argument("--ptxas", help="the ptxas to use (default: $CUDA_HOME/bin, the "
                                        "one beside Numba's libNVVM, then PATH)")
    parser.add_argument("--cc", default="9.0", help="compute capability (default: 9.0; "
                                                    "the occupancy rules are sm_90's)")
    parser.add_argument("--collect-only", action="store_true",
                        help="list the kernel variants and exit, compiling nothing")
    parser.add_argument("--calls", nargs="+", choices=GROUPS, default=list(GROUPS),
                        help="run only these groups of representative calls (the table "
                             "then covers only their kernels)")
    args = parser.parse_args(argv)
    cc = tuple(int(p) for p in args.cc.split("."))

    t0 = time.perf_counter()
    calls = representative_calls(args.calls)
    records = collect(calls)
    found = variants(records)
    spec = specialisations(found)
    print(f"{len(calls)} calls, {len(records)} launches, {len(found)} kernel variants "
          f"({time.perf_counter() - t0:.1f} s)")
    if args.collect_only:
        for v in found:
            print(f"  {v.name} [{spec[id(v)]}] threads {sorted(v.threads)}, {v.calls} launches")
        return 0

    try:
        compile_ = ptx_compiler(cc)
    except ToolchainMissing as exc:
        print(f"cuda_registers: {exc}", file=sys.stderr)
        return 2
    ptxas, how = find_ptxas(args.ptxas)
    if ptxas is None:
        print(f"cuda_registers: {how}", file=sys.stderr)
        return 2
    ptxas_version = tool_release(subprocess.run([ptxas, "--version"], capture_output=True,
                                                text=True).stdout)
    print(f"ptxas {ptxas_version} ({how}: {ptxas})")

    rows, failures, nvvm = [], [], None
    for i, v in enumerate(found, 1):
        order = i
        t = time.perf_counter()
        try:
            ptx = compile_(v.func, v.signature, v.options)
            nvvm = nvvm or tool_release(ptx)
            res = assemble(ptxas, ptx, cc, v.options.get("max_registers"))
        except Exception as exc:
            failures.append((v, exc))
            print(f"[{i}/{len(found)}] {v.name} [{spec[id(v)]}]: FAILED: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        print(f"[{i}/{len(found)}] {v.name} [{spec[id(v)]}]: {res.registers} registers, "
              f"{res.shared} B smem, spills {res.spill_stores}/{res.spill_loads} B "
              f"({time.perf_counter() - t:.1f} s)")
        for threads, label in sorted(v.threads.items()):
            blocks, limiter, occ = occupancy(res.registers, threads,
                                             res.shared + v.dynamic_shared)
            rows.append({"kernel": v.name, "specialisation": spec[id(v)],
                         "registers": res.registers, "shared": res.shared + v.dynamic_shared,
                         "spill_stores": res.spill_stores, "spill_loads": res.spill_loads,
                         "threads": threads, "blocks_per_sm": blocks, "limiter": limiter,
                         "occupancy": occ, "first_call": label, "launches": v.calls,
                         "made_by": factory_call(v) or spec[id(v)],
                         "order": order})
    if failures:
        print(f"cuda_registers: {len(failures)} of {len(found)} kernel variants did not "
              f"compile; {args.out} left as it was:", file=sys.stderr)
        for v, exc in failures:
            print(f"  {v.name} {tuple(str(t) for t in v.signature)}: "
                  f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                  file=sys.stderr)
        return 1
    rows.sort(key=lambda r: (r["kernel"], r["order"], r["threads"]))  # kernels in call order
    meta = {"cc": cc, "date": datetime.date.today().isoformat(), "commit": _commit(),
            "versions": _versions(), "nvvm": nvvm or "unknown", "ptxas": ptxas_version,
            "n_calls": len(calls), "n_launches": len(records), "n_variants": len(found),
            "groups": ("spatial functions, block_reduce and pool_tokens"
                       if set(args.calls) == set(GROUPS) else f"only {', '.join(args.calls)}: --calls {' '.join(args.calls)}")}
    args.out.write_text(render(rows, meta))
    print(f"wrote {args.out} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
