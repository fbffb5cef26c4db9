"""numbapool's pools as torch custom operators (``torch.library.custom_op``).

Five operators carry every function of :mod:`numbapool.torch`:

* ``numbapool::pool(x, func, params)`` and ``numbapool::pool_with_indices(...)``: the
  spatial pool ``numbapool.<func>(x, **params)`` (``params`` holds its keyword
  arguments, :func:`encode`), the latter with the winners' indices;
* ``numbapool::pool_backward(grad, x, indices, func, params)``: ``numbapool.grad.<func>``;
* ``numbapool::max_unpool(values, indices, output_size)``, whose backward is a gather in
  torch operations;
* ``numbapool::pool_tokens(...)`` and ``numbapool::pool_tokens_backward(...)``.

Each has a fake (meta) implementation that gives the result's shape, dtype and strides,
and the differentiable ones an autograd formula (``register_autograd``), so
``torch.compile`` keeps them in its graph as opaque calls instead of breaking the graph.

Tensors reach numbapool without a copy: a CPU tensor as the NumPy array viewing its memory
(``t.detach().numpy()``), a CUDA tensor as it is (numbapool's CUDA path takes torch CUDA
tensors and returns them).  A ``channels_last`` tensor is pooled in numbapool's
channels_last layout through its permuted view ``(N, *spatial, C)``, which is contiguous,
and the result is permuted back, so it is a ``channels_last`` tensor again.
"""

import ast
import contextlib
from typing import Optional

import torch
from torch import Tensor

import numbapool

# the memory format of each rank that has a channels-last one
_LAST_FORMATS = {4: torch.channels_last, 5: torch.channels_last_3d}
# the spatial pools whose gradient routes to the forward's winners
EXTREME = ("max_pool", "adaptive_max_pool")


def encode(params: dict) -> str:
    """A pool's keyword arguments (ints, floats, bools, None and lists of them) as the
    ``str`` an operator takes: ``"name=value;..."`` (simple enough for torch.compile to
    trace, which it cannot do through ``json.dumps``)."""
    return ";".join([k + "=" + repr(v) for k, v in params.items()])


def decode(params: str) -> dict:
    return {k: ast.literal_eval(v) for k, v in (item.split("=", 1)
                                               for item in params.split(";") if item)}


def channels_last(t: Tensor) -> bool:
    """Whether ``t`` is stored channels-last (and not also plainly contiguous, as a tensor
    with one channel or a 1x1 plane can be)."""
    fmt = _LAST_FORMATS.get(t.dim())
    return (fmt is not None and t.is_contiguous(memory_format=fmt)
            and not t.is_contiguous())


def _to_last(t: Tensor) -> Tensor:
    """``(N, C, *spatial)`` -> the view ``(N, *spatial, C)``."""
    return t.permute(0, *range(2, t.dim()), 1)


def _from_last(t: Tensor) -> Tensor:
    """``(N, *spatial, C)`` -> the view ``(N, C, *spatial)``."""
    return t.permute(0, t.dim() - 1, *range(1, t.dim() - 1))


def as_array(t: Optional[Tensor]):
    """What numbapool takes for ``t``: a NumPy view of a CPU tensor, a CUDA tensor as is."""
    if t is None:
        return None
    t = t.detach()
    if t.device.type != "cpu":
        return t
    if t.dtype == torch.bfloat16:
        raise TypeError("numbapool.torch takes float16, float32 and float64 tensors, not "
                        "bfloat16; convert with t.float()")
    return t.resolve_conj().resolve_neg().numpy()


def as_tensor(a) -> Tensor:
    """A numbapool result as a tensor (NumPy arrays wrapped without a copy)."""
    return a if isinstance(a, Tensor) else torch.from_numpy(a)


def _layout_views(x: Tensor, *others):
    """``(layout, x, others)``: the tensors as numbapool reads them in ``x``'s layout."""
    if channels_last(x):
        return "channels_last", _to_last(x), [None if o is None else _to_last(o)
                                              for o in others]
    return "channels_first", x, list(others)


def _back(res: Tensor, layout: str) -> Tensor:
    return _from_last(res) if layout == "channels_last" else res


def _empty(shape, dtype, like: Tensor) -> Tensor:
    """A fresh tensor with the memory format the real operator gives for input ``like``."""
    if channels_last(like):
        return torch.empty(shape, dtype=dtype, device=like.device,
                           memory_format=_LAST_FORMATS[like.dim()])
    return torch.empty(shape, dtype=dtype, device=like.device)


def _result_dtype(func: str, dtype: torch.dtype) -> torch.dtype:
    if func in EXTREME or dtype.is_floating_point:
        return dtype
    return torch.float64  # averaging integers (the public functions refuse them before)


