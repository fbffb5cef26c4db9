"""GPU benchmark: numbapool on torch CUDA tensors against torch's own CUDA pooling.

For each headline case of the CPU suite (``numbapool/bench.py``), on one CUDA GPU:

* ``numbapool``: the public function called on torch CUDA tensors (zero-copy views; the
  result is a torch tensor allocated by torch, on torch's current stream);
* ``torch``: ``torch.nn.functional``'s op (or a short torch expression where it has none) on
  the same data in the same memory layout (channels-last cases use
  ``torch.channels_last`` tensors, which are NHWC in memory);
* ``copy``: a device-to-device copy (``Tensor.copy_``) of as many bytes as the pool must
  read and write (its input, valid tokens only for token pooling, plus its output): the
  copy roofline of a memory-bound op.

Each result is checked against torch's once (``torch.testing.assert_close``) before
anything is timed.  Times are CUDA-event times (median of several repetitions after
warm-up calls), in milliseconds; ``of copy`` is ``copy ms / ms`` (1.0: the op runs at the
copy's bandwidth) and ``torch/numbapool`` is ``torch ms / numbapool ms`` (above 1: numbapool
is faster).  A last table times back-to-back calls on a small input, where what a call
costs on the host shows.

Usage (needs an NVIDIA GPU, PyTorch with CUDA and numbapool's ``cuda`` extra)::

    python benchmarks/bench_gpu.py                      # sized for under 5 minutes on an H100
    python benchmarks/bench_gpu.py --quick              # smaller inputs: under a minute
    python benchmarks/bench_gpu.py --json benchmarks/gpu-results.json

Without a usable GPU it exits at once with a message saying what is missing.  The cases
are built without a GPU (:func:`cases`), which the test suite checks.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import sys
import time
from typing import Callable

#: float32 shapes of the full run and of ``--quick``
IMAGE = {False: (32, 64, 112, 112), True: (8, 64, 112, 112)}
FEATURES = {False: (64, 2048, 7, 7), True: (16, 2048, 7, 7)}  # a ResNet-50 head
LARGE_PLANE = {False: (1, 3, 2048, 2048), True: (1, 3, 1024, 1024)}
TOKENS = {False: (64, 512, 768), True: (16, 512, 768)}
SMALL = (8, 64, 56, 56)  # the per-call overhead case

#: repetitions (at least, at most) and seconds spent timing one implementation of a case
REPEATS = {False: (5, 50, 1.0), True: (3, 10, 0.1)}
WARMUP = 2
SMALL_CALLS = {False: 500, True: 100}
#: where the inputs live (the tests point it elsewhere to dry-run the cases)
DEVICE = "cuda"


# --------------------------------------------------------------------------- the cases


@dataclasses.dataclass(frozen=True)
class GpuCase:
    """One benchmark case.

    ``kind`` is "image" (``shape`` is NCHW; a channels-last case gives numbapool the NHWC
    tensor and torch the same memory as a ``channels_last`` NCHW tensor), "blocks" (the
    same inputs, for ``block_reduce``, whose ``args`` give the block of each axis of
    numbapool's layout, and which takes no ``layout``) or "tokens"
    (``shape`` is ``(B, L, D)`` hidden states with a right-padding mask on the device).
    ``function(x, *args, **kwargs)`` is numbapool's call (``layout`` added for images);
    ``reference(torch, x)`` is torch's formulation on torch's input, whose result
    ``to_ours`` lays out like numbapool's.
    """

    name: str
    kind: str
    function: str
    shape: tuple
    dtype: str
    layout: str
    args: tuple
    reference: Callable
    reference_text: str
    kwargs: dict = dataclasses.field(default_factory=dict)
    exact: bool = False  # max/min: the results must be equal

    @property
    def channels_last(self):
        return self.layout == "channels_last"

    def numbapool_call(self, nbp, x):
        """numbapool's call on its input ``x``."""
        func = getattr(nbp, self.function)
        if self.kind == "tokens":
            return func(x[0], x[1], *self.args, **self.kwargs)
        if self.kind == "blocks":
            return func(x, *self.args, **self.kwargs)
        return func(x, *self.args, layout=self.layout, **self.kwargs)

    def to_ours(self, result):
        """torch's result laid out like numbapool's (NHWC for channels-last 4-D results)."""
        if self.channels_last and result.ndim == 4:
            return result.permute(0, 2, 3, 1)
        return result


def _image(name, function, args, reference, text, shape, dtype="float32", exact=False,
           layouts=("channels_first", "channels_last"), **kwargs):
    suffix = {"channels_first": "nchw", "channels_last": "nhwc"}
    tag = "" if dtype == "float32" else "_" + {"float16": "f16", "float64": "f64"}[dtype]
    return [GpuCase(f"{name}_{suffix[layout]}{tag}", "image", function, tuple(shape), dtype,
                    layout, tuple(args), reference, text, dict(kwargs), exact)
            for layout in layouts]


def _gem(torch, x, p=3.0, eps=1e-6):
    return x.clamp(min=eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


def _token_mean(torch, inputs):
    h, mask = inputs
    m = mask[..., None].to(h.dtype)
    return (h * m).sum(1) / m.sum(1)


def _token_max(torch, inputs):
    h, mask = inputs
    return h.masked_fill(~mask[..., None], float("-inf")).amax(1)


def _block_median(torch, x):
    """The median of each 2 x 2 block of NCHW ``x``: the mean of its middle two values."""
    N, C, H, W = x.shape
    s = x.reshape(N, C, H // 2, 2, W // 2, 2).transpose(3, 4).reshape(
        N, C, H // 2, W // 2, 4).sort(-1).values
    return (s[..., 1] + s[..., 2]) / 2


def _blocks(img):
    """block_reduce over 2 x 2 blocks: means (both layouts) and medians."""
    F = "torch.nn.functional"
    avg = lambda torch, x: torch.nn.functional.avg_pool2d(x, 2)  # noqa: E731
    return [
        GpuCase("block_mean_k2_nchw", "blocks", "block_reduce", tuple(img), "float32",
                "channels_first", ((1, 1, 2, 2), "mean"), avg, f"{F}.avg_pool2d(x, 2)"),
        GpuCase("block_mean_k2_nhwc", "blocks", "block_reduce", tuple(img), "float32",
                "channels_last", ((1, 2, 2, 1), "mean"), avg, f"{F}.avg_pool2d(x, 2)"),
        GpuCase("block_median_k2_nchw", "blocks", "block_reduce", tuple(img), "float32",
                "channels_first", ((1, 1, 2, 2), "median"), _block_median,
                "the mean of the middle two of each 2 x 2 block, sorted"),
    ]


def cases(quick=False):
    """The benchmark cases (built without torch or a GPU)."""
    F = "torch.nn.functional"
    img, feat = IMAGE[quick], FEATURES[quick]
    out = []
    out += _image("max2d_k2", "max_pool2d", (2,),
                  lambda torch, x: torch.nn.functional.max_pool2d(x, 2),
                  f"{F}.max_pool2d(x, 2)", img, exact=True)
    out += _image("max2d_k3s2p1", "max_pool2d", (3, 2, 1),
                  lambda torch, x: torch.nn.functional.max_pool2d(x, 3, 2, 1),
                  f"{F}.max_pool2d(x, 3, 2, 1)", img, exact=True)
    out += _image("avg2d_k2", "avg_pool2d", (2,),
                  lambda torch, x: torch.nn.functional.avg_pool2d(x, 2),
                  f"{F}.avg_pool2d(x, 2)", img)
    out += _image("lp2d_p2_k2", "lp_pool2d", (2.0, 2),
                  lambda torch, x: torch.nn.functional.lp_pool2d(x, 2.0, 2),
                  f"{F}.lp_pool2d(x, 2.0, 2)", img, layouts=("channels_first",))
    out += _image("global_avg", "adaptive_avg_pool2d", (1,),
                  lambda torch, x: torch.nn.functional.adaptive_avg_pool2d(x, 1),
                  f"{F}.adaptive_avg_pool2d(x, 1)", feat)
    out += _image("gem_p3", "gem_pool", (3.0,), _gem,
                  "x.clamp(min=1e-6).pow(3).mean(dim=(2, 3)).pow(1/3)", feat,
                  layouts=("channels_first",))
    out += _image("global_max_large", "global_max_pool", (),
                  lambda torch, x: torch.amax(x, dim=(2, 3)),
                  "torch.amax(x, dim=(2, 3))", LARGE_PLANE[quick], exact=True,
                  layouts=("channels_first",))
    out += _image("max2d_k2", "max_pool2d", (2,),
                  lambda torch, x: torch.nn.functional.max_pool2d(x, 2),
                  f"{F}.max_pool2d(x, 2)", img, dtype="float16", exact=True)
    out += _image("avg2d_k2", "avg_pool2d", (2,),
                  lambda torch, x: torch.nn.functional.avg_pool2d(x, 2),
                  f"{F}.avg_pool2d(x, 2)", img, dtype="float16", layouts=("channels_last",))
    out += _blocks(img)
    for dtype, tag in (("float32", ""), ("float16", "_f16")):
        out.append(GpuCase(f"tokens_mean{tag}", "tokens", "pool_tokens", TOKENS[quick],
                           dtype, "tokens", ("mean",), _token_mean,
                           "m = mask[..., None].to(h.dtype); (h * m).sum(1) / m.sum(1)"))
        out.append(GpuCase(f"tokens_max{tag}", "tokens", "pool_tokens", TOKENS[quick],
                           dtype, "tokens", ("max",), _token_max,
                           "h.masked_fill(~mask[..., None], -inf).amax(1)", exact=True))
    return out


def small_case():
    """The per-call overhead case: a small max_pool2d (host cost shows)."""
    return GpuCase("max2d_k2_small", "image", "max_pool2d", SMALL, "float32",
                   "channels_first", (2,),
                   lambda torch, x: torch.nn.functional.max_pool2d(x, 2),
                   "torch.nn.functional.max_pool2d(x, 2)", exact=True)


# --------------------------------------------------------------------------- inputs


def make_inputs(torch, case, device=None):
    """``(numbapool's input, torch's input, bytes the pool must read)`` of ``case``."""
    device = device or DEVICE
    dtype = getattr(torch, case.dtype)
    gen = torch.Generator(device=device).manual_seed(0)
    if case.kind == "tokens":
        B, L, D = case.shape
        h = torch.randn(case.shape, generator=gen, device=device, dtype=torch.float32)
        h = h.to(dtype)
        lengths = torch.randint(1, L + 1, (B,), generator=gen, device=device)
        mask = torch.arange(L, device=device)[None, :] < lengths[:, None]
        read = int(lengths.sum().item()) * D * h.element_size()
        return (h, mask), (h, mask), read
    x = torch.randn(case.shape, generator=gen, device=device, dtype=torch.float32).to(dtype)
    if case.channels_last:
        nhwc = x.permute(0, 2, 3, 1).contiguous()
        del x
        theirs = nhwc.permute(0, 3, 1, 2)  # NCHW view of NHWC memory: torch.channels_last
        assert theirs.is_contiguous(memory_format=torch.channels_last)
        return nhwc, theirs, nhwc.numel() * nhwc.element_size()
    return x, x, x.numel() * x.element_size()


def _as_torch(torch, result):
    if isinstance(result, tuple):
        return tuple(_as_torch(torch, r) for r in result)
    return result if isinstance(result, torch.Tensor) else torch.as_tensor(result, device=DEVICE)


def tolerances(case):
    if case.exact:
        return {"rtol": 0.0, "atol": 0.0}
    return {"float16": {"rtol": 5e-3, "atol": 5e-3},
            "float32": {"rtol": 1e-4, "atol": 1e-5}}.get(case.dtype, {"rtol": 1e-7, "atol": 1e-9})


def check(torch, case, ours, theirs):
    """None when numbapool's result matches torch's, else what differs."""
    ours = _as_torch(torch, ours)
    want = case.to_ours(theirs)
    try:
        torch.testing.assert_close(ours, want, **tolerances(case), check_stride=False)
    except AssertionError as exc:
        return " ".join(str(exc).split())[:300]
    return None


# --------------------------------------------------------------------------- timing


def time_gpu(torch, fn, quick):
    """Median CUDA-event milliseconds of ``fn()`` after warm-up calls."""
    least, most, budget = REPEATS[quick]
    for _ in range(WARMUP):
        fn()
    torch.cuda.synchronize()
    times = []
    start = time.perf_counter()
    while len(times) < least or (len(times) < most and time.perf_counter() - start < budget):
        begin = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        begin.record()
        fn()
        end.record()
        end.synchronize()
        times.append(begin.elapsed_time(end))
    return statistics.median(times)


def copy_roofline(torch, n_bytes):
    """A callable copying ``n_bytes / 2`` bytes device to device (``n_bytes`` moved)."""
    n = max(1, n_bytes // 2)
    src = torch.ones(n, dtype=torch.uint8, device=DEVICE)
    dst = torch.empty_like(src)
    return lambda: dst.copy_(src)


def per_call(torch, fn, calls):
    """``(wall µs per call, host µs per call)`` over ``calls`` back-to-back calls: the wall
    time runs to the end of the GPU work, the host time to the last call's return."""
    for _ in range(WARMUP):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    host = time.perf_counter() - t0
    torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    return wall / calls * 1e6, host / calls * 1e6


def _nbytes(result):
    if isinstance(result, tuple):
        return sum(_nbytes(r) for r in result)
    return int(result.numel() * result.element_size())


def run_case(torch, nbp, case, quick):
    """Check and time one case; a dict of its figures."""
    ours_in, theirs_in, read = make_inputs(torch, case)
    ours_fn = lambda: case.numbapool_call(nbp, ours_in)  # noqa: E731
    theirs_fn = lambda: case.reference(torch, theirs_in)  # noqa: E731
    ours = _as_torch(torch, ours_fn())  # the first call compiles numbapool's kernel
    mismatch = check(torch, case, ours, theirs_fn())
    moved = read + _nbytes(ours)
    del ours
    row = {"case": case.name, "function": case.function, "shape": list(case.shape),
           "dtype": case.dtype, "layout": case.layout, "args": [repr(a) for a in case.args],
           "torch": case.reference_text, "bytes": moved,
           "check": "ok" if mismatch is None else f"MISMATCH: {mismatch}"}
    row["numbapool_ms"] = time_gpu(torch, ours_fn, quick)
    row["torch_ms"] = time_gpu(torch, theirs_fn, quick)
    row["copy_ms"] = time_gpu(torch, copy_roofline(torch, moved), quick)
    row["numbapool_of_copy"] = row["copy_ms"] / row["numbapool_ms"]
    row["torch_of_copy"] = row["copy_ms"] / row["torch_ms"]
    row["torch_over_numbapool"] = row["torch_ms"] / row["numbapool_ms"]
    row["numbapool_GBps"] = moved / row["numbapool_ms"] / 1e6
    return row


def run_overhead(torch, nbp, quick):
    """Per-call cost on the small case: back-to-back calls, host wall time."""
    case = small_case()
    ours_in, theirs_in, _ = make_inputs(torch, case)
    ours_fn = lambda: case.numbapool_call(nbp, ours_in)  # noqa: E731
    theirs_fn = lambda: case.reference(torch, theirs_in)  # noqa: E731
    mismatch = check(torch, case, ours_fn(), theirs_fn())
    calls = SMALL_CALLS[quick]
    row = {"case": case.name, "shape": list(case.shape), "calls": calls,
           "check": "ok" if mismatch is None else f"MISMATCH: {mismatch}"}
    row["numbapool_us"], row["numbapool_host_us"] = per_call(torch, ours_fn, calls)
    row["torch_us"], row["torch_host_us"] = per_call(torch, theirs_fn, calls)
    row["numbapool_gpu_us"] = time_gpu(torch, ours_fn, quick) * 1e3
    row["torch_gpu_us"] = time_gpu(torch, theirs_fn, quick) * 1e3
    return row


# --------------------------------------------------------------------------- report


def unavailable_reason():
    """Why this benchmark cannot run here (None when it can)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return "NUMBA_ENABLE_CUDASIM is set: Numba's CUDA simulator is not a GPU; unset it"
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed (pip install torch, a CUDA build)"
    if not torch.cuda.is_available():
        build = ("a CPU-only build" if torch.version.cuda is None
                 else f"built for CUDA {torch.version.cuda}, but no GPU or driver was found")
        return f"torch {torch.__version__} sees no CUDA device ({build})"
    import numbapool
    if not numbapool.cuda_available():
        from numbapool._cuda import compat
        return f"numbapool cannot use CUDA: {compat.why_unavailable()}"
    return None


def _versions(torch, nbp):
    import importlib.metadata as md

    def version(dist):
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    props = torch.cuda.get_device_properties(0)
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "gpu": props.name, "compute_capability": f"{props.major}.{props.minor}",
            "gpu_memory_GiB": round(props.total_memory / 2**30, 1),
            "python": platform.python_version(), "numbapool": nbp.__version__,
            "numba": version("numba"), "numba_cuda": version("numba-cuda"),
            "torch": torch.__version__, "torch_cuda": torch.version.cuda}


def format_tables(results):
    """The Markdown tables printed at the end (and pasted into benchmarks/GPU.md)."""
    lines = ["| case | numbapool ms | torch ms | copy ms | numbapool of copy "
             "| torch of copy | torch/numbapool |",
             "|---|---|---|---|---|---|---|"]
    for r in results["cases"]:
        flag = "" if r["check"] == "ok" else " (MISMATCH)"
        lines.append(f"| {r['case']}{flag} | {r['numbapool_ms']:.3f} | {r['torch_ms']:.3f} "
                     f"| {r['copy_ms']:.3f} | {r['numbapool_of_copy']:.2f} "
                     f"| {r['torch_of_copy']:.2f} | {r['torch_over_numbapool']:.2f}x |")
    o = results.get("overhead")
    if o:
        lines += ["", f"Per call, {o['calls']} back-to-back calls on {tuple(o['shape'])} "
                      "float32 (max_pool2d k2): wall time to the end of the GPU work, host "
                      "time to the last call's return, and one call's CUDA-event time.", "",
                  "| | wall µs/call | host µs/call | GPU µs/call |", "|---|---|---|---|",
                  f"| numbapool | {o['numbapool_us']:.1f} | {o['numbapool_host_us']:.1f} "
                  f"| {o['numbapool_gpu_us']:.1f} |",
                  f"| torch | {o['torch_us']:.1f} | {o['torch_host_us']:.1f} "
                  f"| {o['torch_gpu_us']:.1f} |"]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="numbapool on torch CUDA tensors vs torch CUDA and a device copy.")
    parser.add_argument("--quick", action="store_true",
                        help="smaller inputs and fewer repetitions (under a minute)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--cases", nargs="*", metavar="NAME",
                        help="only these cases (default: all)")
    args = parser.parse_args(argv)
    names = [c.name for c in cases(args.quick)]
    unknown = sorted(set(args.cases or ()) - set(names))
    if unknown:
        parser.error(f"unknown cases {unknown}; the cases are {names}")

    reason = unavailable_reason()
    if reason is not None:
        raise SystemExit(f"bench_gpu: cannot run here: {reason}.\nIt needs an NVIDIA GPU, "
                         "PyTorch with CUDA and numbapool's cuda extra "
                         "(pip install -e \".[cuda]\" torch).")
    import torch

    import numbapool as nbp

    selected = [c for c in cases(args.quick) if not args.cases or c.name in args.cases]
    results = {"meta": {**_versions(torch, nbp), "quick": args.quick}, "cases": []}
    m = results["meta"]
    print(f"{m['gpu']} (sm_{m['compute_capability'].replace('.', '')}), torch {m['torch']} "
          f"(CUDA {m['torch_cuda']}), numbapool {m['numbapool']}, numba-cuda "
          f"{m['numba_cuda']}", file=sys.stderr)
    t0 = time.perf_counter()
    for case in selected:
        t = time.perf_counter()
        row = run_case(torch, nbp, case, args.quick)  # its inputs are freed on return
        torch.cuda.empty_cache()
        results["cases"].append(row)
        print(f"  {case.name}: numbapool {row['numbapool_ms']:.3f} ms, torch "
              f"{row['torch_ms']:.3f} ms, copy {row['copy_ms']:.3f} ms [{row['check']}] "
              f"({time.perf_counter() - t:.1f} s)", file=sys.stderr)
    if not args.cases:
        results["overhead"] = run_overhead(torch, nbp, args.quick)
    results["meta"]["seconds"] = round(time.perf_counter() - t0, 1)
    print(format_tables(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
            f.write("\n")
        print(f"wrote {args.json}", file=sys.stderr)
    bad = [r["case"] for r in results["cases"] if r["check"] != "ok"]
    if results.get("overhead", {}).get("check", "ok") != "ok":
        bad.append(results["overhead"]["case"])
    if bad:
        print(f"bench_gpu: numbapool's results differ from torch's in {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
