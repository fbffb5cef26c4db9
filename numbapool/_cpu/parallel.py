"""When to split a call across threads, and how.

Every CPU kernel is a serial ``nogil`` function over a range of tasks (output rows, planes,
sequences).  A large input runs it on several threads at once, each over its own
contiguous range of tasks: the calling thread takes the first range and the threads of a
shared pool the others.  Threads rather than Numba's ``parallel=True``: a parallel kernel
is a second compilation of the whole kernel (several seconds on first use, for every
signature), while this way the kernel compiled for the first small input serves the large
ones too.  The kernels release the GIL, so the threads run truly in parallel, and calls
from many Python threads at once are safe whatever Numba's threading layer.

The thread count is Numba's: ``numba.set_num_threads`` (or ``NUMBA_NUM_THREADS``) sets it.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numba

#: Inputs with fewer elements than this run on the calling thread alone.  Handing ranges
#: to the pool costs about 22 us a call (against 1.5 us for a ``prange`` region), which a
#: 2x2 max pool of 2**16 float32 elements takes on its own (``benchmarks/bench_crossover.py``,
#: ``benchmarks/design_choices.md``); from 2**18 elements (185 us serial) two threads would
#: pay for it even at two thirds of twice the speed (a calculation: the machine measured
#: gave a second thread almost no speed).  A thread that must wait for a busy core can
#: take far longer, another reason not to split small inputs.
PARALLEL_MIN_ELEMENTS = 1 << 18

_pool = None
_pool_lock = threading.Lock()


def thread_count() -> int:
    """The threads a large call runs on: Numba's setting for the calling thread."""
    return numba.get_num_threads()


def use_parallel(n_elements: int, n_tasks: int) -> bool:
    return n_elements >= PARALLEL_MIN_ELEMENTS and n_tasks > 1 and thread_count() > 1


def _executor():
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(1, numba.config.NUMBA_NUM_THREADS - 1),
                                       thread_name_prefix="numbapool")
        return _pool


def cuts(n_tasks: int, n_parts: int) -> list:
    """Boundaries of ``n_parts`` contiguous ranges of about equal size over ``n_tasks``."""
    return [n_tasks * k // n_parts for k in range(n_parts + 1)]


def run_split(kernel, before, bounds, after=(), scratch=tuple):
    """``kernel(*before, bounds[k], bounds[k + 1], *after, *scratch())`` for every ``k``,
    concurrently: the first range on this thread, the others on the pool's threads, each
    with scratch arrays of its own.  Returns when all are done; an exception raised by any
    range is raised here."""
    pool = _executor()
    futures = [pool.submit(kernel, *before, bounds[k], bounds[k + 1], *after, *scratch())
               for k in range(1, len(bounds) - 1)]
    try:
        kernel(*before, bounds[0], bounds[1], *after, *scratch())
    finally:
        wait(futures)  # no range may still be writing when the caller goes on
    for f in futures:
        f.result()  # the first failed range's error, in range order
