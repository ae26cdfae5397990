"""The synthetic generator: deterministic, valid against the contract, and shaped like the
profile says (abandonment, NPS, resolution times, topic mix)."""

from __future__ import annotations

import math
import re
import statistics
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from itertools import pairwise
from typing import Any

import jsonschema
import pytest

from stream.contract.schemas import (
    KEY_FIELD,
    SOURCE_TOPICS,
    TOPIC_OF_TYPE,
    load_schema,
    record_key,
    schema_error,
    topic_of,
)
from stream.tools import voices
from stream.tools.activity import FEATURES
from stream.tools.generate import SURVEY_KINDS, Profile, generate

START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
RATE = 50.0
LONG_RATE = 5.0
LONG_PROFILE = Profile(resolution_median_s=600)
CART_LIFE_S = 1200  # at most 13 events, 90 s apart, plus waits for an emission slot
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@cache
def short_run() -> tuple[dict[str, Any], ...]:
    """20,000 events at 50/s: 400 s of event time."""
    return tuple(generate(7, START, RATE, count=20_000))


@cache
def long_run() -> tuple[dict[str, Any], ...]:
    """60,000 events at 5/s: 12,000 s, many times a cart's life and a 600 s median ticket's."""
    return tuple(generate(11, START, LONG_RATE, count=60_000, profile=LONG_PROFILE))


@cache
def twelve_days() -> tuple[dict[str, Any], ...]:
    """About 52,000 events at 0.05/s: twelve days, for what happens days later."""
    return tuple(generate(5, START, 0.05, duration_s=12 * 86400))


def seconds(event: dict[str, Any]) -> float:
    """Event time in seconds after START."""
    return (datetime.fromisoformat(event["occurred_at"]) - START).total_seconds()


def by_key(events: tuple[dict[str, Any], ...], topic: str) -> dict[str, list[dict[str, Any]]]:
    entities: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        if topic_of(event) == topic:
            entities[record_key(event)].append(event)
    return entities


def finished_carts() -> list[list[dict[str, Any]]]:
    """The carts of the long run whose last visit began well before its end: none is still
    under way (a return visit may still be to come)."""
    events = long_run()
    end = seconds(events[-1])
    carts = by_key(events, "cart-events").values()
    return [cart for cart in carts if seconds(visits_of(cart)[-1][0]) < end - CART_LIFE_S]


