"""The Faust side of one source topic: consume, classify, apply.

A `TopicProcessor` keeps the `PartitionState` of every partition of its topic that this worker is
assigned. Faust's fetch loop hands it each record of its topic (`on_record`, see
stream/runtime/transport.py). Persistence is its checkpoint's (stream/runtime/checkpoint.py): a
record is acknowledged only after a flush round committed the epoch holding its effect in the
changelog, so a crash at any point replays exactly the records whose effect is missing, and replay
skips the ones already applied. Which offset each partition is read from is decided by its state
(stream/runtime/positions.py), not by the consumer.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

import faust
from faust.types import Message
from prometheus_client import Histogram

from stream.config.settings import Settings
from stream.contract.events import Event, Rejection, decode
from stream.contract.schemas import dead_letter_topic
from stream.runtime.checkpoint import Checkpoint
from stream.runtime.crash import CrashAt
from stream.runtime.positions import ReadPositions
from stream.runtime.repartition import Forwarder, Watermark
from stream.state.facts import Rules
from stream.state.partition import PartitionState, StateConfig
from stream.voice import Sentiment

log = logging.getLogger(__name__)

#: Reads a record's value: an event to apply, a watermark (customers topic), or a rejection.
Reader = Callable[[bytes | None], Event | Watermark | Rejection]


def source_reader(
    topic: str,
    settings: Settings,
    customer_secret: bytes | None,
    sentiment: Sentiment | None = None,
) -> Reader:
    """Decoding of a source topic's records by the event contract; customer ids become their
    pseudonymous keys (dropped without a secret: customer KPIs off), free text its sentiment."""

    def read(raw: bytes | None) -> Event | Rejection:
        return decode(
            raw,
            topic,
            max_bytes=settings.max_event_bytes,
            now_ms=int(time.time() * 1000),
            max_future_ms=settings.max_future * 1000,
            customer_secret=customer_secret,
            sentiment=sentiment,
        )

    return read


class TopicProcessor:
    """Consumes one topic and keeps its KPI state, partition by partition.

    `topic` names the state (its table, its entries, its labels); `source` is the Kafka topic
    read, the same for a source topic, `<app_id>-orders-by-customer` for the customers topic.
    With a `forwarder`, each flush round also sends the orders the round decided, and how far
    each partition has decided, to the customers topic. With `delays`, the time each record
    spent in the topic before it was read is observed (the customers topic's repartition
    delay).
    """

    def __init__(
        self,
        app: faust.App,
        topic: str,
        rules: Rules,
        settings: Settings,
        config: StateConfig,
        read: Reader,
        source: str | None = None,
        forwarder: Forwarder | None = None,
        delays: Histogram | None = None,
        crash: CrashAt | None = None,
    ) -> None:
        self.app = app
        self.topic_name = topic
        self.source_name = source or topic
        self.rules = rules
        self.settings = settings
        self.config = config
        self.read = read
        self.delays = delays  # of each record: from its append to the topic to its reading
        self.source = app.topic(
            self.source_name,
            partitions=settings.partitions,
            key_serializer="raw",
            value_serializer="raw",
        )
        self.dead_letters = app.topic(
            dead_letter_topic(self.source_name),
            partitions=settings.partitions,
            key_serializer="raw",
            value_serializer="raw",
        )
        #: persistence: the changelog, flush rounds, acknowledgements, recovery
        self.checkpoint = Checkpoint(
            app,
            topic,
            self.source_name,
            settings.partitions,
            self._rebuild,
            forwarder=forwarder,
            crash=crash,
        )
        self.states = self.checkpoint.states  # the same dict: applied here, committed there
        self._stopping = False  # set once the worker stops: no more records, no more rounds
        self._last_event: dict[int, float] = defaultdict(time.monotonic)  # last applied event
        self._last_any = time.monotonic()  # last record of any partition of the topic
        self._advanced_to: dict[int, float] = {}
        self.positions = ReadPositions(app, self.source_name)
        # Subscribed through Faust's conductor as an agent's topic would be; its records come to
        # `on_record` straight from the fetch loop (stream/runtime/transport.py, `deliver`).
        app.topics.add(self.source)

    # -- each record ----------------------------------------------------------------------------

    async def on_record(self, message: Message) -> None:
        """Classify and apply one record of the topic; it is acknowledged by the flush round
        that commits its effect."""
        if self._stopping:
            return  # not acknowledged: the partition's next owner applies it
        partition = message.partition
        self._last_any = time.monotonic()
        state = self.states.get(partition)
        if state is None:
            log.warning(
                "record for %s[%d] before its state was recovered; it will be replayed",
                self.topic_name,
                partition,
            )
            return
        if message.offset <= state.offset:
            self.checkpoint.acknowledge(message)  # applied before a restart: committed
            return
        gap = message.offset > state.offset + 1 or partition in self.positions.rewinds
        if gap and await self.positions.held_back(partition, state, message.offset):
            return  # comes again, after the records before it
        if self.delays is not None:
            self.delays.observe(max(0.0, time.time() - message.timestamp))
        result = self.read(message.value)
        if isinstance(result, Rejection):
            await self._dead_letter(message, result)
            state.dead_letter(message.offset)
        elif isinstance(result, Watermark):
            state.watermark(result.source, result.t, message.offset)
        else:
            state.apply(result, message.offset)
            self._last_event[partition] = time.monotonic()
        if self.checkpoint.applied(message):  # acked by the next round
            await self.flush()  # the changelog is behind: let it catch up before reading on

    async def _dead_letter(self, message: Message, rejection: Rejection) -> None:
        """Send the original bytes, untouched, with headers saying why and where from."""
        headers = [
            ("error", rejection.error.encode()),
            ("error_detail", rejection.detail.encode()),
            ("source_topic", message.topic.encode()),
            ("source_partition", str(message.partition).encode()),
            ("source_offset", str(message.offset).encode()),
        ]
        log.debug(
            "dead-lettered %s[%d]@%d: %s",
            message.topic,
            message.partition,
            message.offset,
            rejection.error,
        )
        await self.dead_letters.send(key=message.key, value=message.value, headers=headers)

    # -- persistence (stream/runtime/checkpoint.py) --------------------------------------------

    async def flush(self, partitions: Iterable[int] | None = None) -> None:
        """A flush round: commit what was applied to the changelog, then acknowledge it."""
        await self.checkpoint.round(partitions)

    def stop(self) -> None:
        """The worker is stopping: take no more records and start no flush round of its own, so
        that the last round (the caller's) commits everything applied before the Kafka clients
        close. Records fetched from now on are left to the partitions' next owner."""
        self._stopping = True

    def unflushed(self) -> int:
        """Records applied but not yet committed and acknowledged."""
        return self.checkpoint.unflushed()

    async def tick(self) -> None:
        """Once a second: idle partitions' stream time follows the clock; due flushes happen;
        a consumer that moved past records the state never saw is sent back."""
        if self._stopping:
            return
        now = time.monotonic()
        for partition, state in list(self.states.items()):
            self._advance_idle(partition, state, now)
        if now - self.checkpoint.last_round >= self.settings.flush_interval:
            await self.flush()
        for partition, state in list(self.states.items()):
            await self.positions.check(partition, state, now, self._last_any)

    def _advance_idle(self, partition: int, state: PartitionState, now: float) -> None:
        """After idle_timeout without events, stream time advances at wall-clock rate (on the
        customers topic, the watermarks of idle cart partitions advance it)."""
        idle_since = self._last_event[partition] + self.settings.idle_timeout
        if state.stream_time is None or now <= idle_since or self.config.watermark_sources:
            return
        start = max(idle_since, self._advanced_to.get(partition, idle_since))
        state.advance(state.stream_time + int((now - start) * 1000))
        self._advanced_to[partition] = now

    # -- rebalancing --------------------------------------------------------------------------

    def _rebuild(self, partition: int, rows: list[tuple[bytes, bytes]]) -> PartitionState:
        """A newly assigned partition's state from its changelog rows (the checkpoint's
        recovery); what this processor kept of the partition starts afresh."""
        self._last_event[partition] = time.monotonic()
        self._advanced_to.pop(partition, None)
        self.positions.forget(partition)
        return PartitionState.restore(self.topic_name, partition, self.rules, self.config, rows)
