"""Token pooling against the naive oracle in token_reference.py, plus the API contract.

Shapes are small so that the whole module runs in seconds once the kernels are compiled;
the ``force_parallel`` fixture sends small inputs through the parallel kernel (and the
splitting of long sequences across threads) by lowering the serial/parallel threshold.
"""

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import numbapool as nbp
from numbapool.tokens import TOKEN_MODES, pool_tokens
from token_reference import pool_tokens_ref

FLOATS = (np.float16, np.float32, np.float64)


def _tol(dtype):
    return {np.float16: 4e-3, np.float32: 2e-5, np.float64: 1e-12}[np.dtype(dtype).type]


def _close(ours, ref, dtype, scale=1.0):
    """Results agree to the dtype's accuracy (NaN and inf in the same places)."""
    tol = _tol(dtype)
    np.testing.assert_allclose(ours.astype(np.float64), ref.astype(np.float64), rtol=tol,
                               atol=tol * scale)


def _mask(rng, batch, length, kind):
    """(B, L) masks: right or left padding, holes, or all tokens; some rows empty."""
    n = rng.integers(0, length + 1, size=batch)
    pos = np.arange(length)[None, :]
    if kind == "right":
        return pos < n[:, None]
    if kind == "left":
        return pos >= (length - n)[:, None]
    if kind == "holes":
        return rng.random((batch, length)) < 0.6
    return np.ones((batch, length), bool)


def _inputs(rng, batch, length, dim, dtype, kind="right"):
    hidden = rng.standard_normal((batch, length, dim)).astype(dtype)
    mask = _mask(rng, batch, length, kind)
    weights = rng.random((batch, length)) * 2
    scores = rng.standard_normal((batch, length)) * 3
    return hidden, mask, weights, scores


def _kw(modes, weights, scores):
    modes = [modes] if isinstance(modes, str) else modes
    return dict(weights=weights if "weighted" in modes else None,
                scores=scores if "attention" in modes else None)


def _packed(hidden, mask, weights=None, scores=None):
    """The padded batch's tokens without padding: (tokens, lengths, weights, scores)."""
    m = mask.astype(bool)
    return (hidden[m], m.sum(axis=1),
            None if weights is None else weights[m], None if scores is None else scores[m])


@pytest.fixture
def force_parallel(monkeypatch):
    """Run even tiny inputs on the parallel kernel (and split long sequences)."""
    import numba

    from numbapool._cpu import parallel

    if numba.get_num_threads() < 2:
        pytest.skip("needs at least two Numba threads")
    monkeypatch.setattr(parallel, "PARALLEL_MIN_ELEMENTS", 0)


# --------------------------------------------------------------------------- every mode


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["right", "left", "holes", "none"])
def test_every_mode_matches_reference(dtype, kind):
    rng = np.random.default_rng(1)
    hidden, mask, weights, scores = _inputs(rng, 5, 9, 19, dtype, kind)
    mask = None if kind == "none" else mask
    for mode in TOKEN_MODES:
        kw = _kw(mode, weights, scores)
        ours = pool_tokens(hidden, mask, mode, **kw)
        assert ours.dtype == dtype and ours.shape == (5, 19)
        _close(ours, pool_tokens_ref(hidden, mask, mode, **kw), dtype, scale=10)



@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
def test_all_modes_in_one_call_concatenate_in_order(dtype):
    rng = np.random.default_rng(2)
    hidden, mask, weights, scores = _inputs(rng, 4, 7, 5, dtype, "holes")
    modes = ["max", "cls", "attention", "mean", "last", "min", "weighted", "sum",
             "weighted_mean", "mean_sqrt_len", "mean"]
    ours = pool_tokens(hidden, mask, modes, weights=weights, scores=scores)
    assert ours.shape == (4, 5 * len(modes))
    for k, mode in enumerate(modes):
        alone = pool_tokens(hidden, mask, mode, **_kw(mode, weights, scores))
        np.testing.assert_array_equal(ours[:, 5 * k:5 * (k + 1)], alone)
    _close(ours, pool_tokens_ref(hidden, mask, modes, weights=weights, scores=scores), dtype,
           scale=10)


def test_tuple_and_single_element_list_modes():
    h = np.random.default_rng(3).standard_normal((2, 4, 3))
    np.testing.assert_array_equal(pool_tokens(h, None, ("mean",)), pool_tokens(h))
    np.testing.assert_array_equal(pool_tokens(h, None, ["cls", "cls"])[:, 3:], h[:, 0])


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
def test_parallel_kernel_and_split_sequences(dtype, force_parallel):
    """Few long sequences are split across threads; the merge gives the reference result."""
    rng = np.random.default_rng(4)
    hidden, mask, weights, scores = _inputs(rng, 3, 300, 24, dtype, "holes")
    mask[0] = True  # one long sequence: several pieces
    modes = list(TOKEN_MODES)
    for policy in ("propagate", "omit"):
        h = hidden.copy()
        h[0, 7, 3] = h[1, 250, 5] = np.nan
        ours = pool_tokens(h, mask, modes, weights=weights, scores=scores, nan_policy=policy)
        ref = pool_tokens_ref(h, mask, modes, weights=weights, scores=scores,
                              nan_policy=policy)
        _close(ours, ref, dtype, scale=300)


