"""When to go parallel, and how to do it safely from many Python threads."""

import threading

import numba

#: Inputs with fewer elements than this run the serial kernel.  The threshold sits above
#: the crossover that ``benchmarks/bench_crossover.py`` measures on idle cores, because a
#: parallel region whose threads must wait for a busy core can take far longer than the
#: serial kernel takes at this size.
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
