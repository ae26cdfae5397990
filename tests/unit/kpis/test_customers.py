"""Customer KPIs at the period boundaries, with duplicates, late orders and watermarks, through
a real partition state of the customers topic."""

from __future__ import annotations

import pytest

from stream.kpis.customers import (
    CUSTOMERS_TOPIC,
    CustomerOrder,
    CustomerRules,
    customer_kpis,
    order_event,
    order_identity,
)
from stream.state.partition import PartitionState, StateConfig

HOUR = 3_600_000
DAY = 24 * HOUR
P = 30 * DAY
GRACE = 5 * 60_000
T = 1_800_000_000_000 - 1_800_000_000_000 % HOUR + 100 * DAY  # a whole hour


class Customers:
    """One partition of the customers topic, fed with forwarded orders and watermarks."""

    def __init__(self, sources: int = 1) -> None:
        config = StateConfig(
            step_ms=HOUR,
            grace_ms=GRACE,
            windows_ms=(),
            max_segment_values=20,
            watermark_sources=sources,
        )
        rules = CustomerRules(period_ms=P, step_ms=HOUR, grace_ms=GRACE)
        self.state = PartitionState(CUSTOMERS_TOPIC, 0, rules, config)
        self.offset = -1

    def apply(self, order: CustomerOrder) -> str:
        self.offset += 1
        return self.state.apply(order_event(order), self.offset)

    def watermark(self, t: int, source: int = 0) -> None:
        self.offset += 1
        self.state.watermark(source, t, self.offset)

    @property
    def counts(self) -> dict[str, int]:
        return {k: v for k, v in self.state.counts.items() if k != "dead_lettered"}


def state(sources: int = 1) -> Customers:
    return Customers(sources)


def order(
    customer: str | None, t: int, amount: float | None = 10.0, eid: str = ""
) -> CustomerOrder:
    micros = None if amount is None else round(amount * 1_000_000)
    return CustomerOrder(
        customer, t, micros, "EUR", order_identity("cart", eid or f"{customer}{t}")
    )


def components(s: Customers) -> dict[str, int]:
    return {metric: n for (metric, _, _, _), n in s.state.gauges.items()}


def kpis(s: Customers, at: int = T) -> dict[str, object]:
    s.watermark(at)
    return customer_kpis(components(s), max_lifetime_periods=36)


def test_an_order_exactly_at_t_minus_p_is_previous_not_active() -> None:
    s = state()
    s.apply(order("a", T - P))  # in (T - 2P, T - P]
    s.apply(order("b", T - P + 1))  # in (T - P, T]
    s.apply(order("c", T))  # exactly T: in (T - P, T]
    k = kpis(s)
    assert (k["active"], k["previous"], k["retained"]) == (2, 1, 0)
    assert k["churn_ratio"] == 1.0 and k["retention_ratio"] == 0.0
    assert k["expected_lifetime_periods"] == 1.0


def test_two_orders_in_one_period_make_a_repeat_customer() -> None:
    s = state()
    s.apply(order("a", T - 40 * DAY, 50.0))  # previous period
    s.apply(order("c", T - 35 * DAY))  # previous only: churned
    s.apply(order("a", T - 10 * DAY, 20.0))
    s.apply(order("a", T - 5 * DAY, 40.0))
    s.apply(order("b", T - 3 * DAY, 30.0))
    k = kpis(s)
    assert (k["active"], k["previous"], k["retained"], k["repeat_customers"]) == (2, 2, 1, 1)
    assert k["orders"] == 3 and k["repeat_purchase_ratio"] == 0.5
    assert k["purchase_frequency"] == 1.5 and k["churn_ratio"] == 0.5
    eur = k["lifetime_value"]["EUR"]  # type: ignore[index]
    assert eur["orders"] == 3 and eur["average_order_value"] == pytest.approx(30.0)
    assert eur["lifetime_value"] == pytest.approx(30.0 * 1.5 * 2)  # AOV x frequency x 1/churn


def test_a_customer_who_returns_after_a_gap_of_2p_is_not_retained() -> None:
    s = state()
    s.apply(order("a", T - 2 * P))  # exactly T - 2P: in no period at T
    s.apply(order("a", T - DAY))
    k = kpis(s)
    assert (k["active"], k["previous"], k["retained"]) == (1, 0, 0)
    assert k["churn_ratio"] is None and k["lifetime_value"]["EUR"]["lifetime_value"] is None  # type: ignore[index]
    assert len(s.state.entities["a"].facts) == 1  # the order of T - 2P is forgotten