def test_parallel_equals_serial(monkeypatch):
    from numbapool._cpu import parallel

    rng = np.random.default_rng(5)
    hidden, mask, weights, scores = _inputs(rng, 2, 400, 16, np.float64, "right")
    mask[:, :50] = True
    modes = ["cls", "last", "max", "min", "mean"]
    monkeypatch.setattr(parallel, "PARALLEL_MIN_ELEMENTS", 1 << 62)
    serial = pool_tokens(hidden, mask, modes)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_ELEMENTS", 0)
    par = pool_tokens(hidden, mask, modes)
    # extremes and selections are exact; sums differ only by the split's rounding
    np.testing.assert_array_equal(par[:, :64], serial[:, :64])
    np.testing.assert_allclose(par, serial, rtol=1e-12)


# --------------------------------------------------------------------------- properties


_MODE_LISTS = st.lists(st.sampled_from(TOKEN_MODES), min_size=1, max_size=3)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.integers(0, 4), length=st.integers(0, 9), dim=st.integers(1, 20),
       kind=st.sampled_from(["right", "left", "holes", "none"]),
       dtype=st.sampled_from(FLOATS), modes=_MODE_LISTS,
       policy=st.sampled_from(["propagate", "omit"]), nan_rate=st.sampled_from([0.0, 0.2]),
       seed=st.integers(0, 2**31))
def test_random_batches_match_reference_and_packed_form(batch, length, dim, kind, dtype, modes,
                                                        policy, nan_rate, seed):
    rng = np.random.default_rng(seed)
    hidden, mask, weights, scores = _inputs(rng, batch, length, dim, dtype, kind)
    hidden[rng.random(hidden.shape) < nan_rate] = np.nan
    kw = _kw(modes, weights, scores)
    m = None if kind == "none" else mask
    ours = pool_tokens(hidden, m, modes, nan_policy=policy, **kw)
    assert ours.shape == (batch, dim * len(modes)) and ours.dtype == dtype
    ref = pool_tokens_ref(hidden, m, modes, nan_policy=policy, **kw)
    _close(ours, ref, dtype, scale=length + 1)
    # the packed form of the same tokens gives the same bits, except after a mask with
    # holes: its tokens are folded one at a time, a packed run as four streams, so sums may
    # round differently in the last place
    tokens, lengths, w, s = _packed(hidden, mask if m is not None else np.ones_like(mask),
                                    kw["weights"], kw["scores"])
    packed = pool_tokens(tokens, None, modes, lengths=lengths, weights=w, scores=s,
                         nan_policy=policy)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    by_offsets = pool_tokens(tokens, mode=modes, offsets=offsets, weights=w, scores=s,
                             nan_policy=policy)
    np.testing.assert_array_equal(by_offsets, packed)
    if kind == "holes":
        _close(packed, ours, dtype, scale=length + 1)
    else:
        np.testing.assert_array_equal(packed, ours)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 4), length=st.integers(1, 8), dim=st.integers(1, 9),
       seed=st.integers(0, 2**31))
def test_left_and_right_padding_agree(batch, length, dim, seed):
    """The same tokens padded on either side pool to the same result, in every mode."""
    rng = np.random.default_rng(seed)
    n = rng.integers(0, length + 1, size=batch)
    right = np.zeros((batch, length, dim))
    left = np.full((batch, length, dim), 99.0)  # padding values must never leak in
    mask_r = np.zeros((batch, length), bool)
    mask_l = np.zeros((batch, length), bool)
    for b in range(batch):
        tok = rng.standard_normal((n[b], dim))
        right[b, :n[b]] = tok
        left[b, length - n[b]:] = tok
        mask_r[b, :n[b]] = True
        mask_l[b, length - n[b]:] = True
    modes = [m for m in TOKEN_MODES if m not in ("weighted", "attention")]
    np.testing.assert_array_equal(pool_tokens(left, mask_l, modes),
                                  pool_tokens(right, mask_r, modes))


# --------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("view", ["reversed_seq", "every_other_seq", "seq_first", "fortran",
                                  "strided_features", "reversed_features", "readonly",
                                  "broadcast"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32], ids=lambda d: np.dtype(d).name)
def test_views_give_the_same_result_as_a_contiguous_copy(view, dtype):
    rng = np.random.default_rng(6)
    base = rng.standard_normal((6, 10, 12)).astype(dtype)
    if view == "reversed_seq":
        h = base[::-1, ::-1]
    elif view == "every_other_seq":
        h = base[::2, ::2]
    elif view == "seq_first":  # (L, B, D) memory seen as (B, L, D)
        h = np.ascontiguousarray(base.transpose(1, 0, 2)).transpose(1, 0, 2)
    elif view == "fortran":
        h = np.asfortranarray(base)
    elif view == "strided_features":
        h = base[:, :, ::2]
    elif view == "reversed_features":
        h = base[:, :, ::-1]
    elif view == "readonly":
        h = base.copy()
        h.flags.writeable = False
    else:
        h = np.broadcast_to(base[:1], base.shape)
    mask = _mask(rng, h.shape[0], h.shape[1], "holes")
    modes = ["cls", "last", "mean", "max", "weighted_mean"]
    np.testing.assert_array_equal(pool_tokens(h, mask, modes),
                                  pool_tokens(np.ascontiguousarray(h), mask, modes))
    # packed views: every other row, reversed rows
    lengths = [3, 0, 2]
    for rows in (base[0, ::2], base[1, ::-1]):
        t = rows[:5]
        np.testing.assert_array_equal(pool_tokens(t, None, modes, lengths=lengths),
                                      pool_tokens(np.ascontiguousarray(t), None, modes,
                                                  lengths=lengths))


def test_mask_dtypes_and_nonzero_values():
    rng = np.random.default_rng(7)
    h = rng.standard_normal((3, 5, 4))
    mask = _mask(rng, 3, 5, "holes")
    expected = pool_tokens(h, mask, ["mean", "last"])
    for m in (mask.astype(np.int64), mask.astype(np.uint8) * 7, mask * -2.5,
              mask.astype(np.float32), mask.tolist()):
        np.testing.assert_array_equal(pool_tokens(h, m, ["mean", "last"]), expected)


