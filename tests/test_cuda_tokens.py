"""The CUDA token path: device-resident masks and offsets, the host work of a call, and the
kernel's specialisations (sequence kinds, features per thread, lanes) against the CPU.

Runs where CUDA is usable: under Numba's simulator (the simulator process of
tests/test_isolated_runs.py runs this module) or on a real GPU; skips elsewhere.  The
simulator runs every thread in Python: the shapes are tiny, and blocks are a few threads
(``TOKEN_FEATURES`` feature threads, lanes however short the sequences), so that tiles,
lanes and the grid-stride loop all wrap.
"""

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")

import numbapool as nbp  # noqa: E402

if not nbp.cuda_available():
    pytest.skip("no CUDA GPU, and NUMBA_ENABLE_CUDASIM is not set", allow_module_level=True)

from numbapool._cuda import backend, compat  # noqa: E402
from numbapool._cuda import tokens as cuda_tokens  # noqa: E402
from numbapool.token_plan import MODE_CODES  # noqa: E402

from conftest import assert_matches  # noqa: E402
from cuda_counting import NONE_EXPECTED, host_work  # noqa: E402

NONE = dict.fromkeys(NONE_EXPECTED, 0)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(compat, "MAX_BLOCKS", 3)
    monkeypatch.setattr(backend, "TOKEN_FEATURES", 2)
    monkeypatch.setattr(backend, "TOKEN_LANES", 2)
    monkeypatch.setattr(backend, "TOKENS_PER_LANE", 1)


def _hidden(shape, dtype=np.float32, nans=0.0, seed=0):
    rng = np.random.default_rng(seed)
    h = rng.standard_normal(shape).astype(dtype)
    if nans:
        h[rng.random(shape) < nans] = np.nan
    return h


#: right padding, left padding, holes, no tokens, one token
MASK = np.array([[1, 1, 1, 0, 0],
                 [0, 0, 1, 1, 1],
                 [1, 0, 1, 0, 1],
                 [0, 0, 0, 0, 0],
                 [0, 0, 0, 1, 0]], bool)


def _check(got, want, exact=False):
    tol = {np.float16: 2e-3, np.float32: 2e-6}.get(want.dtype.type, 1e-12)
    assert_matches(got, want, exact, to_host=lambda g: g.copy_to_host(), rtol=tol, atol=tol,
                   signs=True)


def _counts(counts):
    return {k: counts[k] for k in NONE_EXPECTED}


# --------------------------------------------------------------------------- host work


def test_device_mask_or_no_mask_means_no_copies_and_no_waits():
    """Padded ``hidden`` with a CUDA mask (any dtype), or without a mask: a repeated call
    copies nothing either way, waits for nothing, passes no host array to a kernel, and
    allocates its result only (nothing with ``out=``)."""
    h = _hidden((5, 5, 3), nans=0.2)
    d = cuda.to_device(h)
    for mask in (cuda.to_device(MASK), cuda.to_device(MASK.astype(np.float32)), None):
        want = nbp.pool_tokens(h, None if mask is None else MASK, ["mean", "max", "last"])
        for policy in ("propagate", "omit"):
            kw = dict(mode=["mean", "max", "last"], nan_policy=policy)
            nbp.pool_tokens(d, mask, **kw)  # the first call of a specialisation
            with host_work() as counts:
                got = nbp.pool_tokens(d, mask, **kw)
            assert _counts(counts) == NONE and counts["alloc"] == 1, counts
            assert counts["launches"] == 1, counts
            if policy == "propagate":
                _check(got, want)
    out = cuda.device_array((5, 9), np.float32)
    with host_work() as counts:
        assert nbp.pool_tokens(d, cuda.to_device(MASK), ["mean", "max", "last"], out=out) is out
    assert counts["alloc"] == 0 and counts["launches"] == 1, counts


