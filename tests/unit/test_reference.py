"""The offline reference follows docs/semantics.md: tiny hand-made logs, checked by hand."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from stream.config.settings import Settings
from stream.contract.events import Event, decode
from stream.contract.schemas import topic_of
from stream.kpis.carts import CartRules
from stream.kpis.customers import CUSTOMERS_TOPIC, CustomerRules, customer_kpis, order_event
from stream.publish.entries import partition_entry
from stream.state.partition import PartitionState, StateConfig
from stream.tools.generate import generate
from stream.wiring import document_shape, state_config, topic_rules
from tests.reference import (
    Record,
    Rules,
    compare_snapshots,
    expected_customers,
    expected_snapshot,
    quantile_ms,
    window_name,
)
from tests.unit.feed import CONFIG, texts

SEC = 1000
MIN = 60 * SEC
T0 = 1_800_000_000_000 - 1_800_000_000_000 % (60 * MIN)  # a whole hour (2027-01-15T08:00Z)
NOW = T0 + 24 * 60 * MIN  # wall clock well after every event below
KEY = {"cart-events": "cart_id", "tickets": "ticket_id", "survey-replies": "response_id"}
ALL = {"cart-events": 1, "tickets": 1, "survey-replies": 1}


def iso(ms: int) -> str:
    """RFC 3339 with milliseconds and Z."""
    moment = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def event(topic: str, kind: str, minute: float, key: str, eid: str, **fields: Any) -> bytes:
    """One event of `topic` at T0 + `minute`, encoded as a producer would."""
    body = {
        "event_id": eid,
        "type": kind,
        "occurred_at": iso(T0 + round(minute * MIN)),
        KEY[topic]: key,
        **fields,
    }
    return json.dumps(body).encode()


class Log:
    """Builds the records of one topic-partition, numbering offsets in call order."""

    def __init__(self, topic: str, partition: int = 0) -> None:
        self.topic, self.partition = topic, partition
        self.records: list[Record] = []

    def raw(self, value: bytes) -> Log:
        self.records.append(Record(self.topic, self.partition, len(self.records), value))
        return self

    def add(self, kind: str, minute: float, key: str, **fields: Any) -> Log:
        eid = fields.pop("eid", f"e{len(self.records)}")
        return self.raw(event(self.topic, kind, minute, key, eid, **fields))


def snapshot(*logs: Log, rules: Rules | None = None, now_ms: int = NOW) -> dict[str, Any]:
    records = [r for log in logs for r in log.records]
    partitions = dict(ALL)
    for log in logs:
        partitions[log.topic] = max(partitions[log.topic], log.partition + 1)
    return expected_snapshot(
        reversed(records),  # any order: the reference sorts by topic, partition, offset
        rules or Rules(),
        now_ms=now_ms,
        partitions=partitions,
    )


def counts(doc: dict[str, Any], topic: str) -> dict[str, int]:
    return doc["events"][topic]


def kpi(doc: dict[str, Any], name: str, window: str = "1h", part: str = "overall") -> Any:
    return doc["windows"][window][name][part]


def nps(minute: float, score: int, key: str, log: Log, **fields: Any) -> Log:
    return log.add("nps", minute, key, score=score, **fields)


# --- windows and lateness ----------------------------------------------------------------------


def test_window_holds_buckets_ending_in_s_minus_w_to_s() -> None:
    log = Log("survey-replies")
    nps(4 + 59 / 60, 0, "r1", log)  # bucket [4, 5) ends at S - 5m: out of 5m, in 1h
    nps(5, 9, "r2", log)  # bucket [5, 6): in both
    nps(9.5, 7, "r3", log)  # bucket [9, 10) ends exactly at S: in both
    nps(10, 10, "r4", log)  # S = 10:00; bucket [10, 11) still in progress: in none
    doc = snapshot(log)
    assert counts(doc, "survey-replies")["applied"] == 4
    assert doc["valid_at"] == doc["latest"] == iso(T0 + 10 * MIN)
    five = kpi(doc, "nps", "5m")
    assert (five["promoters"], five["passives"], five["detractors"]) == (1, 1, 0)
    hour = kpi(doc, "nps", "1h")
    assert (hour["promoters"], hour["passives"], hour["detractors"]) == (1, 1, 1)
    assert list(doc["windows"]) == ["5m", "1h", "24h", "7d", "30d"]
    assert all(w["complete"] for w in doc["windows"].values())


def test_long_windows_hold_the_hourly_buckets_ending_in_s_minus_w_to_s() -> None:
    """7 d and 30 d advance by the long step (1 h): a sample counts once its hour has ended."""
    day = 24 * 60
    log = Log("survey-replies")
    nps(-30 * day - 1, 0, "r1", log)  # its hour ends exactly at S - 30d: in no window
    nps(-30 * day + 30, 0, "r2", log)  # its hour ends after S - 30d: in 30d
    nps(-7 * day - 1, 9, "r3", log)  # its hour ends at S - 7d: out of 7d, in 30d
    nps(-7 * day + 59, 9, "r4", log)  # its hour ends at S - 7d + 1h: in 7d and 30d
    nps(-30, 9, "r5", log)  # the hour [-1h, 0) has ended: in 7d and 30d
    nps(0.5, 7, "r6", log)  # S = 0:30; the hour [0, 1h) is still open: in no long window
    doc = snapshot(log)
    week, month = kpi(doc, "nps", "7d"), kpi(doc, "nps", "30d")
    assert (week["promoters"], week["detractors"], week["passives"]) == (2, 0, 0)  # r4, r5
    assert (month["promoters"], month["detractors"], month["passives"]) == (3, 1, 0)
    assert kpi(doc, "nps", "5m")["responses"] == 0  # r6's minute is still open


def test_backlog_age_is_measured_at_the_partition_stream_time() -> None:
    log = Log("tickets")
    log.add("ticket_opened", 0, "t1", team="billing", priority="high")
    log.add("ticket_opened", 50, "t2", team="billing", priority="low")
    log.add("ticket_opened", 100, "t3", team="shipping", priority="low")
    log.add("ticket_solved", 110, "t3")
    log.add("ticket_opened", 5 * 24 * 60, "t4", team="shipping", priority="low")  # S = 5 days
    doc = snapshot(log, now_ms=T0 + 6 * 86400 * SEC)
    age = doc["live"]["backlog_age"]
    day = 86400
    assert age["overall"]["tickets"] == 3  # t3 was solved
    assert age["overall"]["oldest_seconds"] == 5 * day
    assert age["overall"]["buckets"] == {
        "3600": 1,  # t4, just opened
        "14400": 1,
        "86400": 1,
        "259200": 1,
        "604800": 3,  # t1 (5 d) and t2 (5 d - 50 min)
        "2592000": 3,
        "+Inf": 3,
    }
    assert age["overall"]["mean_seconds"] == pytest.approx((5 * day + 5 * day - 3000) / 3)
    billing = age["team"]["billing"]
    assert (billing["tickets"], billing["oldest_seconds"]) == (2, 5 * day)
    assert age["priority"]["low"]["oldest_seconds"] == 5 * day - 50 * 60
    assert set(age) == {"overall", "team", "priority"}


def test_grace_boundary() -> None:
    log = Log("survey-replies")
    nps(10, 9, "r1", log)  # S = 10:00, S - grace = 5:00
    nps(4, 9, "r2", log)  # bucket [4, 5) ended exactly grace before S: applied
    nps(3 + 59 / 60, 9, "r3", log)  # bucket [3, 4) ended one step earlier: late
    doc = snapshot(log)
    assert counts(doc, "survey-replies") == {
        "applied": 2,
        "duplicate": 0,
        "late": 1,
        "dead_lettered": 0,
    }
    assert kpi(doc, "nps")["responses"] == 1  # r1's bucket is still in progress


def test_stream_time_moves_only_with_applied_events() -> None:
    log = Log("survey-replies")
    nps(20, 9, "r1", log)
    nps(2, 9, "r2", log)  # late: does not lower S
    log.raw(b"{not json")  # dead-lettered: no S
    doc = snapshot(log)
    assert doc["latest"] == iso(T0 + 20 * MIN)


def test_duplicate_counted_once() -> None:
    log = Log("survey-replies")
    nps(1, 9, "r1", log, eid="x")
    nps(1, 9, "r1", log, eid="x")  # producer retry
    nps(2, 0, "r2", log, eid="x")  # same event_id, other record key: a distinct event
    nps(10, 9, "r3", log)
    doc = snapshot(log)
    assert counts(doc, "survey-replies")["applied"] == 3
    assert counts(doc, "survey-replies")["duplicate"] == 1
    hour = kpi(doc, "nps")
    assert (hour["promoters"], hour["detractors"]) == (1, 1)


def test_late_duplicate_counts_late() -> None:
    log = Log("survey-replies")
    nps(3, 9, "r1", log, eid="x")
    nps(10, 9, "r2", log)  # S = 10:00: a copy of x (bucket ends at 4:00 < 5:00) is late
    nps(3, 9, "r1", log, eid="x")
    doc = snapshot(log)
    assert counts(doc, "survey-replies") == {
        "applied": 2,
        "duplicate": 0,
        "late": 1,
        "dead_lettered": 0,
    }


def test_partitions_are_merged_each_at_its_own_stream_time() -> None:
    a, b = Log("survey-replies", 0), Log("survey-replies", 1)
    nps(1, 9, "r1", a)
    nps(2, 9, "r2", a)  # S_a = 2:00: only r1's bucket has ended
    nps(1, 0, "r3", b)
    nps(30, 0, "r4", b)  # S_b = 30:00: r3 in the 1h window, out of the 5m window
    doc = snapshot(a, b)
    assert doc["valid_at"] == iso(T0 + 2 * MIN)
    assert doc["latest"] == iso(T0 + 30 * MIN)
    assert doc["partitions"]["survey-replies"] == 2
    assert kpi(doc, "nps")["promoters"] == 1
    assert kpi(doc, "nps")["detractors"] == 1
    assert kpi(doc, "nps", "5m")["detractors"] == 0
    assert kpi(doc, "nps", "5m")["promoters"] == 1  # bucket [1, 2) ends in (-3, 2]
    assert counts(doc, "survey-replies")["applied"] == 4


def test_empty_log() -> None:
    doc = snapshot()
    assert doc["valid_at"] is None and doc["latest"] is None
    assert kpi(doc, "cart_abandonment") == {"abandoned": 0, "converted": 0, "ratio": None}
    assert kpi(doc, "average_order_value") == {}
    assert doc["live"]["open_backlog"]["overall"] == {"tickets": 0}
    assert doc["segments"] == {
        "kept": {},
        "folded_events": {"cart-events": {}, "tickets": {}, "survey-replies": {}},
    }
    assert all(sum(c.values()) == 0 for c in doc["events"].values())


# --- carts -------------------------------------------------------------------------------------


def clock(log: Log, minute: float) -> Log:
    """Moves the cart partition's stream time with a cart that has no items and no outcome."""
    return log.add("checkout_started", minute, f"clock-{minute}")


