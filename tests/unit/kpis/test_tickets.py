"""Tickets kept and forgotten, and the backlog age as stream time passes."""

from __future__ import annotations

from tests.unit.feed import Feed

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


def test_solved_tickets_go_after_the_retention_and_closed_ones_after_grace() -> None:
    feed = Feed("tickets")
    feed("solved", "ticket_opened", 0)
    feed("solved", "ticket_solved", 10)
    feed("closed", "ticket_opened", 0)
    feed("closed", "ticket_closed", 10)
    feed("other", "customer_replied", 20)  # past grace (5 min) of the close
    assert "closed" not in feed.state.entities and "solved" in feed.state.entities
    feed("other", "customer_replied", 10 + 7 * DAY - 1)
    assert "solved" in feed.state.entities  # may still be reopened
    feed("other", "customer_replied", 10 + 7 * DAY)
    assert "solved" not in feed.state.entities  # the retention (7 d) has passed


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


def _bound(key: str) -> float:
    return float("inf") if key == "+Inf" else float(key)
