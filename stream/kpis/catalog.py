"""The published KPIs: which bucket measures make each one, and over which segment dimensions."""

from __future__ import annotations

from dataclasses import dataclass

from stream.kpis.customers import (
    ACTIVE,
    AMOUNT,
    ANONYMOUS,
    CUSTOMERS_TOPIC,
    ORDERS,
    PREVIOUS,
    PRICED,
    REPEAT,
    RETAINED,
)

CART_DIMENSIONS = ("channel", "region")
TICKET_DIMENSIONS = ("channel", "region", "team", "priority")
SURVEY_DIMENSIONS = ("channel", "region", "team")


@dataclass(frozen=True)
class Kpi:
    """One published KPI.

    kind decides how its components become a value:
    - `share`: first ÷ (first + second), e.g. abandoned ÷ (abandoned + converted);
    - `fraction`: first ÷ second, times `scale` (CSAT is a percentage);
    - `nps`: promoters, passives, detractors → score and margin of error;
    - `mean`: responses, score sum, easy → mean and share of easy;
    - `duration`: a distribution of seconds (count, sum, histogram, quantile sketch);
    - `money`: priced orders and amounts per currency → average;
    - `live`: a gauge of now, not windowed (the open backlog);
    - `age`: a gauge histogram of now, of the open tickets' ages, with the oldest one's age;
    - `customers`: counts of customers over the period at T (kpis/customers.py) → retention,
      churn, repeat purchase, frequency and lifetime value per currency.
    `parts` maps each published component to the bucket measure it is summed from.
    """

    name: str
    kind: str
    topic: str
    dimensions: tuple[str, ...]
    parts: tuple[tuple[str, str], ...]
    value: str = "ratio"  # the JSON key of the computed value
    scale: float = 1.0

    @property
    def is_live(self) -> bool:
        """A value of now (published without a window), not of a rolling window."""
        return self.kind in ("live", "age", "customers")

    @property
    def title(self) -> str:
        """The name people read: 'Cart abandonment', and acronyms in capitals ('CSAT')."""
        return ACRONYMS.get(self.name) or self.name.replace("_", " ").capitalize()


#: KPIs whose name is an acronym, written as such in titles
ACRONYMS = {"nps": "NPS", "csat": "CSAT", "ces": "CES"}


CATALOG: tuple[Kpi, ...] = (
    Kpi(
        "cart_abandonment",
        "share",
        "cart-events",
        CART_DIMENSIONS,
        (("abandoned", "cart_abandoned"), ("converted", "cart_converted")),
    ),
    Kpi(
        "checkout_abandonment",
        "share",
        "cart-events",
        CART_DIMENSIONS,
        (("abandoned", "checkout_abandoned"), ("converted", "checkout_converted")),
    ),
    Kpi(
        "conversion",
        "fraction",
        "cart-events",
        CART_DIMENSIONS,
        (("converted", "cart_converted"), ("created", "carts_created")),
    ),
    Kpi(
        "average_order_value",
        "money",
        "cart-events",
        CART_DIMENSIONS,
        (("orders", "priced_orders"), ("amount", "order_amount_micros")),
        value="average",
    ),
    Kpi(
        "upsell",
        "fraction",
        "cart-events",
        CART_DIMENSIONS,
        (("upsold", "upsell_orders"), ("orders", "orders")),
    ),
    Kpi("resolution_time", "duration", "tickets", TICKET_DIMENSIONS, (("samples", "resolution"),)),
    Kpi(
        "first_response_time",
        "duration",
        "tickets",
        TICKET_DIMENSIONS,
        (("samples", "first_response"),),
    ),
    Kpi(
        "first_contact_resolution",
        "fraction",
        "tickets",
        TICKET_DIMENSIONS,
        (("first_contact", "first_contact_solves"), ("solves", "ticket_solves")),
    ),
    Kpi(
        "reopen_rate",
        "fraction",
        "tickets",
        TICKET_DIMENSIONS,
        (("reopens", "ticket_reopens"), ("solves", "ticket_solves")),
    ),
    Kpi(
        "open_backlog",
        "live",
        "tickets",
        TICKET_DIMENSIONS,
        (("tickets", "open_tickets"),),
        value="tickets",
    ),
    Kpi(
        "backlog_age",
        "age",
        "tickets",
        ("team", "priority"),
        (("tickets", "backlog_age"), ("oldest", "backlog_opened")),
        value="oldest_seconds",
    ),
    Kpi(
        "nps",
        "nps",
        "survey-replies",
        SURVEY_DIMENSIONS,
        (
            ("promoters", "nps_promoters"),
            ("passives", "nps_passives"),
            ("detractors", "nps_detractors"),
        ),
        value="score",
    ),
    Kpi(
        "csat",
        "fraction",
        "survey-replies",
        SURVEY_DIMENSIONS,
        (("satisfied", "csat_satisfied"), ("responses", "csat_responses")),
        value="score",
        scale=100.0,
    ),
    Kpi(
        "ces",
        "mean",
        "survey-replies",
        SURVEY_DIMENSIONS,
        (("responses", "ces_responses"), ("score_sum", "ces_score_sum"), ("easy", "ces_easy")),
        value="mean",
    ),
    Kpi(
        "customers",
        "customers",
        CUSTOMERS_TOPIC,
        (),
        (
            ("active", ACTIVE),
            ("previous", PREVIOUS),
            ("retained", RETAINED),
            ("repeat", REPEAT),
            ("orders", ORDERS),
            ("anonymous_orders", ANONYMOUS),
            ("priced_orders", PRICED),
            ("amount", AMOUNT),
        ),
        value="churn_ratio",
    ),
)
WINDOWED = tuple(k for k in CATALOG if not k.is_live)
LIVE = tuple(k for k in CATALOG if k.is_live)