def test_abandonment_counted_at_last_activity_plus_timeout() -> None:
    def carts(now_minute: float) -> dict[str, Any]:
        log = Log("cart-events").add("item_added", 0, "c1", channel="web")
        return snapshot(clock(log, now_minute))

    # Abandoned at 30:00, in bucket [30, 31): not in a window before S reaches 31:00.
    assert kpi(carts(30 + 59 / 60), "cart_abandonment")["abandoned"] == 0
    doc = carts(31)
    assert kpi(doc, "cart_abandonment", "5m") == {"abandoned": 1, "converted": 0, "ratio": 1.0}
    assert doc["windows"]["5m"]["cart_abandonment"]["channel"] == {
        "web": {"abandoned": 1, "converted": 0, "ratio": 1.0}
    }
    # Created at 0:00: out of the 5m window, in the 1h one.
    assert kpi(doc, "conversion", "5m")["created"] == 0
    assert kpi(doc, "conversion")["created"] == 1


def test_activity_just_before_timeout_keeps_the_session_open() -> None:
    log = Log("cart-events").add("item_added", 0, "c1")
    log.add("item_added", 29 + 59 / 60, "c1")  # gap < timeout: same session
    clock(log, 59)  # S = 59:00 < 29:59.999 + 30:00
    doc = snapshot(log)
    assert kpi(doc, "cart_abandonment")["abandoned"] == 0
    assert kpi(doc, "conversion")["created"] == 1


