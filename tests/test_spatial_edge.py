"""Edge cases of the spatial pools: window geometry (by hand, in closed form), NaN policies,
index ties, empty batches, high rank, unbatched input, ``out=``, float16 arithmetic,
aliases and global-pool axes."""

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numbapool as nbp
import reference
from conftest import LAYOUTS, as_view, assert_matches, check_reference, make_values
from numbapool import geometry

NAN = np.nan


# --------------------------------------------------------------------------- geometry by hand


def test_same_padding_ceil_mode_and_divisors_by_hand():
    six, five = np.arange(6.0), np.arange(5.0)
    # "same": out = ceil(L/s); total padding (out-1)*s + k - L, the odd cell after
    np.testing.assert_array_equal(nbp.max_pool(six, (3,), 2, "same"), [2, 4, 5])  # (0, 1)
    np.testing.assert_array_equal(nbp.max_pool(five, (3,), 2, "same"), [1, 3, 4])  # (1, 1)
    np.testing.assert_array_equal(nbp.max_pool(five, (3,), 1, "valid"), [2, 3, 4])
    # ceil_mode: a third window would start at 5 == L, in the right padding: dropped
    np.testing.assert_array_equal(nbp.max_pool(five, (2,), 3, 1, ceil_mode=True), [0, 3])
    # the last window {5, 6, 7} overhangs the padded range [-1, 7): divisor 2, not 3
    np.testing.assert_allclose(nbp.avg_pool(six, (3,), 2, 1, True), [1 / 3, 2, 4, 2.5])
    np.testing.assert_allclose(nbp.avg_pool(six, (3,), 2, 1, True, False), [0.5, 2, 4, 5])
    # dilation: windows {-1, 1} and {1, 3}, {3, 5}
    np.testing.assert_array_equal(nbp.max_pool(six, (2,), 2, 1, dilation=2), [1, 3, 5])
    np.testing.assert_allclose(nbp.avg_pool(six, (2,), 2, 1, dilation=2), [0.5, 2, 4])
    # lp over the in-bounds part of a partial ceil_mode window: sqrt(4**2) (torch: sqrt(2*16))
    np.testing.assert_allclose(nbp.lp_pool(np.array([3.0, 4.0, 4.0]), 2, (2,), ceil_mode=True),
                               [5.0, 4.0])
    # a negative power sum gives 0
    np.testing.assert_array_equal(nbp.lp_pool(np.array([-2.0, 1.0]), 3, (2,)), [0.0])
    # adaptive windows [floor(i*L/O), ceil((i+1)*L/O)) overlap when L/O is not whole
    np.testing.assert_array_equal(nbp.adaptive_max_pool(five, (3,)), [1, 3, 4])
    np.testing.assert_array_equal(nbp.adaptive_max_pool(np.arange(2.0), (5,)),
                                  [0, 0, 1, 1, 1])


# --------------------------------------------------------------------------- geometry in closed form


@pytest.mark.parametrize("d", [10**8, 2**34, 2**59])
def test_empty_window_of_a_huge_dilation_is_found_at_once(d):
    """Taps p and p + d, 10 inputs: windows 0..4 reach [0, 10) through their second tap,
    window 5 starts at 0 - d + 10 and holds nothing.  Decided without listing the d windows
    (which once took seconds and gigabytes, or failed with MemoryError)."""
    x = np.arange(10.0).reshape(1, 1, 10)
    nbp.max_pool1d(x, 2)  # imports the backend outside the measurement
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"spatial dimension 0: output window 5 holds no "
                                             r"input element .*dilation " + str(d)):
            nbp.max_pool1d(x, 2, stride=1, padding=d - 5, dilation=d)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def _first_empty_brute(L, k, s, d, before, out_size):
    for o in range(out_size):
        p = o * s - before
        if not any(0 <= p + j * d < L for j in range(k)):
            return o
    return None


@settings(max_examples=3000, deadline=None)
@given(L=st.integers(1, 40), k=st.integers(1, 6), s=st.integers(1, 9), d=st.integers(1, 60),
       before=st.integers(0, 400), out_size=st.integers(1, 80))
