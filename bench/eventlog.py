"""The benchmark's event logs, built with the product's generator and produced in big batches.

The generator's topic mix drifts with the length of the run (a ticket's later events come
minutes to hours after its opening), so the logs here take the generator's events in emission
order and leave out those of a topic that already has its share: the mix is as asked, and keys,
segments and per-entity event sequences stay the generator's.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from stream.config.settings import Settings
from stream.contract.schemas import record_key, topic_of
from stream.runtime.connection import client_options
from stream.tools.generate import Profile, generate

#: The issue's mix of the log: shares of events per source topic. Product activity is not in
#: it (the figures stay comparable with earlier runs); bench/engagement.py measures it apart.
MIX: dict[str, float] = {"cart-events": 0.5, "tickets": 0.3, "survey-replies": 0.2}
#: Tickets solved within the log's span (so resolution KPIs have samples), and started often
#: enough that the generator's supply is close to the mix (fewer events dropped).
#: No product activity: the mix has none (see MIX).
LOG_PROFILE = Profile(
    ticket_share=0.4, resolution_median_s=1800, first_reply_median_s=300, activity_share=0
)
#: Only the opening of a ticket and the first events of a cart: entities that stay open.
CART_ONLY = Profile(cart_share=1, ticket_share=0, survey_share=0, activity_share=0)
TICKET_ONLY = Profile(cart_share=0, ticket_share=1, survey_share=0, activity_share=0)


@dataclass(frozen=True, slots=True)
class Record:
    """One source record, ready to send."""

    topic: str
    key: bytes
    value: bytes


def to_record(event: dict[str, Any]) -> Record:
    return Record(topic_of(event), record_key(event).encode(), orjson.dumps(event))


def in_mix(
    events: Iterable[dict[str, Any]], mix: dict[str, float], slack: int = 100
) -> Iterator[dict[str, Any]]:
    """The events whose topic is not more than `slack` events above its share of those taken:
    an endless stream in the mix (a strict rule would drop half the events, out of turn)."""
    taken: Counter[str] = Counter()
    total = 0
    for event in events:
        topic = topic_of(event)
        if taken[topic] < mix.get(topic, 0.0) * total + slack:
            taken[topic] += 1
            total += 1
            yield event


def mixed_events(
    seed: int, start: datetime, rate: float, profile: Profile = LOG_PROFILE
) -> Iterator[dict[str, Any]]:
    """An endless stream of generated events in the issue's mix, event times from `start`."""
    return in_mix(generate(seed, start, rate, duration_s=10.0**9, profile=profile), MIX)


#: Logs of one topic (`python -m bench.cpu --only`): the generator with only that topic's entities
#: (every slot a user's session for activity), whole lives included.
ONLY: dict[str, Profile] = {
    "cart-events": CART_ONLY,
    "activity": Profile(activity_share=1),
}


def log_events(
    total: int,
    seed: int,
    rate: float,
    end: datetime,
    mix: dict[str, float] = MIX,
    profile: Profile = LOG_PROFILE,
) -> list[Record]:
    """`total` events, exactly in the mix, whose last event time is `end`.

    Each topic takes the generator's events in emission order until it has its share. How many
    events that drops depends on the length of the run, so the events are generated first and
    then moved in time as a block, keeping their spacing.
    """
    quota = {topic: round(share * total) for topic, share in mix.items()}
    first = next(iter(mix))
    quota[first] += total - sum(quota.values())
    start = end - timedelta(seconds=total / rate)
    events: list[dict[str, Any]] = []
    taken: Counter[str] = Counter()
    for event in generate(seed, start, rate, duration_s=10.0**9, profile=profile):
        if len(events) >= total:
            break
        topic = topic_of(event)
        if taken[topic] < quota.get(topic, 0):
            taken[topic] += 1
            events.append(event)
    if not events:
        return []
    shift = end - parse_time(events[-1]["occurred_at"])
    for event in events:
        event["occurred_at"] = format_time(parse_time(event["occurred_at"]) + shift)
    return [to_record(e) for e in events]


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, as the generator writes it."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def last_event_time(records: list[Record]) -> datetime:
    """The largest occurred_at of a log (the stream time a worker reaches at its end)."""
    return max(parse_time(orjson.loads(r.value)["occurred_at"]) for r in records[-1000:])


def open_carts(count: int, seed: int, start: datetime, rate: float) -> list[Record]:
    """`count` carts that stay open: each one's cart_created (80 % have one) and first item."""
    out: list[Record] = []
    seen: set[str] = set()
    for event in generate(seed, start, rate, duration_s=10.0**9, profile=CART_ONLY):
        cart = event["cart_id"]
        if event["type"] == "cart_created" or (event["type"] == "item_added" and cart not in seen):
            if cart not in seen and len(seen) == count:
                break
            if event["type"] == "item_added":
                seen.add(cart)
            out.append(to_record(event))
    # a cart_created whose first item fell after the cut is left out: every cart has an item
    return [r for r in out if orjson.loads(r.value)["cart_id"] in seen]


def open_tickets(count: int, seed: int, start: datetime, rate: float) -> list[Record]:
    """`count` tickets that stay open: their ticket_opened only."""
    out: list[Record] = []
    for event in generate(seed, start, rate, duration_s=10.0**9, profile=TICKET_ONLY):
        if event["type"] == "ticket_opened":
            out.append(to_record(event))
            if len(out) == count:
                break
    return out


@dataclass
class Produced:
    """Where the records went: per (topic, partition), the offsets of the records sent."""

    counts: Counter[str] = field(default_factory=Counter)
    end_offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # last offset + 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def merge(self, other: Produced) -> None:
        self.counts.update(other.counts)
        for tp, end in other.end_offsets.items():
            self.end_offsets[tp] = max(end, self.end_offsets.get(tp, 0))


def connection(broker: str) -> dict[str, Any]:
    """aiokafka options to reach the broker as the worker does (CXKPI_KAFKA_* security too)."""
    return client_options(Settings.load({"broker": broker, "config": "none"}))


def bulk_producer(broker: str, **options: Any) -> AIOKafkaProducer:
    """A producer for pre-producing logs: large batches, so it is limited by the broker."""
    settings: dict[str, Any] = {"linger_ms": 20, "max_batch_size": 512 * 1024, "acks": 1}
    settings.update(options)
    return AIOKafkaProducer(**connection(broker), **settings)


async def produce(
    broker: str,
    records: list[Record],
    on_sent: Callable[[int], None] = lambda n: None,
    chunk: int = 5000,
) -> Produced:
    """Send every record, keyed as the contract says; waits until all are acknowledged."""
    produced = Produced()
    producer = bulk_producer(broker)
    await producer.start()
    try:
        for first in range(0, len(records), chunk):
            part = records[first : first + chunk]
            futures = [await producer.send(r.topic, r.value, key=r.key) for r in part]
            for record, meta in zip(part, await asyncio.gather(*futures), strict=True):
                tp = (record.topic, meta.partition)
                produced.end_offsets[tp] = max(produced.end_offsets.get(tp, 0), meta.offset + 1)
                produced.counts[record.topic] += 1
            on_sent(len(part))
    finally:
        await producer.stop()
    return produced


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
