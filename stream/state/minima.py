"""The smallest value per series of a multiset that grows and shrinks: the opening time of the
oldest open ticket, per segment.

Sums (the live gauges) cannot give a minimum, and the oldest ticket is often the one that gets
solved next, so every value is counted and a heap per series finds the smallest. Removed values
leave the heap lazily; a heap is rebuilt when stale entries outnumber the live ones.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from stream.state.windows import SeriesKey


class Minima:
    """Per series: a multiset of integers and its smallest member."""

    def __init__(self) -> None:
        self._counts: dict[SeriesKey, dict[int, int]] = {}
        self._heaps: dict[SeriesKey, list[int]] = {}

    def add(self, key: SeriesKey, value: int, times: int) -> None:
        """Add `times` copies of value (remove them when negative)."""
        counts = self._counts.setdefault(key, {})
        n = counts.get(value, 0) + times
        if n > 0:
            if value not in counts:
                heap = self._heaps.setdefault(key, [])
                heapq.heappush(heap, value)
                if len(heap) > 2 * len(counts) + 16:  # mostly stale: start afresh
                    self._heaps[key] = heap = sorted({*counts, value})
            counts[value] = n
            return
        counts.pop(value, None)
        if not counts:
            del self._counts[key]
            del self._heaps[key]

    def items(self) -> Iterator[tuple[SeriesKey, int]]:
        """(series, smallest value) of every series with values."""
        for key, heap in self._heaps.items():
            counts = self._counts[key]
            while heap[0] not in counts:
                heapq.heappop(heap)
            yield key, heap[0]
