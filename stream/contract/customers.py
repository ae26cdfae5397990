"""Pseudonymous customer keys: a raw `customer_id` never gets past decoding.

A key is HMAC-SHA256 of the raw id under a secret (`customer_key_secret`), cut to 16 bytes: 128
bits make collisions between customers negligible, and without the secret nobody can tell which
raw id a key belongs to, not even by hashing a list of guessed ids. It is written as 22 unpadded
base64url characters: text, because state, changelogs and repartition records are JSON (and a
Kafka key), and base64url rather than 32 hex characters because every open cart and every
customer holds one (on CPython 3.11 a 22-character str takes 71 bytes, a 32-character one 81).
"""

from __future__ import annotations

import base64
import hmac
from functools import lru_cache
from typing import Any

#: Bytes of the HMAC kept.
KEY_BYTES = 16
#: The body field that names a customer, on every topic that has one (spec/events.md).
CUSTOMER_FIELD = "customer_id"
#: The body field that names a user of the activity topic: its record key, personal as well.
USER_FIELD = "user_id"
#: Activity fields no KPI needs, some unbounded (a page's URL may hold anything): dropped.
DROPPED_ACTIVITY_FIELDS = ("page", "milestone")


@lru_cache(maxsize=16384)
def customer_key(raw: str, secret: bytes) -> str:
    """The pseudonymous key of a raw customer id: same id and secret, same key. Kept for the
    ids seen lately (in memory only, about 5 MB at most): a user's events come in runs, and
    the HMAC cost 1.5 µs of an activity event's decoding."""
    digest = hmac.digest(secret, raw.encode(), "sha256")[:KEY_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def pseudonymize(body: dict[str, Any], secret: bytes | None) -> None:
    """Replace a body's raw customer id by its key, in place; without a secret, drop it (no
    KPI can use it then, and no raw id may stay in a decoded event)."""
    raw = body.get(CUSTOMER_FIELD)
    if raw is None:
        return
    if secret is None:
        del body[CUSTOMER_FIELD]
    else:
        body[CUSTOMER_FIELD] = customer_key(raw, secret)


def pseudonymize_user(body: dict[str, Any], secret: bytes) -> None:
    """Replace an activity event's raw user id by its key under the customer key secret (one
    secret for every personal key), in place, and drop the fields no KPI needs. The user id is
    the record key, so unlike a customer id it cannot just be dropped: without a secret the
    activity topic is not read at all (stream/config/secret.py)."""
    body[USER_FIELD] = customer_key(body[USER_FIELD], secret)
    for name in DROPPED_ACTIVITY_FIELDS:
        body.pop(name, None)
