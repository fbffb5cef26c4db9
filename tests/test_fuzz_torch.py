"""A seeded random differential test of the spatial functions against PyTorch CPU.

Case ``i`` draws everything from ``numpy.random.default_rng(SEED + i)``: the function (the
N-D name or its fixed-rank alias), the number of spatial dimensions (1 to 3; 4 and 5 for the
global pools, which the registry computes with ``amax``/``mean`` there), the geometry within
torch's limits (padding at most half the undilated kernel), both layouts, every dtype, a
memory view (contiguous, Fortran, strided, negative strides, read-only), the values (signed
zeros, infinities, NaN, subnormals, integer extremes, ties) and whether numbapool runs its
serial or its parallel kernels (the parallel threshold is lowered to 0 for the call).  A
failure names its case: ``pytest tests/test_fuzz_torch.py -k '[17-'`` reruns case 17 alone.

numbapool is compared with the registry's torch formulation (``numbapool.comparisons``),
given numbapool's own arguments:

* max, min, adaptive max and global max: values exactly, the sign of a zero included (of
  tied zeros the first in row-major window order wins), and indices exactly;
* averages: within a bound derived from the dtype and the window: a sum may be off by
  ``taps + 1`` roundings of the accumulation dtype relative to the window's sum of
  magnitudes (the same pool of ``|x|``), and the result by a rounding of its dtype either
  side; lp_pool's root turns that bound on the sum into one on the result.

Where the contract (docs/guide/spatial.md, docs/guide/conventions.md) departs from torch,
or torch is wrong, the contract wins and that element class is compared with the naive
oracle (``tests/reference.py``) or torch is given what the contract computes:

* the index of a window holding NaN is its first NaN's (torch: its last NaN's);
* torch's max_pool3d in channels-last indexes a window of nothing but the floor value
  (the dtype's lowest, or -inf; for min_pool the highest, or +inf) in its first depth
  slice, whatever the window's depth: those indices come from the oracle;
* for more than three spatial dimensions the registry's global max is ``amax``, whose
  zero has no set sign: the sign comes from the oracle;
* lp_pool gives 0 where a window's sum of ``x**p`` is negative (torch: NaN or a negative
  root), and sums a partial ``ceil_mode`` window as it is (torch rescales it, so the
  registry declines that case);
* a window that holds no input element raises ``ValueError`` (torch pools the padding);
* lp_pool and gem_pool sum in float64 whatever the input's dtype, so torch computes them
  on the input widened to float64 (in float16 or float32 torch's ``x**p`` overflows and
  underflows where numbapool's does not);
* float16 averages sum in float32: torch's avg_pool3d has no float16 kernel and its
  adaptive_avg_pool3d sums float16 in float16, so in three dimensions torch is given the
  input widened to float32.

Where torch has no CPU kernel for a dtype (uint16/32/64 throughout, integers in adaptive
max pooling and so in global max pooling up to three dimensions) or the registry declares an
argument it does not cover (``divisor_override`` in one dimension), the case is compared
with the oracle.  Integer max pooling asks torch for indices even when numbapool's call does
not (torch's max_pool1d has an integer kernel only with indices).
"""

import math

import numpy as np
import pytest

import numbapool as nbp
import reference
from conftest import as_view
from numbapool._cpu import parallel

torch = pytest.importorskip("torch")
from numbapool.comparisons import COMPARISONS  # noqa: E402  (torch may be absent)

pytestmark = pytest.mark.torch

SEED = 1000
N_CASES = 700
MAX_ELEMENTS = 2500

INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
FLOATS = ("float16", "float32", "float64")
VIEWS = ("contiguous", "fortran", "strided", "negative", "readonly")
LAYOUTS = ("channels_first", "channels_last")
EXTREME = ("max_pool", "min_pool", "adaptive_max_pool", "global_max_pool")
INDEXED = ("max_pool", "min_pool", "adaptive_max_pool")
GLOBAL = ("global_max_pool", "global_avg_pool", "gem_pool")
OPS = {  # name: relative frequency
    "max_pool": 5, "min_pool": 3, "avg_pool": 4, "lp_pool": 2, "adaptive_max_pool": 3,
    "adaptive_avg_pool": 2, "global_max_pool": 3, "global_avg_pool": 2, "gem_pool": 2,
}
MAX_SIDE = {1: 16, 2: 9, 3: 6, 4: 4, 5: 3}
MAX_SIDE_GLOBAL = {1: 700, 2: 30, 3: 10, 4: 5, 5: 4}  # planes of a few hundred: split in rows


