"""The published KPIs: which bucket measures make each one, and over which segment dimensions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kpi:
    """One published KPI.

    kind: `ratio` (numerator over numerator + other), `nps` (promoters, passives, detractors) or
    `duration` (a sample distribution in seconds). `parts` maps each published component to the
    bucket measure it is summed from.
    """

    name: str
    kind: str
    topic: str
    dimensions: tuple[str, ...]
    parts: tuple[tuple[str, str], ...]
    metric: str  # Prometheus name of the components (without the cxkpi_ prefix)


CATALOG: tuple[Kpi, ...] = (
    Kpi(
        "cart_abandonment",
        "ratio",
        "cart-events",
        ("channel", "region"),
        (("abandoned", "cart_abandoned"), ("converted", "cart_converted")),
        "cart_sessions",
    ),
    Kpi(
        "checkout_abandonment",
        "ratio",
        "cart-events",
        ("channel", "region"),
        (("abandoned", "checkout_abandoned"), ("converted", "checkout_converted")),
        "checkout_sessions",
    ),
    Kpi(
        "resolution_time",
        "duration",
        "tickets",
        ("channel", "region", "team", "priority"),
        (("samples", "resolution"),),
        "ticket_resolution_seconds",
    ),
    Kpi(
        "nps",
        "nps",
        "survey-replies",
        ("channel", "region", "team"),
        (
            ("promoters", "nps_promoters"),
            ("passives", "nps_passives"),
            ("detractors", "nps_detractors"),
        ),
        "nps_responses",
    ),
)
