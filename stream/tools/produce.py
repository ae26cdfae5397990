"""Publishing events from JSON Lines to the topic their type belongs to, keyed as the contract says.

Each line is validated exactly as the worker would; an invalid line is reported with its number and
reason and not sent, and makes the exit code non-zero. `--topic` with `--no-validate` sends lines
as they are (for testing the dead-letter path).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from stream.contract.events import Rejection, decode
from stream.contract.schemas import (
    KEY_FIELD,
    TOPIC_OF_TYPE,
    TYPES_BY_TOPIC,
    record_key,
    topic_of,
)

#: every event type, by topic, for the message about an unknown type
KNOWN = "; ".join(f"{', '.join(sorted(kinds))} ({t})" for t, kinds in TYPES_BY_TOPIC.items())


@dataclass
class Outcome:
    """What a produce run did."""

    sent: Counter[str] = field(default_factory=Counter)
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)


#: Lets decode() check activity events (it keys their users); the keys made are thrown away.
_CHECK_ONLY = secrets.token_bytes(32)


def route(line: bytes, *, max_bytes: int, max_future_s: int) -> tuple[str, bytes] | str:
    """(topic, key) for a valid event line, else the reason it is invalid."""
    try:
        obj = orjson.loads(line) if len(line) <= max_bytes else None
    except orjson.JSONDecodeError:
        obj = None  # decode() below says why
    kind = obj.get("type") if isinstance(obj, dict) else None
    topic = TOPIC_OF_TYPE.get(kind) if isinstance(kind, str) else None
    if topic is None and isinstance(obj, dict):
        # the user chose no topic: name the types of every topic, not those of one
        what = f"type {str(kind)[:64]!r} is not an event type" if "type" in obj else "no type"
        return f"unknown_type: {what}; known types are {KNOWN}"
    result = decode(
        line,
        topic or "cart-events",
        max_bytes=max_bytes,
        now_ms=int(time.time() * 1000),
        max_future_ms=max_future_s * 1000,
        customer_secret=_CHECK_ONLY,
    )
    if isinstance(result, Rejection):
        return f"{result.error}: {result.detail}"
    assert topic is not None and isinstance(obj, dict)
    return topic, str(obj[KEY_FIELD[topic]]).encode()  # the producer's key: the raw id


async def produce_lines(
    lines: Iterable[bytes],
    *,
    kafka: dict[str, Any] | None,
    validate: bool = True,
    topic: str | None = None,
    max_bytes: int = 65536,
    max_future_s: int = 3600,
    on_line: Callable[[int], None] = lambda n: None,
) -> Outcome:
    """Send every line (stripped) that routes; blank lines are skipped. `kafka` holds the
    producer's connection options (stream.runtime.connection.client_options); None is a dry
    run: every line is validated and counted, nothing is sent."""
    outcome = Outcome()
    producer = AIOKafkaProducer(**kafka, linger_ms=5) if kafka is not None else None
    if producer is not None:
        await producer.start()
    try:
        for number, raw in enumerate(lines, start=1):
            line = raw.rstrip(b"\r\n")
            on_line(len(raw))
            if not line.strip():
                continue
            if validate:
                routed = route(line, max_bytes=max_bytes, max_future_s=max_future_s)
                if isinstance(routed, str):
                    outcome.invalid.append((number, routed))
                    continue
                target, key = routed
            else:
                assert topic is not None, "--no-validate needs --topic"
                target, key = topic, str(number).encode()
            if producer is not None:
                await producer.send(target, value=line, key=key)
            outcome.sent[target] += 1
        if producer is not None:
            await producer.flush()
    finally:
        if producer is not None:
            await producer.stop()
    return outcome


async def send_live(
    events: Iterable[dict[str, Any]],
    kafka: dict[str, Any],
    rate: float,
    advance: Callable[[int], None],
) -> int:
    """Send each event at its event time (paced at `rate` per second from now)."""
    producer = AIOKafkaProducer(**kafka, linger_ms=5)
    await producer.start()
    sent = 0
    started = time.monotonic()
    try:
        for event in events:
            delay = started + sent / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await producer.send(
                topic_of(event), orjson.dumps(event), key=record_key(event).encode()
            )
            sent += 1
            advance(1)
    finally:
        await producer.stop()
    return sent
