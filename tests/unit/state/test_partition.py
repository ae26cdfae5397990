"""KPI state of one partition: cart sessions, tickets, NPS, late and duplicate events, and
crash-consistent persistence (torn epochs roll back, replay re-applies exactly what is missing)."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from stream.state.changelog import value_before
from stream.state.facts import add_fact
from stream.state.partition import PartitionState
from tests.unit.feed import CONFIG, MIN, T0, Feed, rules_for


def test_facts_added_in_any_order_stay_sorted_as_insort_keeps_them() -> None:
    """A fact that sorts last is appended, any other inserted in its place; equal times are
    ordered by rank and event id, and a fact equal to the last goes after it, as insort puts it."""
    rng = random.Random(3)
    for _ in range(300):
        facts: list[tuple[Any, ...]] = []
        added = [(rng.randrange(5), rng.randrange(2), f"e{rng.randrange(4)}") for _ in range(12)]
        for fact in added:
            add_fact(facts, fact)
        assert facts == sorted(added)


def test_abandonment_only_after_the_inactivity_timeout() -> None:
    feed = Feed("cart-events")
    feed("c1", "item_added", 0, channel="web")
    feed("other", "cart_created", 30 - 0.001)  # stream time just before c1's timeout
    feed("other", "cart_created", 31.5)  # the bucket of the abandonment (min 30) has closed
    cart = feed.kpi("cart_abandonment")
    assert cart["overall"]["abandoned"] == 1
    assert cart["channel"] == {"web": {"abandoned": 1, "converted": 0, "ratio": 1.0}}


def test_no_abandonment_before_the_timeout() -> None:
    feed = Feed("cart-events")
    feed("c1", "item_added", 0)
    feed("other", "cart_created", 29.9)
    assert feed.kpi("cart_abandonment")["overall"]["abandoned"] == 0


def test_late_order_within_grace_turns_abandonment_into_conversion() -> None:
    feed = Feed("cart-events")
    feed("c1", "item_added", 0)
    feed("other", "cart_created", 32)
    assert feed.kpi("cart_abandonment")["overall"]["abandoned"] == 1
    assert feed("c1", "order_placed", 29, amount=10, currency="EUR") == "applied"
    feed("other", "cart_created", 33)
    assert feed.kpi("cart_abandonment")["overall"] == {"abandoned": 0, "converted": 1, "ratio": 0.0}


def test_order_beyond_grace_is_late_and_abandonment_stands() -> None:
    feed = Feed("cart-events")
    feed("c1", "item_added", 0)
    feed("other", "cart_created", 40)
    assert feed("c1", "order_placed", 29) == "late"
    assert feed.kpi("cart_abandonment")["overall"]["abandoned"] == 1
    assert feed.state.counts["late"] == 1


def test_activity_after_abandonment_starts_a_new_session() -> None:
    feed = Feed("cart-events")
    feed("c1", "item_added", 0)
    feed("c1", "item_added", 35)  # 35 min later: the first session was abandoned at 30
    feed("c1", "order_placed", 36)
    feed("other", "cart_created", 38)
    assert feed.kpi("cart_abandonment")["overall"] == {"abandoned": 1, "converted": 1, "ratio": 0.5}


def test_cart_without_items_has_no_outcome_and_checkout_is_tracked() -> None:
    feed = Feed("cart-events")
    feed("empty", "cart_created", 0)
    feed("c2", "item_added", 0)
    feed("c2", "checkout_started", 1)
    feed("c3", "item_added", 0)
    feed("c3", "checkout_started", 1)
    feed("c3", "order_placed", 2)
    feed("other", "cart_created", 40)
    assert feed.kpi("cart_abandonment")["overall"] == {"abandoned": 1, "converted": 1, "ratio": 0.5}
    assert feed.kpi("checkout_abandonment")["overall"] == {
        "abandoned": 1,
        "converted": 1,
        "ratio": 0.5,
    }


def test_order_before_its_last_item_in_arrival_order() -> None:
    feed = Feed("cart-events")
    feed("c1", "order_placed", 3)  # no item yet: no outcome
    feed("c1", "item_added", 2)  # arrives later, happened earlier
    feed("other", "cart_created", 5)
    assert feed.kpi("cart_abandonment")["overall"]["converted"] == 1


def test_duplicates_count_once() -> None:
    feed = Feed("survey-replies")
    assert feed("r1", "nps", 0, event_id="same", score=10) == "applied"
    assert feed("r1", "nps", 0, event_id="same", score=10) == "duplicate"
    feed("r2", "nps", 2, score=0)
    feed("later", "csat", 3.5, score=5)  # closes minute 2; CSAT does not count in NPS
    nps = feed.kpi("nps")["overall"]
    assert (nps["promoters"], nps["detractors"], nps["responses"]) == (1, 1, 2)
    assert feed.state.counts == {"applied": 3, "duplicate": 1, "late": 0, "dead_lettered": 0}


def test_nps_edges() -> None:
    feed = Feed("survey-replies")
    assert feed.kpi("nps")["overall"]["score"] is None  # no responses: no value, not 0
    for i in range(3):
        feed(f"r{i}", "nps", 0, score=i)
    feed("x", "nps", 2, score=10)  # closes minute 0, lands in minute 2 (open)
    assert feed.kpi("nps")["overall"]["score"] == -100.0
    for i in range(3):
        feed(f"p{i}", "nps", 3, score=9)
    feed("y", "nps", 10, score=5)
    window = feed.kpi("nps", "5m")["overall"]  # minutes 5..9: only minute... none
    assert window["score"] is None
    assert feed.kpi("nps")["overall"]["score"] == pytest.approx(100 * (4 - 3) / 7)


def test_resolution_sample_waits_for_the_opening() -> None:
    feed = Feed("tickets")
    feed("t1", "ticket_solved", 30)
    feed("t1", "ticket_opened", 27, team="billing", priority="high")  # arrives later, in grace
    feed("x", "ticket_opened", 32)
    res = feed.kpi("resolution_time")["overall"]
    assert res["count"] == 1 and res["sum_seconds"] == 180.0
    assert feed.kpi("resolution_time")["team"]["billing"]["count"] == 1


def test_reopened_ticket_solved_twice_measures_from_the_opening() -> None:
    feed = Feed("tickets")
    feed("t1", "ticket_opened", 0)
    feed("t1", "ticket_solved", 10)
    feed("t1", "ticket_reopened", 12)
    feed("t1", "ticket_solved", 20)
    feed("x", "ticket_opened", 25)
    res = feed.kpi("resolution_time")["overall"]
    assert res["count"] == 2
    assert res["sum_seconds"] == (10 + 20) * 60
    assert res["mean_seconds"] == 15 * 60
    assert res["buckets"]["900"] == 1 and res["buckets"]["1800"] == 2


# -- persistence -------------------------------------------------------------------------------


def random_log(seed: int, n: int) -> list[tuple[str, str, float, dict[str, Any]]]:
    """A cart log with out-of-order events, duplicates and late ones."""
    rng = random.Random(seed)
    log: list[tuple[str, str, float, dict[str, Any]]] = []
    for i in range(n):
        minute = i * 0.5 + rng.uniform(-7, 1)
        cart = f"c{rng.randrange(n // 6 + 1)}"
        kind = rng.choice(
            ["item_added", "item_added", "checkout_started", "order_placed", "cart_created"]
        )
        body = {"channel": rng.choice(["web", "app"]), "event_id": f"id{i}"}
        if kind == "cart_created" and rng.random() < 0.7:
            body["customer_id"] = f"k{rng.randrange(n // 10 + 1)}"  # remembered once left
        log.append((cart, kind, minute, body))
        if rng.random() < 0.1:
            log.append(log[-1])  # duplicate delivery
    return log


def apply_range(
    feed: Feed, log: list[tuple[str, str, float, dict[str, Any]]], start: int, end: int
) -> None:
    """Process log[start:end] as offsets start..end-1, skipping what the state already has."""
    for j in range(start, end):
        if j <= feed.state.offset:
            continue
        cart, kind, minute, extra = log[j]
        extra = dict(extra)
        feed.offset = j - 1
        feed(cart, kind, minute, extra.pop("event_id"), **extra)


def restore(rows: dict[bytes, bytes]) -> PartitionState:
    """Restore, then commit the empty epoch that records the rollback (as the processor does)."""
    state = PartitionState.restore("cart-events", 0, rules_for("cart-events"), CONFIG, rows.items())
    records, marker = state.flush()
    assert records == []
    write(rows, [marker])
    return state


def write(rows: dict[bytes, bytes], records: list[tuple[bytes, bytes | None]]) -> None:
    for key, value in records:
        if value is None:
            rows.pop(key, None)
        else:
            rows[key] = value


def test_each_record_holds_as_its_value_before_the_value_of_the_keys_last_record() -> None:
    """What the next epoch writes as a key's value before it is the bytes the last epoch wrote
    (reused, not encoded again): it must be that key's value, or a rollback restores another."""
    log = random_log(3, 240)
    feed = Feed("cart-events")
    last: dict[bytes, Any] = {}
    for start in range(0, len(log), 17):
        apply_range(feed, log, start, min(len(log), start + 17))
        records, _ = feed.state.flush()
        for key, raw in records:
            if raw is not None:  # else the tombstone of a key deleted the epoch before
                _, value, before = orjson.loads(raw)
                assert value_before(value, before) == last.get(key), key
                last[key] = value
    assert len(last) > 50