@pytest.mark.parametrize("how, copies", [
    ("host lengths", dict(to_device=1, to_host=0)),
    ("host offsets", dict(to_device=1, to_host=0)),
    ("device offsets", dict(to_device=0, to_host=1)),   # checked on the host, read in place
    ("device lengths", dict(to_device=1, to_host=1)),   # checked on the host, sent as offsets
    ("host mask", dict(to_device=1, to_host=0)),
    ("device mask, weighted", dict(to_device=1, to_host=2)),  # mask and weights checked
])
def test_what_crosses_per_call(how, copies):
    """The copies the validation of the aux arrays needs (see pool_tokens, Notes): one per
    array whose values are checked, and one transfer of what the kernel reads; never a
    synchronize, never a host array handed to a kernel."""
    d = cuda.to_device(_hidden((5, 5, 3)))
    lengths = np.array([2, 0, 5, 1, 4, 3, 0, 5, 5])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    packed = cuda.to_device(_hidden((25, 3)))
    d_lengths, d_offsets = cuda.to_device(lengths), cuda.to_device(offsets)
    d_mask, d_weights = cuda.to_device(MASK), cuda.to_device(np.ones((5, 5)))
    call = {
        "host lengths": lambda: nbp.pool_tokens(packed, lengths=lengths),
        "host offsets": lambda: nbp.pool_tokens(packed, offsets=offsets),
        "device offsets": lambda: nbp.pool_tokens(packed, offsets=d_offsets),
        "device lengths": lambda: nbp.pool_tokens(packed, lengths=d_lengths),
        "host mask": lambda: nbp.pool_tokens(d, MASK),
        "device mask, weighted": lambda: nbp.pool_tokens(d, d_mask, "weighted",
                                                         weights=d_weights),
    }[how]
    call()
    with host_work() as counts:
        call()
    assert _counts(counts) == dict(NONE, **copies), counts
    assert counts["alloc"] == 1 and counts["launches"] == 1, counts


def test_launches_go_on_the_named_stream(monkeypatch):
    seen = []
    run = backend.Launch.run
    monkeypatch.setattr(backend.Launch, "run",
                        lambda self, stream=0: (seen.append(stream), run(self, stream))[1])
    h = _hidden((5, 5, 3))
    stream = cuda.stream()
    got = nbp.pool_tokens(cuda.to_device(h), cuda.to_device(MASK), "max", stream=stream)
    assert seen and all(s is stream for s in seen)
    _check(got, nbp.pool_tokens(h, MASK, "max"), True)


# --------------------------------------------------------------------------- device masks


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_device_masks_of_every_kind(dtype):
    """Masks of several dtypes, a strided view, padding on either side, holes, rows with no
    token or one: the kernel reads them on the device, as the CPU reads them."""
    h = _hidden((5, 5, 3), dtype, nans=0.15, seed=1)
    d = cuda.to_device(h)
    modes = ["cls", "last", "max", "min", "mean", "weighted_mean", "sum"]
    wide = np.zeros((5, 10), np.int8)
    wide[:, ::2] = MASK * np.arange(1, 6)[:, None]  # nonzero values other than 1
    for mask in (cuda.to_device(MASK), cuda.to_device(wide)[:, ::2],
                 cuda.to_device(MASK.astype(np.float64) * -2.5)):
        for policy in ("propagate", "omit"):
            got = nbp.pool_tokens(d, mask, modes, nan_policy=policy)
            _check(got, nbp.pool_tokens(h, MASK, modes, nan_policy=policy))


def test_device_mask_errors_are_host_side():
    d = cuda.to_device(_hidden((5, 5, 3)))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(5, 4\)"):
        nbp.pool_tokens(d, cuda.to_device(np.ascontiguousarray(MASK[:, :4])))
    with pytest.raises(TypeError, match="bool or numeric"):
        nbp.pool_tokens(d, cuda.to_device(np.zeros((5, 5), np.complex64)))


