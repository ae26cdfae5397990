"""The worker's Kafka transport: Faust's aiokafka transport, adjusted through its own classes.

Faust builds its consumer and producer from the transport the broker URL's scheme names
(faust/app/base.py, `App._new_transport`: `transport.by_url(self.conf.broker_consumer[0])`), and
its registry of transports takes in the `faust.transports` entry points
(faust/transport/drivers/__init__.py: `TRANSPORTS.include_setuptools_namespace(...)`).
pyproject.toml registers `Transport` below as `cxkpi`; `broker_url` turns the user's kafka://
URLs into cxkpi:// ones when the worker's Faust app is configured (stream/app.py). Users keep
writing kafka://.

The transport's consumer differs from Faust's in four ways:

1. **Every fetched record is handed over.** Faust's fetch loop drops a record below the last
   offset it read from the partition (its read mark). After a seek back, the rest of an already
   fetched batch moves that mark forward again, and the re-fetched records the seek was for are
   dropped: under load, records went missing. The state's own offset check already skips records
   it has applied (stream/runtime/positions.py), so `Consumer._drain_messages` here does not keep
   or consult a read mark at all, and with it goes Faust's tracking of gaps above the mark
   (`_add_gap`), which only a read mark could trigger.
2. **The records of a processor's topic go straight to it** (`Consumer.deliver`), not through
   the conductor to an agent's queue, event and stream (together they cost more than the KPI
   arithmetic of a record), and without Faust's four asyncio tasks per record.
3. **The fetch wait can be shortened** (`Consumer.cap_fetch_wait`): the dev broker answers a
   fetch only when its wait expires, so the wait adds up to itself to every record's latency.
4. **Every answer of the broker is reported** (`Consumer.on_broker_answer`), for readiness
   (stream/runtime/health.py): aiokafka offers no hook for responses, so the consumer's client is
   a subclass that reports each one.

The transport's producer gives the batches of stream/runtime/batches.py the aiokafka producer
under Faust's (`Producer.kafka`).

Everything else stays Faust's: subscriptions through the conductor, group membership,
rebalancing, changelog recovery, commits of acknowledged offsets. Where a method here replaces
Faust's or aiokafka's, tests/unit/runtime/test_transport.py fingerprints the upstream source and
names what to re-check when a release changes it (`faust-streaming` is pinned to 0.15.x).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

import aiokafka
import faust
from aiokafka.client import AIOKafkaClient, ConnectionGroup
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from faust.exceptions import ImproperlyConfigured
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import Message
from mode import ServiceT
from packaging.version import Version

#: The scheme pyproject.toml registers this module's `Transport` under (`faust.transports`).
SCHEME = "cxkpi"
#: The schemes users give (stream/config/settings.py accepts these), all Faust's aiokafka.
KAFKA_SCHEMES = ("kafka", "aiokafka")

#: A processor's handling of one record of its topic.
Deliver = Callable[[Message], Awaitable[None]]

#: Records handed over between yields to the event loop (as in Faust's own loop).
YIELD_EVERY = 100
#: Faust's fetch wait (`AIOKafkaConsumerThread._create_worker_consumer`), kept unless capped.
FAUST_FETCH_MAX_WAIT_MS = 1500
#: What faust's driver checks before passing `api_version` (aiokafka 0.13 made it a no-op).
AIOKAFKA_TAKES_API_VERSION = Version(aiokafka.__version__) < Version("0.13.0")


def broker_url(url: str) -> str:
    """'kafka://a:9092;kafka://b:9092' -> 'cxkpi://a:9092;cxkpi://b:9092' (a URL without a
    scheme is a kafka one, as stream/config/settings.py reads it)."""
    out = []
    for part in url.split(";"):
        scheme, sep, rest = part.strip().partition("://")
        if not sep:
            scheme, rest = "kafka", scheme
        out.append(f"{SCHEME}://{rest}" if scheme in KAFKA_SCHEMES else part.strip())
    return ";".join(out)


def consumer_of(app: faust.App) -> Consumer:
    """The app's consumer, this transport's (the app's broker URL must be `broker_url`'s)."""
    consumer = app.consumer
    if not isinstance(consumer, Consumer):
        raise RuntimeError(_not_ours(app, f"consumer is {type(consumer).__qualname__}"))
    return consumer


def producer_of(app: faust.App) -> Producer:
    """The app's producer, this transport's."""
    producer = app.producer
    if not isinstance(producer, Producer):
        raise RuntimeError(_not_ours(app, f"producer is {type(producer).__qualname__}"))
    return producer


def _not_ours(app: faust.App, what: str) -> str:
    return (
        f"the Faust app's {what}, not stream.runtime.transport's: its broker URL must use the "
        f"{SCHEME}:// scheme (stream.runtime.transport.broker_url), and the package must be "
        "installed (./ops/setup.sh) so that Faust finds the transport's entry point "
        f"(broker {app.conf.broker!r})"
    )


class AnsweredClient(AIOKafkaClient):
    """aiokafka's client, reporting every answer the broker sends it (`on_answer`, called in the
    client's thread)."""

    def __init__(self, *, on_answer: Callable[[], None], **options: Any) -> None:
        super().__init__(**options)
        self.on_answer = on_answer

    async def send(
        self, node_id: int, request: Any, *, group: ConnectionGroup = ConnectionGroup.DEFAULT
    ) -> Any:
        response = await super().send(node_id, request, group=group)
        self.on_answer()
        return response