def test_first_empty_window_small(L, k, s, d, before, out_size):
    assert geometry.first_empty_window(L, k, s, d, before, out_size) == \
        _first_empty_brute(L, k, s, d, before, out_size)


@settings(max_examples=1500, deadline=None)
@given(L=st.integers(1, 10**6), k=st.integers(1, 4), s=st.integers(1, 10**12),
       d=st.integers(1, 10**12), before=st.integers(0, 10**13), out_size=st.integers(1, 300))
def test_first_empty_window_large(L, k, s, d, before, out_size):
    """Big strides, dilations and paddings: the Euclid-style descent against brute force."""
    assert geometry.first_empty_window(L, k, s, d, before, out_size) == \
        _first_empty_brute(L, k, s, d, before, out_size)


@settings(max_examples=3000, deadline=None)
@given(data=st.data(), m=st.integers(1, 300))
def test_first_in_residue_range(data, m):
    """The smallest x >= 0 with lo <= (a*x + c) mod m <= hi (the empty-window question)."""
    a, c = data.draw(st.integers(0, 10**6)), data.draw(st.integers(-10**6, 10**6))
    lo = data.draw(st.integers(0, m - 1))
    hi = data.draw(st.integers(lo, m - 1))
    if lo == 0 and hi == m - 1:
        return  # the whole range: not a question _first_in is asked
    brute = next((x for x in range(m) if lo <= (a * x + c) % m <= hi), None)
    assert geometry._first_in(a, c, m, lo, hi) == brute


@st.composite
def _sliding_geometry(draw):
    L, k, d = draw(st.integers(1, 30)), draw(st.integers(1, 6)), draw(st.integers(1, 12))
    span = (k - 1) * d + 1
    before, after = draw(st.integers(0, span + 2)), draw(st.integers(0, span + 2))
    return L, k, draw(st.integers(1, 7)), d, before, after, draw(st.booleans())


@settings(max_examples=1500, deadline=None)
@given(geo=_sliding_geometry())
def test_sliding_axis_against_the_reference(geo):
    """Every window of the run-plus-edges description is the reference's window, and the
    same geometries are refused."""
    L, k, s, d, before, after, ceil_mode = geo
    try:
        want = reference.sliding_windows(L, k, s, d, before, after, ceil_mode)
    except ValueError:
        with pytest.raises(ValueError, match="spatial dimension"):
            geometry.sliding_axis(L, k, s, d, before, after, ceil_mode)
        return
    axis = geometry.sliding_axis(L, k, s, d, before, after, ceil_mode)
    first, count, padded = axis.arrays()
    assert [w[0][0] for w in want] == first.tolist()
    assert [len(w[0]) for w in want] == count.tolist()
    assert [w[1] for w in want] == padded.tolist()
    lo, hi, kk, ss, off = axis.run
    assert axis.edge_first.size == axis.out_size - (hi - lo)  # only the edges are listed
    assert all(count[lo:hi] == kk) and all(np.diff(first[lo:hi]) == ss)


@settings(max_examples=500, deadline=None)
@given(L=st.integers(1, 60), O=st.integers(1, 60))
def test_adaptive_axis_against_the_reference(L, O):
    axis = geometry.adaptive_axis(L, O)
    first, count, padded = axis.arrays()
    want = reference.adaptive_windows(L, O)
    assert [w[0][0] for w in want] == first.tolist()
    assert [len(w[0]) for w in want] == count.tolist() == padded.tolist()
    assert (axis.edge_first.size == 0) == (L % O == 0)  # even: one uniform run


# --------------------------------------------------------------------------- NaN


