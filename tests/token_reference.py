"""A naive oracle for token pooling, written from the table in docs/guide/tokens.md, "The modes".

One Python loop per sequence and per mode, in float64, with no shared code with the
kernels: gather a sequence's tokens, apply the formula, cast to the input dtype.
"""

import numpy as np


def sequences(hidden, attention_mask=None, weights=None, scores=None, lengths=None,
              offsets=None):
    """``[(tokens (n, D), weights (n,), scores (n,))]`` per sequence, in float64."""
    h = np.asarray(hidden, dtype=np.float64)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    s = None if scores is None else np.asarray(scores, dtype=np.float64)
    out = []
    if h.ndim == 3:
        batch, length, _ = h.shape
        for b in range(batch):
            idx = [l for l in range(length)
                   if attention_mask is None or np.asarray(attention_mask)[b, l] != 0]
            out.append((h[b, idx], None if w is None else w[b, idx],
                        None if s is None else s[b, idx]))
        return out
    if offsets is None:
        offsets = np.concatenate([[0], np.cumsum(np.asarray(lengths, dtype=np.int64))])
    offsets = [int(o) for o in offsets]
    for a, z in zip(offsets[:-1], offsets[1:]):
        out.append((h[a:z], None if w is None else w[a:z], None if s is None else s[a:z]))
    return out


def _weighted(x, c, omit):
    """``sum(c_j x_j) / sum(c_j)`` per feature; NaN tokens dropped per feature under omit."""
    if not omit:
        with np.errstate(invalid="ignore"):
            num = (c[:, None] * x).sum(axis=0)
        total = c.sum()
        return num / total if total > 0 else num
    res = np.empty(x.shape[1])
    for e in range(x.shape[1]):
        ok = ~np.isnan(x[:, e])
        if not ok.any():
            res[e] = np.nan
            continue
        num = (c[ok] * x[ok, e]).sum()
        den = c[ok].sum()
        res[e] = num / den if den > 0 else num
    return res


def _extreme(x, is_min, omit):
    """Max or min per feature, IEEE 754-2019 style: NaN wins (skipped under omit, NaN only
    when every value is NaN), and -0 counts below +0."""
    res = np.empty(x.shape[1])
    for e in range(x.shape[1]):
        col = x[:, e]
        nan = np.isnan(col)
        if nan.all() or (nan.any() and not omit):
            res[e] = np.nan
            continue
        vals = col[~nan]
        r = vals.min() if is_min else vals.max()
        if r == 0:
            negative = np.signbit(vals[vals == 0])
            r = -0.0 if (negative.any() if is_min else negative.all()) else 0.0
        res[e] = r
    return res


def pool_one(x, w, s, mode, omit):
    """One mode of one sequence (float64)."""
    n, d = x.shape
    if n == 0:
        return np.zeros(d)
    if mode == "cls":
        return x[0].copy()
    if mode == "last":
        return x[-1].copy()
    if mode == "max":
        return _extreme(x, False, omit)
    if mode == "min":
        return _extreme(x, True, omit)
    counts = (~np.isnan(x)).sum(axis=0) if omit else np.full(d, n)
    total = np.where(counts > 0, np.nansum(x, axis=0), np.nan) if omit else x.sum(axis=0)
    if mode == "sum":
        return total
    if mode == "mean":
        return total / counts
    if mode == "mean_sqrt_len":
        return total / np.sqrt(counts)
    if mode == "weighted_mean":
        return _weighted(x, np.arange(1, n + 1, dtype=np.float64), omit)
    if mode == "weighted":
        return _weighted(x, w, omit)
    if mode == "attention":
        a = np.exp(s - s.max())
        return _weighted(x, a / a.sum(), omit)
    raise ValueError(mode)


def pool_tokens_ref(hidden, attention_mask=None, mode="mean", *, weights=None, scores=None,
                    lengths=None, offsets=None, nan_policy="propagate"):
    """The reference result, ``(B, D * len(modes))`` in ``hidden``'s dtype."""
    modes = [mode] if isinstance(mode, str) else list(mode)
    hidden = np.asarray(hidden)
    d = hidden.shape[-1]
    omit = nan_policy == "omit"
    rows = []
    for x, w, s in sequences(hidden, attention_mask, weights, scores, lengths, offsets):
        with np.errstate(invalid="ignore", divide="ignore"):
            rows.append(np.concatenate([pool_one(x, w, s, m, omit) for m in modes])
                        if modes else np.zeros(0))
    res = np.array(rows, dtype=np.float64).reshape(len(rows), d * len(modes))
    with np.errstate(over="ignore", invalid="ignore"):
        return res.astype(hidden.dtype)
