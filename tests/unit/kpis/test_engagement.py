"""Engagement rules through a real partition state: distinct active users per window, sessions,
bounce, pages, time to value, activation, feature adoption; late and duplicate events; a user
forgotten and remembered; and a generated log equal to the offline reference, across a restart
from the changelog."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest
from prometheus_client import generate_latest

from stream.config.settings import Settings
from stream.contract.events import Event, decode, parse_timestamp_ms
from stream.kpis import engagement
from stream.kpis.engagement import EngagementRules
from stream.kpis.user_reading import Reading
from stream.kpis.users import Summary, pack_memory, unpack_memory
from stream.publish.document import format_time, render, window_renderer
from stream.publish.entries import partition_entry
from stream.publish.merge import merge
from stream.publish.prometheus import _Families
from stream.state.facts import Contribution, Fact
from stream.state.partition import PartitionState, StateConfig
from stream.wiring import document_shape, engagement_rules, state_config
from tests.reference import Record, Rules, compare_snapshots, expected_snapshot

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
T0 = 1_800_000_000_000 - 1_800_000_000_000 % DAY  # midnight
CONFIG = StateConfig(
    step_ms=MIN,
    grace_ms=5 * MIN,
    windows_ms=(5 * MIN, HOUR, DAY, 7 * DAY),
    max_segment_values=20,
    long_step_ms=HOUR,
)
SECRET = b"k" * 32


def rules(period_days: int = 7, longest_days: int = 7) -> EngagementRules:
    """The rules for windows up to `longest_days`: a user is remembered that long, a long step
    and grace (a shorter memory would count a user back after it twice)."""
    return EngagementRules(
        step_ms=MIN,
        grace_ms=5 * MIN,
        long_step_ms=HOUR,
        timeout_ms=30 * MIN,
        period_ms=period_days * DAY,
        retention_ms=longest_days * DAY + HOUR + 5 * MIN,
    )


class Users:
    """Applies activity events (minutes after T0) to one partition state."""

    def __init__(self, period_days: int = 7) -> None:
        self.state = PartitionState("activity", 0, rules(period_days), CONFIG)
        self.n = 0

    def __call__(
        self, user: str, kind: str, minute: float, event_id: str | None = None, **body: Any
    ) -> str:
        self.n += 1
        event = Event(
            "activity",
            user,
            event_id or f"e{self.n}",
            kind,
            T0 + round(minute * MIN),
            {"type": kind, "user_id": user, **body},
        )
        return self.state.apply(event, self.n)

    def at(self, minute: float) -> None:
        self.state.advance(T0 + round(minute * MIN))

    def doc(self) -> dict[str, Any]:
        return render(
            merge([partition_entry(self.state)]),
            CONFIG.windows_ms,
            {"activity": 1},
            max_values=20,
        )

    def kpi(self, name: str, window: str, part: str = "overall") -> Any:
        doc = self.doc()["windows"][window][name]
        return doc[part] if part == "overall" else doc[part[0]][part[1]]


def active(users: Users, window: str, part: str = "overall") -> int:
    return users.kpi("active_users", window, part)["users"]  # type: ignore[no-any-return]


def test_distinct_users_per_window_whatever_their_number_of_events() -> None:
    users = Users()
    for minute in range(0, 50, 2):
        users("a", "page_viewed", minute, session_id="s", channel="web")
        if minute in (10, 11):
            users("b", "page_viewed", minute + 0.5, session_id="t", channel="app")
            users("b", "page_viewed", minute + 1, session_id="t", channel="web")
    users.at(50)
    assert active(users, "1h") == 2
    assert active(users, "1h", ("channel", "web")) == 2
    assert active(users, "1h", ("channel", "app")) == 1
    assert active(users, "5m") == 1  # only a, at minutes 46 and 48
    users.at(75)  # b's last event (minute 11) left the hour: buckets ending in (15, 75]
    assert active(users, "1h") == 1
    assert active(users, "24h") == 2


def test_a_user_active_only_in_the_open_bucket_counts_once_it_closes() -> None:
    """Windows end at the last closed bucket: a user whose only event of the last five minutes
    is in the bucket still open is in the 5 m window once that bucket closes, not before; its
    earlier activity stays counted in the meantime."""
    users = Users()
    users("a", "page_viewed", 0, session_id="s")
    users("a", "page_viewed", 10.5, session_id="s")
    assert active(users, "1h") == 1  # through minute 0's bucket
    assert active(users, "5m") == 0
    users.at(11)
    assert active(users, "5m") == 1
    assert active(users, "1h") == 1
    users.at(70.5)  # minute 0 left the hour; minute 10 is still in it
    assert active(users, "1h") == 1


def test_long_windows_count_each_user_once_across_hours_and_days() -> None:
    users = Users()
    users("b", "signed_up", 30)
    for day in range(3):
        for hour in (9, 13, 20):
            users("a", "page_viewed", day * 1440 + hour * 60, session_id=f"{day}{hour}")
    users.at(3 * 1440)
    assert active(users, "7d") == 2
    assert active(users, "24h") == 1
    users.at(30 + 7 * 1440 + 60)  # b's hour left the 7 d window
    assert active(users, "7d") == 1


def test_sessions_end_at_session_ended_or_by_timeout_with_duration_bounce_and_pages() -> None:
    users = Users()
    users("a", "session_started", 0, session_id="s1", channel="web")
    users("a", "page_viewed", 1, session_id="s1")
    users("a", "page_viewed", 3, session_id="s1")
    users("a", "session_ended", 4, session_id="s1")
    users("b", "page_viewed", 2, session_id="x", channel="app")  # a bounce, ended by timeout
    users("c", "page_viewed", 5, session_id="y")
    users("c", "feature_used", 6, session_id="y", feature="export")  # one page but a feature
    users.at(40)
    duration = users.kpi("session_duration", "1h")
    assert duration["count"] == 3
    assert duration["sum_seconds"] == 4 * 60 + 0 + 60
    bounce = users.kpi("bounce_rate", "1h")
    assert (bounce["bounced"], bounce["sessions"]) == (1, 3)
    pages = users.kpi("pages_per_session", "1h")
    assert (pages["pages"], pages["sessions"], pages["mean"]) == (4, 3, 4 / 3)
    assert users.kpi("bounce_rate", "1h", ("channel", "app"))["bounced"] == 1
    assert users.kpi("session_duration", "1h", ("channel", "unknown"))["count"] == 1


def test_a_late_page_view_inside_grace_joins_its_ended_session() -> None:
    users = Users()
    users("a", "session_started", 0, session_id="s")
    users("a", "session_ended", 10, session_id="s")
    users("a", "page_viewed", 5, session_id="s")  # out of order, inside grace
    users("a", "page_viewed", 6, session_id="s")
    users.at(20)
    assert users.kpi("bounce_rate", "1h")["bounced"] == 0
    assert users.kpi("pages_per_session", "1h")["pages"] == 2
    assert users.kpi("session_duration", "1h")["sum_seconds"] == 600


def test_late_and_duplicate_events_change_nothing() -> None:
    users = Users()
    assert users("a", "page_viewed", 30, event_id="p1", session_id="s") == "applied"
    assert users("a", "page_viewed", 30, event_id="p1", session_id="s") == "duplicate"
    assert users("b", "page_viewed", 20, session_id="t") == "late"  # bucket ended 10 m before
    users.at(31)
    assert active(users, "1h") == 1
    assert users.kpi("pages_per_session", "1h")["pages"] == 0  # the session is still open
    assert users.state.counts == {"applied": 1, "duplicate": 1, "late": 1, "dead_lettered": 0}


def test_time_to_value_and_activation_judged_at_signup_plus_period() -> None:
    users = Users(period_days=1)
    users("a", "signed_up", 0, channel="web")
    users("b", "value_reached", 10)  # never signed up: no sample
    users("c", "value_reached", 59)  # before its sign-up: not value
    users("c", "signed_up", 60)
    users("a", "value_reached", 120, channel="app")  # 2 h later: activated
    users.at(1450)
    ttv = users.kpi("time_to_value", "24h")
    assert (ttv["count"], ttv["sum_seconds"]) == (1, 7200)
    assert users.kpi("time_to_value", "24h", ("channel", "app"))["count"] == 1
    activation = users.kpi("activation_rate", "24h")
    assert (activation["activated"], activation["signups"]) == (1, 1)  # c: judged at 1500
    assert users.kpi("activation_rate", "24h", ("channel", "web"))["activated"] == 1
    users("c", "value_reached", 60 + 1441)  # after the period: a sample, not activated
    users.at(1510)
    activation = users.kpi("activation_rate", "24h")
    assert (activation["activated"], activation["signups"]) == (1, 2)
    assert users.kpi("time_to_value", "24h")["count"] == 2
    assert users.kpi("new_users", "7d")["users"] == 2


def test_feature_adoption_is_a_features_users_over_all_active_users() -> None:
    users = Users()
    users("a", "feature_used", 1, feature="export")
    users("a", "feature_used", 2, feature="export", session_id="s")
    users("b", "feature_used", 3, feature="share")
    users("c", "page_viewed", 4, session_id="t")
    users("d", "feature_used", 5, feature="export")
    users.at(10)
    doc = users.doc()["windows"]["1h"]["feature_adoption"]
    assert doc["feature"]["export"] == {"users": 2, "active": 4, "ratio": 0.5}
    assert doc["feature"]["share"] == {"users": 1, "active": 4, "ratio": 0.25}
    assert doc["overall"] == {"users": 3, "active": 4, "ratio": 0.75}


def test_a_user_is_forgotten_into_a_small_memory_and_counted_once_when_back() -> None:
    users = Users()
    users("a", "signed_up", 0, channel="web")
    users("a", "page_viewed", 1, session_id="s", channel="web")
    users("m", "page_viewed", 2, session_id="s", channel="web")
    users.at(3 * 60)
    assert "a" in users.state.entities  # its activation is still open: a timer needs it
    assert (
        users.state.entities["a"].facts[0][3] == "S" and len(users.state.entities["a"].facts) == 1
    )
    memory = users.state.memories.get("m")
    assert "m" not in users.state.entities and memory is not None and len(memory) < 64
    users("a", "page_viewed", 2 * 1440, session_id="t", channel="web")
    users.at(2 * 1440 + 61)
    assert active(users, "7d") == 2  # a and m, each once
    assert active(users, "7d", ("channel", "web")) == 2
    assert active(users, "24h") == 1
    assert users.kpi("activation_rate", "7d")["signups"] == 0  # judged at 7 d, not yet
    users.at(7 * 1440 + 10)
    assert users.kpi("activation_rate", "24h") == {"activated": 0, "signups": 1, "ratio": 0.0}


def test_a_user_unseen_past_the_retention_is_new_again() -> None:
    users = Users(period_days=1)
    users("a", "signed_up", 0)
    users("a", "page_viewed", 1, session_id="s")
    users.at(8 * 1440 + 70)  # retention: 7 d + 1 h + 5 m after minute 1
    assert len(users.state.memories) == 0 and not users.state.entities
    users("a", "value_reached", 8 * 1440 + 80)  # its sign-up is forgotten: no sample
    users.at(8 * 1440 + 121)  # the hour of that event closed: in the 7 d window
    assert users.kpi("time_to_value", "7d")["count"] == 0
    assert active(users, "7d") == 1


# --- against the reference ------------------------------------------------------------------


def stamp(minute: float) -> str:
    """The event time `minute` minutes after T0, as producers write it."""
    return str(format_time(T0 + round(minute * MIN)))


def activity_log(seed: int, users: int, days: int) -> list[dict[str, Any]]:
    """Users with sessions on some days (pages, features, sometimes an end), sign-ups that
    reach value or not, features used outside sessions; arrival up to 12 minutes behind event
    time, a few an hour (late), one in ten delivered twice."""
    rng = random.Random(seed)
    timed: list[tuple[float, dict[str, Any]]] = []
    features = ["export", "share", "search", "report"]
    for u in range(users):
        mine: list[tuple[float, dict[str, Any]]] = []
        user, channel = f"user-{u}", rng.choice(["web", "app", None])
        region = rng.choice(["eu", "us"])
        start = rng.uniform(0, days * 1440 * 0.6)
        if rng.random() < 0.5:
            mine.append((start, {"type": "signed_up"}))
            if rng.random() < 0.6:
                reached = start + rng.expovariate(1 / 3000)
                if reached < days * 1440:
                    mine.append((reached, {"type": "value_reached"}))
        day_gap = rng.choice([0.7, 1, 3, 9, 20])
        minute, s = start, 0
        while minute < days * 1440:
            s += 1
            t = minute + rng.uniform(0, 600)
            session = f"s{s}"
            kinds = ["session_started"] if rng.random() < 0.8 else []
            kinds += ["page_viewed"] * rng.choice([0, 1, 1, 2, 5, 12])
            kinds += ["feature_used"] * rng.choice([0, 0, 1, 2])
            rng.shuffle(kinds)
            if rng.random() < 0.6:
                kinds.append("session_ended")
            for kind in kinds:
                body: dict[str, Any] = {"type": kind, "session_id": session}
                if kind == "feature_used":
                    body["feature"] = rng.choice(features)
                mine.append((t, body))
                t += rng.choice([0.5, 1, 3, 8, 40])
            if rng.random() < 0.2:
                mine.append((t, {"type": "feature_used", "feature": rng.choice(features)}))
            minute += day_gap * 1440 * rng.uniform(0.5, 1.5)
        timed += mine
        for _, body in mine:
            body.setdefault("user_id", user)
            if channel and "channel" not in body and rng.random() < 0.9:
                body["channel"] = channel
            body.setdefault("region", region)
    arrival = sorted(
        timed,
        key=lambda e: e[0] + (rng.uniform(20, 60) if rng.random() < 0.03 else rng.uniform(-1, 12)),
    )
    log: list[dict[str, Any]] = []
    for i, (minute, body) in enumerate(arrival):
        log.append({"event_id": f"id{i}", "occurred_at": stamp(minute), **body})
        if rng.random() < 0.1:
            log.append(log[-1])
    return log


@pytest.mark.parametrize(("seed", "users", "days"), [(1, 40, 3), (3, 80, 12), (2, 150, 40)])
def test_a_generated_log_through_the_state_equals_the_reference(
    seed: int, users: int, days: int
) -> None:
    """Every engagement KPI of every default window (5 m to 30 d) equals the reference's, with
    the state restarted from its changelog half-way."""
    log = activity_log(seed, users, days)
    records = [Record("activity", 0, i, json.dumps(e).encode()) for i, e in enumerate(log)]
    now = T0 + (days + 30) * DAY
    settings = Settings.load({"config": "none"}, environ={})
    rules, config = engagement_rules(settings), state_config(settings)
    state = PartitionState("activity", 0, rules, config)
    rows: dict[bytes, bytes] = {}
    for record in records:
        event = decode(
            record.value,
            "activity",
            max_bytes=65536,
            now_ms=now,
            max_future_ms=3_600_000,
            customer_secret=SECRET,
        )
        assert isinstance(event, Event)
        state.apply(event, record.offset)
        if record.offset == len(records) // 2:
            written, marker = state.flush()
            rows.update((k, v) for k, v in [*written, marker] if v is not None)
            state = PartitionState.restore("activity", 0, rules, config, rows.items())
    actual = document_shape(settings, {"activity": 1}).document([partition_entry(state)])
    expected = expected_snapshot(records, Rules(), now_ms=now, partitions={"activity": 1})
    assert expected["events"]["activity"]["late"] > 0
    assert expected["events"]["activity"]["duplicate"] > 0
    assert expected["windows"]["24h"]["active_users"]["overall"]["users"] > 0
    if days > 7:  # the first activation periods have ended
        assert expected["windows"]["30d"]["activation_rate"]["overall"]["signups"] > 0
    parts = ("windows", "change", "events")
    assert compare_snapshots({p: actual[p] for p in parts}, {p: expected[p] for p in parts}) == []


def test_a_user_is_remembered_through_an_open_activation_period_longer_than_the_windows() -> None:
    """With a 24 h longest window, a user who signed up and comes back 3 days later to reach
    value is not forgotten (its 7 d activation period is open): a time-to-value sample of 3 days
    and an activated sign-up, as the reference has them."""
    day = 24 * 60
    log = [
        (0, "u", {"type": "signed_up"}),
        (1, "u", {"type": "page_viewed", "session_id": "s1"}),
        (2 * day, "v", {"type": "page_viewed", "session_id": "s9"}),  # stream time moves on
        (3 * day, "u", {"type": "value_reached"}),
        (3 * day + 10, "u", {"type": "page_viewed", "session_id": "s2"}),
        (8 * day, "u", {"type": "page_viewed", "session_id": "s3"}),
    ]
    records = [
        Record("activity", 0, i, json.dumps(
            {"event_id": f"e{i}", "occurred_at": stamp(minute), "user_id": user, **body}
        ).encode())
        for i, (minute, user, body) in enumerate(log)
    ]  # fmt: skip
    settings = Settings.load({"config": "none", "windows": "5m,1h,24h"}, environ={})
    state = PartitionState("activity", 0, engagement_rules(settings), state_config(settings))
    for record in records:
        event = decode(
            record.value, "activity", max_bytes=65536, now_ms=T0 + 9 * DAY,
            max_future_ms=3_600_000, customer_secret=SECRET,
        )  # fmt: skip
        assert isinstance(event, Event)
        state.apply(event, record.offset)
        if record.offset == 4:  # the time-to-value sample, in the 24 h window then
            doc = document_shape(settings, {"activity": 1}).document([partition_entry(state)])
            ttv = doc["windows"]["24h"]["time_to_value"]["overall"]
            assert (ttv["count"], ttv["sum_seconds"]) == (1, 3 * 86400)
    rules = Rules(windows_s=(300, 3600, 86400))
    expected = expected_snapshot(records, rules, now_ms=T0 + 9 * DAY, partitions={"activity": 1})
    assert expected["events"]["activity"]["applied"] == 6
    actual = document_shape(settings, {"activity": 1}).document([partition_entry(state)])
    assert (
        compare_snapshots(
            {p: actual[p] for p in ("windows", "events")},
            {p: expected[p] for p in ("windows", "events")},
        )
        == []
    )


def test_stickiness_is_published_from_the_24h_and_30d_windows() -> None:
    """In the document (live, per segment) and on /metrics (components for fleet PromQL)."""
    config = StateConfig(
        step_ms=MIN,
        grace_ms=5 * MIN,
        windows_ms=(DAY, 30 * DAY),
        max_segment_values=20,
        long_step_ms=HOUR,
    )
    state = PartitionState("activity", 0, rules(longest_days=30), config)
    for n, (user, day) in enumerate([("a", 0), ("b", 0), ("c", 10), ("a", 20), ("d", 20)]):
        body = {"type": "page_viewed", "user_id": user, "session_id": "s", "channel": "web"}
        state.apply(Event("activity", user, f"e{n}", "page_viewed", T0 + day * DAY, body), n)
    state.advance(T0 + 20 * DAY + 2 * HOUR)
    doc = render(merge([partition_entry(state)]), config.windows_ms, {"activity": 1}, max_values=20)
    assert doc["live"]["stickiness"]["overall"] == {"daily": 2, "monthly": 4, "ratio": 0.5}
    assert doc["live"]["stickiness"]["channel"]["web"]["ratio"] == 0.5
    text = generate_latest(_Families(window_renderer([state], config.windows_ms, {})())).decode()
    assert 'cxkpi_stickiness_daily{dimension="all",segment="all"} 2.0' in text
    assert 'cxkpi_stickiness_monthly{dimension="all",segment="all"} 4.0' in text
    assert 'cxkpi_stickiness_ratio{dimension="channel",segment="web"} 0.5' in text


def test_a_users_sample_moves_into_the_bucket_that_closes_without_an_evaluation() -> None:
    """A user active in the open bucket still counts in its earlier bucket; when the bucket
    closes, the state takes the earlier samples of all its users out at once: no rule is asked
    anything about any user then."""
    users = Users()
    for minute in (0, 10.2):
        for n in range(30):
            users(f"u{n}", "page_viewed", minute + n % 3 / 10, session_id="s", channel="web")
    state = users.state
    assert active(users, "1h") == 30 and active(users, "5m") == 0  # counted at minute 0
    assert len(state.earlier) == 3  # minute 0 holds them: overall, channel, region (@b)
    asked: list[str] = []
    for name in ("contributions", "next_due", "keep"):
        method = getattr(state.rules, name)
        setattr(state.rules, name, lambda *a, _m=method, _n=name: asked.append(_n) or _m(*a))
    users.at(11)  # minute 10 closes
    assert asked == []
    assert active(users, "5m") == 30 and active(users, "1h") == 30
    assert len(state.earlier) == 0
    assert all(
        totals.get(("active_users", "", "", -1), 0) == 0
        for k, totals in state.resolutions[0].buckets.items()
        if k < T0 // MIN + 10
    )


def test_a_state_restored_at_any_event_counts_as_one_never_restored() -> None:
    """The earlier samples held until a bucket closes are not in the changelog: a restored state
    finds them again from its users' facts. Restored after every event of users active across
    minutes, hours and a session's end, its buckets and windows equal a state never restored."""
    kept, restored = Users(), Users()
    rows: dict[bytes, bytes] = {}
    rng = random.Random(5)
    minute = 0.0
    for n in range(120):
        minute += rng.choice((0.1, 0.4, 1.3, 7, 35))
        user = f"u{rng.randrange(6)}"
        kind = rng.choice(("page_viewed", "page_viewed", "feature_used", "session_ended"))
        body = {"session_id": f"s{user}", "channel": rng.choice(("web", "app"))}
        if kind == "feature_used":
            body["feature"] = rng.choice(("export", "share"))
        for users in (kept, restored):
            users(user, kind, minute, f"e{n}", **body)
        written, marker = restored.state.flush()
        rows.update((k, v) for k, v in [*written, marker] if v is not None)
        for k, v in written:
            if v is None:
                rows.pop(k, None)
        rules = restored.state.rules
        restored.state = PartitionState.restore("activity", 0, rules, CONFIG, rows.items())
        for a, b in zip(kept.state.resolutions, restored.state.resolutions, strict=True):
            assert a.buckets == b.buckets, n
            assert [w.totals for w in a.windows] == [w.totals for w in b.windows], n
    assert active(kept, "24h") == 6