def test_auxiliary_arrays_may_be_lists_and_torch_tensors():
    torch = pytest.importorskip("torch")
    h = np.arange(24, dtype=np.float32).reshape(6, 4)
    expected = pool_tokens(h, lengths=np.array([2, 4]))
    np.testing.assert_array_equal(pool_tokens(h, lengths=[2, 4]), expected)
    np.testing.assert_array_equal(pool_tokens(h, lengths=torch.tensor([2, 4])), expected)
    hp = h.reshape(2, 3, 4)
    np.testing.assert_array_equal(pool_tokens(hp, torch.tensor([[1, 1, 0], [1, 1, 1]])),
                                  pool_tokens(hp, [[1, 1, 0], [1, 1, 1]]))


# --------------------------------------------------------------------------- out=


def test_out_is_filled_and_returned():
    rng = np.random.default_rng(8)
    h, mask, _, _ = _inputs(rng, 3, 4, 5, np.float32)
    out = np.full((3, 10), np.nan, np.float32)
    res = pool_tokens(h, mask, ["mean", "max"], out=out)
    assert res is out
    np.testing.assert_array_equal(out, pool_tokens(h, mask, ["mean", "max"]))


def test_out_may_be_a_strided_view():
    rng = np.random.default_rng(9)
    h, mask, _, _ = _inputs(rng, 3, 4, 5, np.float64)
    big = np.zeros((3, 20))
    view = big[:, ::2]
    assert pool_tokens(h, mask, ["cls", "min"], out=view) is view
    np.testing.assert_array_equal(view, pool_tokens(h, mask, ["cls", "min"]))
    assert not big[:, 1::2].any()


def test_out_float16_and_empty_batch():
    h = np.ones((0, 3, 4), np.float16)
    out = np.empty((0, 8), np.float16)
    assert pool_tokens(h, None, ["mean", "max"], out=out) is out


# --------------------------------------------------------------------------- edge cases


def test_sequences_without_tokens_give_zeros_in_every_mode():
    rng = np.random.default_rng(10)
    h = rng.standard_normal((3, 4, 2))
    h[1] = np.nan  # not tokens: must not leak in
    mask = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 1]])
    w = np.ones((3, 4))
    res = pool_tokens(h, mask, list(TOKEN_MODES), weights=w, scores=w)
    assert not res[1].any()
    assert np.isfinite(res).all()
    packed = pool_tokens(rng.standard_normal((3, 2)), lengths=[0, 3, 0], mode=list(TOKEN_MODES),
                         weights=np.ones(3), scores=np.ones(3))
    assert not packed[0].any() and not packed[2].any()


@pytest.mark.parametrize("shape,lengths,expected", [
    ((2, 0, 3), None, (2, 6)),       # L == 0: every sequence empty
    ((0, 5, 3), None, (0, 6)),       # B == 0
    ((2, 5, 0), None, (2, 0)),       # D == 0
    ((0, 3), [0, 0], (2, 6)),        # packed, T == 0
    ((0, 3), [], (0, 6)),            # packed, B == 0
])
def test_zero_size_inputs(shape, lengths, expected):
    h = np.ones(shape, np.float32)
    res = pool_tokens(h, None, ["mean", "max"], lengths=lengths)
    assert res.shape == expected and res.dtype == np.float32
    assert not res.any()


def test_nan_propagates_through_every_mode():
    for pos in (0, 2, 4):  # the first, a middle and the last token
        h = np.arange(15, dtype=np.float64).reshape(1, 5, 3)
        h[0, pos, 1] = np.nan
        w = np.ones((1, 5))
        modes = [m for m in TOKEN_MODES if m not in ("cls", "last")]
        res = pool_tokens(h, None, modes, weights=w, scores=w).reshape(len(modes), 3)
        assert np.isnan(res[:, 1]).all(), (pos, res)
        assert np.isfinite(res[:, [0, 2]]).all()


def test_nan_omit_ignores_nans_and_all_nan_gives_nan():
    h = np.array([[[1.0, np.nan], [np.nan, np.nan], [3.0, np.nan], [8.0, np.nan]]])
    mask = np.array([[1, 1, 1, 0]])
    res = pool_tokens(h, mask, ["mean", "sum", "max", "min", "mean_sqrt_len", "cls", "last"],
                      nan_policy="omit").reshape(-1, 2)
    np.testing.assert_allclose(res[:, 0], [2.0, 4.0, 3.0, 1.0, 4 / np.sqrt(2), 1.0, 3.0])
    assert np.isnan(res[:5, 1]).all()
    # weighted modes renormalise over the non-NaN tokens
    w = np.array([[1.0, 5.0, 3.0, 9.0]])
    res = pool_tokens(h, mask, ["weighted", "weighted_mean", "attention"], weights=w,
                      scores=np.zeros((1, 4)), nan_policy="omit").reshape(-1, 2)
    np.testing.assert_allclose(res[:, 0], [(1 + 9) / 4, (1 + 9) / 4, 2.0])