def test_late_order_within_grace_turns_abandonment_into_conversion() -> None:
    log = clock(Log("cart-events").add("item_added", 0, "c1"), 33)
    assert kpi(snapshot(log), "cart_abandonment") == {
        "abandoned": 1,
        "converted": 0,
        "ratio": 1.0,
    }
    log.add("order_placed", 29, "c1", amount=10, currency="EUR")  # bucket ends 30:00 ≥ 28:00
    doc = snapshot(log)
    assert counts(doc, "cart-events")["late"] == 0
    assert kpi(doc, "cart_abandonment") == {"abandoned": 0, "converted": 1, "ratio": 0.0}
    assert kpi(doc, "conversion") == {"converted": 1, "created": 1, "ratio": 1.0}


def test_gap_of_timeout_splits_sessions() -> None:
    log = Log("cart-events").add("item_added", 0, "c1", region="eu")
    log.add("item_added", 30, "c1", region="us")  # gap = timeout: a new session
    log.add("order_placed", 31, "c1")
    clock(log, 40)
    doc = snapshot(log)
    assert kpi(doc, "cart_abandonment") == {"abandoned": 1, "converted": 1, "ratio": 0.5}
    assert kpi(doc, "conversion") == {"converted": 1, "created": 2, "ratio": 0.5}
    assert kpi(doc, "cart_abandonment", part="region") == {
        "eu": {"abandoned": 1, "converted": 0, "ratio": 1.0},
        "us": {"abandoned": 0, "converted": 1, "ratio": 0.0},
    }


def test_order_ends_its_session() -> None:
    log = Log("cart-events").add("item_added", 0, "c1")
    log.add("order_placed", 1, "c1")
    log.add("item_added", 2, "c1")  # a new session, abandoned at 32:00
    clock(log, 33)
    doc = snapshot(log)
    assert kpi(doc, "cart_abandonment") == {"abandoned": 1, "converted": 1, "ratio": 0.5}
    assert kpi(doc, "conversion")["created"] == 2


def test_order_sorts_after_other_events_at_the_same_time() -> None:
    log = Log("cart-events").add("order_placed", 5, "c1", eid="a")
    log.add("item_added", 5, "c1", eid="b", upsell=True)  # same t: still before the order
    clock(log, 10)
    doc = snapshot(log)
    assert kpi(doc, "cart_abandonment") == {"abandoned": 0, "converted": 1, "ratio": 0.0}
    assert kpi(doc, "upsell") == {"upsold": 1, "orders": 1, "ratio": 1.0}


def test_cart_without_items_has_no_outcome() -> None:
    log = Log("cart-events").add("cart_created", 0, "c1")
    log.add("checkout_started", 1, "c1")
    log.add("cart_created", 2, "c2")
    log.add("order_placed", 3, "c2", amount=5, currency="EUR")
    clock(log, 40)
    doc = snapshot(log)
    assert kpi(doc, "cart_abandonment") == {"abandoned": 0, "converted": 0, "ratio": None}
    assert kpi(doc, "checkout_abandonment")["abandoned"] == 0
    assert kpi(doc, "conversion") == {"converted": 0, "created": 2, "ratio": 0.0}
    assert kpi(doc, "upsell") == {"upsold": 0, "orders": 1, "ratio": 0.0}  # every order counts


def test_removals_do_not_uncount_items() -> None:
    log = Log("cart-events").add("item_added", 0, "c1").add("item_removed", 1, "c1")
    clock(log, 40)
    assert kpi(snapshot(log), "cart_abandonment")["abandoned"] == 1


