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
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from stream.kpis.catalog import LIVE, WINDOWED, Kpi
from stream.publish.snapshot import Entry
from stream.state.partition import OUTCOMES

PREFIX = "cxkpi_"
WINDOW_LABELS = ["window", "dimension", "segment"]
LIVE_LABELS = ["dimension", "segment"]
#: (label values, rendered value) of every window and segment of one KPI.
Values = list[tuple[list[str], Any]]
#: Rendered windowed KPIs: window name -> KPI name -> value (snapshot.render_windows).
Windows = dict[str, dict[str, Any]]


class KpiCollector(Collector):
    """Builds the families that change with every event at scrape time: outcome counts, stream
    times, consumer lag and live KPIs (the windowed KPIs are `WindowText`'s).

    `source` returns this worker's partition entries and their rendered document.
    """

    def __init__(
        self,
        source: Callable[[], tuple[list[Entry], dict[str, Any]]],
        partitions: Mapping[str, int],
        lags: Callable[[], Mapping[tuple[str, int], int]],
    ) -> None:
        self.source = source
        self.partitions = partitions
        self.lags = lags

    def collect(self) -> Iterator[Metric]:
        entries, snapshot = self.source()
        yield from _processing_families(entries)
        yield from self._consumer_families()
        for kpi in LIVE:
            if kpi.name in snapshot["live"]:  # else switched off in the configuration file
                yield from kpi_families(kpi, list(_segments({None: snapshot["live"][kpi.name]})))

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
        self, key: Callable[[], Hashable], inputs: Callable[[], Callable[[], Windows]]
    ) -> None:
        self.key = key
        self.inputs = inputs
        self._built: tuple[Hashable, bytes] | None = None
        self._lock = asyncio.Lock()  # concurrent scrapes share one rebuild

    async def text(self) -> bytes:
        async with self._lock:
            key = self.key()
            if self._built is None or self._built[0] != key:
                render = self.inputs()
                text = await asyncio.to_thread(lambda: generate_latest(_Families(render())))
                self._built = (key, text)
            return self._built[1]


class _Families(Collector):
    """The window families of a rendered document, for generate_latest."""

    def __init__(self, windows: Windows) -> None:
        self.windows = windows

    def collect(self) -> Iterator[Metric]:
        for kpi in WINDOWED:
            per_window = {  # no sample of a window still filling after a rebuild
                w: kpis[kpi.name]
                for w, kpis in self.windows.items()
                if kpi.name in kpis and kpis["complete"]
            }
            if per_window:  # else switched off in the configuration file
                yield from kpi_families(kpi, list(_segments(per_window)))


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
        labels = [entry["topic"], str(entry["partition"])]
        per_topic[entry["topic"]] = per_topic.get(entry["topic"], 0) + 1
        for outcome in OUTCOMES:
            events.add_metric([*labels, outcome], entry["counts"].get(outcome, 0))
        if entry["stream_time"] is not None:
            stream_time.add_metric(labels, entry["stream_time"] / 1000)
        for dimension, n in entry["folded"].items():
            folded.add_metric([*labels, dimension], n)
    for topic, n in per_topic.items():
        owned.add_metric([topic], n)
    yield from (events, stream_time, owned, folded)


def _segments(per_window: dict[str | None, dict[str, Any]]) -> Iterator[tuple[list[str], Any]]:
    """(labels, value) for overall and every segment; no window label for live KPIs."""
    for window, kpi in per_window.items():
        prefix = [] if window is None else [window]
        yield [*prefix, "all", "all"], kpi["overall"]
        for dimension, values in kpi.items():
            if dimension != "overall":
                for segment, value in values.items():
                    yield [*prefix, dimension, segment], value


def kpi_families(kpi: Kpi, values: Values) -> Iterator[Metric]:
    """The metric families of one KPI from its rendered values."""
    labels = LIVE_LABELS if kpi.is_live else WINDOW_LABELS
    title = kpi.name.replace("_", " ")
    if kpi.kind == "age":
        yield from _age_families(values)
        return
    if kpi.kind == "duration":
        yield from _duration_families(kpi, values, title)
        return
    if kpi.kind == "money":
        yield from _money_families(kpi, values, title)
        return
    if kpi.kind == "customers":
        yield from _customer_families(values)
        return
    value_keys = {
        "nps": ("score", "margin_of_error"),
        "mean": ("mean", "easy_ratio"),
        "live": (),
    }.get(kpi.kind, (kpi.value,))
    parts = [name for name, _ in kpi.parts]
    if kpi.kind == "nps":
        parts.append("responses")
    components = {
        part: GaugeMetricFamily(
            f"{PREFIX}{kpi.name}_{part}",
            f"{title}: {part.replace('_', ' ')} (sum over workers)",
            labels=labels,
        )
        for part in parts
    }
    computed = {
        key: GaugeMetricFamily(
            f"{PREFIX}{kpi.name}_{key}",
            f"{title}: {key.replace('_', ' ')} of this worker's partitions "
            "(fleet: compute from the summed components)",
            labels=labels,
        )
        for key in value_keys
    }
    for label_values, value in values:
        _add_values(components, computed, label_values, value)
    yield from components.values()
    yield from computed.values()


def _add_values(
    components: Mapping[str, GaugeMetricFamily],
    computed: Mapping[str, GaugeMetricFamily],
    labels: list[str],
    value: Mapping[str, Any],
) -> None:
    """Components always (zeros included); computed values only where they have one."""
    for key, family in components.items():
        family.add_metric(labels, value[key])
    for key, family in computed.items():
        if value[key] is not None:
            family.add_metric(labels, value[key])