def test_an_event_writes_the_same_buckets_whatever_the_number_of_windows() -> None:
    """O(1) state work per event: the buckets an event of a user writes (in the changelog) are
    one or two per resolution, with 2 windows as with 5 (the windows' running totals follow
    from the buckets, never one write per overlapping window)."""

    def written(windows: tuple[int, ...]) -> list[int]:
        config = StateConfig(
            step_ms=MIN,
            grace_ms=5 * MIN,
            windows_ms=windows,
            max_segment_values=20,
            long_step_ms=HOUR,
        )
        state = PartitionState("activity", 0, rules(longest_days=30), config)
        counts = []
        for n in range(40):
            user = f"u{n % 7}"
            body = {"type": "page_viewed", "user_id": user, "session_id": f"s{n % 7}"}
            state.flush()
            state.apply(Event("activity", user, f"e{n}", "page_viewed", T0 + n * 97_000, body), n)
            records, _ = state.flush()
            counts.append(sum(1 for key, _ in records if not key.startswith(b"e:")))
        return counts

    few = written((5 * MIN, HOUR))
    many = written((5 * MIN, HOUR, DAY, 7 * DAY, 30 * DAY))
    assert sum(c > 0 for c in few) > 30 and sum(many) > sum(few)  # buckets written, hourly too
    assert max(few) <= 3 and max(many) <= 6  # a move: the old and the new bucket, per step
    assert sum(many) <= 2 * sum(few)  # the long step's buckets, not one per window


