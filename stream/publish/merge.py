"""Entries merged: summed over partitions, segment values beyond the fleet-wide bound folded to
`other`, and grouped by measure and segment for the KPI kinds to read."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from stream.contract.schemas import SOURCE_TOPICS
from stream.kpis.kinds import AGE_SUM_MS, OLDEST_MS
from stream.publish.entries import Entry, WindowTotals
from stream.state.partition import OUTCOMES
from stream.state.segments import OTHER, RESERVED, Admitted, merge_admitted
from stream.state.windows import Totals, add_into

#: Per dimension, the segment values that keep their name fleet-wide.
Keep = Mapping[str, frozenset[str]]


@dataclass
class Merged:
    """Sum of partition entries."""

    windows: dict[int, Totals] = field(default_factory=dict)
    live: Totals = field(default_factory=dict)
    #: (dimension, segment) -> [summed age, oldest age] of open tickets, ms
    ages: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    #: window size -> [covered from, complete at] of windows some partition has not filled yet
    incomplete: dict[int, list[int]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    #: topic -> partition -> records with an outcome
    processed: dict[str, dict[int, int]] = field(default_factory=dict)
    stream_times: list[int] = field(default_factory=list)  # of the source partitions
    customer_times: list[int] = field(default_factory=list)  # of the customers partitions
    admitted: Admitted = field(default_factory=dict)
    folded: dict[str, dict[str, int]] = field(default_factory=dict)  # topic -> dimension -> n


def merge(entries: Iterable[Entry]) -> Merged:
    merged = Merged()
    for entry in entries:
        for size, totals in entry.windows.items():
            add_into(merged.windows.setdefault(size, {}), totals)
        add_into(merged.live, entry.live)
        for dim, seg, total, oldest in entry.ages:
            add_age(merged.ages, (dim, seg), total, oldest)
        for size, since, complete_at in entry.incomplete:
            widen(merged.incomplete, size, since, complete_at)
        merged.admitted = merge_admitted([merged.admitted, entry.segments])
        folded = merged.folded.setdefault(entry.topic, {})
        for dimension, n in entry.folded.items():
            folded[dimension] = folded.get(dimension, 0) + n
        counts = merged.counts.setdefault(entry.topic, dict.fromkeys(OUTCOMES, 0))
        for outcome, n in entry.counts.items():
            counts[outcome] = counts.get(outcome, 0) + n
        processed = merged.processed.setdefault(entry.topic, {})
        processed[entry.partition] = sum(entry.counts.values())
        if entry.stream_time is not None:
            source = entry.topic in SOURCE_TOPICS
            (merged.stream_times if source else merged.customer_times).append(entry.stream_time)
    return merged


def widen(incomplete: dict[int, list[int]], size: int, since: int, complete_at: int) -> None:
    """A window is incomplete fleet-wide until the last partition has filled it."""
    span = incomplete.setdefault(size, [since, complete_at])
    span[:] = [min(span[0], since), max(span[1], complete_at)]


def add_age(
    ages: dict[tuple[str, str], list[int]], key: tuple[str, str], total: int, oldest: int
) -> None:
    """Ages add up; the oldest is the largest."""
    age = ages.setdefault(key, [0, oldest])
    age[0] += total
    age[1] = max(age[1], oldest)


def sum_windows(totals: Iterable[WindowTotals]) -> WindowTotals:
    """Window totals of several partitions added up, per window size."""
    merged: WindowTotals = {}
    for windows in totals:
        for size, series in windows.items():
            add_into(merged.setdefault(size, {}), series)
    return merged


def fold(totals: Totals, keep: Keep) -> Totals:
    """Series of segment values outside the fleet-wide bound, added into `other`.

    Currencies are part of the measure name ('priced_orders:EUR') and are folded the same way.
    """
    out: Totals = {}
    for (metric, dim, seg, b), n in totals.items():
        if _beyond(keep, dim, seg):
            seg = OTHER
        measure, sep, currency = metric.partition(":")
        if sep and _beyond(keep, "currency", currency):
            metric = f"{measure}:{OTHER}"
        key = (metric, dim, seg, b)
        out[key] = out.get(key, 0) + n
    return out


#: The grouped measure under which the open tickets' ages are rendered.
AGES = "backlog_opened"


def ages_grouped(
    ages: Mapping[tuple[str, str], list[int]], keep: Keep
) -> dict[tuple[str, str], SegmentSeries]:
    """The merged ages by segment, values beyond `keep` folded into other."""
    folded: dict[tuple[str, str], list[int]] = {}
    for (dim, seg), (total, oldest) in ages.items():
        add_age(folded, (dim, OTHER if _beyond(keep, dim, seg) else seg), total, oldest)
    return {
        key: {(AGE_SUM_MS, -1): total, (OLDEST_MS, -1): oldest}
        for key, (total, oldest) in folded.items()
    }


def _beyond(keep: Keep, dimension: str, value: str) -> bool:
    return dimension in keep and value not in keep[dimension] and value not in RESERVED


#: Series of one segment of one measure, keyed (metric, bin).
SegmentSeries = dict[tuple[str, int], int]
#: Totals grouped by base measure, then by (dimension, segment).
Grouped = dict[str, dict[tuple[str, str], SegmentSeries]]


def by_measure(totals: Totals) -> Grouped:
    """Totals grouped once by base measure and segment, so that each KPI reads only its own
    series (rather than every KPI scanning all of them)."""
    grouped: Grouped = {}
    for (metric, dim, seg, b), n in totals.items():
        segments = grouped.setdefault(base_measure(metric), {})
        segments.setdefault((dim, seg), {})[(metric, b)] = n
    return grouped


def base_measure(metric: str) -> str:
    """'resolution.count' -> 'resolution', 'priced_orders:EUR' -> 'priced_orders'."""
    return metric.split(".", 1)[0].split(":", 1)[0]
