"""The merged KPI snapshot (docs/snapshot.md): from per-partition window totals to one document.

Each partition contributes an *entry* (its window totals at its own stream time, its live gauges,
its outcome counts). Entries merge by addition, whoever owns the partition, so the same code
builds the Redis snapshot, the JSON endpoint and the Prometheus families.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from stream.contract.schemas import SOURCE_TOPICS
from stream.kpis.carts import MICROS
from stream.kpis.catalog import LIVE, WINDOWED, Kpi
from stream.kpis.customers import MAX_LIFETIME_PERIODS, customer_kpis
from stream.state.measures import AGE_BOUNDS_S, COUNT, DURATION_BOUNDS_S, HIST, SKETCH, SUM_MS
from stream.state.partition import OUTCOMES, PartitionState
from stream.state.segments import OTHER, RESERVED, Admitted, fleet_names, merge_admitted
from stream.state.sketch import quantile
from stream.state.windows import Totals, add_into, rows_of, totals_of, window_name

Entry = dict[str, Any]
#: A partition's window totals by window size (ms).
WindowTotals = dict[int, Totals]


def partition_entry(state: PartitionState, windows: bool = True) -> Entry:
    """A summary of one partition: what the merged snapshot needs from it (without the window
    totals when `windows` is false). A copy: it may be encoded in another thread."""
    return {
        "topic": state.topic,
        "partition": state.partition,
        "stream_time": state.stream_time,
        "counts": dict(state.counts),
        "windows": window_copies(state) if windows else {},
        "live": dict(state.gauges),
        # [dimension, segment, summed age ms, oldest age ms] of the open tickets
        "ages": [[d, s, total, oldest] for (d, s), (total, oldest) in state.ages().items()],
        # [size ms, covered from, complete at] of the windows not yet filled after a rebuild
        "incomplete": [[size, *span] for size, span in state.incomplete().items()],
        "segments": {d: dict(values) for d, values in state.names.admitted.items()},
        "folded": dict(state.names.folded),
    }


def window_copies(state: PartitionState) -> WindowTotals:
    """Copies of a partition's window totals, by window size (they may be encoded or merged in
    another thread while the state changes)."""
    return {w.size_ms: dict(w.totals) for w in state.windows}


def window_version(state: PartitionState) -> int:
    """Changes whenever any window total of the partition may have (versions only grow, and are
    unique in the process)."""
    return max((w.version for w in state.windows), default=0)


def encode_entry(entry: Entry) -> bytes:
    """An entry as JSON, as stored in Redis: totals as rows, window sizes as strings."""
    return orjson.dumps(
        {**entry, "windows": encode_windows(entry["windows"]), "live": rows_of(entry["live"])}
    )


def decode_entry(raw: bytes) -> Entry:
    """The inverse of encode_entry."""
    entry = orjson.loads(raw)
    entry["windows"] = decode_windows(entry["windows"])
    entry["live"] = totals_of(entry["live"])
    entry.setdefault("ages", [])  # written by a worker of an earlier version
    entry.setdefault("incomplete", [])
    return entry


def encode_windows(windows: WindowTotals) -> dict[str, list[list[Any]]]:
    """Window totals as JSON-able rows, window sizes as strings."""
    return {str(size): rows_of(totals) for size, totals in windows.items()}


def decode_windows(encoded: Mapping[str, list[list[Any]]]) -> WindowTotals:
    """The inverse of encode_windows."""
    return {int(size): totals_of(rows) for size, rows in encoded.items()}


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
        for size, totals in entry["windows"].items():
            add_into(merged.windows.setdefault(size, {}), totals)
        add_into(merged.live, entry["live"])
        for dim, seg, total, oldest in entry["ages"]:
            _add_age(merged.ages, (dim, seg), total, oldest)
        for size, since, complete_at in entry["incomplete"]:
            _widen(merged.incomplete, size, since, complete_at)
        merged.admitted = merge_admitted([merged.admitted, entry["segments"]])
        folded = merged.folded.setdefault(entry["topic"], {})
        for dimension, n in entry["folded"].items():
            folded[dimension] = folded.get(dimension, 0) + n
        counts = merged.counts.setdefault(entry["topic"], dict.fromkeys(OUTCOMES, 0))
        for outcome, n in entry["counts"].items():
            counts[outcome] = counts.get(outcome, 0) + n
        processed = merged.processed.setdefault(entry["topic"], {})
        processed[entry["partition"]] = sum(entry["counts"].values())
        if entry["stream_time"] is not None:
            source = entry["topic"] in SOURCE_TOPICS
            (merged.stream_times if source else merged.customer_times).append(entry["stream_time"])
    return merged


def _widen(incomplete: dict[int, list[int]], size: int, since: int, complete_at: int) -> None:
    """A window is incomplete fleet-wide until the last partition has filled it."""
    span = incomplete.setdefault(size, [since, complete_at])
    span[:] = [min(span[0], since), max(span[1], complete_at)]


def _add_age(
    ages: dict[tuple[str, str], list[int]], key: tuple[str, str], total: int, oldest: int
) -> None:
    """Ages add up; the oldest is the largest."""
    age = ages.setdefault(key, [0, oldest])
    age[0] += total
    age[1] = max(age[1], oldest)


def format_time(ms: int | None) -> str | None:
    """Epoch milliseconds as RFC 3339 UTC with milliseconds and Z."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def render(
    merged: Merged,
    windows_ms: Iterable[int],
    partitions: Mapping[str, int],
    *,
    max_values: int,
    admitted: Admitted | None = None,
    enabled: Callable[[str], bool] = lambda kpi: True,
    windows: Any = None,
    max_lifetime_periods: int = MAX_LIFETIME_PERIODS,
) -> dict[str, Any]:
    """The snapshot document, with segment values beyond the fleet-wide bound folded to other.

    `admitted` is the fleet's admitted values when `merged` covers only some partitions (a
    worker's /metrics), so that every worker folds the same values. KPIs switched off in the
    configuration file (`enabled`) are left out. `windows`, when given, is the windowed KPIs
    already rendered (Shape.windows), used instead of rendering `merged.windows`.
    `max_lifetime_periods` caps a customer's expected lifetime in the lifetime value.
    """
    keep = fleet_names(merged.admitted if admitted is None else admitted, max_values)
    live = by_measure(_fold(merged.live, keep))
    live[AGES] = _ages_grouped(merged.ages, keep)  # replaces the per-partition opening sums
    times = merged.stream_times
    live_kpis = {  # of the topics read (the customers topic only with customer KPIs on)
        kpi.name: render_kpi(kpi, live, max_lifetime_periods)
        for kpi in LIVE
        if enabled(kpi.name) and kpi.topic in partitions
    }
    if "customers" in live_kpis:  # evaluated at the customers partitions' stream time
        at = min(merged.customer_times, default=None)
        live_kpis["customers"]["overall"]["as_of"] = format_time(at)
    return {
        "valid_at": format_time(min(times)) if times else None,
        "latest": format_time(max(times)) if times else None,
        "partitions": dict(partitions),
        "windows": render_windows(merged.windows, windows_ms, keep, enabled, merged.incomplete)
        if windows is None
        else windows,
        "live": live_kpis,
        "segments": {
            "kept": {d: sorted(v) for d, v in sorted(keep.items())},
            "folded_events": {
                topic: dict(sorted(merged.folded.get(topic, {}).items())) for topic in partitions
            },
        },
        "events": {
            topic: dict(merged.counts.get(topic, dict.fromkeys(OUTCOMES, 0)))
            for topic in partitions
            if topic in SOURCE_TOPICS
        },
        "processed": {
            topic: {str(n): merged.processed.get(topic, {}).get(n, 0) for n in range(count)}
            for topic, count in partitions.items()
        },
    }


