"""Kinds of KPIs: how a KPI's summed components become its value, its JSON and its Prometheus
families. One class per kind; the catalogue (`stream/kpis/catalog.py`) gives each KPI one.

The arithmetic is pure: it reads the series of a segment summed over partitions (integers, so
adding them is exact) and divides once. The publishers (`stream/publish/`) group and fold the
series, and call the kinds.
"""

from stream.kpis.kinds.base import (
    LIVE_LABELS,
    PREFIX,
    WINDOW_LABELS,
    Estimator,
    Family,
    Kind,
    KpiValues,
    Metrics,
    Options,
    Rows,
    Series,
    Value,
    named,
    ratio,
)
from stream.kpis.kinds.counts import (
    Fraction,
    LiveGauge,
    Mean,
    MeanScore,
    Named,
    Net,
    NetScore,
    Ratio,
    Share,
    Shares,
    nps_margin_of_error,
)
from stream.kpis.kinds.customers import CUSTOMER_COMPONENTS, CUSTOMER_VALUES, Customers
from stream.kpis.kinds.distributions import (
    AGE_SUM_MS,
    OLDEST_MS,
    AgeHistogram,
    Ages,
    Amounts,
    Distribution,
    Duration,
    Money,
)
from stream.kpis.kinds.engagement import Adoption, Average, Count, Stickiness
from stream.kpis.kinds.voice import Sentiment, Texts

__all__ = [
    "AGE_SUM_MS",
    "CUSTOMER_COMPONENTS",
    "CUSTOMER_VALUES",
    "LIVE_LABELS",
    "OLDEST_MS",
    "PREFIX",
    "WINDOW_LABELS",
    "Adoption",
    "AgeHistogram",
    "Ages",
    "Amounts",
    "Average",
    "Count",
    "Customers",
    "Distribution",
    "Duration",
    "Estimator",
    "Family",
    "Fraction",
    "Kind",
    "KpiValues",
    "LiveGauge",
    "Mean",
    "MeanScore",
    "Metrics",
    "Money",
    "Named",
    "Net",
    "NetScore",
    "Options",
    "Ratio",
    "Rows",
    "Sentiment",
    "Series",
    "Share",
    "Shares",
    "Stickiness",
    "Texts",
    "Value",
    "named",
    "nps_margin_of_error",
    "ratio",
]
