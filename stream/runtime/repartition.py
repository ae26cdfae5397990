"""Regrouping decided orders by customer through Kafka: the customers topic.

A customer's carts land on any cart-events partition, so their orders are brought together the
way Kafka Streams does it: each cart partition forwards the orders it decided to
`<app_id>-orders-by-customer`, keyed by the pseudonymous customer key, so that all of a customer's
orders reach one partition there (an anonymous order is keyed by its identity). A record holds
only what the customer rules need: the key, the order's time, amount, currency and identity.

Cart partitions decide orders at different paces (one may be hours of event time behind another
during a catch-up), so the customers topic does not take its stream time from the orders. Each
cart partition also sends every customers partition a watermark, a promise that everything it
forwards from then on is newer; stream time there is the smallest promise of all cart partitions
(stream/state/partition.py, `watermark`). Orders and watermarks are sent in a flush round after
the changelog records and before the markers: a crash before the marker replays the epoch and
forwards its orders again, and the customers side counts each order once (by its identity).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import faust
import orjson

from stream.config.settings import Settings
from stream.contract.events import Event, Rejection
from stream.kpis.customers import CUSTOMERS_TOPIC, CustomerOrder, order_event

ORDER, WATERMARK = "order", "watermark"


def customers_topic(app_id: str) -> str:
    """The Kafka name of the customers topic: internal to one app id, like its changelogs."""
    return f"{app_id}-{CUSTOMERS_TOPIC}"


@dataclass(frozen=True, slots=True)
class Watermark:
    """A cart partition's promise: everything it forwards from now on is newer than t."""

    source: int
    t: int


def encode_order(order: CustomerOrder) -> tuple[bytes, bytes]:
    """(key, value) of a forwarded order."""
    key = order.customer if order.customer is not None else f"~{order.identity}"
    value = [ORDER, order.customer, order.t, order.micros, order.currency, order.identity]
    return key.encode(), orjson.dumps(value)


def encode_watermark(source: int, t: int) -> bytes:
    return orjson.dumps([WATERMARK, source, t])


def read_forwarded(raw: bytes | None) -> Event | Watermark | Rejection:
    """A record of the customers topic: an order to apply, a watermark, or not ours."""
    try:
        value = orjson.loads(raw or b"")
        kind = value[0]
        if kind == WATERMARK:
            _, source, t = value
            return Watermark(int(source), int(t))
        if kind == ORDER:
            _, customer, t, micros, currency, identity = value
            order = CustomerOrder(customer, int(t), micros, str(currency), int(identity))
            return order_event(order)
    except (orjson.JSONDecodeError, ValueError, TypeError, IndexError) as exc:
        return Rejection("invalid_record", f"not a forwarded order or watermark ({exc})")
    return Rejection("invalid_record", f"unknown record kind {kind!r}")


class Forwarder:
    """Sends decided orders and watermarks to the customers topic."""

    def __init__(
        self, app: faust.App, settings: Settings, decided_until: Callable[[int], int]
    ) -> None:
        self.app = app
        self.topic = customers_topic(settings.app_id)
        self.partitions = settings.partitions
        self.decided_until = decided_until  # a cart partition's stream time -> its watermark
        self.sent: dict[int, int] = {}  # cart partition -> last watermark sent

    def moved(self, stream_times: Mapping[int, int]) -> dict[int, int]:
        """The watermarks of cart partitions (at these stream times) that moved since sent."""
        marks = {p: self.decided_until(t) for p, t in stream_times.items()}
        return {p: t for p, t in marks.items() if t > self.sent.get(p, t - 1)}

    async def orders(self, orders: list[Any]) -> None:
        """Queue the orders (the caller flushes the producer): keyed, so the producer's
        partitioner sends all of a customer's orders to one partition."""
        for order in orders:
            key, value = encode_order(order)
            await self.app.producer.send(self.topic, key, value, None, None, None)

    async def watermarks(self, marks: Mapping[int, int]) -> None:
        """Queue each cart partition's watermark to every customers partition (after the
        orders it covers are durable)."""
        for source, t in marks.items():
            value = encode_watermark(source, t)
            key = f"w:{source}".encode()
            for partition in range(self.partitions):
                await self.app.producer.send(self.topic, key, value, partition, None, None)
            self.sent[source] = t