def test_nan_policies_by_hand():
    x = np.array([1.0, NAN, 3.0, 2.0, NAN, NAN])
    k = (2,)
    np.testing.assert_array_equal(nbp.max_pool(x, k), [NAN, 3.0, NAN])
    np.testing.assert_array_equal(nbp.max_pool(x, k, nan_policy="omit"), [1.0, 3.0, NAN])
    np.testing.assert_array_equal(nbp.min_pool(x, k, nan_policy="omit"), [1.0, 2.0, NAN])
    np.testing.assert_array_equal(nbp.avg_pool(x, k), [NAN, 2.5, NAN])
    np.testing.assert_array_equal(nbp.avg_pool(x, k, nan_policy="omit"), [1.0, 2.5, NAN])
    _, idx = nbp.max_pool(x, k, return_indices=True)
    np.testing.assert_array_equal(idx, [1, 2, 4])  # a NaN wins, the first one
    _, idx = nbp.max_pool(x, k, return_indices=True, nan_policy="omit")
    np.testing.assert_array_equal(idx[:2], [0, 2])
    np.testing.assert_array_equal(nbp.adaptive_avg_pool(x, (2,), nan_policy="omit"), [2.0, 2.0])
    assert np.isnan(nbp.global_max_pool(x, 1))
    assert nbp.global_max_pool(x, 1, nan_policy="omit") == 3.0
    assert nbp.global_avg_pool(x, 1, nan_policy="omit") == 2.0
    assert np.isnan(nbp.gem_pool(x, spatial_dims=1))


def test_nan_omit_divisors():
    """Under "omit" a NaN leaves the divisor (nanmean), whichever count the divisor is;
    divisor_override stays fixed; a window of only NaNs is NaN even when overridden."""
    x = np.array([NAN, 2.0, NAN, NAN])
    kw = dict(kernel_size=(3,), stride=2, padding=1, nan_policy="omit")
    # windows {-1, 0, 1} and {1, 2, 3}: 3 positions each, less 1 and 2 NaNs
    np.testing.assert_array_equal(nbp.avg_pool(x, **kw), [2.0 / 2, 2.0 / 1])
    np.testing.assert_array_equal(nbp.avg_pool(x, **kw, count_include_pad=False), [2.0, 2.0])
    np.testing.assert_array_equal(nbp.avg_pool(x, **kw, divisor_override=4), [0.5, 0.5])
    np.testing.assert_array_equal(nbp.avg_pool(x, (2,), nan_policy="omit",
                                               divisor_override=4), [0.5, NAN])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("nan_policy", ["propagate", "omit"])
@pytest.mark.parametrize("kind", ["nan", "inf"])
def test_nan_every_function(layout, nan_policy, kind):
    x = make_values(np.random.default_rng(11), (2, 3, 7, 8), "float32", kind)
    if layout == "channels_last":
        x = np.moveaxis(x, 1, -1)
    p = dict(nan_policy=nan_policy, layout=layout)
    check_reference("max_pool", x, (3, 3), 2, 1, return_indices=True, **p)
    check_reference("min_pool", x, (2, 2), 1, ((0, 1), (1, 0)), 2, True, **p)
    check_reference("avg_pool", x, (3, 2), 2, 1, **p)
    check_reference("avg_pool", x, (3, 3), 2, 1, True, False, **p)
    check_reference("adaptive_max_pool", x, (3, 5), return_indices=True, **p)
    check_reference("adaptive_avg_pool", x, (4, 3), **p)
    check_reference("global_max_pool", x, 2, **p)
    check_reference("global_avg_pool", x, 2, keepdims=True, **p)
    check_reference("lp_pool", x, 2.0, (2, 2), layout=layout)
    check_reference("gem_pool", x, 3.0, layout=layout)


def test_all_nan_windows():
    x = np.full((2, 6, 6), NAN, np.float32)
    x[1, 0, 0] = 5.0
    for name in ("max_pool", "min_pool", "avg_pool"):
        got = getattr(nbp, name)(x, (3, 3), nan_policy="omit")
        assert np.isnan(got[0]).all() and np.isnan(got[1].ravel()[1:]).all()
        assert got[1, 0, 0] == 5.0
    assert np.isnan(nbp.global_avg_pool(x, 2, nan_policy="omit")[0])
    v, i = nbp.max_pool(x, (3, 3), return_indices=True, nan_policy="omit")
    assert i[1, 0, 0] == 0 and np.isnan(v[0]).all()
    assert ((i[0] >= 0) & (i[0] < 36)).all()  # an all-NaN window still points inside


# --------------------------------------------------------------------------- index ties


