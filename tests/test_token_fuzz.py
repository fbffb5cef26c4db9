"""Seeded fuzzing of pool_tokens' packed form, and of its weights and scores.

Each example builds adversarial input: lengths and offsets with zeros, one long sequence,
many empty ones, and, as attacks, huge values (int64, uint64 or beyond 64 bits) chosen so
that a sum or difference wraps around to a plausible value; weights of any finite
magnitude (tiny, huge, zeros, mixed); scores spanning the whole float64 range.  Valid input
must match the naive oracle of token_reference.py; invalid input must raise a ValueError
naming the parameter, and never crash the interpreter or return a result.

Hypothesis runs derandomised (the examples are the same on every run) with small D, so the
module takes seconds once the kernels are compiled.
"""

import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from numbapool.tokens import TOKEN_MODES, pool_tokens
from token_reference import pool_tokens_ref

FLOATS = (np.float16, np.float32, np.float64)


def _fuzz(max_examples):
    """Hypothesis settings of this module: derandomised, so every run sees the same examples."""
    return settings(derandomize=True, deadline=None, database=None, max_examples=max_examples,
                    suppress_health_check=[HealthCheck.too_slow])


#: Values that break index arithmetic: the int64 and uint64 limits, powers of two whose
#: sums wrap, and values past 64 bits.
HUGE = (2**31, 2**32 - 1, 2**62, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**70,
        -1, -(2**31), -(2**63), -(2**63) - 1)


def _tol(dtype):
    return {np.float16: 4e-3, np.float32: 2e-5, np.float64: 1e-12}[np.dtype(dtype).type]


# --------------------------------------------------------------------------- strategies


@st.composite
def _lengths(draw):
    """Valid packed lengths, in one of the shapes that stress the planner."""
    kind = draw(st.sampled_from(["mixed", "zeros", "one_long", "many_empty"]))
    if kind == "zeros":
        return [0] * draw(st.integers(0, 6))
    if kind == "one_long":
        lengths = draw(st.lists(st.integers(0, 3), max_size=5))
        at = draw(st.integers(0, len(lengths)))
        return lengths[:at] + [draw(st.integers(40, 300))] + lengths[at:]
    if kind == "many_empty":
        n = draw(st.integers(10, 60))
        return [draw(st.sampled_from([1, 2, 3])) if draw(st.integers(0, 9)) == 0 else 0
                for _ in range(n)]
    return draw(st.lists(st.integers(0, 12), max_size=8))


def _magnitudes(rng, kind, n):
    """Weights (kind from _WEIGHT_KINDS): all finite and >= 0."""
    if kind == "ones":
        return np.ones(n)
    if kind == "zeros":
        return np.zeros(n)
    if kind == "tiny":
        return rng.random(n) * 1e-300
    if kind == "subnormal":
        return rng.integers(0, 50, size=n) * 5e-324
    if kind == "huge":
        return rng.uniform(0.0, 1.7e308, size=n)
    if kind == "float32_edges":  # past float32's range, both ends
        return rng.choice([1e39, 1e-39, 1e-46, 3.4e38, 0.0], size=n)
    w = 10.0 ** rng.uniform(-320, 308, size=n)  # "mixed"
    w[rng.random(n) < 0.2] = 0.0
    return w


_WEIGHT_KINDS = ("ones", "zeros", "tiny", "subnormal", "huge", "float32_edges", "mixed")


def _scores(rng, kind, n):
    if kind == "normal":
        return rng.standard_normal(n) * 3
    if kind == "huge":
        return rng.uniform(-1.0, 1.0, size=n) * 1.7e308
    if kind == "equal_huge":
        return np.full(n, rng.choice([1.7e308, -1.7e308]))
    return rng.choice([-1.0, 1.0], size=n) * 10.0 ** rng.uniform(-320, 308, size=n)  # mixed


_SCORE_KINDS = ("normal", "huge", "equal_huge", "mixed")


def _effective_weights(w, lengths, acc_dtype):
    """The documented rule, written out per sequence: weights divided by the sequence's
    largest, and a quotient below the accumulator's smallest normal number counts as 0."""
    tiny = np.finfo(acc_dtype).tiny
    out = np.zeros_like(w)
    start = 0
    for n in lengths:
        seq = w[start:start + n]
        if n and seq.max() > 0:
            q = seq / seq.max()
            out[start:start + n] = np.where(q < tiny, 0.0, q)
        start += n
    return out