def _same_bits(ours, ref):
    """Equal values, NaN in the same places, and the same sign on every zero."""
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_array_equal(np.signbit(ours), np.signbit(ref))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("kind", ["right", "holes"])
@pytest.mark.parametrize("policy", ["propagate", "omit"])
def test_max_and_min_order_signed_zeros_and_nans_as_ieee(dtype, kind, policy, force_parallel):
    """Max/min follow IEEE 754-2019 (-0 < +0; NaN as nan_policy says) on every path: runs
    read as streams with plain compares (and redone when unsure), short runs, holes,
    packed input and sequences split across threads (force_parallel)."""
    rng = np.random.default_rng(5)
    batch, length, dim = 6, 45, 7
    # mostly zeros of both signs, a few +-1 and NaNs, so that ties, zero extremes and NaNs
    # land in streams, tails and split pieces
    h = rng.choice([0.0, -0.0, 1.0, -1.0, np.nan], p=[0.4, 0.4, 0.07, 0.07, 0.06],
                   size=(batch, length, dim)).astype(dtype)
    h[0] = np.where(np.isnan(h[0]), 0.0, h[0])  # one batch row without NaNs
    mask = _mask(rng, batch, length, kind)
    modes = ["max", "min", "mean"]  # with the mean: the loop that sums and compares
    ref = pool_tokens_ref(h, mask, modes, nan_policy=policy)
    tokens, lengths, _, _ = _packed(h, mask)
    for res in (pool_tokens(h, mask, modes, nan_policy=policy),
                pool_tokens(tokens, lengths=lengths, mode=modes, nan_policy=policy)):
        _same_bits(res[:, :2 * dim], ref[:, :2 * dim])
        _close(res[:, 2 * dim:], ref[:, 2 * dim:], dtype)
    _same_bits(pool_tokens(h, mask, "max", nan_policy=policy), ref[:, :dim])
    _same_bits(pool_tokens(h, mask, ["min"], nan_policy=policy), ref[:, dim:2 * dim])
    _same_bits(pool_tokens(h, mask, ["min", "max"], nan_policy=policy),
               np.concatenate([ref[:, dim:2 * dim], ref[:, :dim]], axis=1))


def test_ieee_extremes_agree_with_the_shared_rule():
    """The CPU's IEEE max/min (LLVM intrinsics) and _arith.ieee_take (the CUDA kernel's
    rule) pick the same value for every pair of special values."""
    from numbapool import _arith
    from numbapool._cpu import ieee

    values = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan]
    ops = [(ieee.maximum, False, False), (ieee.minimum, True, False),
           (ieee.maximum_number, False, True), (ieee.minimum_number, True, True)]
    for op, is_min, omit in ops:
        for dtype in (np.float32, np.float64):
            for a in values:
                for b in values:
                    got = op(dtype(a), dtype(b))
                    rule = b if _arith.ieee_take(a, b, is_min, omit) else a
                    _same_bits(np.array(got), np.array(rule, dtype))
                    ref = _ref_extreme(np.array([[a], [b]]), is_min, omit)
                    _same_bits(np.array(got, np.float64), ref)


def _ref_extreme(x, is_min, omit):
    from token_reference import _extreme

    return _extreme(x, is_min, omit)[0]


def test_float16_accumulates_in_float32():
    h = np.full((1, 4, 2), 60000, np.float16)  # their float16 sum would overflow
    np.testing.assert_array_equal(pool_tokens(h), np.full((1, 2), 60000, np.float16))
    assert np.isinf(pool_tokens(h, mode="sum")).all()  # the result itself is float16
    tiny = np.full((1, 1000, 1), 2 ** -14, np.float16)
    np.testing.assert_array_equal(pool_tokens(tiny, mode="mean"), tiny[:, 0])


def test_weights_and_scores_semantics():
    rng = np.random.default_rng(11)
    h, mask, _, scores = _inputs(rng, 3, 6, 4, np.float64, "holes")
    mean = pool_tokens(h, mask)
    np.testing.assert_allclose(pool_tokens(h, mask, "weighted", weights=np.ones((3, 6))), mean)
    np.testing.assert_allclose(pool_tokens(h, mask, "attention", scores=np.zeros((3, 6))), mean)
    # softmax is shift-invariant and stable for huge scores
    np.testing.assert_allclose(pool_tokens(h, mask, "attention", scores=scores + 1e6),
                               pool_tokens(h, mask, "attention", scores=scores), rtol=1e-9)
    # a zero total weight gives zeros; padding may hold anything (even NaN)
    w = np.zeros((3, 6))
    w[~mask] = np.nan
    assert not pool_tokens(h, mask, "weighted", weights=w).any()
    s = scores.copy()
    s[~mask] = -np.inf
    np.testing.assert_array_equal(pool_tokens(h, mask, "attention", scores=s),
                                  pool_tokens(h, mask, "attention", scores=scores))


