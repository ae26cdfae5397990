"""What every kind of KPI has: its values per segment, their JSON, their Prometheus families.

A kind turns the summed series of one segment into a typed value (`Kind.value`), whose
`to_json` is that segment's part of the snapshot document, and builds the KPI's Prometheus
families from the values of all its windows and segments (`Kind.families`). It does so with the
metric family classes it is given (`Metrics`), so that the KPI layer imports no publisher:
`stream/publish/prometheus.py` passes prometheus_client's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol

from stream.kpis.customers import MAX_LIFETIME_PERIODS

if TYPE_CHECKING:
    from stream.kpis.catalog import Kpi

PREFIX = "cxkpi_"
WINDOW_LABELS = ["window", "dimension", "segment"]
LIVE_LABELS = ["dimension", "segment"]

#: The series of one segment of a KPI, summed over partitions: (metric, bin) -> amount.
Series = Mapping[tuple[str, int], int]


class Value(Protocol):
    """A KPI's value in one window and segment."""

    def to_json(self) -> dict[str, Any]: ...


class Family(Protocol):
    """A metric family being filled: prometheus_client's GaugeMetricFamily (`add_metric(labels,
    value)`) or GaugeHistogramMetricFamily (`add_metric(labels, buckets, gsum_value)`)."""

    def add_metric(self, labels: Sequence[str], value: Any, *more: Any) -> None: ...


class Metrics(NamedTuple):
    """The family classes a kind builds its families with, called as
    `gauge(name, documentation, labels=[...])`."""

    gauge: Callable[..., Family]
    histogram: Callable[..., Family]


#: (label values, value) of every window and segment of one KPI.
Rows = Sequence[tuple[list[str], Value]]


@dataclass(frozen=True, slots=True)
class Options:
    """What a kind may need beyond its components: the cap of a customer's expected lifetime,
    the customers partitions' stream time (RFC 3339) the customer KPIs are evaluated at, and
    the window's overall series."""

    max_lifetime_periods: int = MAX_LIFETIME_PERIODS
    customers_as_of: str | None = None
    #: the overall series of the KPI's window, for a kind whose segments divide by it
    #: (feature adoption: a feature's users over all active users)
    overall: Series | None = None


@dataclass(frozen=True, slots=True)
class Estimator:
    """How a KPI's value and the variance of one of its samples follow from its summed
    components (named as published: `cxkpi_<kpi>_<component>`), for change alerts
    (stream/kpis/change.py computes it, stream/monitoring/change.py writes it in PromQL).

    `form` is one of:
    - "proportion": p = first / n; variance p (1 - p) (CSAT, abandonment, conversion, ...)
    - "net": x = (first - second) / n; variance p + d - (p - d)^2, p and d the shares of the
      first and second class (NPS: promoters and detractors; net emotion)
    - "mean": x = first / n; variance second / n - x^2 (second: the sum of squares)
    n is the sum of the `count` components; the published value is `scale` x.
    """

    form: str
    count: tuple[str, ...]
    first: str
    second: str = ""
    scale: float = 1.0

    @property
    def components(self) -> tuple[str, ...]:
        """Every component it reads, each once."""
        return tuple(dict.fromkeys((*self.count, self.first, *([self.second] * bool(self.second)))))


class Kind:
    """How a KPI's components become its value, its JSON and its Prometheus families.

    `name` is what the kind is called in the documentation, `live` whether its KPIs are values
    of now (published without a window) rather than of rolling windows, `key` the JSON key of
    its headline value.
    """

    name: ClassVar[str]
    live: ClassVar[bool] = False
    key: str = "ratio"

    def value(self, kpi: Kpi, series: Series, options: Options) -> Value:
        raise NotImplementedError

    def estimator(self, kpi: Kpi) -> Estimator | None:
        """How a change alert tests this KPI; None: its estimator has no known variance. A
        value of a kind with an estimator has `named()`: its components by name."""
        return None

    def families(self, kpi: Kpi, rows: Rows, metrics: Metrics) -> Iterator[Family]:
        raise NotImplementedError


