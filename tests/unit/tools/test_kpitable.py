"""The demo's view: until the first step closes it says what it waits for and when values come;
a column per window (long ones too), a window still filling marked."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from stream.kpis.customers import (
    ACTIVE,
    AMOUNT,
    ORDERS,
    PREVIOUS,
    PRICED,
    REPEAT,
    RETAINED,
    customer_kpis,
)
from stream.tools.kpitable import ROWS, customer_line, kpi_table, summary_line, waiting_for
from tests.unit.feed import Feed

NOW = datetime(2026, 11, 23, 10, 14, 18, tzinfo=UTC).timestamp()


def snapshot(applied: int, responses: int) -> dict[str, Any]:
    score = None if not responses else 50.0
    nps = {"promoters": responses, "passives": 0, "detractors": 0, "responses": responses}
    return {
        "valid_at": "2026-11-23T10:14:00.000Z",
        "windows": {"5m": {"nps": {"overall": {**nps, "score": score, "margin_of_error": None}}}},
        "events": {"survey-replies": {"applied": applied, "dead_lettered": 0}},
    }


def test_the_demo_says_what_it_waits_for_until_a_step_closes() -> None:
    assert waiting_for(None, 60, NOW) == "waiting for the worker to start"
    assert waiting_for(snapshot(0, 0), 60, NOW) == "waiting for the first events"
    assert waiting_for(snapshot(12, 0), 60, NOW) == (
        "counting events: values appear when the first 1m step closes, at 10:15:00 UTC (in 42 s)"
    )
    moments_after = NOW + 42 + 3  # the step ended 3 s ago: stream time is still reaching it
    assert waiting_for(snapshot(12, 0), 60, moments_after).endswith("closes, any second now")
    assert waiting_for(snapshot(12, 3), 60, NOW) is None


def test_the_table_title_carries_the_wait() -> None:
    assert kpi_table(None, "waiting for the worker to start").title == (
        "waiting for the worker to start"
    )
    live = {"tickets": 0, "oldest_seconds": None}
    doc = {
        **snapshot(12, 0),
        "live": {k: {"overall": live} for k in ("open_backlog", "backlog_age")},
    }
    doc["windows"] = {}  # no columns: only the title matters here
    waiting = waiting_for(snapshot(12, 0), 60, NOW)
    assert kpi_table(doc, waiting).title == f"cxkpi — {waiting}"


def test_csat_is_shown_in_percent() -> None:
    show = next(show for label, kpi, show in ROWS if kpi == "csat")
    assert show({"satisfied": 8, "responses": 10, "score": 80.0}) == "80.0 %  (n=10)"
    assert show({"satisfied": 0, "responses": 0, "score": None}) == "—  (n=0)"


def shown(document: dict) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(kpi_table(document))
    return console.export_text()


def test_every_window_is_a_column_and_a_filling_one_says_so() -> None:
    feed = Feed("tickets")
    feed("t1", "ticket_opened", 0, team="billing")
    feed("t2", "ticket_opened", 3 * 60)  # S = 3 h: t1 is 3 hours old
    document = feed.document()
    text = shown(document)
    assert "5m" in text and "1h" in text and "(filling)" not in text
    assert "open backlog: 2 tickets, the oldest open 3.0 h" in text
    document["windows"]["1h"]["complete"] = False
    assert "1h (filling)" in shown(document)
    assert " 5m: " in summary_line(document)


def test_customer_kpis_show_in_one_line_and_say_what_they_wait_for() -> None:
    assert customer_line(customer_kpis({}, 36)) == (
        "customers: waiting for the first orders of known customers"
    )
    first_period = customer_kpis({ACTIVE: 4, REPEAT: 1, ORDERS: 5}, 36)
    assert customer_line(first_period) == (
        "customers: 4 active; retention, churn and CLV: waiting for customers of the period "
        "before; repeat purchase 25.0 %, 1.25 orders each"
    )
    totals = {ACTIVE: 4, PREVIOUS: 5, RETAINED: 3, REPEAT: 1, ORDERS: 5}
    priced = {f"{PRICED}:EUR": 5, f"{AMOUNT}:EUR": 100_000_000}  # 100 EUR in micros
    assert customer_line(customer_kpis({**totals, **priced}, 36)) == (
        "customers: 4 active; retention 60.0 %, churn 40.0 % (of 5); repeat purchase 25.0 %, "
        "1.25 orders each; CLV EUR 62.50"  # 20 EUR x 1.25 x 1 / 0.4
    )
    gone = customer_line(customer_kpis({PREVIOUS: 2}, 36))
    assert gone.startswith("customers: 0 active; retention 0.0 %, churn 100.0 % (of 2); ")
    assert gone.endswith("repeat purchase and frequency: waiting for orders in this period")


def test_the_table_and_the_line_carry_the_customers() -> None:
    document = Feed("tickets").document()
    document["live"]["customers"] = {"overall": customer_kpis({ACTIVE: 2, ORDERS: 2}, 36)}
    assert "customers: 2 active; retention, churn and CLV: waiting" in shown(document)
    assert summary_line(document).endswith("repeat purchase 0.0 %, 1.00 orders each")