@pytest.mark.parametrize(
    "names", [("web", "eu", None), (None, None, None), ("ä" * 128, "🙂" * 128, "x" * 128)]
)
def test_a_memory_packs_and_unpacks_every_key_and_sign_up(
    names: tuple[str | None, str | None, str | None],
) -> None:
    channel, region, feature = names
    seen = [
        (("active_users", "", ""), 0),
        (("active_users", "channel", channel or "unknown"), 3),
        (("feature_users", "feature", feature or "unknown"), 70_000),
    ]
    for signup, reached in (
        ([T0, channel, region], True),
        ([T0, None, None], False),
        (None, False),
    ):
        packed = pack_memory(29_000_000, seen, signup, reached)
        assert unpack_memory(packed) == (29_000_000, seen, signup, reached)


class FreshlyChecked(EngagementRules):
    """Rules that answer from the reading kept up to date, and check each answer against the
    list read anew from its first fact."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fresh = EngagementRules(**kwargs)  # reads each list anew, every time
        self.appended = 0  # facts taken into a reading kept up to date
        self.exact = self.bounded = 0  # next_due answers: exact, earlier than exact
        self.carried = 0  # lists folded whose reading was taken over (checked from then on)

    def _read(self, facts: list[Fact]) -> Reading:
        kept = self._readings.get(id(facts))
        known = -1 if kept is None else kept.taken
        reading = super()._read(facts)
        self.appended += reading is kept and known == len(facts) - 1
        return reading

    def contributions(self, facts: list[Fact], stream_time: int) -> list[Contribution]:
        answer = super().contributions(facts, stream_time)
        fresh = Reading(facts, self.timing)
        assert answer == fresh.contributions(stream_time)
        assert self._read(facts).timed() == fresh.timed()  # outcomes not due yet as well
        return answer

    def next_due(self, facts: list[Fact], stream_time: int) -> int | None:
        """Exact, or earlier (after stream time): a bound kept between events."""
        answer = super().next_due(facts, stream_time)
        fresh = Reading(facts, self.timing)
        exact = fresh.next_due(stream_time)
        assert answer is None or answer > stream_time
        assert answer == exact or (answer is not None and (exact is None or answer < exact))
        self.exact += answer == exact
        self.bounded += answer != exact
        assert self._read(facts).settles(stream_time) <= fresh.settles(stream_time)
        return answer

    def keep(self, facts: list[Fact], stream_time: int) -> list[Fact]:
        self.fresh._readings.clear()
        expected = self.fresh.keep(facts, stream_time)
        answer = super().keep(facts, stream_time)
        assert answer == expected
        self.carried += answer is not facts and id(answer) in self._readings
        return answer


def checked_users() -> tuple[Users, FreshlyChecked]:
    """Users whose rules check every answer against the list read anew."""
    base = rules()
    checked = FreshlyChecked(
        step_ms=base.step_ms,
        grace_ms=base.grace_ms,
        long_step_ms=base.steps[-1][1],
        timeout_ms=base.timeout_ms,
        period_ms=base.period_ms,
        retention_ms=base.retention_ms,
    )
    users = Users()
    users.state = PartitionState("activity", 0, checked, CONFIG)
    return users, checked


def test_a_reading_kept_up_to_date_answers_as_the_list_read_anew() -> None:
    """Each activity event is taken into its user's reading rather than read with the rest of
    the list again; every answer on a generated log of late, duplicate and out-of-order events
    equals the one from the list read anew."""
    users, checked = checked_users()
    for record in activity_log(5, 60, 6):
        minute = (parse_timestamp_ms(record["occurred_at"]) - T0) / MIN
        body = {k: v for k, v in record.items() if k not in ("event_id", "occurred_at", "type")}
        users(body.pop("user_id"), record["type"], minute, record["event_id"], **body)
    assert checked.appended > users.n // 2  # most events were taken in, not read anew
    assert checked.bounded < checked.exact  # the bound kept is mostly the exact time
    assert checked.carried > 10  # folded lists answered from the reading taken over


class WholeLists:
    """The engagement rules but for `changes` (so not `Incremental`): the state scans the facts
    for duplicates and takes the difference of the whole lists of contributions before and
    after each evaluation."""

    def __init__(self, rules: EngagementRules) -> None:
        self._rules = rules

    def __getattr__(self, name: str) -> Any:
        if name == "changes":
            raise AttributeError(name)
        return getattr(self._rules, name)


def held(state: PartitionState) -> tuple[Any, ...]:
    """What a partition state holds and counts: buckets, windows, samples held in earlier
    buckets, facts and memories."""
    return (
        [(r.kind, r.buckets) for r in state.resolutions],
        [w.totals for w in state.windows],
        state.earlier._open,
        {key: entity.facts for key, entity in state.entities.items()},
        dict(state.memories.items()),
    )


@pytest.mark.parametrize("readings", [engagement.READINGS, 3])
def test_what_the_rules_say_changed_lands_as_the_difference_of_the_whole_lists(
    readings: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state applies the changes the reading knows of (keys moved on, outcomes changed or
    come due) rather than the difference of whole lists, and finds duplicates in its event ids
    rather than in the facts: both count the same and hold the same after every event of a log
    of late, duplicate and out-of-order events. With 3 readings kept, most users' are read
    anew, and the state falls back to the whole lists, reading about as many lists anew."""
    monkeypatch.setattr(engagement, "READINGS", readings)
    reads: Counter[int] = Counter()  # lists read anew, per rules (by their timing)

    class Counted(Reading):
        def __init__(self, facts: list[Fact], timing: Any, folded: Any = None) -> None:
            reads[id(timing)] += folded is None  # read anew
            super().__init__(facts, timing, folded)

    monkeypatch.setattr(engagement, "Reading", Counted)
    tracked = PartitionState("activity", 0, rules(), CONFIG)
    whole = PartitionState("activity", 0, WholeLists(rules()), CONFIG)  # type: ignore[arg-type]
    assert tracked._incremental is not None and whole._incremental is None
    for offset, record in enumerate(activity_log(4, 50, 10)):
        body = {k: v for k, v in record.items() if k not in ("event_id", "occurred_at")}
        t = parse_timestamp_ms(record["occurred_at"])
        event = Event("activity", body["user_id"], record["event_id"], body["type"], t, body)
        assert tracked.apply(event, offset) == whole.apply(event, offset)
        assert held(tracked) == held(whole), offset
    assert tracked.resolutions[0].buckets and tracked.earlier  # counted, and held
    for state in (tracked, whole):
        state.advance(T0 + 40 * DAY)
    assert held(tracked) == held(whole)
    # about as many lists read anew (which readings the 3 kept are differs a little), not a
    # second one per event whose reading is not kept (the list before the fact added)
    assert 0 < reads[id(tracked.rules.timing)] <= 1.05 * reads[id(whole.rules.timing)]


