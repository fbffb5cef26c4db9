"""Says once per process, through :mod:`logging` at INFO, that a call is compiling kernels.

A kernel's first use compiles it (seconds), unless Numba's on-disk cache holds it; a
caller who sees a first call take that long should know why, without numbapool printing.
Numba reports a compile (and not a cache load) as a ``numba:compile`` event, which a
listener turns into one message on the ``numbapool`` logger.
"""

import logging

from numba.core import event

logger = logging.getLogger("numbapool")

MESSAGE = ("compiling CPU kernels on first use (%s, %s): seconds now, once per machine; "
           "they are cached on disk (next to the package, or in NUMBA_CACHE_DIR), and "
           "'python -m numbapool warm' compiles the common ones ahead of time")


class _FirstCompile(event.Listener):
    def __init__(self):
        self.said = False

    def on_start(self, ev):
        if self.said:
            return
        func = ev.data["dispatcher"].py_func
        if func.__module__.startswith("numbapool."):
            self.said = True
            dtypes = sorted({str(a.dtype) for a in ev.data["args"] if hasattr(a, "dtype")})
            logger.info(MESSAGE, func.__qualname__, ", ".join(dtypes) or "no arrays")

    def on_end(self, ev):
        pass


_listener = None


def install():
    """Listen for compiles (once per process)."""
    global _listener
    if _listener is None:
        _listener = _FirstCompile()
        event.register("numba:compile", _listener)
