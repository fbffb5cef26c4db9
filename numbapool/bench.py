"""The benchmark cases: numbapool against PyTorch CPU, NumPy and the memory-copy roofline.

One list of cases feeds both the pytest-benchmark suite in ``benchmarks/`` and the command
line (``python -m numbapool bench``).  Every case times, on the same input in the same run:

* ``numbapool``: the call under test;
* ``torch``: the same op with PyTorch CPU in the same layout and thread count (when installed);
* ``numpy``: a plain NumPy formulation (where one is reasonable);
* ``roofline``: a parallel copy of as many bytes as the op must read and write.  Pooling is
  memory-bound, so ``roofline time / numbapool time`` is the fraction of the bandwidth limit
  that numbapool reaches.

>>> [c.name for c in cases(quick=True)][:2]
['max2d_k2_nchw', 'max2d_k3s2p1_nchw']
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from typing import Callable, Optional

import numpy as np

IMPLS = ("numbapool", "torch", "numpy", "roofline")

# full-size shapes (the suite's reference sizes) and the quick ones used for smoke runs
_IMAGE = {False: (32, 64, 112, 112), True: (2, 8, 28, 28)}
_VOLUME = {False: (4, 32, 64, 64, 64), True: (1, 2, 8, 8, 8)}
_SIGNAL = {False: (64, 256, 4096), True: (2, 4, 64)}
_TOKENS = {False: (64, 256, 768), True: (4, 16, 32)}


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark: ``make()`` builds the inputs, each impl maps them to a result."""

    name: str
    make: Callable[[], dict]
    ours: Callable[[dict], object]
    torch: Optional[Callable[[object, dict], object]] = None
    numpy: Optional[Callable[[dict], object]] = None

    def moved_bytes(self, inputs) -> int:
        """Bytes the op must read and write: its input (valid tokens only) plus its output."""
        result = self.ours(inputs)
        outputs = result if isinstance(result, tuple) else (result,)
        return int(inputs["read_bytes"] + sum(np.asarray(r).nbytes for r in outputs))


# --------------------------------------------------------------------------- inputs


def _image(shape, layout):
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    if layout == "nhwc":
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    return lambda: {"x": x, "read_bytes": x.nbytes}


def _tokens(shape):
    b, length, d = shape
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal(shape, dtype=np.float32)
    lengths = rng.integers(1, length + 1, size=b)
    mask = np.arange(length)[None, :] < lengths[:, None]
    return lambda: {"x": hidden, "mask": mask, "read_bytes": int(lengths.sum()) * d * 4}


def _torch_input(torch, inputs, layout):
    """The input as a torch tensor in the case's memory format, sharing memory."""
    t = torch.from_numpy(inputs["x"])
    if layout == "nhwc":  # NHWC memory seen as an NCHW tensor in channels_last format
        t = t.permute(0, t.ndim - 1, *range(1, t.ndim - 1))
    return t


# --------------------------------------------------------------------------- NumPy formulations


def _windows(x, k, s, p, axes, fill):
    """Sliding k-windows with stride s and symmetric padding p over ``axes`` (views)."""
    if p:
        pad = [(p, p) if a in axes else (0, 0) for a in range(x.ndim)]
        x = np.pad(x, pad, constant_values=fill)
    w = np.lib.stride_tricks.sliding_window_view(x, (k,) * len(axes), axis=axes)
    sl = tuple(slice(None, None, s) if a in axes else slice(None) for a in range(x.ndim))
    return w[sl]


def _np_pool(reduce, k, s, p, axes, fill=0.0):
    def run(inputs):
        w = _windows(inputs["x"], k, s, p, axes, fill)
        return reduce(w, axis=tuple(range(-len(axes), 0)))
    return run