@dataclass(slots=True)
class KpiValues:
    """One KPI rendered: its overall value and, per segment dimension, the value of every
    segment with data."""

    overall: Value
    segments: dict[str, dict[str, Value]]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"overall": self.overall.to_json()}
        for dimension, values in self.segments.items():
            out[dimension] = {segment: value.to_json() for segment, value in values.items()}
        return out

    def rows(self, prefix: list[str]) -> Iterator[tuple[list[str], Value]]:
        """(label values, value) of overall and of every segment, after `prefix` (the window
        of a windowed KPI)."""
        yield [*prefix, "all", "all"], self.overall
        for dimension, values in self.segments.items():
            for segment, value in values.items():
                yield [*prefix, dimension, segment], value


def ratio(numerator: int, denominator: int) -> float | None:
    """numerator / denominator, or None (not 0, not NaN) when there is nothing to divide."""
    return numerator / denominator if denominator else None


def labels_of(kpi: Kpi) -> list[str]:
    return LIVE_LABELS if kpi.kind.live else WINDOW_LABELS


def title_of(kpi: Kpi) -> str:
    """The KPI's name in help texts: 'cart abandonment'."""
    return kpi.name.replace("_", " ")


def cumulative(bins: Mapping[int, int], bounds: Iterable[int]) -> dict[str, int]:
    """Counts per bin index as cumulative counts keyed by bound (Prometheus `le`), and +Inf."""
    out: dict[str, int] = {}
    running = 0
    for index, bound in enumerate((*bounds, "+Inf")):
        running += bins.get(index, 0)
        out[str(bound)] = running
    return out


def le(bound: str) -> str:
    """Bucket bounds as Prometheus writes them: '60' -> '60.0', '+Inf' stays."""
    return bound if bound == "+Inf" else str(float(bound))


class Counted(Protocol):
    """A value of counting components and the values computed from them."""

    def components(self) -> tuple[Any, ...]: ...

    def computed(self) -> tuple[Any, ...]: ...


class Named(Protocol):
    """A value whose components can be read by name (what an `Estimator` reads)."""

    def named(self) -> dict[str, float]: ...


def named(value: Value) -> dict[str, float]:
    """The components by name of a value of a kind with an estimator."""
    if not hasattr(value, "named"):
        raise TypeError(f"{type(value).__name__} has no components by name: no estimator")
    reader: Named = value  # type: ignore[assignment]
    return reader.named()


def counted_families(
    kpi: Kpi,
    rows: Rows,
    metrics: Metrics,
    components: Sequence[str],
    computed: Sequence[str],
) -> Iterator[Family]:
    """A gauge per component (`cxkpi_<kpi>_<component>`, every row, zeros included) and per
    computed value (`cxkpi_<kpi>_<value>`, only the rows that have one); `components` and
    `computed` name what the rows' values give, in order."""
    labels = labels_of(kpi)
    title = title_of(kpi)
    parts = [
        metrics.gauge(
            f"{PREFIX}{kpi.name}_{part}",
            f"{title}: {part.replace('_', ' ')} (sum over workers)",
            labels=labels,
        )
        for part in components
    ]
    values = [
        metrics.gauge(
            f"{PREFIX}{kpi.name}_{key}",
            f"{title}: {key.replace('_', ' ')} of this worker's partitions "
            "(fleet: compute from the summed components)",
            labels=labels,
        )
        for key in computed
    ]
    for label_values, value in rows:
        counted: Counted = value  # type: ignore[assignment]
        for family, n in zip(parts, counted.components(), strict=True):
            family.add_metric(label_values, n)
        for family, v in zip(values, counted.computed(), strict=True):
            if v is not None:
                family.add_metric(label_values, v)
    yield from parts
    yield from values
