"""Customer KPIs: retention, churn, repeat purchase, purchase frequency and lifetime value.

The rules of spec/kpis.md, "Customers", over the orders of one partition of customers (all of a
customer's orders reach the same partition, keyed by the pseudonymous customer key). They are
evaluated at T, the partition's stream time rounded down to the long step, with P the period:

- active A: customers with an order in (T - P, T]; previous B: with one in (T - 2P, T - P];
  retained R: in both. Retention R / B, churn (B - R) / B.
- repeat purchase: customers of A with >= 2 orders in (T - P, T], over A; frequency: those
  orders over A; lifetime value per currency: average order value over (T - P, T] x frequency
  x min(1 / churn, max_lifetime_periods). No value while A or B is empty.

Incremental: the partition keeps the components (A, B, R, ...) as running totals. A customer's
share in them changes only when an order arrives or when T passes one of its orders' three
boundaries (the order enters (T - P, T], moves to (T - 2P, T - P], leaves): a timer per customer
re-evaluates just that customer then, never all of them. Orders older than T - 2P are forgotten,
and with them the customer once none is left.

Per record, as everywhere: late (its long-step bucket ended more than grace before stream time)
-> counted late; else a duplicate (an identity already applied) -> counted; else applied. A late
copy is never a duplicate, so identities are kept only while a copy could still be on time.
"""

from __future__ import annotations

import hashlib
import heapq
import sys
from bisect import insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from stream.kpis import MICROS
from stream.state.windows import is_late

#: The components every partition sums; amounts and priced orders are per currency.
ACTIVE, PREVIOUS, RETAINED, REPEAT, ORDERS = "active", "previous", "retained", "repeat", "orders"
ANONYMOUS = "anonymous_orders"
PRICED, AMOUNT = "priced_orders:", "amount_micros:"


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


#: One kept order of a customer: (t, micros, currency, identity), sorted by t.
Order = tuple[int, int | None, str, int]


@dataclass(slots=True)
class Customer:
    """One customer's orders of the last 2P, and the next T at which their share changes."""

    orders: list[Order]
    due: int | None = None


