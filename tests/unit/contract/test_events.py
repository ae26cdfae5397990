"""Decoding: every record becomes an event or a rejection with a reason; nothing raises."""

import pytest

from stream.contract.events import Event, Rejection, decode, parse_timestamp_ms

NOW = parse_timestamp_ms("2026-11-23T10:00:00Z")
assert NOW is not None


def classify(raw: bytes, topic: str = "survey-replies") -> Event | Rejection:
    return decode(raw, topic, max_bytes=1000, now_ms=NOW, max_future_ms=3_600_000)


def test_valid_event_keeps_envelope_and_body() -> None:
    raw = (
        b'{"event_id": "e1", "type": "nps", "occurred_at": "2026-11-23T09:15:00.250+01:00",'
        b' "response_id": "r1", "score": 9, "extra": {"ignored": true}}'
    )
    event = classify(raw)
    assert isinstance(event, Event)
    assert (event.key, event.event_id, event.type) == ("r1", "e1", "nps")
    assert event.t == NOW - 105 * 60_000 + 250  # 09:15:00.250+01:00 is 08:15:00.250Z


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (None, "invalid_json"),
        (b"", "invalid_json"),
        (b"{nope", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (
            b'{"event_id": "e", "type": "item_added", "occurred_at": "2026-11-23T10:00:00Z"}',
            "unknown_type",
        ),
        (b'{"event_id": "e", "occurred_at": "2026-11-23T10:00:00Z"}', "unknown_type"),
        (
            b'{"event_id": "e", "type": "nps", "occurred_at": "2026-11-23T10:00:00Z",'
            b' "response_id": "r", "score": 11}',
            "schema_violation",
        ),
        (
            b'{"event_id": "e", "type": "csat", "occurred_at": "2026-11-23T10:00:00Z",'
            b' "response_id": "r", "score": 0}',
            "schema_violation",
        ),
        (
            b'{"event_id": "", "type": "nps", "occurred_at": "2026-11-23T10:00:00Z",'
            b' "response_id": "r", "score": 1}',
            "schema_violation",
        ),
        (
            b'{"event_id": "e", "type": "nps", "occurred_at": "2026-11-23 10:00:00",'
            b' "response_id": "r", "score": 1}',
            "schema_violation",
        ),
        (
            b'{"event_id": "e", "type": "nps", "occurred_at": "2026-11-23T10:00:00",'
            b' "response_id": "r", "score": 1}',
            "schema_violation",
        ),
        (
            b'{"event_id": "e", "type": "nps", "occurred_at": "2026-11-23T10:00:00Z",'
            b' "response_id": "r", "score": 1, "schema_version": 2}',
            "unsupported_schema_version",
        ),
        (
            b'{"event_id": "e", "type": "nps", "occurred_at": "2026-11-23T12:00:00Z",'
            b' "response_id": "r", "score": 1}',
            "occurred_at_in_future",
        ),
        (
            b'{"event_id": "e", "type": "nps", "occurred_at": "2026-11-23T10:00:00Z",'
            b' "response_id": "r", "score": 1, "comment": "' + b"x" * 1000 + b'"}',
            "too_large",
        ),
    ],
)
def test_bad_records_are_classified(raw: bytes | None, error: str) -> None:
    result = classify(raw)  # type: ignore[arg-type]
    assert isinstance(result, Rejection)
    assert result.error == error
    assert result.detail


def test_rejection_details_do_not_echo_personal_values() -> None:
    raw = (
        b'{"event_id": "e", "type": "nps", "occurred_at": "2026-11-23T10:00:00Z",'
        b' "response_id": "r", "score": 99, "customer_id": "cust-secret-42"}'
    )
    result = classify(raw)
    assert isinstance(result, Rejection)
    assert "cust-secret-42" not in result.detail