def test_left_padding_long_rows_and_many_lanes(monkeypatch):
    """Long masked rows over many lanes: each lane's first token is found by the scan of
    the mask row, in chunks shorter and longer than a lane's share."""
    monkeypatch.setattr(backend, "TOKEN_LANES", 8)
    rng = np.random.default_rng(3)
    h = _hidden((2, 40, 2), seed=3)
    mask = np.zeros((2, 40), bool)
    mask[0, 13:] = True  # left padding
    mask[1] = rng.random(40) < 0.4  # holes everywhere
    for modes in (["weighted_mean", "max", "cls", "last"], ["sum", "min"]):
        got = nbp.pool_tokens(cuda.to_device(h), cuda.to_device(mask), modes)
        _check(got, nbp.pool_tokens(h, mask, modes))


# --------------------------------------------------------------------------- specialisations


@pytest.mark.parametrize("vec", [1, 2, 4])
def test_features_per_thread(monkeypatch, vec):
    """1, 2 and 4 features per thread, with a tail tile whose last features do not exist,
    for each sequence kind: no mask, a mask, packed."""
    monkeypatch.setattr(backend, "TOKEN_VEC", vec)
    h = _hidden((5, 5, 7), nans=0.1, seed=vec)
    modes = ["mean", "max", "cls", "weighted_mean"]
    d = cuda.to_device(h)
    for mask in (None, MASK):
        dm = None if mask is None else cuda.to_device(mask)
        _check(nbp.pool_tokens(d, dm, modes, nan_policy="omit"),
               nbp.pool_tokens(h, mask, modes, nan_policy="omit"))
    lengths = [5, 0, 9, 1, 10]
    got = nbp.pool_tokens(d.reshape(25, 7), lengths=cuda.to_device(np.array(lengths)),
                          mode=modes)
    _check(got, nbp.pool_tokens(h.reshape(25, 7), lengths=lengths, mode=modes))


def test_repeated_modes_and_coefficient_modes_packed():
    h = _hidden((12, 4), seed=5)
    rng = np.random.default_rng(5)
    w, s = rng.random(12), 50 * rng.standard_normal(12)
    offsets = np.array([0, 3, 3, 12], np.uint16)
    modes = ["mean", "weighted", "mean", "attention", "sum"]
    got = nbp.pool_tokens(cuda.to_device(h), offsets=cuda.to_device(offsets), mode=modes,
                          weights=w, scores=s)
    _check(got, nbp.pool_tokens(h, offsets=offsets, mode=modes, weights=w, scores=s))
    got = nbp.pool_tokens(cuda.to_device(h), offsets=offsets, mode=modes, weights=w,
                          scores=s, nan_policy="omit")
    _check(got, nbp.pool_tokens(h, offsets=offsets, mode=modes, weights=w, scores=s,
                                nan_policy="omit"))


def test_packed_batches_of_empty_sequences():
    modes = ["cls", "last", "mean", "max", "weighted_mean"]
    got = nbp.pool_tokens(cuda.to_device(np.zeros((0, 3), np.float32)), lengths=[0, 0],
                          mode=modes)
    _check(got, nbp.pool_tokens(np.zeros((0, 3), np.float32), lengths=[0, 0], mode=modes))


def test_kernels_are_specialised_and_built_once():
    codes = (MODE_CODES["mean"], MODE_CODES["max"])
    k = cuda_tokens.token_kernel(codes, False, cuda_tokens.K_MASK, False, 2, 32, 8)
    assert k is cuda_tokens.token_kernel(codes, False, cuda_tokens.K_MASK, False, 2, 32, 8)
    assert k is not cuda_tokens.token_kernel(codes, True, cuda_tokens.K_MASK, False, 2, 32, 8)
    # what each thread keeps decides how many features it takes
    assert cuda_tokens.max_vec((MODE_CODES["mean"],), False, False) == 4
    assert cuda_tokens.max_vec(tuple(MODE_CODES.values()), True, True) == 1
    assert not cuda_tokens.reads_tokens((MODE_CODES["cls"], MODE_CODES["last"]))
