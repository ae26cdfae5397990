"""How a KPI sample becomes bucket series, and the histogram bounds of duration samples.

Counting samples (a cart abandoned, an NPS promoter) add their value to one series per segment.
Duration samples (a resolution time in ms) add to a count, an exact integer-millisecond sum, the
square of the sample in whole seconds (for the mean's variance), one non-cumulative histogram bin
and one quantile-sketch bin, per segment. All are integers, so buckets and windows add and
subtract them exactly.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from stream.state.facts import Contribution, Segments
from stream.state.sketch import bin_of
from stream.state.windows import SeriesKey, series_key

#: Upper bounds (seconds) of the published histogram buckets of durations; +Inf is implied.
DURATION_BOUNDS_S = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800)
_BOUNDS_MS = tuple(b * 1000 for b in DURATION_BOUNDS_S)

#: Upper bounds (seconds) of the backlog-age gauge histogram; +Inf is implied.
AGE_BOUNDS_S = (3600, 14400, 86400, 259200, 604800, 2592000)
AGE_BOUNDS_MS = tuple(b * 1000 for b in AGE_BOUNDS_S)

#: Measures whose value is a duration in milliseconds.
DURATION_MEASURES = frozenset({"resolution", "first_response", "session_duration", "time_to_value"})
#: A measure named `<name>@<kind>` lands, as `<name>`, only in the buckets of the resolution of
#: that kind ('b' the step, 'l' the long step): a distinct count whose sample sits in the last
#: *closed* bucket of a user's activity, which differs per step (stream/kpis/engagement.py).
AT = "@"


def resolution_only(measure: str) -> str | None:
    """The kind of the one resolution a measure lands in, or None for every resolution."""
    return measure[-1] if measure[-2:-1] == AT else None


#: Live measures whose value is the index of a histogram bin: one count in that bin.
BIN_MEASURES = frozenset({"backlog_age"})
#: Live measures whose smallest value is what matters (the opening of the oldest open ticket).
MINIMUM_MEASURES = frozenset({"backlog_opened"})

COUNT, SUM_MS, HIST, SKETCH = "count", "sum_ms", "le", "sketch"
#: The sum of the squared samples, each rounded to whole seconds: squares of milliseconds would
#: pass 2^63 (the changelog's and Redis' integers) in a 30 d window of day-long durations.
SQUARES_S2 = "squares_s2"


def whole_seconds(value_ms: int) -> int:
    """A duration in whole seconds, halves rounded up (durations are never negative)."""
    return (value_ms + 500) // 1000


def duration_bin(value_ms: int) -> int:
    """Index of the histogram bucket holding a duration (len(bounds) means +Inf)."""
    return bisect_left(_BOUNDS_MS, value_ms)


def expand(contribution: Contribution) -> Iterator[tuple[SeriesKey, int]]:
    """The (series, amount) pairs one sample adds to its bucket."""
    measure, segments, value = contribution[1], contribution[2], contribution[3]
    if measure[-2:-1] == AT:
        measure = measure[:-2]
    if measure in DURATION_MEASURES:
        hist_bin = duration_bin(value)
        squares = whole_seconds(value) ** 2
        sketch_bin = bin_of(value / 1000)
        for dim, seg in segments:
            yield series_key((f"{measure}.{COUNT}", dim, seg, -1)), 1
            yield series_key((f"{measure}.{SUM_MS}", dim, seg, -1)), value
            yield series_key((f"{measure}.{SQUARES_S2}", dim, seg, -1)), squares
            yield series_key((f"{measure}.{HIST}", dim, seg, hist_bin)), 1
            yield series_key((f"{measure}.{SKETCH}", dim, seg, sketch_bin)), 1
    elif measure in BIN_MEASURES:
        for dim, seg in segments:
            yield series_key((f"{measure}.{HIST}", dim, seg, value)), 1
    else:
        for series in counted(measure, segments):
            yield series, value


#: A counted measure's series per segment combination; bounded, and past the bound not kept.
_COUNTED: dict[tuple[str, Segments], tuple[SeriesKey, ...]] = {}
MAX_COUNTED = 65_536


def counted(measure: str, segments: Segments) -> tuple[SeriesKey, ...]:
    """The series a counting sample adds to, one per segment. Kept per (measure, segments):
    building and interning them was most of what a sample cost."""
    series = _COUNTED.get((measure, segments))
    if series is None:
        series = tuple(series_key((measure, dim, seg, -1)) for dim, seg in segments)
        if len(_COUNTED) < MAX_COUNTED:
            _COUNTED[measure, segments] = series
    return series


#: A counted measure's landing per (measure, segments): its one resolution (or None) and series.
_LANDING: dict[tuple[str, Segments], tuple[str | None, tuple[SeriesKey, ...]]] = {}


def sample_deltas(
    contribution: Contribution, times: int
) -> tuple[str | None, list[tuple[SeriesKey, int]]]:
    """The resolution a sample lands in only (None: every one) and what it adds to each series,
    `times` times. A counted sample's series are looked up once per (measure, segments): a
    distinct count's users move every step, each a handful of such samples."""
    measure, segments, value = contribution[1], contribution[2], contribution[3]
    landing = _LANDING.get((measure, segments))
    if landing is None:
        only = resolution_only(measure)
        base = measure[:-2] if only else measure
        if base in DURATION_MEASURES or base in BIN_MEASURES:
            return only, [(series, n * times) for series, n in expand(contribution)]
        landing = (only, counted(base, segments))
        if len(_LANDING) < MAX_COUNTED:
            _LANDING[measure, segments] = landing
    only, series_of = landing
    amount = value * times
    return only, [(series, amount) for series in series_of]
