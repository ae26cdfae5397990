"""The checkpoint of one topic: the order of a flush round, and of recovery.

stream/state/changelog.py says what the changelog holds (records `[epoch, value, before]`, the
marker that commits an epoch, the rollback on read); this module says in what order the worker
writes and reads it, so that a crash between any two steps loses nothing and counts nothing
twice. docs/architecture.md ("The checkpoint, step by step") goes through each crash point: what
is durable then, and why replay makes the result exact.

A flush round, for every partition of the topic at once (`->` names the crash point after a step,
see stream/runtime/crash.py):

1. close each partition's epoch into its records and its marker; take the orders it decided and
   the watermarks that moved, with no await between
2. send the changelog records, in whole batches                        -> records-sent
3. send the decided orders to the customers topic                       -> orders-sent
4. flush the producer: records and orders are durable                   -> records-durable
5. send the watermarks, now that the orders they cover are durable      -> watermarks-sent
6. send the markers                                                      -> markers-sent
7. flush the producer: the epochs are committed                         -> markers-durable
8. acknowledge the epochs' source records to Faust's consumer           -> acknowledged

Recovery, once Faust has read the changelog of the assignment:

1. drop the partitions that moved away (their unacknowledged records are the next owner's)
2. rebuild each new partition from its rows, rolling back uncommitted epochs   -> restored
3. commit the rollback (a round of those partitions) before anything is applied
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import Message

from stream.runtime.batches import kafka_producer, send_in_batches
from stream.runtime.crash import CrashAt
from stream.runtime.repartition import Forwarder
from stream.state.partition import PartitionState, Record

log = logging.getLogger(__name__)

RECORDS_SENT = "records-sent"
ORDERS_SENT = "orders-sent"
RECORDS_DURABLE = "records-durable"
WATERMARKS_SENT = "watermarks-sent"
MARKERS_SENT = "markers-sent"
MARKERS_DURABLE = "markers-durable"
ACKNOWLEDGED = "acknowledged"
RESTORED = "restored"

#: Reading waits for a round (the changelog is behind: let it catch up) once this many records
#: of the topic wait for one, each keeping its Kafka message until acknowledged (about 1 kB) ...
MAX_WAITING = 16_000
#: ... or once the partitions' epochs changed this many keys: the round's changelog records, each
#: key's value before the epoch kept until then. A key changed again in the epoch is written
#: once, so a topic whose keys come back often (an active user's events) coalesces more records
#: into a round than one whose keys come once or twice (carts: 3,500-14,000 records).
MAX_CHANGED = 3_000

#: The crash points, in the order a round and then a recovery reach them.
POINTS = (
    RECORDS_SENT,
    ORDERS_SENT,
    RECORDS_DURABLE,
    WATERMARKS_SENT,
    MARKERS_SENT,
    MARKERS_DURABLE,
    ACKNOWLEDGED,
    RESTORED,
)

#: A partition rebuilt from its changelog rows (the processor's: it also resets what it keeps of
#: the partition).
Rebuild = Callable[[int, list[tuple[bytes, bytes]]], PartitionState]


@dataclass(slots=True)
class Closed:
    """A partition's closed epoch: its records, the marker that commits them, and the source
    records to acknowledge once it is committed."""

    partition: int
    records: list[Record]
    marker: Record
    acks: list[Message]


class Checkpoint:
    """Makes one topic's partition states durable in their changelog (a Faust table), and
    rebuilds them from it.

    `states` is the processor's, shared: it applies records to them, and hands each applied
    record to `applied`; a round commits their effect and only then acknowledges them.
    """

    def __init__(
        self,
        app: faust.App,
        topic: str,
        source: str,
        partitions: int,
        rebuild: Rebuild,
        forwarder: Forwarder | None = None,
        crash: CrashAt | None = None,
    ) -> None:
        self.app = app
        self.topic = topic  # names the table and the log lines
        self.source = source  # the Kafka topic whose partitions are checkpointed
        self.rebuild = rebuild
        self.forwarder = forwarder
        self.crash = crash
        self.table = app.Table(
            f"state-{topic}",
            partitions=partitions,
            key_type=bytes,  # bytes in, bytes out: the records are encoded by PartitionState
            value_type=bytes,
            on_recover=self.recover,
        )
        self.changelog = self.table.changelog_topic.get_topic_name()
        self.states: dict[int, PartitionState] = {}
        self._pending: dict[int, list[Message]] = defaultdict(list)  # applied, not yet acked
        self._waiting = 0  # records in _pending
        self._committing = 0  # records of the round under way
        self._round = asyncio.Lock()  # one round at a time
        self.last_round = time.monotonic()
        app.on_partitions_revoked.connect(self._on_revoked)

    # -- records applied ----------------------------------------------------------------------

    def applied(self, message: Message) -> bool:
        """A record whose effect is in its partition's state: acknowledged by the next round.
        Returns whether reading should wait for a round (MAX_WAITING, MAX_CHANGED)."""
        self._pending[message.partition].append(message)
        self._waiting += 1
        return self._waiting >= MAX_WAITING or self.changed() >= MAX_CHANGED

    def changed(self) -> int:
        """The keys the partitions' open epochs changed: the next round's changelog records."""
        return sum(state.epochs.changed for state in self.states.values())

    def acknowledge(self, message: Message) -> None:
        """Let Faust's consumer commit past this record (its effect is committed)."""
        self.app.consumer.ack(message)

    def unflushed(self) -> int:
        """Records applied but not yet committed and acknowledged (waiting for a round, or in
        one that has not finished)."""
        return self._committing + self._waiting

    # -- a flush round ------------------------------------------------------------------------

    async def round(self, partitions: Iterable[int] | None = None) -> None:
        """Commit the current epoch of each partition (default: all), then acknowledge its
        records, in the order of the module docstring.

        Two producer round trips whatever the number of partitions. Records keep being applied
        meanwhile, into the next epoch, which the next round commits.
        """
        async with self._round:
            self.last_round = time.monotonic()
            closed, decided, watermarks = self._close(partitions)
            if not closed and not watermarks:
                return
            self._committing = sum(len(c.acks) for c in closed)
            producer = kafka_producer(self.app)
            for c in closed:
                await send_in_batches(producer, self.changelog, c.partition, c.records)
                await asyncio.sleep(0)  # let records be applied between partitions
            self._reached(RECORDS_SENT, any(c.records for c in closed))
            if self.forwarder is not None:
                await self.forwarder.orders(decided)
            self._reached(ORDERS_SENT, bool(decided))
            await self.app.producer.flush()
            self._reached(RECORDS_DURABLE, bool(closed))
            if self.forwarder is not None:  # the orders up to them are durable now
                await self.forwarder.watermarks(watermarks)
            self._reached(WATERMARKS_SENT, bool(watermarks))
            for c in closed:
                await self._send_marker(c.partition, *c.marker)
            self._reached(MARKERS_SENT, bool(closed))
            await self.app.producer.flush()
            self._reached(MARKERS_DURABLE, bool(closed))
            for c in closed:
                for message in c.acks:
                    self.acknowledge(message)
            self._committing = 0
            self._reached(ACKNOWLEDGED, any(c.acks for c in closed))

    def _close(
        self, partitions: Iterable[int] | None
    ) -> tuple[list[Closed], list[Any], dict[int, int]]:
        """Step 1: the closed epochs, the orders they decided and the watermarks that moved.
        With no await, the orders taken are exactly those of the epochs closed, so they are sent
        before those epochs' markers (a crash before a marker replays its epoch, which decides
        the same orders again: sent twice, counted once by the receiver)."""
        closed: list[Closed] = []
        decided: list[Any] = []
        stream_times: dict[int, int] = {}  # of the partitions whose decisions go out now
        for partition in list(self.states) if partitions is None else partitions:
            state = self.states.get(partition)
            acks = self._pending.pop(partition, [])
            self._waiting -= len(acks)
            if state is not None and (acks or state.has_changes):
                closed.append(Closed(partition, *state.flush(), acks))
                decided += state.take_decided()
            if state is not None and state.stream_time is not None:
                stream_times[partition] = state.stream_time
        watermarks = self.forwarder.moved(stream_times) if self.forwarder else {}
        return closed, decided, watermarks

    async def _send_marker(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Hand a marker straight to the Kafka producer. (The table's own send_changelog queues
        each record behind Faust's one-at-a-time producer buffer, which throttled the stream.)"""
        await self.app.producer.send(self.changelog, key, value, partition, None, None)

    def _reached(self, point: str, done: bool) -> None:
        """A named step is over (`done`: it did something this round): the test hook's."""
        if self.crash is not None and done:
            self.crash.reached(point, self.topic)

    # -- rebalancing --------------------------------------------------------------------------

    async def recover(self) -> None:
        """After changelog recovery: let go of partitions that moved away, build the new ones,
        and commit their rollback before any of their records is applied.

        A partition this worker kept through the rebalance keeps its state: it was flushed on
        revoke and nobody else wrote to it. (Faust re-reads only the tail of a kept partition's
        changelog, so its rows here are partial and must not be used.) A newly assigned one is
        rebuilt from its whole changelog.
        """
        assigned = {
            tp.partition for tp in self.app.consumer.assignment() if tp.topic == self.source
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
            state = self.states[partition] = self.rebuild(partition, rows.get(partition, []))
            log.info(
                "%s[%d] recovered: offset %d, %d entities",
                self.topic,
                partition,
                state.offset,
                len(state.entities),
            )
        # The rows were needed only to rebuild: free the memory. A partition that comes back after
        # moving away is re-read from the start (Faust forgets its changelog position then). The
        # store drops its rows, and what partition each key came from, as for partitions that
        # are no longer this worker's (its own hook for that, with none active).
        store.clear()
        await store.on_recovery_completed(set(), set())
        self._reached(RESTORED, bool(restored))
        # The rebuilt epochs number past every epoch that may be torn; this round's marker
        # records them as aborted before any new record is applied.
        await self.round(restored)

    async def _on_revoked(self, sender: Any, revoked: set[Any], **_: Any) -> None:
        """Before partitions may move: make their state durable (which ones move is known only
        after the assignment, in `recover`)."""
        await self.round(
            tp.partition
            for tp in revoked
            if tp.topic == self.source and tp.partition in self.states
        )