@pytest.mark.parametrize("seed", range(20))
def test_crash_at_any_point_then_replay_gives_the_same_state(seed: int) -> None:
    log = random_log(seed, 240)
    reference = Feed("cart-events")
    apply_range(reference, log, 0, len(log))

    rng = random.Random(seed)
    rows: dict[bytes, bytes] = {}
    feed = Feed("cart-events")
    position = crashes = 0
    while position < len(log):
        end = min(len(log), position + rng.randint(1, 40))
        apply_range(feed, log, position, end)
        records, marker = feed.state.flush()
        if rng.random() < 0.4:
            # SIGKILL while flushing: some records written, the marker not. The consumer restarts
            # from its committed offset, which is at most the last marker's offset + 1.
            crashes += 1
            write(rows, records[: rng.randint(0, len(records))])
            feed = Feed("cart-events")
            feed.state = restore(rows)
            position = rng.randint(0, feed.state.offset + 1)
        else:
            write(rows, records)
            write(rows, [marker])
            position = end
    assert crashes > 0
    assert feed.state.offset == len(log) - 1
    for window in ("5m", "1h"):
        for kpi in ("cart_abandonment", "checkout_abandonment"):
            assert feed.kpi(kpi, window) == reference.kpi(kpi, window)
    assert feed.state.counts == reference.state.counts
    # and the persisted state, restored once more, is the live state
    records, marker = feed.state.flush()
    write(rows, records)
    write(rows, [marker])
    again = restore(rows)
    assert {k: e.facts for k, e in again.entities.items()} == {
        k: e.facts for k, e in feed.state.entities.items()
    }
    assert dict(again.memories.items()) == dict(feed.state.memories.items())
    assert dict(reference.state.memories.items()) == dict(feed.state.memories.items())
    assert len(feed.state.memories) > 0
    assert again.buckets == feed.state.buckets