def test_checkout_abandonment() -> None:
    log = Log("cart-events")
    log.add("item_added", 0, "c1").add("checkout_started", 1, "c1")  # abandoned at 31:00
    log.add("item_added", 0, "c2").add("order_placed", 2, "c2")  # converted, no checkout
    log.add("item_added", 0, "c3").add("checkout_started", 1, "c3").add("order_placed", 3, "c3")
    log.add("item_added", 0, "c4")  # abandoned, no checkout
    clock(log, 40)
    doc = snapshot(log)
    assert kpi(doc, "cart_abandonment") == {"abandoned": 2, "converted": 2, "ratio": 0.5}
    assert kpi(doc, "checkout_abandonment") == {"abandoned": 1, "converted": 1, "ratio": 0.5}


def test_session_segment_is_the_earliest_event_having_the_field() -> None:
    log = Log("cart-events")
    log.add("item_added", 2, "c1", channel="app")
    log.add("cart_created", 1, "c1", region="eu")  # earlier, but without a channel
    log.add("order_placed", 3, "c1", channel="web", region="us")
    clock(log, 10)
    doc = snapshot(log)
    seg = doc["windows"]["1h"]["cart_abandonment"]
    assert list(seg["channel"]) == ["app"]
    assert list(seg["region"]) == ["eu"]


def test_order_value_per_currency_in_exact_millionths() -> None:
    log = Log("cart-events")
    log.add("order_placed", 1, "c1", amount=0.1, currency="EUR")
    log.add("order_placed", 1, "c2", amount=0.2, currency="EUR")
    log.add("order_placed", 2, "c3", amount=7, currency="USD")
    log.add("order_placed", 2, "c4", amount=1)  # no currency: unknown
    log.add("order_placed", 2, "c5")  # no amount: an order, but no order value
    clock(log, 10)
    aov = kpi(snapshot(log), "average_order_value")
    assert aov == {
        "EUR": {"orders": 2, "amount": 0.3, "average": 0.15},
        "USD": {"orders": 1, "amount": 7.0, "average": 7.0},
        "unknown": {"orders": 1, "amount": 1.0, "average": 1.0},
    }


# --- tickets -----------------------------------------------------------------------------------


def test_resolution_with_solve_arriving_before_open() -> None:
    log = Log("tickets")
    log.add("ticket_solved", 8, "t1")
    log.add("ticket_opened", 5, "t1", team="billing", priority="high")  # within grace of 8:00
    log.add("ticket_solved", 9, "t2")  # its opening never arrives: no sample
    log.add("ticket_closed", 10, "clock")
    doc = snapshot(log)
    assert counts(doc, "tickets")["applied"] == 4
    res = kpi(doc, "resolution_time")
    assert res["count"] == 1
    assert res["sum_seconds"] == 180.0
    assert res["mean_seconds"] == res["p50_seconds"] == res["p90_seconds"] == 180.0
    assert res["buckets"]["60"] == 0 and res["buckets"]["300"] == 1 and res["buckets"]["+Inf"] == 1
    assert list(doc["windows"]["1h"]["resolution_time"]["team"]) == ["billing"]
    assert list(doc["windows"]["1h"]["resolution_time"]["channel"]) == ["unknown"]
    assert kpi(doc, "reopen_rate") == {"reopens": 0, "solves": 1, "ratio": 0.0}


def test_reopened_ticket_solved_twice_measures_from_the_opening() -> None:
    log = Log("tickets")
    log.add("ticket_opened", 0, "t1")
    log.add("ticket_solved", 10, "t1")
    log.add("ticket_reopened", 20, "t1")
    log.add("ticket_solved", 30, "t1")
    log.add("ticket_closed", 40, "clock")
    doc = snapshot(log)
    res = kpi(doc, "resolution_time")
    assert (res["count"], res["sum_seconds"], res["mean_seconds"]) == (2, 2400.0, 1200.0)
    assert (res["p50_seconds"], res["p90_seconds"]) == (600.0, 1800.0)
    assert res["buckets"] == {
        "60": 0,
        "300": 0,
        "900": 1,
        "1800": 2,
        "3600": 2,
        "7200": 2,
        "14400": 2,
        "28800": 2,
        "86400": 2,
        "172800": 2,
        "604800": 2,
        "+Inf": 2,
    }
    assert kpi(doc, "reopen_rate") == {"reopens": 1, "solves": 2, "ratio": 0.5}
    # The first solve was first-contact; the one after the reopen is not.
    assert kpi(doc, "first_contact_resolution") == {"first_contact": 1, "solves": 2, "ratio": 0.5}


DAY_MIN = 24 * 60


def _reopened_ten_days_later(rules: Rules) -> dict[str, Any]:
    """A ticket solved, then reopened 10 days later, replied to and solved again; stream time
    moved on by another ticket every day."""
    log = Log("tickets").add("ticket_opened", 0, "t1").add("agent_replied", 5, "t1")
    log.add("ticket_solved", 10, "t1")
    for day in range(1, 11):
        log.add("customer_replied", day * DAY_MIN, "clock")
    reopened = 10 * DAY_MIN + 10
    log.add("ticket_reopened", reopened, "t1").add("agent_replied", reopened + 1, "t1")
    log.add("ticket_solved", reopened + 2, "t1").add("customer_replied", reopened + 120, "clock")
    return snapshot(log, rules=rules, now_ms=T0 + 11 * DAY_MIN * MIN)


