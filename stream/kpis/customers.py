"""Customer KPIs: retention, churn, repeat purchase, purchase frequency and lifetime value.

The rules of spec/kpis.md, "Customers", over the orders of one partition of the customers topic
(all of a customer's orders reach the same partition, keyed by the pseudonymous customer key).
They are evaluated at T, the partition's stream time rounded down to the long step, with P the
period:

- active A: customers with an order in (T - P, T]; previous B: with one in (T - 2P, T - P];
  retained R: in both. Retention R / B, churn (B - R) / B.
- repeat purchase: customers of A with >= 2 orders in (T - P, T], over A; frequency: those
  orders over A; lifetime value per currency: average order value over (T - P, T] x frequency
  x min(1 / churn, max_lifetime_periods). No value while A or B is empty.

A customer is an entity of the partition state (stream/state/partition.py) whose facts are its
orders of the last 2P. What it adds to the components (A, B, R, ...) is a live gauge of those
orders at T; it changes only when an order arrives or when T passes one of its orders' three
boundaries (the order enters (T - P, T], moves to (T - 2P, T - P], leaves), and the state's
timers re-evaluate just that customer then. An anonymous order is an entity of its own, counted
while it is in (T - P, T]. The state keeps the changelog, and judges each record late, then
duplicate (the order's identity), as everywhere.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from stream.contract.events import Event
from stream.kpis import MICROS, RemembersNothing
from stream.state.facts import NOW, OVERALL, Contribution, Fact
from stream.state.segments import SegmentNames

#: The logical name of the customers topic (its Kafka name is `<app_id>-orders-by-customer`).
CUSTOMERS_TOPIC = "orders-by-customer"
#: The components every partition sums; amounts and priced orders are per currency.
ACTIVE, PREVIOUS, RETAINED = "customers_active", "customers_previous", "customers_retained"
REPEAT, ORDERS, ANONYMOUS = "customers_repeat", "customer_orders", "anonymous_orders"
PRICED, AMOUNT = "customer_priced_orders", "customer_amount_micros"
#: The default cap of a customer's expected lifetime, in periods.
MAX_LIFETIME_PERIODS = 36
#: Fact kinds: an order of a known customer, an anonymous order.
ORDER, ANONYMOUS_ORDER = "o", "a"
# fact = (t, rank, identity, kind, micros or None, currency)
_T, _KIND, _MICROS, _CURRENCY = 0, 3, 4, 5
_SEGMENTS = (OVERALL,)


class CustomerOrder(NamedTuple):
    """A decided order, as forwarded to its customer's partition: nothing personal in it."""

    customer: str | None  # the pseudonymous key; None: anonymous
    t: int  # event time, ms
    micros: int | None  # amount in millionths of the currency unit; None: no amount given
    currency: str
    identity: int  # stable through replays: the same order always has the same identity


