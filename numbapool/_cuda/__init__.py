"""The CUDA backend (Numba CUDA kernels).

Every use of ``numba.cuda`` goes through :mod:`numbapool._cuda.compat`; importing this
package imports nothing, so the dispatcher can load the backend only when a CUDA array
(or ``device="cuda"``) asks for it.
"""