def out_spatial(func: str, params: dict, spatial) -> list:
    """The result's spatial sizes (numbapool's rules, for the fake implementations)."""
    from numbapool.geometry import pooled_size

    n = len(spatial)
    if func.startswith("adaptive"):
        return [L if o is None else o for L, o in zip(spatial, params["output_size"])]
    padding = params.get("padding", [0] * n)
    dilation = params.get("dilation", [1] * n)
    return [pooled_size(L, k, s, d, p, p, params.get("ceil_mode", False))
            for L, k, s, d, p in zip(spatial, params["kernel_size"], params["stride"],
                                     dilation, padding)]


def _run_pool(x: Tensor, func: str, params: str, indices: bool):
    kw = decode(params)
    layout, xv, _ = _layout_views(x)
    if indices:
        kw["return_indices"] = True
    res = getattr(numbapool, func)(as_array(xv), layout=layout, **kw)
    if indices:
        values, idx = res
        return _back(as_tensor(values), layout), _back(as_tensor(idx), layout)
    return _back(as_tensor(res), layout)


def _fake_shape(x: Tensor, func: str, params: str):
    kw = decode(params)
    n = len(kw["output_size"] if func.startswith("adaptive") else kw["kernel_size"])
    return (*x.shape[:-n], *out_spatial(func, kw, x.shape[-n:]))


@torch.library.custom_op("numbapool::pool", mutates_args=())
def pool(x: Tensor, func: str, params: str) -> Tensor:
    """``numbapool.<func>(x, **decode(params))`` in ``x``'s memory format."""
    return _run_pool(x, func, params, False)


@pool.register_fake
def _(x, func, params):
    return _empty(_fake_shape(x, func, params), _result_dtype(func, x.dtype), x)


@torch.library.custom_op("numbapool::pool_with_indices", mutates_args=())
def pool_with_indices(x: Tensor, func: str, params: str) -> tuple[Tensor, Tensor]:
    """:func:`pool` with ``return_indices=True``: ``(values, int64 indices)``."""
    return _run_pool(x, func, params, True)


@pool_with_indices.register_fake
def _(x, func, params):
    shape = _fake_shape(x, func, params)
    return _empty(shape, x.dtype, x), _empty(shape, torch.int64, x)


@torch.library.custom_op("numbapool::pool_backward", mutates_args=())
def pool_backward(grad: Tensor, x: Tensor, indices: Optional[Tensor], func: str,
                  params: str) -> Tensor:
    """``numbapool.grad.<func>(grad, x, **params)`` (with the forward's ``indices``)."""
    from numbapool import grad as nbp_grad

    kw = decode(params)
    layout, xv, (gv, iv) = _layout_views(x, grad, indices)
    trust = contextlib.nullcontext()
    if func in EXTREME:
        kw["indices"] = as_array(iv)
        # the forward's own, saved by autograd (which rejects in-place changes to them): in
        # range, so CUDA need not check them and wait for the verdict
        trust = nbp_grad.spatial._trusting_indices()
    with trust:
        res = getattr(nbp_grad, func)(as_array(gv), as_array(xv), layout=layout, **kw)
    return _back(as_tensor(res), layout)


@pool_backward.register_fake
def _(grad, x, indices, func, params):
    return _empty(x.shape, grad.dtype, x)


def _pool_setup(ctx, inputs, output):
    x, func, params = inputs
    ctx.save_for_backward(x)
    ctx.func, ctx.params = func, params


def _pool_grad(ctx, grad):
    (x,) = ctx.saved_tensors
    return pool_backward(grad, x, None, ctx.func, ctx.params), None, None


def _indexed_setup(ctx, inputs, output):
    x, func, params = inputs
    # the indices take no gradient: without this autograd fills a zero int64 tensor as
    # big as the indices for them at every backward
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(x, output[1])
    ctx.func, ctx.params = func, params


def _indexed_grad(ctx, grad, _grad_indices):
    if grad is None:  # only the indices were used (grads are not materialised)
        return None, None, None
    x, indices = ctx.saved_tensors
    return pool_backward(grad, x, indices, ctx.func, ctx.params), None, None


torch.library.register_autograd("numbapool::pool", _pool_grad, setup_context=_pool_setup)
torch.library.register_autograd("numbapool::pool_with_indices", _indexed_grad,
                                setup_context=_indexed_setup)


# --------------------------------------------------------------------------- max_unpool


@torch.library.custom_op("numbapool::max_unpool", mutates_args=())
def max_unpool(values: Tensor, indices: Tensor, output_size: list[int]) -> Tensor:
    """``numbapool.max_unpool(values, indices, output_size)`` in ``values``' format."""
    from numbapool.unpool import max_unpool as unpool

    layout, vv, (iv,) = _layout_views(values, indices)
    res = unpool(as_array(vv), as_array(iv), tuple(output_size), layout=layout)
    return _back(as_tensor(res), layout)