def test_a_solve_before_its_opening_is_a_zero_second_sample() -> None:
    """Regression: a 0 ms sample adds 0 to a sum series that does not exist yet."""
    feed = Feed("tickets")
    feed("t", "ticket_solved", 10)
    feed("t", "ticket_opened", 12)  # opened after the solve, in event time
    feed("x", "customer_replied", 14)
    res = feed.kpi("resolution_time")["overall"]
    assert (res["count"], res["sum_seconds"], res["buckets"]["60"]) == (1, 0.0, 1)


def test_a_sample_that_moves_leaves_the_windows_holding_both_buckets_alone() -> None:
    """A sample gone at one time and added at another (a distinct count's user moving on to its
    latest closed bucket) changes the two buckets and only the windows holding one of them."""
    state = PartitionState("survey-replies", 0, rules_for("survey-replies"), CONFIG)
    state.advance(T0 + 62 * MIN)  # minutes 0-61 closed: the 5 m window holds 57-61
    segments = (("", ""),)
    old = [(T0 + 50 * MIN, "replies", segments, 1)]
    state._add(old, 1)
    versions = {w.size_ms: w.version for w in state.windows}
    state._apply_difference(old, [(T0 + 55 * MIN, "replies", segments, 1)])
    assert {w.size_ms: w.version for w in state.windows} == versions  # both in 1 h, none in 5 m
    state._apply_difference(
        [(T0 + 55 * MIN, "replies", segments, 1)], [(T0 + 60 * MIN, "replies", segments, 1)]
    )
    moved = {w.size_ms for w in state.windows if w.version != versions[w.size_ms]}
    assert moved == {5 * MIN}  # entered the 5 m window; the 1 h window held both
    series = ("replies", "", "", -1)
    assert {w.size_ms: w.totals.get(series) for w in state.windows} == {5 * MIN: 1, 60 * MIN: 1}
    assert [k - T0 // MIN for k, b in state.buckets.items() if b.get(series)] == [60]
