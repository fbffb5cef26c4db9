"""``torch.nn``'s pooling modules computed by numbapool, and a sentence-transformers
``Pooling`` built on :func:`numbapool.torch.pool_tokens`.

Each spatial module subclasses torch's module of the same name (``MaxPool2d``,
``AvgPool3d``, ``AdaptiveAvgPool1d``, ``MaxUnpool2d``, ...) and replaces only ``forward``:
the constructor, attributes, ``extra_repr`` and ``isinstance`` checks are torch's, so a
model's modules can be swapped one for one.

>>> import torch
>>> from numbapool.torch import nn
>>> pool = nn.MaxPool2d(3, stride=2, padding=1)
>>> pool
MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)
>>> pool(torch.zeros(1, 2, 8, 8)).shape
torch.Size([1, 2, 4, 4])
"""

import json
import os

import torch
from torch import Tensor

from . import functional as F

__all__ = [f"{name}{n}d" for name in ("MaxPool", "AvgPool", "LPPool", "AdaptiveMaxPool",
                                      "AdaptiveAvgPool", "MaxUnpool") for n in (1, 2, 3)]
__all__ += ["Pooling"]


def _forward(kind, n):
    fn = getattr(F, f"{kind}{n}d")
    if kind == "max_pool":
        def forward(self, input: Tensor):
            return fn(input, self.kernel_size, self.stride, self.padding, self.dilation,
                      ceil_mode=self.ceil_mode, return_indices=self.return_indices)
    elif kind == "avg_pool":
        def forward(self, input: Tensor) -> Tensor:
            extra = () if n == 1 else (self.divisor_override,)
            return fn(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                      self.count_include_pad, *extra)
    elif kind == "lp_pool":
        def forward(self, input: Tensor) -> Tensor:
            return fn(input, float(self.norm_type), self.kernel_size, self.stride,
                      self.ceil_mode)
    elif kind == "adaptive_max_pool":
        def forward(self, input: Tensor):
            return fn(input, self.output_size, self.return_indices)
    elif kind == "adaptive_avg_pool":
        def forward(self, input: Tensor) -> Tensor:
            return fn(input, self.output_size)
    else:
        def forward(self, input: Tensor, indices: Tensor, output_size=None) -> Tensor:
            return fn(input, indices, self.kernel_size, self.stride, self.padding, output_size)
    return forward


for _kind, _cls in (("max_pool", "MaxPool"), ("avg_pool", "AvgPool"), ("lp_pool", "LPPool"),
                    ("adaptive_max_pool", "AdaptiveMaxPool"),
                    ("adaptive_avg_pool", "AdaptiveAvgPool"), ("max_unpool", "MaxUnpool")):
    for _n in (1, 2, 3):
        _base = getattr(torch.nn, f"{_cls}{_n}d")
        globals()[f"{_cls}{_n}d"] = type(f"{_cls}{_n}d", (_base,), {
            "forward": _forward(_kind, _n), "__module__": __name__,
            "__doc__": f"``torch.nn.{_cls}{_n}d`` computed by numbapool (same arguments).",
        })
del _kind, _cls, _n, _base


# --------------------------------------------------------------------------- Pooling

#: sentence-transformers' pooling modes -> numbapool's token modes
ST_MODES = {"cls": "cls", "max": "max", "mean": "mean", "mean_sqrt_len_tokens": "mean_sqrt_len",
            "weightedmean": "weighted_mean", "lasttoken": "last"}
# sentence-transformers' boolean keyword arguments, in its concatenation order
_LEGACY = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
           "pooling_mode_mean_tokens": "mean",
           "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
           "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}


def _position_weights(keep: Tensor) -> Tensor:
    """Weights ``1, 2, ...`` from each row's first kept position (0 where not kept), in
    float64: sentence-transformers' weightedmean weights under left or right padding."""
    pos = torch.arange(keep.shape[1], device=keep.device)[None, :]
    first = keep.to(torch.int32).argmax(dim=1)
    return ((pos - first[:, None] + 1) * keep).to(torch.float64)


