"""Memory of the spatial pools: window descriptions that grow with an axis's borders, not
its length; memos bounded in bytes; scratch bounded per thread; and rows processed in
blocks of columns, which must give exactly the results of whole rows."""

import gc

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import numbapool as nbp
from conftest import LAYOUTS, check_reference, make_values
from numbapool import geometry, plan
from numbapool.bench import peak_extra_bytes
from numbapool.plan import SpatialPlan

HUGE = 2**40
MIB = 1 << 20


# --------------------------------------------------------------------------- O(borders)


def _window_by_formula(L, k, s, d, before, after, o):
    """(first, count, padded) of sliding window ``o``, straight from the rule."""
    taps = [o * s - before + j * d for j in range(k)]
    inside = [t for t in taps if 0 <= t < L]
    return inside[0], len(inside), sum(-before <= t < L + after for t in taps)


@pytest.mark.parametrize("geo", [
    (3, 1, 1, 1, 1, False),  # k, s, d, before, after, ceil_mode
    (3, 2, 1, 1, 1, True),
    (2, 2, 1, 0, 0, False),
    (5, 3, 4, 7, 9, True),  # dilation, uneven padding, a partial last window
    (7, 1, 1, 6, 6, False),  # padding near the window's span: six partial windows a side
])
def test_huge_sliding_axes_are_described_by_their_borders(geo):
    k, s, d, before, after, ceil_mode = geo
    axis = geometry.sliding_axis(HUGE, k, s, d, before, after, ceil_mode)
    lo, hi, kk, ss, off = axis.run
    assert axis.out_size == geometry.pooled_size(HUGE, k, s, d, before, after, ceil_mode)
    assert (kk, ss, off) == (k, s, -before) and hi - lo > HUGE // s - k * d
    assert axis.edge_first.size <= 2 * ((k - 1) * d // s + 2)
    assert axis.nbytes < 2048
    for o in (0, 1, lo, lo + 12345, hi - 1, hi, axis.out_size - 2, axis.out_size - 1):
        if 0 <= o < axis.out_size:
            assert axis.window(o) == _window_by_formula(HUGE, k, s, d, before, after, o), o


def test_huge_adaptive_and_global_axes():
    even = geometry.adaptive_axis(HUGE, 2**20)
    assert even.run == (0, 2**20, 2**20, 2**20, 0) and even.nbytes == 0
    uneven = geometry.adaptive_axis(HUGE, 3)  # every window listed, exactly
    assert [uneven.window(i)[:2] for i in range(3)] == [
        (i * HUGE // 3, -(-(i + 1) * HUGE // 3) - i * HUGE // 3) for i in range(3)]
    whole = geometry.full_axis(HUGE)
    assert whole.window(0) == (0, HUGE, HUGE) and whole.nbytes == 0


@pytest.mark.parametrize("divisor", ["valid", "padded"])
def test_tables_of_huge_axes_stay_small(divisor):
    rows = geometry.sliding_axis(HUGE, 3, 2, 1, 1, 1, True)
    cols = geometry.sliding_axis(HUGE, 5, 1, 2, 4, 4, False)
    p = SpatialPlan("sum", (rows, cols), (1,), 1, False, np.dtype(np.float32),
                    acc_dtype=np.dtype(np.float32), divisor=divisor)
    tables = p.tables
    assert tables.nbytes < 1024
    edges = rows.edge_count.size + cols.edge_count.size
    assert tables.first.size == tables.count.size == tables.div.size == edges
    expected = np.concatenate([(rows.edge_padded if divisor == "padded" else rows.edge_count),
                               (cols.edge_padded if divisor == "padded" else cols.edge_count)])
    np.testing.assert_array_equal(tables.div, expected)
    np.testing.assert_array_equal(tables.inv, 1.0 / expected)


# --------------------------------------------------------------------------- bounded memos


def test_axis_memo_is_bounded_in_entries_and_bytes():
    memo = geometry.sliding_axis
    for L in range(10, 10 + 2 * memo.max_entries):
        geometry.sliding_axis(L, 3, 1, 1, 1, 1, False)
    info = memo.cache_info()
    assert info["entries"] <= memo.max_entries and info["bytes"] <= memo.max_bytes
    # an uneven adaptive axis lists its windows; one larger than the memo is not kept
    big = geometry.adaptive_axis(3, geometry.adaptive_axis.max_bytes // 16)
    assert big.nbytes > geometry.adaptive_axis.max_bytes
    assert geometry.adaptive_axis.cache_info()["bytes"] <= geometry.adaptive_axis.max_bytes
    assert geometry.adaptive_axis(3, big.out_size) is not big
    # equal geometries share one description while it is kept
    assert geometry.sliding_axis(99, 3, 1, 1, 1, 1, False) is \
        geometry.sliding_axis(99, 3, 1, 1, 1, 1, False, axis=1)


def test_long_signals_leave_little_in_the_memos():
    """Window tables were once kept per length, as large as the signal (264 MiB after one
    call on 2**23 positions); now what stays is a few hundred bytes per geometry."""
    memos = (geometry.sliding_axis, plan._tables)
    for memo in memos:
        memo.cache_clear()
    for n in range(18, 23):
        nbp.max_pool1d(np.ones((1, 1, 2**n + 1), np.float32), 3, 1, 1)
    assert sum(m.cache_info()["bytes"] for m in memos) < 8192


# --------------------------------------------------------------------------- peak memory


@pytest.fixture
def two_threads():
    """Scratch is bounded per thread: measure with a known number of them."""
    before = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    yield numba.get_num_threads()
    numba.set_num_threads(before)


def _peak_beyond_result(call):
    """Peak resident bytes a call adds beyond its result (which it must write)."""
    call()  # compiles, and warms up every lazily allocated pool
    gc.collect()
    results = []
    extra = peak_extra_bytes(lambda: results.append(call()))
    if extra is None:
        pytest.skip("needs /proc/self/clear_refs (Linux)")
    got = results[0] if isinstance(results[0], tuple) else (results[0],)
    return extra - sum(a.nbytes for a in got)


LONG = [  # (id, shape, dtype, call)
    ("max k16 indices int8", (1, 1, 2**22 + 64), np.int8,
     lambda x: nbp.max_pool1d(x, 16, return_indices=True)),
    ("max k2", (1, 1, 2**23), np.float32, lambda x: nbp.max_pool1d(x, 2)),
    ("avg k3s1p1", (1, 1, 2**23), np.float32, lambda x: nbp.avg_pool1d(x, 3, 1, 1)),
    ("max wider than the buffer", (1, 1, 2**22), np.float32,
     lambda x: nbp.max_pool1d(x, 2**20, 2**19, return_indices=True)),
    ("lp k3s2", (1, 1, 2**22), np.float32, lambda x: nbp.lp_pool(x, 2, (3,), 2)),
    ("channels-last, not copied", (1, 2**20, 8), np.float32,
     lambda x: nbp.max_pool1d(x, 2, layout="channels_last")),
]


@pytest.mark.parametrize("shape, dtype, call", [c[1:] for c in LONG], ids=[c[0] for c in LONG])
def test_long_signals_use_little_more_than_their_result(two_threads, shape, dtype, call):
    x = np.ones(shape, dtype)  # resident before the call (zeros would be mapped lazily)
    scratch = two_threads * 2 * plan.ROW_BUFFER * 32  # row buffers of every thread
    assert _peak_beyond_result(lambda: call(x)) < scratch + 2 * MIB


# --------------------------------------------------------------------------- blocked rows


@st.composite
def _blocked_case(draw):
    """A pool whose rows are processed in blocks: tiny row buffers, long-ish rows, windows
    wider than the buffer, dilation, channels-last, edges on both sides."""
    layout = draw(st.sampled_from(LAYOUTS))
    n = draw(st.sampled_from([1, 2]))
    L = draw(st.integers(1, 40))
    spatial = (draw(st.integers(1, 6)),) * (n - 1) + (L,)
    shape = (2,) + spatial + ((draw(st.integers(1, 3)),) if layout == "channels_last" else ())
    x = make_values(np.random.default_rng(draw(st.integers(0, 2**32 - 1))), shape,
                    draw(st.sampled_from(["float32", "float64"])),
                    draw(st.sampled_from(["normal", "ties", "nan"])))
    k = tuple(draw(st.integers(1, 3 if i < n - 1 else 9)) for i in range(n))
    d = (1,) * (n - 1) + (draw(st.integers(1, 4)),)
    pad = tuple((draw(st.integers(0, (ki - 1) * di)), draw(st.integers(0, (ki - 1) * di)))
                for ki, di in zip(k, d))
    geo = dict(kernel_size=k, stride=tuple(draw(st.integers(1, 4)) for _ in range(n)),
               padding=pad, dilation=d, ceil_mode=draw(st.booleans()), layout=layout)
    return x, geo, draw(st.sampled_from([1, 2, 3, 5, 8, 13]))


CALLS = [
    ("max_pool", dict(return_indices=True)),
    ("min_pool", dict(nan_policy="omit")),
    ("min_pool", dict(return_indices=True, nan_policy="omit")),
    ("avg_pool", {}),
    ("avg_pool", dict(count_include_pad=False, nan_policy="omit")),
    ("avg_pool", dict(divisor_override=3)),
]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_blocked_case(), which=st.integers(0, len(CALLS) - 1))
def test_blocked_rows_give_the_results_of_whole_rows(case, which):
    x, geo, buffer = case
    name, kwargs = CALLS[which]
    try:
        whole = getattr(nbp, name)(x, **geo, **kwargs)
    except ValueError:
        return  # an empty window: refused whatever the buffer
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plan, "ROW_BUFFER", buffer)
        blocked = getattr(nbp, name)(x, **geo, **kwargs)
        check_reference(name, x, **geo, **kwargs)
    for got, want in zip(blocked if isinstance(blocked, tuple) else (blocked,),
                         whole if isinstance(whole, tuple) else (whole,)):
        np.testing.assert_array_equal(got, want)  # the same operations in the same order


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(L=st.integers(1, 30), O=st.integers(1, 70), C=st.integers(1, 3),
       buffer=st.sampled_from([1, 2, 4, 7]), seed=st.integers(0, 2**32 - 1))
def test_blocked_adaptive_rows(L, O, C, buffer, seed):
    x = make_values(np.random.default_rng(seed), (2, 3, L, C), "float64", "ties")
    calls = [lambda: nbp.adaptive_avg_pool(x, (2, O), layout="channels_last"),
             lambda: nbp.adaptive_max_pool(x, (2, O), return_indices=True,
                                           layout="channels_last"),
             lambda: nbp.lp_pool(x[..., 0], 2.0, (1, min(L, 3)), (1, 2), True)]
    whole = [f() for f in calls]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plan, "ROW_BUFFER", buffer)
        for f, want in zip(calls, whole):
            got = f()
            for g, w in zip(got if isinstance(got, tuple) else (got,),
                            want if isinstance(want, tuple) else (want,)):
                np.testing.assert_array_equal(g, w)