# --------------------------------------------------------------------------- values


def _float_values(rng, shape, dtype, kind, op):
    fi = np.finfo(dtype)
    size = math.prod(shape)
    if kind == "ties":  # a few values, zeros of both signs among them
        pool = np.array([-2.0, -1.0, -0.0, 0.0, 1.0, 2.0])
        a = pool[rng.integers(0, len(pool), size)]
    elif kind == "zeros":  # the extreme is a zero of either sign, dense or sparse
        density = float(rng.choice([0.3, 0.1, 0.02]))
        a = rng.choice(np.array([-0.0, 0.0, -1.0 if op != "min_pool" else 1.0]), size=size,
                       p=[density, density, 1 - 2 * density])
    elif kind == "subnormal":  # only subnormals and zeros
        a = rng.integers(-40, 41, size) * float(fi.smallest_subnormal)
        a[rng.random(size) < 0.1] = -0.0
    else:
        a = rng.standard_normal(size) * 3
        if kind == "nan":
            a[rng.random(size) < 0.2] = np.nan
        elif kind == "specials":
            specials = [0.0, -0.0, np.inf, -np.inf, np.nan, float(fi.smallest_subnormal),
                        -float(fi.smallest_subnormal), float(fi.tiny) / 4,
                        -float(fi.tiny) / 4, float(fi.tiny), -float(fi.tiny)]
            if op in EXTREME:  # averages get no overflowing sums: their order is free
                specials += [float(fi.max), -float(fi.max)]
            mask = rng.random(size) < 0.35
            a[mask] = np.array(specials)[rng.integers(0, len(specials), int(mask.sum()))]
    return a.reshape(shape).astype(dtype)


def _int_values(rng, shape, dtype, kind):
    info = np.iinfo(dtype)
    if kind == "ties":
        return rng.integers(0, 3, size=shape).astype(dtype)
    if kind == "extremes":
        pool = sorted({int(info.min), int(info.min) + 1, 0, 1, int(info.max) - 1,
                       int(info.max)} | ({-1} if info.min < 0 else set()))
        return np.array(pool, dtype=dtype)[rng.integers(0, len(pool), size=shape)]
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def _values(rng, shape, dtype, op):
    if np.dtype(dtype).kind in "iu":
        kind = str(rng.choice(["full", "extremes", "ties"]))
        return kind, _int_values(rng, shape, dtype, kind)
    weights = [0.2, 0.15, 0.1, 0.15, 0.25, 0.15] if op not in EXTREME else \
        [0.1, 0.2, 0.25, 0.15, 0.2, 0.1]  # zeros of both signs test the order of ties
    kind = str(rng.choice(["normal", "ties", "zeros", "nan", "specials", "subnormal"],
                          p=weights))
    return kind, _float_values(rng, shape, dtype, kind, op)


# --------------------------------------------------------------------------- geometry


def _form(rng, values, allow_int):
    """A per-dimension parameter as a tuple, or an int when every entry is equal."""
    if allow_int and len(set(values)) == 1 and rng.random() < 0.5:
        return int(values[0])
    return tuple(int(v) for v in values)