@dataclass(frozen=True)
class Shape:
    """What a snapshot document holds, as configured: its windows, the partitions of each
    topic, the bound on segment values, and the KPIs switched on."""

    windows_ms: tuple[int, ...]
    partitions: Mapping[str, int]
    max_values: int
    enabled: Callable[[str], bool] = lambda kpi: True
    max_lifetime_periods: int = MAX_LIFETIME_PERIODS

    def current(self, entries: Iterable[Entry]) -> list[Entry]:
        """The entries of partitions still configured (a topic may once have had more)."""
        return [e for e in entries if e["partition"] < self.partitions.get(e["topic"], 0)]

    def document(
        self, entries: Iterable[Entry], admitted: Admitted | None = None, windows: Any = None
    ) -> dict[str, Any]:
        """The merged document of the entries (see `render`)."""
        return render(
            merge(self.current(entries)),
            self.windows_ms,
            self.partitions,
            max_values=self.max_values,
            admitted=admitted,
            enabled=self.enabled,
            windows=windows,
            max_lifetime_periods=self.max_lifetime_periods,
        )

    def keep(self, entries: Iterable[Entry]) -> dict[str, frozenset[str]]:
        """Per dimension, the segment values of these entries that keep their name."""
        admitted = merge_admitted([e["segments"] for e in self.current(entries)])
        return fleet_names(admitted, self.max_values)

    def windows(
        self,
        totals: Iterable[WindowTotals],
        entries: Iterable[Entry],
        keep: Mapping[str, frozenset[str]],
    ) -> dict[str, dict[str, Any]]:
        """The windowed KPIs of partitions' window totals; `entries` (of the same partitions)
        say which windows are not filled yet."""
        incomplete: dict[int, list[int]] = {}
        for entry in self.current(entries):
            for size, since, complete_at in entry["incomplete"]:
                _widen(incomplete, size, since, complete_at)
        return render_windows(sum_windows(totals), self.windows_ms, keep, self.enabled, incomplete)


