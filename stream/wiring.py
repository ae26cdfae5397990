"""What the settings make of the KPI code: each source topic's rules, the state settings of
its partitions, the customers topic's, and the shape of the snapshot document. Pure: the worker
(app.py), the benchmarks and the tests build the same objects from the same settings.
"""

from __future__ import annotations

from collections.abc import Mapping

from stream.config import is_long_window
from stream.config.settings import Settings
from stream.kpis.carts import CartRules
from stream.kpis.change import unconfigured_windows, watches
from stream.kpis.customers import CustomerRules
from stream.kpis.engagement import EngagementRules
from stream.kpis.surveys import SurveyRules
from stream.kpis.tickets import TicketRules
from stream.publish.document import Shape
from stream.state.facts import Rules
from stream.state.partition import StateConfig


def topic_rules(settings: Settings) -> list[Rules]:
    step_ms, grace_ms = settings.step * 1000, settings.grace * 1000
    return [
        CartRules(
            timeout_ms=settings.inactivity_timeout * 1000,
            step_ms=step_ms,
            grace_ms=grace_ms,
            retention_ms=settings.cart_retention * 1000,
        ),
        TicketRules(
            step_ms=step_ms, grace_ms=grace_ms, retention_ms=settings.ticket_retention * 1000
        ),
        SurveyRules(
            step_ms=step_ms,
            grace_ms=grace_ms,
            positive_at=settings.sentiment_positive_at,
            negative_at=settings.sentiment_negative_at,
        ),
        engagement_rules(settings),
    ]


def engagement_rules(settings: Settings) -> EngagementRules:
    """A user is remembered for the longest window + long step + grace: its bucket has gone by
    then (the change alerts' own windows hold no distinct counts)."""
    long = any(is_long_window(w) for w in settings.windows)
    return EngagementRules(
        step_ms=settings.step * 1000,
        grace_ms=settings.grace * 1000,
        long_step_ms=settings.long_step * 1000 if long else None,
        timeout_ms=settings.session_timeout * 1000,
        period_ms=settings.activation_period * 1000,
        retention_ms=(max(settings.windows) + settings.long_step + settings.grace) * 1000,
    )


def state_config(settings: Settings) -> StateConfig:
    """The source partitions' state settings (windows only change alerts read hold their KPIs')."""
    extra = unconfigured_windows(watches(settings.changes), (w * 1000 for w in settings.windows))
    return StateConfig(
        step_ms=settings.step * 1000,
        grace_ms=settings.grace * 1000,
        windows_ms=settings.state_windows_ms,
        max_segment_values=settings.max_segment_values,
        allow=settings.allow,
        long_step_ms=settings.long_step * 1000,
        window_measures={
            key: frozenset(m for w in needing for _, m in w.kpi.parts)
            for key, needing in extra.items()
        },
    )


def document_shape(settings: Settings, partitions: Mapping[str, int]) -> Shape:
    """What the worker's snapshot document holds: the configured windows, the partitions of
    each topic, and the change alerts of the KPIs switched on (with the windows they need)."""
    return Shape(
        tuple(w * 1000 for w in settings.windows),
        partitions,
        settings.max_segment_values,
        settings.enabled,
        settings.max_lifetime_periods,
        tuple(watches(settings.changes)),
    )


def customer_rules(settings: Settings) -> tuple[CustomerRules, StateConfig]:
    """The customers topic's rules and state settings: its stream time follows the cart
    partitions' watermarks, and it advances by the long step."""
    long_step_ms, grace_ms = settings.long_step * 1000, settings.grace * 1000
    rules = CustomerRules(
        period_ms=settings.customer_period * 1000, step_ms=long_step_ms, grace_ms=grace_ms
    )
    config = StateConfig(
        step_ms=long_step_ms,
        grace_ms=grace_ms,
        windows_ms=(),
        max_segment_values=settings.max_segment_values,
        watermark_sources=settings.partitions,
    )
    return rules, config
