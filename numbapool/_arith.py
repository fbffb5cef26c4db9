"""Per-element and per-window arithmetic shared by every backend.

Plain Python functions with no decorator: the CPU backend compiles them with ``@njit`` and
the CUDA backend as ``@cuda.jit(device=True)`` functions, so the rules are written once and
every CPU test exercises the code the GPU runs.  Codes for ``transform`` and ``finish`` are
defined in :mod:`numbapool.plan`.
"""

import math

# element transforms before summing (plan.TRANSFORMS)
T_IDENTITY, T_POWER, T_CLIP_POWER = 0, 1, 2
# what a window sum becomes (plan.FINISHES)
F_MEAN, F_ROOT_SUM, F_ROOT_MEAN = 0, 1, 2


def take(m, v, is_min, omit):
    """Whether candidate ``v`` replaces the running extreme ``m``; earlier candidates win ties.

    Under ``omit`` a NaN never wins and a NaN start is replaced; under propagate the first NaN
    wins and sticks (``v > NaN`` is false and a later number is not NaN).  Written with
    bitwise operators only, so a loop calling it with loop-invariant flags has no branches
    and vectorises.
    """
    is_max = not is_min
    better = ((v > m) & is_max) | ((v < m) & is_min)
    return better | ((v != v) & (not omit)) | ((m != m) & omit)


def ieee_take(m, v, is_min, omit):
    """Whether ``v`` replaces the running extreme ``m`` under IEEE 754-2019 ordering.

    The rule of token max/min: ``maximum``/``minimum`` under propagate (a NaN wins),
    ``maximumNumber``/``minimumNumber`` under omit (a NaN never wins, a NaN start is
    replaced).  -0 counts below +0, so equal values are interchangeable and a max or min
    over many values does not depend on the order they are combined in.  Branch-free.
    """
    is_max = not is_min
    tie = v == m
    sv = math.copysign(1.0, v)
    sm = math.copysign(1.0, m)
    above = (v > m) | (tie & (sv > sm))
    below = (v < m) | (tie & (sv < sm))
    return (above & is_max) | (below & is_min) | ((v != v) & (not omit)) | ((m != m) & omit)


def take_indexed(m, mi, v, vi, is_min, omit):
    """Like :func:`take`, but ties (and NaN against NaN) go to the smaller flat index.

    Branch-free for the same reason as :func:`take`.
    """
    v_nan = v != v
    m_nan = m != m
    first = vi < mi
    is_max = not is_min
    better = ((v > m) & is_max) | ((v < m) & is_min) | ((v == m) & first)
    one_nan = (m_nan & omit) | (v_nan & (not omit))  # exactly one of them is NaN
    neither_nan = (v_nan | m_nan) ^ True  # a bitwise "not", which stays branch-free
    return ((v_nan & m_nan) & first) | ((v_nan ^ m_nan) & one_nan) | (neither_nan & better)


def transform(v, kind, power, eps):
    """The value summed for element ``v``: itself, ``v**p`` or ``max(v, eps)**p``."""
    if kind == T_IDENTITY:
        return v
    if kind == T_CLIP_POWER:
        v = v if (v > eps or v != v) else eps
    if power == 2.0:
        return v * v
    if power == 3.0:
        return v * v * v
    if power == 1.0:
        return v
    return v ** power


def finish(s, divisor, kind, power):
    """A window sum turned into a mean, an Lp norm (root of the sum) or GeM (root of the mean)."""
    if kind == F_MEAN:
        return s / divisor
    if kind == F_ROOT_MEAN:
        s = s / divisor
    if s != s:
        return s
    if s <= 0.0:
        return 0.0  # a non-positive power sum pools to 0
    if power == 1.0:
        return s
    if power == 2.0:
        return math.sqrt(s)
    return s ** (1.0 / power)
