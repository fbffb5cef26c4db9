"""``torch.nn.functional``'s pooling functions, computed by numbapool.

Same names, signatures and defaults as torch's; tensors in, tensors out, on the input's
device, differentiable.  See :mod:`numbapool.torch` for what differs from torch.
"""

from typing import Optional

import torch
from torch import Tensor

from . import _ops

__all__ = [f"{name}{n}d" for name in ("max_pool", "avg_pool", "lp_pool", "adaptive_max_pool",
                                      "adaptive_avg_pool", "max_unpool") for n in (1, 2, 3)]
__all__ += ["pool_tokens"]


def _ints(value, n: int, name: str) -> list:
    """An int or a length-``n`` sequence of ints as a list of ``n`` ints (torch's rule)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a sequence of {n} ints; got {value!r}")
    if isinstance(value, int):
        return [value] * n
    try:
        items = [int(v) for v in value]
    except TypeError:
        raise TypeError(f"{name} must be an int or a sequence of {n} ints; got {value!r}") \
            from None
    if len(items) == 1:
        items = items * n
    if len(items) != n:
        raise ValueError(f"{name} must be an int or {n} ints; got {value!r}")
    return items


def _check_input(input, n: int, func: str):
    if not isinstance(input, Tensor):
        raise TypeError(f"input must be a torch.Tensor; got {type(input).__name__}")
    if input.dim() not in (n + 1, n + 2):
        raise ValueError(
            f"{func}{n}d takes an unbatched (C, *spatial) or batched (N, C, *spatial) input "
            f"with {n} spatial dimensions, i.e. {n + 1}-D or {n + 2}-D; got shape "
            f"{tuple(input.shape)}")


def _check_float(input, func: str):
    if not input.dtype.is_floating_point:
        raise TypeError(f"{func} takes a floating-point input (float16, float32, float64); got "
                        f"{input.dtype} (torch would truncate an integer average; convert with "
                        "input.float())")


def _wants_grad(input) -> bool:
    return torch.is_grad_enabled() and input.requires_grad


def _sliding(n, kernel_size, stride, padding):
    kernel = _ints(kernel_size, n, "kernel_size")
    stride = kernel if stride is None or (not isinstance(stride, int) and len(stride) == 0) \
        else _ints(stride, n, "stride")
    return {"kernel_size": kernel, "stride": stride, "padding": _ints(padding, n, "padding")}


def _call(input, func, params, indices=False):
    params = _ops.encode(params)
    if indices:
        return _ops.pool_with_indices(input, func, params)
    return _ops.pool(input, func, params)


def _max_pool(n, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    _check_input(input, n, "max_pool")
    params = _sliding(n, kernel_size, stride, padding)
    params.update(dilation=_ints(dilation, n, "dilation"), ceil_mode=bool(ceil_mode))
    # the winners' indices are computed only when the caller or the backward needs them
    if return_indices or _wants_grad(input):
        values, indices = _call(input, "max_pool", params, indices=True)
        return (values, indices) if return_indices else values
    return _call(input, "max_pool", params)


def _avg_pool(n, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    _check_input(input, n, "avg_pool")
    _check_float(input, f"avg_pool{n}d")
    params = _sliding(n, kernel_size, stride, padding)
    params.update(ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad),
                  divisor_override=divisor_override)
    return _call(input, "avg_pool", params)


def _lp_pool(n, input, norm_type, kernel_size, stride, ceil_mode):
    _check_input(input, n, "lp_pool")
    _check_float(input, f"lp_pool{n}d")
    params = _sliding(n, kernel_size, stride, 0)
    if not ceil_mode:
        del params["padding"]
        return _call(input, "lp_pool", dict(params, norm_type=float(norm_type)))
    # torch scales a last, partial window's mean by the full kernel size (its lp_pool is
    # avg_pool of x**p times the kernel size); numbapool's lp_pool sums the in-bounds part
    pooled = _call(input.pow(norm_type), "avg_pool",
                   dict(params, ceil_mode=True, count_include_pad=True, divisor_override=None))
    size = 1
    for k in params["kernel_size"]:
        size *= k
    return (torch.sign(pooled) * torch.relu(torch.abs(pooled))).mul(size).pow(1.0 / norm_type)


def _output_size(n, output_size):
    if output_size is None or isinstance(output_size, int):
        return [output_size] * n
    size = [None if v is None else int(v) for v in output_size]
    if len(size) == 1:
        size *= n
    if len(size) != n:
        raise ValueError(f"output_size must be an int or {n} entries; got {output_size!r}")
    return size


def _adaptive_max_pool(n, input, output_size, return_indices):
    _check_input(input, n, "adaptive_max_pool")
    params = {"output_size": _output_size(n, output_size)}
    if return_indices or _wants_grad(input):
        values, indices = _call(input, "adaptive_max_pool", params, indices=True)
        return (values, indices) if return_indices else values
    return _call(input, "adaptive_max_pool", params)


def _adaptive_avg_pool(n, input, output_size):
    _check_input(input, n, "adaptive_avg_pool")
    _check_float(input, f"adaptive_avg_pool{n}d")
    return _call(input, "adaptive_avg_pool", {"output_size": _output_size(n, output_size)})


def _max_unpool(n, input, indices, kernel_size, stride, padding, output_size):
    _check_input(input, n, "max_unpool")
    p = _sliding(n, kernel_size, stride, padding)
    default = [(L - 1) * s + k - 2 * pad for L, k, s, pad in
               zip(input.shape[-n:], p["kernel_size"], p["stride"], p["padding"])]
    if output_size is None:
        size = default
    else:
        size = [int(v) for v in output_size]
        if len(size) in (n + 1, n + 2):  # a full shape, as torch accepts
            size = size[-n:]
        if len(size) != n:
            raise ValueError(f"output_size must have {n}, {n + 1} or {n + 2} entries; got "
                             f"{output_size!r}")
        for d, (want, lo, s) in enumerate(zip(size, default, p["stride"])):
            if not lo - s < want < lo + s:
                raise ValueError(f"output_size {output_size!r}: dimension {d} must be between "
                                 f"{lo - s + 1} and {lo + s - 1}; got {want}")
    return _ops.max_unpool(input, indices, size)


def _make(kind, n):
    """The ``{kind}{n}d`` function, with torch's signature."""
    if kind == "max_pool":
        def f(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
              ceil_mode: bool = False, return_indices: bool = False):
            return _max_pool(n, input, kernel_size, stride, padding, dilation, ceil_mode,
                             return_indices)
    elif kind == "avg_pool" and n == 1:
        def f(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
              count_include_pad: bool = True):
            return _avg_pool(n, input, kernel_size, stride, padding, ceil_mode,
                             count_include_pad, None)
    elif kind == "avg_pool":
        def f(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
              count_include_pad: bool = True, divisor_override: Optional[int] = None):
            return _avg_pool(n, input, kernel_size, stride, padding, ceil_mode,
                             count_include_pad, divisor_override)
    elif kind == "lp_pool":
        def f(input: Tensor, norm_type: float, kernel_size, stride=None,
              ceil_mode: bool = False):
            return _lp_pool(n, input, norm_type, kernel_size, stride, ceil_mode)
    elif kind == "adaptive_max_pool":
        def f(input: Tensor, output_size, return_indices: bool = False):
            return _adaptive_max_pool(n, input, output_size, return_indices)
    elif kind == "adaptive_avg_pool":
        def f(input: Tensor, output_size):
            return _adaptive_avg_pool(n, input, output_size)
    else:
        def f(input: Tensor, indices: Tensor, kernel_size, stride=None, padding=0,
              output_size=None):
            return _max_unpool(n, input, indices, kernel_size, stride, padding, output_size)
    f.__name__ = f.__qualname__ = f"{kind}{n}d"
    f.__doc__ = (f"``torch.nn.functional.{kind}{n}d``, computed by numbapool (same arguments "
                 "and result; differentiable).")
    return f