def test_a_solved_ticket_is_remembered_for_the_longest_window_plus_grace() -> None:
    doc = _reopened_ten_days_later(Rules())  # retention: 30 d + 5 m
    assert kpi(doc, "reopen_rate", "30d") == {"reopens": 1, "solves": 2, "ratio": 0.5}
    resolution = kpi(doc, "resolution_time", "30d")
    assert resolution["count"] == 2
    assert resolution["sum_seconds"] == 10 * 60 + (10 * DAY_MIN + 12) * 60
    # the reply after the reopen is not a first response
    assert kpi(doc, "first_response_time", "30d")["count"] == 1
    assert kpi(doc, "first_contact_resolution", "30d")["first_contact"] == 1


def test_a_reopen_after_the_ticket_retention_finds_no_opening() -> None:
    doc = _reopened_ten_days_later(Rules(ticket_retention_s=7 * 86400))
    assert kpi(doc, "reopen_rate", "30d") == {"reopens": 0, "solves": 1, "ratio": 0.0}
    assert kpi(doc, "first_response_time", "30d")["count"] == 1


def _cart_back_after(days: float, rules: Rules) -> dict[str, Any]:
    """A known shopper's cart left at minute 1, ordered `days` later without a customer id."""
    log = Log("cart-events").add("cart_created", 0, "c1", customer_id="alice")
    log.add("item_added", 1, "c1", sku="s", quantity=1, unit_price=5.0)
    for day in range(1, math.ceil(days) + 1):
        log.add("item_added", day * DAY_MIN - 60, f"clock{day}", sku="s", quantity=1)
    back = days * DAY_MIN
    log.add("item_added", back, "c1", sku="s", quantity=1, unit_price=5.0)
    log.add("order_placed", back + 1, "c1", amount=10.0, currency="EUR")
    log.add("item_added", back + 180, "clock", sku="s", quantity=1)  # the order is decided
    now = T0 + round((back + 3 * DAY_MIN) * MIN)
    return expected_customers(log.records, rules, now_ms=now, partitions=1)


def test_a_carts_customer_is_known_across_sessions_for_the_cart_retention() -> None:
    known = _cart_back_after(2, Rules())  # 7 d
    assert (known["active"], known["orders"], known["anonymous_orders"]) == (1, 1, 0)
    forgotten = _cart_back_after(8, Rules())
    assert (forgotten["active"], forgotten["anonymous_orders"]) == (0, 1)
    shorter = _cart_back_after(2, Rules(cart_retention_s=86400))
    assert (shorter["active"], shorter["anonymous_orders"]) == (0, 1)


def test_solve_before_opening_in_event_time_gives_zero() -> None:
    log = Log("tickets").add("ticket_solved", 4, "t1").add("ticket_opened", 5, "t1")
    log.add("ticket_closed", 10, "clock")
    res = kpi(snapshot(log), "resolution_time")
    assert (res["count"], res["sum_seconds"], res["p50_seconds"]) == (1, 0.0, 0.0)


def test_first_response_and_first_contact_resolution() -> None:
    log = Log("tickets").add("ticket_opened", 0, "t1", priority="urgent")
    log.add("agent_replied", 1, "t1", public=False)  # private: not a response
    log.add("agent_replied", 2, "t1")  # the first public reply: 120 s
    log.add("agent_replied", 3, "t1")
    log.add("ticket_solved", 4, "t1")  # two public replies before it: not first contact
    log.add("ticket_opened", 0, "t2").add("agent_replied", 1, "t2").add("ticket_solved", 2, "t2")
    log.add("ticket_closed", 10, "clock")
    doc = snapshot(log)
    frt = kpi(doc, "first_response_time")
    assert (frt["count"], frt["sum_seconds"], frt["p50_seconds"]) == (2, 180.0, 60.0)
    assert kpi(doc, "first_contact_resolution") == {"first_contact": 1, "solves": 2, "ratio": 0.5}
    assert list(doc["windows"]["1h"]["first_response_time"]["priority"]) == ["unknown", "urgent"]


def test_open_backlog() -> None:
    log = Log("tickets").add("ticket_opened", 0, "t1", team="billing")
    log.add("ticket_opened", 0, "t2").add("ticket_solved", 1, "t2")
    log.add("ticket_opened", 0, "t3").add("ticket_solved", 1, "t3").add("ticket_reopened", 2, "t3")
    log.add("customer_replied", 1, "t4")  # no opening: not in the backlog
    doc = snapshot(log)
    backlog = doc["live"]["open_backlog"]
    assert backlog["overall"] == {"tickets": 2}
    assert backlog["team"] == {"billing": {"tickets": 1}, "unknown": {"tickets": 1}}


# --- surveys -----------------------------------------------------------------------------------


def test_nps_without_responses_has_no_score() -> None:
    log = Log("survey-replies").add("csat", 1, "r1", score=5).add("ces", 1, "r2", score=4)
    nps(10, 9, "clock", log)  # in a bucket still in progress
    doc = snapshot(log)
    assert kpi(doc, "nps") == {
        "promoters": 0,
        "passives": 0,
        "detractors": 0,
        "responses": 0,
        "score": None,
        "margin_of_error": None,
    }
    assert kpi(doc, "nps", part="channel") == {}
    assert kpi(doc, "csat") == {"satisfied": 1, "responses": 1, "score": 100.0}
    assert kpi(doc, "ces") == {
        "responses": 1,
        "score_sum": 4,
        "mean": 4.0,
        "easy": 0,
        "easy_ratio": 0.0,
        "score_sum_of_squares": 16,
    }


@pytest.mark.parametrize(("scores", "expected"), [((0, 6, 3), -100.0), ((9, 10), 100.0)])
def test_nps_extremes(scores: tuple[int, ...], expected: float) -> None:
    log = Log("survey-replies")
    for i, score in enumerate(scores):
        nps(1, score, f"r{i}", log)
    nps(10, 7, "clock", log)
    assert kpi(snapshot(log), "nps")["score"] == expected


