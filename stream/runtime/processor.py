"""The Faust side of one source topic: consume, classify, apply, persist, acknowledge.

A `TopicProcessor` owns the `PartitionState` of every partition of its topic that this worker is
assigned. Faust's fetch loop hands it each record of its topic (`on_record`, see
stream/runtime/transport.py); a record is acknowledged only after the epoch holding its effect is
committed in the changelog (see stream/state/partition.py), so a crash at any point replays
exactly the records whose effect is missing, and replay skips the ones already applied. Which
offset each partition is read from is decided by its state (stream/runtime/positions.py), not by
the consumer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import faust
from faust.types import Message
from prometheus_client import Histogram

from stream.config.settings import Settings
from stream.contract.events import Event, Rejection, decode
from stream.contract.schemas import dead_letter_topic
from stream.runtime.batches import kafka_producer, send_in_batches
from stream.runtime.positions import ReadPositions
from stream.runtime.repartition import Forwarder, Watermark
from stream.state.facts import Rules
from stream.state.partition import PartitionState, Record, StateConfig

log = logging.getLogger(__name__)

#: Records applied but not yet committed, per topic, at which reading waits for a flush round.
#: Each keeps its Kafka message until acknowledged: when the broker writes the changelog more
#: slowly than records are applied (a catch-up), this bounds what they hold (a few MB).
MAX_UNCOMMITTED = 4_000

#: Reads a record's value: an event to apply, a watermark (customers topic), or a rejection.
Reader = Callable[[bytes | None], Event | Watermark | Rejection]


def source_reader(topic: str, settings: Settings, customer_secret: bytes | None) -> Reader:
    """Decoding of a source topic's records by the event contract; customer ids become their
    pseudonymous keys (dropped without a secret: customer KPIs off)."""

    def read(raw: bytes | None) -> Event | Rejection:
        return decode(
            raw,
            topic,
            max_bytes=settings.max_event_bytes,
            now_ms=int(time.time() * 1000),
            max_future_ms=settings.max_future * 1000,
            customer_secret=customer_secret,
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
    ) -> None:
        self.app = app
        self.topic_name = topic
        self.source_name = source or topic
        self.rules = rules
        self.settings = settings
        self.config = config
        self.read = read
        self.forwarder = forwarder
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
        self.table = app.Table(
            f"state-{topic}",
            partitions=settings.partitions,
            key_type=bytes,  # bytes in, bytes out: the records are encoded by PartitionState
            value_type=bytes,
            on_recover=self._on_recovered,
        )
        self.changelog = self.table.changelog_topic.get_topic_name()
        self.states: dict[int, PartitionState] = {}
        self._pending: dict[int, list[Message]] = defaultdict(list)  # applied, not yet acked
        self._waiting = 0  # records in _pending
        self._stopping = False  # set once the worker stops: no more records, no more rounds
        self._flushing = asyncio.Lock()  # one flush round at a time
        self._committing = 0  # records of the flush round under way
        self._last_flush = time.monotonic()
        self._last_event: dict[int, float] = defaultdict(time.monotonic)  # last applied event
        self._last_any = time.monotonic()  # last record of any partition of the topic
        self._advanced_to: dict[int, float] = {}
        self.positions = ReadPositions(app, self.source_name)
        # Subscribed through Faust's conductor as an agent's topic would be; its records come to
        # `on_record` straight from the fetch loop (stream/runtime/transport.py, `deliver`).
        app.topics.add(self.source)
        app.on_partitions_revoked.connect(self._on_revoked)

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
            self._acknowledge(message)  # applied before a restart: already in the state
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
        self._pending[partition].append(message)  # acknowledged by the next flush round
        self._waiting += 1
        if self._waiting >= MAX_UNCOMMITTED:
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

    # -- persistence --------------------------------------------------------------------------

    async def flush(self, partitions: Iterable[int] | None = None) -> None:
        """Commit the current epoch of each partition (default: all) to the changelog, then
        acknowledge its records.

        One round writes every partition's records, waits until they are durable, then writes
        every marker: two producer round trips whatever the number of partitions. Records keep
        being applied meanwhile, into the next epoch, which the next round commits.
        """
        async with self._flushing:
            self._last_flush = time.monotonic()
            epochs: list[tuple[int, list[Record], Record, list[Message]]] = []
            decided: list[Any] = []
            stream_times: dict[int, int] = {}  # of the partitions whose decisions go out now
            for partition in list(self.states) if partitions is None else partitions:
                state = self.states.get(partition)
                acks = self._pending.pop(partition, [])
                self._waiting -= len(acks)
                if state is not None and (acks or state.has_changes):
                    epochs.append((partition, *state.flush(), acks))
                    decided += state.take_decided()  # with no await since the flush
                if state is not None and state.stream_time is not None:
                    stream_times[partition] = state.stream_time
            watermarks = self.forwarder.moved(stream_times) if self.forwarder else {}
            if not epochs and not watermarks:
                return
            self._committing = sum(len(acks) for *_, acks in epochs)
            producer = kafka_producer(self.app)
            for partition, records, _, _ in epochs:
                await send_in_batches(producer, self.changelog, partition, records)
                await asyncio.sleep(0)  # let records be applied between partitions
            if self.forwarder is not None:
                await self.forwarder.orders(decided)
            await self.app.producer.flush()
            if self.forwarder is not None:  # the orders up to them are durable now
                await self.forwarder.watermarks(watermarks)
            for partition, _, marker, _ in epochs:
                await self._send(partition, *marker)
            await self.app.producer.flush()
            for *_, acks in epochs:
                for message in acks:
                    self._acknowledge(message)
            self._committing = 0

    def _acknowledge(self, message: Message) -> None:
        """Let Faust's consumer commit past this record."""
        self.app.consumer.ack(message)

    def stop(self) -> None:
        """The worker is stopping: take no more records and start no flush round of its own, so
        that the last round (the caller's) commits everything applied before the Kafka clients
        close. Records fetched from now on are left to the partitions' next owner."""
        self._stopping = True

    def unflushed(self) -> int:
        """Records applied but not yet committed and acknowledged (waiting for a flush round, or
        in one that has not finished)."""
        return self._committing + self._waiting

    async def _send(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Hand one changelog record (a marker) straight to the Kafka producer. (The table's own
        send_changelog queues each record behind Faust's one-at-a-time producer buffer, which
        throttled the whole stream.)"""
        await self.app.producer.send(self.changelog, key, value, partition, None, None)

    async def tick(self) -> None:
        """Once a second: idle partitions' stream time follows the clock; due flushes happen;
        a consumer that moved past records the state never saw is sent back."""
        if self._stopping:
            return
        now = time.monotonic()
        for partition, state in list(self.states.items()):
            self._advance_idle(partition, state, now)
        if now - self._last_flush >= self.settings.flush_interval:
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

    async def _on_recovered(self) -> None:
        """After changelog recovery: let go of partitions that moved away, build the new ones.

        A partition this worker kept through the rebalance keeps its state: it was flushed on
        revoke and nobody else wrote to it. (Faust re-reads only the tail of a kept partition's
        changelog, so its rows here are partial and must not be used.) A newly assigned one is
        rebuilt from its whole changelog.
        """
        assigned = {
            tp.partition for tp in self.app.consumer.assignment() if tp.topic == self.source_name
        }
        for partition in self.states.keys() - assigned:
            del self.states[partition]
            # never acknowledged: the new owner replays them
            self._waiting -= len(self._pending.pop(partition, []))
        store = self.table.data
        rows: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
        for key, value in list(store.items()):
            partition = int(key.split(b":", 2)[1])
            if partition in assigned and partition not in self.states:
                rows[partition].append((key, value))
        restored = assigned - self.states.keys()
        for partition in restored:
            self.states[partition] = PartitionState.restore(
                self.topic_name, partition, self.rules, self.config, rows.get(partition, [])
            )
            self._last_event[partition] = time.monotonic()
            self._advanced_to.pop(partition, None)
            self.positions.forget(partition)
            log.info(
                "%s[%d] recovered: offset %d, %d entities",
                self.topic_name,
                partition,
                self.states[partition].offset,
                len(self.states[partition].entities),
            )
        # The rows were needed only to rebuild: free the memory. A partition that comes back after
        # moving away is re-read from the start (Faust forgets its changelog position then). The
        # store drops its rows, and what partition each key came from, as for partitions that
        # are no longer this worker's (its own hook for that, with none active).
        store.clear()
        await store.on_recovery_completed(set(), set())
        await self.flush(restored)  # commit the rollback before anything is applied

    async def _on_revoked(self, sender: Any, revoked: set[Any], **_: Any) -> None:
        """Before partitions may move: make their state durable (which ones move is known only
        after the assignment, in `_on_recovered`)."""
        await self.flush(
            tp.partition
            for tp in revoked
            if tp.topic == self.source_name and tp.partition in self.states
        )
