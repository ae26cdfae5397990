"""Customer ids: the optional `customer_id` of orders, and keys in place of raw ids."""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson
import pytest

from stream.contract.customers import customer_key
from stream.contract.events import Event, Rejection, decode, parse_timestamp_ms

NOW = parse_timestamp_ms("2026-11-23T10:00:00Z")
assert NOW is not None
SECRET = b"s" * 32
RAW = "cust-4711@example.com"
ENVELOPE = {"event_id": "e1", "occurred_at": "2026-11-23T09:00:00Z"}


def classify(topic: str, body: dict[str, object], secret: bytes | None = SECRET) -> object:
    raw = orjson.dumps({**ENVELOPE, **body})
    return decode(
        raw, topic, max_bytes=1000, now_ms=NOW, max_future_ms=3_600_000, customer_secret=secret
    )


def test_the_key_is_the_hmac_sha256_cut_to_16_bytes() -> None:
    key = customer_key(RAW, SECRET)
    digest = hmac.new(SECRET, RAW.encode(), hashlib.sha256).digest()[:16]
    assert base64.urlsafe_b64decode(key + "==") == digest
    assert len(key) == 22 and key.isascii() and "=" not in key
    assert customer_key(RAW, SECRET) == key  # stable: replay and restarts give the same key
    assert customer_key(RAW, b"t" * 32) != key  # another secret, another key
    assert customer_key("cust-4712@example.com", SECRET) != key


def test_orders_with_and_without_a_customer_are_valid() -> None:
    """Producers of the older contract (no customer_id on orders) keep working."""
    order = {"type": "order_placed", "cart_id": "c1", "amount": 10.0, "currency": "EUR"}
    old = classify("cart-events", order)
    new = classify("cart-events", {**order, "customer_id": RAW})
    assert isinstance(old, Event) and "customer_id" not in old.body
    assert isinstance(new, Event) and new.body["customer_id"] == customer_key(RAW, SECRET)


@pytest.mark.parametrize("bad", ["", "u" * 129, 42, None, ["u1"]])
def test_a_malformed_customer_id_is_dead_lettered_with_a_reason(bad: object) -> None:
    order = {"type": "order_placed", "cart_id": "c1", "customer_id": bad}
    result = classify("cart-events", order)
    assert isinstance(result, Rejection)
    assert result.error == "schema_violation" and "customer_id" in result.detail


@pytest.mark.parametrize(
    ("topic", "body"),
    [
        ("cart-events", {"type": "cart_created", "cart_id": "c1"}),
        ("cart-events", {"type": "order_placed", "cart_id": "c1"}),
        ("tickets", {"type": "ticket_opened", "ticket_id": "t1"}),
        ("survey-replies", {"type": "nps", "response_id": "r1", "score": 9}),
    ],
)
def test_no_decoded_event_holds_a_raw_customer_id(topic: str, body: dict[str, object]) -> None:
    keyed = classify(topic, {**body, "customer_id": RAW})
    assert isinstance(keyed, Event)
    assert keyed.body["customer_id"] == customer_key(RAW, SECRET)
    assert RAW not in repr(keyed)
    without_secret = classify(topic, {**body, "customer_id": RAW}, secret=None)
    assert isinstance(without_secret, Event)
    assert "customer_id" not in without_secret.body and RAW not in repr(without_secret)


def test_an_activity_event_is_keyed_by_the_users_key_and_its_page_is_dropped() -> None:
    """events.md: user_id is replaced by a keyed hash right after decoding (the same secret as
    the customer keys); the unbounded page and the milestone go too."""
    view = {"type": "page_viewed", "user_id": RAW, "session_id": "s1", "page": "/me?u=" + RAW}
    decoded = classify("activity", view)
    assert isinstance(decoded, Event)
    assert decoded.key == decoded.body["user_id"] == customer_key(RAW, SECRET)
    assert "page" not in decoded.body and RAW not in repr(decoded)
    reached = classify("activity", {"type": "value_reached", "user_id": RAW, "milestone": "m"})
    assert isinstance(reached, Event) and "milestone" not in reached.body


def test_an_activity_event_without_the_secret_is_rejected_not_kept_raw() -> None:
    decoded = classify("activity", {"type": "signed_up", "user_id": RAW}, secret=None)
    assert isinstance(decoded, Rejection) and decoded.error == "no_key_secret"
    assert RAW not in decoded.detail
