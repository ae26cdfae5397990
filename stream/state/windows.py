"""Step buckets and rolling windows in event time.

Every KPI sample lands in the step bucket of its event time. A window of size W at stream time S
is the sum of the buckets whose *end* lies in (S - W, S]; the bucket still in progress is in no
window yet. Windows are kept as running totals (add a bucket when it closes, subtract it when it
leaves), so a sample costs one bucket write whatever the number and size of windows.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stream.config import lagged_window
from stream.config import window_name as window_name  # the label of a window size

#: A series inside a bucket: (metric, dimension, segment, bin). Overall is ("", ""); bin is -1
#: unless the metric is a histogram or sketch.
SeriesKey = tuple[str, str, str, int]
Totals = dict[SeriesKey, int]

_SERIES: dict[SeriesKey, SeriesKey] = {}


def series_key(key: SeriesKey) -> SeriesKey:
    """One tuple per distinct series, shared by every bucket and window that holds it. Series are
    bounded (measures x bounded segments x bins), and a 30 d window's 720 hourly buckets would
    otherwise each keep their own copies of the same keys (about 200 B an entry)."""
    return _SERIES.setdefault(key, key)


def bucket_index(t_ms: int, step_ms: int) -> int:
    """The index k of the bucket [k*step, (k+1)*step) holding time t."""
    return t_ms // step_ms


def bucket_end(t_ms: int, step_ms: int) -> int:
    """When the bucket holding t ends (exclusive upper bound)."""
    return (t_ms // step_ms + 1) * step_ms


def is_late(t_ms: int, stream_time: int | None, step_ms: int, grace_ms: int) -> bool:
    """An event is late when its bucket ended more than the grace period before stream time."""
    return stream_time is not None and bucket_end(t_ms, step_ms) < stream_time - grace_ms


def window_range(stream_time: int, size_ms: int, step_ms: int) -> tuple[int, int]:
    """Inclusive bucket index range [lo, hi] of the buckets ending in (S - size, S]."""
    return (stream_time - size_ms) // step_ms, stream_time // step_ms - 1


#: Window versions: a new number for every change of any window's totals, unique in the process
#: (a partition moving away and back never repeats a version it had before).
_versions = itertools.count(1)


#: The bins of a duration's quantile sketch (stream/state/measures.py: `<measure>.sketch`).
SKETCH_SUFFIX = ".sketch"


def keeps(measures: frozenset[str], metric: str) -> bool:
    """Whether a window limited to these base measures holds a series of this metric. Such a
    window (one only change alerts read) never holds the bins of a quantile sketch: they are
    most of all series, and a change alert reads a duration's count, sum and squares."""
    return (
        not metric.endswith(SKETCH_SUFFIX) and metric.split(".", 1)[0].split(":", 1)[0] in measures
    )


def add_into(
    target: Totals,
    source: Mapping[SeriesKey, int],
    sign: int = 1,
    measures: frozenset[str] | None = None,
) -> None:
    """target += sign * source, dropping series that reach zero; only the series `keeps` keeps
    when `measures` is given."""
    if measures is not None:
        source = {k: v for k, v in source.items() if keeps(measures, k[0])}
    for key, value in source.items():
        total = target.get(key, 0) + sign * value
        if total:
            target[key] = total
        else:
            target.pop(key, None)


def rows_of(totals: Mapping[SeriesKey, int]) -> list[list[Any]]:
    """Totals as JSON-able rows [metric, dimension, segment, bin, value]."""
    return [[m, d, s, b, n] for (m, d, s, b), n in totals.items()]


def totals_of(rows: Iterable[list[Any]]) -> Totals:
    """The inverse of rows_of."""
    return {series_key((m, d, s, b)): n for m, d, s, b, n in rows}


@dataclass
class Window:
    """Running totals of one rolling window over a partition's buckets. A window with a lag
    ends `lag_ms` before stream time (a change alert's baseline: the buckets that end in
    (S - lag - size, S - lag]); it slides like the others."""

    size_ms: int
    step_ms: int
    lo: int = 0
    hi: int = -1  # empty range until the first advance
    totals: Totals = field(default_factory=dict)
    #: Changes whenever the totals may have: what is rendered from them can be reused until then.
    version: int = 0
    lag_ms: int = 0
    #: The base measures it holds (None: all): a window only change alerts read holds theirs.
    measures: frozenset[str] | None = None

    @property
    def key(self) -> int:
        """Its key among a partition's windows: the size in ms, or the lagged window's key."""
        if not self.lag_ms:
            return self.size_ms
        return lagged_window(self.size_ms // 1000, self.lag_ms // 1000)

    @property
    def reach_ms(self) -> int:
        """How far before stream time its oldest bucket may end."""
        return self.size_ms + self.lag_ms

    def changed(self) -> Totals:
        """The totals, to be changed by the caller (a sample landed in a covered bucket)."""
        self.version = next(_versions)
        return self.totals

    def advance(self, stream_time: int, buckets: Mapping[int, Totals]) -> None:
        """Slide to stream time: add the buckets that entered, subtract those that left."""
        lo, hi = window_range(stream_time - self.lag_ms, self.size_ms, self.step_ms)
        if (lo, hi) == (self.lo, self.hi):
            return
        if self.lo <= self.hi and self.lo <= lo and self.hi <= hi:  # slid forward: the ends move
            for k in _indices_in(buckets, self.lo, min(lo - 1, self.hi)):
                add_into(self.totals, buckets[k], -1, self.measures)
            for k in _indices_in(buckets, max(self.hi + 1, lo), hi):
                add_into(self.totals, buckets[k], 1, self.measures)
        else:
            old = set(_indices_in(buckets, self.lo, self.hi))
            new = set(_indices_in(buckets, lo, hi))
            for k in old - new:
                add_into(self.totals, buckets[k], -1, self.measures)
            for k in new - old:
                add_into(self.totals, buckets[k], 1, self.measures)
        self.lo, self.hi = lo, hi
        self.version = next(_versions)

    def rebuild(self, stream_time: int, buckets: Mapping[int, Totals]) -> None:
        """Recompute the totals from scratch (after recovery)."""
        self.lo, self.hi = window_range(stream_time - self.lag_ms, self.size_ms, self.step_ms)
        self.totals = {}
        for k in _indices_in(buckets, self.lo, self.hi):
            add_into(self.totals, buckets[k], 1, self.measures)
        self.version = next(_versions)


def _indices_in(buckets: Mapping[int, Totals], lo: int, hi: int) -> Iterable[int]:
    """Bucket indices present in [lo, hi], cheap whether the range or the store is the smaller."""
    if hi < lo:
        return ()
    if hi - lo + 1 <= len(buckets):
        return (k for k in range(lo, hi + 1) if k in buckets)
    return (k for k in buckets if lo <= k <= hi)
