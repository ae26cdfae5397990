"""Quantile sketch: accuracy against exact nearest-rank quantiles, and merging."""

import math
import random
from collections import Counter

from stream.state.sketch import ACCURACY, bin_of, nearest_rank, quantile


def exact(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[nearest_rank(q, len(ordered)) - 1]


def test_quantiles_within_relative_accuracy() -> None:
    rng = random.Random(7)
    samples = [rng.lognormvariate(math.log(4 * 3600), 0.8) for _ in range(5000)]
    bins = Counter(bin_of(v) for v in samples)
    for q in (0.01, 0.5, 0.9, 0.99, 1.0):
        got, want = quantile(bins, q), exact(samples, q)
        assert got is not None
        assert abs(got - want) <= ACCURACY * want + 1e-9, (q, got, want)


def test_empty_sketch_has_no_quantile() -> None:
    assert quantile({}, 0.5) is None


def test_zero_and_tiny_values() -> None:
    bins = Counter(bin_of(v) for v in (0.0, 0.0, 0.0005, 10.0))
    assert quantile(bins, 0.5) == 0.0
    assert abs(quantile(bins, 1.0) - 10.0) <= 0.1


def test_merging_is_adding_bins() -> None:
    a, b = [1.0, 5.0, 9.0], [2.0, 100.0]
    merged = Counter(bin_of(v) for v in a) + Counter(bin_of(v) for v in b)
    assert quantile(merged, 0.5) is not None
    assert abs(quantile(merged, 0.5) - 5.0) <= 0.05


def test_nearest_rank_is_exact() -> None:
    assert nearest_rank(0.9, 30) == 27
    assert nearest_rank(0.5, 1) == 1
    assert nearest_rank(0.0, 10) == 1
    assert nearest_rank(0.5, 3) == 2