@contextlib.contextmanager
def _threshold(parallel_path):
    """Send even tiny inputs to the parallel kernel (long sequences split over threads)."""
    from numbapool._cpu import parallel

    saved = parallel.PARALLEL_MIN_ELEMENTS
    if parallel_path:
        parallel.PARALLEL_MIN_ELEMENTS = 0
    try:
        yield
    finally:
        parallel.PARALLEL_MIN_ELEMENTS = saved


def _check(ours, hidden, lengths, modes, w, s, policy):
    dtype = hidden.dtype
    acc = np.float64 if dtype == np.float64 else np.float32
    weff = None if w is None else _effective_weights(w, lengths, acc)
    with np.errstate(all="ignore"):
        ref = pool_tokens_ref(hidden, None, modes, weights=weff, scores=s, lengths=lengths,
                              nan_policy=policy)
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    tol = _tol(dtype)
    scale = max(lengths, default=0) + 1
    np.testing.assert_allclose(ours.astype(np.float64), ref.astype(np.float64), rtol=tol,
                               atol=tol * scale)


# --------------------------------------------------------------------------- valid input


@_fuzz(250)
@given(lengths=_lengths(), dim=st.integers(1, 4), dtype=st.sampled_from(FLOATS),
       modes=st.lists(st.sampled_from(TOKEN_MODES), min_size=1, max_size=4),
       policy=st.sampled_from(["propagate", "omit"]), nan_rate=st.sampled_from([0.0, 0.25]),
       weight_kind=st.sampled_from(_WEIGHT_KINDS), score_kind=st.sampled_from(_SCORE_KINDS),
       form=st.sampled_from(["lengths", "offsets", "padded"]), parallel_path=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_packed_fuzz_matches_reference(lengths, dim, dtype, modes, policy, nan_rate,
                                       weight_kind, score_kind, form, parallel_path, seed):
    rng = np.random.default_rng(seed)
    total = sum(lengths)
    hidden = rng.standard_normal((total, dim)).astype(dtype)
    hidden[rng.random(hidden.shape) < nan_rate] = np.nan
    w = _magnitudes(rng, weight_kind, total) if "weighted" in modes else None
    s = _scores(rng, score_kind, total) if "attention" in modes else None
    with _threshold(parallel_path):
        if form == "padded":  # the same tokens, right-padded with NaN junk
            width = max(lengths, default=0)
            padded = np.full((len(lengths), width, dim), np.nan, dtype)
            mask = np.arange(width)[None, :] < np.array(lengths, int).reshape(-1, 1)
            padded[mask] = hidden
            coef = {}
            for name, c in (("weights", w), ("scores", s)):
                if c is not None:
                    full = np.full(mask.shape, np.nan)  # padding entries are never read
                    full[mask] = c
                    coef[name] = full
            ours = pool_tokens(padded, mask, modes, nan_policy=policy, **coef)
        else:
            packed = dict(lengths=np.array(lengths, np.int64)) if form == "lengths" else \
                dict(offsets=np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]))
            ours = pool_tokens(hidden, None, modes, weights=w, scores=s, nan_policy=policy,
                               **packed)
    _check(ours, hidden, lengths, modes, w, s, policy)


@_fuzz(100)
@given(lengths=_lengths(), dtype=st.sampled_from(FLOATS),
       policy=st.sampled_from(["propagate", "omit"]),
       exponents=st.tuples(st.integers(-300, 300), st.integers(0, 300)),
       shift=st.integers(-700, 700), seed=st.integers(0, 2**32 - 1))
def test_weighted_depends_only_on_the_ratios_of_the_weights(lengths, dtype, policy,
                                                            exponents, shift, seed):
    """Scaling every weight by a power of two (exact in float64) changes no bit of the
    result, at any magnitude: the plan divides each sequence's weights by their largest."""
    rng = np.random.default_rng(seed)
    total = sum(lengths)
    hidden = rng.standard_normal((total, 3)).astype(dtype)
    hidden[rng.random(hidden.shape) < 0.2] = np.nan
    low, spread = exponents
    e = rng.integers(low, low + spread + 1, size=total)
    w = np.ldexp(rng.uniform(1.0, 2.0, size=total), e)
    w[rng.random(total) < 0.2] = 0.0
    # keep both sets of weights normal and finite, so that the scaling is exact
    shift = int(np.clip(shift, -1000 - low, 1000 - (low + spread)))
    kw = dict(lengths=lengths, mode=["weighted", "mean"], nan_policy=policy)
    ours = pool_tokens(hidden, weights=w, **kw)
    np.testing.assert_array_equal(pool_tokens(hidden, weights=np.ldexp(w, shift), **kw), ours)
    _check(ours, hidden, lengths, ["weighted", "mean"], w, None, policy)


