"""A test feed: applies hand-written events to a fresh partition state and reads its KPIs."""

from __future__ import annotations

import random
from functools import cache
from typing import Any

from stream.contract.events import Event
from stream.kpis.carts import CartRules
from stream.kpis.surveys import SurveyRules
from stream.kpis.tickets import TicketRules
from stream.publish.document import render
from stream.publish.entries import partition_entry
from stream.publish.merge import merge
from stream.state.partition import PartitionState, StateConfig
from stream.voice import Sentiment, sentiment

MIN = 60_000
CONFIG = StateConfig(
    step_ms=MIN, grace_ms=5 * MIN, windows_ms=(5 * MIN, 60 * MIN), max_segment_values=20
)
T0 = 1_800_000_000_000 - 1_800_000_000_000 % (60 * MIN)  # a whole hour
TIMEOUT_MIN = 30  # the cart inactivity timeout of rules_for("cart-events"), in minutes
#: Gaps (minutes) after which a cart comes back: just inside the timeout (same session), exactly
#: on it and beyond it (a new session: the spec abandons the cart at last event + timeout).
RETURN_GAPS = (TIMEOUT_MIN - 0.5, TIMEOUT_MIN, TIMEOUT_MIN + 0.5, TIMEOUT_MIN + 12)

#: (cart, type, minute after T0, body fields with the event_id) in arrival order
CartEntry = tuple[str, str, float, dict[str, Any]]


@cache
def texts() -> Sentiment:
    """Scores free text as the worker does (the reference calls the same scorer)."""
    return sentiment("lexicon")


def rules_for(topic: str) -> Any:
    if topic == "cart-events":
        return CartRules(timeout_ms=30 * MIN, step_ms=MIN, grace_ms=5 * MIN)
    if topic == "tickets":
        return TicketRules(step_ms=MIN, grace_ms=5 * MIN, retention_ms=7 * 24 * 60 * MIN)
    return SurveyRules(step_ms=MIN, grace_ms=5 * MIN)


class Feed:
    """Applies events to a fresh partition state, numbering offsets."""

    def __init__(self, topic: str, partition: int = 0) -> None:
        self.topic = topic
        self.state = PartitionState(topic, partition, rules_for(topic), CONFIG)
        self.offset = -1
        self.n = 0

    def __call__(
        self, key: str, kind: str, minute: float, event_id: str | None = None, **body: Any
    ) -> str:
        self.offset += 1
        self.n += 1
        field = {"cart-events": "cart_id", "tickets": "ticket_id"}.get(self.topic, "response_id")
        body = {"type": kind, field: key, **body}
        event = Event(self.topic, key, event_id or f"e{self.n}", kind, T0 + int(minute * MIN), body)
        return self.state.apply(event, self.offset)

    def document(self) -> dict[str, Any]:
        return render(
            merge([partition_entry(self.state)]),
            CONFIG.windows_ms,
            {self.topic: 1},
            max_values=CONFIG.max_segment_values,
        )

    def kpi(self, name: str, window: str = "1h") -> dict[str, Any]:
        return self.document()["windows"][window][name]


def cart_log(seed: int, n: int) -> list[CartEntry]:
    """About n cart events on a half-minute grid, many carts interleaved, so that returns and
    stream time land exactly on a cart's timeout. Half the carts come back after one of the
    RETURN_GAPS; most carts are created by a known customer (some customers have several carts);
    arrival runs up to 7 minutes behind event time (some events are late) and one event in ten
    is delivered twice."""
    rng = random.Random(seed)
    timed: list[tuple[float, str, str, dict[str, Any]]] = []
    span = n * 0.5  # about two events a minute, as a partition of a busy shop
    for c in range(n):
        if len(timed) >= n:
            break
        cart, channel = f"c{c}", rng.choice(["web", "app"])
        last = rng.randrange(int(span * 2)) * 0.5
        for visit in range(2 if rng.random() < 0.5 else 1):
            t = last + rng.choice(RETURN_GAPS) if visit else last
            for kind in _visit(rng, first=not visit):
                body: dict[str, Any] = {"channel": channel}
                if kind == "order_placed":
                    body |= {"amount": rng.randrange(100, 9999) / 100, "currency": "EUR"}
                elif kind == "cart_created" and rng.random() < 0.7:
                    body["customer_id"] = f"k{rng.randrange(n // 10 + 1)}"  # a returning shopper
                timed.append((t, cart, kind, body))
                last, t = t, t + rng.choice((0.5, 1, 2, 5))
    log: list[CartEntry] = []
    arrival = sorted(timed, key=lambda e: e[0] + rng.uniform(-1, 7))
    for i, (minute, cart, kind, body) in enumerate(arrival):
        log.append((cart, kind, minute, {**body, "event_id": f"id{i}"}))
        if rng.random() < 0.1:
            log.append(log[-1])  # duplicate delivery
    return log


def _visit(rng: random.Random, first: bool) -> list[str]:
    """The types of one visit to a cart: items, maybe a checkout, maybe an order."""
    kinds = ["cart_created"] if first and rng.random() < 0.7 else []
    kinds += ["item_added"] * rng.randint(0 if kinds else 1, 3)
    if rng.random() < 0.4:
        kinds.append("checkout_started")
    if rng.random() < 0.3:
        kinds.append("order_placed")
    return kinds
