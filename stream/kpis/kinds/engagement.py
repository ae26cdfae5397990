"""Kinds of the engagement KPIs: a windowed count (active and new users), feature adoption (a
feature's users over all active users), stickiness (24 h over 30 d active users) and an average
per session (pages per session).

Distinct users add up over partitions because a user lives in one (stream/kpis/engagement.py),
so their counts are components like any other, summed over workers for the fleet's value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stream.kpis.kinds.base import (
    Family,
    Kind,
    Metrics,
    Options,
    Rows,
    Series,
    counted_families,
    ratio,
)
from stream.kpis.kinds.counts import Counts, Fraction, Ratio, part_counts, part_names

if TYPE_CHECKING:
    from stream.kpis.catalog import Kpi


@dataclass(frozen=True)
class Count(Kind):
    """Counts in the window that are the value themselves (active users, new users)."""

    name = "count"
    key: str = "users"

    def value(self, kpi: Kpi, series: Series, options: Options) -> Counts:
        return Counts(part_names(kpi), part_counts(kpi, series))

    def families(self, kpi: Kpi, rows: Rows, metrics: Metrics) -> Iterator[Family]:
        return counted_families(kpi, rows, metrics, part_names(kpi), ())


@dataclass(frozen=True)
class Adoption(Fraction):
    """A segment's users (of a feature) over the window's active users overall: the second
    part is read from the overall series (`Options.overall`), so every feature's row carries
    the same denominator and the fleet's ratio is sum(users) / sum(active) per row."""

    name = "adoption"

    def value(self, kpi: Kpi, series: Series, options: Options) -> Ratio:
        (_, users_measure), (_, active_measure) = kpi.parts
        overall = options.overall if options.overall is not None else series
        users, active = series.get((users_measure, -1), 0), overall.get((active_measure, -1), 0)
        return Ratio(part_names(kpi), (users, active), self.key, ratio(users, active))

    def estimator(self, kpi: Kpi) -> None:
        """None: distinct users of overlapping windows are no independent trials."""
        return None


@dataclass(frozen=True)
class Stickiness(Fraction):
    """Active users over 24 h ÷ active users over 30 d, at stream time: a value of now, whose
    parts are the two windows' active users (stream/publish/document.py reads them there)."""

    name = "stickiness"
    live = True

    def estimator(self, kpi: Kpi) -> None:
        """None: a value of now has no window to compare."""
        return None


@dataclass(frozen=True)
class Average(Fraction):
    """first ÷ second where that is no share of a whole: page views per session."""

    name = "average"
    key: str = "mean"

    def estimator(self, kpi: Kpi) -> None:
        """None: a mean's variance needs the sum of squares, which pages are not kept with."""
        return None
