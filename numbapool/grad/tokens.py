"""Gradient of :func:`numbapool.pool_tokens` with respect to the hidden states (and to the
weights and scores of the ``"weighted"`` and ``"attention"`` modes).

The arguments are checked as the forward checks them and planned into the same
:class:`~numbapool.token_plan.TokenPlan`; the backend's ``run_token_grad`` entry point
computes the gradient.  Both backends have one: the CPU's takes a task per sequence, the
CUDA one a thread per (sequence, feature) for ``hidden``'s gradient and a thread per token
for those of the weights and scores (sums over the features, without atomics), so the
results do not depend on the launch.
"""

from __future__ import annotations

import operator

import numpy as np

from .. import dispatch
from .. import token_plan
from .._checks import FLOAT_DTYPES, NAN_POLICIES, check_choice
from .._typing import Array, Device, NanPolicy, Stream, TokenMode
from ..token_plan import M_ATTENTION, M_WEIGHTED, MODE_CODES, TOKEN_MODES, TokenPlan
from ..tokens import _check_counts, _check_mask, _coefficients, _parse_modes

__all__ = ["pool_tokens"]

_EMPTY_F = np.zeros(0, np.float64)


def _runner(backend):
    """The backend's gradient entry point (``run_token_grad``), or NotImplementedError."""
    if backend is dispatch._backend("cpu"):
        from .._cpu.token_grad_kernels import run_token_grad
        return run_token_grad
    run = getattr(backend, "run_token_grad", None)
    if run is None:
        raise NotImplementedError(
            "this backend has no kernels for numbapool.grad.pool_tokens; pass device='cpu' "
            "to compute the gradient on the host (the arrays are copied there and back)")
    return run


def _check_grad_out(grad_out, shape):
    if not hasattr(grad_out, "dtype"):
        raise TypeError(f"grad_out must be an array; got "
                        f"{type(grad_out).__module__}.{type(grad_out).__qualname__}")
    if np.dtype(grad_out.dtype) not in FLOAT_DTYPES:
        raise TypeError(f"grad_out has dtype {grad_out.dtype}; it must be float16, float32 or "
                        "float64")
    if tuple(grad_out.shape) != tuple(shape):
        raise ValueError(f"grad_out has shape {tuple(grad_out.shape)}; the forward's result "
                         f"has shape {tuple(shape)} (B, D * number of modes)")