def visits_of(cart: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """A cart's events split where the shopper left for longer than the default inactivity
    timeout (30 min): a return visit is a session of its own."""
    out = [[cart[0]]]
    for before, event in pairwise(cart):
        if seconds(event) - seconds(before) >= 1800:
            out.append([])
        out[-1].append(event)
    return out


def test_same_arguments_same_events() -> None:
    first = list(generate(3, START, RATE, count=3000))
    assert first == list(generate(3, START, RATE, count=3000))
    assert first == list(generate(3, START, RATE, duration_s=60))


def test_different_seed_or_start_gives_different_events() -> None:
    base = list(generate(3, START, RATE, count=500))
    other_seed = list(generate(4, START, RATE, count=500))
    later = list(generate(3, START + timedelta(hours=1), RATE, count=500))
    assert [e["type"] for e in base] != [e["type"] for e in other_seed]
    for other in (other_seed, later):
        assert not {e["event_id"] for e in base} & {e["event_id"] for e in other}
        assert not {record_key(e) for e in base} & {record_key(e) for e in other}


def test_bounds() -> None:
    assert len(list(generate(0, START, 20, duration_s=12.5))) == 250
    assert list(generate(0, START, 20, count=0)) == []
    for bad in (
        {"count": 10, "duration_s": 1.0},
        {},
        {"count": -1},
        {"count": 10, "rate": 0},
    ):
        arguments: dict[str, Any] = {"rate": 20, **bad}
        with pytest.raises(ValueError):
            generate(0, START, **arguments)  # raises at the call, not at first use


def test_bad_profiles_are_rejected() -> None:
    for bad in (
        {"abandon_share": 1.2},
        {"promoter_share": 0.8, "passive_share": 0.3},
        {"resolution_median_s": 0},
        {"resolution_sigma": -1},
        {"cart_share": 0, "ticket_share": 0, "survey_share": 0},
        {"teams": ()},
    ):
        with pytest.raises(ValueError):
            Profile(**bad)


def test_every_event_satisfies_the_schemas() -> None:
    """All with the worker's validator, a sample with the reference one. The long run has the
    late ticket events (solves, reopens, closes) that the short one has not reached yet."""
    validators = {
        topic: jsonschema.Draft202012Validator(
            load_schema(topic), format_checker=jsonschema.FormatChecker()
        )
        for topic in SOURCE_TOPICS
    }
    for events in (short_run(), long_run()):
        for event in events:
            assert schema_error(topic_of(event), event) is None, event
        for event in events[::20]:
            validators[topic_of(event)].validate(event)
    assert {e["type"] for e in long_run()} == set(TOPIC_OF_TYPE)


def test_event_times_are_monotone_and_spaced_one_over_rate() -> None:
    events = short_run()
    assert all(TIMESTAMP.match(e["occurred_at"]) for e in events)
    times = [seconds(e) for e in events]
    assert times[0] == 0
    assert all(b - a == pytest.approx(1 / RATE) for a, b in pairwise(times))


def test_spacing_with_a_period_of_no_whole_milliseconds() -> None:
    start = datetime(2026, 11, 23, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    events = list(generate(1, start, 3, count=100))
    assert events[0]["occurred_at"] == "2026-11-23T08:30:00.000Z"
    times = [datetime.fromisoformat(e["occurred_at"]) - start for e in events]
    for i, offset in enumerate(times):
        assert abs(offset.total_seconds() - i / 3) < 0.001


def test_naive_start_is_utc() -> None:
    naive = list(generate(1, START.replace(tzinfo=None), RATE, count=50))
    assert naive == list(generate(1, START, RATE, count=50))


def test_ids_and_segments() -> None:
    events = short_run()
    assert len({e["event_id"] for e in events}) == len(events)
    channels = {"review": voices.PLATFORMS, "mention": voices.NETWORKS}
    for event in events:
        assert record_key(event) == event[KEY_FIELD[topic_of(event)]]
        assert event["channel"] in channels.get(event["type"], Profile().channels)
        assert event["region"] in Profile().regions
    for cart in by_key(events, "cart-events").values():
        assert len({(e["channel"], e["region"]) for e in cart}) == 1
    kinds = Counter(e["type"] for e in events)
    for kind in ("item_removed", "checkout_started", "order_placed", *SURVEY_KINDS):
        assert kinds[kind] > 0, kind


def mood(text: str) -> str:
    """The mood of a generated text, from the generator's own lists."""
    for moods in voices.TEXTS.values():
        for name, texts in moods.items():
            if text in texts:
                return name
    raise AssertionError(f"not a generated text: {text!r}")


def test_what_customers_write_follows_their_answer() -> None:
    events = long_run()
    moods: dict[str, Counter[str]] = {"promoter": Counter(), "detractor": Counter()}
    stars: dict[str, Counter[str]] = {"4-5": Counter(), "1-2": Counter()}
    for e in events:
        if e["type"] == "nps" and "comment" in e and e["score"] not in (7, 8):
            moods["promoter" if e["score"] >= 9 else "detractor"][mood(e["comment"])] += 1
        if e["type"] == "review" and "rating" in e and e["rating"] != 3:
            stars["4-5" if e["rating"] >= 4 else "1-2"][mood(e["text"])] += 1
    for side, counts in (*moods.items(), *stars.items()):
        assert sum(counts.values()) >= 20, side
    assert moods["detractor"]["negative"] > 2 * moods["detractor"]["positive"]
    assert moods["promoter"]["positive"] > 2 * moods["promoter"]["negative"]
    assert stars["1-2"]["negative"] > 2 * stars["1-2"]["positive"]
    assert stars["4-5"]["positive"] > 2 * stars["4-5"]["negative"]
    languages = {
        language
        for e in events
        for language, texts in voices.TEXTS.items()
        if any(e.get(f) in m for f in ("comment", "text") for m in texts.values())
    }
    assert languages == set(voices.TEXTS)  # the four scored languages and the others
    replies = [e["emotions"] for e in events if e["type"] == "emotion"]
    assert replies and all(1 <= len(r) == len(set(r)) <= 5 for r in replies)


def test_generator_does_not_need_kafka() -> None:
    code = (
        "import sys, stream.tools.generate\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('aiokafka', 'faust', 'kafka')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_carts_hold_what_was_added_and_orders_add_up() -> None:
    upsold = 0
    for events in finished_carts():
        kinds = [e["type"] for e in events]
        assert "item_added" in kinds
        assert kinds.count("order_placed") <= 1
        if "cart_created" in kinds:
            assert kinds[0] == "cart_created"
        if "order_placed" in kinds:
            assert kinds[-2:] == ["checkout_started", "order_placed"]
        held: Counter[str] = Counter()
        cents: dict[str, int] = {}
        for event in events:
            if event["type"] == "item_added":
                held[event["sku"]] += event["quantity"]
                cents[event["sku"]] = round(event["unit_price"] * 100)
                upsold += event["upsell"]
            elif event["type"] == "item_removed":
                assert held[event["sku"]] >= event["quantity"]
                held[event["sku"]] -= event["quantity"]
            elif event["type"] == "order_placed":
                assert event["currency"] in ("EUR", "USD")
                assert event["order_id"]
                total = sum(units * cents[sku] for sku, units in held.items())
                assert round(event["amount"] * 100) == total > 0
        # 5-90 s apart when due within a visit (an event may wait a few slots for its turn to
        # be emitted, behind other entities' and users' events due then)
        for visit in visits_of(events):
            gaps = [seconds(b) - seconds(a) for a, b in pairwise(visit)]
            assert all(3 <= gap < 95 for gap in gaps)
    assert upsold > 0


def test_some_abandoned_carts_come_back_days_later_and_order_without_a_customer_id() -> None:
    events = twelve_days()
    end = seconds(events[-1])
    returned = 0
    for cart in by_key(events, "cart-events").values():
        visits = visits_of(cart)
        assert len(visits) <= 2
        if len(visits) == 1 or seconds(visits[1][0]) > end - CART_LIFE_S:
            continue
        returned += 1
        first, back = visits
        assert first[0]["type"] == "cart_created" and "customer_id" in first[0]
        assert "order_placed" not in {e["type"] for e in first}
        assert [e["type"] for e in back] == ["item_added", "checkout_started", "order_placed"]
        assert "customer_id" not in back[-1]
        assert 2 * 3600 - 5 < seconds(back[0]) - seconds(first[-1]) < 9 * 86400 + 5
    assert returned > 20


def test_some_solved_tickets_are_reopened_a_week_or_more_later() -> None:
    late = 0
    for ticket in by_key(twelve_days(), "tickets").values():
        kinds = [e["type"] for e in ticket]
        if "ticket_reopened" not in kinds:
            continue
        reopened = seconds(ticket[kinds.index("ticket_reopened")])
        solved = max(seconds(e) for e in ticket[: kinds.index("ticket_reopened")])
        if reopened - solved >= 7 * 86400:
            late += 1
            assert "ticket_closed" not in kinds[: kinds.index("ticket_reopened")]
            assert reopened - solved <= 12 * 86400
    assert late > 5


def test_about_70_percent_of_cart_sessions_are_abandoned() -> None:
    ordered = checkout_abandoned = abandoned = 0
    for cart in (visit for events in finished_carts() for visit in visits_of(events)):
        kinds = {e["type"] for e in cart}
        if "order_placed" in kinds:
            ordered += 1
        else:
            abandoned += 1
            checkout_abandoned += "checkout_started" in kinds
    sessions = ordered + abandoned
    assert sessions > 2000
    assert ordered / sessions == pytest.approx(0.3, abs=0.05)
    assert checkout_abandoned / abandoned == pytest.approx(0.3, abs=0.05)


def test_nps_is_about_plus_30() -> None:
    scores = [e["score"] for e in short_run() if e["type"] == "nps"]
    assert len(scores) > 2000
    promoters = sum(score >= 9 for score in scores)
    detractors = sum(score <= 6 for score in scores)
    assert 100 * (promoters - detractors) / len(scores) == pytest.approx(30, abs=8)


def test_ticket_resolution_median_follows_the_profile() -> None:
    events = long_run()
    end = seconds(events[-1])
    samples = []
    for ticket in by_key(events, "tickets").values():
        opened = ticket[0]
        assert opened["type"] == "ticket_opened"
        assert opened["team"] in LONG_PROFILE.teams
        assert opened["priority"] in ("low", "normal", "high", "urgent")
        solves = [e for e in ticket if e["type"] == "ticket_solved"]
        if solves:
            replies = [e for e in ticket if e["type"] == "agent_replied" and e["public"]]
            assert seconds(replies[0]) < seconds(solves[0])
        # only tickets opened long enough before the end that few are cut off; one still
        # unsolved counts as slower than any
        if seconds(opened) < end - 8 * LONG_PROFILE.resolution_median_s:
            samples.append(seconds(solves[0]) - seconds(opened) if solves else math.inf)
    assert len(samples) > 1000
    assert samples.count(math.inf) < 0.02 * len(samples)
    median = statistics.median(samples)
    assert median == pytest.approx(LONG_PROFILE.resolution_median_s, rel=0.25)


def test_reopened_tickets_are_solved_again() -> None:
    reopened = 0
    for ticket in by_key(long_run(), "tickets").values():
        kinds = [e["type"] for e in ticket]
        if "ticket_reopened" in kinds and "ticket_closed" in kinds:
            reopened += 1
            assert kinds.count("ticket_solved") == 2
            assert kinds.index("ticket_solved") < kinds.index("ticket_reopened")
    assert reopened > 0


def test_topic_shares_match_the_profile_over_a_long_run() -> None:
    """The profile's shares are of carts, tickets and replies; user sessions come on top."""
    events = long_run()
    shares = Counter(topic_of(e) for e in events)
    assert 0.05 < shares.pop("activity") / len(events) < 0.3
    events = tuple(e for e in events if topic_of(e) != "activity")
    expected = {
        "cart-events": LONG_PROFILE.cart_share,
        "tickets": LONG_PROFILE.ticket_share,
        "survey-replies": LONG_PROFILE.survey_share,
    }
    for topic, share in expected.items():
        assert shares[topic] / len(events) == pytest.approx(share, abs=0.03), topic


def test_topic_shares_can_be_chosen() -> None:
    only_surveys = Profile(cart_share=0, ticket_share=0, survey_share=1, activity_share=0)
    assert {topic_of(e) for e in generate(0, START, RATE, count=500, profile=only_surveys)} == {
        "survey-replies"
    }


def test_customers_return_for_weeks_stop_buying_or_stay_anonymous() -> None:
    """70 days of event time: regulars, churned customers and anonymous orders."""
    events = list(generate(3, START, 0.02, duration_s=70 * 86400))
    assert events == list(generate(3, START, 0.02, duration_s=70 * 86400))
    created_by = {e["cart_id"]: e.get("customer_id") for e in events if e["type"] == "cart_created"}
    orders: dict[str | None, list[float]] = defaultdict(list)
    where: Counter[str] = Counter()
    for event in events:
        if event["type"] != "order_placed":
            continue
        own, cart = event.get("customer_id"), created_by.get(event["cart_id"])
        where["order" if own else "cart_created" if cart else "anonymous"] += 1
        orders[own or cart].append(seconds(event))
    total = sum(where.values())
    assert total > 3000
    assert where["order"] / total > 0.2 and where["cart_created"] / total > 0.2
    assert 0.1 < where["anonymous"] / total < 0.3
    known = {c: times for c, times in orders.items() if c is not None}
    end = seconds(events[-1])
    regulars = [t for t in known.values() if len(t) >= 3 and t[-1] - t[0] > 14 * 86400]
    gone = [t for t in known.values() if len(t) >= 2 and end - t[-1] > 30 * 86400]
    assert len(regulars) > 50 and len(gone) > 50


def test_users_come_in_a_daily_and_weekly_rhythm_return_lapse_and_activate_or_not() -> None:
    """Twelve days of activity: sessions peak in the afternoon and on weekdays; users come back
    on other days, some stop coming; sign-ups reach value soon, late or never; sessions bounce
    or run long; features are those of the list."""
    events = [e for e in twelve_days() if topic_of(e) == "activity"]
    starts = [e for e in events if e["type"] == "session_started"]
    by_hour = Counter(int(seconds(e) // 3600 + START.hour) % 24 for e in starts)
    afternoon = sum(by_hour[h] for h in range(12, 17))
    night = sum(by_hour[h] for h in range(0, 5))
    assert afternoon > 2 * night
    weekday = Counter(
        (START + timedelta(seconds=seconds(e))).weekday() >= 5 for e in starts
    )  # 12 days from a Monday: 10 weekdays, 2 weekend days
    assert weekday[False] / 10 > 1.3 * weekday[True] / 2
    days_of: dict[str, set[int]] = defaultdict(set)
    for e in events:
        days_of[e["user_id"]].add(int(seconds(e) // 86400))
    assert sum(len(days) >= 3 for days in days_of.values()) > 10  # returning users
    end = seconds(events[-1])
    last_seen = {u: max(days) for u, days in days_of.items()}
    assert sum(day * 86400 < end - 4 * 86400 for day in last_seen.values()) > 5  # lapsed
    signed = {e["user_id"]: seconds(e) for e in events if e["type"] == "signed_up"}
    reached = {e["user_id"]: seconds(e) for e in events if e["type"] == "value_reached"}
    assert len(signed) > 20 and set(reached) <= set(signed)
    quick = sum(reached[u] - signed[u] < 7 * 86400 for u in reached)
    assert quick > 5 and len(signed) - quick > 5  # activated, and not (late or never)
    sessions: dict[str, list[str]] = defaultdict(list)
    for e in events:
        if "session_id" in e:
            sessions[e["session_id"]].append(e["type"])
    pages = [kinds.count("page_viewed") for kinds in sessions.values()]
    assert sum(n == 1 for n in pages) > 20 and sum(n >= 40 for n in pages) > 3
    ended = sum(kinds[-1] == "session_ended" for kinds in sessions.values())
    assert 0.4 < ended / len(sessions) < 0.9
    used = Counter(e["feature"] for e in events if e["type"] == "feature_used")
    assert set(used) <= set(FEATURES) and len(used) >= 5
    assert all(e["channel"] in Profile().channels for e in events)