def _sliding(rng, op, spatial):
    """kernel, stride, padding, dilation (tuples) within torch's limits for ``op``: padding at
    most half the (undilated) kernel, a dilated kernel that fits the padded input."""
    kernel, pads, dilation, stride = [], [], [], []
    for L in spatial:
        while True:
            # k = L + 1 needs padding, which torch's avg_pool3d refuses (input < kernel)
            k = int(rng.integers(1, min(4, L + (op != "avg_pool" or len(spatial) < 3)) + 1))
            d = int(rng.integers(1, 3)) if op in ("max_pool", "min_pool") and \
                rng.random() < 0.4 else 1
            eff = (k - 1) * d + 1
            half = 0 if op == "lp_pool" else k // 2  # torch: half the kernel, undilated
            low = max(0, -(-(eff - L) // 2))
            if low <= half:
                break
        kernel.append(k)
        dilation.append(d)
        pads.append(int(rng.integers(low, half + 1)))
        stride.append(int(rng.integers(1, 4)))
    return tuple(kernel), tuple(stride), tuple(pads), tuple(dilation)


def _padding_spec(rng, pads):
    """Symmetric padding in one of the forms torch's formulation takes."""
    r = rng.random()
    if not any(pads) and r < 0.3:
        return "valid"
    if r < 0.3 and len(set(pads)) == 1:
        return pads[0]
    if r < 0.6:
        return tuple((p, p) for p in pads)  # (before, after) pairs, equal
    return tuple(pads)


def _windows_exist(spatial, kernel, stride, pads, dilation, ceil_mode):
    """Whether every output window holds an input element (the oracle's own check)."""
    try:
        for L, k, s, p, d in zip(spatial, kernel, stride, pads, dilation):
            reference.sliding_windows(L, k, s, d, p, p, ceil_mode)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- cases


def draw_case(i):
    """Case ``i``: a dict of everything the comparison needs (deterministic in ``i``)."""
    rng = np.random.default_rng(SEED + i)
    names = list(OPS)
    weights = np.array([OPS[n] for n in names], float)
    op = str(rng.choice(names, p=weights / weights.sum()))
    n = int(rng.choice([1, 2, 3, 4, 5], p=[0.3, 0.3, 0.2, 0.1, 0.1])) if op in GLOBAL \
        else int(rng.integers(1, 4))
    layout = str(rng.choice(LAYOUTS))
    if op in EXTREME:
        dtype = str(rng.choice(INTS + FLOATS, p=[0.05] * 8 + [0.2] * 3))
    else:
        dtype = str(rng.choice(INTS + FLOATS, p=[0.025] * 8 + [0.8 / 3] * 3))
    view = str(rng.choice(VIEWS))

    # the shape: some leading axes, the spatial axes, a channel axis for channels-last
    n_lead = int(rng.choice([0, 1, 2, 3], p=[0.15, 0.3, 0.4, 0.15]))
    lead = tuple(int(rng.integers(1, 4)) for _ in range(n_lead))
    if len(lead) > (layout == "channels_first") and rng.random() < 0.03:
        lead = (0,) + lead[1:]  # a zero-size batch (torch's batch axis: not its channels)
    big = op in GLOBAL and rng.random() < 0.6
    sides = MAX_SIDE_GLOBAL if big else MAX_SIDE
    spatial = [int(rng.integers(1 if rng.random() < 0.3 else (sides[n] + 1) // 2, sides[n] + 1))
               for _ in range(n)]  # mostly long enough for windows of several taps
    channels = (int(rng.integers(1, 5)),) if layout == "channels_last" else ()
    lead = list(lead)
    while math.prod(lead + spatial + list(channels)) > MAX_ELEMENTS:
        if big and max(lead, default=0) > 1:  # large planes: fewer of them
            lead[int(np.argmax(lead))] -= 1
        else:
            spatial[int(np.argmax(spatial))] -= 1
    lead = tuple(lead)
    spatial = tuple(spatial)
    shape = lead + spatial + channels
    # an int kernel/output size reads N as x.ndim - 2: right when that is n
    int_reads_n = len(shape) - 2 == n
    alias = n <= 3 and rng.random() < 0.3
    allow_int = alias or int_reads_n

    args, kwargs = [], {}     # numbapool's call, as drawn
    cargs, ckwargs = [], {}   # the same call with every per-dimension entry a tuple
    if layout == "channels_last" or rng.random() < 0.2:
        kwargs["layout"] = ckwargs["layout"] = layout
    valid = True
    if op in ("max_pool", "min_pool", "avg_pool", "lp_pool"):
        kernel, stride, pads, dilation = _sliding(rng, op, spatial)
        ceil_mode = bool(rng.random() < 0.5)
        stride_spec = None if rng.random() < 0.2 else _form(rng, stride, True)
        if stride_spec is None:
            stride = kernel
        valid = _windows_exist(spatial, kernel, stride, pads, dilation, ceil_mode)
        if op == "lp_pool":
            p = float(rng.choice([1.0, 2.0, 3.0, 1.5, 4.0]))
            args = [p, _form(rng, kernel, allow_int), stride_spec, ceil_mode]
            cargs = [p, kernel, stride_spec, ceil_mode]
        else:
            padding = _padding_spec(rng, pads)
            args = [_form(rng, kernel, allow_int), stride_spec, padding]
            cargs = [kernel, stride_spec, padding]
            if op == "avg_pool":
                include_pad = bool(rng.random() < 0.5)
                override = [None, None, None, 1, 3, 7][int(rng.integers(0, 6))]
                if n == 1 and rng.random() < 0.8:
                    override = None  # torch's avg_pool1d has none
                args += [ceil_mode, include_pad, override]
                cargs += [ceil_mode, include_pad, override]
            else:
                d = _form(rng, dilation, True)
                args += [d, ceil_mode]
                cargs += [dilation, ceil_mode]
                kwargs["return_indices"] = ckwargs["return_indices"] = bool(rng.random() < 0.6)
    elif op in ("adaptive_max_pool", "adaptive_avg_pool"):
        sizes = tuple(None if rng.random() < 0.15 else int(rng.integers(1, L + 3))
                      for L in spatial)
        if None in sizes:
            args, cargs = [sizes], [sizes]
        else:
            args, cargs = [_form(rng, sizes, allow_int)], [sizes]
        if op == "adaptive_max_pool":
            kwargs["return_indices"] = ckwargs["return_indices"] = bool(rng.random() < 0.6)
    else:
        if op == "gem_pool":
            p = float(rng.choice([1.0, 2.0, 3.0, 2.5, 4.5]))
            eps = float(rng.choice([1e-6, 0.0, 0.5]))
            kwargs.update(p=p, eps=eps)
            ckwargs.update(p=p, eps=eps)
        # spatial_dims=None reads N as x.ndim - 2; an alias fixes it
        pass_dims = not (alias or int_reads_n) or rng.random() < 0.5
        if pass_dims and not alias:
            kwargs["spatial_dims"] = n
        ckwargs["spatial_dims"] = n
        kwargs["keepdims"] = ckwargs["keepdims"] = bool(rng.random() < 0.5)
    if op in EXTREME + ("avg_pool", "adaptive_avg_pool", "global_avg_pool") and \
            rng.random() < 0.2:
        kwargs["nan_policy"] = ckwargs["nan_policy"] = "propagate"

    kind, x = _values(rng, shape, dtype, op)
    threads = "parallel" if rng.random() < 0.3 else "serial"  # the kernels numbapool runs
    return dict(i=i, op=op, n=n, layout=layout, dtype=dtype, view=view, kind=kind, shape=shape,
                spatial=spatial, alias=alias, args=args, kwargs=kwargs, cargs=cargs,
                ckwargs=ckwargs, valid=valid, threads=threads, x=as_view(x, view))


def _case_id(i):
    c = draw_case(i)
    name = f"{c['op']}{c['n']}d" if c["alias"] else c["op"]
    return (f"{i}-{name}-N{c['n']}-{c['layout']}-{c['dtype']}-{c['view']}-{c['kind']}-"
            f"{c['threads']}")


def describe(c):
    """A repro line: the numbapool call on an input described by its case."""
    name = f"{c['op']}{c['n']}d" if c["alias"] else c["op"]
    args = ", ".join(["x"] + [repr(a) for a in c["args"]] +
                     [f"{k}={v!r}" for k, v in c["kwargs"].items()])
    return (f"case {c['i']}: nbp.{name}({args}) with x of shape {c['shape']}, "
            f"{c['dtype']}, {c['view']} view, {c['kind']} values, {c['threads']} kernels")


# --------------------------------------------------------------------------- comparison


def _call(c):
    name = f"{c['op']}{c['n']}d" if c["alias"] else c["op"]
    return getattr(nbp, name)(c["x"], *c["args"], **c["kwargs"])


def _torch_input(c, x):
    """``x`` as torch is given it: widened where torch's own dtype would break the contract."""
    if c["op"] in ("lp_pool", "gem_pool"):  # float64 sums by contract
        return x.astype(np.float64)
    if x.dtype == np.float16 and c["n"] == 3 and c["op"] in ("avg_pool", "adaptive_avg_pool"):
        # float16 sums in float32 by contract: torch's avg_pool3d has no float16 kernel, and
        # its adaptive_avg_pool3d sums float16 in float16 (errors of many units in the last
        # place: a window of (1.0, 2.0, 0.001) averages to 1.001 instead of 1.0005)
        return x.astype(np.float32)
    return x


def _torch_or_reference(c, x, extra=None):
    """torch's result through the registry, or the oracle's where torch has no kernel."""
    kwargs = dict(c["ckwargs"], **(extra or {}))
    try:
        return COMPARISONS[c["op"]].torch(_torch_input(c, x), *c["cargs"], **kwargs), "torch"
    except NotImplementedError:  # no CPU kernel for the dtype, or an argument not covered
        return getattr(reference, c["op"])(x, *c["cargs"], **kwargs), "reference"


def _floor(op, dtype):
    """The value no element can beat in ``op`` (what torch starts a window's search from)."""
    if dtype.kind == "f":
        return np.inf if op == "min_pool" else -np.inf
    info = np.iinfo(dtype)
    return info.max if op == "min_pool" else info.min


def _positions(mask, limit=3):
    return [tuple(int(j) for j in p) for p in np.argwhere(mask)[:limit]]


def _describe_mismatch(label, mask, got, want):
    where = _positions(mask)
    pairs = [(got[p].item(), want[p].item()) for p in where]
    return f"{label}: {int(mask.sum())} of {mask.size}, e.g. at {where} got/want {pairs}"


def _check_extreme(c, got):
    indexed = c["op"] in INDEXED
    wants_indices = bool(c["kwargs"].get("return_indices"))
    if indexed:
        want, source = _torch_or_reference(c, c["x"], {"return_indices": True})
        want_v, want_i = want
    else:
        (want_v, source), want_i = _torch_or_reference(c, c["x"]), None
    got_v, got_i = got if wants_indices else (got, None)
    problems = []
    assert isinstance(got_v, np.ndarray)
    assert (got_v.shape, got_v.dtype) == (want_v.shape, want_v.dtype), \
        (got_v.shape, got_v.dtype, want_v.shape, want_v.dtype)
    is_float = want_v.dtype.kind == "f"
    nan = np.isnan(want_v) if is_float else np.zeros(want_v.shape, bool)
    same = (got_v == want_v) | (nan & np.isnan(got_v)) if is_float else got_v == want_v
    if not same.all():
        problems.append(_describe_mismatch(f"values differ from {source}", ~same, got_v,
                                           want_v))
    if is_float and c["op"] == "global_max_pool" and c["n"] > 3 and source == "torch":
        # the registry's amax picks a zero's sign in no set order: the contract's is the first
        ref_v = reference.global_max_pool(c["x"], *c["cargs"], **c["ckwargs"])
        want_v = np.where(want_v == 0, ref_v, want_v)
        source = "torch (reference for the sign of a zero)"
    if is_float:
        zero = same & (want_v == 0)
        sign = zero & (np.signbit(got_v) != np.signbit(want_v))
        if sign.any():
            problems.append(_describe_mismatch(
                f"sign of a zero differs from {source} (a tie between -0.0 and 0.0: the "
                "first in window order wins)", sign, np.signbit(got_v), np.signbit(want_v)))
    if wants_indices:
        assert (got_i.shape, got_i.dtype) == (want_i.shape, want_i.dtype)
        # the contract's index of a NaN window is its first NaN's (torch: its last NaN's);
        # torch's max_pool3d in channels-last gives a window of nothing but the floor value
        # (the dtype's lowest for max, -inf) the index of the element in the window's first
        # depth slice, whatever the window's depth: both from the oracle instead
        swap = nan.copy()
        if c["op"] in ("max_pool", "min_pool") and c["n"] == 3 and \
                c["layout"] == "channels_last":
            swap |= want_v == _floor(c["op"], want_v.dtype)
        if swap.any() and source == "torch":
            want_i = want_i.copy()
            _, ref_i = getattr(reference, c["op"])(c["x"], *c["cargs"],
                                                   **dict(c["ckwargs"], return_indices=True))
            want_i[swap] = ref_i[swap]
            source = "torch (reference for NaN and floor-value windows)"
        bad = got_i != want_i
        if bad.any():
            problems.append(_describe_mismatch(f"indices differ from {source}", bad, got_i,
                                               want_i))
    return problems


def _taps(c):
    """The largest number of elements any window of the case reads."""
    op, spatial, args = c["op"], c["spatial"], c["cargs"]
    if op in GLOBAL:
        return math.prod(spatial)
    if op.startswith("adaptive"):
        sizes = [L if o is None else o for L, o in zip(spatial, args[0])]
        return math.prod(-(-L // o) + 1 for L, o in zip(spatial, sizes))
    kernel = args[1] if op == "lp_pool" else args[0]
    return math.prod(kernel)


def _check_average(c, got):
    op, x = c["op"], c["x"]
    is_float = x.dtype.kind == "f"
    out_dtype = x.dtype if is_float else np.dtype(np.float64)
    want, source = _torch_or_reference(c, x)
    assert isinstance(got, np.ndarray)
    assert got.dtype == out_dtype, (got.dtype, out_dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    want = want.astype(np.float64)
    if op != "gem_pool":  # the same pool of |x|: the scale of a window's rounding errors
        mag = _torch_or_reference(c, np.abs(x.astype(np.float64)))[0].astype(np.float64)
    taps = _taps(c)
    eps_out = float(np.finfo(out_dtype).eps)
    sub_out = float(np.finfo(out_dtype).smallest_subnormal)
    eps64 = float(np.finfo(np.float64).eps)
    sub64 = float(np.finfo(np.float64).smallest_subnormal)
    problems = []
    with np.errstate(all="ignore"):
        if op == "lp_pool":
            p = c["cargs"][0]
            ref = reference.lp_pool(x, *c["cargs"], **c["ckwargs"]).astype(np.float64)
            negative = (ref == 0) & (want != 0)  # a negative sum of x**p: 0 by contract
            want = np.where(negative, 0.0, want)
            # torch sums as avg_pool(x**p) * taps: a subnormal mean loses up to half a unit
            delta = 4 * (taps + 1) * eps64 * mag ** p + taps * sub64
            near = np.maximum(want ** p - delta, np.finfo(np.float64).tiny)
            err = np.minimum(delta ** (1 / p), delta / (p * near ** (1 - 1 / p)))
        elif op == "gem_pool":
            err = 8 * (taps + 4) * eps64 * np.abs(want)
        else:
            eps_acc = eps64 if out_dtype == np.float64 else float(np.finfo(np.float32).eps)
            err = 2 * (taps + 1) * eps_acc * mag
        tol = err + 2 * eps_out * np.abs(want) + 2 * sub_out
        got64 = got.astype(np.float64)
        nan = np.isnan(want)
        if not np.array_equal(nan, np.isnan(got64)):
            problems.append(_describe_mismatch(f"NaN where {source} has none or vice versa",
                                               nan != np.isnan(got64), got64, want))
        inf = np.isinf(want) & ~nan
        bad_inf = inf & (got64 != want)
        if bad_inf.any():
            problems.append(_describe_mismatch(f"infinity differs from {source}", bad_inf,
                                               got64, want))
        finite = ~nan & ~inf
        off = finite & ~(np.abs(got64 - want) <= tol)
        if off.any():
            where = _positions(off)
            problems.append(_describe_mismatch(f"off {source} by more than the tolerance", off,
                                               got64, want) +
                            f", tolerance {[float(tol[p]) for p in where]}")
    return problems


@pytest.mark.parametrize("i", range(N_CASES), ids=_case_id)
def test_fuzz_against_torch(i, monkeypatch):
    c = draw_case(i)
    if c["threads"] == "parallel":  # the parallel kernels, on inputs of any size
        monkeypatch.setattr(parallel, "PARALLEL_MIN_ELEMENTS", 0)
    if not c["valid"]:  # torch would pool the padding; the contract refuses an empty window
        with pytest.raises(ValueError, match="holds no input element"):
            _call(c)
        return
    got = _call(c)
    problems = (_check_extreme if c["op"] in EXTREME else _check_average)(c, got)
    assert not problems, describe(c) + "\n" + "\n".join(problems)