def test_torch_masked_formulations_agree():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    h, mask, _, _ = _inputs(rng, 6, 11, 32, np.float32)
    mask[:, 0] = True
    ht, mt = torch.from_numpy(h), torch.from_numpy(mask)
    mf = mt.unsqueeze(-1).to(ht.dtype)
    mean = (ht * mf).sum(1) / mf.sum(1).clamp(min=1)
    mx = ht.masked_fill(~mt.unsqueeze(-1), float("-inf")).amax(1)
    res = pool_tokens(h, mask, ["mean", "max"])
    np.testing.assert_allclose(res[:, :32], mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(res[:, 32:], mx.numpy())


def test_concurrent_calls(force_parallel):
    rng = np.random.default_rng(13)
    h, mask, _, _ = _inputs(rng, 4, 200, 32, np.float32)
    expected = pool_tokens(h, mask, ["mean", "max"])
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                results.append(pool_tokens(h, mask, ["mean", "max"]))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for r in results:
        np.testing.assert_array_equal(r, expected)


# --------------------------------------------------------------------------- errors


_H3 = np.zeros((2, 3, 4), np.float32)
_H2 = np.zeros((5, 4), np.float32)
_M = np.ones((2, 3), bool)

ERRORS = [
    (lambda: pool_tokens(_H3.astype(np.int32)), TypeError, "hidden has dtype int32"),
    (lambda: pool_tokens(_H3.astype(bool)), TypeError, "float16, float32, float64"),
    (lambda: pool_tokens(_H3.tolist()), TypeError, "hidden must be a NumPy ndarray"),
    (lambda: pool_tokens(np.zeros(4, np.float32)), ValueError, "(B, L, D) or packed (T, D)"),
    (lambda: pool_tokens(np.zeros((1, 2, 3, 4))), ValueError, "got shape (1, 2, 3, 4)"),
    (lambda: pool_tokens(_H3, np.ones((2, 4))), ValueError, "attention_mask has shape (2, 4)"),
    (lambda: pool_tokens(_H3, np.ones(3)), ValueError, "attention_mask has shape (3,)"),
    (lambda: pool_tokens(_H3, np.array([["a"] * 3] * 2)), TypeError, "attention_mask must be"),
    (lambda: pool_tokens(_H3, _M, "median"), ValueError, "mode 'median' is unknown"),
    (lambda: pool_tokens(_H3, _M, []), ValueError, "mode must not be an empty sequence"),
    (lambda: pool_tokens(_H3, _M, ["mean", 3]), TypeError, "mode entries must be strings"),
    (lambda: pool_tokens(_H3, _M, 3), TypeError, "mode must be a mode name"),
    (lambda: pool_tokens(_H3, _M, "weighted"), ValueError, "mode 'weighted' needs weights="),
    (lambda: pool_tokens(_H3, _M, "attention"), ValueError, "mode 'attention' needs scores="),
    (lambda: pool_tokens(_H3, _M, "mean", weights=np.ones((2, 3))), ValueError,
     "weights is only used by mode 'weighted'"),
    (lambda: pool_tokens(_H3, _M, "mean", scores=np.ones((2, 3))), ValueError,
     "scores is only used by mode 'attention'"),
    (lambda: pool_tokens(_H3, _M, "weighted", weights=np.ones((2, 2))), ValueError,
     "weights has shape (2, 2)"),
    (lambda: pool_tokens(_H3, _M, "weighted", weights=-np.ones((2, 3))), ValueError,
     "weights must be >= 0"),
    (lambda: pool_tokens(_H3, _M, "weighted", weights=np.full((2, 3), np.inf)), ValueError,
     "weights must be finite"),
    (lambda: pool_tokens(_H3, _M, "attention", scores=np.full((2, 3), np.nan)), ValueError,
     "scores must be finite"),
    (lambda: pool_tokens(_H3, _M, "weighted", weights=np.full((2, 3), "x")), TypeError,
     "weights must be"),
    (lambda: pool_tokens(_H3, _M, nan_policy="ignore"), ValueError, "nan_policy must be one of"),
    (lambda: pool_tokens(_H3, lengths=[1, 2]), ValueError, "lengths is for packed"),
    (lambda: pool_tokens(_H3, offsets=[0, 1, 2]), ValueError, "offsets is for packed"),
    (lambda: pool_tokens(_H2), ValueError, "pass lengths (B,) or offsets (B+1,)"),
    (lambda: pool_tokens(_H2, np.ones((5,))), ValueError, "attention_mask is for padded"),
    (lambda: pool_tokens(_H2, lengths=[2, 3], offsets=[0, 2, 5]), ValueError,
     "either lengths or offsets"),
    (lambda: pool_tokens(_H2, lengths=[2, 2]), ValueError, "lengths add up to 4"),
    (lambda: pool_tokens(_H2, lengths=[6, -1]), ValueError, "lengths must be >= 0"),
    (lambda: pool_tokens(_H2, lengths=[[2, 3]]), ValueError, "lengths must be 1-D"),
    (lambda: pool_tokens(_H2, lengths=[2.0, 3.0]), TypeError, "lengths must be an integer"),
    (lambda: pool_tokens(_H2, lengths=[True, False]), TypeError, "lengths must be an integer"),
    (lambda: pool_tokens(_H2, offsets=[0, 3, 2, 5]), ValueError, "offsets must be non-decreasing"),
    (lambda: pool_tokens(_H2, offsets=[1, 5]), ValueError, "offsets must start at 0"),
    (lambda: pool_tokens(_H2, offsets=[0, 4]), ValueError, "end at the number of token rows (5)"),
    (lambda: pool_tokens(_H2, offsets=[]), ValueError, "offsets must be 1-D (B+1,)"),
    (lambda: pool_tokens(_H2, lengths=[6, 0]), ValueError,
     "lengths[0]=6 exceeds the number of token rows of hidden (5)"),
    (lambda: pool_tokens(_H2, lengths=[5, 2**70]), ValueError,
     "lengths[1]=1180591620717411303424 is too large for a 64-bit integer"),
    (lambda: pool_tokens(_H2, lengths=[2**63, -1]), ValueError,
     "lengths must be >= 0; got lengths[1]=-1"),
    (lambda: pool_tokens(_H2, offsets=[0, -2**70, 5]), ValueError,
     "offsets must be >= 0; got offsets[1]=-1180591620717411303424"),
    (lambda: pool_tokens(_H2, offsets=[0, -2, 5]), ValueError,
     "offsets must be >= 0; got offsets[1]=-2"),
    (lambda: pool_tokens(_H2, offsets=np.array([0, 2**64 - 1, 5], np.uint64)), ValueError,
     "offsets[1]=18446744073709551615 exceeds the number of token rows"),
    (lambda: pool_tokens(_H2, offsets=[[0, 5]]), ValueError, "offsets must be 1-D (B+1,)"),
    (lambda: pool_tokens(_H2, lengths=[[1, 2], [3]]), TypeError, "lengths must be array-like"),
    (lambda: pool_tokens(np.ma.masked_array(_H3)), TypeError,
     "hidden is a numpy.ma.MaskedArray"),
    (lambda: pool_tokens(_H3, np.ma.masked_array(_M, mask=~_M)), TypeError,
     "attention_mask is a numpy.ma.MaskedArray"),
    (lambda: pool_tokens(_H3, _M, "weighted", weights=np.ma.masked_array(np.ones((2, 3)))),
     TypeError, "weights is a numpy.ma.MaskedArray"),
    (lambda: pool_tokens(_H2, lengths=np.ma.masked_array([2, 3])), TypeError,
     "lengths is a numpy.ma.MaskedArray"),
    (lambda: pool_tokens(_H2, lengths=[5], mode="weighted", weights=np.ones((5, 1))), ValueError,
     "weights has shape (5, 1)"),
    (lambda: pool_tokens(_H3, out=np.zeros((2, 5), np.float32)), ValueError,
     "out has shape (2, 5)"),
    (lambda: pool_tokens(_H3, out=np.zeros((2, 4), np.float64)), TypeError,
     "out has dtype float64"),
    (lambda: pool_tokens(_H3, out=[[0.0] * 4] * 2), TypeError, "out must be a NumPy ndarray"),
    (lambda: pool_tokens(_H3, device="tpu"), ValueError, "device must be"),
]


@pytest.mark.parametrize("call,exc,fragment", ERRORS, ids=[e[2][:40] for e in ERRORS])
def test_errors(call, exc, fragment):
    with pytest.raises(exc) as info:
        call()
    assert fragment in str(info.value)


def test_out_overlapping_the_input_is_rejected_and_left_untouched():
    h = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="overlaps"):
        pool_tokens(h, out=h[:, 0, :])
    out = np.full((2, 4), 7.0, np.float32)
    with pytest.raises(ValueError):
        pool_tokens(h, np.ones((2, 2)), out=out)
    assert (out == 7).all()
    ro = np.zeros((2, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        pool_tokens(h, out=ro)


def test_float16_decoding_is_exact_for_every_value():
    h = np.arange(1 << 16, dtype=np.uint16).view(np.float16).reshape(1024, 1, 64)
    nan = np.isnan(h[:, 0])
    for mode in ("max", "mean", "last"):
        res = pool_tokens(h, None, mode)
        assert np.isnan(res[nan]).all()
        if mode == "mean":  # a sum starts from +0, so -0 comes back as +0
            np.testing.assert_array_equal(res[~nan], h[:, 0][~nan])
        else:
            np.testing.assert_array_equal(res[~nan].view(np.uint16),
                                          h[:, 0][~nan].view(np.uint16))


def test_hidden_must_be_numpy_or_cuda():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"hidden is a CPU torch.Tensor; pass hidden.numpy\(\)"):
        pool_tokens(torch.zeros(2, 3, 4))
    # .numpy() refuses a tensor that requires grad: the hint detaches it first
    t = torch.ones(2, 3, 4, requires_grad=True)
    with pytest.raises(TypeError, match=r"pass hidden.detach\(\).numpy\(\)") as info:
        pool_tokens(t)
    assert "x." not in str(info.value)
    np.testing.assert_array_equal(pool_tokens(t.detach().numpy()), np.ones((2, 4), np.float32))
    for device in ("cpu", "cuda"):
        with pytest.raises(TypeError, match="hidden is a CPU torch.Tensor"):
            pool_tokens(t, device=device)


def test_device_cuda_without_a_gpu_raises():
    if nbp.cuda_available():
        pytest.skip("CUDA is available here (tests/test_cuda_sim.py covers it)")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        pool_tokens(np.zeros((2, 3, 4), np.float32), device="cuda")


# --------------------------------------------------------------------------- adversarial input


def _crash_free(code):
    """Run ``code`` in a fresh interpreter: ``(returncode, stderr)`` (a crash is a signal)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600)
    return proc.returncode, proc.stderr


def test_lengths_that_wrap_around_int64_are_rejected_in_a_fresh_process():
    """int64 sums of these lengths wrap to T = 10: they used to pass the check, and the
    kernels then read far outside hidden (a segfault for "cls", a hang for "mean")."""
    rc, err = _crash_free(
        "import numpy as np, numbapool as nbp\n"
        "h = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)\n"
        "cases = [[2**62 + 10**9, 2**62, 2**62, 2**62 - 10**9, 10], [2**62] * 4 + [10]]\n"
        "for L in cases:\n"
        "    for mode in ('cls', 'mean', 'last', 'max'):\n"
        "        try:\n"
        "            nbp.pool_tokens(h, lengths=np.array(L, np.int64), mode=mode)\n"
        "        except ValueError as exc:\n"
        "            assert 'lengths[0]=' in str(exc), exc\n"
        "        else:\n"
        "            raise AssertionError((L, mode))\n")
    assert rc == 0, err


@pytest.mark.parametrize("lengths", [
    np.array([2**62 + 10**9, 2**62, 2**62, 2**62 - 10**9, 10], np.int64),
    np.array([2**62] * 4 + [10], np.int64),
    np.array([2**63 - 1, 2**63 - 1, 2, 10], np.int64),        # wraps to exactly 10
    np.array([2**64 - 6, 16], np.uint64),                     # wraps in uint64
    np.array([2**63, 2**63, 10], np.uint64),
    np.array([2**31 - 1, 2**31 - 1, 2, 10], np.int32),        # int32 would wrap too
    [2**64 - 6, 16],
])
def test_lengths_are_checked_one_by_one(lengths):
    h = np.zeros((10, 4), np.float32)
    with pytest.raises(ValueError, match=r"lengths\[0\]=\d+ exceeds the number of token rows"):
        pool_tokens(h, lengths=lengths, mode="cls")


@pytest.mark.parametrize("offsets", [
    np.array([0, 2**63 - 1, -5, 10], np.int64),   # differences wrap to non-negative counts
    np.array([0, 2**63, 10], np.uint64),
    np.array([0, 2**64 - 1, 10], np.uint64),
    [0, 11, 10],
    [0, 3, -1, 10],
])
def test_offsets_are_checked_one_by_one(offsets):
    h = np.zeros((10, 4), np.float32)
    with pytest.raises(ValueError, match=r"offsets.*(>= 0|exceeds the number of token rows)"):
        pool_tokens(h, offsets=offsets, mode="cls")


def test_lengths_and_offsets_of_any_integer_dtype_within_range_work():
    h = np.arange(20, dtype=np.float64).reshape(10, 2)
    expected = pool_tokens(h, lengths=np.array([3, 0, 7]), mode=["cls", "mean"])
    for dtype in (np.int8, np.uint8, np.int16, np.uint32, np.uint64, np.int64):
        np.testing.assert_array_equal(
            pool_tokens(h, lengths=np.array([3, 0, 7], dtype), mode=["cls", "mean"]), expected)
        np.testing.assert_array_equal(
            pool_tokens(h, offsets=np.array([0, 3, 3, 10], dtype), mode=["cls", "mean"]),
            expected)


# --------------------------------------------------------------------------- coefficient ranges


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("w", [1e-300, 1e-45, 1e-39, 1e39, 1e300, 1e308, 5e-324])
def test_weighted_accepts_weights_of_any_finite_magnitude(dtype, w):
    """Weights used to be cast to the accumulator type first: 1e-300 became 0 (zeros out)
    and 1e39 inf in float32 (NaN out); 1e308 overflowed their float64 sum."""
    h = np.array([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]], dtype)
    expected = np.array([[3.0, 4.0]], dtype)
    np.testing.assert_array_equal(pool_tokens(h, None, "weighted", weights=np.full((1, 3), w)),
                                  expected)
    np.testing.assert_array_equal(
        pool_tokens(h[0], lengths=[3], mode="weighted", weights=np.full(3, w)), expected)
    # ratios are all that count: [w, 2w, w] weighs the middle token twice
    np.testing.assert_allclose(
        pool_tokens(h, None, "weighted", weights=np.array([[1.0, 2.0, 1.0]]) * w)
        if w * 2 < np.inf and w > 5e-324 else expected, expected, rtol=_tol(dtype))


def test_weighted_mixed_magnitudes_and_zero_totals():
    h = np.array([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]] * 3, np.float32)
    w = np.array([[1e-300, 1e300, 0.0],     # the second token dominates
                  [0.0, 0.0, 0.0],          # a zero total gives zeros
                  [1e-40, 1e-40, 3e-40]])   # float32 subnormals, as ratios 1:1:3
    res = pool_tokens(h, None, "weighted", weights=w)
    np.testing.assert_array_equal(res[0], [3.0, 4.0])
    np.testing.assert_array_equal(res[1], [0.0, 0.0])
    np.testing.assert_allclose(res[2], [(1 + 3 + 15) / 5, (2 + 4 + 18) / 5], rtol=1e-6)
    # the same under omit, with a NaN where the dominant token is: the others are 1e-600
    # times smaller, below what the accumulator holds, so they count as zero weight
    hn = h.copy()
    hn[0, 1, 0] = np.nan
    res = pool_tokens(hn, None, "weighted", weights=w, nan_policy="omit")
    np.testing.assert_array_equal(res[0], [0.0, 4.0])


def test_weights_reach_every_backend_scaled_by_each_sequences_largest(monkeypatch):
    """The scaling is in the plan, which the CPU and CUDA backends both read."""
    from numbapool import dispatch

    plans = []

    class _Capture:
        def run_tokens(self, plan, hidden, out, inputs):
            plans.append(plan)

    monkeypatch.setattr(dispatch, "resolve",
                        lambda x, device=None, name="x", stream=None: (_Capture(), x))
    mask = np.array([[1, 1, 0], [0, 0, 0], [1, 0, 1]], bool)
    w = np.array([[1e300, 4e300, np.nan], [5.0, 5.0, 5.0], [1e-300, -7.0, 2e-300]])
    pool_tokens(np.zeros((3, 3, 2), np.float32), mask, "weighted", weights=w)
    np.testing.assert_array_equal(plans[-1].weights, [0.25, 1, 0, 0, 0, 0, 0.5, 0, 1])
    pool_tokens(np.zeros((5, 2)), lengths=[2, 0, 3], mode="weighted",
                weights=[3e-310, 6e-310, 1e-320, 1e308, 0.0])
    np.testing.assert_array_equal(plans[-1].weights, [0.5, 1, 0, 1, 0])  # 1e-328: flushed
    assert plans[-1].scores.size == 0
    # scores: shifted so that each sequence's largest is 0, every entry finite
    pool_tokens(np.zeros((3, 3, 2), np.float16), mask, ["attention", "weighted"],
                weights=np.ones((3, 3)), scores=np.array([[1e308, -1e308, np.inf],
                                                           [np.nan, 0.0, 1.0],
                                                           [3.0, np.nan, 7.5]]))
    fmax = np.finfo(np.float64).max
    np.testing.assert_array_equal(plans[-1].scores, [0, -fmax, 0, 0, 0, 0, -4.5, 0, 0])
    np.testing.assert_array_equal(plans[-1].weights, [1, 1, 0, 0, 0, 0, 1, 0, 1])


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
def test_attention_with_huge_score_ranges(dtype):
    h = np.array([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]], dtype)
    cases = [([1e308, -1e308, 0.0], [1.0, 2.0]),         # score differences overflow
             ([-1.7e308, 1.7e308, 1.7e308], [4.0, 5.0]),  # two maxima share the weight
             ([1e308, 1e308, 1e308], [3.0, 4.0]),
             ([-1e308, -1e308, -1e308], [3.0, 4.0]),
             ([0.0, 5e-324, -5e-324], [3.0, 4.0])]
    for scores, expected in cases:
        for policy in ("propagate", "omit"):
            res = pool_tokens(h, None, "attention", scores=np.array([scores]),
                              nan_policy=policy)
            np.testing.assert_allclose(res, [expected], rtol=_tol(dtype))
            packed = pool_tokens(h[0], lengths=[3], mode="attention", scores=scores,
                                 nan_policy=policy)
            np.testing.assert_array_equal(packed, res)


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
def test_weights_of_split_sequences_merge_scaled(dtype, force_parallel):
    """A long sequence split over threads sums its weight pieces: they must be scaled
    before the split, by the whole sequence's largest weight."""
    rng = np.random.default_rng(14)
    h = rng.standard_normal((1, 400, 8)).astype(dtype)
    w = 10.0 ** rng.uniform(-300, 290, size=(1, 400))
    w[0, 123] = 1e307  # the others are at most 1e-17 of it
    ours = pool_tokens(h, None, ["weighted", "mean"], weights=w)
    np.testing.assert_allclose(ours[:, :8].astype(np.float64), h[:, 123].astype(np.float64),
                               rtol=_tol(dtype))


# --------------------------------------------------------------------------- masked arrays


def test_masked_arrays_are_refused_with_a_working_hint():
    rng = np.random.default_rng(15)
    h = rng.standard_normal((2, 4, 3))
    hidden = np.ma.masked_array(h, mask=rng.random(h.shape) < 0.3)
    with pytest.raises(TypeError, match="hidden is a numpy.ma.MaskedArray") as info:
        pool_tokens(hidden)
    message = str(info.value)
    assert "hidden.filled(np.nan)" in message and "nan_policy='omit'" in message
    assert "np.asarray(hidden)" in message
    # what the hint says gives the mean of the unmasked values, as numpy.ma computes it
    np.testing.assert_allclose(pool_tokens(hidden.filled(np.nan), nan_policy="omit"),
                               hidden.mean(axis=1).filled(np.nan), rtol=1e-12)
    np.testing.assert_array_equal(pool_tokens(np.asarray(hidden)), pool_tokens(h))
    # auxiliary arrays: masks, weights, scores, lengths, offsets
    m = np.ma.masked_array(np.ones((2, 4)), mask=np.zeros((2, 4), bool))
    for kw in (dict(attention_mask=m), dict(mode="weighted", weights=m),
               dict(mode="attention", scores=m)):
        name = next(k for k in kw if k != "mode")
        with pytest.raises(TypeError, match=f"{name} is a numpy.ma.MaskedArray.*"
                                            rf"{name}.filled\(value\)"):
            pool_tokens(h, **kw)
    for name, value in (("lengths", [1, 1]), ("offsets", [0, 1, 2])):
        with pytest.raises(TypeError, match=f"{name} is a numpy.ma.MaskedArray"):
            pool_tokens(h[0, :2], **{name: np.ma.masked_array(value)})


# --------------------------------------------------------------------------- blocked sums


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_long_runs_flush_blocks_and_keep_nan_and_extremes(parallel, monkeypatch):
    """Runs longer than a block add their early partial sums into float64 totals (see
    token_kernels): a NaN in an early block still reaches the sum and sends max and min
    through the IEEE rule, and sums of small integers stay exact, whole or split over
    threads, read as streams (no mask) or one token at a time (holes)."""
    from numbapool._cpu import parallel as cpu_parallel
    from numbapool._cpu import token_kernels

    if parallel:
        import numba

        if numba.get_num_threads() < 2:
            pytest.skip("needs at least two Numba threads")
    monkeypatch.setattr(cpu_parallel, "PARALLEL_MIN_ELEMENTS", 0 if parallel else 1 << 62)
    rng = np.random.default_rng(31)
    length = 6 * token_kernels.FIRST_BLOCK + 3
    h = rng.integers(-8, 9, (3, length, 5)).astype(np.float32)
    h[0, 5, 1] = np.nan  # in the first block
    h[2, :, 3] = 0.0
    h[2, length // 2, 3] = -0.0  # max +0 and min -0, whatever the blocks
    holes = np.ones((3, length), bool)
    holes[1, 2::7] = False
    for mask in (None, holes):
        for modes in (["sum", "max", "min"], ["mean", "weighted_mean", "max"]):
            ours = pool_tokens(h, mask, modes)
            ref = pool_tokens_ref(h, mask, modes)
            _close(ours, ref, np.float32)
            assert np.isnan(ours[0, [1, 6, 11]]).all()  # feature 1 in every mode
            _same_bits(ours[:, 10:], ref[:, 10:])  # the extremes
            if modes[0] == "sum":  # integers: every partial and total is exact
                _same_bits(ours[:, :5], ref[:, :5])