class Pooling(torch.nn.Module):
    """sentence-transformers' ``Pooling`` module, computed by numbapool.

    The constructor is sentence-transformers' (6.x): ``Pooling(embedding_dimension,
    pooling_mode="mean", include_prompt=True)``, ``pooling_mode`` a mode name or a tuple of
    them (``"cls"``, ``"max"``, ``"mean"``, ``"mean_sqrt_len_tokens"``,
    ``"weightedmean"``, ``"lasttoken"``; several are concatenated in the given order).
    The older spellings are accepted too: ``word_embedding_dimension=`` and the boolean
    ``pooling_mode_*_tokens`` flags (concatenated in the legacy order cls, max, mean,
    mean_sqrt_len, weightedmean, lasttoken).

    ``forward(features)`` reads ``features["token_embeddings"]`` ``(B, L, D)`` and
    ``features["attention_mask"]`` ``(B, L)`` (or, for unpadded batches,
    ``token_embeddings`` ``(1, T, D)`` with ``features["cu_seq_lens_q"]``, the ``(B+1,)``
    offsets), writes ``features["sentence_embedding"]`` and returns ``features``.  With
    ``include_prompt=False`` and ``features["prompt_length"]``, the prompt's tokens are
    left out, as sentence-transformers does (``weightedmean`` then keeps the remaining
    tokens' original position weights).

    The extra features sentence-transformers reads are read too:
    ``features["cls_token_embeddings"]`` is the cls mode's result when present, and
    ``features["token_weights_sum"]`` (written by its ``WordWeights`` module) replaces the
    token count as the divisor of ``mean`` and ``mean_sqrt_len_tokens`` and the position
    weights' sum as that of ``weightedmean``, in padded batches (sentence-transformers
    ignores it in unpadded ones, and so does this module).

    A sequence with no tokens pools as in sentence-transformers' padded path: ``-inf`` for
    max, the first position's vector for cls, zeros for the others.  Unpadded, an empty
    sequence gives ``-inf`` for max and zeros for every other mode (sentence-transformers'
    cls and lasttoken read a neighbouring sequence's row there).  A NaN among a sequence's
    values makes its max NaN (torch's ``max`` does the same).

    >>> import torch
    >>> pooling = Pooling(2, "mean")
    >>> feats = {"token_embeddings": torch.arange(8.).reshape(2, 2, 2),
    ...          "attention_mask": torch.tensor([[1, 0], [1, 1]])}
    >>> pooling(feats)["sentence_embedding"]
    tensor([[0., 1.],
            [5., 6.]])
    >>> pooling.get_sentence_embedding_dimension(), pooling.get_pooling_mode_str()
    (2, 'mean')
    """

    POOLING_MODES = tuple(ST_MODES)
    config_keys = ["embedding_dimension", "pooling_mode", "include_prompt"]

    def __init__(self, embedding_dimension: int = None, pooling_mode="mean",
                 include_prompt: bool = True, **legacy):
        super().__init__()
        if embedding_dimension is None:
            embedding_dimension = legacy.pop("word_embedding_dimension", None)
        if embedding_dimension is None:
            raise TypeError("Pooling needs embedding_dimension (the token embeddings' size)")
        unknown = set(legacy) - set(_LEGACY)
        if unknown:
            raise TypeError(f"Pooling got unexpected keyword arguments {sorted(unknown)}")
        if legacy:  # the boolean flags replace pooling_mode, as sentence-transformers does
            modes = tuple(m for k, m in _LEGACY.items() if legacy.get(k)) or ("mean",)
            pooling_mode = modes[0] if len(modes) == 1 else modes
        if isinstance(pooling_mode, (list, tuple)):
            pooling_mode = pooling_mode[0] if len(pooling_mode) == 1 else tuple(pooling_mode)
        modes = (pooling_mode,) if isinstance(pooling_mode, str) else pooling_mode
        for m in modes:
            if m not in ST_MODES:
                raise ValueError(f"Invalid pooling mode: {m!r}. Valid pooling modes are: "
                                 f"{self.POOLING_MODES}.")
        self.embedding_dimension = int(embedding_dimension)
        self.pooling_mode = pooling_mode
        self.include_prompt = include_prompt
        self.pooling_output_dimension = len(modes) * self.embedding_dimension

    @property
    def modes(self) -> tuple:
        return (self.pooling_mode,) if isinstance(self.pooling_mode, str) else self.pooling_mode

    def __repr__(self) -> str:
        return f"Pooling({self.get_config_dict()})"

    def get_embedding_dimension(self) -> int:
        return self.pooling_output_dimension

    get_sentence_embedding_dimension = get_embedding_dimension

    def get_pooling_mode_str(self) -> str:
        return "+".join(self.modes)

    def get_config_dict(self) -> dict:
        return {key: getattr(self, key) for key in self.config_keys}

    def save(self, output_path: str, *args, **kwargs) -> None:
        os.makedirs(output_path, exist_ok=True)
        with open(os.path.join(output_path, "config.json"), "w") as fh:
            json.dump(self.get_config_dict(), fh, indent=2)

    @classmethod
    def load(cls, input_path: str, *args, **kwargs) -> "Pooling":
        with open(os.path.join(input_path, "config.json")) as fh:
            return cls(**json.load(fh))

    def forward(self, features: dict, **kwargs) -> dict:
        tokens = features["token_embeddings"]
        prompt = None
        if not self.include_prompt and "prompt_length" in features:
            pl = features["prompt_length"]
            prompt = int(pl[0].item()) if isinstance(pl, Tensor) else int(pl)
        names = [ST_MODES[m] for m in self.modes]
        if "cu_seq_lens_q" in features:  # unpadded: (1, T, D) rows, sequence offsets
            out, empty = self._packed(tokens.squeeze(0), features["cu_seq_lens_q"], names,
                                      prompt)
            parts = list(out.split(tokens.shape[-1], dim=-1))
        else:
            mask = features.get("attention_mask")
            if mask is None or mask.shape[-1] != tokens.shape[1]:
                mask = None
            mask, weights = self._padded_mask(tokens, mask, names, prompt)
            out = self._pool(tokens, names, weights, attention_mask=mask)
            parts = list(out.split(tokens.shape[-1], dim=-1))
            empty = None if mask is None else ~mask.bool().any(dim=1)
            if "token_weights_sum" in features:
                self._divide_by_weights_sum(parts, tokens, mask, weights,
                                            features["token_weights_sum"])
            if empty is not None and "cls" in self.modes:  # the first position, as argmax
                k = self.modes.index("cls")
                parts[k] = torch.where(empty[:, None], tokens[:, 0], parts[k])
        for k, mode in enumerate(self.modes):
            if mode == "cls" and "cls_token_embeddings" in features:
                parts[k] = features["cls_token_embeddings"]
            elif mode == "max" and empty is not None:
                parts[k] = parts[k].masked_fill(empty[:, None], float("-inf"))
        features["sentence_embedding"] = torch.cat(parts, dim=-1)
        return features

    def _divide_by_weights_sum(self, parts, tokens, mask, weights, weights_sum):
        """sentence-transformers' ``token_weights_sum`` rule: the mean modes' sums (and
        weightedmean's weighted sum) divided by ``clamp(token_weights_sum, 1e-9)``."""
        acc = torch.float32 if tokens.dtype in (torch.float16, torch.bfloat16) else tokens.dtype
        dtype = torch.promote_types(tokens.dtype, weights_sum.dtype)
        divisor = torch.clamp(weights_sum.unsqueeze(-1).to(torch.promote_types(
            acc, weights_sum.dtype)), min=1e-9)
        sums = None
        for k, mode in enumerate(self.modes):
            if mode in ("mean", "mean_sqrt_len_tokens"):
                if sums is None:
                    sums = F.pool_tokens(tokens, mode="sum", attention_mask=mask)
                div = divisor if mode == "mean" else torch.sqrt(divisor)
                parts[k] = (sums / div).to(dtype)
            elif mode == "weightedmean":
                if weights is None:  # the mode's own weights: 1, 2, ... from the first token
                    keep = (torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
                            if mask is None else mask != 0)
                    weights = _position_weights(keep)
                total = (weights if mask is None else weights * (mask != 0)).sum(
                    dim=1, keepdim=True)
                parts[k] = (parts[k] * total.to(parts[k].dtype) / divisor).to(dtype)

    def _padded_mask(self, tokens, mask, names, prompt):
        """``(mask, weights)`` of a padded batch once the prompt is left out: the
        ``attention_mask`` numbapool reads and, for weightedmean, the position weights
        when they no longer restart at 1 (else ``None``)."""
        weights = None
        if prompt and mask is not None:
            first = mask.to(torch.int32).argmax(dim=1)  # left padding: the first token
            pos = torch.arange(mask.shape[1], device=mask.device)[None, :]
            if "weighted_mean" in names:  # the remaining tokens keep their position weights
                weights = _position_weights(mask != 0)
            mask = (mask != 0) & (pos >= (first + prompt)[:, None])
        elif prompt:
            mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
            mask[:, :prompt] = False
            if "weighted_mean" in names:
                weights = torch.arange(1, tokens.shape[1] + 1, dtype=torch.float64,
                                       device=tokens.device).expand(tokens.shape[0], -1)
        return mask, weights

    def _packed(self, rows, offsets, names, prompt):
        weights = None
        if prompt:
            lengths = offsets[1:] - offsets[:-1]
            seq = torch.repeat_interleave(torch.arange(lengths.shape[0]), lengths.cpu())
            pos = torch.arange(rows.shape[0]) - offsets.cpu()[:-1][seq]
            keep = pos >= prompt
            rows, pos = rows[keep.to(rows.device)], pos[keep]
            offsets = torch.cat([offsets.new_zeros(1), torch.cumsum(
                torch.clamp(lengths - prompt, min=0), 0)])
            if "weighted_mean" in names:
                weights = (pos + 1).to(torch.float64)
        return self._pool(rows, names, weights, offsets=offsets), offsets[1:] == offsets[:-1]

    @staticmethod
    def _pool(tokens, names, weights, **where):
        if weights is None:
            return F.pool_tokens(tokens, mode=names, **where)
        # position weights that do not restart at 1: "weighted" with those weights
        parts = [F.pool_tokens(tokens, mode="weighted", weights=weights, **where)
                 if m == "weighted_mean" else F.pool_tokens(tokens, mode=m, **where)
                 for m in names]
        return torch.cat(parts, dim=-1)
