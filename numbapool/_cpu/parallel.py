"""When to go parallel, and how to do it safely from many Python threads."""

import threading

import numba

#: Inputs with fewer elements than this run the serial kernel.  benchmarks/bench_crossover.py
#: puts the crossover at 4K-16K float32 elements on 2 idle cores (2x2 max and 3x3 avg);
#: the threshold sits above it because a parallel region whose threads must wait for a
#: busy core can take milliseconds, while the serial kernel at this size takes ~0.1 ms.
PARALLEL_MIN_ELEMENTS = 1 << 16

_lock = threading.Lock()
_layer_is_threadsafe = None  # unknown until a parallel kernel has run once


def chunks_for(n_tasks: int) -> int:
    """Number of chunks of tasks handed to ``prange``: a few per thread for balance."""
    return max(1, min(n_tasks, 4 * numba.get_num_threads()))


def use_parallel(n_elements: int, n_tasks: int) -> bool:
    return n_elements >= PARALLEL_MIN_ELEMENTS and n_tasks > 1 and numba.get_num_threads() > 1


def run_parallel(kernel, *args):
    """Call a ``parallel=True`` kernel.

    Numba's ``workqueue`` threading layer aborts the process when parallel kernels are
    entered from several Python threads at once; under it (or before we know which layer
    loaded) calls are serialised.  OpenMP and TBB are thread-safe and run concurrently.
    """
    global _layer_is_threadsafe
    if _layer_is_threadsafe:
        return kernel(*args)
    with _lock:
        result = kernel(*args)
        _layer_is_threadsafe = numba.threading_layer() in ("omp", "tbb")
    return result