def sum_windows(totals: Iterable[WindowTotals]) -> WindowTotals:
    """Window totals of several partitions added up, per window size."""
    merged: WindowTotals = {}
    for windows in totals:
        for size, series in windows.items():
            add_into(merged.setdefault(size, {}), series)
    return merged


def render_windows(
    windows: Mapping[int, Totals],
    windows_ms: Iterable[int],
    keep: Mapping[str, frozenset[str]],
    enabled: Callable[[str], bool] = lambda kpi: True,
    incomplete: Mapping[int, list[int]] | None = None,
) -> dict[str, dict[str, Any]]:
    """The windowed KPIs of merged window totals, per window name, segments beyond `keep`
    folded to other; a window some partition has not filled yet says so and why."""
    grouped = {size: by_measure(_fold(totals, keep)) for size, totals in windows.items()}
    incomplete = incomplete or {}
    return {
        window_name(size // 1000): {
            **_completeness(incomplete.get(size)),
            **{
                kpi.name: render_kpi(kpi, grouped.get(size, {}))
                for kpi in WINDOWED
                if enabled(kpi.name)
            },
        }
        for size in windows_ms
    }


def _completeness(span: list[int] | None) -> dict[str, Any]:
    if span is None:
        return {"complete": True}
    since, complete_at = span
    return {
        "complete": False,
        "reason": f"rebuilt after a restart with other windows or steps: holds the events from "
        f"{format_time(since)} on; complete once stream time reaches {format_time(complete_at)}",
    }


def window_versions(states: Iterable[PartitionState]) -> tuple[int, ...]:
    """Changes whenever a window total (or whether it is complete, which changes only as the
    window slides) of any of the states may have changed."""
    return tuple(w.version for state in states for w in state.windows)


