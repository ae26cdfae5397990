"""The worker's transport (stream/runtime/transport.py), on real (unstarted) Faust apps: Faust
selects it by the broker URL, it creates aiokafka's consumer as Faust does but for the fetch wait
and the client, and its fetch loop hands records over as documented. What it replaces or relies on
upstream is fingerprinted, so that a Faust or aiokafka release that changes it fails here."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiokafka
import faust
import pytest
from aiokafka.client import AIOKafkaClient
from faust.exceptions import NotReady
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

from stream.app import KpiApp, faust_settings
from stream.config.settings import Settings
from stream.runtime import transport


def new_app(broker: str = "cxkpi://127.0.0.1:1", **conf: Any) -> faust.App:
    return faust.App("transport-test", broker=broker, datadir=tempfile.mkdtemp(), **conf)


def settings(**flags: str) -> Settings:
    return Settings.load({"config": "none", "redis_url": "none", **flags}, environ={})


# -- Faust selects the transport -------------------------------------------------------------------


def test_faust_selects_the_transport_by_the_scheme_the_worker_gives_the_broker() -> None:
    assert faust.transport.by_url("cxkpi://127.0.0.1:1") is transport.Transport  # entry point
    assert (
        transport.broker_url("kafka://a:9092;aiokafka://b:9093") == "cxkpi://a:9092;cxkpi://b:9093"
    )
    assert transport.broker_url("a:9092") == "cxkpi://a:9092"
    conf = faust_settings(settings(broker="kafka://127.0.0.1:1;kafka://127.0.0.1:2"))
    assert conf["broker"] == "cxkpi://127.0.0.1:1;cxkpi://127.0.0.1:2"
    app = faust.App("transport-test", **conf)
    assert isinstance(transport.consumer_of(app), transport.Consumer)
    assert isinstance(transport.consumer_of(app)._thread, transport.ConsumerThread)
    assert isinstance(transport.producer_of(app), transport.Producer)
    assert [(u.host, u.port) for u in app.transport.url] == [("127.0.0.1", 1), ("127.0.0.1", 2)]


def test_a_bare_faust_app_keeps_faust_s_transport_and_is_told_so() -> None:
    conf = faust_settings(settings(broker="kafka://127.0.0.1:1"), own_transport=False)
    app = faust.App("transport-test", **conf)
    assert type(app.consumer) is faust_aiokafka.Consumer
    with pytest.raises(RuntimeError, match=r"cxkpi://.*ops/setup\.sh"):
        transport.consumer_of(app)


def test_the_worker_hands_its_topics_to_its_processors_and_hears_the_broker() -> None:
    worker = KpiApp(settings(broker="kafka://127.0.0.1:1"), customer_secret=b"k" * 32)
    consumer = transport.consumer_of(worker.app)
    assert consumer._processors == {p.source_name: p.on_record for p in worker.processors}
    assert len(consumer._processors) == 5  # the four source topics and the customers topic
    assert not worker.broker.answering
    consumer.broker_answered()  # as the consumer's client does for every response
    assert worker.broker.answering


# -- the aiokafka consumer ---------------------------------------------------------------------


def configuration(obj: object, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object's attributes, objects reduced to their type."""

    def plain(value: Any) -> Any:
        if value is None or isinstance(value, int | float | str | bytes | type):
            return value
        if isinstance(value, list | tuple | set | frozenset):
            return tuple(plain(v) for v in value)
        return type(value)

    return {k: plain(v) for k, v in vars(obj).items() if k not in leave_out}


def created(app: faust.App) -> aiokafka.AIOKafkaConsumer:
    """The aiokafka consumer the app's consumer thread creates at start."""
    return app.consumer._thread._create_worker_consumer(app.transport)


def test_the_aiokafka_consumer_is_faust_s_but_for_its_fetch_wait_and_client() -> None:
    credentials = faust.SASLCredentials(
        username="u",
        password="p",
        mechanism="SCRAM-SHA-256",
        ssl_context=ssl.create_default_context(),
    )

    async def both() -> tuple[aiokafka.AIOKafkaConsumer, aiokafka.AIOKafkaConsumer]:
        conf = {"broker_credentials": credentials, "consumer_max_fetch_size": 12345}
        theirs = created(new_app("kafka://127.0.0.1:1", **conf))
        mine_app = new_app(**conf)
        transport.consumer_of(mine_app).cap_fetch_wait(100)
        return theirs, created(mine_app)

    theirs, mine = asyncio.run(both())
    assert type(theirs) is aiokafka.AIOKafkaConsumer and type(mine) is transport.KafkaConsumer
    leave_out = ("_client", "_fetch_max_wait_ms")
    assert configuration(mine, leave_out) == configuration(theirs, leave_out)
    assert (theirs._fetch_max_wait_ms, mine._fetch_max_wait_ms) == (1500, 100)
    assert type(mine._client) is transport.AnsweredClient
    assert configuration(mine._client, ("on_answer",)) == configuration(theirs._client)
    assert mine._client._sasl_mechanism == "SCRAM-SHA-256"  # the credentials reach the client


