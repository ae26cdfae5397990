"""The kind of the sentiment of free text (kpis.md, "Voice of the customer"): texts scored and
unscored, the shares positive / neutral / negative, net sentiment and the mean score."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stream.kpis.kinds.base import (
    Estimator,
    Family,
    Kind,
    Metrics,
    Options,
    Rows,
    Series,
    counted_families,
    ratio,
)
from stream.kpis.kinds.counts import Net, part_counts

if TYPE_CHECKING:
    from stream.kpis.catalog import Kpi

#: The components: the KPI's parts in their order (the classes, unscored texts, the score sum),
#: then the scored texts.
COMPONENTS = ("positive", "neutral", "negative", "unscored", "score_sum", "scored")
#: What the components give.
COMPUTED = (
    "net",
    "margin_of_error",
    "positive_ratio",
    "neutral_ratio",
    "negative_ratio",
    "mean",
)


@dataclass(frozen=True, slots=True)
class Texts:
    """The texts of one window and segment; `score_sum` in the scale's units (an integer: sums
    stay exact)."""

    positive: int
    neutral: int
    negative: int
    unscored: int
    score_sum: int
    scale: int

    @property
    def classes(self) -> Net:
        """Positive, neutral, negative: a net score as NPS is, over the scored texts."""
        return Net(COMPONENTS[:3], self.positive, self.neutral, self.negative)

    @property
    def scored(self) -> int:
        return self.classes.total

    def to_json(self) -> dict[str, Any]:
        return {
            **dict(zip(COMPONENTS, self.components(), strict=True)),
            **dict(zip(COMPUTED, self.computed(), strict=True)),
        }

    def named(self) -> dict[str, float]:
        return dict(zip(COMPONENTS, self.components(), strict=True))

    def components(self) -> tuple[float, ...]:
        """As published: the score sum in score units (summed over workers as a float)."""
        sums = self.score_sum / self.scale
        return self.positive, self.neutral, self.negative, self.unscored, sums, self.scored

    def computed(self) -> tuple[float | None, ...]:
        classes = self.classes
        scored = classes.total
        mean = ratio(self.score_sum, scored)
        return (
            *classes.computed(),  # net, margin of error
            ratio(self.positive, scored),
            ratio(self.neutral, scored),
            ratio(self.negative, scored),
            None if mean is None else mean / self.scale,
        )


@dataclass(frozen=True)
class Sentiment(Kind):
    """Positive, neutral, negative and unscored texts and the scored texts' summed score ->
    net sentiment = 100 x (positive - negative) / scored (with the adjusted-Wald margin of error,
    as for NPS), the three shares of the scored texts, and their mean score in [-1, 1]. `scale`
    is the score sum's unit (ten-thousandths)."""

    name = "sentiment"
    key: str = "net"
    scale: int = 10_000

    def value(self, kpi: Kpi, series: Series, options: Options) -> Texts:
        return Texts(*part_counts(kpi, series), scale=self.scale)

    def estimator(self, kpi: Kpi) -> Estimator:
        """Net sentiment is tested like NPS (kpis.md, "Change alerts"): positive and negative
        shares of the scored texts."""
        return Estimator("net", ("scored",), "positive", "negative", scale=100.0)

    def families(self, kpi: Kpi, rows: Rows, metrics: Metrics) -> Iterator[Family]:
        return counted_families(kpi, rows, metrics, COMPONENTS, COMPUTED)