def order_identity(cart_id: str, event_id: str) -> int:
    """A 63-bit identity of an order, from its cart and event id (what the cart state
    deduplicates by), so a forwarded record carries neither."""
    digest = hashlib.blake2b(f"{cart_id}\0{event_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def order_event(order: CustomerOrder) -> Event:
    """A forwarded order as the event its customer's partition applies: the customer is the
    entity, the identity the event id; an anonymous order is an entity of its own."""
    anonymous = order.customer is None
    return Event(
        CUSTOMERS_TOPIC,
        f"~{order.identity}" if anonymous else str(order.customer),
        str(order.identity),
        ANONYMOUS_ORDER if anonymous else ORDER,
        order.t,
        {"micros": order.micros, "currency": order.currency},
    )


class CustomerRules(RemembersNothing):
    """The `Rules` of the customers topic: a customer's orders -> its share of the components."""

    topic = CUSTOMERS_TOPIC
    dimensions: tuple[str, ...] = ()

    def __init__(self, *, period_ms: int, step_ms: int, grace_ms: int) -> None:
        if period_ms <= 0 or period_ms % step_ms:
            raise ValueError("the period must be a positive multiple of the long step")
        if period_ms <= step_ms + grace_ms:
            raise ValueError("the period must be longer than the long step and grace together")
        self.period_ms = period_ms
        self.step_ms = step_ms

    def fact(self, event: Event, names: SegmentNames) -> Fact:
        body = event.body
        return (
            event.t,
            0,
            event.event_id,
            event.type,
            body["micros"],
            sys.intern(body["currency"]),
        )

    def _at(self, stream_time: int) -> int:
        """T: the stream time rounded down to the step."""
        return stream_time - stream_time % self.step_ms

    def _ceil(self, t: int) -> int:
        """The first T at or after t."""
        return -(-t // self.step_ms) * self.step_ms

    def contributions(self, facts: list[Fact], stream_time: int) -> list[Contribution]:
        """What the customer (or anonymous order) adds to the components at T."""
        at = self._at(stream_time)
        low = at - self.period_ms
        if facts[0][_KIND] == ANONYMOUS_ORDER:
            return [(NOW, ANONYMOUS, _SEGMENTS, 1)] if low < facts[0][_T] <= at else []
        recent = [f for f in facts if low < f[_T] <= at]
        previous = any(low - self.period_ms < f[_T] <= low for f in facts)
        out: list[Contribution] = [(NOW, PREVIOUS, _SEGMENTS, 1)] if previous else []
        if not recent:
            return out
        out += [(NOW, ACTIVE, _SEGMENTS, 1), (NOW, ORDERS, _SEGMENTS, len(recent))]
        if previous:
            out.append((NOW, RETAINED, _SEGMENTS, 1))
        if len(recent) >= 2:
            out.append((NOW, REPEAT, _SEGMENTS, 1))
        for fact in recent:
            if fact[_MICROS] is not None:
                currency = fact[_CURRENCY]
                out.append((NOW, f"{PRICED}:{currency}", _SEGMENTS, 1))
                out.append((NOW, f"{AMOUNT}:{currency}", _SEGMENTS, fact[_MICROS]))
        return out

    def next_due(self, facts: list[Fact], stream_time: int) -> int | None:
        """The next T at which one of the orders crosses a boundary of the periods."""
        at = self._at(stream_time)
        crossings = (0, 1) if facts[0][_KIND] == ANONYMOUS_ORDER else (0, 1, 2)
        boundaries = (self._ceil(f[_T] + k * self.period_ms) for f in facts for k in crossings)
        return min((b for b in boundaries if b > at), default=None)

    def keep(self, facts: list[Fact], stream_time: int) -> list[Fact]:
        """The orders that can still count: those of the last 2P (an anonymous one: of the
        last P). A copy of a forgotten one is late."""
        at = self._at(stream_time)
        horizon = at - (
            self.period_ms if facts[0][_KIND] == ANONYMOUS_ORDER else 2 * self.period_ms
        )
        return [f for f in facts if f[_T] > horizon]

    def decided(self, key: str, facts: list[Fact], kept: list[Fact]) -> list[Any]:
        return []


@dataclass(frozen=True, slots=True)
class CurrencyValue:
    """A currency's priced orders of known customers, their amount, average order value and the
    customer lifetime value (None while it has none)."""

    orders: int
    amount: float
    average_order_value: float
    lifetime_value: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "orders": self.orders,
            "amount": self.amount,
            "average_order_value": self.average_order_value,
            "lifetime_value": self.lifetime_value,
        }


@dataclass(frozen=True, slots=True)
class CustomerKpis:
    """The customer components and KPIs at T; None where a KPI has no value."""

    active: int
    previous: int
    retained: int
    repeat_customers: int
    orders: int
    anonymous_orders: int
    retention_ratio: float | None
    churn_ratio: float | None
    repeat_purchase_ratio: float | None
    purchase_frequency: float | None
    expected_lifetime_periods: float | None
    lifetime_value: dict[str, CurrencyValue]

    def components(self) -> tuple[int, ...]:
        """The counts, in the order of `COMPONENTS`."""
        return (
            self.active,
            self.previous,
            self.retained,
            self.repeat_customers,
            self.orders,
            self.anonymous_orders,
        )

    def computed(self) -> tuple[float | None, ...]:
        """The values computed from them, in the order of `VALUES`."""
        return (
            self.retention_ratio,
            self.churn_ratio,
            self.repeat_purchase_ratio,
            self.purchase_frequency,
            self.expected_lifetime_periods,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            **dict(zip(COMPONENTS, self.components(), strict=True)),
            **dict(zip(VALUES, self.computed(), strict=True)),
            "lifetime_value": {c: v.to_json() for c, v in self.lifetime_value.items()},
        }


#: The names of CustomerKpis' components and computed values (JSON keys, metric suffixes).
COMPONENTS = ("active", "previous", "retained", "repeat_customers", "orders", "anonymous_orders")
VALUES = (
    "retention_ratio",
    "churn_ratio",
    "repeat_purchase_ratio",
    "purchase_frequency",
    "expected_lifetime_periods",
)


def customer_values(totals: Mapping[str, int], max_lifetime_periods: int) -> CustomerKpis:
    """The customer KPIs from components summed over partitions (each partition holds distinct
    customers, so the sum of its counts is the fleet's). `totals` maps each component (amounts
    and priced orders as `<measure>:<currency>`) to its sum."""
    active, previous, retained = (totals.get(m, 0) for m in (ACTIVE, PREVIOUS, RETAINED))
    repeat, orders = totals.get(REPEAT, 0), totals.get(ORDERS, 0)
    churn = (previous - retained) / previous if previous else None
    frequency = orders / active if active else None
    lifetime = None
    if churn is not None:
        lifetime = min(1 / churn, max_lifetime_periods) if churn else max_lifetime_periods
    values: dict[str, CurrencyValue] = {}
    for measure in sorted(totals):
        name, _, currency = measure.partition(":")
        if name != PRICED:
            continue
        priced, micros = totals[measure], totals.get(f"{AMOUNT}:{currency}", 0)
        average = micros / MICROS / priced
        value = None
        if frequency is not None and lifetime is not None:
            value = average * frequency * lifetime
        values[currency] = CurrencyValue(priced, micros / MICROS, average, value)
    return CustomerKpis(
        active,
        previous,
        retained,
        repeat,
        orders,
        totals.get(ANONYMOUS, 0),
        retained / previous if previous else None,
        churn,
        repeat / active if active else None,
        frequency,
        lifetime,
        values,
    )


def customer_kpis(totals: Mapping[str, int], max_lifetime_periods: int) -> dict[str, Any]:
    """The customer KPIs as in the snapshot's `live.customers.overall` (without `as_of`)."""
    return customer_values(totals, max_lifetime_periods).to_json()
