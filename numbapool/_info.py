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


def info() -> dict[str, Any]:
    """Versions, threading, and CUDA availability, as a dict.

    Returns
    -------
    dict
        The versions of numbapool, Numba, numba-cuda (``None`` when absent) and NumPy; Numba's
        threading layer and thread count; the size above which CPU kernels run in parallel;
        whether CUDA is available, on which device, and whether that is the simulator; and
        Numba's cache directory.

    Examples
    --------
    >>> sorted(info())[:3]
    ['cuda_available', 'cuda_device', 'cuda_simulator']
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
        "threading_layer": layer,
        "threads": numba.get_num_threads(),
        "parallel_min_elements": PARALLEL_MIN_ELEMENTS,
        "cuda_available": compat.available(),
        "cuda_device": compat.device_name(),
        "cuda_simulator": compat.simulator(),
        "numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR") or "(next to the package)",
    }
