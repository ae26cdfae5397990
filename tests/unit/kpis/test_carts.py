"""The customer of each decided order, resolved by the cart rules; cart KPIs do not change."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from stream.contract.events import Event
from stream.kpis.carts import CUSTOMER, CartRules
from stream.kpis.customers import CustomerOrder, order_identity
from stream.state.partition import PartitionState
from tests.unit.feed import CONFIG, MIN, T0

KEY_A, KEY_B = "a" * 22, "b" * 22  # pseudonymous keys, as decoding leaves them


class Carts:
    """A cart partition that collects its decided orders."""

    def __init__(self, collect: bool = True) -> None:
        rules = CartRules(timeout_ms=30 * MIN, step_ms=MIN, grace_ms=5 * MIN)
        config = replace(CONFIG, collect_decided=collect)
        self.state = PartitionState("cart-events", 0, rules, config)
        self.n = 0

    def __call__(self, cart: str, kind: str, minute: float, **body: Any) -> str:
        self.n += 1
        body = {"type": kind, "cart_id": cart, **body}
        event = Event("cart-events", cart, f"e{self.n}", kind, T0 + int(minute * MIN), body)
        return self.state.apply(event, self.n)

    def decided(self, minute: float) -> list[CustomerOrder]:
        self.state.advance(T0 + int(minute * MIN))
        return self.state.take_decided()


def order(cart: str, minute: float, n: int, customer: str | None) -> CustomerOrder:
    return CustomerOrder(
        customer, T0 + int(minute * MIN), 12_500_000, "EUR", order_identity(cart, f"e{n}")
    )


def test_the_orders_own_customer_else_the_carts_else_anonymous() -> None:
    carts = Carts()
    carts("c1", "cart_created", 0, customer_id=KEY_A)
    carts("c1", "item_added", 1)
    carts("c1", "order_placed", 2, amount=12.5, currency="EUR")  # e3: the cart's customer
    carts("c2", "cart_created", 0, customer_id=KEY_A)
    carts("c2", "order_placed", 3, amount=12.5, currency="EUR", customer_id=KEY_B)  # e5: own
    carts("c3", "item_added", 4)
    carts("c3", "order_placed", 5, amount=12.5, currency="EUR")  # e7: anonymous
    assert carts.decided(7) == []  # still open to late events within grace
    assert carts.decided(9) == [order("c1", 2, 3, KEY_A)]  # 2 min: its bucket ends at 3, + 5 + 1 ms
    assert carts.decided(60) == [order("c2", 3, 5, KEY_B), order("c3", 5, 7, None)]
    assert carts.decided(120) == []  # each order is decided once
    assert not carts.state.entities


def test_a_late_cart_created_within_grace_still_names_the_customer() -> None:
    carts = Carts()
    carts("c1", "item_added", 1)
    carts("c1", "order_placed", 2, amount=12.5, currency="EUR")
    carts("c2", "item_added", 5)  # stream time 5: the order is not decided yet
    carts("c1", "cart_created", 0, customer_id=KEY_A)  # late, within grace
    assert carts.decided(60) == [order("c1", 2, 2, KEY_A)]


def test_a_return_visit_after_a_forgotten_session_keeps_the_carts_customer() -> None:
    carts = Carts()
    carts("c1", "cart_created", 0, customer_id=KEY_A)
    carts("c1", "item_added", 1)  # abandoned at 31, forgotten from 37
    carts("c1", "item_added", 35)  # a new session
    carts.state.advance(T0 + 40 * MIN)
    facts = carts.state.entities["c1"].facts
    assert [f[3] for f in facts] == [CUSTOMER, "i"]  # the customer is carried, nothing else
    carts("c1", "order_placed", 50, amount=12.5, currency="EUR")
    assert carts.decided(120) == [order("c1", 50, 4, KEY_A)]


def test_cart_kpis_are_the_same_with_and_without_customers() -> None:
    documents = []
    for customer in (None, KEY_A):
        carts = Carts(collect=customer is not None)
        ids = {} if customer is None else {"customer_id": customer}
        for cart, start in (("c1", 0), ("c2", 3), ("c3", 10)):
            carts(cart, "cart_created", start, **ids)
            carts(cart, "item_added", start + 1, upsell=True)
            carts(cart, "checkout_started", start + 2)
        carts("c1", "order_placed", 4, amount=5.0, currency="EUR", **ids)
        carts("c3", "item_added", 45)  # c2 abandoned, c3 comes back
        carts("c3", "order_placed", 50, amount=7.0, currency="USD")
        carts.state.advance(T0 + 200 * MIN)
        documents.append((carts.state.buckets, carts.state.windows[1].totals))
    assert documents[0] == documents[1]
