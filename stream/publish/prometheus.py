"""Prometheus exposition of this worker's partitions.

KPI values are gauges of the window (they go up and down as windows slide). Every KPI is exported
as its components, `cxkpi_<kpi>_<component>`, so the fleet-wide value is computed in PromQL by
summing components over workers, then dividing. Durations are gauge histograms (`_bucket`,
`_gsum`, `_gcount`). The computed value (`_ratio`, `_score`, `_mean`, …) is also exported per
worker for single-worker setups and quick looks; it must not be averaged across workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Iterator, Mapping

from prometheus_client import generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from stream.kpis.catalog import LIVE, STICKINESS, WINDOWED
from stream.kpis.kinds import LIVE_LABELS, PREFIX, WINDOW_LABELS, KpiValues, Metrics
from stream.publish.document import Windows, stickiness
from stream.publish.entries import Entry
from stream.state.partition import OUTCOMES

__all__ = ["LIVE_LABELS", "PREFIX", "WINDOW_LABELS", "KpiCollector", "WindowText", "Windows"]

#: The metric families the KPIs' kinds fill.
METRICS = Metrics(gauge=GaugeMetricFamily, histogram=GaugeHistogramMetricFamily)


class KpiCollector(Collector):
    """Builds the families that change with every event at scrape time: outcome counts, stream
    times, consumer lag and live KPIs (the windowed KPIs are `WindowText`'s).

    `source` returns this worker's partition entries and their live KPIs.
    """

    def __init__(
        self,
        source: Callable[[], tuple[list[Entry], dict[str, KpiValues]]],
        partitions: Mapping[str, int],
        lags: Callable[[], Mapping[tuple[str, int], int]],
    ) -> None:
        self.source = source
        self.partitions = partitions
        self.lags = lags

    def collect(self) -> Iterator[Metric]:
        entries, live = self.source()
        yield from _processing_families(entries)
        yield from self._consumer_families()
        for kpi in LIVE:
            values = live.get(kpi.name)
            if values is not None:  # else switched off in the configuration file
                yield from kpi.kind.families(kpi, list(values.rows([])), METRICS)

    def _consumer_families(self) -> Iterator[Metric]:
        configured = GaugeMetricFamily(
            PREFIX + "topic_partitions",
            "Partitions of each source topic (configured): the fleet's partitions_assigned "
            "should add up to this",
            labels=["topic"],
        )
        for topic, n in self.partitions.items():
            configured.add_metric([topic], n)
        lag = GaugeMetricFamily(
            PREFIX + "consumer_lag_records",
            "Records of the partition not yet processed (high watermark minus next offset)",
            labels=["topic", "partition"],
        )
        for (topic, partition), n in sorted(self.lags().items()):
            lag.add_metric([topic, str(partition)], n)
        yield from (configured, lag)


class WindowText:
    """The windowed KPI families as exposition text, rebuilt only when their inputs changed.

    Window totals change when a partition's stream time crosses a step boundary, or a sample
    lands in a bucket that is already closed: far less often than /metrics is scraped. Building
    this text is most of a scrape's cost on a large state, so it is reused until `key` changes.
    A rebuild renders copies taken on the event loop (`inputs`) in a thread, so the worker keeps
    processing events meanwhile.
    """

    def __init__(
        self,
        key: Callable[[], Hashable],
        inputs: Callable[[], Callable[[], Windows]],
        enabled: Callable[[str], bool] = lambda kpi: True,
    ) -> None:
        self.key = key
        self.inputs = inputs
        self.enabled = enabled  # whether stickiness, read from two of the windows, is on
        self._built: tuple[Hashable, bytes] | None = None
        self._lock = asyncio.Lock()  # concurrent scrapes share one rebuild

    async def text(self) -> bytes:
        async with self._lock:
            key = self.key()
            if self._built is None or self._built[0] != key:
                render = self.inputs()
                sticky = self.enabled(STICKINESS.name)
                text = await asyncio.to_thread(lambda: generate_latest(_Families(render(), sticky)))
                self._built = (key, text)
            return self._built[1]


class _Families(Collector):
    """The window families of a rendered document, for generate_latest."""

    def __init__(self, windows: Windows, sticky: bool = True) -> None:
        self.windows = windows
        self.sticky = sticky

    def collect(self) -> Iterator[Metric]:
        for kpi in WINDOWED:
            rows = [  # no sample of a window still filling after a rebuild
                row
                for name, window in self.windows.items()
                if kpi.name in window.kpis and window.complete
                for row in window.kpis[kpi.name].rows([name])
            ]
            if rows:  # else switched off in the configuration file
                yield from kpi.kind.families(kpi, rows, METRICS)
        if self.sticky and any("active_users" in w.kpis for w in self.windows.values()):
            section = {  # stickiness: of now, from the 24 h and 30 d windows' active users
                name: {"complete": w.complete, "active_users": w.kpis["active_users"].to_json()}
                for name, w in self.windows.items()
                if "active_users" in w.kpis
            }
            values = stickiness(section)
            if values is not None:  # else withheld while a window fills
                yield from STICKINESS.kind.families(STICKINESS, list(values.rows([])), METRICS)


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
    folded = CounterMetricFamily(
        PREFIX + "segment_values_folded",
        "Events whose segment value was beyond the bound (first N per dimension, or not on the "
        "allow-list) and was counted as 'other', per partition",
        labels=["topic", "partition", "dimension"],
    )
    per_topic: dict[str, int] = {}
    for entry in entries:
        labels = [entry.topic, str(entry.partition)]
        per_topic[entry.topic] = per_topic.get(entry.topic, 0) + 1
        for outcome in OUTCOMES:
            events.add_metric([*labels, outcome], entry.counts.get(outcome, 0))
        if entry.stream_time is not None:
            stream_time.add_metric(labels, entry.stream_time / 1000)
        for dimension, n in entry.folded.items():
            folded.add_metric([*labels, dimension], n)
    for topic, n in per_topic.items():
        owned.add_metric([topic], n)
    yield from (events, stream_time, owned, folded)