def window_renderer(
    states: Iterable[PartitionState],
    windows_ms: Iterable[int],
    keep: Mapping[str, frozenset[str]],
    enabled: Callable[[str], bool] = lambda kpi: True,
) -> Callable[[], dict[str, dict[str, Any]]]:
    """Copies of the states' window totals, and a function that renders their windowed KPIs from
    the copies alone, so that it may run in another thread while the states change."""
    states = list(states)
    copies = [window_copies(state) for state in states]
    sizes = tuple(windows_ms)
    incomplete: dict[int, list[int]] = {}
    for state in states:
        for size, (since, complete_at) in state.incomplete().items():
            _widen(incomplete, size, since, complete_at)

    def render() -> dict[str, dict[str, Any]]:
        return render_windows(sum_windows(copies), sizes, keep, enabled, incomplete)

    return render


def _fold(totals: Totals, keep: Mapping[str, frozenset[str]]) -> Totals:
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


def _ages_grouped(
    ages: Mapping[tuple[str, str], list[int]], keep: Mapping[str, frozenset[str]]
) -> dict[tuple[str, str], SegmentSeries]:
    """The merged ages by segment, values beyond `keep` folded into other."""
    folded: dict[tuple[str, str], list[int]] = {}
    for (dim, seg), (total, oldest) in ages.items():
        _add_age(folded, (dim, OTHER if _beyond(keep, dim, seg) else seg), total, oldest)
    return {
        key: {("age_sum_ms", -1): total, ("oldest_ms", -1): oldest}
        for key, (total, oldest) in folded.items()
    }


def _beyond(keep: Mapping[str, frozenset[str]], dimension: str, value: str) -> bool:
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


def render_kpi(
    kpi: Kpi, grouped: Grouped, max_lifetime_periods: int = MAX_LIFETIME_PERIODS
) -> dict[str, Any]:
    """One KPI: overall plus a map per segment dimension of the segments with data."""
    by_segment: dict[tuple[str, str], SegmentSeries] = {}
    for measure in {measure for _, measure in kpi.parts}:
        for segment, series in grouped.get(measure, {}).items():
            by_segment.setdefault(segment, {}).update(series)
    overall = by_segment.pop(("", ""), {})
    if kpi.kind == "customers":
        components = {metric: n for (metric, _), n in overall.items()}
        return {"overall": customer_kpis(components, max_lifetime_periods)}
    out: dict[str, Any] = {"overall": _value(kpi, overall)}
    for dimension in kpi.dimensions:
        out[dimension] = {
            seg: _value(kpi, series)
            for (dim, seg), series in sorted(by_segment.items())
            if dim == dimension
        }
    return out


def base_measure(metric: str) -> str:
    """'resolution.count' -> 'resolution', 'priced_orders:EUR' -> 'priced_orders'."""
    return metric.split(".", 1)[0].split(":", 1)[0]


def _value(kpi: Kpi, series: SegmentSeries) -> dict[str, Any]:
    if kpi.kind == "duration":
        return duration_value(kpi.parts[0][1], series)
    if kpi.kind == "money":
        return money_value(series)
    parts = {name: series.get((measure, -1), 0) for name, measure in kpi.parts}
    if kpi.kind == "nps":
        return nps_value(parts["promoters"], parts["passives"], parts["detractors"])
    if kpi.kind == "mean":
        return mean_value(parts["responses"], parts["score_sum"], parts["easy"])
    if kpi.kind == "live":
        return parts
    if kpi.kind == "age":
        return age_value(series)
    first, second = parts.values()
    denominator = first + second if kpi.kind == "share" else second
    value = ratio(first, denominator)
    return {**parts, kpi.value: None if value is None else value * kpi.scale}


def ratio(numerator: int, denominator: int) -> float | None:
    """numerator / denominator, or None (not 0, not NaN) when there is nothing to divide."""
    return numerator / denominator if denominator else None


def nps_value(promoters: int, passives: int, detractors: int) -> dict[str, Any]:
    """NPS = 100 * (promoters - detractors) / responses, with its adjusted-Wald 95 % margin."""
    responses = promoters + passives + detractors
    score = 100 * (promoters - detractors) / responses if responses else None
    return {
        "promoters": promoters,
        "passives": passives,
        "detractors": detractors,
        "responses": responses,
        "score": score,
        "margin_of_error": nps_margin_of_error(promoters, detractors, responses),
    }