def test_nps_categories_and_margin() -> None:
    log = Log("survey-replies")
    for i, score in enumerate([10, 9, 9, 10, 9, 8, 7, 7, 6, 0]):
        nps(1, score, f"r{i}", log, channel="email")
    nps(10, 7, "clock", log)
    value = kpi(snapshot(log), "nps")
    assert (value["promoters"], value["passives"], value["detractors"]) == (5, 3, 2)
    assert value["responses"] == 10 and value["score"] == 30.0
    # adjusted Wald, written out independently: n' = 13, p = 5.75/13, d = 2.75/13
    p, d = 5.75 / 13, 2.75 / 13
    margin = 196 * math.sqrt((p * (1 - p) + d * (1 - d) + 2 * p * d) / 13)
    assert value["margin_of_error"] == pytest.approx(margin, rel=1e-12)


# --- segments ----------------------------------------------------------------------------------


def test_first_n_values_per_partition_then_other() -> None:
    log = Log("survey-replies")
    nps(1, 9, "r0", log)  # no channel: unknown, uses up no place
    nps(1, 9, "r1", log, channel="unknown")  # the producer's own `unknown`: no place either
    nps(1, 9, "r2", log, channel="web")
    nps(1, 9, "r3", log, channel="app")
    nps(1, 9, "r4", log, channel="email")  # third distinct value: other
    nps(1, 9, "r5", log, channel="web")  # admitted values keep their name
    nps(10, 0, "clock", log, channel="chat")  # other again
    doc = snapshot(log, rules=Rules(max_segment_values=2))
    channels = kpi(doc, "nps", part="channel")
    assert {k: v["promoters"] for k, v in channels.items()} == {
        "app": 1,
        "other": 1,
        "unknown": 2,
        "web": 2,
    }
    assert doc["segments"]["kept"]["channel"] == ["app", "web"]
    assert doc["segments"]["folded_events"]["survey-replies"] == {"channel": 2}


def test_segment_name_is_decided_when_the_event_is_applied() -> None:
    log = Log("cart-events")
    log.add("item_added", 5, "c1", channel="web")  # admits web (N = 1)
    log.add("item_added", 1, "c2", channel="app")  # app: other, although earlier in time
    log.add("order_placed", 6, "c1").add("order_placed", 6, "c2")
    clock(log, 10)
    doc = snapshot(log, rules=Rules(max_segment_values=1))
    assert set(kpi(doc, "cart_abandonment", part="channel")) == {"web", "other"}


def test_fleet_wide_bound_keeps_the_values_seen_earliest() -> None:
    a, b = Log("survey-replies", 0), Log("survey-replies", 1)
    nps(5, 9, "r1", a, channel="web")  # partition 0 first sees web at 5:00
    nps(1, 9, "r2", b, channel="app")  # partition 1 first sees app at 1:00
    nps(10, 9, "c1", a)
    nps(10, 9, "c2", b)
    doc = snapshot(a, b, rules=Rules(max_segment_values=1))
    assert doc["segments"]["kept"] == {"channel": ["app"]}
    assert set(kpi(doc, "nps", part="channel")) == {"app", "other"}
    # Merged into other by the fleet-wide bound, not folded by a partition.
    assert doc["segments"]["folded_events"]["survey-replies"] == {}


def test_allow_list() -> None:
    log = Log("tickets")
    log.add("ticket_opened", 0, "t1", team="billing").add("ticket_solved", 1, "t1")
    log.add("ticket_opened", 0, "t2", team="sales").add("ticket_solved", 1, "t2")
    log.add("ticket_closed", 10, "clock")
    doc = snapshot(log, rules=Rules(allow={"team": frozenset({"billing"})}))
    assert set(kpi(doc, "resolution_time", part="team")) == {"billing", "other"}
    assert "team" not in doc["segments"]["kept"]
    assert doc["segments"]["folded_events"]["tickets"] == {"team": 1}


# --- quantiles and window names ----------------------------------------------------------------


def test_quantiles_are_nearest_rank() -> None:
    assert quantile_ms([], 0.5) is None
    assert quantile_ms([7], 0.9) == 7
    assert quantile_ms([3, 1, 2], 0.5) == 2  # rank ceil(1.5) = 2
    assert quantile_ms(list(range(1, 11)), 0.5) == 5  # rank 5, not an interpolation
    assert quantile_ms(list(range(1, 11)), 0.9) == 9  # rank ceil(0.9 · 10) = 9, exactly
    assert quantile_ms(list(range(1, 21)), 0.9) == 18


def test_quantiles_in_the_snapshot() -> None:
    log = Log("tickets")
    for i in range(1, 11):
        log.add("ticket_opened", 0, f"t{i}")  # all openings first: none of them late
    for i in range(1, 11):
        log.add("ticket_solved", i, f"t{i}")
    log.add("ticket_closed", 20, "clock")
    res = kpi(snapshot(log), "resolution_time")
    assert (res["p50_seconds"], res["p90_seconds"]) == (300.0, 540.0)
    assert res["mean_seconds"] == 330.0


def test_window_names() -> None:
    sizes = (300, 3600, 86400, 90, 7200, 7 * 86400, 172800, 90000)
    assert [window_name(s) for s in sizes] == ["5m", "1h", "24h", "90s", "2h", "7d", "2d", "25h"]


