"""The CPU cost of publishing to Redis, on a large state under a steady live load.

The partitions' states are built in this process from the benchmark's log (the same events a
worker would hold after replaying it), then live events keep coming at a fixed event-time rate
while the snapshot store publishes once per simulated `publish_interval`. Only the publishing
is timed: process CPU (every thread) spent inside `publish`, per publish. The Redis server is
real and separate, so its own CPU is not counted.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from bench.eventlog import Record, mixed_events, to_record
from stream.config.settings import Settings
from stream.contract.events import Event, decode
from stream.contract.schemas import SOURCE_TOPICS
from stream.publish.document import Shape
from stream.state.partition import PartitionState
from stream.voice import Sentiment, sentiment
from stream.wiring import state_config, topic_rules

#: Publishes measured, one per simulated second of the live load (a step boundary included).
ROUNDS = 90
#: Live events per simulated second between two publishes.
LIVE_RATE = 500
PARTITIONS = 4

#: One publish of the given partition states, keyed 'topic/partition'.
Publish = Callable[[dict[str, PartitionState]], Awaitable[None]]


@dataclass
class PublishCost:
    """CPU seconds spent publishing, per publish, over the rounds measured."""

    rounds: int
    cpu_per_publish_s: float
    max_cpu_per_publish_s: float
    wall_per_publish_s: float
    series: int  # window series held by all partitions, for scale


def settings_for(windows: str) -> Settings:
    return Settings.load({"config": "none", "windows": windows}, environ={})


def shape_of(windows: str) -> Shape:
    """The document of PARTITIONS partitions per topic with these windows."""
    settings = settings_for(windows)
    return Shape(
        tuple(w * 1000 for w in settings.windows),
        dict.fromkeys(SOURCE_TOPICS, PARTITIONS),
        settings.max_segment_values,
    )


def empty_states(settings: Settings) -> dict[str, PartitionState]:
    """A worker's states before any record, PARTITIONS per source topic."""
    config = state_config(settings)
    rules = {r.topic: r for r in topic_rules(settings)}
    return {
        f"{topic}/{n}": PartitionState(topic, n, rules[topic], config)
        for topic in SOURCE_TOPICS
        for n in range(PARTITIONS)
    }


def states_from(records: list[Record], windows: str) -> dict[str, PartitionState]:
    """The states a worker holds after applying these records, PARTITIONS per topic."""
    states = empty_states(settings_for(windows))
    apply(states, records)
    return states


@cache
def texts() -> Sentiment:
    """Scores free text as the worker does."""
    return sentiment("lexicon")


def apply(states: dict[str, PartitionState], records: list[Record]) -> None:
    """Decode and apply records as the worker would, partitioned by key; flush every state."""
    now_ms = int(time.time() * 1000)
    for record in records:
        n = zlib.crc32(record.key) % PARTITIONS
        state = states[f"{record.topic}/{n}"]
        event = decode(
            record.value,
            record.topic,
            max_bytes=1 << 20,
            now_ms=now_ms,
            max_future_ms=3_600_000,
            sentiment=texts(),
        )
        if isinstance(event, Event):
            state.apply(event, state.offset + 1)
    for state in states.values():
        state.flush()


def live_seconds(seed: int, start: datetime) -> Iterator[list[Record]]:
    """The live load, one simulated second at a time."""
    events = mixed_events(seed, start, LIVE_RATE)
    while True:
        yield [to_record(next(events)) for _ in range(LIVE_RATE)]


async def measure_publishing(
    states: dict[str, PartitionState],
    publish: Publish,
    live: Iterator[list[Record]],
    rounds: int = ROUNDS,
) -> PublishCost:
    """Apply a second of live events, publish, and time the publish; `rounds` times (after
    one publish that writes everything once, as a worker's first publish does)."""
    await publish(states)
    cpu: list[float] = []
    wall = 0.0
    for _ in range(rounds):
        apply(states, next(live))
        await asyncio.sleep(0)
        c0, w0 = time.process_time(), time.perf_counter()
        await publish(states)
        cpu.append(time.process_time() - c0)
        wall += time.perf_counter() - w0
    series = sum(len(w.totals) for s in states.values() for w in s.windows)
    return PublishCost(rounds, sum(cpu) / rounds, max(cpu), wall / rounds, series)