def nps_margin_of_error(promoters: int, detractors: int, responses: int) -> float | None:
    """Adjusted-Wald 95 % margin of error of NPS, in NPS points (MeasuringU: n + 3, + 3/4 each).

    p = (P + 3/4) / (n + 3), d = (D + 3/4) / (n + 3);
    var = (p + d - (p - d)^2) / (n + 3); margin = 100 * 1.96 * sqrt(var).
    """
    if not responses:
        return None
    n = responses + 3
    p, d = (promoters + 0.75) / n, (detractors + 0.75) / n
    return 100 * 1.96 * math.sqrt((p + d - (p - d) ** 2) / n)


def mean_value(responses: int, score_sum: int, easy: int) -> dict[str, Any]:
    """CES: mean score (7 = very easy) and the share of easy answers (5-7)."""
    return {
        "responses": responses,
        "score_sum": score_sum,
        "mean": ratio(score_sum, responses),
        "easy": easy,
        "easy_ratio": ratio(easy, responses),
    }


def money_value(series: SegmentSeries) -> dict[str, Any]:
    """Per currency: priced orders, exact amount (summed in millionths) and average order value."""
    out: dict[str, Any] = {}
    for (metric, _), n in sorted(series.items()):
        measure, _, currency = metric.partition(":")
        entry = out.setdefault(currency, {"orders": 0, "amount": 0.0, "average": None})
        if measure == "priced_orders":
            entry["orders"] = n
        else:
            entry["amount"] = n / MICROS
    for entry in out.values():
        entry["average"] = entry["amount"] / entry["orders"] if entry["orders"] else None
    return out


def age_value(series: SegmentSeries) -> dict[str, Any]:
    """Open tickets by age: count, mean and oldest age, cumulative gauge histogram."""
    bins = {b: n for (m, b), n in series.items() if m == f"backlog_age.{HIST}"}
    cumulative = _cumulative(bins, AGE_BOUNDS_S)
    tickets = cumulative["+Inf"]
    total_ms = series.get(("age_sum_ms", -1), 0)
    oldest_ms = series.get(("oldest_ms", -1))
    return {
        "tickets": tickets,
        "sum_seconds": total_ms / 1000,
        "mean_seconds": total_ms / 1000 / tickets if tickets else None,
        "oldest_seconds": oldest_ms / 1000 if tickets and oldest_ms is not None else None,
        "buckets": cumulative,
    }


def _cumulative(bins: Mapping[int, int], bounds: tuple[int, ...]) -> dict[str, int]:
    """Counts per bin index as cumulative counts keyed by bound (Prometheus `le`), and +Inf."""
    cumulative: dict[str, int] = {}
    running = 0
    for index, bound in enumerate((*bounds, "+Inf")):
        running += bins.get(index, 0)
        cumulative[str(bound)] = running
    return cumulative


def duration_value(measure: str, series: SegmentSeries) -> dict[str, Any]:
    """Count, exact sum and mean, sketch quantiles and cumulative histogram of a duration."""
    count = series.get((f"{measure}.{COUNT}", -1), 0)
    sum_ms = series.get((f"{measure}.{SUM_MS}", -1), 0)
    sketch = {b: n for (m, b), n in series.items() if m == f"{measure}.{SKETCH}"}
    bins = {b: n for (m, b), n in series.items() if m == f"{measure}.{HIST}"}
    cumulative = _cumulative(bins, DURATION_BOUNDS_S)
    return {
        "count": count,
        "sum_seconds": sum_ms / 1000,
        "mean_seconds": sum_ms / 1000 / count if count else None,
        "p50_seconds": quantile(sketch, 0.5),
        "p90_seconds": quantile(sketch, 0.9),
        "buckets": cumulative,
    }