#: The options `AIOKafkaConsumer.__init__` passes on to its `AIOKafkaClient` (aiokafka 0.14;
#: `api_version` up to 0.12, where Faust passes it).
CLIENT_OPTIONS = frozenset(
    {
        "loop",
        "bootstrap_servers",
        "client_id",
        "metadata_max_age_ms",
        "request_timeout_ms",
        "retry_backoff_ms",
        "ssl_context",
        "security_protocol",
        "api_version",
        "connections_max_idle_ms",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "sasl_kerberos_service_name",
        "sasl_kerberos_domain_name",
        "sasl_oauth_token_provider",
    }
)


class KafkaConsumer(aiokafka.AIOKafkaConsumer):
    """aiokafka's consumer whose client reports every answer of the broker: fetches (at least one
    per fetch wait, even when idle), heartbeats, metadata, commits.

    aiokafka builds its client in `__init__` with no way to choose its class, so this one builds
    an `AnsweredClient` from the same options in place of the one aiokafka built (nothing has
    used it yet: the client connects in `start`)."""

    def __init__(self, *topics: str, on_answer: Callable[[], None], **options: Any) -> None:
        super().__init__(*topics, **options)
        client_options = {k: v for k, v in options.items() if k in CLIENT_OPTIONS}
        self._client = AnsweredClient(on_answer=on_answer, **client_options)


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, creating a `KafkaConsumer` with the consumer's fetch wait."""

    def _create_worker_consumer(
        self, transport: faust_aiokafka.Transport
    ) -> aiokafka.AIOKafkaConsumer:
        """Faust's `AIOKafkaConsumerThread._create_worker_consumer` (faust-streaming 0.15.3),
        changed in two arguments only: the class (`KafkaConsumer`, `on_answer`) and
        `fetch_max_wait_ms` (Faust fixes it at 1,500 ms)."""
        consumer = cast(Consumer, self.consumer)
        isolation_level: str = "read_uncommitted"
        conf = self.app.conf
        if self.consumer.in_transaction:
            isolation_level = "read_committed"
        # Table recovery depends on app.assignor state to map changelog
        # active/standby partitions. Keep Faust assignor enabled whenever
        # this app has changelog tables configured.
        has_changelog_tables = bool(self.app.tables.changelog_topics)
        self._assignor = (
            self.app.assignor
            if self.app.conf.table_standby_replicas > 0 or has_changelog_tables
            else RoundRobinPartitionAssignor
        )
        auth_settings = faust_aiokafka.credentials_to_aiokafka_auth(
            conf.broker_credentials, conf.ssl_context
        )
        max_poll_interval = conf.broker_max_poll_interval or 0

        request_timeout = conf.broker_request_timeout
        session_timeout = conf.broker_session_timeout
        rebalance_timeout = conf.broker_rebalance_timeout

        if session_timeout > request_timeout:
            raise ImproperlyConfigured(
                f"Setting broker_session_timeout={session_timeout} "
                f"cannot be greater than "
                f"broker_request_timeout={request_timeout}"
            )

        consumer_kwargs: dict[str, Any] = {}
        if AIOKAFKA_TAKES_API_VERSION:
            consumer_kwargs["api_version"] = conf.consumer_api_version
        return KafkaConsumer(
            **consumer_kwargs,
            on_answer=consumer.broker_answered,
            client_id=conf.broker_client_id,
            group_id=conf.id,
            group_instance_id=conf.consumer_group_instance_id,
            bootstrap_servers=faust_aiokafka.server_list(transport.url, transport.default_port),
            partition_assignment_strategy=[self._assignor],
            enable_auto_commit=False,
            auto_offset_reset=conf.consumer_auto_offset_reset,
            max_poll_records=conf.broker_max_poll_records,
            max_poll_interval_ms=int(max_poll_interval * 1000.0),
            max_partition_fetch_bytes=conf.consumer_max_fetch_size,
            fetch_max_wait_ms=consumer.fetch_max_wait_ms,
            request_timeout_ms=int(request_timeout * 1000.0),
            check_crcs=conf.broker_check_crcs,
            session_timeout_ms=int(session_timeout * 1000.0),
            rebalance_timeout_ms=int(rebalance_timeout * 1000.0),
            heartbeat_interval_ms=int(conf.broker_heartbeat_interval * 1000.0),
            isolation_level=isolation_level,
            metadata_max_age_ms=conf.consumer_metadata_max_age_ms,
            connections_max_idle_ms=conf.consumer_connections_max_idle_ms,
            **auth_settings,
        )


class Consumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with the fetch loop, fetch wait and answer reports described in
    the module docstring. Configure it (`deliver`, `cap_fetch_wait`, `on_broker_answer`) before
    the app starts."""

    _thread: ConsumerThread

    #: The aiokafka consumer's fetch wait.
    fetch_max_wait_ms: int = FAUST_FETCH_MAX_WAIT_MS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._processors: dict[str, Deliver] = {}  # topic -> its processor's on_record
        self._answer_listeners: list[Callable[[], None]] = []
        super().__init__(*args, **kwargs)

    def _new_consumer_thread(self) -> ConsumerThread:
        """Faust's `Consumer._new_consumer_thread`, with this transport's thread class."""
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    # -- configuration, before the app starts --------------------------------------------------

    def deliver(self, topic: str, on_record: Deliver) -> None:
        """Hand every record of `topic` to `on_record` (awaited in the fetch loop) instead of to
        the conductor; `on_record` acknowledges it when its effect is durable."""
        self._processors[topic] = on_record

    def cap_fetch_wait(self, max_wait_ms: int | None) -> None:
        """Give the aiokafka consumer a fetch wait of `max_wait_ms` (None: Faust's 1,500 ms). On
        Kafka a fetch returns as soon as records arrive, so the wait only matters when idle; the
        dev broker answers when the wait expires, so it adds up to the wait to every record's
        latency."""
        self.fetch_max_wait_ms = FAUST_FETCH_MAX_WAIT_MS if max_wait_ms is None else max_wait_ms

    def on_broker_answer(self, listener: Callable[[], None]) -> None:
        """Call `listener` (in the consumer's thread) on every answer the broker sends the
        consumer."""
        self._answer_listeners.append(listener)

    def broker_answered(self) -> None:
        """The consumer's client got an answer from the broker."""
        for listener in self._answer_listeners:
            listener()

    # -- the fetch loop ------------------------------------------------------------------------

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        """Faust's `Consumer._drain_messages` (faust-streaming 0.15.3), which the Fetcher service
        runs for as long as the consumer fetches, with three changes:

        - No read mark: every record `getmany` yields is handed over (the module docstring, 1),
          so no gap above the mark is tracked either.
        - A record of a topic given to `deliver` goes to its processor's `on_record`, awaited
          directly, when flow is active and the record was fetched in the current generation
          (as an agent's stream would take it); otherwise it is not handed over and, never
          acknowledged, is read again by the partition's owner after the rebalance.
        - Faust races each delivery to the conductor against `suspend_flow` (and the consumer
          stopping or crashing) in four tasks, so that a delivery blocked on a full or suspended
          queue is abandoned when a rebalance begins. Records of other topics (the tables'
          changelogs while they are recovered) still go that way. A processor's `on_record`
          does not: it never waits for flow to resume (it applies the record to its state, and
          at most seeks, sends a dead letter or flushes the changelog, none of which waits on
          flow control), so the race could only cancel it half-way through applying a record.
          Checking before the hand-off abandons every delivery the race would have: once
          `suspend_flow` is set, Faust's `getmany` yields no further record (`stop_flow` clears
          `flow_active` with it), and no hand-off in progress is waiting to be released by it.
        """
        callback = self.callback
        processor_of = self._processors.get
        app = self.app
        flow_is_active = app.flow_control.is_active
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        suspended = self.suspend_flow.is_set
        suspend_flow = self.suspend_flow
        wait_first = self.wait_first
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher.should_stop):
                set_flag(CONSUMER_FETCHING)
                records = getmany(timeout=1.0)
                # Sleeping because sometimes getmany is called in a loop
                # never releasing to the event loop
                await self.sleep(0)
                if not self.should_stop:
                    async for _tp, message in records:
                        since_yield += 1
                        if since_yield > YIELD_EVERY:
                            await asyncio.sleep(0)
                            since_yield = 0
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        on_record = processor_of(message.topic)
                        if on_record is None:
                            await wait_first(callback(message), suspend_flow.wait())
                        elif (
                            not suspended()
                            and flow_is_active()
                            and message.generation_id == app.consumer_generation_id
                        ):
                            await on_record(message)
                    unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)


class Producer(faust_aiokafka.Producer):
    """Faust's aiokafka producer, giving access to the aiokafka producer under it."""

    @property
    def kafka(self) -> aiokafka.AIOKafkaProducer:
        """The aiokafka producer Faust started with the app (`NotReady` before): changelog
        batches go to it directly (stream/runtime/batches.py)."""
        return self._ensure_producer()


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with the consumer and producer above; registered in
    pyproject.toml under `faust.transports` as `cxkpi`."""

    Consumer = Consumer
    Producer = Producer
