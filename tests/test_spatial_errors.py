"""Bad calls as a table: (call, exception type, fragment of the message).

The contract: ``TypeError`` for a wrong type or dtype, ``ValueError`` for a wrong value or
shape, raised before any kernel runs, with a message that names the parameter.
"""

import re

import numpy as np
import pytest

import numbapool as nbp

X = np.zeros((2, 3, 8, 8), np.float32)  # (batch, channel, H, W)
X1 = np.zeros((2, 3, 8), np.float32)
V, I = np.zeros((2, 3, 4, 4), np.float32), np.zeros((2, 3, 4, 4), np.int64)
RO = np.zeros((2, 3, 4, 4), np.float32)
RO.flags.writeable = False

T, E = TypeError, ValueError

CASES = {
    # x itself
    "x list": (lambda: nbp.max_pool([[1.0, 2.0]], (1,)), T, "x must be a NumPy ndarray"),
    "x scalar": (lambda: nbp.avg_pool(3.0, (1,)), T, "x must be a NumPy ndarray"),
    "x complex max": (lambda: nbp.max_pool(X.astype(np.complex64), 2), T, "complex64"),
    "x complex avg": (lambda: nbp.avg_pool(X.astype(np.complex128), 2), T, "complex128"),
    "x bool max": (lambda: nbp.max_pool(X.astype(bool), 2), T, "bool"),
    "x bool avg": (lambda: nbp.avg_pool(X.astype(bool), 2), T, "bool"),
    "x object": (lambda: nbp.min_pool(X.astype(object), 2), T, "object"),
    "x str": (lambda: nbp.global_max_pool(np.array([["a"]]), 1), T, "dtype"),
    "x datetime": (lambda: nbp.adaptive_max_pool(X.astype("M8[s]"), 2), T, "datetime64"),
    "x complex lp": (lambda: nbp.lp_pool(X.astype(np.complex64), 2, 2), T, "complex64"),
    "x complex gem": (lambda: nbp.gem_pool(X.astype(np.complex64)), T, "complex64"),
    "x 0-d": (lambda: nbp.max_pool(np.float32(1.0)[()], 1), T, "ndarray"),
    "x 0-d array": (lambda: nbp.max_pool(np.zeros((), np.float32), (1,)), E, "ndim"),
    "x too few dims": (lambda: nbp.max_pool(np.zeros(4), (2, 2)), E, "ndim"),
    "x too few dims cl": (lambda: nbp.max_pool(np.zeros((4, 4)), (2, 2),
                                               layout="channels_last"), E, "ndim"),
    "int kernel, ndim 2": (lambda: nbp.max_pool(np.zeros((4, 4)), 2), E, "kernel_size"),
    "int kernel, ndim 1": (lambda: nbp.avg_pool(np.zeros(4), 2), E, "ndim >= 3"),
    "int output, ndim 2": (lambda: nbp.adaptive_avg_pool(np.zeros((4, 4)), 2), E,
                           "output_size"),
    "empty spatial": (lambda: nbp.max_pool(np.zeros((2, 3, 0)), (1,)), E, "spatial dimension"),
    "empty spatial adaptive": (lambda: nbp.adaptive_max_pool(np.zeros((2, 0, 3)), (2, 2)), E,
                               "size 0"),
    "empty spatial global": (lambda: nbp.global_avg_pool(np.zeros((2, 3, 0))), E, "size 0"),
    # kernel_size
    "kernel 0": (lambda: nbp.max_pool(X, 0), E, "kernel_size must be >= 1"),
    "kernel negative": (lambda: nbp.avg_pool(X, (2, -1)), E, "kernel_size"),
    "kernel float": (lambda: nbp.max_pool(X, 2.0), T, "kernel_size"),
    "kernel float in tuple": (lambda: nbp.max_pool(X, (2, 2.5)), T, "kernel_size"),
    "kernel bool": (lambda: nbp.max_pool(X, True), T, "kernel_size"),
    "kernel str": (lambda: nbp.max_pool(X, "2"), T, "kernel_size"),
    "kernel None": (lambda: nbp.avg_pool(X, None), T, "kernel_size"),
    "kernel empty": (lambda: nbp.max_pool(X, ()), E, "kernel_size"),
    "kernel too big": (lambda: nbp.max_pool(X, (9, 2)), E, "window spans"),
    "kernel huge": (lambda: nbp.max_pool(X, 2**70), E, "kernel_size"),
    "alias kernel length": (lambda: nbp.max_pool2d(X, (2, 2, 2)), E, "kernel_size"),
    "lp kernel 0": (lambda: nbp.lp_pool(X, 2, (0, 2)), E, "kernel_size"),
    # stride
    "stride 0": (lambda: nbp.max_pool(X, 2, 0), E, "stride must be >= 1"),
    "stride negative": (lambda: nbp.avg_pool(X, 2, (1, -2)), E, "stride"),
    "stride length": (lambda: nbp.max_pool(X, (2, 2), (1,)), E, "stride"),
    "stride float": (lambda: nbp.max_pool(X, 2, 1.5), T, "stride"),
    "stride huge": (lambda: nbp.max_pool(X, 2, 2**64), E, "stride"),
    "lp stride 0": (lambda: nbp.lp_pool(X, 2, 2, 0), E, "stride"),
    # padding
    "padding negative": (lambda: nbp.max_pool(X, 3, 1, -1), E, "padding must be >= 0"),
    "padding negative pair": (lambda: nbp.avg_pool(X, 3, 1, ((0, 1), (-1, 0))), E,
                              "padding"),
    "padding string": (lambda: nbp.max_pool(X, 3, 1, "full"), E, "padding"),
    "padding length": (lambda: nbp.max_pool(X, 3, 1, (1, 1, 1)), E, "padding"),
    "padding triple": (lambda: nbp.max_pool(X, 3, 1, ((1, 1, 1), (0, 0))), T, "padding"),
    "padding float": (lambda: nbp.avg_pool(X, 3, 1, 1.0), T, "padding"),
    "padding None": (lambda: nbp.max_pool(X, 3, 1, None), T, "padding"),
    "padding empties a window": (lambda: nbp.max_pool(X, 2, 2, 2), E, "holds no input"),
    "padding after empties": (lambda: nbp.max_pool(X, (1, 1), 1, ((0, 0), (0, 1))), E,
                              "holds no input"),
    "padding huge": (lambda: nbp.max_pool(X, 2, padding=10**12), E, "holds no input"),
    "padding beyond int64": (lambda: nbp.avg_pool(X, 2, padding=2**63), E, "padding"),
    "dilation skips the input": (lambda: nbp.max_pool(np.zeros((1, 1)), (2,),
                                                      padding=((1, 2),), dilation=3), E,
                                 "holds no input"),
    "nan_policy None max": (lambda: nbp.max_pool(X, 2, nan_policy=None), E, "nan_policy"),
    # dilation
    "dilation 0": (lambda: nbp.max_pool(X, 2, dilation=0), E, "dilation must be >= 1"),
    "dilation float": (lambda: nbp.max_pool(X, 2, dilation=1.0), T, "dilation"),
    "dilation length": (lambda: nbp.avg_pool(X, (2, 2), dilation=(1, 1, 1)), E, "dilation"),
    "dilation too wide": (lambda: nbp.max_pool(X, 3, dilation=4), E, "window spans"),
    # flags
    "ceil_mode str": (lambda: nbp.max_pool(X, 2, ceil_mode="yes"), T, "ceil_mode"),
    "ceil_mode None": (lambda: nbp.lp_pool(X, 2, 2, ceil_mode=None), T, "ceil_mode"),
    "return_indices int": (lambda: nbp.max_pool(X, 2, return_indices=1), T, "return_indices"),
    "count_include_pad str": (lambda: nbp.avg_pool(X, 2, count_include_pad="no"), T,
                              "count_include_pad"),
    "keepdims None": (lambda: nbp.global_max_pool(X, keepdims=None), T, "keepdims"),
    "adaptive return_indices": (lambda: nbp.adaptive_max_pool(X, 2, return_indices="y"), T,
                                "return_indices"),
    # choices
    "layout NHWC": (lambda: nbp.max_pool(X, 2, layout="NHWC"), E, "layout"),
    "layout None": (lambda: nbp.avg_pool(X, 2, layout=None), E, "layout"),
    "layout global": (lambda: nbp.global_avg_pool(X, layout="channels-last"), E, "layout"),
    "layout gem": (lambda: nbp.gem_pool(X, layout=1), E, "layout"),
    "nan_policy raise": (lambda: nbp.max_pool(X, 2, nan_policy="raise"), E, "nan_policy"),
    "nan_policy None": (lambda: nbp.avg_pool(X, 2, nan_policy=None), E, "nan_policy"),
    "nan_policy adaptive": (lambda: nbp.adaptive_avg_pool(X, 2, nan_policy="ignore"), E,
                            "nan_policy"),
    "nan_policy global": (lambda: nbp.global_max_pool(X, nan_policy=""), E, "nan_policy"),
    "device gpu": (lambda: nbp.max_pool(X, 2, device="gpu"), E, "device"),
    # divisor_override
    "divisor 0": (lambda: nbp.avg_pool(X, 2, divisor_override=0), E, "divisor_override"),
    "divisor nan": (lambda: nbp.avg_pool(X, 2, divisor_override=float("nan")), E,
                    "divisor_override"),
    "divisor inf": (lambda: nbp.avg_pool(X, 2, divisor_override=float("inf")), E,
                    "divisor_override"),
    "divisor str": (lambda: nbp.avg_pool(X, 2, divisor_override="2"), T, "divisor_override"),
    "divisor bool": (lambda: nbp.avg_pool(X, 2, divisor_override=True), T, "divisor_override"),
    # lp / gem exponents
    "norm_type negative": (lambda: nbp.lp_pool(X, -1, 2), E, "norm_type"),
    "norm_type zero": (lambda: nbp.lp_pool(X, 0, 2), E, "norm_type"),
    "norm_type inf": (lambda: nbp.lp_pool(X, float("inf"), 2), E, "norm_type"),
    "norm_type nan": (lambda: nbp.lp_pool(X, float("nan"), 2), E, "norm_type"),
    "norm_type str": (lambda: nbp.lp_pool(X, "2", 2), T, "norm_type"),
    "norm_type None": (lambda: nbp.lp_pool(X, None, 2), T, "norm_type"),
    "gem p negative": (lambda: nbp.gem_pool(X, p=-3.0), E, "p must be"),
    "gem p zero": (lambda: nbp.gem_pool(X, p=0), E, "p must be"),
    "gem p str": (lambda: nbp.gem_pool(X, p="3"), T, "p must be"),
    "gem eps negative": (lambda: nbp.gem_pool(X, eps=-1e-6), E, "eps"),
    "gem eps nan": (lambda: nbp.gem_pool(X, eps=float("nan")), E, "eps"),
    # output_size
    "output_size 0": (lambda: nbp.adaptive_max_pool(X, 0), E, "output_size must be >= 1"),
    "output_size negative": (lambda: nbp.adaptive_avg_pool(X, (2, -1)), E, "output_size"),
    "output_size length": (lambda: nbp.adaptive_avg_pool2d(X, (2, 2, 2)), E,
                           "output_size must have 2 entries"),
    "output_size float": (lambda: nbp.adaptive_max_pool(X, 2.0), T, "output_size"),
    "output_size str": (lambda: nbp.adaptive_max_pool(X, "2"), T, "output_size"),
    "output_size None": (lambda: nbp.adaptive_avg_pool(X, None), T, "output_size"),
    "output_size empty": (lambda: nbp.adaptive_avg_pool(X, ()), E, "output_size"),
    "output_size beyond int64": (lambda: nbp.adaptive_max_pool(X, 2**63), E, "output_size"),
    # spatial_dims
    "spatial_dims 0": (lambda: nbp.global_max_pool(X, 0), E, "spatial_dims"),
    "spatial_dims negative": (lambda: nbp.gem_pool(X, spatial_dims=-1), E, "spatial_dims"),
    "spatial_dims float": (lambda: nbp.global_avg_pool(X, 2.0), T, "spatial_dims"),
    "spatial_dims tuple": (lambda: nbp.global_avg_pool(X, (2, 3)), T, "spatial_dims"),
    "spatial_dims too many": (lambda: nbp.global_max_pool(X, 5), E, "ndim"),
    "spatial_dims vs alias": (lambda: nbp.global_max_pool2d(X, 3), E, "spatial_dims"),
    "spatial_dims None on 2-D": (lambda: nbp.global_avg_pool(np.zeros((3, 4))), E,
                                 "spatial_dims"),
    # out
    "out shape": (lambda: nbp.max_pool(X, 2, out=np.zeros((2, 3, 4, 5), np.float32)), E,
                  "out has shape"),
    "out dtype": (lambda: nbp.max_pool(X, 2, out=np.zeros((2, 3, 4, 4))), T, "out has dtype"),
    "out dtype avg int": (lambda: nbp.avg_pool(X.astype(np.int32), 2, out=V), T,
                          "out has dtype"),
    "out list": (lambda: nbp.avg_pool(X, 2, out=[[0.0]]), T, "out"),
    "out read-only": (lambda: nbp.avg_pool(X, 2, out=RO), E, "read-only"),
    "out overlaps x": (lambda: nbp.max_pool(X, 1, out=X), E, "overlaps"),
    "out pair without indices": (lambda: nbp.max_pool(X, 2, out=(V, I)), T, "out"),
    "out single with indices": (lambda: nbp.max_pool(X, 2, return_indices=True, out=V), T,
                                "(values, indices) pair"),
    "out triple with indices": (lambda: nbp.max_pool(X, 2, return_indices=True,
                                                     out=(V, I, I)), T, "pair"),
    "out indices dtype": (lambda: nbp.max_pool(X, 2, return_indices=True,
                                               out=(V, I.astype(np.int32))), T, "out[1]"),
    "out indices shape": (lambda: nbp.adaptive_max_pool(X, 4, return_indices=True,
                                                        out=(V, I[..., :2])), E, "out[1]"),
    "out values dtype": (lambda: nbp.max_pool(X, 2, return_indices=True,
                                              out=(V.astype(np.float64), I)), T, "out[0]"),
    "out global keepdims": (lambda: nbp.global_avg_pool(X1, out=np.zeros((2, 3, 1),
                                                                         np.float32)), E,
                            "out has shape"),
}


@pytest.mark.parametrize("call, exc, fragment", CASES.values(), ids=CASES.keys())
def test_bad_input(call, exc, fragment):
    with pytest.raises(exc, match=re.escape(fragment)):
        call()


@pytest.mark.parametrize("name", ["max_pool", "avg_pool"])
def test_messages_say_what_was_given_and_accepted(name):
    with pytest.raises(ValueError) as info:
        getattr(nbp, name)(X, 2, 0)
    assert "stride" in str(info.value) and "0" in str(info.value) and ">= 1" in str(info.value)
    with pytest.raises(TypeError) as info:
        getattr(nbp, name)(X.astype(np.complex64), 2)
    assert "complex64" in str(info.value) and "float32" in str(info.value)


def test_cuda_without_a_device():
    """Asking for "cuda" where none is available is a RuntimeError that says why."""
    available = getattr(nbp, "cuda_available", lambda: False)()
    if available:
        pytest.skip("a CUDA device (or the simulator) is available")
    with pytest.raises(RuntimeError, match="(?i)cuda"):
        nbp.max_pool(X, 2, device="cuda")
