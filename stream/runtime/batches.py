"""Changelog records go to Kafka in whole batches.

A flush round writes about one changelog record per applied event. Handed to the producer one at
a time (`send`), each record costs aiokafka a future, a queue entry and a batch lookup, which
together cost more than the KPI arithmetic of the event. Filled into a batch (aiokafka's
`BatchBuilder`, encoded in C) and handed over a batch at a time, they cost that once per batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import faust
from aiokafka import AIOKafkaProducer

from stream.runtime.transport import producer_of
from stream.state.partition import Record


def kafka_producer(app: faust.App) -> AIOKafkaProducer:
    """The aiokafka producer under Faust's (started with the app): batches go to it directly."""
    return producer_of(app).kafka


async def send_in_batches(
    producer: AIOKafkaProducer, topic: str, partition: int, records: Iterable[Record]
) -> None:
    """Queue the records for one partition, in order, a full batch at a time. Like `send`, this
    does not wait for delivery: the caller flushes the producer."""
    batch: Any = None
    for key, value in records:
        if batch is not None and batch.append(key=key, value=value, timestamp=None) is not None:
            continue
        if batch is not None:  # full: hand it over, start the next with this record
            await producer.send_batch(batch, topic, partition=partition)
        batch = producer.create_batch()
        batch.append(key=key, value=value, timestamp=None)  # a batch always takes its first
    if batch is not None:
        await producer.send_batch(batch, topic, partition=partition)
