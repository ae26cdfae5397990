"""Prometheus exposition of this worker's partitions.

KPI values are gauges of the window (they go up and down as windows slide). Every ratio comes
with its components, and every duration with a gauge histogram (`_bucket`, `_gsum`, `_gcount`),
so the fleet-wide value is computed in PromQL by summing components over workers, then dividing.
Ratios, NPS score, means and quantiles are also exported per worker for single-worker setups and
quick looks; they must not be averaged across workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from stream.kpis.catalog import CATALOG, Kpi
from stream.snapshot import Entry, merge, render
from stream.state.partition import OUTCOMES

PREFIX = "cxkpi_"
SEGMENT_LABELS = ["window", "dimension", "segment"]


class KpiCollector(Collector):
    """Builds all KPI families from the live partition entries at scrape time."""

    def __init__(
        self,
        entries: Callable[[], Iterable[Entry]],
        windows_ms: tuple[int, ...],
        partitions: dict[str, int],
    ) -> None:
        self.entries = entries
        self.windows_ms = windows_ms
        self.partitions = partitions

    def collect(self) -> Iterator[Metric]:
        entries = list(self.entries())
        yield from _processing_families(entries)
        snapshot = render(merge(entries), self.windows_ms, self.partitions)
        for kpi in CATALOG:
            yield from _kpi_families(kpi, snapshot["windows"])


def _processing_families(entries: list[Entry]) -> Iterator[Metric]:
    events = CounterMetricFamily(
        PREFIX + "events",
        "Source records by outcome (applied, duplicate, late, dead_lettered), per partition; "
        "persisted with the state, so exact across restarts",
        labels=["topic", "partition", "outcome"],
    )
    stream_time = GaugeMetricFamily(
        PREFIX + "stream_time_seconds",
        "Event time the partition's windows are evaluated at (Unix seconds)",
        labels=["topic", "partition"],
    )
    owned = GaugeMetricFamily(
        PREFIX + "partitions_assigned", "Source partitions this worker owns", labels=["topic"]
    )
    per_topic: dict[str, int] = {}
    for entry in entries:
        labels = [entry["topic"], str(entry["partition"])]
        per_topic[entry["topic"]] = per_topic.get(entry["topic"], 0) + 1
        for outcome in OUTCOMES:
            events.add_metric([*labels, outcome], entry["counts"].get(outcome, 0))
        if entry["stream_time"] is not None:
            stream_time.add_metric(labels, entry["stream_time"] / 1000)
    for topic, n in per_topic.items():
        owned.add_metric([topic], n)
    yield from (events, stream_time, owned)


def _segments(kpi_windows: dict[str, dict[str, Any]]) -> Iterator[tuple[list[str], Any]]:
    """([window, dimension, segment], value) for overall and every segment of every window."""
    for window, kpi in kpi_windows.items():
        yield [window, "all", "all"], kpi["overall"]
        for dimension, values in kpi.items():
            if dimension != "overall":
                for segment, value in values.items():
                    yield [window, dimension, segment], value


def _kpi_families(kpi: Kpi, windows: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    per_window = {window: kpis[kpi.name] for window, kpis in windows.items()}
    if kpi.kind == "duration":
        yield from _duration_families(kpi, per_window)
        return
    label = "outcome" if kpi.kind == "ratio" else "category"
    components = GaugeMetricFamily(
        PREFIX + kpi.metric,
        f"{kpi.name.replace('_', ' ')}: window counts by {label} (sum over workers)",
        labels=[*SEGMENT_LABELS, label],
    )
    value_name, value_key = (
        (f"{kpi.name}_ratio", "ratio") if kpi.kind == "ratio" else ("nps_score", "score")
    )
    value = GaugeMetricFamily(
        PREFIX + value_name,
        f"{kpi.name.replace('_', ' ')} of this worker's partitions (fleet: divide sums)",
        labels=SEGMENT_LABELS,
    )
    for labels, v in _segments(per_window):
        for part, _ in kpi.parts:
            components.add_metric([*labels, part], v[part])
        if v[value_key] is not None:
            value.add_metric(labels, v[value_key])
    yield from (components, value)


def _duration_families(kpi: Kpi, per_window: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    histogram = GaugeHistogramMetricFamily(
        PREFIX + kpi.metric,
        f"{kpi.name.replace('_', ' ')} samples in the window (gauge histogram, seconds)",
        labels=SEGMENT_LABELS,
    )
    mean = GaugeMetricFamily(
        PREFIX + kpi.metric.replace("_seconds", "_mean_seconds"),
        f"Mean {kpi.name.replace('_', ' ')} of this worker's partitions (fleet: _gsum / _gcount)",
        labels=SEGMENT_LABELS,
    )
    quantiles = GaugeMetricFamily(
        PREFIX + kpi.metric.replace("_seconds", "_quantile_seconds"),
        f"Median and p90 {kpi.name.replace('_', ' ')} of this worker's partitions (1 % sketch)",
        labels=[*SEGMENT_LABELS, "quantile"],
    )
    for labels, v in _segments(per_window):
        buckets = [(_le(bound), float(n)) for bound, n in v["buckets"].items()]
        histogram.add_metric(labels, buckets, v["sum_seconds"])
        if v["mean_seconds"] is not None:
            mean.add_metric(labels, v["mean_seconds"])
        for q, key in (("0.5", "p50_seconds"), ("0.9", "p90_seconds")):
            if v[key] is not None:
                quantiles.add_metric([*labels, q], v[key])
    yield from (histogram, mean, quantiles)


def _le(bound: str) -> str:
    """Bucket bounds as Prometheus writes them: '60' -> '60.0', '+Inf' stays."""
    return bound if bound == "+Inf" else str(float(bound))
