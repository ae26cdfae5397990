"""Kinds of KPIs that are distributions or amounts: durations, ages of now, money per currency."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stream.kpis import MICROS
from stream.kpis.kinds.base import (
    LIVE_LABELS,
    PREFIX,
    WINDOW_LABELS,
    Estimator,
    Family,
    Kind,
    Metrics,
    Options,
    Rows,
    Series,
    cumulative,
    le,
    title_of,
)
from stream.state.measures import (
    AGE_BOUNDS_S,
    COUNT,
    DURATION_BOUNDS_S,
    HIST,
    SKETCH,
    SQUARES_S2,
    SUM_MS,
)
from stream.state.sketch import quantile

if TYPE_CHECKING:
    from stream.kpis.catalog import Kpi

#: The series under which the merged snapshot gives the ages of the open tickets of a segment:
#: their summed age and the oldest one's, in ms (stream/publish/merge.py, `ages_grouped`).
AGE_SUM_MS, OLDEST_MS = "age_sum_ms", "oldest_ms"


@dataclass(frozen=True, slots=True)
class Distribution:
    """Count, exact sum and mean, sketch quantiles and cumulative histogram of a duration, and
    the sum of its squared samples in whole seconds (for the variance of the mean)."""

    count: int
    sum_ms: int
    p50_seconds: float | None
    p90_seconds: float | None
    buckets: dict[str, int]
    sum_of_squares: int

    @property
    def sum_seconds(self) -> float:
        return self.sum_ms / 1000

    @property
    def mean_seconds(self) -> float | None:
        return self.sum_ms / 1000 / self.count if self.count else None

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "sum_seconds": self.sum_seconds,
            "mean_seconds": self.mean_seconds,
            "p50_seconds": self.p50_seconds,
            "p90_seconds": self.p90_seconds,
            "buckets": self.buckets,
            "sum_of_squares": self.sum_of_squares,
        }

    def named(self) -> dict[str, float]:
        """The components of the mean's estimator, as published (seconds)."""
        return {
            "seconds_gcount": self.count,
            "seconds_gsum": self.sum_seconds,
            "seconds_sum_of_squares": self.sum_of_squares,
        }


def histogram_buckets(buckets: dict[str, int]) -> list[tuple[str, float]]:
    return [(le(bound), float(n)) for bound, n in buckets.items()]


@dataclass(frozen=True)
class Duration(Kind):
    """A distribution of seconds (count, sum, histogram, quantile sketch): a gauge histogram
    `cxkpi_<kpi>_seconds`, with the mean and the sketch's median and p90 per worker."""

    name = "duration"
    key: str = "p90_seconds"

    def value(self, kpi: Kpi, series: Series, options: Options) -> Distribution:
        measure = kpi.parts[0][1]
        sketch_metric, hist_metric = f"{measure}.{SKETCH}", f"{measure}.{HIST}"
        sketch = {b: n for (m, b), n in series.items() if m == sketch_metric}
        bins = {b: n for (m, b), n in series.items() if m == hist_metric}
        return Distribution(
            series.get((f"{measure}.{COUNT}", -1), 0),
            series.get((f"{measure}.{SUM_MS}", -1), 0),
            quantile(sketch, 0.5),
            quantile(sketch, 0.9),
            cumulative(bins, DURATION_BOUNDS_S),
            series.get((f"{measure}.{SQUARES_S2}", -1), 0),
        )

    def estimator(self, kpi: Kpi) -> Estimator:
        """The mean duration (quantiles have no variance this simple)."""
        return Estimator("mean", ("seconds_gcount",), "seconds_gsum", "seconds_sum_of_squares")

    def families(self, kpi: Kpi, rows: Rows, metrics: Metrics) -> Iterator[Family]:
        title = title_of(kpi)
        histogram = metrics.histogram(
            f"{PREFIX}{kpi.name}_seconds",
            f"{title} samples in the window (gauge histogram, seconds)",
            labels=WINDOW_LABELS,
        )
        mean = metrics.gauge(
            f"{PREFIX}{kpi.name}_mean_seconds",
            f"Mean {title} of this worker's partitions (fleet: sum(_gsum) / sum(_gcount))",
            labels=WINDOW_LABELS,
        )
        quantiles = metrics.gauge(
            f"{PREFIX}{kpi.name}_quantile_seconds",
            f"Median and p90 {title} of this worker's partitions (1 % sketch)",
            labels=[*WINDOW_LABELS, "quantile"],
        )
        squares = metrics.gauge(
            f"{PREFIX}{kpi.name}_seconds_sum_of_squares",
            f"{title}: sum of the squared samples, each in whole seconds (s^2; sum over "
            "workers): the variance of the mean for change alerts",
            labels=WINDOW_LABELS,
        )
        for labels, value in rows:
            v: Distribution = value  # type: ignore[assignment]
            histogram.add_metric(labels, histogram_buckets(v.buckets), v.sum_seconds)
            squares.add_metric(labels, v.sum_of_squares)
            mean_seconds = v.mean_seconds
            if mean_seconds is not None:
                mean.add_metric(labels, mean_seconds)
            for q, seconds in (("0.5", v.p50_seconds), ("0.9", v.p90_seconds)):
                if seconds is not None:
                    quantiles.add_metric([*labels, q], seconds)
        yield from (histogram, squares, mean, quantiles)