# --- dead letters ------------------------------------------------------------------------------


def valid(minute: float, key: str, **fields: Any) -> dict[str, Any]:
    body = {"event_id": key, "type": "nps", "occurred_at": iso(T0 + round(minute * MIN))}
    return {**body, "response_id": key, "score": 9, **fields}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"{not json", id="bad-json"),
        pytest.param(b"\xff\xfe{}", id="invalid-utf8"),
        pytest.param(json.dumps(valid(1, "r")).encode("utf-16"), id="utf16"),
        pytest.param(b"[1, 2]", id="not-an-object"),
        pytest.param(json.dumps({**valid(1, "r"), "extra": math.nan}).encode(), id="nan"),
        pytest.param(json.dumps({**valid(1, "r"), "type": "item_added"}).encode(), id="type"),
        pytest.param(json.dumps({**valid(1, "r"), "type": ["nps"]}).encode(), id="type-list"),
        pytest.param(json.dumps({**valid(1, "r"), "score": 11}).encode(), id="score"),
        pytest.param(json.dumps({**valid(1, "r"), "schema_version": 2}).encode(), id="version"),
        pytest.param(
            json.dumps({**valid(1, "r"), "occurred_at": "2027-13-15T08:01:00Z"}).encode(),
            id="impossible-date",
        ),
        pytest.param(
            json.dumps({**valid(1, "r"), "occurred_at": "2027-01-15T08:01:00"}).encode(),
            id="no-offset",
        ),
        pytest.param(
            json.dumps({k: v for k, v in valid(1, "r").items() if k != "score"}).encode(),
            id="missing-score",
        ),
        pytest.param(json.dumps(valid(24 * 60 + 61, "r")).encode(), id="future"),
        pytest.param(
            json.dumps({**valid(1, "r"), "comment": "x" * 70_000}).encode(), id="oversize"
        ),
    ],
)
def test_dead_letters(value: bytes) -> None:
    log = Log("survey-replies").raw(value).raw(json.dumps(valid(2, "ok")).encode())
    doc = snapshot(log)
    assert counts(doc, "survey-replies") == {
        "applied": 1,
        "duplicate": 0,
        "late": 0,
        "dead_lettered": 1,
    }
    assert doc["latest"] == iso(T0 + 2 * MIN)


def test_dead_letter_limits_are_inclusive() -> None:
    future = json.dumps(valid(24 * 60 + 60, "r1")).encode()  # exactly max_future ahead: valid
    sized = json.dumps({**valid(1, "r2"), "comment": ""}).encode()
    sized = json.dumps({**valid(1, "r2"), "comment": "x" * (1000 - len(sized))}).encode()
    assert len(sized) == 1000
    log = Log("survey-replies").raw(sized).raw(future)
    doc = snapshot(log, rules=Rules(max_event_bytes=1000))
    assert counts(doc, "survey-replies")["applied"] == 2
    version_one = json.dumps({**valid(1, "r3"), "schema_version": 1}).encode()
    assert (
        counts(snapshot(Log("survey-replies").raw(version_one)), "survey-replies")["applied"] == 1
    )


# --- comparison --------------------------------------------------------------------------------


def sample_doc() -> dict[str, Any]:
    log = Log("tickets")
    for i in range(1, 4):
        log.add("ticket_opened", 0, f"t{i}").add("ticket_solved", i, f"t{i}")
    log.add("ticket_closed", 20, "clock")
    return snapshot(log)


def test_compare_equal_and_extra_top_level_keys() -> None:
    expected = sample_doc()
    actual = json.loads(json.dumps({**expected, "complete": True, "snapshot_store": "up"}))
    assert compare_snapshots(actual, expected) == []


def test_compare_reports_differences() -> None:
    expected = sample_doc()
    actual = json.loads(json.dumps(expected))
    res = actual["windows"]["1h"]["resolution_time"]["overall"]
    res["p50_seconds"] *= 1.009  # within the sketch's 1 %
    res["p90_seconds"] *= 1.02  # beyond it
    res["mean_seconds"] += 1e-6
    actual["windows"]["1h"]["nps"]["channel"]["web"] = {"responses": 1}
    actual["events"]["tickets"]["late"] = 1
    del actual["windows"]["5m"]["csat"]
    differences = compare_snapshots(actual, expected)
    assert len(differences) == 5, differences
    assert any(d.startswith("windows.1h.resolution_time.overall.p90_seconds:") for d in differences)
    assert any(
        d.startswith("windows.1h.resolution_time.overall.mean_seconds:") for d in differences
    )
    assert any(d.startswith("windows.1h.nps.channel.web:") for d in differences)
    assert "events.tickets.late: actual 1 vs expected 0" in differences
    assert any(d.startswith("windows.5m.csat: actual missing") for d in differences)


def test_compare_null_and_missing_snapshot() -> None:
    expected = sample_doc()
    actual = json.loads(json.dumps(expected))
    actual["windows"]["1h"]["nps"]["overall"]["score"] = 0.0  # expected None
    assert compare_snapshots(actual, expected) == [
        "windows.1h.nps.overall.score: actual 0.0 vs expected None"
    ]
    assert compare_snapshots({}, expected)


# --- months: what is remembered after its facts are gone ------------------------------------------