def test_beyond_the_readings_kept_the_oldest_goes_unless_looked_up_since(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With 3 readings kept, a fourth user's evicts the oldest kept that was not looked up
    since: one looked up again is passed over once, as a clock evicts pages; with all looked up,
    the oldest goes, never the one being kept. (All in one minute: no user comes due, and so
    is looked up, meanwhile.)"""
    monkeypatch.setattr(engagement, "READINGS", 3)
    users = Users()
    kept = users.state.rules._readings  # type: ignore[attr-defined]

    def read(user: str) -> bool:
        return id(users.state.entities[user].facts) in kept

    for i, user in enumerate("abc"):
        users(user, "page_viewed", i / 10, session_id=user)
    users("a", "page_viewed", 0.3, session_id="a")  # looked up again
    users("d", "page_viewed", 0.4, session_id="d")
    assert [read(user) for user in "abcd"] == [True, False, True, True]
    users("e", "page_viewed", 0.5, session_id="e")  # a was passed over once: c goes next
    assert [read(user) for user in "acde"] == [True, False, True, True]
    users("f", "page_viewed", 0.6, session_id="f")  # then a, not looked up since
    assert [read(user) for user in "adef"] == [False, True, True, True]
    for user in "def":  # all looked up since: each passed over once, then the oldest goes
        users(user, "page_viewed", 0.7, session_id=user)
    users("g", "page_viewed", 0.8, session_id="g")
    assert [read(user) for user in "defg"] == [False, True, True, True]


def test_a_keys_settled_times_fold_at_once_as_one_by_one_in_time_order() -> None:
    """A summary keeps per key the latest time seen and the latest in an earlier long-step
    bucket than it; folding a key's settled times at once gives what taking them one by one in
    time order gives (the rule as first written), from any summary of the key or none."""

    def one_by_one(seen: list[Any] | None, times: list[int]) -> list[Any] | None:
        for t in times:
            last, prev = seen or (t, None)
            if t // HOUR > last // HOUR:
                seen = [t, last]
            elif t // HOUR == last // HOUR:
                seen = [max(t, last), prev]
            else:
                seen = [last, t if prev is None or t > prev else prev]
        return seen

    rng = random.Random(5)
    folder, key = rules(), ("active_users", "", "")
    for _ in range(2000):
        seen: list[Any] | None = None
        if rng.random() < 0.7:
            last = T0 + rng.randrange(0, 5 * HOUR)
            earlier = last - last % HOUR - rng.randrange(1, 3 * HOUR)
            seen = [last, earlier if rng.random() < 0.6 else None]
        times = sorted(T0 + rng.randrange(-HOUR, 8 * HOUR) for _ in range(rng.randrange(1, 9)))
        summary = Summary({key: list(seen)} if seen else {})
        folder._fold(summary, [], {key: times})
        assert summary.seen[key] == one_by_one(seen, times), (seen, times)


def test_a_sign_up_after_activity_is_taken_in_as_the_list_read_anew() -> None:
    """Sign-ups and values that come after a user's reading exists: a first sign-up, a value,
    an earlier sign-up within grace, and a second sign-up later."""
    users, checked = checked_users()
    users("a", "page_viewed", 0, session_id="s", channel="web")
    users("a", "signed_up", 1.5, channel="web")
    users("a", "value_reached", 3, session_id="s")
    users("a", "signed_up", 1, channel="app")  # earlier, inside grace: read anew
    users("a", "signed_up", 4, channel="app")
    users("a", "value_reached", 5, session_id="s")
    users.at(7 * 1440 + 30)
    assert checked.appended >= 4
    assert users.kpi("activation_rate", "24h") == {"activated": 1, "signups": 1, "ratio": 1.0}


def test_a_time_is_settled_exactly_when_stream_time_reached_its_forget_at() -> None:
    """`unsettled_from` (one cut per evaluation) agrees with `forget_at` (one per fact) at and
    around every bucket edge."""
    timing = rules().timing
    edges = [T0 + k * MIN + d for k in range(-2, 9) for d in (-1, 0, 1, 30_000)]
    for t in edges:
        for now in [timing.forget_at(t) + d for d in (-MIN, -1, 0, 1, MIN)]:
            assert (t < timing.unsettled_from(now)) == (now >= timing.forget_at(t)), (t, now)
