"""bench.engagement splits an activity state's cost by what each event does, classed from the
log alone: a first event in a new minute moves on, a session's start or end and a sign-up or
value reached are outcomes, the rest are quiet; and the split accounts for every event."""

from __future__ import annotations

from typing import Any

from bench.engagement import MOVES_ON, OUTCOME, QUIET, Floor, event_classes, state_costs
from stream.contract.events import Event

MIN = 60_000
T0 = 1_800_000_000_000 - 1_800_000_000_000 % MIN
TIMEOUT = 30 * MIN


def _event(n: int, user: str, kind: str, t: int, **body: Any) -> Event:
    body = {"type": kind, "channel": "web", "region": "eu", **body}
    return Event("activity", user, f"e{n}", kind, t, body)


def test_events_are_classed_from_the_log() -> None:
    log = [
        _event(0, "a", "session_started", T0, session_id="s"),  # a's first: moves on
        _event(1, "a", "page_viewed", T0 + 1_000, session_id="s", page="/"),  # quiet
        _event(2, "b", "page_viewed", T0 + 2_000, session_id="t", page="/"),  # b's first
        _event(3, "a", "feature_used", T0 + 3_000, feature="search"),  # no session: quiet
        _event(4, "a", "value_reached", T0 + 4_000, milestone="m"),  # outcome
        _event(5, "a", "page_viewed", T0 + MIN, session_id="s", page="/"),  # a new minute
        _event(6, "a", "page_viewed", T0 + MIN + 1, session_id="u", page="/"),  # a new id
        _event(7, "a", "session_ended", T0 + MIN + 2, session_id="u"),  # its end
        _event(8, "a", "page_viewed", T0 + MIN + 3, session_id="u", page="/"),  # after its end
        _event(9, "b", "page_viewed", T0 + 4_000, session_id="t", page="/"),  # quiet
        _event(10, "a", "page_viewed", T0 + 5_000, session_id="s", page="/"),  # late: moves
    ]
    classes = event_classes(log, MIN, TIMEOUT)
    assert classes == [
        MOVES_ON,
        QUIET,
        MOVES_ON,
        QUIET,
        OUTCOME,
        MOVES_ON,
        OUTCOME,
        OUTCOME,
        OUTCOME,
        QUIET,
        MOVES_ON,
    ]


def test_a_session_gap_of_the_timeout_starts_another() -> None:
    log = [
        _event(0, "a", "page_viewed", T0, session_id="s", page="/"),
        _event(1, "a", "page_viewed", T0 + TIMEOUT - MIN, session_id="s", page="/"),
        _event(2, "a", "page_viewed", T0 + TIMEOUT - MIN + 1, session_id="s", page="/"),
        _event(3, "a", "page_viewed", T0 + 2 * TIMEOUT - MIN + 1, session_id="s", page="/"),
        _event(4, "a", "page_viewed", T0 + 2 * TIMEOUT - MIN + 2, session_id="s", page="/"),
    ]
    assert event_classes(log, 10 * TIMEOUT, TIMEOUT) == [MOVES_ON, QUIET, QUIET, OUTCOME, QUIET]


def test_the_split_counts_every_event_once() -> None:
    log = [
        _event(n, f"u{n % 7}", "page_viewed", T0 + n * 9_000, session_id="s", page="/")
        for n in range(200)
    ]
    classes = event_classes(log, MIN, TIMEOUT)
    costs = state_costs("activity", log, classes)
    assert {name: n for name, (n, _) in costs.classes.items()} == {
        name: classes.count(name) for name in set(classes)
    }
    assert all(us > 0 for _, us in costs.classes.values())
    parts = sum(n * us for n, us in costs.classes.values()) / len(log)
    assert parts + costs.timers_us + costs.flush_us <= costs.mean_us
    assert costs.line().startswith(f"{costs.mean_us:.0f} = ")


def test_the_floor_counts_a_user_once_per_bucket_and_a_session_once() -> None:
    """bench.engagement.Floor, the least work an activity event needs, does that work: a
    sample in the bucket of a user's first event in it (held in the bucket before), at each
    step; a duplicate ignored; a session counted at its end or once it timed out."""
    hour = 60 * MIN
    floor = Floor((MIN, hour), TIMEOUT)
    log = [
        _event(0, "a", "session_started", T0, session_id="s"),
        _event(1, "a", "page_viewed", T0 + 1_000, session_id="s", page="/"),
        _event(2, "a", "page_viewed", T0 + MIN, session_id="s", page="/"),
        _event(2, "a", "page_viewed", T0 + MIN, session_id="s", page="/"),  # a duplicate
        _event(3, "a", "session_ended", T0 + MIN + 1, session_id="s"),
        _event(4, "b", "page_viewed", T0 + 40 * MIN, session_id="t", page="/"),
        _event(5, "b", "page_viewed", T0 + 71 * MIN, session_id="t", page="/"),  # t timed out
    ]
    for event in log:
        floor.apply(event)
    keys = [("active", "", ""), ("active", "channel", "web"), ("active", "region", "eu")]
    k, h = T0 // MIN, T0 // hour
    assert floor.buckets[MIN, k] == floor.buckets[MIN, k + 1] == dict.fromkeys(keys, 1)
    assert floor.held[MIN, k + 1] == {(k, key): 1 for key in keys}
    assert floor.buckets[hour, h] == dict.fromkeys(keys, 2)  # a and b, in the same hour
    assert floor.held[hour, h + 1] == {(h, key): 1 for key in keys}  # b moved on
    assert floor.sessions == 2