def _np_block(reduce, k, axes):
    """Non-overlapping k-blocks by reshaping: the fastest NumPy form of a stride-k pool."""
    def run(inputs):
        x = inputs["x"]
        shape, red = [], []
        for a, n in enumerate(x.shape):
            if a in axes:
                shape += [n // k, k]
                red.append(len(shape) - 1)
            else:
                shape.append(n)
        return reduce(x.reshape(shape), axis=tuple(red))
    return run


def _np_tokens(modes):
    def run(inputs):
        h, m = inputs["x"], inputs["mask"]
        parts = []
        for mode in modes:
            if mode == "cls":
                parts.append(h[:, 0])
            elif mode == "mean":
                mf = m[..., None].astype(h.dtype)
                parts.append((h * mf).sum(1) / np.maximum(mf.sum(1), 1))
            elif mode == "max":
                parts.append(np.where(m[..., None], h, -np.inf).max(1))
        return np.concatenate(parts, axis=-1)
    return run


def _torch_tokens(modes):
    def run(torch, inputs):
        h, m = torch.from_numpy(inputs["x"]), torch.from_numpy(inputs["mask"])
        parts = []
        for mode in modes:
            if mode == "cls":
                parts.append(h[:, 0])
            elif mode == "mean":
                mf = m.unsqueeze(-1).to(h.dtype)
                parts.append((h * mf).sum(1) / mf.sum(1).clamp(min=1))
            elif mode == "max":
                parts.append(h.masked_fill(~m.unsqueeze(-1), float("-inf")).amax(1))
        return torch.cat(parts, dim=-1)
    return run


# --------------------------------------------------------------------------- the cases


def cases(quick=False):
    """The suite's cases; ``quick`` swaps in tiny shapes (a smoke run of every code path)."""
    import numbapool as nbp

    out = []
    img, vol, sig, tok = _IMAGE[quick], _VOLUME[quick], _SIGNAL[quick], _TOKENS[quick]
    for layout in ("nchw", "nhwc"):
        cl = "channels_last" if layout == "nhwc" else "channels_first"
        ax = (2, 3) if layout == "nchw" else (1, 2)
        make = _image(img, layout)

        def add(name, ours, theirs, numpy=None, layout=layout):
            out.append(Case(f"{name}_{layout}", make, ours,
                            lambda torch, inputs, f=theirs, lay=layout:
                            f(torch.nn.functional, _torch_input(torch, inputs, lay)),
                            numpy))

        add("max2d_k2", lambda i, cl=cl: nbp.max_pool2d(i["x"], 2, layout=cl),
            lambda F, t: F.max_pool2d(t, 2), _np_block(np.max, 2, ax))
        add("max2d_k3s2p1", lambda i, cl=cl: nbp.max_pool2d(i["x"], 3, 2, 1, layout=cl),
            lambda F, t: F.max_pool2d(t, 3, 2, 1), _np_pool(np.max, 3, 2, 1, ax, -np.inf))
        add("max2d_k2_indices",
            lambda i, cl=cl: nbp.max_pool2d(i["x"], 2, return_indices=True, layout=cl),
            lambda F, t: F.max_pool2d(t, 2, return_indices=True))
        add("max2d_k3s2p1_indices",
            lambda i, cl=cl: nbp.max_pool2d(i["x"], 3, 2, 1, return_indices=True, layout=cl),
            lambda F, t: F.max_pool2d(t, 3, 2, 1, return_indices=True))
        add("avg2d_k3s2p1", lambda i, cl=cl: nbp.avg_pool2d(i["x"], 3, 2, 1, layout=cl),
            lambda F, t: F.avg_pool2d(t, 3, 2, 1), _np_pool(np.mean, 3, 2, 1, ax))
        size = img[-1] // 7  # the adaptive windows' size when 7 divides the input
        add("adaptive_avg_7x7", lambda i, cl=cl: nbp.adaptive_avg_pool2d(i["x"], 7, layout=cl),
            lambda F, t: F.adaptive_avg_pool2d(t, 7),
            _np_block(np.mean, size, ax) if img[-1] % 7 == 0 else None)
        add("adaptive_max_7x7", lambda i, cl=cl: nbp.adaptive_max_pool2d(i["x"], 7, layout=cl),
            lambda F, t: F.adaptive_max_pool2d(t, 7),
            _np_block(np.max, size, ax) if img[-1] % 7 == 0 else None)
        add("global_avg", lambda i, cl=cl: nbp.global_avg_pool(i["x"], layout=cl),
            lambda F, t: F.adaptive_avg_pool2d(t, 1),
            lambda i, ax=ax: i["x"].mean(axis=ax))
        add("global_max", lambda i, cl=cl: nbp.global_max_pool(i["x"], layout=cl),
            lambda F, t: F.adaptive_max_pool2d(t, 1),
            lambda i, ax=ax: i["x"].max(axis=ax))
    make3 = _image(vol, "nchw")
    out.append(Case("max3d_k2_ncdhw", make3, lambda i: nbp.max_pool3d(i["x"], 2),
                    lambda torch, i: torch.nn.functional.max_pool3d(torch.from_numpy(i["x"]), 2),
                    _np_block(np.max, 2, (2, 3, 4))))
    out.append(Case("avg3d_k2_ncdhw", make3, lambda i: nbp.avg_pool3d(i["x"], 2),
                    lambda torch, i: torch.nn.functional.avg_pool3d(torch.from_numpy(i["x"]), 2),
                    _np_block(np.mean, 2, (2, 3, 4))))
    out.append(Case("max1d_k3s2_ncl", _image(sig, "nchw"), lambda i: nbp.max_pool1d(i["x"], 3, 2),
                    lambda torch, i: torch.nn.functional.max_pool1d(torch.from_numpy(i["x"]), 3, 2),
                    _np_pool(np.max, 3, 2, 0, (2,))))
    if hasattr(nbp, "pool_tokens"):
        make_t = _tokens(tok)
        for label, modes in (("mean", "mean"), ("max", "max"), ("multi", ["cls", "mean", "max"])):
            names = [modes] if isinstance(modes, str) else modes
            out.append(Case(f"tokens_{label}", make_t,
                            lambda i, modes=modes: nbp.pool_tokens(i["x"], i["mask"], modes),
                            _torch_tokens(names), _np_tokens(names)))
    return out


# --------------------------------------------------------------------------- copy roofline


def _copy_kernel():
    from numba import njit, prange

    @njit(parallel=True, cache=True)
    def parallel_copy(src, dst):
        for i in prange(src.size):
            dst[i] = src[i]

    return parallel_copy


_COPY = []


def copy_roofline(n_bytes):
    """A callable that reads and writes ``n_bytes`` in all with a parallel copy."""
    if not _COPY:
        _COPY.append(_copy_kernel())
    copy = _COPY[0]
    n = max(1, n_bytes // 2 // 4)
    src = np.ones(n, np.float32)
    dst = np.empty_like(src)
    copy(src, dst)
    return lambda: copy(src, dst)


# --------------------------------------------------------------------------- running


def callables(case, inputs, torch=None):
    """``{impl: zero-argument callable}`` for the implementations available here."""
    calls = {"numbapool": lambda: case.ours(inputs)}
    if torch is not None and case.torch is not None:
        calls["torch"] = lambda: case.torch(torch, inputs)
    if case.numpy is not None:
        calls["numpy"] = lambda: case.numpy(inputs)
    calls["roofline"] = copy_roofline(case.moved_bytes(inputs))
    return calls


def peak_extra_bytes(call):
    """Peak resident memory a call adds beyond what was resident before it (Linux only)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak-RSS mark
        before = _status_kib("VmRSS")
        call()
        return (_status_kib("VmHWM") - before) * 1024
    except OSError:
        return None


def _status_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise OSError(key)


def time_call(call, min_time=0.2, min_rounds=5, max_rounds=200):
    """Median seconds of ``call`` after one warm-up call."""
    call()
    times = []
    start = time.perf_counter()
    while len(times) < min_rounds or (time.perf_counter() - start < min_time
                                      and len(times) < max_rounds):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(quick=False, progress=sys.stderr):
    """Time every case; returns a list of per-case dicts of seconds and ratios."""
    import numba

    try:
        import torch
        torch.set_num_threads(numba.get_num_threads())
    except ImportError:
        torch = None
    todo = cases(quick)
    rows = []
    for n, case in enumerate(todo, 1):
        if progress is not None:
            bar = "#" * (20 * n // len(todo))
            progress.write(f"\r[{bar:20s}] {n}/{len(todo)} {case.name:28s}")
            progress.flush()
        inputs = case.make()
        calls = callables(case, inputs, torch)
        row = {"case": case.name}
        for impl, call in calls.items():
            row[impl] = time_call(call, min_time=0.05 if quick else 0.3)
        row["peak_extra_mib"] = (peak_extra_bytes(calls["numbapool"]) or 0) / 2**20
        rows.append(row)
    if progress is not None:
        progress.write("\n")
    return rows


def format_table(rows):
    """A Markdown table: times in ms and the ratios that matter."""
    head = ("| case | numbapool ms | torch ms | numpy ms | vs torch | vs numpy "
            "| of roofline | peak extra MiB |")
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        def ms(k):
            return f"{r[k] * 1e3:.2f}" if k in r else "-"

        def ratio(k):
            return f"{r[k] / r['numbapool']:.2f}x" if k in r else "-"
        lines.append(f"| {r['case']} | {ms('numbapool')} | {ms('torch')} | {ms('numpy')} "
                     f"| {ratio('torch')} | {ratio('numpy')} | {r['roofline'] / r['numbapool']:.2f} "
                     f"| {r['peak_extra_mib']:.1f} |")
    speedups = [r["torch"] / r["numbapool"] for r in rows if "torch" in r]
    if speedups:
        geo = float(np.exp(np.mean(np.log(speedups))))
        worst = min(rows, key=lambda r: r.get("torch", np.inf) / r["numbapool"])
        lines.append("")
        lines.append(f"geometric-mean speedup over torch: {geo:.2f}x; worst case "
                     f"{worst['case']} at {worst['torch'] / worst['numbapool']:.2f}x")
    fractions = [r["roofline"] / r["numbapool"] for r in rows]
    worst = min(rows, key=lambda r: r["roofline"] / r["numbapool"])
    lines.append(f"roofline fraction: geometric mean "
                 f"{float(np.exp(np.mean(np.log(fractions)))):.2f}, worst {worst['case']} at "
                 f"{worst['roofline'] / worst['numbapool']:.2f}")
    return "\n".join(lines)