def _duration_families(kpi: Kpi, values: Values, title: str) -> Iterator[Metric]:
    base = f"{PREFIX}{kpi.name}_seconds"
    histogram = GaugeHistogramMetricFamily(
        base, f"{title} samples in the window (gauge histogram, seconds)", labels=WINDOW_LABELS
    )
    mean = GaugeMetricFamily(
        f"{PREFIX}{kpi.name}_mean_seconds",
        f"Mean {title} of this worker's partitions (fleet: sum(_gsum) / sum(_gcount))",
        labels=WINDOW_LABELS,
    )
    quantiles = GaugeMetricFamily(
        f"{PREFIX}{kpi.name}_quantile_seconds",
        f"Median and p90 {title} of this worker's partitions (1 % sketch)",
        labels=[*WINDOW_LABELS, "quantile"],
    )
    for labels, v in values:
        buckets = [(_le(bound), float(n)) for bound, n in v["buckets"].items()]
        histogram.add_metric(labels, buckets, v["sum_seconds"])
        if v["mean_seconds"] is not None:
            mean.add_metric(labels, v["mean_seconds"])
        for q, key in (("0.5", "p50_seconds"), ("0.9", "p90_seconds")):
            if v[key] is not None:
                quantiles.add_metric([*labels, q], v[key])
    yield from (histogram, mean, quantiles)


def _age_families(values: Values) -> Iterator[Metric]:
    histogram = GaugeHistogramMetricFamily(
        PREFIX + "backlog_age_seconds",
        "Open tickets by age (now minus opening, at the partition's stream time), gauge histogram",
        labels=LIVE_LABELS,
    )
    oldest = GaugeMetricFamily(
        PREFIX + "backlog_oldest_age_seconds",
        "Age of the oldest open ticket of this worker's partitions (fleet: max over workers)",
        labels=LIVE_LABELS,
    )
    for labels, v in values:
        buckets = [(_le(bound), float(n)) for bound, n in v["buckets"].items()]
        histogram.add_metric(labels, buckets, v["sum_seconds"])
        if v["oldest_seconds"] is not None:
            oldest.add_metric(labels, v["oldest_seconds"])
    yield from (histogram, oldest)


def _money_families(kpi: Kpi, values: Values, title: str) -> Iterator[Metric]:
    labels = [*WINDOW_LABELS, "currency"]
    orders = GaugeMetricFamily(
        f"{PREFIX}{kpi.name}_orders",
        f"{title}: orders with an amount (sum over workers)",
        labels=labels,
    )
    amount = GaugeMetricFamily(
        f"{PREFIX}{kpi.name}_amount",
        f"{title}: sum of order amounts (sum over workers)",
        labels=labels,
    )
    average = GaugeMetricFamily(
        f"{PREFIX}{kpi.name}_average",
        f"{title} of this worker's partitions (fleet: amount / orders)",
        labels=labels,
    )
    for label_values, by_currency in values:
        for currency, v in by_currency.items():
            orders.add_metric([*label_values, currency], v["orders"])
            amount.add_metric([*label_values, currency], v["amount"])
            if v["average"] is not None:
                average.add_metric([*label_values, currency], v["average"])
    yield from (orders, amount, average)


#: Customer components (sum over workers: each customer is on one partition) and the values a
#: worker computes from its own partitions' customers.
CUSTOMER_COMPONENTS = {
    "active": "customers with an order in the last period",
    "previous": "customers with an order in the period before",
    "retained": "customers with an order in both periods",
    "repeat_customers": "customers with two or more orders in the last period",
    "orders": "orders of known customers in the last period",
    "anonymous_orders": "orders without a customer in the last period",
}
CUSTOMER_VALUES = (
    "retention_ratio",
    "churn_ratio",
    "repeat_purchase_ratio",
    "purchase_frequency",
    "expected_lifetime_periods",
)


def _customer_families(values: Values) -> Iterator[Metric]:
    """Customer components and values (overall only: customers have no segments); money per
    currency."""
    fleet = "(fleet: compute from the summed components)"
    money = [*LIVE_LABELS, "currency"]
    components = {
        key: GaugeMetricFamily(
            f"{PREFIX}customers_{key}", f"{text} (sum over workers)", labels=LIVE_LABELS
        )
        for key, text in CUSTOMER_COMPONENTS.items()
    }
    computed = {
        key: GaugeMetricFamily(
            f"{PREFIX}customers_{key}",
            f"Customer {key.replace('_', ' ')} of this worker's partitions {fleet}",
            labels=LIVE_LABELS,
        )
        for key in CUSTOMER_VALUES
    }
    priced = GaugeMetricFamily(
        PREFIX + "customers_priced_orders",
        "Orders with an amount of known customers in the last period (sum over workers)",
        labels=money,
    )
    amount = GaugeMetricFamily(
        PREFIX + "customers_amount", "Amount of those orders (sum over workers)", labels=money
    )
    lifetime = GaugeMetricFamily(
        PREFIX + "customers_lifetime_value",
        f"Customer lifetime value of this worker's partitions {fleet}",
        labels=money,
    )
    for labels, value in values:
        _add_values(components, computed, labels, value)
        for currency, cell in value["lifetime_value"].items():
            priced.add_metric([*labels, currency], cell["orders"])
            amount.add_metric([*labels, currency], cell["amount"])
            if cell["lifetime_value"] is not None:
                lifetime.add_metric([*labels, currency], cell["lifetime_value"])
    yield from (*components.values(), *computed.values(), priced, amount, lifetime)


def _le(bound: str) -> str:
    """Bucket bounds as Prometheus writes them: '60' -> '60.0', '+Inf' stays."""
    return bound if bound == "+Inf" else str(float(bound))