def test_shares_move_as_t_passes_the_boundaries() -> None:
    s = state()
    s.apply(order("a", T - HOUR // 2))  # in the step in progress at T - 1h
    assert kpis(s, T - HOUR)["active"] == 0  # not yet in (T - P, T]
    assert kpis(s, T)["active"] == 1
    assert (kpis(s, T - HOUR // 2 + P)["active"], kpis(s, T + P)["previous"]) == (1, 1)
    k = kpis(s, T + P + HOUR)
    assert (k["active"], k["previous"]) == (0, 1)
    k = kpis(s, T + 2 * P + 5 * HOUR)  # several steps at once
    assert (k["active"], k["previous"]) == (0, 0)
    assert not s.state.entities and not s.state.gauges


def test_retention_never_churned_caps_the_lifetime() -> None:
    s = state()
    for customer in ("a", "b"):
        s.apply(order(customer, T - 40 * DAY))
        s.apply(order(customer, T - DAY))
    k = kpis(s)
    assert k["churn_ratio"] == 0.0 and k["expected_lifetime_periods"] == 36
    assert k["lifetime_value"]["EUR"]["lifetime_value"] == pytest.approx(10.0 * 1 * 36)  # type: ignore[index]


def test_no_value_while_a_or_b_is_empty() -> None:
    empty = customer_kpis({}, 36)
    assert empty["retention_ratio"] is None and empty["purchase_frequency"] is None
    assert empty["lifetime_value"] == {}
    s = state()
    s.apply(order("a", T - 40 * DAY))  # B = 1, A = 0
    k = kpis(s)
    assert k["purchase_frequency"] is None and k["churn_ratio"] == 1.0


def test_a_reforwarded_order_counts_once_and_anonymous_orders_are_counted() -> None:
    s = state()
    first = order("a", T - DAY, eid="o1")
    assert s.apply(first) == "applied"
    assert s.apply(first) == "duplicate"
    assert s.apply(order("a", T - DAY, eid="o2")) == "applied"  # another order, same time
    anonymous = order(None, T - 2 * HOUR, eid="o3")
    assert s.apply(anonymous) == "applied" and s.apply(anonymous) == "duplicate"
    assert s.apply(order(None, T - 2 * HOUR, amount=None, eid="o4")) == "applied"
    k = kpis(s)
    assert (k["orders"], k["anonymous_orders"], k["active"]) == (2, 2, 1)
    assert s.counts == {"applied": 4, "duplicate": 2, "late": 0}
    assert kpis(s, T + P)["anonymous_orders"] == 0  # they left the period


def test_late_is_judged_before_duplicate() -> None:
    s = state()
    early = order("a", T - 3 * HOUR, eid="o1")
    s.apply(early)
    s.apply(order("b", T, eid="o2"))
    s.watermark(T)  # stream time T: the bucket of T - 3h ended 2h ago
    assert s.apply(early) == "late"  # a late copy is late, not a duplicate
    assert s.apply(order("c", T - 3 * HOUR, eid="o3")) == "late"  # not applied anywhere
    on_time = order("c", T - 3 * 60_000, eid="o4")  # its bucket ends at T: within grace
    assert s.apply(on_time) == "applied"
    assert s.counts == {"applied": 3, "duplicate": 0, "late": 2}
    assert kpis(s)["active"] == 3


@pytest.mark.parametrize(("period", "grace"), [(90 * 60_000, GRACE), (HOUR, HOUR)])
def test_the_period_must_fit_the_step_and_grace(period: int, grace: int) -> None:
    with pytest.raises(ValueError):
        CustomerRules(period_ms=period, step_ms=HOUR, grace_ms=grace)


def test_stream_time_is_the_smallest_watermark_so_a_lagging_source_is_never_late() -> None:
    s = state(sources=2)
    s.apply(order("a", T + 5 * HOUR, eid="o1"))  # from a source far ahead
    s.watermark(T + 6 * HOUR, source=0)
    assert s.state.stream_time is None  # source 1 has promised nothing yet
    s.watermark(T, source=1)
    assert s.state.stream_time == T
    assert s.apply(order("b", T + HOUR, eid="o2")) == "applied"  # from the lagging source
    s.watermark(T + 6 * HOUR, source=1)
    assert s.state.stream_time == T + 6 * HOUR
    assert customer_kpis(components(s), 36)["active"] == 2
    s.watermark(T, source=1)  # an older promise (a source replaying) never goes back
    assert s.state.stream_time == T + 6 * HOUR


def test_a_restored_partition_has_the_same_components_and_watermarks() -> None:
    s = state(sources=2)
    for i, customer in enumerate(("a", "a", "b", None)):
        s.apply(order(customer, T - (40 - 10 * i) * DAY, eid=f"o{i}"))
    s.watermark(T, source=0)
    s.watermark(T + HOUR, source=1)
    records, marker = s.state.flush()
    restored = PartitionState.restore(
        CUSTOMERS_TOPIC, 0, s.state.rules, s.state.config, [*records, marker]
    )
    assert restored.gauges == s.state.gauges and restored.gauges
    assert restored.watermarks == {0: T, 1: T + HOUR}
    assert restored.stream_time == T
