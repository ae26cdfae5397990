"""Kinds of KPIs made of counts: shares and fractions, net scores (NPS), a mean score, a live
count."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stream.kpis.kinds.base import (
    PREFIX,
    Estimator,
    Family,
    Kind,
    Metrics,
    Options,
    Rows,
    Series,
    counted_families,
    labels_of,
    ratio,
    title_of,
)

if TYPE_CHECKING:
    from stream.kpis.catalog import Kpi


@dataclass(frozen=True, slots=True)
class Ratio:
    """Components (named by the KPI's parts) and the value computed from them."""

    names: tuple[str, ...]
    parts: tuple[int, ...]
    key: str
    value: float | None

    def to_json(self) -> dict[str, Any]:
        return {**dict(zip(self.names, self.parts, strict=True)), self.key: self.value}

    def named(self) -> dict[str, float]:
        return dict(zip(self.names, self.parts, strict=True))

    def components(self) -> tuple[int, ...]:
        return self.parts

    def computed(self) -> tuple[float | None, ...]:
        return (self.value,)


def part_names(kpi: Kpi) -> tuple[str, ...]:
    return tuple(name for name, _ in kpi.parts)


def part_counts(kpi: Kpi, series: Series) -> tuple[int, ...]:
    """The KPI's counting components in one segment, in the order of its parts."""
    return tuple(series.get((measure, -1), 0) for _, measure in kpi.parts)


@dataclass(frozen=True)
class Share(Kind):
    """first ÷ (first + second), e.g. abandoned ÷ (abandoned + converted)."""

    name = "share"
    key: str = "ratio"

    def value(self, kpi: Kpi, series: Series, options: Options) -> Ratio:
        parts = part_counts(kpi, series)
        first, second = parts
        return Ratio(part_names(kpi), parts, self.key, ratio(first, first + second))

    def estimator(self, kpi: Kpi) -> Estimator:
        first, second = part_names(kpi)
        return Estimator("proportion", (first, second), first)

    def families(self, kpi: Kpi, rows: Rows, metrics: Metrics) -> Iterator[Family]:
        return counted_families(kpi, rows, metrics, part_names(kpi), (self.key,))


@dataclass(frozen=True)
class Fraction(Kind):
    """first ÷ second, times `scale` (CSAT is a percentage)."""

    name = "fraction"
    key: str = "ratio"
    scale: float = 1.0

    def value(self, kpi: Kpi, series: Series, options: Options) -> Ratio:
        parts = part_counts(kpi, series)
        first, second = parts
        value = ratio(first, second)
        scaled = None if value is None else value * self.scale
        return Ratio(part_names(kpi), parts, self.key, scaled)

    def estimator(self, kpi: Kpi) -> Estimator:
        first, second = part_names(kpi)
        return Estimator("proportion", (second,), first, scale=self.scale)

    def families(self, kpi: Kpi, rows: Rows, metrics: Metrics) -> Iterator[Family]:
        return counted_families(kpi, rows, metrics, part_names(kpi), (self.key,))


@dataclass(frozen=True, slots=True)
class Net:
    """Three classes (NPS: promoters, passives, detractors; net emotion: positive, mixed,
    negative), named by the KPI's parts, and their total; the net score and its margin of error
    follow."""

    names: tuple[str, ...]  # the three classes', then the total's
    top: int
    middle: int
    bottom: int

    @property
    def total(self) -> int:
        return self.top + self.middle + self.bottom

    @property
    def score(self) -> float | None:
        total = self.total
        return 100 * (self.top - self.bottom) / total if total else None

    @property
    def margin_of_error(self) -> float | None:
        return nps_margin_of_error(self.top, self.bottom, self.total)

    def to_json(self) -> dict[str, Any]:
        return {
            **dict(zip(self.names, self.components(), strict=True)),
            "score": self.score,
            "margin_of_error": self.margin_of_error,
        }

    def components(self) -> tuple[int, ...]:
        return self.top, self.middle, self.bottom, self.total

    def named(self) -> dict[str, float]:
        return dict(zip(self.names, self.components(), strict=True))

    def computed(self) -> tuple[float | None, ...]:
        return self.score, self.margin_of_error


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


@dataclass(frozen=True)
class NetScore(Kind):
    """Three classes counted, best first -> 100 x (first - last) / total, with the adjusted-Wald
    margin of error (NPS: promoters, passives, detractors of the responses); the total is
    published as a component too, named `total`."""

    name = "net"
    key: str = "score"
    total: str = "responses"

    def value(self, kpi: Kpi, series: Series, options: Options) -> Net:
        top, middle, bottom = part_counts(kpi, series)
        return Net((*part_names(kpi), self.total), top, middle, bottom)

    def estimator(self, kpi: Kpi) -> Estimator:
        top, _, bottom = part_names(kpi)
        return Estimator("net", (self.total,), top, bottom, scale=100.0)

    def families(self, kpi: Kpi, rows: Rows, metrics: Metrics) -> Iterator[Family]:
        components = (*part_names(kpi), self.total)
        return counted_families(kpi, rows, metrics, components, ("score", "margin_of_error"))


@dataclass(frozen=True, slots=True)
class MeanScore:
    """Responses, their summed score, those in the good range (CES: easy) and the sum of the
    squared scores (what the mean's variance needs), named by the KPI's parts; the mean and the
    good share follow."""

    names: tuple[str, ...]
    share_key: str
    responses: int
    score_sum: int
    good: int
    sum_of_squares: int

    def to_json(self) -> dict[str, Any]:
        responses, score_sum, good, squares = self.names
        return {
            responses: self.responses,
            score_sum: self.score_sum,
            "mean": ratio(self.score_sum, self.responses),
            good: self.good,
            self.share_key: ratio(self.good, self.responses),
            squares: self.sum_of_squares,
        }

    def components(self) -> tuple[int, ...]:
        return self.responses, self.score_sum, self.good, self.sum_of_squares

    def named(self) -> dict[str, float]:
        return dict(zip(self.names, self.components(), strict=True))

    def computed(self) -> tuple[float | None, ...]:
        return ratio(self.score_sum, self.responses), ratio(self.good, self.responses)


@dataclass(frozen=True)
class Mean(Kind):
    """Responses, score sum, good responses, sum of squared scores -> mean score and the share
    of good ones. CES: a
    mean on the 1-7 ease scale (7 = very easy) and the share of easy answers (5-7). `scale` and
    `good` are the words the recorded series' titles use (stream/monitoring/rules.py)."""

    name = "mean"
    key: str = "mean"
    share_key: str = "easy_ratio"
    scale: str = "1-7"
    good: str = "easy (5-7)"

    def value(self, kpi: Kpi, series: Series, options: Options) -> MeanScore:
        responses, score_sum, good, squares = part_counts(kpi, series)
        return MeanScore(part_names(kpi), self.share_key, responses, score_sum, good, squares)

    def estimator(self, kpi: Kpi) -> Estimator:
        """The mean (the headline; the good share is not tested)."""
        responses, score_sum, _, squares = part_names(kpi)
        return Estimator("mean", (responses,), score_sum, squares)

    def families(self, kpi: Kpi, rows: Rows, metrics: Metrics) -> Iterator[Family]:
        return counted_families(kpi, rows, metrics, part_names(kpi), ("mean", self.share_key))


@dataclass(frozen=True, slots=True)
class Counts:
    """Components that are the value themselves (the open backlog's tickets)."""

    names: tuple[str, ...]
    parts: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return dict(zip(self.names, self.parts, strict=True))

    def components(self) -> tuple[int, ...]:
        return self.parts

    def computed(self) -> tuple[float | None, ...]:
        return ()


@dataclass(frozen=True)
class LiveGauge(Kind):
    """A gauge of now, not windowed (the open backlog): its components are its value."""

    name = "live"
    live = True
    key: str = "tickets"

    def value(self, kpi: Kpi, series: Series, options: Options) -> Counts:
        return Counts(part_names(kpi), part_counts(kpi, series))

    def families(self, kpi: Kpi, rows: Rows, metrics: Metrics) -> Iterator[Family]:
        return counted_families(kpi, rows, metrics, part_names(kpi), ())


@dataclass(frozen=True, slots=True)
class Named:
    """Replies, and how many of them named each class (a reply may name several); each class's
    share of the replies follows."""

    total_name: str
    classes: tuple[str, ...]
    total: int
    counts: tuple[int, ...]

    def shares(self) -> dict[str, float | None]:
        return {c: ratio(n, self.total) for c, n in zip(self.classes, self.counts, strict=True)}

    def to_json(self) -> dict[str, Any]:
        return {
            self.total_name: self.total,
            "named": dict(zip(self.classes, self.counts, strict=True)),
            "shares": self.shares(),
        }


@dataclass(frozen=True)
class Shares(Kind):
    """A total (the first part) and a count per class (the other parts) -> each class's share of
    the total: the share of emotion replies naming each emotion. In Prometheus the classes are
    the values of one label (`label`), not a family each: `cxkpi_<kpi>_named{<label>=...}` beside
    the total, and the share from them."""

    name = "shares"
    key: str = "shares"
    label: str = "class"

    def value(self, kpi: Kpi, series: Series, options: Options) -> Named:
        total, *counts = part_counts(kpi, series)
        total_name, *classes = part_names(kpi)
        return Named(total_name, tuple(classes), total, tuple(counts))

    def families(self, kpi: Kpi, rows: Rows, metrics: Metrics) -> Iterator[Family]:
        labels, title = labels_of(kpi), title_of(kpi)
        total_name = kpi.parts[0][0]
        total = metrics.gauge(
            f"{PREFIX}{kpi.name}_{total_name}",
            f"{title}: {total_name} (sum over workers)",
            labels=labels,
        )
        named = metrics.gauge(
            f"{PREFIX}{kpi.name}_named",
            f"{title}: {total_name} naming each {self.label} (sum over workers)",
            labels=[*labels, self.label],
        )
        share = metrics.gauge(
            f"{PREFIX}{kpi.name}_share",
            f"{title}: share of the {total_name} naming each {self.label}, of this worker's "
            "partitions (fleet: compute from the summed components)",
            labels=[*labels, self.label],
        )
        for label_values, value in rows:
            counted: Named = value  # type: ignore[assignment]
            total.add_metric(label_values, counted.total)
            for name, n in zip(counted.classes, counted.counts, strict=True):
                named.add_metric([*label_values, name], n)
            for name, s in counted.shares().items():
                if s is not None:
                    share.add_metric([*label_values, name], s)
        yield from (total, named, share)
