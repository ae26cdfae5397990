"""How fetched records reach the processors: four adjustments to Faust's consumer.

1. **Every fetched record is handed over** (`ReadEveryRecord`), even one below Faust's read mark.
2. **The hand-off costs no task per record** (`fast_drain`).
3. **Records of the processors' topics go straight to them** (`deliver`), not through an agent.
4. **The fetch wait can be shortened** (`cap_fetch_wait`), where the broker answers a fetch only
   when its wait expires rather than as soon as records arrive.

`install` applies all four to an app's consumer before it starts.

About 2: Faust's fetch loop (`Consumer._drain_messages`) hands every record to the topic
conductor through `Service.wait_first(callback(message), suspend_flow.wait())`: four tasks and an
`asyncio.wait` per record, so that delivery is abandoned if flow is suspended (a rebalance) while
it waits on a full stream buffer. That costs more than a bare agent's own iteration.

`fast_drain` keeps the loop as it is and delivers by awaiting the conductor directly while flow is
active; while it is suspended, records are not delivered, as Faust's own loop would abandon them
(after a rebalance the consumer resumes from committed offsets, and the state skips what it has).
A delivery that waits on a full buffer can still finish after flow was suspended: its event is
dropped when flow resumes, since Faust clears the stream buffers then.

About 3: an agent gets a record through the topic conductor (flow control, an event, a queue) and
its stream (the queue again, the current event, sensors): together more than the KPI arithmetic
of the record. A processor needs none of that: it reads the record, applies it to its state and
acknowledges it after the changelog has it. So `fast_drain` awaits the processor's `on_record`
for its topics, under the same rules as an agent's stream: not while flow is suspended, and not
when the record was fetched before the latest rebalance. Records of other topics (the tables'
changelogs while they are recovered) still go to the conductor.
"""

from __future__ import annotations

import asyncio
import functools
import types
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiokafka
from faust.transport.consumer import CONSUMER_FETCHING, Consumer
from faust.types import TP, Message

#: A processor's handling of one record of its topic.
Deliver = Callable[[Message], Awaitable[None]]


class ReadEveryRecord(dict):
    """Faust's consumer drops a fetched record whose offset is below the last one it read from
    that partition. After a seek back, the rest of an already fetched batch moves that mark
    forward again, and the re-fetched records the seek was for are dropped. Under load this made
    records go missing. The state's own offset check already skips records it has applied, so
    Faust need not drop anything: its read mark reads as unset."""

    def __getitem__(self, tp: TP) -> None:
        return None


#: Records handed over between yields to the event loop (Faust's own loop uses 100).
YIELD_EVERY = 100


async def fast_drain(self: Consumer, fetcher: Any, deliver: Mapping[str, Deliver]) -> None:
    """`Consumer._drain_messages` without a task per record, handing the records of the topics
    in `deliver` to their processor (see the module docstring)."""
    callback = self.callback
    processor_of = deliver.get
    app = self.app
    flow_is_active = app.flow_control.is_active
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    suspended = self.suspend_flow.is_set
    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    acks_enabled_for = self.app.topics.acks_enabled_for
    commit_every = self._commit_every
    since_yield = 0
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            self.diag.set_flag(CONSUMER_FETCHING)
            records = getmany(timeout=1.0)
            await self.sleep(0)
            if self.should_stop:
                continue
            async for tp, message in records:
                since_yield += 1
                if since_yield > YIELD_EVERY:
                    await asyncio.sleep(0)
                    since_yield = 0
                offset = message.offset
                read = get_read_offset(tp)
                if read is not None and offset < read:
                    continue  # Faust drops records below its read mark
                if read and offset - read > 1 and acks_enabled_for(message.topic):
                    await self._add_gap(tp, read + 1, offset)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                if not suspended():  # else a rebalance: Faust's loop abandons the record too
                    on_record = processor_of(message.topic)
                    if on_record is None:
                        await callback(message)
                    elif flow_is_active() and message.generation_id == app.consumer_generation_id:
                        await on_record(message)  # else: fetched before a rebalance: skipped
                set_read_offset(tp, offset)
            self.diag.unset_flag(CONSUMER_FETCHING)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            return
        raise
    finally:
        self.diag.unset_flag(CONSUMER_FETCHING)


def on_created(consumer: Consumer, adjust: Callable[[aiokafka.AIOKafkaConsumer], None]) -> None:
    """Have `adjust` applied to the aiokafka consumer Faust creates, before it starts."""
    thread = consumer._thread  # type: ignore[attr-defined]
    create = thread._create_worker_consumer

    def create_adjusted(transport: Any) -> aiokafka.AIOKafkaConsumer:
        client = create(transport)
        adjust(client)
        return client

    thread._create_worker_consumer = create_adjusted


def cap_fetch_wait(client: aiokafka.AIOKafkaConsumer, max_wait_ms: int) -> None:
    """Give the aiokafka consumer a fetch wait of `max_wait_ms` (Faust fixes it at 1,500 ms). On
    Kafka a fetch returns as soon as records arrive, so the wait only matters when idle; the dev
    broker answers when the wait expires, so it adds up to the wait to every record's latency."""
    client._fetch_max_wait_ms = max_wait_ms


#: What the adjustments replace or use; checked at start, so that a Faust release that renames
#: one fails with a clear message instead of silently running without it.
REQUIRED = (
    "_drain_messages",
    "_read_offset",
    "_add_gap",
    "_commit_every",
    "_thread",
    "suspend_flow",
    "callback",
)


def install(
    consumer: Consumer,
    fetch_max_wait_ms: int | None = None,
    watch: Callable[[aiokafka.AIOKafkaConsumer], None] | None = None,
    deliver: Mapping[str, Deliver] | None = None,
) -> None:
    """Apply the adjustments above to a consumer that has not started yet: `deliver` maps a
    topic to the processor that takes its records; `watch` is handed the aiokafka consumer once
    Faust creates it (the broker's answers are timed for health)."""
    missing = [name for name in REQUIRED if not hasattr(consumer, name)]
    if missing or not hasattr(consumer._thread, "_create_worker_consumer"):  # type: ignore[attr-defined]
        raise RuntimeError(
            f"this faust-streaming release lacks {', '.join(missing) or '_create_worker_consumer'}"
            " that stream/runtime/fetching.py adjusts; install the version pyproject.toml names"
        )
    consumer._read_offset = ReadEveryRecord()  # type: ignore[attr-defined]
    drain = functools.partial(fast_drain, deliver=dict(deliver or {}))
    consumer._drain_messages = types.MethodType(drain, consumer)  # type: ignore[method-assign]

    def adjust(client: aiokafka.AIOKafkaConsumer) -> None:
        if fetch_max_wait_ms is not None:
            cap_fetch_wait(client, fetch_max_wait_ms)
        if watch is not None:
            watch(client)

    on_created(consumer, adjust)
