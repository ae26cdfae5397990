"""Late and out-of-order events at window boundaries, for every windowed KPI.

Stream time S = minute 20, grace 5 min, step 1 min: an event whose bucket ends at or after
minute 15 is applied to its own bucket; one whose bucket ended before is late and changes
nothing. The 5 m window holds buckets ending in (15, 20], the 1 h window (-40, 20].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.unit.feed import Feed

Send = Callable[[Feed, float, str], str]  # (feed, minute, key) -> outcome of the KPI's event


def _cart_order(feed: Feed, minute: float, key: str) -> str:
    feed(key, "item_added", 19, upsell=True)  # in the session, earlier in arrival, later in time
    return feed(key, "order_placed", minute, amount=10, currency="EUR")


def _ticket(kind: str, **body: Any) -> Send:
    def send(feed: Feed, minute: float, key: str) -> str:
        feed(key, "ticket_opened", 19)
        return feed(key, kind, minute, **body)

    return send


def _survey(kind: str, score: int) -> Send:
    return lambda feed, minute, key: feed(key, kind, minute, score=score)


#: KPI -> (topic, how to send its event at a minute, how to read its count from the value)
SCENARIOS: dict[str, tuple[str, Send, Callable[[dict[str, Any]], int]]] = {
    "conversion": ("cart-events", lambda f, m, k: f(k, "cart_created", m), lambda v: v["created"]),
    "upsell": ("cart-events", _cart_order, lambda v: v["orders"]),
    "average_order_value": (
        "cart-events",
        _cart_order,
        lambda v: v.get("EUR", {}).get("orders", 0),
    ),
    "resolution_time": ("tickets", _ticket("ticket_solved"), lambda v: v["count"]),
    "first_response_time": ("tickets", _ticket("agent_replied"), lambda v: v["count"]),
    "first_contact_resolution": ("tickets", _ticket("ticket_solved"), lambda v: v["solves"]),
    "reopen_rate": ("tickets", _ticket("ticket_reopened"), lambda v: v["reopens"]),
    "nps": ("survey-replies", _survey("nps", 10), lambda v: v["responses"]),
    "csat": ("survey-replies", _survey("csat", 5), lambda v: v["responses"]),
    "ces": ("survey-replies", _survey("ces", 7), lambda v: v["responses"]),
}


def at_stream_time_20(topic: str) -> Feed:
    feed = Feed(topic)
    tick = {"cart-events": "item_removed", "tickets": "customer_replied"}.get(topic, "csat")
    feed("clock", tick, 20, **({"score": 1} if tick == "csat" else {}))
    return feed


@pytest.mark.parametrize("kpi", sorted(SCENARIOS))
def test_inside_grace_lands_in_its_own_window(kpi: str) -> None:
    topic, send, count = SCENARIOS[kpi]
    feed = at_stream_time_20(topic)
    before = {w: count(feed.kpi(kpi, w)["overall"]) for w in ("5m", "1h")}
    assert send(feed, 15.5, "in-5m") == "applied"  # bucket [15, 16): in both windows
    assert send(feed, 14.5, "in-1h") == "applied"  # bucket [14, 15) ends at S - grace: applied
    assert count(feed.kpi(kpi, "5m")["overall"]) == before["5m"] + 1
    assert count(feed.kpi(kpi, "1h")["overall"]) == before["1h"] + 2


@pytest.mark.parametrize("kpi", sorted(SCENARIOS))
def test_beyond_grace_is_late_and_not_applied(kpi: str) -> None:
    topic, send, count = SCENARIOS[kpi]
    feed = at_stream_time_20(topic)
    before = feed.document()
    late_before = feed.state.counts["late"]
    outcome = send(feed, 13.9, "too-late")  # bucket [13, 14) ended before S - grace
    assert outcome == "late"
    assert feed.state.counts["late"] > late_before
    after = feed.document()
    for window in ("5m", "1h"):
        assert count(after["windows"][window][kpi]["overall"]) == count(
            before["windows"][window][kpi]["overall"]
        )
