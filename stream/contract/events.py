"""Decoding and validating one Kafka record into an event, or a reason to dead-letter it.

Nothing here raises on bad input: every record becomes either an `Event` or a `Rejection` whose
`error` code and `detail` go into the dead-letter headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from stream.contract.customers import USER_FIELD, pseudonymize, pseudonymize_user
from stream.contract.schemas import (
    KEY_FIELD,
    SUPPORTED_SCHEMA_VERSIONS,
    TYPES_BY_TOPIC,
    schema_error,
)
from stream.contract.voice import take_texts
from stream.voice import Sentiment


@dataclass(slots=True, frozen=True)
class Event:
    """A valid event: the envelope parsed, the body kept for the KPI rules."""

    topic: str
    key: str  # cart_id, ticket_id, response_id, or the user's pseudonymous key
    event_id: str
    type: str
    t: int  # occurred_at, milliseconds since the epoch
    body: dict[str, Any]


@dataclass(slots=True, frozen=True)
class Rejection:
    """Why a record goes to the dead-letter topic."""

    error: str  # too_large, invalid_json, unknown_type, schema_violation, ...
    detail: str


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def parse_timestamp_ms(text: str) -> int | None:
    """RFC 3339 with an offset to epoch milliseconds; None when unparseable or offset-less."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return (moment - _EPOCH) // _MILLISECOND


def decode(
    raw: bytes | None,
    topic: str,
    *,
    max_bytes: int,
    now_ms: int,
    max_future_ms: int,
    customer_secret: bytes | None = None,
    sentiment: Sentiment | None = None,
) -> Event | Rejection:
    """Classify one record of a source topic. A valid event's raw customer id is replaced by its
    pseudonymous key (dropped without `customer_secret`), and its free text by the text's
    sentiment (stream/contract/voice.py): no decoded event holds either. An activity event's
    user id (its key) becomes the user's key under the same secret, and its page is dropped;
    without the secret it cannot be keyed, so it is rejected (`no_key_secret`: the worker never
    reads the topic then)."""
    if raw is None:
        return Rejection("invalid_json", "empty record value")
    if len(raw) > max_bytes:
        return Rejection("too_large", f"{len(raw)} bytes, limit {max_bytes}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection("invalid_json", str(exc)[:200])
    if not isinstance(obj, dict):
        return Rejection("invalid_json", f"expected a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in TYPES_BY_TOPIC[topic]:
        return Rejection("unknown_type", f"type {str(kind)[:64]!r} is not an event of {topic}")
    problem = schema_error(topic, obj)
    if problem is not None:
        return Rejection("schema_violation", problem[:300])
    version = obj.get("schema_version", 1)
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        return Rejection("unsupported_schema_version", f"schema_version {version} is not supported")
    t = parse_timestamp_ms(obj["occurred_at"])
    if t is None:
        return Rejection("schema_violation", "occurred_at is not an RFC 3339 timestamp")
    if t > now_ms + max_future_ms:
        return Rejection("occurred_at_in_future", f"occurred_at is {(t - now_ms) // 1000} s ahead")
    if KEY_FIELD[topic] == USER_FIELD:
        if customer_secret is None:
            return Rejection("no_key_secret", "user_id cannot be keyed without the key secret")
        pseudonymize_user(obj, customer_secret)
    pseudonymize(obj, customer_secret)
    take_texts(obj, sentiment)
    return Event(topic, obj[KEY_FIELD[topic]], obj["event_id"], kind, t, obj)