def pool_tokens(grad_out: Array, hidden: Array, attention_mask: Array | None = None,
                mode: TokenMode | list[TokenMode] | tuple[TokenMode, ...] = "mean", *,
                weights: Array | None = None, scores: Array | None = None,
                lengths: Array | None = None, offsets: Array | None = None,
                nan_policy: NanPolicy = "propagate", out: Array | None = None,
                device: Device = None, stream: Stream = None):
    """Gradient of :func:`numbapool.pool_tokens` with respect to ``hidden`` (and to
    ``weights`` / ``scores`` when given).

    Parameters
    ----------
    grad_out : array
        The upstream gradient, shaped like the forward's result ``(B, D * len(modes))``;
        float16, float32 or float64.  Several modes' slots contribute to ``hidden``'s
        gradient additively.  It follows ``hidden``: a host one is copied to the device
        for CUDA ``hidden`` (and a CUDA one to the host for NumPy ``hidden``).
    hidden, attention_mask, mode, weights, scores, lengths, offsets, nan_policy
        The forward's arguments (see :func:`numbapool.pool_tokens`), checked the same way.
    out : array, optional
        Preallocated gradient, shaped like ``hidden``, of ``grad_out``'s dtype.
    device : {None, "cpu", "cuda"}
        Where to compute; ``None`` means where ``hidden`` lives.
    stream : stream, optional
        CUDA only: the stream to run on (a Numba, ``torch.cuda`` or CuPy stream).  ``None``
        means the current stream of the library ``hidden`` comes from (Numba device arrays:
        the default stream).  Nothing waits for the result: read it on that stream.

    Returns
    -------
    d_hidden : array
        Shaped like ``hidden``, of ``grad_out``'s dtype (computed in float64, rounded once);
        zero at padding positions and for sequences without tokens.
    (d_hidden, d_weights), (d_hidden, d_scores) or (d_hidden, d_weights, d_scores)
        When ``weights`` and/or ``scores`` are given: their gradients follow, in this order,
        shaped like them, of ``grad_out``'s dtype, zero at padding positions.

    Notes
    -----
    For sequence ``b`` with tokens ``x_1 .. x_n`` and upstream gradient ``g`` of a mode:

    * ``mean``, ``sum``, ``mean_sqrt_len``, ``weighted_mean``: ``d x_j = c_j g`` with
      ``c_j = 1/n``, ``1``, ``1/sqrt(n)``, ``j / sum(1..n)``;
    * ``cls``, ``last``: ``g`` to the first / last token;
    * ``max``, ``min``: each feature's ``g`` goes to its winning token: the first token in
      token order holding the result (-0 counts below +0, as in the forward).  Under
      ``"propagate"`` a NaN wins (the first NaN); under ``"omit"`` NaNs never win, and a
      feature whose tokens are all NaN routes its gradient to the first token;
    * ``weighted`` (``out = sum(w_j x_j) / W``): ``d x_j = g w_j / W`` and
      ``d w_j = g . (x_j - out) / W``; a sequence whose weights are all 0 has zero
      gradients (its output is constant zeros);
    * ``attention`` (``a = softmax(s)``, ``out = sum(a_j x_j)``): ``d x_j = a_j g`` and
      ``d s_j = a_j (g . x_j - g . out)``.

    Under ``nan_policy="omit"`` a NaN value gets zero gradient and every other value the
    gradient of the forward's per-feature formula (the counts and coefficient totals over
    the non-NaN values).

    Examples
    --------
    >>> import numpy as np
    >>> from numbapool import grad
    >>> h = np.array([[[1., 5.], [3., 2.], [0., 0.]]])
    >>> mask = np.array([[1, 1, 0]])
    >>> grad.pool_tokens(np.ones((1, 2)), h, mask, "mean")
    array([[[0.5, 0.5],
            [0.5, 0.5],
            [0. , 0. ]]])
    >>> grad.pool_tokens(np.array([[1., 2.]]), h, mask, "max")[0]
    array([[0., 2.],
           [1., 0.],
           [0., 0.]])
    >>> d_h, d_w = grad.pool_tokens(np.ones((1, 2)), h[0, :2], mode="weighted",
    ...                             weights=[1., 1.], lengths=[2])
    >>> d_w
    array([ 0.25, -0.25])
    """
    backend, hidden = dispatch.resolve(hidden, device, name="hidden", stream=stream)
    run = _runner(backend)
    on_cuda = not isinstance(hidden, np.ndarray)
    check_choice(nan_policy, "nan_policy", NAN_POLICIES)
    dtype = np.dtype(hidden.dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"hidden has dtype {dtype}; token pooling accepts float16, float32, "
                        "float64")
    names = _parse_modes(mode)
    code_list = [MODE_CODES[n] for n in names]
    if hidden.ndim == 3:
        for name, value in (("lengths", lengths), ("offsets", offsets)):
            if value is not None:
                raise ValueError(f"{name} is for packed (T, D) hidden; padded (B, L, D) hidden "
                                 "takes attention_mask instead")
        batch, length, features = hidden.shape
        token_mask = _check_mask(attention_mask, batch, length)
        first = count = None
        coef_shape, coef_stride = (batch, length), length
    elif hidden.ndim == 2:
        if attention_mask is not None:
            raise ValueError("attention_mask is for padded (B, L, D) hidden; packed (T, D) "
                             "hidden takes lengths or offsets (no padding)")
        first, count = _check_counts(lengths, offsets, hidden.shape[0])
        batch, length, features = count.size, 0, hidden.shape[1]
        token_mask = None
        coef_shape, coef_stride = (hidden.shape[0],), 0
    else:
        raise ValueError(f"hidden must be padded (B, L, D) or packed (T, D); got shape "
                         f"{hidden.shape}")
    if on_cuda:
        grad_out = dispatch.follow_to_cuda(grad_out, "grad_out", stream)
    elif not isinstance(grad_out, np.ndarray):  # a CUDA grad_out under device="cpu"
        grad_out = dispatch.host_array(grad_out, "grad_out")
    _check_grad_out(grad_out, (batch, features * len(names)))
    coefs = {}
    for name, value, wanted, nonneg in (("weights", weights, M_WEIGHTED, True),
                                        ("scores", scores, M_ATTENTION, False)):
        used = wanted in code_list
        if used and value is None:
            raise ValueError(f"mode {TOKEN_MODES[wanted]!r} needs {name}=, shaped like the "
                             f"tokens {coef_shape}")
        if value is not None and not used:
            raise ValueError(f"{name} is only used by mode {TOKEN_MODES[wanted]!r}, which was "
                             "not requested")
        coefs[name] = (_coefficients(value, name, coef_shape, token_mask, nonneg) if used
                       else _EMPTY_F)
    runs = None if first is None else (first, count)
    top = None
    if M_WEIGHTED in code_list:
        # the forward's scaling (each sequence's largest weight becomes 1); the gradient of
        # the caller's weights is that of the scaled ones divided by the scale
        _, top = token_plan._sequence_max(coefs["weights"], batch, length, token_mask, runs,
                                          0.0)
        coefs["weights"] = token_plan.scale_weights(coefs["weights"], batch, length,
                                                    token_mask, runs,
                                                    float(np.finfo(np.float64).tiny))
    if M_ATTENTION in code_list:
        coefs["scores"] = token_plan.shift_scores(coefs["scores"], batch, length, token_mask,
                                                  runs)
    out_dtype = np.dtype(grad_out.dtype)
    plan = TokenPlan(
        packed=hidden.ndim == 2, batch=operator.index(batch), length=operator.index(length),
        features=operator.index(features), codes=np.array(code_list, np.int64),
        out_dtype=out_dtype, acc_dtype=np.dtype(np.float64), omit_nan=nan_policy == "omit",
        mask=token_mask, first=first, count=count, weights=coefs["weights"],
        scores=coefs["scores"], coef_stride=coef_stride,
    )
    if on_cuda:
        return _device_grad(run, plan, hidden, grad_out, out, top, coef_shape,
                            (hidden, attention_mask, weights, scores, lengths, offsets))
    g = np.ascontiguousarray(grad_out, dtype=np.float64)
    inputs = (hidden, grad_out, attention_mask, weights, scores, lengths, offsets)
    d_hidden, dcoef = run(plan, hidden, g, out, inputs)
    extra = []
    if weights is not None:
        dw = dcoef[0].reshape(coef_shape)
        top = np.broadcast_to(top, coef_shape)
        dw = np.divide(dw, top, out=np.zeros(coef_shape), where=top > 0)
        extra.append(dw.astype(out_dtype))
    if scores is not None:
        extra.append(dcoef[1].reshape(coef_shape).astype(out_dtype))
    return (d_hidden, *extra) if extra else d_hidden


def _device_grad(run, plan, hidden, grad_out, out, top, coef_shape, inputs):
    """The CUDA path: the backend's ``run_token_grad`` finishes the coefficient gradients
    too (``top``: the weights' scale), returning ``(d_hidden, d_weights, d_scores)``."""
    top = _EMPTY_F if top is None else np.broadcast_to(top, coef_shape).reshape(-1)
    d_hidden, d_w, d_s = run(plan, hidden, out, grad_out, inputs, top)
    extra = [r for r in (d_w, d_s) if r is not None]
    return (d_hidden, *extra) if extra else d_hidden