@pytest.mark.parametrize("topic", ["tickets", "cart-events", "survey-replies", "activity"])
def test_forty_days_through_the_state_equal_the_reference(topic: str) -> None:
    """40 generated days (tickets reopened a week or more after their solve, carts ordered days
    after they were left), with duplicates, through one partition state with the default
    windows and retention, restarted from its changelog half-way: every window equals the
    reference's."""
    start = datetime.fromtimestamp(T0 // 1000, tz=UTC)
    events = [e for e in generate(9, start, 0.004, duration_s=40 * 86400) if topic_of(e) == topic]
    values = [json.dumps(e).encode() for e in events]
    values += values[200:4000:11]  # delivered again
    records = [Record(topic, 0, offset, v) for offset, v in enumerate(values)]
    now = T0 + 41 * 86400 * SEC
    settings = Settings.load({"config": "none"}, environ={})
    rules = next(r for r in topic_rules(settings) if r.topic == topic)
    state = PartitionState(topic, 0, rules, state_config(settings))
    rows: dict[bytes, bytes] = {}
    for record in records:
        result = decode(
            record.value,
            topic,
            max_bytes=65536,
            now_ms=now,
            max_future_ms=3600 * SEC,
            customer_secret=b"k" * 32,
            sentiment=texts(),
        )
        assert isinstance(result, Event)
        state.apply(result, record.offset)
        if record.offset == len(records) // 2:  # a restart: the state as its changelog has it
            written, marker = state.flush()
            rows.update((k, v) for k, v in [*written, marker] if v is not None)
            state = PartitionState.restore(topic, 0, rules, state_config(settings), rows.items())
    # what the month needs of forgotten entities is remembered (a survey reply needs nothing)
    assert len(state.memories) > 0 or topic == "survey-replies"
    actual = document_shape(settings, {topic: 1}).document([partition_entry(state)])
    expected = expected_snapshot(records, Rules(), now_ms=now, partitions={topic: 1})
    if topic == "tickets":
        assert expected["windows"]["30d"]["reopen_rate"]["overall"]["reopens"] > 50
    if topic == "activity":  # the month of users: DAU, MAU, stickiness, activation
        month = expected["windows"]["30d"]
        assert month["active_users"]["overall"]["users"] > 10
        assert month["activation_rate"]["overall"]["signups"] > 3
        assert expected["live"]["stickiness"]["overall"]["daily"] > 1
        assert actual["live"]["stickiness"] == expected["live"]["stickiness"]
    else:
        tested = [c["overall"]["z"] for c in expected["change"].values() if c["overall"]["z"]]
        assert tested  # the change figures compare windows that hold samples
    parts = ("windows", "change", "events", *(("live",) if topic == "tickets" else ()))
    assert compare_snapshots({p: actual[p] for p in parts}, {p: expected[p] for p in parts}) == []


# --- customers ---------------------------------------------------------------------------------


def test_customer_kpis_of_the_rules_equal_the_reference() -> None:
    """A generated 70-day log through the cart state and the customer rules (each order
    forwarded twice, some records delivered twice) gives the reference's values."""
    start = datetime.fromtimestamp(T0 // 1000, tz=UTC)
    events = [e for e in generate(5, start, 0.01, duration_s=70 * 86400) if "cart_id" in e]
    values = [json.dumps(e).encode() for e in events]
    values += values[100:3000:7]  # delivered again: duplicates on the cart side
    records = [Record("cart-events", 0, offset, v) for offset, v in enumerate(values)]
    now = T0 + 71 * 86400 * SEC
    rules = Rules()
    expected = expected_customers(records, rules, now_ms=now, partitions=1)

    carts = PartitionState(
        "cart-events",
        0,
        CartRules(timeout_ms=30 * MIN, step_ms=MIN, grace_ms=5 * MIN),
        replace(CONFIG, collect_decided=True),
    )
    customers = PartitionState(
        CUSTOMERS_TOPIC,
        0,
        CustomerRules(period_ms=30 * 86400 * SEC, step_ms=60 * MIN, grace_ms=5 * MIN),
        StateConfig(
            step_ms=60 * MIN,
            grace_ms=5 * MIN,
            windows_ms=(),
            max_segment_values=20,
            watermark_sources=1,
        ),
    )
    forwarded = iter(range(10**9))  # offsets on the customers topic
    secret = b"k" * 32
    for record in records:
        result = decode(
            record.value,
            "cart-events",
            max_bytes=65536,
            now_ms=now,
            max_future_ms=3600 * SEC,
            customer_secret=secret,
        )
        assert isinstance(result, Event)
        carts.apply(result, record.offset)
        for order in carts.take_decided():
            customers.apply(order_event(order), next(forwarded))
            customers.apply(order_event(order), next(forwarded))  # forwarded again: once
    assert carts.stream_time is not None
    customers.watermark(0, carts.rules.watermark(carts.stream_time), next(forwarded))
    components = {metric: n for (metric, _, _, _), n in customers.gauges.items()}
    actual = customer_kpis(components, rules.max_lifetime_periods)

    assert customers.counts["late"] == 0
    assert customers.stream_time is not None
    assert expected["at"] == customers.stream_time - customers.stream_time % (60 * MIN)
    assert expected["active"] > 100 and expected["previous"] > 100
    assert 0 < expected["retained"] < expected["previous"]
    assert expected["anonymous_orders"] > 0 and expected["repeat_customers"] > 0
    for key, value in actual.items():
        if key == "lifetime_value":
            assert value.keys() == expected[key].keys()
            for currency, cell in value.items():
                for name, number in cell.items():
                    assert number == pytest.approx(expected[key][currency][name], rel=1e-9)
        else:
            assert value == pytest.approx(expected[key], rel=1e-9), key
