"""A naive oracle for the gradient of token pooling, written from the formulas of
numbapool.grad.pool_tokens' docstring (the derivatives of the forward's table of modes).

One Python loop per sequence, per mode and per feature, in float64, sharing no code with
the kernels: find each sequence's token positions, apply the formula, scatter back.
"""

import math

import numpy as np


def token_positions(hidden, attention_mask=None, lengths=None, offsets=None):
    """Per sequence, the index tuples into ``hidden`` of its tokens (in order), and the
    indices into the flat weights/scores of the same tokens."""
    hidden = np.asarray(hidden)
    seqs = []
    if hidden.ndim == 3:
        batch, length, _ = hidden.shape
        for b in range(batch):
            ls = [l for l in range(length)
                  if attention_mask is None or np.asarray(attention_mask)[b, l] != 0]
            seqs.append(([(b, l) for l in ls], [b * length + l for l in ls]))
        return seqs
    if offsets is None:
        offsets = np.concatenate([[0], np.cumsum(np.asarray(lengths, dtype=np.int64))])
    for a, z in zip(offsets[:-1], offsets[1:]):
        seqs.append(([(t,) for t in range(int(a), int(z))], list(range(int(a), int(z)))))
    return seqs


def _winner(col, is_min, omit):
    """The first token holding the IEEE 754-2019 max/min (-0 below +0); under propagate
    the first NaN; under omit NaNs skipped, and token 0 when all are NaN."""
    nan = np.isnan(col)
    if nan.any() and not omit:
        return int(np.argmax(nan))
    if nan.all():
        return 0
    key = [(v, math.copysign(1.0, v)) for v in col]
    best = None
    for j, k in enumerate(key):
        if nan[j]:
            continue
        if best is None or (k < key[best] if is_min else k > key[best]):
            best = j
    return best


def grad_one(x, w, s, g, mode, omit):
    """``(d_x (n, D), d_w (n,), d_s (n,))`` of one mode of one sequence, float64."""
    n, d = x.shape
    dx, dw, ds = np.zeros((n, d)), np.zeros(n), np.zeros(n)
    if n == 0:
        return dx, dw, ds
    if mode == "cls":
        dx[0] = g
    elif mode == "last":
        dx[-1] = g
    elif mode in ("max", "min"):
        for e in range(d):
            dx[_winner(x[:, e], mode == "min", omit), e] = g[e]
    else:
        if mode in ("mean", "sum", "mean_sqrt_len"):
            c = np.ones(n)
        elif mode == "weighted_mean":
            c = np.arange(1, n + 1, dtype=np.float64)
        elif mode == "weighted":
            c = np.asarray(w, np.float64)
        else:
            c = np.exp(s - s.max())
        for e in range(d):
            ok = ~np.isnan(x[:, e]) if omit else np.ones(n, bool)
            if not ok.any():
                continue
            cnt, total = ok.sum(), c[ok].sum()
            h = {"mean": 1 / cnt, "sum": 1.0, "mean_sqrt_len": 1 / math.sqrt(cnt)}.get(
                mode, 1 / total if total > 0 else 0.0)
            dx[ok, e] = c[ok] * h * g[e]
            out = (c[ok] * x[ok, e]).sum() * h
            if mode == "weighted":
                dw[ok] += g[e] * h * (x[ok, e] - out)
            elif mode == "attention":
                ds[ok] += c[ok] * g[e] * h * (x[ok, e] - out)
    return dx, dw, ds


def pool_tokens_grad_ref(grad_out, hidden, attention_mask=None, mode="mean", *, weights=None,
                         scores=None, lengths=None, offsets=None, nan_policy="propagate"):
    """The reference gradient(s), float64: ``d_hidden`` or the tuple with ``d_weights`` and
    ``d_scores`` (as numbapool.grad.pool_tokens returns them)."""
    modes = [mode] if isinstance(mode, str) else list(mode)
    h = np.asarray(hidden, np.float64)
    g = np.asarray(grad_out, np.float64)
    d = h.shape[-1]
    flat_w = None if weights is None else np.asarray(weights, np.float64).reshape(-1)
    flat_s = None if scores is None else np.asarray(scores, np.float64).reshape(-1)
    dh = np.zeros(h.shape)
    dw = None if weights is None else np.zeros(flat_w.shape)
    ds = None if scores is None else np.zeros(flat_s.shape)
    seqs = token_positions(hidden, attention_mask, lengths, offsets)
    for b, (where, coef_idx) in enumerate(seqs):
        x = np.array([h[i] for i in where]).reshape(len(where), d)
        w = None if flat_w is None else flat_w[coef_idx]
        s = None if flat_s is None else flat_s[coef_idx]
        for k, m in enumerate(modes):
            gx, gw, gs = grad_one(x, w, s, g[b, k * d:(k + 1) * d], m,
                                  nan_policy == "omit")
            for j, i in enumerate(where):
                dh[i] += gx[j]
            if dw is not None:
                dw[coef_idx] += gw
            if ds is not None:
                ds[coef_idx] += gs
    extra = [a.reshape(np.shape(v)) for a, v in ((dw, weights), (ds, scores)) if a is not None]
    return (dh, *extra) if extra else dh