# --------------------------------------------------------------------------- invalid input


def _container(values, how):
    """``values`` (Python ints) as a list or as an array of ``how``'s dtype, or None when
    that dtype cannot hold them."""
    if how == "list":
        return list(values)
    info = np.iinfo(how)
    if all(int(info.min) <= v <= int(info.max) for v in values):
        return np.array(values, how)
    return None


@st.composite
def _attacked_lengths(draw, total):
    """Lengths that may be invalid: a huge value, or huge values that wrap to ``total``."""
    base = draw(st.lists(st.integers(0, 5), max_size=5))
    attack = draw(st.sampled_from(["none", "huge", "wrap", "off_by_one"]))
    if attack == "none":
        base = base + [max(total - sum(base), 0)]
    elif attack == "huge":
        base.insert(draw(st.integers(0, len(base))), draw(st.sampled_from(HUGE)))
    elif attack == "wrap":  # huge entries whose sum is total modulo 2**64
        huge = draw(st.lists(st.sampled_from([v for v in HUGE if 0 < v < 2**64]),
                             min_size=1, max_size=4))
        base = base + huge
        base.append((total - sum(base)) % 2**64)
    else:
        base = base + [total - sum(base) + draw(st.sampled_from([-1, 1]))]
    return base


@st.composite
def _attacked_offsets(draw, total):
    lengths = draw(st.lists(st.integers(0, 5), max_size=5))
    offsets = [0] + list(np.cumsum(lengths).tolist()) + [total]
    attack = draw(st.sampled_from(["none", "huge", "wrap", "swap"]))
    inner = len(offsets) - 2
    if attack == "huge":
        at = draw(st.integers(0, len(offsets) - 1))
        offsets[at] = draw(st.sampled_from(HUGE))
    elif attack == "wrap":  # a huge step then a negative one: differences wrap around
        offsets[1:1] = [2**63 - 1, -draw(st.integers(1, 5))]
    elif attack == "swap" and inner >= 1:
        offsets[1], offsets[-1] = offsets[-1], offsets[1]
    return offsets


def _valid_lengths(values, total):
    return all(0 <= v <= total for v in values) and sum(values) == total


def _valid_offsets(values, total):
    return (len(values) >= 1 and values[0] == 0 and values[-1] == total
            and all(0 <= v <= total for v in values)
            and all(a <= b for a, b in zip(values, values[1:])))


@_fuzz(400)
@given(data=st.data(), total=st.sampled_from([0, 1, 7, 10]),
       param=st.sampled_from(["lengths", "offsets"]),
       how=st.sampled_from(["list", "int64", "uint64", "int32", "uint8"]),
       modes=st.lists(st.sampled_from(TOKEN_MODES), min_size=1, max_size=3),
       dtype=st.sampled_from(FLOATS), seed=st.integers(0, 2**32 - 1))
def test_adversarial_lengths_and_offsets_are_rejected_or_pooled(data, total, param, how,
                                                                modes, dtype, seed):
    """Valid lengths/offsets pool like the reference; any other value, however it wraps,
    is a ValueError that names the parameter (a wrapped sum used to reach the kernels)."""
    draw = _attacked_lengths if param == "lengths" else _attacked_offsets
    values = data.draw(draw(total))
    arg = _container(values, how)
    if arg is None:
        arg = _container(values, "list")
    rng = np.random.default_rng(seed)
    hidden = rng.standard_normal((total, 2)).astype(dtype)
    w = rng.random(total) if "weighted" in modes else None
    s = rng.standard_normal(total) if "attention" in modes else None
    valid = (_valid_lengths if param == "lengths" else _valid_offsets)(values, total)
    event("valid" if valid else "invalid")
    if not valid:
        with pytest.raises(ValueError, match=param):
            pool_tokens(hidden, None, modes, weights=w, scores=s, **{param: arg})
        return
    ours = pool_tokens(hidden, None, modes, weights=w, scores=s, **{param: arg})
    lengths = values if param == "lengths" else list(np.diff(values).tolist())
    _check(ours, hidden, lengths, modes, w, s, "propagate")
