"""Cart rules: the customer of each decided order (cart KPIs do not change with it), and the
inactivity timeout exactly at its boundary, by hand and against the reference on generated logs."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import pytest

from stream.contract.events import Event
from stream.kpis.carts import CUSTOMER, CartRules
from stream.kpis.customers import CustomerOrder, order_identity
from stream.state.partition import PartitionState
from tests.reference import Record, Rules, compare_snapshots, expected_snapshot
from tests.unit.feed import CONFIG, MIN, T0, TIMEOUT_MIN, CartEntry, Feed, cart_log

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


@pytest.mark.parametrize("customer", [KEY_A, None])
def test_a_return_after_the_whole_cart_was_forgotten_keeps_its_customer_or_none(
    customer: str | None,
) -> None:
    """Hours later, within the cart retention: the order is the remembered customer's, and an
    anonymous cart's stays anonymous."""
    carts = Carts()
    carts("c1", "cart_created", 0, **({} if customer is None else {"customer_id": customer}))
    carts("c1", "item_added", 1)  # abandoned at 31, forgotten from 37
    assert carts.decided(120) == []
    assert "c1" not in carts.state.entities
    carts("c1", "item_added", 130)
    carts("c1", "order_placed", 131, amount=12.5, currency="EUR")  # e4
    assert carts.decided(200) == [order("c1", 131, 4, customer)]


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


def test_an_order_is_decided_exactly_when_the_watermark_passes_it() -> None:
    """Order at 2:00, bucket ends 3:00: late events are possible until 3:00 + grace = 8:00, so
    the order is decided (and promised by the watermark, stream time - step - grace - 1 ms)
    from 8:00.001 on, not before."""
    carts = Carts()
    carts("c1", "item_added", 1)
    carts("c1", "order_placed", 2, amount=12.5, currency="EUR")  # e2
    carts.state.advance(T0 + 8 * MIN)
    assert carts.state.take_decided() == []
    assert carts.state.rules.watermark(T0 + 8 * MIN) == T0 + 2 * MIN - 1
    carts.state.advance(T0 + 8 * MIN + 1)
    assert carts.state.take_decided() == [order("c1", 2, 2, None)]
    assert carts.state.rules.watermark(T0 + 8 * MIN + 1) == T0 + 2 * MIN


def test_a_sessions_segments_are_its_earliest_event_carrying_them() -> None:
    feed = Feed("cart-events")
    feed("c1", "cart_created", 0)  # carries neither
    feed("c1", "item_added", 1, channel="web", region="eu")
    feed("c1", "item_added", 2, channel="app", region="us")
    feed.state.advance(T0 + 40 * MIN)  # abandoned at 32
    value = feed.kpi("cart_abandonment")
    assert {seg: cell["abandoned"] for seg, cell in value["channel"].items()} == {"web": 1}
    assert {seg: cell["abandoned"] for seg, cell in value["region"].items()} == {"eu": 1}


def test_an_order_sorts_after_the_other_events_of_its_millisecond() -> None:
    """Even when its event_id sorts first: the item is in the order's session, which converts."""
    feed = Feed("cart-events")
    feed("c1", "order_placed", 5, "a-order", amount=5, currency="EUR")
    feed("c1", "item_added", 5, "b-item")
    feed.state.advance(T0 + 40 * MIN)
    assert cart_kpis(feed) == (1, 0, 1)


def test_no_facts_nothing_due_nothing_kept() -> None:
    """The Rules interface on an entity with no facts left (stream/state/facts.py)."""
    rules = Feed("cart-events").state.rules
    assert rules.next_due([], T0) is None
    assert rules.keep([], T0) == []
    assert rules.contributions([], T0) == []


# -- the inactivity timeout at its boundary ----------------------------------------------------

TIMEOUT = TIMEOUT_MIN * MIN


def send(feed: Feed, cart: str, kind: str, ms: int, **body: Any) -> str:
    """An event at T0 + ms, to the millisecond (the feed itself takes minutes)."""
    feed.n += 1
    feed.offset += 1
    body = {"type": kind, "cart_id": cart, **body}
    event = Event("cart-events", cart, f"b{feed.n}", kind, T0 + ms, body)
    return feed.state.apply(event, feed.offset)


def cart_kpis(feed: Feed) -> tuple[int, int, int]:
    """(sessions created, abandoned, converted) in the 1 h window."""
    abandonment = feed.kpi("cart_abandonment")["overall"]
    created = feed.kpi("conversion")["overall"]["created"]
    return created, abandonment["abandoned"], abandonment["converted"]


