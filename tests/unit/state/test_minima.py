"""Minima: the smallest member of a multiset under additions and removals."""

from __future__ import annotations

import random

from stream.state.minima import Minima

KEY = ("backlog_opened", "", "", -1)


def test_the_smallest_follows_additions_and_removals() -> None:
    minima = Minima()
    minima.add(KEY, 50, 1)
    minima.add(KEY, 20, 1)
    minima.add(KEY, 20, 1)
    assert dict(minima.items()) == {KEY: 20}
    minima.add(KEY, 20, -1)
    assert dict(minima.items()) == {KEY: 20}  # one copy left
    minima.add(KEY, 20, -1)
    assert dict(minima.items()) == {KEY: 50}
    minima.add(KEY, 50, -1)
    assert dict(minima.items()) == {}


def test_random_churn_matches_a_plain_multiset_and_the_heap_stays_small() -> None:
    rng = random.Random(7)
    minima, plain = Minima(), []
    for _ in range(20_000):
        if plain and rng.random() < 0.5:
            value = plain.pop(rng.randrange(len(plain)))
            minima.add(KEY, value, -1)
        else:
            value = rng.randrange(1_000_000)
            plain.append(value)
            minima.add(KEY, value, 1)
        assert dict(minima.items()) == ({KEY: min(plain)} if plain else {})
    assert len(minima._heaps.get(KEY, [])) <= 2 * len(set(plain)) + 17
