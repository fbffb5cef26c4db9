"""Accuracy of token pooling's sums over long float32 sequences: a million tokens.

The kernels sum in blocks (the accumulation rule in ``numbapool/_cpu/token_kernels.py``):
float32 partials over short blocks of tokens, added into float64 totals.  Each linear mode
is checked on one sequence of a million tokens (which the parallel path, given several
threads, splits and merges), on the same tokens as a batch of 8 sequences, and on one
thread, against the float64 sum of the same float32 data: its error must stay within a
fixed bound and be no larger than that of torch's float32 formulation of the mode
(:data:`numbapool.comparisons.COMPARISONS`).  The data are zero-mean, so that the sums
cancel and their rounding errors show.
"""

import numpy as np
import pytest

import numbapool as nbp
from numbapool.comparisons import COMPARISONS

LINEAR_MODES = ["mean", "sum", "mean_sqrt_len", "weighted_mean", "weighted", "attention"]
TOKENS = 10 ** 6
FEATURES = 16
#: Normwise relative error allowed against the float64 sum of the float32 data: a few
#: float32 roundings (the final rounding alone gives up to 6e-8), where a float32 running
#: sum over a million such tokens is off by about 1e-5.
BOUND = 3e-7

SHAPES = {"one_sequence": (1, TOKENS), "batch": (8, TOKENS // 8)}


def _rel(result, ref):
    """Normwise relative error of ``result`` against the float64 ``ref``."""
    return float(np.linalg.norm(result.astype(np.float64) - ref) / np.linalg.norm(ref))


@pytest.fixture(scope="module")
def tokens():
    rng = np.random.default_rng(20)
    hidden = rng.standard_normal((1, TOKENS, FEATURES), dtype=np.float32)
    weights = rng.random((1, TOKENS))
    scores = rng.standard_normal((1, TOKENS)) * 3
    return hidden, weights, scores


def _case(tokens, shape, mode):
    """``(hidden, kwargs, float64 reference)`` of ``mode``, the tokens cut to ``shape``."""
    hidden, weights, scores = tokens
    batch, length = SHAPES[shape]
    hidden = hidden.reshape(batch, length, FEATURES)
    kw = {"weights": weights.reshape(batch, length) if mode == "weighted" else None,
          "scores": scores.reshape(batch, length) if mode == "attention" else None}
    ref = COMPARISONS["pool_tokens"].numpy(hidden.astype(np.float64), None, mode, **kw)
    return hidden, kw, ref


@pytest.fixture
def serial(monkeypatch):
    from numbapool._cpu import parallel

    monkeypatch.setattr(parallel, "PARALLEL_MIN_ELEMENTS", 1 << 62)


@pytest.mark.parametrize("mode", LINEAR_MODES)
@pytest.mark.parametrize("shape", SHAPES)
def test_long_float32_sums_are_accurate(tokens, shape, mode):
    hidden, kw, ref = _case(tokens, shape, mode)
    ours = nbp.pool_tokens(hidden, None, mode, **kw)
    assert ours.dtype == np.float32
    err = _rel(ours, ref)
    assert err <= BOUND, f"{mode} {shape}: relative error {err:.3g}"
    pytest.importorskip("torch")
    err_torch = _rel(COMPARISONS["pool_tokens"].torch(hidden, None, mode, **kw), ref)
    assert err <= err_torch, f"{mode} {shape}: {err:.3g}, torch's {err_torch:.3g}"


@pytest.mark.parametrize("mode", ["sum", "weighted_mean", "attention"])
def test_long_float32_sums_on_one_thread(tokens, mode, serial):
    hidden, kw, ref = _case(tokens, "one_sequence", mode)
    err = _rel(nbp.pool_tokens(hidden, None, mode, **kw), ref)
    assert err <= BOUND, f"{mode}: relative error {err:.3g}"


def test_long_float32_sums_omitting_nans():
    """Under omit the per-feature sums of the coefficients are blocked as well."""
    rng = np.random.default_rng(21)
    length = TOKENS // 4
    hidden = rng.standard_normal((1, length, FEATURES), dtype=np.float32)
    hidden[rng.random(hidden.shape) < 0.01] = np.nan
    weights = rng.random((1, length))
    modes = ["mean", "weighted_mean", "weighted"]
    ours = nbp.pool_tokens(hidden, None, modes, weights=weights, nan_policy="omit")
    h = hidden[0].astype(np.float64)
    ok = ~np.isnan(h)
    x = np.where(ok, h, 0.0)
    pos = np.arange(1, length + 1, dtype=np.float64)[:, None]
    w = weights[0][:, None]
    refs = [x.sum(0) / ok.sum(0), (pos * x).sum(0) / (pos * ok).sum(0),
            (w * x).sum(0) / (w * ok).sum(0)]
    for k, (mode, ref) in enumerate(zip(modes, refs)):
        err = _rel(ours[0, k * FEATURES:(k + 1) * FEATURES], ref)
        assert err <= BOUND, f"{mode}: relative error {err:.3g}"
