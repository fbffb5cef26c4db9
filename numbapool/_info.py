"""``cuda_available()`` and ``info()``: what numbapool runs on here."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

#: The package version (the one place it is written in the code; ``pyproject.toml`` repeats it).
__version__ = "0.1.0"


def cuda_available() -> bool:
    """Whether CUDA arrays can be pooled here (a CUDA device, or Numba's simulator).

    Imports the CUDA stack (only when ``numba-cuda`` is installed).

    Returns
    -------
    bool
        ``True`` when ``device="cuda"`` and CUDA input arrays can be used.

    Examples
    --------
    >>> isinstance(cuda_available(), bool)
    True
    """
    if importlib.util.find_spec("numba") is None:
        return False
    from ._cuda import compat
    return compat.available()


def cpu_model() -> str:
    """The CPU's model name (Linux's ``/proc/cpuinfo``; elsewhere ``platform.processor()``)."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


#: The widest vector instruction set of a few LLVM CPU names that ``NUMBA_CPU_NAME`` takes.
_NAMED_CPU_CODE = {"haswell": "AVX2", "broadwell": "AVX2", "znver1": "AVX2", "znver2": "AVX2",
                   "znver3": "AVX2", "skylake": "AVX2", "skylake-avx512": "AVX-512",
                   "icelake-server": "AVX-512", "znver4": "AVX-512", "generic": "SSE2"}


def cpu_code() -> str:
    """The vector instruction set Numba compiles the CPU kernels for: ``"AVX-512"``,
    ``"AVX2"``, ... (``NUMBA_CPU_NAME`` when set, else the host's; the kernels use what
    the target allows)."""
    import llvmlite.binding as llvm
    import numba

    name = numba.config.CPU_NAME
    if name and name != "host":
        return f"{_NAMED_CPU_CODE.get(name, name)} (NUMBA_CPU_NAME={name})"
    features = llvm.get_host_cpu_features()
    for flag, isa in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"),
                      ("neon", "NEON")):
        if features.get(flag):
            return isa
    return llvm.get_host_cpu_name()


def info() -> dict[str, Any]:
    """Versions, threading, and CUDA availability, as a dict.

    Returns
    -------
    dict
        The versions of numbapool, Numba, numba-cuda (``None`` when absent) and NumPy; the
        CPU model and the instruction set the kernels are compiled for; Numba's thread
        count (numbapool's kernels run on that many threads of their own pool) and
        threading layer (which only Numba's ``parallel=True`` code uses); the size above
        which the kernels run on several threads; whether CUDA is available, on which
        device, and whether that is the simulator; and
        Numba's cache directory.

    Examples
    --------
    >>> sorted(info())[:3]
    ['cpu', 'cpu_code', 'cuda_available']
    """
    import importlib.metadata

    import numba
    import numpy

    from ._cpu.parallel import PARALLEL_MIN_ELEMENTS
    from ._cuda import compat

    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet in this process
        layer = f"not yet chosen (NUMBA_THREADING_LAYER={numba.config.THREADING_LAYER})"
    try:
        numba_cuda = importlib.metadata.version("numba-cuda")
    except importlib.metadata.PackageNotFoundError:
        numba_cuda = None
    return {
        "numbapool": __version__,
        "numba": numba.__version__,
        "numba_cuda": numba_cuda,
        "numpy": numpy.__version__,
        "cpu": cpu_model(),
        "cpu_code": cpu_code(),
        "threading_layer": layer,
        "threads": numba.get_num_threads(),
        "parallel_min_elements": PARALLEL_MIN_ELEMENTS,
        "cuda_available": compat.available(),
        "cuda_device": compat.device_name(),
        "cuda_simulator": compat.simulator(),
        "numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR") or "(next to the package)",
    }