for _kind in ("max_pool", "avg_pool", "lp_pool", "adaptive_max_pool", "adaptive_avg_pool",
              "max_unpool"):
    for _n in (1, 2, 3):
        globals()[f"{_kind}{_n}d"] = _make(_kind, _n)
del _kind, _n


def _aux(value):
    if value is None or isinstance(value, Tensor):
        return value
    return torch.as_tensor(value)


def pool_tokens(hidden: Tensor, attention_mask=None, mode="mean", *, weights=None,
                scores=None, lengths=None, offsets=None, nan_policy: str = "propagate"):
    """:func:`numbapool.pool_tokens` on tensors, differentiable with respect to ``hidden``,
    ``weights`` and ``scores``.

    The arguments are :func:`numbapool.pool_tokens`' (``attention_mask``, ``weights``,
    ``scores``, ``lengths``, ``offsets`` may be tensors or array-likes); the result is a
    ``(B, D * len(modes))`` tensor on ``hidden``'s device.

    Examples
    --------
    >>> import torch
    >>> import numbapool.torch as nt
    >>> h = torch.arange(12.).reshape(2, 3, 2).requires_grad_()
    >>> mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    >>> nt.pool_tokens(h, mask, "mean").detach()
    tensor([[1., 2.],
            [8., 9.]])
    >>> nt.pool_tokens(h, mask, "mean").sum().backward()
    >>> h.grad[0]
    tensor([[0.5000, 0.5000],
            [0.5000, 0.5000],
            [0.0000, 0.0000]])
    """
    if not isinstance(hidden, Tensor):
        raise TypeError(f"hidden must be a torch.Tensor; got {type(hidden).__name__}")
    modes = [mode] if isinstance(mode, str) else list(mode)
    if any(not isinstance(m, str) or "," in m for m in modes):
        raise TypeError(f"mode must be a mode name or a sequence of names; got {mode!r}")
    return _ops.pool_tokens(hidden, _aux(attention_mask), ",".join(modes), _aux(weights),
                            _aux(scores), _aux(lengths), _aux(offsets), nan_policy)
