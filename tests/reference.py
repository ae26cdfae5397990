"""The offline reference: docs/semantics.md computed by brute force over an event log.

Deliberately independent of the `stream` package (nothing is imported from it): records are
classified with the reference JSON Schema validator (`jsonschema`), every KPI sample is rebuilt
from scratch per partition from the applied events, and windows are summed directly from the
samples. Clarity over speed. Integration tests compare what the live system publishes (the
document of docs/snapshot.md) against `expected_snapshot`, with `compare_snapshots`.

Not modelled: idle advancement of stream time (tests disable it).

Forgetting is modelled from the definitions' own sentences: a solved ticket is remembered for the
ticket retention after its last event (at least the longest window plus grace), a closed one until
its last event is past grace, an open one for ever; a cart's customer stays known for the cart
retention after the cart's last event. "Forgotten" is judged when the entity's next event is
applied, against the partition's stream time before it: an event that finds its ticket or cart
forgotten starts it anew (a reopen without its opening, an order without the cart's customer).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"

#: The event types of each source topic (spec/events.md).
TYPES = {
    "cart-events": frozenset(
        {"cart_created", "item_added", "item_removed", "checkout_started", "order_placed"}
    ),
    "tickets": frozenset(
        {
            "ticket_opened",
            "agent_replied",
            "customer_replied",
            "ticket_solved",
            "ticket_reopened",
            "ticket_closed",
        }
    ),
    "survey-replies": frozenset({"nps", "csat", "ces", "emotion", "review", "mention"}),
    "activity": frozenset(
        {
            "signed_up",
            "session_started",
            "page_viewed",
            "feature_used",
            "value_reached",
            "session_ended",
        }
    ),
}
#: The emotion vocabulary's positive words (spec/events.md); the other eight are negative.
POSITIVE_EMOTIONS = frozenset(
    {
        "happy",
        "pleased",
        "trusting",
        "valued",
        "cared_for",
        "safe",
        "focused",
        "stimulated",
        "exploratory",
        "interested",
        "energetic",
        "indulgent",
    }
)
#: The whole emotion vocabulary (spec/events.md): the positive words and these eight.
EMOTIONS = POSITIVE_EMOTIONS | {
    "irritated",
    "hurried",
    "neglected",
    "unhappy",
    "unsatisfied",
    "stressed",
    "disappointed",
    "frustrated",
}
#: The field that is the record key of each topic.
KEYS = {
    "cart-events": "cart_id",
    "tickets": "ticket_id",
    "survey-replies": "response_id",
    "activity": "user_id",
}
#: Histogram bounds in seconds (+Inf is added).
BOUNDS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800)
#: Backlog age bounds in seconds (+Inf is added): 1 h, 4 h, 1 d, 3 d, 7 d, 30 d.
AGE_BOUNDS = (3600, 14400, 86400, 259200, 604800, 2592000)
OUTCOMES = ("applied", "duplicate", "late", "dead_lettered")
#: The names a partition never bounds: they use up no place and are never folded.
RESERVED = ("unknown", "other")

#: The bounded dimensions of each topic's events (currency: of orders).
TOPIC_DIMENSIONS = {
    "cart-events": ("channel", "region", "currency"),
    "tickets": ("channel", "region", "team", "priority"),
    "survey-replies": ("channel", "region", "team"),
    "activity": ("channel", "region", "feature"),
}
_CART = ("channel", "region")
_ACTIVITY = ("channel", "region")
_TICKET = ("channel", "region", "team", "priority")
_SURVEY = ("channel", "region", "team")
#: The segment dimensions of each published KPI.
DIMENSIONS = {
    "cart_abandonment": _CART,
    "checkout_abandonment": _CART,
    "conversion": _CART,
    "average_order_value": _CART,
    "upsell": _CART,
    "resolution_time": _TICKET,
    "first_response_time": _TICKET,
    "first_contact_resolution": _TICKET,
    "reopen_rate": _TICKET,
    "open_backlog": _TICKET,
    "backlog_age": ("team", "priority"),
    "nps": _SURVEY,
    "csat": _SURVEY,
    "ces": _SURVEY,
    "sentiment": ("source", "language", *_SURVEY),
    "net_emotion": _SURVEY,
    "emotions": _SURVEY,
    "review_rating": ("channel",),
    "active_users": _ACTIVITY,
    "new_users": _ACTIVITY,
    "session_duration": _ACTIVITY,
    "bounce_rate": _ACTIVITY,
    "pages_per_session": _ACTIVITY,
    "time_to_value": _ACTIVITY,
    "activation_rate": _ACTIVITY,
    "feature_adoption": ("feature",),
}
#: KPIs that count distinct users in a window (computed from the window's events, not summed
#: from samples): kpi -> component
DISTINCT = {"active_users": "users", "feature_adoption": "users"}
LIVE_KPIS = ("open_backlog", "backlog_age")
#: The customers topic: in `partitions` when the worker keeps the customer KPIs.
CUSTOMERS_TOPIC = "orders-by-customer"
WINDOWED_KPIS = tuple(k for k in DIMENSIONS if k not in LIVE_KPIS)
#: kpi -> (numerator, denominator, name of the value, scale of the value)
FRACTIONS = {
    "conversion": ("converted", "created", "ratio", 1),
    "upsell": ("upsold", "orders", "ratio", 1),
    "first_contact_resolution": ("first_contact", "solves", "ratio", 1),
    "reopen_rate": ("reopens", "solves", "ratio", 1),
    "csat": ("satisfied", "responses", "score", 100),
    "bounce_rate": ("bounced", "sessions", "ratio", 1),
    "pages_per_session": ("pages", "sessions", "mean", 1),
    "activation_rate": ("activated", "signups", "ratio", 1),
}


#: The KPIs a change alert tests (spec, "Change alerts": those whose estimator has a known
#: variance), with the direction in which each gets worse: NPS down, abandonment up, ...
WORSE = {
    "cart_abandonment": "up",
    "checkout_abandonment": "up",
    "conversion": "down",
    "upsell": "down",
    "resolution_time": "up",
    "first_response_time": "up",
    "first_contact_resolution": "down",
    "reopen_rate": "up",
    "nps": "down",
    "csat": "down",
    "ces": "down",
    "sentiment": "down",
    "net_emotion": "down",
    "review_rating": "down",
    "session_duration": "down",
    "bounce_rate": "up",
    "time_to_value": "up",
    "activation_rate": "down",
}


@dataclass(frozen=True)
class Change:
    """A change alert's settings (seconds), the spec's defaults: |z| >= 3 over 1 h and >= 2
    over 6 h, each against the 7 d before it, with 30 samples; direction None: the KPI's worse
    one."""

    short_s: int = 3600
    confirmation_s: int = 6 * 3600
    baseline_s: int = 7 * 86400
    z: float = 3.0
    confirmation_z: float = 2.0
    min_samples: int = 30
    direction: str | None = None


def _default_changes() -> dict[str, Change]:
    return {kpi: Change() for kpi in WORSE}


@dataclass(frozen=True)
class Rules:
    """The processor settings the reference needs (seconds unless named otherwise)."""

    step_s: int = 60
    grace_s: int = 300
    windows_s: tuple[int, ...] = (300, 3600, 86400, 7 * 86400, 30 * 86400)
    #: the step of windows longer than a day
    long_step_s: int = 3600
    inactivity_timeout_s: int = 1800
    max_segment_values: int = 20
    #: dimension -> allowed values; a dimension with an allow-list folds every other value
    allow: Mapping[str, frozenset[str]] = field(default_factory=dict)
    max_future_s: int = 3600
    max_event_bytes: int = 65536
    #: how long a solved ticket and a cart's customer are remembered after their last event;
    #: None: the longest window plus grace
    ticket_retention_s: int | None = None
    cart_retention_s: int = 7 * 86400
    #: the period P of the customer KPIs, and the cap of the expected lifetime in periods
    customer_period_s: int = 30 * 86400
    max_lifetime_periods: int = 36
    #: a text is positive at a score >= this, negative at <= the other, else neutral
    positive_at: float = 0.05
    negative_at: float = -0.05
    #: the change alerts, by KPI (docs/monitoring.md, "Change alerts")
    changes: Mapping[str, Change] = field(default_factory=_default_changes)
    #: a user's session ends after this long without an event of it
    session_timeout_s: int = 1800
    #: a sign-up is activated by value reached within this period, judged at its end
    activation_period_s: int = 7 * 86400


@dataclass(frozen=True)
class Record:
    """One source record as read back from Kafka."""

    topic: str
    partition: int
    offset: int
    value: bytes


# --------------------------------------------------------------------------------------------
# Classification of one record


@cache
def _validator(topic: str) -> jsonschema.Draft202012Validator:
    """The topic's JSON Schema validator, loaded at first use."""
    schema = json.loads((SCHEMAS / f"{topic}.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@lru_cache(maxsize=1 << 18)
def _schema_valid(topic: str, raw: bytes) -> bool:
    """Whether a record's JSON object satisfies its topic's schema: validated once per record
    value (the tests compute the reference over the same log again and again)."""
    return bool(_validator(topic).is_valid(json.loads(raw)))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _to_ms(text: str) -> int:
    """RFC 3339 text -> integer milliseconds since the epoch (sub-millisecond digits cut)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("timestamp without offset")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _decode(record: Record, rules: Rules, now_ms: int) -> dict[str, Any] | None:
    """The event of a record with its time in `_t`, or None when it is dead-lettered.

    Checks in order: size, UTF-8 JSON object, type, schema, schema_version, future timestamp.
    """
    raw = record.value
    if raw is None or len(raw) > rules.max_event_bytes:
        return None
    try:
        # NaN / Infinity are not JSON (RFC 8259), although Python's json accepts them.
        event = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except ValueError:  # includes UnicodeDecodeError and JSONDecodeError
        return None
    if not isinstance(event, dict):
        return None
    kind = event.get("type")
    if not isinstance(kind, str) or kind not in TYPES[record.topic]:
        return None
    if not _schema_valid(record.topic, raw):
        return None
    if "schema_version" in event and event["schema_version"] != 1:
        return None
    try:
        # The schema's pattern admits impossible dates (month 13, second 60): such a timestamp
        # is "unparseable" (spec/events.md, Bad input) and dead-lettered. Note: the venv has no
        # rfc3339 format checker, so the schema's `format: date-time` is not enforced.
        t = _to_ms(event["occurred_at"])
    except ValueError:
        return None
    if t > now_ms + rules.max_future_s * 1000:
        return None
    event["_t"] = t
    return event


# --------------------------------------------------------------------------------------------
# One partition: outcomes, stream time and partition-level segment names


@dataclass
class _Partition:
    """What one topic-partition did with its records, in offset order."""

    topic: str
    applied: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    stream_time: int | None = None
    first_seen: dict[str, dict[str, int]] = field(default_factory=dict)  # dim -> value -> t
    folded: dict[str, int] = field(default_factory=dict)  # dim -> events folded into other


def _partition_name(part: _Partition, rules: Rules, dim: str, value: str, t: int) -> str:
    """The name a partition gives a segment value when an event carrying it is applied.

    Ambiguity (most literal reading): a producer value spelled `unknown` or `other` keeps that
    name, uses up no place and is not folded ("`unknown` and `other` never use up a place").
    An allow-list miss is counted in `folded_events` like a value beyond the first N.
    """
    if value in RESERVED:
        return value
    if dim in rules.allow:
        if value in rules.allow[dim]:
            return value
    else:
        seen = part.first_seen.setdefault(dim, {})
        if value in seen:
            return value
        if len(seen) < rules.max_segment_values:
            seen[value] = t  # the event time it was first seen at (in processing order)
            return value
    part.folded[dim] = part.folded.get(dim, 0) + 1
    return "other"


def _process(topic: str, records: list[Record], rules: Rules, now_ms: int) -> _Partition:
    """Classify a partition's records in offset order; keep the applied events."""
    part = _Partition(topic)
    step, grace = rules.step_s * 1000, rules.grace_s * 1000
    applied_ids: set[tuple[str, str]] = set()  # (record key, event_id)
    for record in sorted(records, key=lambda r: r.offset):
        event = _decode(record, rules, now_ms)
        if event is None:
            part.counts["dead_lettered"] += 1
            continue
        t = event["_t"]
        bucket_end = (t // step + 1) * step
        if part.stream_time is not None and bucket_end < part.stream_time - grace:
            part.counts["late"] += 1  # checked before duplicates: a late duplicate is late
            continue
        identity = (event[KEYS[topic]], event["event_id"])
        if identity in applied_ids:
            part.counts["duplicate"] += 1
            continue
        applied_ids.add(identity)
        part.counts["applied"] += 1
        event["_s"] = part.stream_time  # before it: what forgetting is judged against
        part.stream_time = t if part.stream_time is None else max(part.stream_time, t)
        # Names are decided now, at application: a value admitted later stays admitted.
        event["_seg"] = {
            dim: _partition_name(part, rules, dim, event[dim], t)
            for dim in TOPIC_DIMENSIONS[topic]
            if isinstance(event.get(dim), str)
        }
        part.applied.append(event)
    return part


# --------------------------------------------------------------------------------------------
# KPI samples of one partition


@dataclass(frozen=True)
class Sample:
    """One contribution to a KPI component: `value` added at event time `t` (None: live)."""

    kpi: str
    component: str
    t: int | None
    segments: Mapping[str, str]
    value: int = 1


def _by_key(events: list[dict[str, Any]], key: str) -> list[list[dict[str, Any]]]:
    entities: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        entities[event[key]].append(event)
    return list(entities.values())


def _segments_of(event: dict[str, Any], dims: Iterable[str]) -> dict[str, str]:
    """The partition-level names of an event's segments (`unknown` when missing)."""
    return {dim: event["_seg"].get(dim, "unknown") for dim in dims}


def _sessions(events: list[dict[str, Any]], timeout: int) -> list[list[dict[str, Any]]]:
    """Split one cart's events (sorted) into sessions: gap >= timeout or after an order."""
    sessions: list[list[dict[str, Any]]] = []
    for event in events:
        current = sessions[-1] if sessions else None
        if (
            current is None
            or current[-1]["type"] == "order_placed"
            or event["_t"] - current[-1]["_t"] >= timeout
        ):
            sessions.append([event])
        else:
            current.append(event)
    return sessions


def _cart_samples(part: _Partition, rules: Rules) -> list[Sample]:
    """Every cart KPI sample of one partition, session by session."""
    timeout = rules.inactivity_timeout_s * 1000
    out: list[Sample] = []
    for events in _by_key(part.applied, "cart_id"):
        events.sort(key=lambda e: (e["_t"], e["type"] == "order_placed", e["event_id"]))
        for session in _sessions(events, timeout):
            # Segment of a session: its earliest event that has the field, else unknown.
            segs = {
                dim: next((e["_seg"][dim] for e in session if dim in e["_seg"]), "unknown")
                for dim in _CART
            }
            types = [e["type"] for e in session]
            created = [e["_t"] for e in session if e["type"] in ("cart_created", "item_added")]
            if created:
                out.append(Sample("conversion", "created", created[0], segs))
            order = session[-1] if types[-1] == "order_placed" else None
            if order is not None:
                t = order["_t"]
                out.append(Sample("upsell", "orders", t, segs))
                if any(e["type"] == "item_added" and e.get("upsell") is True for e in session):
                    out.append(Sample("upsell", "upsold", t, segs))
                if "amount" in order:
                    currency = order["_seg"].get("currency", "unknown")
                    micros = round(Fraction(str(order["amount"])) * 1_000_000)
                    segs_c = {**segs, "currency": currency}
                    out.append(Sample("average_order_value", "orders", t, segs_c))
                    out.append(Sample("average_order_value", "amount", t, segs_c, micros))
            if "item_added" not in types:
                continue  # a session with no items has no outcome
            if order is not None:
                at, outcome = order["_t"], "converted"
                out.append(Sample("conversion", "converted", at, segs))
            elif part.stream_time is not None and part.stream_time >= session[-1]["_t"] + timeout:
                at, outcome = session[-1]["_t"] + timeout, "abandoned"
            else:
                continue  # still open
            out.append(Sample("cart_abandonment", outcome, at, segs))
            if "checkout_started" in types:
                out.append(Sample("checkout_abandonment", outcome, at, segs))
    return out


def _lives(
    part: _Partition, key: str, forget_at: Callable[[list[dict[str, Any]]], int | None]
) -> list[list[dict[str, Any]]]:
    """Each entity's applied events, split where it was forgotten before its next event came:
    when the partition's stream time before that event had reached `forget_at` of the events
    so far (None: never)."""
    lives: dict[str, list[dict[str, Any]]] = {}
    done: list[list[dict[str, Any]]] = []
    for event in part.applied:  # in the order they were applied
        life = lives.get(event[key])
        if life is not None:
            end = forget_at(life)
            if end is not None and event["_s"] >= end:
                done.append(life)
                life = None
        if life is None:
            life = lives[event[key]] = []
        life.append(event)
    return done + list(lives.values())


def _past_grace(t: int, rules: Rules) -> int:
    """The stream time from which an event at t is late."""
    step = rules.step_s * 1000
    return (t // step + 1) * step + rules.grace_s * 1000 + 1


def ticket_retention_ms(rules: Rules) -> int:
    """The ticket retention: its setting, else the longest reach of a window plus grace (a
    change alert's baseline reaches its size plus the window it ends before)."""
    if rules.ticket_retention_s is not None:
        return rules.ticket_retention_s * 1000
    reach = max(
        [*rules.windows_s, *(c.baseline_s + c.confirmation_s for c in rules.changes.values())]
    )
    return (reach + rules.grace_s) * 1000


_STATUSES = ("ticket_opened", "ticket_reopened", "ticket_solved", "ticket_closed")


def _ticket_statuses(events: list[dict[str, Any]]) -> list[str]:
    ordered = sorted(events, key=lambda e: (e["_t"], e["event_id"]))
    return [e["type"] for e in ordered if e["type"] in _STATUSES]


def _ticket_forget_at(rules: Rules) -> Callable[[list[dict[str, Any]]], int | None]:
    """An open ticket is never forgotten; a closed one once its last event is past grace; a
    solved one, or one never seen opened, after the ticket retention."""

    def forget_at(events: list[dict[str, Any]]) -> int | None:
        statuses = _ticket_statuses(events)
        if "ticket_opened" in statuses and statuses[-1] in ("ticket_opened", "ticket_reopened"):
            return None
        last = max(e["_t"] for e in events)
        retained = last + ticket_retention_ms(rules)
        return min(retained, _past_grace(last, rules)) if "ticket_closed" in statuses else retained

    return forget_at


def _ticket_samples(part: _Partition, rules: Rules) -> list[Sample]:
    """Every ticket KPI sample of one partition, per life of each ticket (see `_lives`); a life
    without an opening gives none."""
    out: list[Sample] = []
    for events in _lives(part, "ticket_id", _ticket_forget_at(rules)):
        events.sort(key=lambda e: (e["_t"], e["event_id"]))
        openings = [e for e in events if e["type"] == "ticket_opened"]
        if not openings:
            continue
        opened = openings[0]["_t"]
        segs = _segments_of(openings[0], _TICKET)
        public_replies = reopens = 0
        for event in events:
            kind, t = event["type"], event["_t"]
            if kind == "agent_replied" and event.get("public", True) is True:
                if public_replies == 0:
                    # Ambiguity: semantics.md says "reply - opening" without the max(0, ·) it
                    # gives resolution time; clamped like it (a duration is never negative).
                    out.append(
                        Sample("first_response_time", "samples", t, segs, max(0, t - opened))
                    )
                public_replies += 1
            elif kind == "ticket_reopened":
                reopens += 1
                out.append(Sample("reopen_rate", "reopens", t, segs))
            elif kind == "ticket_solved":
                out.append(Sample("resolution_time", "samples", t, segs, max(0, t - opened)))
                out.append(Sample("reopen_rate", "solves", t, segs))
                out.append(Sample("first_contact_resolution", "solves", t, segs))
                if public_replies <= 1 and reopens == 0:
                    out.append(Sample("first_contact_resolution", "first_contact", t, segs))
        if _ticket_statuses(events)[-1] in ("ticket_opened", "ticket_reopened"):
            out.append(Sample("open_backlog", "tickets", None, segs))
            out.append(Sample("backlog_age", "opened", None, segs, opened))
    return out


#: The languages whose texts get a score (kpis.md: at least these four).
SCORED_LANGUAGES = frozenset({"en", "nl", "de", "fr"})


@cache
def _sentiment() -> Any:
    """The project's scorer: the issue allows the reference to call it, since it is
    deterministic; everything around it (what is scored, classes, segments, arithmetic) is
    written here from the spec."""
    from stream.voice import sentiment

    return sentiment("lexicon")


def _text_samples(event: dict[str, Any], rules: Rules, segs: dict[str, str]) -> list[Sample]:
    """Every free text is scored once: the comment of any reply and the text of a review or
    mention; a text in another language or too short to tell is unscored, never neutral."""
    texts = []
    if event["type"] in ("review", "mention"):
        texts.append((event["type"], event["text"]))
    if "comment" in event:
        texts.append(("comment", event["comment"]))
    out = []
    for source, text in texts:
        score = _sentiment().score(text)
        language = score.language
        scored = language in SCORED_LANGUAGES and score.value is not None
        if language is None:
            language = "unknown"
        elif language not in SCORED_LANGUAGES:
            language = "other"
        where = {**segs, "source": source, "language": language}
        if not scored:
            out.append(Sample("sentiment", "unscored", event["_t"], where))
            continue
        value = score.value
        verdict = (
            "positive"
            if value >= rules.positive_at
            else "negative"
            if value <= rules.negative_at
            else "neutral"
        )
        out.append(Sample("sentiment", verdict, event["_t"], where))
        out.append(Sample("sentiment", "score_sum", event["_t"], where, value))
    return out


def _survey_samples(part: _Partition, rules: Rules) -> list[Sample]:
    """One NPS, CSAT or CES response per applied survey event; segments from the event."""
    out: list[Sample] = []
    for event in part.applied:
        t, score, kind = event["_t"], event.get("score"), event["type"]
        segs = _segments_of(event, _SURVEY)
        out.extend(_text_samples(event, rules, segs))
        if kind == "emotion":
            # positive if it names more positive than negative emotions, negative if more
            # negative, else mixed
            good = sum(1 for e in event["emotions"] if e in POSITIVE_EMOTIONS)
            bad = len(event["emotions"]) - good
            verdict = "positive" if good > bad else "negative" if bad > good else "mixed"
            out.append(Sample("net_emotion", verdict, t, segs))
            # the share of replies naming each emotion: the replies, and each word named
            out.append(Sample("emotions", "replies", t, segs))
            out.extend(Sample("emotions", e, t, segs) for e in event["emotions"])
        elif kind == "review":
            rating = event.get("rating")
            if rating is not None:  # the mean of the ratings reviews give
                out.append(Sample("review_rating", "reviews", t, segs))
                out.append(Sample("review_rating", "rating_sum", t, segs, rating))
                out.append(Sample("review_rating", "rating_sum_of_squares", t, segs, rating**2))
                if rating >= 4:
                    out.append(Sample("review_rating", "good", t, segs))
        elif kind == "mention":
            pass  # a mention is measured by the sentiment of its text alone
        elif kind == "nps":
            category = "promoters" if score >= 9 else "passives" if score >= 7 else "detractors"
            out.append(Sample("nps", category, t, segs))
        elif kind == "csat":
            out.append(Sample("csat", "responses", t, segs))
            if score >= 4:
                out.append(Sample("csat", "satisfied", t, segs))
        else:
            out.append(Sample("ces", "responses", t, segs))
            out.append(Sample("ces", "score_sum", t, segs, int(score)))
            # each response adds its squared score (the variance of the mean)
            out.append(Sample("ces", "score_sum_of_squares", t, segs, int(score) ** 2))
            if score >= 5:
                out.append(Sample("ces", "easy", t, segs))
    return out


# --------------------------------------------------------------------------------------------
# Engagement (spec/kpis.md, "Engagement")


def user_retention_ms(rules: Rules) -> int:
    """A user unseen for longer than the longest window (plus a long step and grace: until its
    last bucket has left every window, docs/semantics.md) is forgotten."""
    return (max(rules.windows_s) + rules.long_step_s + rules.grace_s) * 1000


def _user_forget_at(rules: Rules) -> Callable[[list[dict[str, Any]]], int]:
    """A user unseen for longer than the longest window "and past any open activation period"
    may be forgotten: once its last event is `user_retention_ms` behind, and a value_reached
    at the end of its earliest sign-up's activation period would be late."""
    retention = user_retention_ms(rules)
    period = rules.activation_period_s * 1000

    def forget_at(events: list[dict[str, Any]]) -> int:
        unseen = max(e["_t"] for e in events) + retention
        signups = [e["_t"] for e in events if e["type"] == "signed_up"]
        return max(unseen, _past_grace(min(signups) + period, rules)) if signups else unseen

    return forget_at


def _user_sessions(events: list[dict[str, Any]], timeout: int) -> list[list[dict[str, Any]]]:
    """One user's sessions: per session_id, events by time (a session_ended after the others of
    its time); a session ends at its session_ended or at a gap of the timeout."""
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        if "session_id" in event:
            by_session[event["session_id"]].append(event)
    sessions: list[list[dict[str, Any]]] = []
    for members in by_session.values():
        members.sort(key=lambda e: (e["_t"], e["type"] == "session_ended", e["event_id"]))
        current: list[dict[str, Any]] | None = None
        for event in members:
            if (
                current is None
                or current[-1]["type"] == "session_ended"
                or event["_t"] - current[-1]["_t"] >= timeout
            ):
                current = []
                sessions.append(current)
            current.append(event)
    return sessions


def _activity_samples(part: _Partition, rules: Rules) -> list[Sample]:
    """New users, sessions (duration, bounce, pages), time to value and activation."""
    out: list[Sample] = []
    timeout = rules.session_timeout_s * 1000
    for event in part.applied:
        if event["type"] == "signed_up":
            out.append(Sample("new_users", "users", event["_t"], _segments_of(event, _ACTIVITY)))
    for events in _by_key(part.applied, "user_id"):
        for session in _user_sessions(events, timeout):
            segs = {
                dim: next((e["_seg"][dim] for e in session if dim in e["_seg"]), "unknown")
                for dim in _ACTIVITY
            }
            last = session[-1]["_t"]
            if session[-1]["type"] == "session_ended":
                at = last
            elif part.stream_time is not None and part.stream_time >= last + timeout:
                at = last + timeout
            else:
                continue  # still open
            pages = sum(1 for e in session if e["type"] == "page_viewed")
            features = sum(1 for e in session if e["type"] == "feature_used")
            out.append(Sample("session_duration", "samples", at, segs, last - session[0]["_t"]))
            for kpi in ("bounce_rate", "pages_per_session"):
                out.append(Sample(kpi, "sessions", at, segs))
            if pages:
                out.append(Sample("pages_per_session", "pages", at, segs, pages))
            if pages <= 1 and not features:
                out.append(Sample("bounce_rate", "bounced", at, segs))
    for life in _lives(part, "user_id", _user_forget_at(rules)):
        out.extend(_value_samples(life, part.stream_time, rules))
    return out


def _value_samples(
    life: list[dict[str, Any]], stream_time: int | None, rules: Rules
) -> list[Sample]:
    """Time to value and activation of one user while it is remembered: from its earliest
    sign-up, its first value_reached at or after it."""
    signups = sorted(
        (e for e in life if e["type"] == "signed_up"), key=lambda e: (e["_t"], e["event_id"])
    )
    if not signups:
        return []  # a sign-up never seen: no sample
    signup = signups[0]
    since = signup["_t"]
    values = sorted(
        (e for e in life if e["type"] == "value_reached" and e["_t"] >= since),
        key=lambda e: (e["_t"], e["event_id"]),
    )
    out: list[Sample] = []
    if values:
        first = values[0]
        segs = _segments_of(first, _ACTIVITY)
        out.append(Sample("time_to_value", "samples", first["_t"], segs, first["_t"] - since))
    due = since + rules.activation_period_s * 1000
    if stream_time is not None and stream_time >= due:
        segs = _segments_of(signup, _ACTIVITY)
        out.append(Sample("activation_rate", "signups", due, segs))
        if any(e["_t"] <= due for e in values):
            out.append(Sample("activation_rate", "activated", due, segs))
    return out


def _distinct_users(part: _Partition, rules: Rules) -> dict[tuple[str, str, str, str], set[str]]:
    """(window, kpi, dimension, segment) -> the users with an event of it in the window: every
    event for active users (overall, its channel, its region), a feature_used for feature
    adoption (overall: any feature)."""
    users: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
    if part.topic != "activity":
        return users
    for event in part.applied:
        segs = _segments_of(event, _ACTIVITY)
        cells = [("active_users", "overall", "")] + [
            ("active_users", dim, segs[dim]) for dim in _ACTIVITY
        ]
        if event["type"] == "feature_used":
            feature = event["_seg"].get("feature", "unknown")
            cells += [("feature_adoption", "overall", ""), ("feature_adoption", "feature", feature)]
        for size in rules.windows_s:
            if _in_window(event["_t"], part.stream_time, size, step_of(size, rules)):
                for kpi, dim, name in cells:
                    users[(window_name(size), kpi, dim, name)].add(event["user_id"])
    return users


def stickiness(windows: Mapping[str, Any]) -> dict[str, Any]:
    """Active users over 24 h / active users over 30 d, overall and per segment (none of a
    window that is not configured)."""
    daily, monthly = (windows.get(w, {}).get("active_users", {}) for w in ("24h", "30d"))

    def users(doc: Mapping[str, Any], dim: str, name: str) -> int:
        cell = doc.get("overall") if dim == "overall" else doc.get(dim, {}).get(name)
        return cell["users"] if cell else 0

    def cell(dim: str, name: str) -> dict[str, Any]:
        day, month = users(daily, dim, name), users(monthly, dim, name)
        return {"daily": day, "monthly": month, "ratio": _div(day, month)}

    doc: dict[str, Any] = {"overall": cell("overall", "")}
    for dim in _ACTIVITY:
        names = sorted({*daily.get(dim, {}), *monthly.get(dim, {})})
        doc[dim] = {name: cell(dim, name) for name in names}
    return doc


def _samples(part: _Partition, rules: Rules) -> list[Sample]:
    if part.topic == "cart-events":
        return _cart_samples(part, rules)
    if part.topic == "tickets":
        return _ticket_samples(part, rules)
    if part.topic == "activity":
        return _activity_samples(part, rules)
    return _survey_samples(part, rules)


# --------------------------------------------------------------------------------------------
# Windows, merge and the document


def window_name(size_s: int) -> str:
    """docs/snapshot.md: whole hours up to a day -> Nh, longer whole days -> Nd, else Nm, Ns."""
    if size_s > 86400 and size_s % 86400 == 0:
        return f"{size_s // 86400}d"
    if size_s % 3600 == 0:
        return f"{size_s // 3600}h"
    if size_s % 60 == 0:
        return f"{size_s // 60}m"
    return f"{size_s}s"


def _window_names(change: Change) -> tuple[tuple[str, str], tuple[str, str]]:
    """(short window, its baseline), (confirmation window, its baseline): the baseline of a
    window is the `baseline` window that ends where that window starts."""
    base = window_name(change.baseline_s)
    return (
        (window_name(change.short_s), f"{base}_before_{window_name(change.short_s)}"),
        (
            window_name(change.confirmation_s),
            f"{base}_before_{window_name(change.confirmation_s)}",
        ),
    )


def _windows_kept(rules: Rules) -> list[tuple[str, int, int]]:
    """(name, size, lag) in seconds of the configured windows and of those the change alerts
    read (a lag: the window ends that long before stream time)."""
    kept = {window_name(size): (size, 0) for size in rules.windows_s}
    for change in rules.changes.values():
        for window in (change.short_s, change.confirmation_s):
            kept.setdefault(window_name(window), (window, 0))
        for lag in (change.short_s, change.confirmation_s):
            name = f"{window_name(change.baseline_s)}_before_{window_name(lag)}"
            kept.setdefault(name, (change.baseline_s, lag))
    return [(name, size, lag) for name, (size, lag) in kept.items()]


def step_of(size_s: int, rules: Rules) -> int:
    """semantics.md: windows longer than a day advance by the long step."""
    return rules.long_step_s if size_s > 86400 else rules.step_s


def _in_window(t: int, stream_time: int | None, size_s: int, step_s: int) -> bool:
    """Whether the bucket of `t` (of the window's own step) ends in (S - W, S]."""
    if stream_time is None:
        return False
    step = step_s * 1000
    end = (t // step + 1) * step
    return stream_time - size_s * 1000 < end <= stream_time


def _format(ms: int) -> str:
    """RFC 3339, UTC, millisecond precision, Z."""
    moment = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def expected_snapshot(
    records: Iterable[Record],
    rules: Rules,
    *,
    now_ms: int,
    partitions: Mapping[str, int],
    change_windows: bool = False,
) -> dict[str, Any]:
    """The document of docs/snapshot.md for the given source records (any order); with the
    customer KPIs when `partitions` has the customers topic. With `change_windows`, also
    `change_windows`: the KPIs with a change alert over the windows only change alerts read
    (not in the document: /metrics has them, for the rules)."""
    records = list(records)
    by_partition: dict[tuple[str, int], list[Record]] = defaultdict(list)
    for record in records:
        by_partition[(record.topic, record.partition)].append(record)
    processed = {tp: _process(tp[0], rs, rules, now_ms) for tp, rs in sorted(by_partition.items())}

    # Fleet-wide bound: per dimension, the N admitted values first seen earliest over all
    # partitions (of every topic), ties by value; the other admitted values merge into `other`.
    first_seen: dict[str, dict[str, int]] = {}
    for part in processed.values():
        for dim, values in part.first_seen.items():
            merged = first_seen.setdefault(dim, {})
            for value, t in values.items():
                merged[value] = min(t, merged.get(value, t))
    kept = {
        dim: sorted(values, key=lambda v: (values[v], v))[: rules.max_segment_values]
        for dim, values in first_seen.items()
    }

    def fleet_name(dim: str, name: str) -> str:
        if dim in kept and name not in RESERVED and name not in kept[dim]:
            return "other"
        return name

    # (place, kpi, dimension, segment) -> component -> summed value, and the number of samples
    # (a segment is shown when it has at least one sample). place: window name, or None = live.
    totals: dict[tuple[str | None, str, str, str], dict[str, int]] = defaultdict(
        lambda: defaultdict(int)
    )
    samples_seen: dict[tuple[str | None, str, str, str], list[int]] = defaultdict(list)
    windows = _windows_kept(rules)  # the same for every sample: computed once
    for part in processed.values():
        for sample in _samples(part, rules):
            if sample.t is None:
                places: list[str | None] = [None]
            else:
                places = [
                    name
                    for name, size, lag in windows
                    if part.stream_time is not None
                    and _in_window(
                        sample.t, part.stream_time - lag * 1000, size, step_of(size, rules)
                    )
                ]
            component = sample.component
            if "currency" in sample.segments:
                component += ":" + fleet_name("currency", sample.segments["currency"])
            cells = [("overall", "")] + [
                (dim, fleet_name(dim, sample.segments[dim])) for dim in DIMENSIONS[sample.kpi]
            ]
            value = sample.value
            if sample.kpi == "backlog_age":  # its age at the partition's stream time
                assert part.stream_time is not None
                value = part.stream_time - sample.value
            for place in places:
                for dim, name in cells:
                    cell = (place, sample.kpi, dim, name)
                    totals[cell][component] += value
                    if component.startswith("samples") or sample.kpi == "backlog_age":
                        samples_seen[cell].append(value)
        # distinct users: counted per partition (a user is on one), then summed
        for (place, kpi, dim, name), users in _distinct_users(part, rules).items():
            totals[(place, kpi, dim, fleet_name(dim, name))][DISTINCT[kpi]] += len(users)
    for size in rules.windows_s:  # adoption: of all active users, in every row
        place = window_name(size)
        active = totals.get((place, "active_users", "overall", ""), {}).get("users", 0)
        totals[(place, "feature_adoption", "overall", "")]["active"] = active
        for (where, kpi, _, _), components in list(totals.items()):
            if (where, kpi) == (place, "feature_adoption"):
                components["active"] = active

    def kpi_doc(place: str | None, kpi: str) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "overall": _render(
                kpi,
                totals.get((place, kpi, "overall", ""), {}),
                samples_seen.get((place, kpi, "overall", ""), []),
            )
        }
        for dim in DIMENSIONS[kpi]:
            names = sorted(n for (p, k, d, n) in totals if (p, k, d) == (place, kpi, dim))
            doc[dim] = {
                name: _render(
                    kpi,
                    totals[(place, kpi, dim, name)],
                    samples_seen.get((place, kpi, dim, name), []),
                )
                for name in names
            }
        return doc

    def change_doc(kpi: str, change: Change) -> dict[str, Any]:
        short, confirmation = _window_names(change)
        docs = [kpi_doc(place, kpi) for place in (*short, *confirmation)]
        direction = change.direction or WORSE[kpi]
        out: dict[str, Any] = {
            "settings": {
                "short": window_name(change.short_s),
                "confirmation": window_name(change.confirmation_s),
                "baseline": window_name(change.baseline_s),
                "z": change.z,
                "confirmation_z": change.confirmation_z,
                "min_samples": change.min_samples,
                "direction": direction,
            },
            "complete": True,
        }
        for dim in ("overall", *DIMENSIONS[kpi]):
            if dim == "overall":
                cells = {"": [d["overall"] for d in docs]}
            else:
                names = sorted({n for d in docs for n in d[dim]})
                cells = {n: [d[dim].get(n) for d in docs] for n in names}
            rendered = {n: _change_cell(kpi, change, direction, v) for n, v in cells.items()}
            out[dim] = rendered[""] if dim == "overall" else rendered
        return out

    windows = {
        window_name(size): {
            "complete": True,
            **{kpi: kpi_doc(window_name(size), kpi) for kpi in WINDOWED_KPIS},
        }
        for size in rules.windows_s
    }
    sticky = stickiness(windows) if "activity" in partitions else None  # a live KPI
    times = [p.stream_time for p in processed.values() if p.stream_time is not None]
    folded: dict[str, dict[str, int]] = {topic: {} for topic in partitions}
    for part in processed.values():
        for dim, n in part.folded.items():
            target = folded.setdefault(part.topic, {})
            target[dim] = target.get(dim, 0) + n
    extra: dict[str, Any] = {}
    if change_windows:
        configured = {window_name(size) for size in rules.windows_s}
        extra["change_windows"] = {
            name: {
                kpi: kpi_doc(name, kpi)
                for kpi, change in rules.changes.items()
                if name in (*_window_names(change)[0], *_window_names(change)[1])
            }
            for name, _, _ in _windows_kept(rules)
            if name not in configured
        }
    return {
        **extra,
        "valid_at": _format(min(times)) if times else None,
        "latest": _format(max(times)) if times else None,
        "partitions": dict(partitions),
        "windows": windows,
        "change": {kpi: change_doc(kpi, change) for kpi, change in rules.changes.items()},
        "live": {
            **{kpi: kpi_doc(None, kpi) for kpi in LIVE_KPIS},
            **({"stickiness": sticky} if sticky is not None else {}),
            **(
                {"customers": {"overall": _customers_doc(records, rules, now_ms, partitions)}}
                if CUSTOMERS_TOPIC in partitions
                else {}
            ),
        },
        "segments": {
            "kept": {dim: sorted(values) for dim, values in sorted(kept.items())},
            "folded_events": {topic: dict(sorted(dims.items())) for topic, dims in folded.items()},
        },
        "events": {  # of the source topics
            topic: {
                outcome: sum(p.counts[outcome] for p in processed.values() if p.topic == topic)
                for outcome in OUTCOMES
            }
            for topic in partitions
            if topic != CUSTOMERS_TOPIC
        },
    }


def _customers_doc(
    records: list[Record], rules: Rules, now_ms: int, partitions: Mapping[str, int]
) -> dict[str, Any]:
    """The customer KPIs, all zero or without value before every cart partition decided."""
    doc = expected_customers(records, rules, now_ms=now_ms, partitions=partitions["cart-events"])
    doc.pop("at")
    if doc["as_of"] is not None:
        doc["as_of"] = _format(doc["as_of"])
        return doc
    counts = ("active", "previous", "retained", "repeat_customers", "orders", "anonymous_orders")
    values = ("retention_ratio", "churn_ratio", "repeat_purchase_ratio", "purchase_frequency")
    return {
        **dict.fromkeys(counts, 0),
        **dict.fromkeys((*values, "expected_lifetime_periods", "as_of")),
        "lifetime_value": {},
    }


# --------------------------------------------------------------------------------------------
# Rendering one KPI cell


def _div(a: float, b: float) -> float | None:
    return a / b if b else None


def _render(kpi: str, totals: Mapping[str, int], samples: list[int]) -> dict[str, Any]:
    """The published value of one KPI cell from its component totals (and duration samples)."""

    def n(component: str) -> int:
        return totals.get(component, 0)

    if kpi in ("cart_abandonment", "checkout_abandonment"):
        return {
            "abandoned": n("abandoned"),
            "converted": n("converted"),
            "ratio": _div(n("abandoned"), n("abandoned") + n("converted")),
        }
    if kpi in FRACTIONS:
        top, bottom, key, scale = FRACTIONS[kpi]
        ratio = _div(n(top), n(bottom))
        return {top: n(top), bottom: n(bottom), key: None if ratio is None else ratio * scale}
    if kpi in ("resolution_time", "first_response_time", "session_duration", "time_to_value"):
        return _duration(samples)
    if kpi in ("active_users", "new_users"):
        return {"users": n("users")}
    if kpi == "feature_adoption":
        return {"users": n("users"), "active": n("active"), "ratio": _div(n("users"), n("active"))}
    if kpi == "average_order_value":
        currencies = sorted({c.split(":", 1)[1] for c in totals if c.startswith("orders:")})
        return {
            cur: {
                "orders": n(f"orders:{cur}"),
                "amount": n(f"amount:{cur}") / 1_000_000,
                "average": _div(n(f"amount:{cur}") / 1_000_000, n(f"orders:{cur}")),
            }
            for cur in currencies
        }
    if kpi == "open_backlog":
        return {"tickets": n("tickets")}
    if kpi == "backlog_age":  # samples: the ages in ms
        return {
            "tickets": len(samples),
            "sum_seconds": sum(samples) / 1000,
            "mean_seconds": _div(sum(samples) / 1000, len(samples)),
            "oldest_seconds": max(samples) / 1000 if samples else None,
            "buckets": {
                **{str(b): sum(1 for a in samples if a <= b * 1000) for b in AGE_BOUNDS},
                "+Inf": len(samples),
            },
        }
    if kpi == "ces":
        return {
            "responses": n("responses"),
            "score_sum": n("score_sum"),
            "mean": _div(n("score_sum"), n("responses")),
            "easy": n("easy"),
            "easy_ratio": _div(n("easy"), n("responses")),
            "score_sum_of_squares": n("score_sum_of_squares"),
        }
    if kpi == "review_rating":
        return {
            "reviews": n("reviews"),
            "rating_sum": n("rating_sum"),
            "mean": _div(n("rating_sum"), n("reviews")),
            "good": n("good"),
            "good_ratio": _div(n("good"), n("reviews")),
            "rating_sum_of_squares": n("rating_sum_of_squares"),
        }
    if kpi == "nps":
        return _nps(n("promoters"), n("passives"), n("detractors"))
    if kpi == "sentiment":
        positive, neutral, negative = n("positive"), n("neutral"), n("negative")
        scored = positive + neutral + negative
        margin = _nps(positive, neutral, negative)["margin_of_error"]
        return {
            "positive": positive,
            "neutral": neutral,
            "negative": negative,
            "unscored": n("unscored"),
            "score_sum": n("score_sum"),
            "scored": scored,
            "net": _div(100 * (positive - negative), scored),
            "margin_of_error": margin,
            "positive_ratio": _div(positive, scored),
            "neutral_ratio": _div(neutral, scored),
            "negative_ratio": _div(negative, scored),
            "mean": _div(n("score_sum"), scored),
        }
    if kpi == "emotions":
        vocabulary = sorted(EMOTIONS)
        return {
            "replies": n("replies"),
            "named": {e: n(e) for e in vocabulary},
            "shares": {e: _div(n(e), n("replies")) for e in vocabulary},
        }
    if kpi == "net_emotion":
        # same arithmetic as NPS (100 x (positive - negative) / replies, adjusted-Wald margin)
        value = _nps(n("positive"), n("mixed"), n("negative"))
        return {
            "positive": value["promoters"],
            "mixed": value["passives"],
            "negative": value["detractors"],
            "replies": value["responses"],
            "score": value["score"],
            "margin_of_error": value["margin_of_error"],
        }
    raise ValueError(f"unknown KPI {kpi}")


def _nps(promoters: int, passives: int, detractors: int) -> dict[str, Any]:
    """NPS and its adjusted-Wald 95 % margin of error (MeasuringU), as semantics.md writes it."""
    responses = promoters + passives + detractors
    score = margin = None
    if responses:
        score = 100 * (promoters - detractors) / responses
        n_adj = responses + 3
        p = (promoters + 0.75) / n_adj
        d = (detractors + 0.75) / n_adj
        margin = 100 * 1.96 * math.sqrt((p + d - (p - d) ** 2) / n_adj)
    return {
        "promoters": promoters,
        "passives": passives,
        "detractors": detractors,
        "responses": responses,
        "score": score,
        "margin_of_error": margin,
    }


def _estimate(kpi: str, doc: dict[str, Any] | None) -> tuple[int, float, float] | None:
    """(n, value, variance of one sample) of a KPI cell, both on the published scale
    (spec, "Change alerts"): NPS-like scores per response on the -1..1 scale with
    var = p + d - (p - d)^2; proportions p (1 - p); means the mean square minus the squared
    mean. A variance below 0 (a reopen rate above 1) counts as 0. None without samples."""
    if doc is None:
        return None
    if kpi in ("nps", "net_emotion", "sentiment"):  # "net sentiment and net emotion like NPS"
        keys = {
            "nps": ("promoters", "detractors", "responses"),
            "net_emotion": ("positive", "negative", "replies"),
            "sentiment": ("positive", "negative", "scored"),
        }[kpi]
        top, bottom, n = (doc[k] for k in keys)
        if not n:
            return None
        p, d = top / n, bottom / n
        return n, 100 * (p - d), 100**2 * max(p + d - (p - d) ** 2, 0.0)
    if kpi in ("cart_abandonment", "checkout_abandonment") or kpi in FRACTIONS:
        if kpi in FRACTIONS:
            top_key, bottom_key, _, scale = FRACTIONS[kpi]
            top, n = doc[top_key], doc[bottom_key]
        else:
            top, n, scale = doc["abandoned"], doc["abandoned"] + doc["converted"], 1
        if not n:
            return None
        p = top / n
        return n, scale * p, scale**2 * max(p * (1 - p), 0.0)
    keys = {
        "ces": ("responses", "score_sum", "score_sum_of_squares"),
        "review_rating": ("reviews", "rating_sum", "rating_sum_of_squares"),
        "resolution_time": ("count", "sum_seconds", "sum_of_squares"),
        "first_response_time": ("count", "sum_seconds", "sum_of_squares"),
        "session_duration": ("count", "sum_seconds", "sum_of_squares"),
        "time_to_value": ("count", "sum_seconds", "sum_of_squares"),
    }[kpi]
    n, total, squares = (doc[k] for k in keys)
    if not n:
        return None
    mean = total / n
    return n, mean, max(squares / n - mean * mean, 0.0)


def _z_test(
    window: tuple[int, float, float] | None, baseline: tuple[int, float, float] | None
) -> dict[str, Any]:
    """z = (x_window - x_baseline) / sqrt(var_window / n_window + var_baseline / n_baseline);
    an infinite z as '+Inf' or '-Inf' (Prometheus' API), none for 0 / 0."""
    stderr = z = None
    if window is not None and baseline is not None:
        stderr = math.sqrt(window[2] / window[0] + baseline[2] / baseline[0])
        difference = window[1] - baseline[1]
        if stderr > 0:
            z = difference / stderr
        elif difference:
            z = "+Inf" if difference > 0 else "-Inf"
    return {
        "value": None if window is None else window[1],
        "samples": 0 if window is None else window[0],
        "baseline": None if baseline is None else baseline[1],
        "baseline_samples": 0 if baseline is None else baseline[0],
        "stderr": stderr,
        "z": z,
    }


def _change_cell(
    kpi: str, change: Change, direction: str, docs: list[dict[str, Any] | None]
) -> dict[str, Any]:
    """One segment's change figures from its docs over short, its baseline, confirmation, its
    baseline. Beyond: |z| >= z over the short window and >= confirmation_z over the
    confirmation window, both in the direction, with at least min_samples in the short window
    and in its baseline (docs/monitoring.md)."""
    short = _z_test(_estimate(kpi, docs[0]), _estimate(kpi, docs[1]))
    confirmation = _z_test(_estimate(kpi, docs[2]), _estimate(kpi, docs[3]))

    def signed(z: Any) -> float | None:
        return {"+Inf": math.inf, "-Inf": -math.inf}.get(z, z) if z is not None else None

    z, zc = signed(short["z"]), signed(confirmation["z"])
    enough = min(short["samples"], short["baseline_samples"]) >= change.min_samples
    down = z is not None and zc is not None and z <= -change.z and zc <= -change.confirmation_z
    up = z is not None and zc is not None and z >= change.z and zc >= change.confirmation_z
    wanted = {"down": down, "up": up, "both": down or up}[direction]
    return {**short, "confirmation": confirmation, "beyond": enough and wanted}


def quantile_ms(samples: list[int], q: float) -> int | None:
    """Nearest rank: the ceil(q·n)-th smallest sample (rank at least 1); None when empty."""
    if not samples:
        return None
    # q as the decimal it was written as: ceil(0.9 · 10) must be 9, not 10 (0.9 is not exact).
    exact_q = Fraction(q).limit_denominator(10_000)
    rank = max(1, math.ceil(exact_q * len(samples)))
    return sorted(samples)[rank - 1]


def _duration(samples_ms: list[int]) -> dict[str, Any]:
    """Count, exact sum, mean, exact nearest-rank p50/p90 and cumulative histogram (seconds)."""
    count, total = len(samples_ms), sum(samples_ms)
    buckets = {str(b): sum(1 for s in samples_ms if s <= b * 1000) for b in BOUNDS}
    buckets["+Inf"] = count
    p50, p90 = quantile_ms(samples_ms, 0.5), quantile_ms(samples_ms, 0.9)
    return {
        "count": count,
        "sum_seconds": total / 1000,
        "mean_seconds": _div(total / 1000, count),
        "p50_seconds": None if p50 is None else p50 / 1000,
        "p90_seconds": None if p90 is None else p90 / 1000,
        "buckets": buckets,
        # each sample squared in whole seconds, halves rounded up (semantics.md)
        "sum_of_squares": sum(((s + 500) // 1000) ** 2 for s in samples_ms),
    }


# --------------------------------------------------------------------------------------------
# Customers (spec/kpis.md, "Customers")
#
# Scope: every decided order reaches its customer's partition in time (none is late there), and
# each order counts once (by cart and event id) however often it is forwarded.


def _cart_lives(part: _Partition, rules: Rules) -> list[list[dict[str, Any]]]:
    """Each cart's applied events, split where the cart was forgotten: its customer stays
    known for the cart retention after the cart's last event."""
    retention = rules.cart_retention_s * 1000
    return _lives(part, "cart_id", lambda events: max(e["_t"] for e in events) + retention)


def _cart_order(event: dict[str, Any]) -> tuple[int, bool, str]:
    return (event["_t"], event["type"] == "order_placed", event["event_id"])


def _customer_orders(part: _Partition, rules: Rules) -> list[tuple[Any, ...]]:
    """(customer or None, t, micros or None, currency, identity) of every order of a partition:
    the order's own customer_id, else that of the latest cart_created before it in the cart."""
    out: list[tuple[Any, ...]] = []
    for life in _cart_lives(part, rules):
        cart_customer = None
        for event in sorted(life, key=_cart_order):
            if event["type"] == "cart_created" and "customer_id" in event:
                cart_customer = event["customer_id"]
            elif event["type"] == "order_placed":
                micros = None
                if "amount" in event:
                    micros = round(Fraction(str(event["amount"])) * 1_000_000)
                currency = event["_seg"].get("currency", "unknown")
                identity = (event["cart_id"], event["event_id"])
                customer = event.get("customer_id", cart_customer)
                out.append((customer, event["_t"], micros, currency, identity))
    return out


def expected_customers(
    records: Iterable[Record], rules: Rules, *, now_ms: int, partitions: int
) -> dict[str, Any]:
    """The customer KPIs over the cart-events records, at T: the time up to which every cart
    partition has decided its orders (an order is decided a step and grace after its own time),
    the smallest over the partitions, rounded down to the long step."""
    by_partition: dict[int, list[Record]] = defaultdict(list)
    for record in records:
        if record.topic == "cart-events":
            by_partition[record.partition].append(record)
    orders = {}  # identity -> order: forwarded twice, counted once
    decided_until: list[int] = []
    for records_of_partition in by_partition.values():
        part = _process("cart-events", records_of_partition, rules, now_ms)
        for order in _customer_orders(part, rules):
            orders[order[4]] = order
        if part.stream_time is not None:
            decided_until.append(part.stream_time - (rules.step_s + rules.grace_s) * 1000 - 1)
    if len(decided_until) < partitions:
        return {"at": None, "as_of": None}
    step, period = rules.long_step_s * 1000, rules.customer_period_s * 1000
    as_of = min(decided_until)  # the customers partitions' stream time
    at = as_of - as_of % step
    recent: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    earlier: set[str] = set()
    anonymous = 0
    for customer, t, *rest in orders.values():
        if customer is None:
            anonymous += at - period < t <= at
        elif at - period < t <= at:
            recent[customer].append((t, *rest))
        elif at - 2 * period < t <= at - period:
            earlier.add(customer)
    active, previous = len(recent), len(earlier)
    retained = len(earlier & recent.keys())
    n_orders = sum(len(o) for o in recent.values())
    churn = _div(previous - retained, previous)
    lifetime = (
        None if churn is None else min(1 / churn if churn else math.inf, rules.max_lifetime_periods)
    )
    frequency = _div(n_orders, active)
    values: dict[str, dict[str, Any]] = {}
    for currency in sorted({o[2] for os in recent.values() for o in os if o[1] is not None}):
        priced = [
            o[1] for os in recent.values() for o in os if o[1] is not None and o[2] == currency
        ]
        average = sum(priced) / 1_000_000 / len(priced)
        values[currency] = {
            "orders": len(priced),
            "amount": sum(priced) / 1_000_000,
            "average_order_value": average,
            "lifetime_value": None
            if frequency is None or lifetime is None
            else average * frequency * lifetime,
        }
    return {
        "at": at,
        "as_of": as_of,
        "active": active,
        "previous": previous,
        "retained": retained,
        "repeat_customers": sum(1 for o in recent.values() if len(o) >= 2),
        "orders": n_orders,
        "anonymous_orders": anonymous,
        "retention_ratio": _div(retained, previous),
        "churn_ratio": churn,
        "repeat_purchase_ratio": _div(sum(1 for o in recent.values() if len(o) >= 2), active),
        "purchase_frequency": frequency,
        "expected_lifetime_periods": lifetime,
        "lifetime_value": values,
    }


# --------------------------------------------------------------------------------------------
# Comparison

QUANTILE_KEYS = frozenset({"p50_seconds", "p90_seconds"})
#: Floats that are exact by construction (integer ms / millionths divided once).
EXACT_FLOAT_KEYS = frozenset({"sum_seconds", "amount"})
TOP_LEVEL = (
    "valid_at",
    "latest",
    "partitions",
    "windows",
    "change",
    "live",
    "segments",
    "events",
)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _leaf_matches(key: str, actual: Any, expected: Any, quantile_rel_tol: float) -> bool:
    if not (_is_number(actual) and _is_number(expected)):
        return type(actual) is type(expected) and actual == expected
    if key in QUANTILE_KEYS:
        return abs(actual - expected) <= quantile_rel_tol * abs(expected) + 1e-9
    if isinstance(expected, int) and isinstance(actual, int):
        return actual == expected  # counts
    if key in EXACT_FLOAT_KEYS:
        return actual == expected
    # Means, ratios, scores, margins: within floating-point rounding.
    return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12)


def compare_snapshots(
    actual: dict[str, Any], expected: dict[str, Any], quantile_rel_tol: float = 0.01
) -> list[str]:
    """Human-readable differences `path: actual … vs expected …` ([] when they agree).

    Quantiles within `quantile_rel_tol` (relative), computed floats within 1e-9 relative,
    everything else exactly. Keys `actual` has beyond `expected` are ignored at the top level
    only (e.g. `complete`, `snapshot_store`).
    """
    differences: list[str] = []

    def walk(path: str, key: str, a: Any, e: Any) -> None:
        if isinstance(e, dict):
            if not isinstance(a, dict):
                differences.append(f"{path}: actual {a!r} vs expected an object")
                return
            for k in sorted(set(a) | set(e), key=str):
                if k not in e:
                    differences.append(f"{path}.{k}: actual {a[k]!r} vs expected nothing")
                elif k not in a:
                    differences.append(f"{path}.{k}: actual missing vs expected {e[k]!r}")
                else:
                    walk(f"{path}.{k}", k, a[k], e[k])
        elif not _leaf_matches(key, a, e, quantile_rel_tol):
            differences.append(f"{path}: actual {a!r} vs expected {e!r}")

    if not isinstance(actual, dict):
        return [f"snapshot: actual {actual!r} vs expected an object"]
    for key in [*TOP_LEVEL, *sorted(k for k in expected if k not in TOP_LEVEL)]:
        if key not in expected:
            continue
        if key not in actual:
            differences.append(f"{key}: actual missing vs expected {expected[key]!r}")
        else:
            walk(key, key, actual[key], expected[key])
    return differences
