"""The demo's view: until the first step closes it says what it waits for and when values come."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stream.tools.kpitable import ROWS, kpi_table, waiting_for

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
    doc = {**snapshot(12, 0), "live": {"open_backlog": {"overall": {"tickets": 0}}}}
    doc["windows"] = {}  # no columns: only the title matters here
    waiting = waiting_for(snapshot(12, 0), 60, NOW)
    assert kpi_table(doc, waiting).title == f"cxkpi — {waiting}"


def test_csat_is_shown_in_percent() -> None:
    show = next(show for label, kpi, show in ROWS if kpi == "csat")
    assert show({"satisfied": 8, "responses": 10, "score": 80.0}) == "80.0 %  (n=10)"
    assert show({"satisfied": 0, "responses": 0, "score": None}) == "—  (n=0)"