def test_index_ties_by_hand():
    x = np.array([[0.0, 5.0, 1.0, 1.0],
                  [5.0, 0.0, 1.0, 1.0]])
    v, i = nbp.max_pool(x, (2, 2), return_indices=True)
    np.testing.assert_array_equal(v, [[5.0, 1.0]])
    np.testing.assert_array_equal(i, [[1, 2]])  # row-major first: (0, 1) before (1, 0)
    v, i = nbp.min_pool(-x, (2, 2), return_indices=True)
    np.testing.assert_array_equal(i, [[1, 2]])
    # a NaN below and a NaN right of the first NaN: the first in row-major order wins
    y = np.array([[1.0, NAN, NAN], [NAN, 1.0, 1.0]])
    _, i = nbp.max_pool(y, (2, 3), return_indices=True)
    assert i[0, 0] == 1
    _, i = nbp.max_pool(y[:, ::-1], (2, 3), return_indices=True)
    assert i[0, 0] == 0
    # channels-last: per-channel spatial indices
    z = np.stack([x, -x, np.ones_like(x)], axis=-1)
    _, i = nbp.max_pool(z, (2, 2), layout="channels_last", return_indices=True)
    np.testing.assert_array_equal(i[..., 0], [[1, 2]])
    np.testing.assert_array_equal(i[..., 1], [[0, 2]])
    np.testing.assert_array_equal(i[..., 2], [[0, 2]])


