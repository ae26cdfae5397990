"""Edge cases of every KPI formula (docs/semantics.md), through a real partition state."""

from __future__ import annotations

import math

import pytest

from stream.publish.snapshot import nps_margin_of_error
from tests.unit.feed import Feed


def close_minute(feed: Feed, key: str, minute: float, kind: str, **body: object) -> None:
    """An unrelated event that moves stream time past the buckets under test."""
    feed(key, kind, minute, **body)


def test_empty_windows_have_no_values_not_zero() -> None:
    for topic, kpis in {
        "cart-events": ("conversion", "upsell", "average_order_value"),
        "tickets": ("first_response_time", "first_contact_resolution", "reopen_rate"),
        "survey-replies": ("csat", "ces", "nps"),
    }.items():
        doc = Feed(topic).document()
        for name in kpis:
            overall = doc["windows"]["1h"][name]["overall"]
            assert all(v in (0, None, {}) or isinstance(v, dict) for v in overall.values()), name
    assert Feed("survey-replies").kpi("ces")["overall"]["mean"] is None
    assert Feed("survey-replies").kpi("csat")["overall"]["score"] is None
    assert Feed("cart-events").kpi("average_order_value")["overall"] == {}
    assert Feed("tickets").document()["live"]["open_backlog"]["overall"] == {"tickets": 0}


def test_one_response_and_all_promoters() -> None:
    feed = Feed("survey-replies")
    feed("r1", "nps", 0, score=10)
    close_minute(feed, "x", 2, "csat", score=1)
    nps = feed.kpi("nps")["overall"]
    assert nps["score"] == 100.0 and nps["responses"] == 1
    assert nps["margin_of_error"] == pytest.approx(nps_margin_of_error(1, 0, 1))
    for i in range(9):
        feed(f"p{i}", "nps", 3, score=9)
    close_minute(feed, "y", 5, "csat", score=1)
    assert feed.kpi("nps")["overall"]["score"] == 100.0


def test_nps_margin_of_error_adjusted_wald() -> None:
    # 50 promoters, 30 passives, 20 detractors: p' = 50.75/103, d' = 20.75/103
    p, d = 50.75 / 103, 20.75 / 103
    expected = 100 * 1.96 * math.sqrt((p * (1 - p) + d * (1 - d) + 2 * p * d) / 103)
    assert nps_margin_of_error(50, 20, 100) == pytest.approx(expected)
    assert nps_margin_of_error(0, 0, 0) is None
    assert nps_margin_of_error(1000, 0, 1000) < nps_margin_of_error(10, 0, 10)


def test_csat_top_two_box_and_ces_at_both_ends() -> None:
    feed = Feed("survey-replies")
    for i, score in enumerate((5, 4, 3, 1)):
        feed(f"c{i}", "csat", 0, score=score)
    feed("lo", "ces", 0, score=1)
    feed("hi", "ces", 0, score=7)
    close_minute(feed, "x", 2, "nps", score=5)
    assert feed.kpi("csat")["overall"] == {"satisfied": 2, "responses": 4, "score": 50.0}
    ces = feed.kpi("ces")["overall"]
    assert (ces["mean"], ces["easy"], ces["easy_ratio"]) == (4.0, 1, 0.5)


def test_orders_in_two_currencies_and_upsell() -> None:
    feed = Feed("cart-events")
    feed("a", "item_added", 0, upsell=True)
    feed("a", "order_placed", 1, amount=10.10, currency="EUR")
    feed("b", "item_added", 0)
    feed("b", "order_placed", 1, amount=20.20, currency="EUR")
    feed("c", "item_added", 0)
    feed("c", "order_placed", 1, amount=5, currency="USD")
    feed("d", "item_added", 0)
    feed("d", "order_placed", 1)  # no amount: an order, but not in the average
    close_minute(feed, "x", 3, "cart_created")
    aov = feed.kpi("average_order_value")["overall"]
    assert aov == {
        "EUR": {"orders": 2, "amount": 30.3, "average": 15.15},
        "USD": {"orders": 1, "amount": 5.0, "average": 5.0},
    }
    assert feed.kpi("upsell")["overall"] == {"upsold": 1, "orders": 4, "ratio": 0.25}
    conversion = feed.kpi("conversion")["overall"]
    assert (conversion["converted"], conversion["created"]) == (4, 4)


def test_ticket_reopened_twice() -> None:
    feed = Feed("tickets")
    feed("t", "ticket_opened", 0, team="billing")
    feed("t", "agent_replied", 1)
    feed("t", "ticket_solved", 2)  # one public reply, no reopen: first-contact
    feed("t", "ticket_reopened", 3)
    feed("t", "ticket_solved", 4)  # after a reopen: not first-contact
    feed("t", "ticket_reopened", 5)
    close_minute(feed, "x", 7, "customer_replied")
    assert feed.kpi("reopen_rate")["overall"] == {"reopens": 2, "solves": 2, "ratio": 1.0}
    fcr = feed.kpi("first_contact_resolution")["overall"]
    assert (fcr["first_contact"], fcr["solves"]) == (1, 2)
    assert feed.kpi("resolution_time")["overall"]["sum_seconds"] == (2 + 4) * 60
    live = feed.document()["live"]["open_backlog"]
    assert live["overall"] == {"tickets": 1} and live["team"] == {"billing": {"tickets": 1}}


def test_replies_before_the_opening_arrives() -> None:
    feed = Feed("tickets")
    feed("t", "agent_replied", 3, public=False)  # private: no response
    feed("t", "agent_replied", 4)
    feed("t", "agent_replied", 5)
    feed("t", "ticket_solved", 6)
    feed("t", "ticket_opened", 1, priority="urgent")  # arrives last, happened first
    close_minute(feed, "x", 8, "customer_replied")
    frt = feed.kpi("first_response_time")["overall"]
    assert (frt["count"], frt["sum_seconds"]) == (1, 180.0)
    fcr = feed.kpi("first_contact_resolution")["overall"]
    assert (fcr["first_contact"], fcr["solves"]) == (0, 1)  # two public replies before the solve
    assert feed.document()["live"]["open_backlog"]["overall"] == {"tickets": 0}


def test_kpis_switched_off_are_not_published() -> None:
    from stream.publish.snapshot import merge, partition_entry, render
    from tests.unit.feed import CONFIG

    feed = Feed("survey-replies")
    feed("r", "ces", 0, score=7)
    doc = render(
        merge([partition_entry(feed.state)]),
        CONFIG.windows_ms,
        {feed.topic: 1},
        max_values=20,
        enabled=lambda kpi: kpi != "ces",
    )
    assert "ces" not in doc["windows"]["1h"] and "nps" in doc["windows"]["1h"]