class CustomerState:
    """The customer KPI components of one partition of customers."""

    def __init__(self, *, period_ms: int, step_ms: int, grace_ms: int) -> None:
        if period_ms <= 0 or period_ms % step_ms:
            raise ValueError("the period must be a positive multiple of the long step")
        if 2 * period_ms <= step_ms + grace_ms:
            raise ValueError("2 periods must be longer than the long step and grace together")
        self.period_ms = period_ms
        self.step_ms = step_ms
        self.grace_ms = grace_ms
        self.stream_time: int | None = None
        self.at: int | None = None  # T: the stream time rounded down to the step
        self.customers: dict[str, Customer] = {}
        self.totals: dict[str, int] = {}
        self.counts: dict[str, int] = dict.fromkeys(("applied", "duplicate", "late"), 0)
        self._timers: list[tuple[int, str]] = []
        self._anonymous: dict[int, int] = {}  # end of its step (rounded up) -> orders
        self._anonymous_ids: dict[int, set[int]] = {}  # bucket index -> identities, while on time

    # -- applying --------------------------------------------------------------------------------

    def apply(self, order: CustomerOrder) -> str:
        """Apply one forwarded order; returns its outcome."""
        if is_late(order.t, self.stream_time, self.step_ms, self.grace_ms):
            return self._count("late")
        if order.customer is None:
            return self._apply_anonymous(order)
        customer = self.customers.get(order.customer)
        if customer is not None and any(o[3] == order.identity for o in customer.orders):
            return self._count("duplicate")
        self.advance(order.t)  # may forget the customer's old orders, or the customer
        assert self.at is not None
        customer = self.customers.get(order.customer)
        if customer is None:
            customer = self.customers[order.customer] = Customer([])
        before = self._share(customer.orders, self.at)
        insort(customer.orders, (order.t, order.micros, sys.intern(order.currency), order.identity))
        self._add(before, -1)
        self._add(self._share(customer.orders, self.at), 1)
        self._schedule(order.customer, customer)
        return self._count("applied")

    def _apply_anonymous(self, order: CustomerOrder) -> str:
        """Anonymous orders are only counted: per step, and by identity while on time."""
        seen = self._anonymous_ids.setdefault(order.t // self.step_ms, set())
        if order.identity in seen:
            return self._count("duplicate")
        seen.add(order.identity)
        self.advance(order.t)
        assert self.at is not None
        end = self._ceil(order.t)
        self._anonymous[end] = self._anonymous.get(end, 0) + 1
        if self.at - self.period_ms < end <= self.at:
            self._add([(ANONYMOUS, 1)], 1)
        return self._count("applied")

    def _count(self, outcome: str) -> str:
        self.counts[outcome] += 1
        return outcome

    # -- time --------------------------------------------------------------------------------

    def advance(self, stream_time: int) -> None:
        """Move stream time forward; when T passes a step, re-evaluate the customers whose share
        changes at it."""
        if self.stream_time is not None and stream_time <= self.stream_time:
            return
        self.stream_time = stream_time
        at = stream_time - stream_time % self.step_ms
        if at == self.at:
            return
        self.at = at
        while self._timers and self._timers[0][0] <= at:
            due, key = heapq.heappop(self._timers)
            customer = self.customers.get(key)
            if customer is not None and customer.due == due:
                customer.due = None
                self._evaluate(key, customer, due)
        self._slide_anonymous(at)

    def _evaluate(self, key: str, customer: Customer, due: int) -> None:
        """A customer's share changed at `due`: it was constant from their last evaluation up to
        the step before, and is now the share at T; orders before T - 2P are forgotten."""
        assert self.at is not None
        self._add(self._share(customer.orders, due - self.step_ms), -1)
        self._add(self._share(customer.orders, self.at), 1)
        horizon = self.at - 2 * self.period_ms
        customer.orders = [o for o in customer.orders if o[0] > horizon]
        if customer.orders:
            self._schedule(key, customer)
        else:
            del self.customers[key]

    def _slide_anonymous(self, at: int) -> None:
        """The anonymous orders in (T - P, T], and the identities that may still be needed."""
        low = at - self.period_ms
        for end in [end for end in self._anonymous if end <= low]:
            del self._anonymous[end]
        in_period = sum(n for end, n in self._anonymous.items() if end <= at)
        self._add([(ANONYMOUS, in_period - self.totals.get(ANONYMOUS, 0))], 1)
        assert self.stream_time is not None
        on_time = (self.stream_time - self.grace_ms) // self.step_ms  # earlier buckets are late
        for k in [k for k in self._anonymous_ids if k < on_time]:
            del self._anonymous_ids[k]

    def _ceil(self, t: int) -> int:
        """The first T at or after t."""
        return -(-t // self.step_ms) * self.step_ms

    def _schedule(self, key: str, customer: Customer) -> None:
        """A timer at the next T at which one of the customer's orders crosses a boundary."""
        assert self.at is not None
        at, period = self.at, self.period_ms
        boundaries = (self._ceil(o[0] + k * period) for o in customer.orders for k in (0, 1, 2))
        due = min((b for b in boundaries if b > at), default=None)
        if due is not None and (customer.due is None or due < customer.due):
            customer.due = due
            heapq.heappush(self._timers, (due, key))

    # -- shares --------------------------------------------------------------------------------

    def _share(self, orders: list[Order], at: int) -> list[tuple[str, int]]:
        """What one customer adds to the components at T = at."""
        low, older = at - self.period_ms, at - 2 * self.period_ms
        recent = [o for o in orders if low < o[0] <= at]
        previous = any(older < o[0] <= low for o in orders)
        out: list[tuple[str, int]] = []
        if previous:
            out.append((PREVIOUS, 1))
        if not recent:
            return out
        out += [(ACTIVE, 1), (ORDERS, len(recent))]
        if previous:
            out.append((RETAINED, 1))
        if len(recent) >= 2:
            out.append((REPEAT, 1))
        for _, micros, currency, _ in recent:
            if micros is not None:
                out += [(PRICED + currency, 1), (AMOUNT + currency, micros)]
        return out

    def _add(self, share: Iterable[tuple[str, int]], times: int) -> None:
        totals = self.totals
        for measure, value in share:
            total = totals.get(measure, 0) + value * times
            if total:
                totals[measure] = total
            else:
                totals.pop(measure, None)


def customer_kpis(totals: Mapping[str, int], max_lifetime_periods: int) -> dict[str, Any]:
    """The customer KPIs from components summed over partitions (each partition holds distinct
    customers, so the sum of its counts is the fleet's); None where a KPI has no value."""
    active, previous, retained = (totals.get(m, 0) for m in (ACTIVE, PREVIOUS, RETAINED))
    repeat, orders = totals.get(REPEAT, 0), totals.get(ORDERS, 0)
    churn = (previous - retained) / previous if previous else None
    frequency = orders / active if active else None
    lifetime = None
    if churn is not None:
        lifetime = min(1 / churn, max_lifetime_periods) if churn else max_lifetime_periods
    values: dict[str, dict[str, Any]] = {}
    for measure in sorted(totals):
        if not measure.startswith(PRICED):
            continue
        currency = measure[len(PRICED) :]
        priced, micros = totals[measure], totals.get(AMOUNT + currency, 0)
        average = micros / MICROS / priced
        value = None
        if frequency is not None and lifetime is not None:
            value = average * frequency * lifetime
        values[currency] = {
            "orders": priced,
            "amount": micros / MICROS,
            "average_order_value": average,
            "lifetime_value": value,
        }
    return {
        "active": active,
        "previous": previous,
        "retained": retained,
        "repeat_customers": repeat,
        "orders": orders,
        "anonymous_orders": totals.get(ANONYMOUS, 0),
        "retention_ratio": retained / previous if previous else None,
        "churn_ratio": churn,
        "repeat_purchase_ratio": repeat / active if active else None,
        "purchase_frequency": frequency,
        "expected_lifetime_periods": lifetime,
        "lifetime_value": values,
    }