def test_the_fetch_wait_is_faust_s_unless_capped() -> None:
    async def fetch_waits() -> list[int]:
        waits = []
        for cap in (None, 100, None):
            app = new_app()
            if cap is not None or waits:
                transport.consumer_of(app).cap_fetch_wait(cap)
            waits.append(created(app)._fetch_max_wait_ms)
        return waits

    assert asyncio.run(fetch_waits()) == [1500, 100, 1500]


def test_the_group_instance_id_reaches_the_aiokafka_consumer() -> None:
    """Static membership: the setting (typically the pod's name) becomes Faust's
    consumer_group_instance_id, then aiokafka's group_instance_id, which the consumer hands its
    group coordinator at start (and which stops it leaving the group when it stops)."""

    async def instance_ids() -> list[str | None]:
        ids = []
        for environ in ({}, {"CXKPI_GROUP_INSTANCE_ID": "cxkpi-1"}):
            loaded = Settings.load(
                {"config": "none", "redis_url": "none", "broker": "kafka://127.0.0.1:1"},
                environ=environ,
            )
            worker = KpiApp(loaded)
            ids.append(created(worker.app)._group_instance_id)
        return ids

    assert asyncio.run(instance_ids()) == [None, "cxkpi-1"]
    start = inspect.getsource(aiokafka.AIOKafkaConsumer.start)
    assert "group_instance_id=self._group_instance_id" in start, "aiokafka no longer passes it on"
    leave = inspect.getsource(aiokafka.consumer.group_coordinator.GroupCoordinator)
    assert "self._group_instance_id is None" in leave, "a static member leaves only if dynamic"


def test_the_client_reports_every_answer_and_passes_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    async def send(self: AIOKafkaClient, node_id: int, request: str, **_: Any) -> str:
        if request == "lost":
            raise aiokafka.errors.RequestTimedOutError()
        return f"answer to {request}"

    monkeypatch.setattr(AIOKafkaClient, "send", send)  # the broker, for this test
    answers: list[str] = []

    async def scenario() -> None:
        client = transport.AnsweredClient(
            on_answer=lambda: answers.append("answer"), bootstrap_servers="127.0.0.1:1"
        )
        assert await client.send(1, "fetch") == "answer to fetch"
        with pytest.raises(aiokafka.errors.RequestTimedOutError):
            await client.send(1, "lost")

    asyncio.run(scenario())
    assert answers == ["answer"]


def test_the_aiokafka_producer_is_reached_through_the_transport_s_producer() -> None:
    with pytest.raises(NotReady):  # before the app started it
        _ = transport.producer_of(new_app()).kafka


# -- the fetch loop ------------------------------------------------------------------------------


def record(topic: str, offset: int, generation: int = 0) -> Message:
    return Message(
        topic, 0, offset, 0.0, 0, None, None, b"{}", None, tp=TP(topic, 0), generation_id=generation
    )


class Fetcher:
    """Faust's Fetcher service, as far as the fetch loop uses it."""

    should_stop = False


class Scripted(transport.Consumer):
    """The transport's consumer, fetching the batches it is given instead of from a broker."""

    batches: list[list[Message]]
    fetcher: Fetcher

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        batch = self.batches.pop(0)
        self.fetcher.should_stop = not self.batches  # the loop ends after the last batch
        for message in batch:
            yield message.tp, message


async def nothing(*_: Any) -> None: ...


def scripted(app: faust.App, callback: Callable[[Message], Any] = nothing) -> Scripted:
    """A consumer of the app, as Faust creates it; `callback` stands for the conductor's."""
    return Scripted(
        app.transport,
        callback=callback,
        on_partitions_revoked=nothing,
        on_partitions_assigned=nothing,
    )


async def drain(consumer: Scripted, *batches: list[Message]) -> None:
    """Run the consumer's fetch loop over `batches`, as `getmany` would yield them."""
    consumer.batches, consumer.fetcher = list(batches), Fetcher()
    await asyncio.wait_for(consumer._drain_messages(consumer.fetcher), timeout=5)


