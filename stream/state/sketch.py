"""A mergeable quantile sketch with bounded relative error (the DDSketch idea).

A positive value v goes to bin ceil(log_gamma(v)); every value in a bin is within `accuracy` of the
bin's representative value. Bins are plain integer counts, so sketches merge by addition and can
live in the same step buckets and running window totals as every other counter. Zero (and anything
below one millisecond) has its own bin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction

ACCURACY = 0.01
_GAMMA = (1 + ACCURACY) / (1 - ACCURACY)
_LOG_GAMMA = math.log(_GAMMA)
ZERO_BIN = -(2**31)
_MIN_VALUE = 0.001


def bin_of(value: float) -> int:
    """The sketch bin of a non-negative value."""
    if value < _MIN_VALUE:
        return ZERO_BIN
    return math.ceil(math.log(value) / _LOG_GAMMA)


def bin_value(index: int) -> float:
    """The representative value of a bin: within ACCURACY of every value it holds."""
    if index == ZERO_BIN:
        return 0.0
    return 2 * _GAMMA**index / (_GAMMA + 1)


def quantile(bins: Mapping[int, int], q: float) -> float | None:
    """Nearest-rank quantile (rank = ceil(q*n), at least 1) from bin counts; None when empty."""
    n = sum(bins.values())
    if n <= 0:
        return None
    rank = nearest_rank(q, n)
    seen = 0
    for index in sorted(bins):
        seen += bins[index]
        if seen >= rank:
            return bin_value(index)
    return bin_value(max(bins))


def nearest_rank(q: float, n: int) -> int:
    """rank = ceil(q*n), at least 1, computed exactly (0.9 * 30 is 27.000000000000004 in floats)."""
    return max(1, math.ceil(Fraction(q).limit_denominator(10_000) * n))
