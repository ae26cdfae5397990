"""Tickets kept and forgotten, and the backlog age as stream time passes."""

from __future__ import annotations

from stream.state.partition import PartitionState
from tests.unit.feed import CONFIG, Feed, rules_for

DAY = 24 * 60  # minutes


def age(feed: Feed) -> dict:
    return feed.document()["live"]["backlog_age"]["overall"]


def test_an_open_ticket_is_never_forgotten_and_ages_through_every_bin() -> None:
    feed = Feed("tickets")
    feed("old", "ticket_opened", 0, team="billing", priority="low")
    seen = []
    for minute in (30, 2 * 60, 12 * 60, 2 * DAY, 5 * DAY, 20 * DAY, 40 * DAY):
        feed("other", "customer_replied", minute)  # moves stream time only
        seen.append(age(feed)["buckets"])
        assert age(feed)["oldest_seconds"] == minute * 60
    assert [min((k for k, n in b.items() if n), key=_bound) for b in seen] == [
        "3600",
        "14400",
        "86400",
        "259200",
        "604800",
        "2592000",
        "+Inf",
    ]
    assert "old" in feed.state.entities  # 40 days idle, still there
    assert feed.document()["live"]["open_backlog"]["overall"]["tickets"] == 1
    feed("old", "ticket_solved", 40 * DAY + 1)
    assert age(feed)["tickets"] == 0 and age(feed)["oldest_seconds"] is None


def test_solved_tickets_are_remembered_for_the_retention_and_closed_ones_go_after_grace() -> None:
    feed = Feed("tickets")
    feed("solved", "ticket_opened", 0)
    feed("solved", "ticket_solved", 10)
    feed("closed", "ticket_opened", 0)
    feed("closed", "ticket_closed", 10)
    feed("other", "customer_replied", 16)  # 10's bucket ended at 11: 5 min of grace and 1 ms left
    assert {"solved", "closed"} <= set(feed.state.entities)
    feed("other", "customer_replied", 16.001)  # past grace: any event of theirs now is late
    assert "closed" not in feed.state.entities and feed.state.memories.get("closed") is None
    # the solved ticket's facts gave way to a memory of it (it may still be reopened)
    assert "solved" not in feed.state.entities and feed.state.memories.get("solved") is not None
    feed("other", "customer_replied", 10 + 7 * DAY - 0.001)
    assert feed.state.memories.get("solved") is not None
    feed("other", "customer_replied", 10 + 7 * DAY)  # the retention (7 d) after its last event
    feed("other", "customer_replied", 10 + 7 * DAY + 60)  # an hour later: swept
    assert feed.state.memories.get("solved") is None and len(feed.state.memories) == 0


def _reopened_after_days(days: int, restart: bool = False) -> Feed:
    """A ticket opened at 0 with two public replies, solved, then reopened `days` later (7 d
    retention), replied to and solved again; stream time moved on between by other tickets."""
    feed = Feed("tickets")
    feed("t", "ticket_opened", 0, team="billing", priority="high")
    feed("t", "agent_replied", 5, public=True)
    feed("t", "agent_replied", 6, public=True)
    feed("t", "ticket_solved", 10)
    for minute in range(60, days * DAY, 12 * 60):  # other tickets move stream time on
        feed(f"o{minute}", "customer_replied", minute)
    if restart:
        feed.state = _restarted(feed.state)
    reopened = 10 + days * DAY
    feed("t", "ticket_reopened", reopened)
    feed("t", "agent_replied", reopened + 1, public=True)
    feed("t", "ticket_solved", reopened + 2)
    feed("o", "customer_replied", reopened + 30)  # closes the minute buckets of the above
    return feed


def test_a_reopen_within_the_retention_is_measured_from_the_opening() -> None:
    for restart in (False, True):
        feed = _reopened_after_days(3, restart)
        assert feed.kpi("reopen_rate")["overall"] == {"reopens": 1, "solves": 1, "ratio": 1.0}
        resolution = feed.kpi("resolution_time")["overall"]
        # the full time from the opening again: 3 days, 12 minutes
        assert resolution["count"] == 1 and resolution["sum_seconds"] == 3 * 86400 + 12 * 60
        # the reply after the reopen is not a first response; the solve is not a first contact
        assert feed.kpi("first_response_time")["overall"]["count"] == 0
        fcr = feed.kpi("first_contact_resolution")["overall"]
        assert fcr == {"first_contact": 0, "solves": 1, "ratio": 0.0}
        assert feed.kpi("reopen_rate")["team"]["billing"]["reopens"] == 1


def test_a_reopen_after_the_retention_is_a_ticket_never_seen_opened() -> None:
    feed = _reopened_after_days(8)
    # its opening is forgotten: neither the reopen nor the solve after it can be measured
    assert feed.kpi("reopen_rate")["overall"] == {"reopens": 0, "solves": 0, "ratio": None}
    assert feed.kpi("resolution_time")["overall"]["count"] == 0


def test_a_reopened_ticket_is_in_the_backlog_with_its_first_opening_age() -> None:
    feed = Feed("tickets")
    feed("t", "ticket_opened", 0, team="billing")
    feed("t", "ticket_solved", 10)
    feed("o", "customer_replied", 2 * DAY)
    feed("t", "ticket_reopened", 2 * DAY + 1)
    assert feed.document()["live"]["open_backlog"]["team"]["billing"]["tickets"] == 1
    assert age(feed)["oldest_seconds"] == (2 * DAY + 1) * 60


def test_the_oldest_follows_solves_and_late_openings() -> None:
    feed = Feed("tickets")
    feed("a", "ticket_opened", 60, team="billing")
    feed("b", "ticket_opened", 120, team="shipping")
    assert age(feed)["oldest_seconds"] == 60 * 60
    feed("c", "ticket_opened", 118, team="shipping")  # late, within grace, older than b
    team = feed.document()["live"]["backlog_age"]["team"]
    assert team["shipping"]["oldest_seconds"] == 2 * 60 and team["billing"]["tickets"] == 1
    feed("a", "ticket_solved", 121)
    assert age(feed)["oldest_seconds"] == 3 * 60  # c, opened at 118, is now the oldest
    assert age(feed)["mean_seconds"] == (3 * 60 + 1 * 60) / 2


def _restarted(state: PartitionState) -> PartitionState:
    """The state as a restarted worker rebuilds it from its changelog."""
    records, marker = state.flush()
    rows = {key: value for key, value in [*records, marker] if value is not None}
    return PartitionState.restore(state.topic, 0, rules_for(state.topic), CONFIG, rows.items())


def _bound(key: str) -> float:
    return float("inf") if key == "+Inf" else float(key)


def test_a_duration_adds_its_square_in_whole_seconds_halves_rounded_up() -> None:
    """1.499 s counts as 1 s and 1.5 s as 2 s: squares 1 + 4; a 30-day resolution adds
    (30 d in s)^2, far from the 2^63 a square of milliseconds would reach in a 30 d window."""
    feed = Feed("tickets")
    for key, seconds in (("c", 30 * 86400), ("a", 1.499), ("b", 1.5)):
        feed(key, "ticket_opened", 1 - seconds / 60)
        feed(key, "ticket_solved", 1)
    feed("other", "customer_replied", 3)
    resolution = feed.kpi("resolution_time")["overall"]
    assert resolution["count"] == 3
    assert resolution["sum_of_squares"] == 1 + 4 + (30 * 86400) ** 2
