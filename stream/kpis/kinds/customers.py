"""The kind of the customer KPIs: counts of customers over the period at T -> retention, churn,
repeat purchase, frequency and lifetime value per currency (stream/kpis/customers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stream.kpis.customers import COMPONENTS, VALUES, CustomerKpis, customer_values
from stream.kpis.kinds.base import LIVE_LABELS, PREFIX, Family, Kind, Metrics, Options, Rows, Series

if TYPE_CHECKING:
    from stream.kpis.catalog import Kpi

#: What each customer component counts (summed over workers: each customer is on one partition).
CUSTOMER_COMPONENTS = dict(
    zip(
        COMPONENTS,
        (
            "customers with an order in the last period",
            "customers with an order in the period before",
            "customers with an order in both periods",
            "customers with two or more orders in the last period",
            "orders of known customers in the last period",
            "orders without a customer in the last period",
        ),
        strict=True,
    )
)
#: The values a worker computes from its own partitions' customers.
CUSTOMER_VALUES = VALUES


@dataclass(frozen=True, slots=True)
class CustomerValue:
    """The customer KPIs and the stream time they are evaluated at."""

    kpis: CustomerKpis
    as_of: str | None

    def to_json(self) -> dict[str, Any]:
        return {**self.kpis.to_json(), "as_of": self.as_of}


@dataclass(frozen=True)
class Customers(Kind):
    """Counts of customers over the period at T -> retention, churn, repeat purchase, frequency
    and lifetime value per currency; overall only (customers have no segments)."""

    name = "customers"
    live = True
    key: str = "churn_ratio"

    def value(self, kpi: Kpi, series: Series, options: Options) -> CustomerValue:
        components = {metric: n for (metric, _), n in series.items()}
        kpis = customer_values(components, options.max_lifetime_periods)
        return CustomerValue(kpis, options.customers_as_of)

    def families(self, kpi: Kpi, rows: Rows, metrics: Metrics) -> Iterator[Family]:
        """Customer components and values; money per currency."""
        fleet = "(fleet: compute from the summed components)"
        money = [*LIVE_LABELS, "currency"]
        components = [
            metrics.gauge(
                f"{PREFIX}customers_{key}", f"{text} (sum over workers)", labels=LIVE_LABELS
            )
            for key, text in CUSTOMER_COMPONENTS.items()
        ]
        computed = [
            metrics.gauge(
                f"{PREFIX}customers_{key}",
                f"Customer {key.replace('_', ' ')} of this worker's partitions {fleet}",
                labels=LIVE_LABELS,
            )
            for key in CUSTOMER_VALUES
        ]
        priced = metrics.gauge(
            PREFIX + "customers_priced_orders",
            "Orders with an amount of known customers in the last period (sum over workers)",
            labels=money,
        )
        amount = metrics.gauge(
            PREFIX + "customers_amount", "Amount of those orders (sum over workers)", labels=money
        )
        lifetime = metrics.gauge(
            PREFIX + "customers_lifetime_value",
            f"Customer lifetime value of this worker's partitions {fleet}",
            labels=money,
        )
        for labels, value in rows:
            kpis = value.kpis  # type: ignore[attr-defined]
            for family, n in zip(components, kpis.components(), strict=True):
                family.add_metric(labels, n)
            for family, v in zip(computed, kpis.computed(), strict=True):
                if v is not None:
                    family.add_metric(labels, v)
            for currency, cell in kpis.lifetime_value.items():
                priced.add_metric([*labels, currency], cell.orders)
                amount.add_metric([*labels, currency], cell.amount)
                if cell.lifetime_value is not None:
                    lifetime.add_metric([*labels, currency], cell.lifetime_value)
        yield from (*components, *computed, priced, amount, lifetime)