def test_every_fetched_record_goes_to_its_processor_even_below_faust_s_read_mark() -> None:
    processed: list[int] = []
    conducted: list[tuple[str, int]] = []

    async def on_record(message: Message) -> None:
        processed.append(message.offset)

    async def callback(message: Message) -> None:
        conducted.append((message.topic, message.offset))

    async def scenario() -> None:
        app = new_app()
        app.flow_control.resume()
        consumer = scripted(app, callback)
        consumer.deliver("cart-events", on_record)
        # Faust's read mark for the partition, as a seek leaves it: its own loop drops below it
        consumer._read_offset[TP("cart-events", 0)] = 41
        await drain(
            consumer,
            [record("cart-events", 5), record("tickets", 7), record("cart-events", 3)],
            [record("cart-events", 4), record("state-carts-changelog", 2)],
        )

    asyncio.run(scenario())
    assert processed == [5, 3, 4]  # every one, in the order fetched: the state skips what it has
    assert conducted == [("tickets", 7), ("state-carts-changelog", 2)]


def test_a_processor_gets_no_record_while_flow_is_suspended_or_from_before_a_rebalance() -> None:
    processed: list[int] = []

    async def on_record(message: Message) -> None:
        processed.append(message.offset)

    async def scenario() -> None:
        app = new_app()
        app.consumer_generation_id = 2
        consumer = scripted(app)
        consumer.deliver("cart-events", on_record)
        await drain(consumer, [record("cart-events", 1, generation=2)])  # flow suspended
        app.flow_control.resume()
        await drain(consumer, [record("cart-events", 2, generation=1)])  # an older generation
        await drain(consumer, [record("cart-events", 3, generation=2)])
        consumer.stop_flow()  # a rebalance begins
        await drain(consumer, [record("cart-events", 4, generation=2)])

    asyncio.run(scenario())
    assert processed == [3]


def test_a_delivery_to_the_conductor_is_abandoned_when_a_rebalance_suspends_flow() -> None:
    """As in Faust's own loop: a delivery waiting on a full or suspended queue gives way."""
    conducted: list[int] = []

    async def callback(message: Message) -> None:
        if message.offset == 1:
            await asyncio.Event().wait()  # a full buffer, never drained
        conducted.append(message.offset)

    async def scenario() -> None:
        app = new_app()
        app.flow_control.resume()
        consumer = scripted(app, callback)
        asyncio.get_running_loop().call_later(0.1, consumer.stop_flow)
        await drain(consumer, [record("tickets", 1), record("tickets", 2)])

    asyncio.run(scenario())
    assert conducted == [2]  # 1 abandoned; 2 delivered as Faust's race delivers it (no wait)


# -- what the transport replaces or relies on upstream -----------------------------------------

UPSTREAM = [
    (
        faust_consumer.Consumer._drain_messages,
        "44a2500309e83c63",
        "Consumer._drain_messages in stream/runtime/transport.py is a copy of it: carry over what "
        "the new release changed in the loop (stopping, flow, commits, the delivery race)",
    ),
    (
        faust_aiokafka.Consumer._new_consumer_thread,
        "0870ec53dea75083",
        "Consumer._new_consumer_thread in stream/runtime/transport.py replaces it to create "
        "ConsumerThread: check it still creates the thread with the same arguments",
    ),
    (
        faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer,
        "c2701bfc3e6f6cad",
        "ConsumerThread._create_worker_consumer in stream/runtime/transport.py is a copy of it "
        "with KafkaConsumer and the fetch wait: carry over the new arguments",
    ),
    (
        aiokafka.AIOKafkaConsumer.__init__,
        "01506f316191f7c9",
        "KafkaConsumer in stream/runtime/transport.py rebuilds the client from the options "
        "AIOKafkaConsumer.__init__ passes to AIOKafkaClient (CLIENT_OPTIONS): check that list",
    ),
    (
        AIOKafkaClient.send,
        "246b277687d7b687",
        "AnsweredClient.send in stream/runtime/transport.py overrides it: check its signature and "
        "that it still returns when the broker answered",
    ),
    (
        faust_aiokafka.Producer._ensure_producer,
        "5592a4bbdf251325",
        "Producer.kafka in stream/runtime/transport.py returns it: check it is still the started "
        "aiokafka producer the changelog batches can go to",
    ),
]


@pytest.mark.parametrize(
    ("upstream", "fingerprint", "recheck"), UPSTREAM, ids=[u[0].__qualname__ for u in UPSTREAM]
)
def test_what_the_transport_replaces_is_unchanged_upstream(
    upstream: Callable[..., Any], fingerprint: str, recheck: str
) -> None:
    source = inspect.getsource(upstream)
    found = hashlib.sha256(source.encode()).hexdigest()[:16]
    assert found == fingerprint, (
        f"{upstream.__module__}.{upstream.__qualname__} changed in the installed release "
        f"(fingerprint {found}, was {fingerprint}). {recheck}; then update the fingerprint in "
        "tests/unit/runtime/test_transport.py."
    )