TIE_CONFIGS = [  # windows through each specialised path: unrolled 2/2, 3/2, 3/1, 2/1 and loops
    dict(kernel_size=(2, 2)),
    dict(kernel_size=(3, 3), stride=2),
    dict(kernel_size=(3, 3), stride=1),
    dict(kernel_size=(2, 2), stride=1),
    dict(kernel_size=(3, 3), stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(4, 3), stride=(3, 2), dilation=(1, 2), padding=((2, 1), (1, 2))),
    dict(kernel_size=(2, 2, 2), stride=1),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("geo", TIE_CONFIGS)
@pytest.mark.parametrize("values", ["equal", "two", "nans"])
def test_index_ties(geo, layout, values):
    rng = np.random.default_rng(5)
    n = len(geo["kernel_size"])
    shape = (2,) + (9,) * n + ((3,) if layout == "channels_last" else ())
    if values == "equal":
        x = np.full(shape, 2.0)
    elif values == "two":
        x = rng.integers(0, 2, shape).astype(np.float64)
    else:
        x = np.where(rng.random(shape) < 0.5, NAN, rng.integers(0, 2, shape).astype(float))
    for name in ("max_pool", "min_pool"):
        for policy in ("propagate", "omit"):
            check_reference(name, x, **geo, return_indices=True, nan_policy=policy,
                            layout=layout)


def test_signed_zero_and_infinities():
    x = np.array([[-0.0, 0.0, -np.inf, -np.inf, np.inf, np.inf]])
    v, i = nbp.max_pool(x, (2,), return_indices=True)
    np.testing.assert_array_equal(i, [[0, 2, 4]])
    np.testing.assert_array_equal(v, [[0.0, -np.inf, np.inf]])
    _, i = nbp.min_pool(x, (2,), return_indices=True)
    np.testing.assert_array_equal(i, [[0, 2, 4]])


# --------------------------------------------------------------------------- shapes


CALLS = [  # (function, args, kwargs) valid for (*lead, 5, 6) channels-first input
    ("max_pool", ((2, 3),), dict(stride=1, padding=1)),
    ("max_pool", ((2, 2),), dict(return_indices=True)),
    ("min_pool", ((3, 2),), dict(ceil_mode=True, stride=2)),
    ("avg_pool", ((3, 3),), dict(stride=2, padding="same")),
    ("lp_pool", (2.0, (2, 2)), {}),
    ("adaptive_max_pool", ((2, 3),), dict(return_indices=True)),
    ("adaptive_avg_pool", ((4, 4),), {}),
    ("global_max_pool", (2,), {}),
    ("global_avg_pool", (2,), dict(keepdims=True)),
    ("gem_pool", (3.0, 1e-6, 2), {}),
]


@pytest.mark.parametrize("name, args, kwargs", CALLS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_zero_size_batches(name, args, kwargs, layout):
    tail = (4,) if layout == "channels_last" else ()
    for lead in [(0,), (3, 0), (0, 2)]:
        x = np.zeros(lead + (5, 6) + tail, np.float32)
        got = check_reference(name, x, *args, layout=layout, **kwargs)
        assert got is not None
        for g in got if isinstance(got, tuple) else (got,):
            assert g.size == 0 and g.shape[: len(lead)] == lead
    if layout == "channels_last":  # no channels at all
        got = check_reference(name, np.zeros((2, 5, 6, 0), np.float32), *args,
                              layout=layout, **kwargs)
        for g in got if isinstance(got, tuple) else (got,):
            assert g.shape[0] == 2 and g.shape[-1] == 0


@pytest.mark.parametrize("layout", LAYOUTS)
def test_rank_four_and_five(layout):
    rng = np.random.default_rng(2)
    tail = (2,) if layout == "channels_last" else ()
    x = rng.standard_normal((2, 5, 4, 3, 6) + tail)
    p = dict(layout=layout)
    check_reference("max_pool", x, (2, 3, 2, 3), (2, 1, 1, 2), ((1, 0), (1, 1), (0, 1), (1, 1)),
                    (1, 1, 2, 1), True, return_indices=True, **p)
    check_reference("min_pool", x, (3, 2, 2, 2), **p)
    check_reference("avg_pool", x, (3, 2, 2, 2), 2, 1, True, False, **p)
    check_reference("lp_pool", np.abs(x), 3.0, (2, 2, 2, 2), **p)
    check_reference("adaptive_max_pool", x, (3, None, 2, 4), return_indices=True, **p)
    check_reference("adaptive_avg_pool", x, (2, 5, None, 4), **p)
    check_reference("global_max_pool", x, 4, **p)
    check_reference("global_avg_pool", x, 4, **p)
    check_reference("gem_pool", x, 2.0, 1e-3, 4, **p)
    y = rng.standard_normal((3, 4, 3, 4, 3) + tail)
    check_reference("max_pool", y, (2, 2, 2, 2, 2), 1, **p)
    check_reference("avg_pool", y, (2, 2, 3, 2, 2), 1, 1, **p)


def test_unbatched_and_leading_axes():
    rng = np.random.default_rng(3)
    img = rng.standard_normal((7, 6))
    check_reference("max_pool", img, (2, 2), return_indices=True)
    check_reference("avg_pool", img[0], (3,), 2, 1)
    assert nbp.max_pool2d(img, 2).shape == (3, 3)
    assert nbp.global_avg_pool2d(img).shape == ()
    np.testing.assert_array_equal(nbp.global_max_pool2d(img), img.max())
    many = rng.standard_normal((2, 3, 4, 7, 6))  # any number of leading axes
    got = nbp.max_pool2d(many, 2)
    assert got.shape == (2, 3, 4, 3, 3)
    np.testing.assert_array_equal(got[1, 2, 3], nbp.max_pool2d(many[1, 2, 3], 2))
    vol = rng.standard_normal((5, 6, 4))  # unbatched channels-last 2-D image
    check_reference("avg_pool", vol, (2, 3), layout="channels_last")


def test_numpy_scalars_and_device_cpu():
    x = make_values(np.random.default_rng(14), (2, 3, 9, 8), "float32")
    want = nbp.max_pool(x, (3, 3), 2, 1, 1, True)
    i64, i32 = np.int64, np.int32
    got = nbp.max_pool(x, (i64(3), i32(3)), i64(2), ((i32(1), i64(1)), (i64(1), 1)),
                       np.uint8(1), True)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(nbp.max_pool(x, (3, 3), 2, 1, 1, True, device="cpu"), want)
    np.testing.assert_array_equal(nbp.adaptive_avg_pool(x, (i64(4), None)),
                                  nbp.adaptive_avg_pool(x, (4, 8)))
    np.testing.assert_array_equal(nbp.global_avg_pool(x, i64(2)), nbp.global_avg_pool(x, 2))


@pytest.mark.parametrize("view", ["fortran", "strided", "negative", "readonly"])
def test_views_equal_contiguous(view):
    x = make_values(np.random.default_rng(4), (3, 2, 9, 8), "float32", "ties")
    v = as_view(x, view)
    for name, args, kwargs in CALLS:
        want = getattr(nbp, name)(x, *args, **kwargs)
        assert_matches(getattr(nbp, name)(v, *args, **kwargs), want, exact=True)
        assert_matches(getattr(nbp, name)(np.moveaxis(v, 1, -1), *args,
                                          layout="channels_last", **kwargs),
                       getattr(nbp, name)(np.ascontiguousarray(np.moveaxis(x, 1, -1)), *args,
                                          layout="channels_last", **kwargs), exact=True)


def test_parallel_path(monkeypatch):
    """Inputs split across threads (84480 elements, above the threshold lowered to 2**16)
    against the reference."""
    from numbapool._cpu import parallel

    monkeypatch.setattr(parallel, "PARALLEL_MIN_ELEMENTS", 1 << 16)
    rng = np.random.default_rng(6)
    for dtype in ("float32", "float16"):
        x = make_values(rng, (4, 5, 64, 66), dtype, "nan")
        check_reference("max_pool", x, (3, 3), 2, 1, return_indices=True)
        check_reference("max_pool", x, (2, 2), nan_policy="omit")
        check_reference("avg_pool", x, (3, 3), 2, 1, nan_policy="omit")
        check_reference("adaptive_avg_pool", np.moveaxis(x, 1, -1), (5, 7),
                        layout="channels_last")
        check_reference("global_max_pool", x, nan_policy="omit")
        check_reference("gem_pool", np.abs(x), 2.0)
        check_reference("min_pool", np.moveaxis(x, 1, -1), (3, 2), (2, 1), 1,
                        return_indices=True, layout="channels_last")


# --------------------------------------------------------------------------- out=


def test_out_contiguous_and_strided():
    x = make_values(np.random.default_rng(8), (2, 3, 8, 8), "float32")
    want = nbp.avg_pool2d(x, 2)
    out = np.empty_like(want)
    assert nbp.avg_pool2d(x, 2, out=out) is out
    np.testing.assert_array_equal(out, want)
    # a strided view of a larger buffer: written where it points, nowhere else
    buf = np.full((2, 3, 8, 8), -7.0, np.float32)
    view = buf[:, :, ::2, 1::2]
    assert nbp.avg_pool2d(x, 2, out=view) is view
    np.testing.assert_array_equal(view, want)
    untouched = np.ones(buf.shape, bool)
    untouched[:, :, ::2, 1::2] = False
    assert (buf[untouched] == -7.0).all()
    fortran = np.asfortranarray(np.empty_like(want))
    np.testing.assert_array_equal(nbp.avg_pool2d(x, 2, out=fortran), want)


def test_out_with_indices_and_global():
    x = make_values(np.random.default_rng(9), (2, 3, 8, 8), "int16", "ties")
    v_want, i_want = nbp.max_pool(x, (3, 3), 2, 1, return_indices=True)
    v = np.empty(v_want.shape[::-1], np.int16).T  # Fortran-ordered values
    i = np.zeros((2, 3, 4, 8), np.int64)[..., ::2]  # strided indices
    res = nbp.max_pool(x, (3, 3), 2, 1, return_indices=True, out=(v, i))
    assert res[0] is v and res[1] is i
    np.testing.assert_array_equal(v, v_want)
    np.testing.assert_array_equal(i, i_want)
    g = np.empty((2, 3, 1, 1))
    assert nbp.global_avg_pool(x, keepdims=True, out=g) is g
    np.testing.assert_allclose(g, x.mean(axis=(2, 3), keepdims=True))


def _sentinel(shape, dtype):
    return np.full(shape, 99, dtype)


@pytest.mark.parametrize("bad", [
    dict(kernel_size=(9, 9)),                 # window larger than the input
    dict(kernel_size=(2, 2), padding=-1),
    dict(kernel_size=(2, 2), nan_policy="raise"),
    dict(kernel_size=(2, 2), layout="NHWC"),
])
def test_nothing_written_on_error(bad):
    x = np.ones((2, 3, 8, 8), np.float32)
    out = _sentinel((2, 3, 4, 4), np.float32)
    with pytest.raises(ValueError):
        nbp.max_pool(x, **bad, out=out)
    assert (out == 99).all()


def test_nothing_written_on_out_errors():
    x = np.ones((2, 3, 8, 8), np.float32)
    v = _sentinel((2, 3, 4, 4), np.float32)
    with pytest.raises(TypeError, match=r"out\[1\]"):  # values fine, indices not int64
        nbp.max_pool(x, (2, 2), return_indices=True, out=(v, np.zeros((2, 3, 4, 4))))
    assert (v == 99).all()
    big = _sentinel((2, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match="overlap"):  # the result would overwrite x
        nbp.max_pool(big, (2, 2), out=big[:, :, :4, :4])
    assert (big == 99).all()


def test_out_overlap_errors():
    x = np.ones((2, 8, 8), np.float64)
    with pytest.raises(ValueError, match="overlap"):
        nbp.max_pool(x, (1, 1), out=x)
    with pytest.raises(ValueError, match="overlap"):
        nbp.avg_pool(x, (1, 1), out=x[::-1])
    raw = np.zeros(2 * 4 * 4 * 8, np.uint8)
    vals = raw.view(np.float64).reshape(2, 4, 4)
    idx = raw.view(np.int64).reshape(2, 4, 4)
    with pytest.raises(ValueError, match="overlap"):
        nbp.max_pool(x, (2, 2), return_indices=True, out=(vals, idx))
    assert (raw == 0).all()


# --------------------------------------------------------------------------- float16


def test_float16_extremes_exact():
    rng = np.random.default_rng(10)
    x = make_values(rng, (2, 3, 9, 10), "float16", "inf")
    x[0, 0, :3, :3] = np.array([6.0e-8, -6.0e-8, 65504, -65504, -0.0, 0.0, 1e-5, 3.0e-5, 2],
                               np.float16).reshape(3, 3)  # subnormals, extremes, zeros
    for policy in ("propagate", "omit"):
        check_reference("max_pool", x, (3, 3), 2, 1, return_indices=True, nan_policy=policy)
        check_reference("min_pool", x, (2, 3), 1, 0, 2, True, return_indices=True,
                        nan_policy=policy, layout="channels_last")
        check_reference("adaptive_max_pool", x, (4, 3), return_indices=True, nan_policy=policy)
        check_reference("global_max_pool", x, nan_policy=policy)


def test_float16_averages_round_once():
    """float16 sums accumulate in float32 and the mean rounds to nearest-even float16."""
    ulp = 2.0 ** -10
    pairs = np.array([[1, 1 + ulp],            # mean halfway: ties to even -> 1
                      [1 + ulp, 1 + 2 * ulp],  # halfway: ties to even -> 1 + 2 ulp
                      [2 ** -24, 0],           # subnormal halfway -> 0
                      [3 * 2 ** -24, 0],       # -> 2 * 2**-24
                      [65504, 65504],          # no float16 overflow in the sum
                      [-3, 1.5]], np.float64)
    x = pairs.astype(np.float16)
    got = nbp.avg_pool(x, (2,))
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got[:, 0], (pairs.sum(axis=1) / 2).astype(np.float16))
    ones = np.ones((3, 70, 70), np.float16)  # 4900 ones: a float16 sum would stop at 2048
    np.testing.assert_array_equal(nbp.global_avg_pool(ones, 2), np.ones(3, np.float16))
    np.testing.assert_array_equal(nbp.avg_pool(ones, (70, 70)), np.ones((3, 1, 1), np.float16))
    big = np.full((1, 4, 4), 60000, np.float16)
    np.testing.assert_array_equal(nbp.avg_pool(big, (4, 4)), big[:, :1, :1])
    np.testing.assert_array_equal(nbp.adaptive_avg_pool(big, (1, 1)), big[:, :1, :1])


def test_float16_every_bit_pattern():
    """Loading and storing float16 is exact for all 65536 patterns, and a quotient rounds to
    the nearest float16 (ties to even) like NumPy's cast, subnormals and overflow included."""
    bits = np.arange(2**16, dtype=np.uint16)
    x = bits.view(np.float16)
    nan = np.isnan(x)
    same = nbp.max_pool(x, (1,))
    assert (same.view(np.uint16)[~nan] == bits[~nan]).all() and np.isnan(same[nan]).all()
    for divisor in (2, 3, 10, 2.0**20, 2.0**-10):
        got = nbp.avg_pool(x, (1,), divisor_override=divisor)
        with np.errstate(over="ignore", invalid="ignore"):
            want = (x.astype(np.float64) / divisor).astype(np.float16)
        assert (got.view(np.uint16)[~nan] == want.view(np.uint16)[~nan]).all(), divisor


def test_float16_averages_near_reference():
    x = make_values(np.random.default_rng(12), (2, 3, 9, 10), "float16")
    for args, kwargs in [(((3, 3), 2, 1), {}), (((2, 2),), dict(layout="channels_last")),
                         (((3, 2), 1, 1, True, False), {})]:
        got = nbp.avg_pool(x, *args, **kwargs)
        want = reference.avg_pool(x, *args, **kwargs).astype(np.float64)
        # within one float16 ulp of the correctly rounded mean
        assert got.dtype == np.float16
        assert (np.abs(got - want) <= np.spacing(np.abs(want.astype(np.float16)))).all()
    check_reference("lp_pool", np.abs(x), 2.0, (3, 3))
    check_reference("gem_pool", x, 3.0)


# --------------------------------------------------------------------------- aliases


ALIASED = ["max_pool", "min_pool", "avg_pool", "lp_pool", "adaptive_max_pool",
           "adaptive_avg_pool", "global_max_pool", "global_avg_pool", "gem_pool"]


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("name", ALIASED)
def test_aliases(name, n):
    alias = getattr(nbp, f"{name}{n}d")
    assert alias.__name__ == f"{name}{n}d"
    x = make_values(np.random.default_rng(n), (2, 3) + (6,) * n, "float64")
    if name == "lp_pool":
        args_nd, args_alias = (2.0, (2,) * n), (2.0, 2)
    elif name.startswith("adaptive"):
        args_nd, args_alias = ((4,) * n,), (4,)
    elif name.startswith(("global", "gem")):
        args_nd, args_alias = (), ()
    else:
        args_nd, args_alias = ((3,) * n,), (3,)
    kw = {} if name.startswith(("lp", "adaptive", "global", "gem")) else dict(stride=2)
    if name.startswith(("global", "gem")):
        want = getattr(nbp, name)(x, spatial_dims=n)
    else:
        want = getattr(nbp, name)(x, *args_nd, **kw)
    got = alias(x, *args_alias, **kw)
    np.testing.assert_array_equal(got, want)
    # the alias fixes N however many leading axes there are
    got = alias(x[0, 0], *args_alias, **kw)
    np.testing.assert_array_equal(got, want[0, 0])
    got = alias(x[None], *args_alias, **kw)
    np.testing.assert_array_equal(got, want[None])


# --------------------------------------------------------------------------- global axes


def test_global_axes_and_keepdims():
    x = make_values(np.random.default_rng(13), (2, 3, 4, 5, 6), "float64")
    for dims in (1, 2, 3):
        axes = tuple(range(5 - dims, 5))
        np.testing.assert_array_equal(nbp.global_max_pool(x, dims), x.max(axis=axes))
        np.testing.assert_array_equal(nbp.global_max_pool(x, dims, keepdims=True),
                                      x.max(axis=axes, keepdims=True))
        np.testing.assert_allclose(nbp.global_avg_pool(x, dims, keepdims=True),
                                   x.mean(axis=axes, keepdims=True), rtol=1e-12)
        cl_axes = tuple(a - 1 for a in axes)  # the axes before the channel axis
        np.testing.assert_array_equal(
            nbp.global_max_pool(x, dims, layout="channels_last"), x.max(axis=cl_axes))
        np.testing.assert_allclose(
            nbp.global_avg_pool(x, dims, keepdims=True, layout="channels_last"),
            x.mean(axis=cl_axes, keepdims=True), rtol=1e-12)
        gem = (np.clip(x, 0.5, None) ** 2.0).mean(axis=axes) ** 0.5
        np.testing.assert_allclose(nbp.gem_pool(x, 2.0, 0.5, dims), gem, rtol=1e-12)
    assert nbp.global_max_pool(x).shape == (2, 3)  # spatial_dims=None: x.ndim - 2
    assert nbp.global_max_pool(x, layout="channels_last").shape == (2, 6)
    assert nbp.gem_pool(x, keepdims=True).shape == (2, 3, 1, 1, 1)