@dataclass(frozen=True, slots=True)
class Ages:
    """Open tickets by age: count, summed and oldest age, cumulative gauge histogram."""

    sum_ms: int
    oldest_ms: int | None
    buckets: dict[str, int]

    @property
    def tickets(self) -> int:
        return self.buckets["+Inf"]

    @property
    def sum_seconds(self) -> float:
        return self.sum_ms / 1000

    @property
    def oldest_seconds(self) -> float | None:
        oldest = self.oldest_ms
        return oldest / 1000 if self.tickets and oldest is not None else None

    def to_json(self) -> dict[str, Any]:
        tickets = self.tickets
        return {
            "tickets": tickets,
            "sum_seconds": self.sum_seconds,
            "mean_seconds": self.sum_ms / 1000 / tickets if tickets else None,
            "oldest_seconds": self.oldest_seconds,
            "buckets": self.buckets,
        }


@dataclass(frozen=True)
class AgeHistogram(Kind):
    """A gauge histogram of now, of the open tickets' ages, with the oldest one's age (the
    fleet's oldest is the largest over workers)."""

    name = "age"
    live = True
    key: str = "oldest_seconds"
    oldest_metric: str = "backlog_oldest_age_seconds"

    def value(self, kpi: Kpi, series: Series, options: Options) -> Ages:
        hist_metric = f"{kpi.parts[0][1]}.{HIST}"
        bins = {b: n for (m, b), n in series.items() if m == hist_metric}
        return Ages(
            series.get((AGE_SUM_MS, -1), 0),
            series.get((OLDEST_MS, -1)),
            cumulative(bins, AGE_BOUNDS_S),
        )

    def families(self, kpi: Kpi, rows: Rows, metrics: Metrics) -> Iterator[Family]:
        histogram = metrics.histogram(
            f"{PREFIX}{kpi.name}_seconds",
            "Open tickets by age (now minus opening, at the partition's stream time), "
            "gauge histogram",
            labels=LIVE_LABELS,
        )
        oldest = metrics.gauge(
            PREFIX + self.oldest_metric,
            "Age of the oldest open ticket of this worker's partitions (fleet: max over workers)",
            labels=LIVE_LABELS,
        )
        for labels, value in rows:
            v: Ages = value  # type: ignore[assignment]
            histogram.add_metric(labels, histogram_buckets(v.buckets), v.sum_seconds)
            oldest_seconds = v.oldest_seconds
            if oldest_seconds is not None:
                oldest.add_metric(labels, oldest_seconds)
        yield from (histogram, oldest)


@dataclass(frozen=True, slots=True)
class Amount:
    """Priced orders of one currency and their exact amount."""

    orders: int
    micros: int

    @property
    def amount(self) -> float:
        return self.micros / MICROS

    @property
    def average(self) -> float | None:
        return self.amount / self.orders if self.orders else None

    def to_json(self) -> dict[str, Any]:
        amount = self.amount
        return {
            "orders": self.orders,
            "amount": amount,
            "average": amount / self.orders if self.orders else None,
        }


@dataclass(frozen=True, slots=True)
class Amounts:
    """Per currency: priced orders, amount and average order value."""

    currencies: dict[str, Amount]

    def to_json(self) -> dict[str, Any]:
        return {currency: amount.to_json() for currency, amount in self.currencies.items()}


@dataclass(frozen=True)
class Money(Kind):
    """Priced orders and amounts per currency (`<measure>:<currency>`, amounts summed exactly
    in millionths) -> average order value per currency."""

    name = "money"
    key: str = "average"

    def value(self, kpi: Kpi, series: Series, options: Options) -> Amounts:
        orders_measure = kpi.parts[0][1]
        found: dict[str, list[int]] = {}  # currency -> [orders, micros]
        for (metric, _), n in sorted(series.items()):
            measure, _, currency = metric.partition(":")
            cell = found.setdefault(currency, [0, 0])
            cell[0 if measure == orders_measure else 1] = n
        return Amounts({c: Amount(orders, micros) for c, (orders, micros) in found.items()})

    def families(self, kpi: Kpi, rows: Rows, metrics: Metrics) -> Iterator[Family]:
        title = title_of(kpi)
        labels = [*WINDOW_LABELS, "currency"]
        orders = metrics.gauge(
            f"{PREFIX}{kpi.name}_orders",
            f"{title}: orders with an amount (sum over workers)",
            labels=labels,
        )
        amount = metrics.gauge(
            f"{PREFIX}{kpi.name}_amount",
            f"{title}: sum of order amounts (sum over workers)",
            labels=labels,
        )
        average = metrics.gauge(
            f"{PREFIX}{kpi.name}_average",
            f"{title} of this worker's partitions (fleet: amount / orders)",
            labels=labels,
        )
        for label_values, value in rows:
            v: Amounts = value  # type: ignore[assignment]
            for currency, cell in v.currencies.items():
                cell_labels = [*label_values, currency]
                orders.add_metric(cell_labels, cell.orders)
                amount.add_metric(cell_labels, cell.amount)
                if cell.orders:
                    average.add_metric(cell_labels, cell.amount / cell.orders)
        yield from (orders, amount, average)
