"""Hostile input: the decode/validate path never raises and classifies every input."""

from __future__ import annotations

import json

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.contract.events import Event, Rejection, decode
from stream.contract.schemas import SOURCE_TOPICS

NOW = 1_795_000_000_000
SECRET = b"k" * 32
VALID = {
    "cart-events": {
        "event_id": "e1",
        "type": "item_added",
        "occurred_at": "2026-11-23T10:00:00Z",
        "cart_id": "c1",
        "quantity": 2,
        "unit_price": 3.5,
        "channel": "web",
    },
    "tickets": {
        "event_id": "e2",
        "type": "ticket_opened",
        "occurred_at": "2026-11-23T10:00:00Z",
        "ticket_id": "t1",
        "team": "billing",
        "priority": "high",
    },
    "survey-replies": {
        "event_id": "e3",
        "type": "nps",
        "occurred_at": "2026-11-23T10:00:00Z",
        "response_id": "r1",
        "score": 9,
    },
    "activity": {
        "event_id": "e4",
        "type": "page_viewed",
        "occurred_at": "2026-11-23T10:00:00Z",
        "user_id": "u1",
        "session_id": "s1",
        "page": "/start",
    },
}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


def classify(raw: bytes, topic: str) -> Event | Rejection:
    result = decode(
        raw, topic, max_bytes=65536, now_ms=NOW, max_future_ms=3_600_000, customer_secret=SECRET
    )
    assert isinstance(result, Event | Rejection)
    if isinstance(result, Rejection):
        assert result.error and result.detail
    return result


@given(st.binary(max_size=2000), st.sampled_from(SOURCE_TOPICS))
def test_random_bytes(raw: bytes, topic: str) -> None:
    classify(raw, topic)


@given(json_values, st.sampled_from(SOURCE_TOPICS))
def test_random_json(value: object, topic: str) -> None:
    classify(_dumps(value), topic)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SOURCE_TOPICS),
    st.sampled_from(
        [
            "event_id",
            "type",
            "occurred_at",
            "score",
            "cart_id",
            "ticket_id",
            "response_id",
            "quantity",
            "channel",
            "schema_version",
            "priority",
        ]
    ),
    json_values
    | st.integers(10_000, 80_000).map(lambda n: "x" * n)
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.sampled_from(
        [
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2026-13-01T00:00:00Z",
            "2026-11-23T10:00:00",
            "2026-11-23T10:00:00+25:00",
        ]
    ),
)
def test_mutations_of_valid_events(topic: str, field: str, value: object) -> None:
    event = dict(VALID[topic])
    event[field] = value
    result = classify(_dumps(event), topic)
    if isinstance(result, Event):
        assert result.event_id == event["event_id"]


def _dumps(event: object) -> bytes:
    try:
        return orjson.dumps(event)
    except TypeError:  # integers beyond 64 bits: write them as JSON text anyway
        return json.dumps(event).encode()


def test_deep_nesting_invalid_utf8_and_oversize() -> None:
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    assert isinstance(classify(deep, "tickets"), Rejection)
    assert isinstance(classify(b'{"event_id": "\xff\xfe"}', "tickets"), Rejection)
    big = orjson.dumps({**VALID["tickets"], "comment": "x" * 70_000})
    assert classify(big, "tickets") == Rejection("too_large", f"{len(big)} bytes, limit 65536")


def test_timestamps_far_in_the_past_and_future() -> None:
    past = orjson.dumps({**VALID["survey-replies"], "occurred_at": "0001-01-01T00:00:00Z"})
    assert isinstance(classify(past, "survey-replies"), Event)  # valid, and simply late
    future = orjson.dumps({**VALID["survey-replies"], "occurred_at": "9999-12-31T23:59:59Z"})
    result = classify(future, "survey-replies")
    assert isinstance(result, Rejection) and result.error == "occurred_at_in_future"