@max_unpool.register_fake
def _(values, indices, output_size):
    n = len(output_size)
    return _empty((*values.shape[:-n], *output_size), values.dtype, values)


def _unpool_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])
    ctx.rank = len(inputs[2])


def _unpool_grad(ctx, grad):
    (indices,) = ctx.saved_tensors
    n = ctx.rank
    flat = grad.flatten(-n) if n > 1 else grad
    picked = flat.gather(-1, indices.flatten(-n) if n > 1 else indices)
    return picked.reshape(indices.shape), None, None


torch.library.register_autograd("numbapool::max_unpool", _unpool_grad,
                                setup_context=_unpool_setup)


# --------------------------------------------------------------------------- pool_tokens


def _token_kwargs(attention_mask, weights, scores, lengths, offsets):
    return {"attention_mask": as_array(attention_mask), "weights": as_array(weights),
            "scores": as_array(scores), "lengths": as_array(lengths),
            "offsets": as_array(offsets)}


@torch.library.custom_op("numbapool::pool_tokens", mutates_args=())
def pool_tokens(hidden: Tensor, attention_mask: Optional[Tensor], modes: str,
                weights: Optional[Tensor], scores: Optional[Tensor], lengths: Optional[Tensor],
                offsets: Optional[Tensor], nan_policy: str) -> Tensor:
    """``numbapool.pool_tokens`` (``modes``: the mode names joined by commas)."""
    res = numbapool.pool_tokens(as_array(hidden), mode=modes.split(","), nan_policy=nan_policy,
                                **_token_kwargs(attention_mask, weights, scores, lengths,
                                                offsets))
    return as_tensor(res)


@pool_tokens.register_fake
def _(hidden, attention_mask, modes, weights, scores, lengths, offsets, nan_policy):
    if hidden.dim() == 3:
        batch = hidden.shape[0]
    else:
        batch = lengths.shape[0] if lengths is not None else offsets.shape[0] - 1
    return hidden.new_empty((batch, hidden.shape[-1] * len(modes.split(","))))


@torch.library.custom_op("numbapool::pool_tokens_backward", mutates_args=())
def pool_tokens_backward(grad: Tensor, hidden: Tensor, attention_mask: Optional[Tensor],
                         modes: str, weights: Optional[Tensor], scores: Optional[Tensor],
                         lengths: Optional[Tensor], offsets: Optional[Tensor],
                         nan_policy: str) -> tuple[Tensor, Tensor, Tensor]:
    """``numbapool.grad.pool_tokens``: ``(d_hidden, d_weights, d_scores)``, the last two
    empty when ``weights`` / ``scores`` are ``None``."""
    from numbapool import grad as nbp_grad

    res = nbp_grad.pool_tokens(as_array(grad), as_array(hidden), mode=modes.split(","),
                               nan_policy=nan_policy,
                               **_token_kwargs(attention_mask, weights, scores, lengths,
                                               offsets))
    res = list(res) if isinstance(res, tuple) else [res]
    d_hidden = as_tensor(res.pop(0))
    empty = grad.new_empty(0)
    d_w = as_tensor(res.pop(0)) if weights is not None else empty
    d_s = as_tensor(res.pop(0)) if scores is not None else empty.clone()
    return d_hidden, d_w, d_s


@pool_tokens_backward.register_fake
def _(grad, hidden, attention_mask, modes, weights, scores, lengths, offsets, nan_policy):
    def like(t):
        return grad.new_empty(0) if t is None else grad.new_empty(t.shape)

    return grad.new_empty(hidden.shape), like(weights), like(scores)


def _tokens_setup(ctx, inputs, output):
    hidden, mask, modes, weights, scores, lengths, offsets, nan_policy = inputs
    ctx.save_for_backward(hidden, mask, weights, scores, lengths, offsets)
    ctx.modes, ctx.nan_policy = modes, nan_policy


def _tokens_grad(ctx, grad):
    hidden, mask, weights, scores, lengths, offsets = ctx.saved_tensors
    d_h, d_w, d_s = pool_tokens_backward(grad, hidden, mask, ctx.modes, weights, scores,
                                         lengths, offsets, ctx.nan_policy)
    d_w = None if weights is None else d_w.to(weights.dtype)
    d_s = None if scores is None else d_s.to(scores.dtype)
    return d_h.to(hidden.dtype), None, None, d_w, d_s, None, None, None


torch.library.register_autograd("numbapool::pool_tokens", _tokens_grad,
                                setup_context=_tokens_setup)