@pytest.mark.parametrize(
    ("gap_ms", "expected"),
    [
        (TIMEOUT - 1, (1, 0, 0)),  # inside the timeout: one session, still open at 32 min
        (TIMEOUT, (2, 1, 0)),  # exactly the timeout: abandoned at 30, the return is a new session
        (TIMEOUT + 1, (2, 1, 0)),
    ],
)
def test_a_return_exactly_timeout_after_the_last_event_is_a_new_session(
    gap_ms: int, expected: tuple[int, int, int]
) -> None:
    feed = Feed("cart-events")
    send(feed, "c1", "item_added", 0)
    send(feed, "c1", "item_added", gap_ms)
    send(feed, "clock", "item_removed", 32 * MIN)  # no items: no session of its own
    assert cart_kpis(feed) == expected


def test_an_order_exactly_timeout_after_the_last_item_does_not_convert_the_cart() -> None:
    """The order comes after the abandonment: its session has no items, so no outcome."""
    feed = Feed("cart-events")
    send(feed, "c1", "item_added", 0)
    send(feed, "c1", "order_placed", TIMEOUT, amount=5, currency="EUR")
    send(feed, "clock", "item_removed", 32 * MIN)
    assert cart_kpis(feed) == (1, 1, 0)
    assert feed.kpi("upsell")["overall"]["orders"] == 1  # still an order


def test_stream_time_reaching_exactly_last_event_plus_timeout_abandons_the_cart() -> None:
    """The abandonment lands in minute 30, in the windows once that minute has closed (31)."""
    feed = Feed("cart-events")
    send(feed, "c1", "item_added", 0)
    send(feed, "clock", "item_removed", TIMEOUT - 1)
    assert feed.state.stream_time == T0 + TIMEOUT - 1
    send(feed, "clock", "item_removed", TIMEOUT)  # stream time is exactly last + timeout
    send(feed, "clock", "item_removed", 31 * MIN)  # with no due time in between
    assert cart_kpis(feed) == (1, 1, 0)


def iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def record(offset: int, entry: CartEntry) -> Record:
    """The entry as a producer would have sent it."""
    cart, kind, minute, body = entry
    fields = {"type": kind, "occurred_at": iso(T0 + int(minute * MIN)), "cart_id": cart, **body}
    return Record("cart-events", 0, offset, json.dumps(fields).encode())


def return_gaps(log: list[CartEntry]) -> set[float]:
    """The gaps (minutes) of 30 or more between a cart's consecutive events, in event time."""
    times: dict[str, set[float]] = defaultdict(set)
    for cart, _, minute, _ in log:
        times[cart].add(minute)
    gaps: set[float] = set()
    for moments in times.values():
        ordered = sorted(moments)
        gaps |= {b - a for a, b in pairwise(ordered) if b - a >= 30}
    return gaps


@pytest.mark.parametrize("seed", range(3))
def test_generated_carts_agree_with_the_reference_after_every_tenth_record(seed: int) -> None:
    """Carts that come back exactly on and after the timeout, and stream times that land
    exactly on a cart's timeout: the state agrees with the independent reference all along,
    not only at the end (an abandonment counted late would be right again by then)."""
    log = cart_log(seed, 240)
    assert {TIMEOUT_MIN, TIMEOUT_MIN + 0.5} <= return_gaps(log)
    feed = Feed("cart-events")
    records: list[Record] = []
    rules = Rules(windows_s=tuple(w // 1000 for w in CONFIG.windows_ms))
    checked = 0
    for offset, entry in enumerate(log):
        cart, kind, minute, body = entry
        fields = dict(body)
        feed(cart, kind, minute, fields.pop("event_id"), **fields)
        records.append(record(offset, entry))
        if offset % 10 == 9 or offset == len(log) - 1:
            expected = expected_snapshot(
                records, rules, now_ms=T0 + 86_400_000, partitions={"cart-events": 1}
            )
            parts = {k: expected[k] for k in ("valid_at", "latest", "windows", "events")}
            differences = compare_snapshots(feed.document(), parts)
            assert not differences, (offset, differences[:10])
            checked += 1
    totals = feed.kpi("cart_abandonment")["overall"]
    assert checked >= 24 and totals["abandoned"] > 0 and totals["converted"] > 0
