"""The Faust application: one processor per source topic, timers, and the three publishers.

Read top to bottom: Faust settings, the processors (one per topic), the snapshot of all
partitions, then publishing (Prometheus, Redis, HTTP).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Hashable
from dataclasses import replace
from pathlib import Path
from typing import Any

import faust
from faust.exceptions import ConsumerNotStarted
from faust.types import TP
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Histogram,
    generate_latest,
)
from redis.exceptions import RedisError

from stream import voice
from stream.config.settings import Settings
from stream.kpis.carts import CartRules
from stream.kpis.engagement import TOPIC as ENGAGEMENT_TOPIC
from stream.kpis.kinds import KpiValues
from stream.publish.auth import WebSecurity
from stream.publish.document import Windows, window_renderer, window_versions
from stream.publish.entries import Entry, partition_entry
from stream.publish.http import add_routes
from stream.publish.lease import LEASE_INTERVALS, wall_ms, worker_name
from stream.publish.prometheus import KpiCollector, WindowText
from stream.publish.redis_store import SnapshotStore
from stream.runtime import heap, transport
from stream.runtime.checkpoint import POINTS
from stream.runtime.connection import faust_credentials
from stream.runtime.crash import CrashAt, crash_at
from stream.runtime.health import STALE_HEARTBEATS, BrokerContact
from stream.runtime.processor import TopicProcessor, source_reader
from stream.runtime.repartition import Forwarder, customers_topic, read_forwarded
from stream.state.partition import PartitionState
from stream.state.segments import Admitted, fleet_names, merge_admitted
from stream.wiring import customer_rules, document_shape, state_config, topic_rules

log = logging.getLogger(__name__)


def faust_settings(
    settings: Settings, own_transport: bool = True, web: WebSecurity | None = None
) -> dict[str, Any]:
    """Faust configuration; the dev profile holds every setting the embedded broker needs. The
    broker's kafka:// URLs select the worker's transport (stream/runtime/transport.py), unless
    `own_transport` is false (Faust's own, for the benchmark's bare floor). `web` secures the
    HTTP port: Faust hands the SSL context to aiohttp's site and the middlewares to its
    application (both are Faust settings, so no Faust code is patched)."""
    conf: dict[str, Any] = {
        "broker": transport.broker_url(settings.broker) if own_transport else settings.broker,
        "broker_credentials": faust_credentials(settings),
        "store": "memory://",
        # State lives in memory and in the changelog; Faust's data dir only holds scratch files:
        # one folder per app id, the same at every start.
        "datadir": str(Path(settings.data_dir) / settings.app_id),
        "topic_partitions": settings.partitions,
        "table_standby_replicas": 0,
        "stream_wait_empty": False,  # records are acknowledged by flushes, not by iteration
        "consumer_auto_offset_reset": "earliest",
        # Static membership (KIP-345): aiokafka's group_instance_id; None is dynamic membership.
        "consumer_group_instance_id": settings.group_instance_id or None,
        # Per partition and fetch (Faust: 1 MiB). Fetched records wait in memory as Python
        # objects; a quarter of that keeps throughput and cuts the resident memory of a catch-up.
        "consumer_max_fetch_size": 256 * 1024,
        "producer_acks": -1,
        "web_enabled": True,
        "web_bind": settings.web_host,
        "web_host": settings.web_host,
        "web_port": settings.web_port,
        "web_in_thread": False,
    }
    if web is not None:
        conf.update(
            web_ssl_context=web.ssl_context,
            web_application_options={"middlewares": list(web.middlewares)},
        )
    if settings.profile == "dev":
        conf.update(
            broker_session_timeout=8.0,
            broker_heartbeat_interval=1.0,
            broker_rebalance_timeout=16.0,
            # The dev broker reports a wrong end offset when a partition's last batch holds
            # several records. Every flush sends its commit marker in a batch of its own (the
            # producer is flushed before and after it), so changelog recovery reads to the end.
            producer_linger_ms=0,
        )
    return conf


def fetch_max_wait_ms(settings: Settings) -> int | None:
    """The dev broker answers a fetch only when its wait expires: keep the wait short there
    (it set the median latency at half load from 1.7 s to 0.5 s). On Kafka, Faust's own."""
    return 100 if settings.profile == "dev" else None


def customer_processor(
    app: faust.App, settings: Settings, registry: CollectorRegistry, crash: CrashAt | None = None
) -> TopicProcessor:
    """The customers topic's processor."""
    rules, config = customer_rules(settings)
    return TopicProcessor(
        app,
        rules.topic,
        rules,
        settings,
        config,
        read_forwarded,
        source=customers_topic(settings.app_id),
        delays=Histogram(
            "cxkpi_repartition_delay_seconds",
            "Time from a cart partition forwarding an order or watermark to the customers "
            "partition reading it (what regrouping by customer through Kafka adds)",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=registry,
        ),
        crash=crash,
    )


class KpiApp:
    """The worker: a Faust app wired to processors and publishers. With the customer KPIs on
    (`customer_secret` given), the cart processor forwards decided orders to the customers
    topic, whose own processor keeps the customer KPIs; activity is read only with the secret.
    """

    def __init__(
        self,
        settings: Settings,
        customer_secret: bytes | None = None,
        web: WebSecurity | None = None,
    ) -> None:
        self.settings = settings
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)  # Faust makes only its own
        self.app = faust.App(settings.app_id, **faust_settings(settings, web=web))
        self.broker = BrokerContact(STALE_HEARTBEATS * self.app.conf.broker_heartbeat_interval)
        config = state_config(settings)
        self.processors: list[TopicProcessor] = []
        crash = crash_at(POINTS)  # a test hook, armed only by CXKPI_CRASH_AT (crash.py)
        texts = voice.sentiment(settings.sentiment_scorer)  # scores free text as it is decoded
        texts.warm_up()  # its tables and language model now, not at the first comment
        customers = customer_secret is not None and settings.enabled("customers")
        for rules in topic_rules(settings):
            if rules.topic == ENGAGEMENT_TOPIC and customer_secret is None:
                continue  # users cannot be keyed without the secret: the topic is not read
            forwarder = None
            if customers and isinstance(rules, CartRules):
                forwarder = Forwarder(self.app, settings, rules.watermark)
            self.processors.append(
                TopicProcessor(
                    self.app,
                    rules.topic,
                    rules,
                    settings,
                    replace(config, collect_decided=forwarder is not None),
                    source_reader(
                        rules.topic,
                        settings,
                        customer_secret,
                        texts if rules.topic == "survey-replies" else None,  # free text's topic
                    ),
                    forwarder=forwarder,
                    crash=crash,
                )
            )
        self.registry = CollectorRegistry(auto_describe=False)
        if customers:
            self.processors.append(customer_processor(self.app, settings, self.registry, crash))
        consumer = transport.consumer_of(self.app)
        consumer.cap_fetch_wait(fetch_max_wait_ms(settings))
        consumer.on_broker_answer(self.broker.answered)
        for processor in self.processors:
            consumer.deliver(processor.source_name, processor.on_record)
        self.partitions = {p.topic_name: settings.partitions for p in self.processors}
        self.shape = document_shape(settings, self.partitions)
        #: how the documents this worker writes (/kpis, and Redis while it writes there) name it
        self.name = worker_name(settings.group_instance_id, settings.web_port)
        self.store = (
            SnapshotStore(
                settings.redis_url,
                settings.app_id,
                self.shape,
                self.registry,
                writer=self.name,
                lease_ttl_s=LEASE_INTERVALS * settings.publish_interval,
            )
            if settings.redis_url
            else None
        )
        self.registry.register(KpiCollector(self.local_kpis, self.partitions, self.lags))
        # the process_*, python_gc_* and python_info series every Prometheus user expects
        for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(standard)
        self.window_text = WindowText(self.window_key, self.window_inputs, settings.enabled)
        add_routes(self.app, self.metrics_text, self.snapshot, self.readiness)
        self.app.timer(1.0, name="cxkpi.tick")(self._tick)
        # twice per interval: the leader merges entries at most half an interval old, and the
        # snapshot's age (now - valid_at) stays within about one interval
        self.app.timer(settings.publish_interval / 2, name="cxkpi.publish")(self._publish)
        self._publishing: asyncio.Task[None] | None = None
        self.app.timer(1.0, name="cxkpi.broker-check")(self.broker.check)

    # -- the snapshot -------------------------------------------------------------------------

    def owned(self) -> list[PartitionState]:
        """The state of every partition this worker owns."""
        return list(self.states().values())

    def states(self) -> dict[str, PartitionState]:
        """The state of every partition this worker owns, keyed 'topic/partition'. A partition
        that moved away keeps its state until the new assignment is recovered (in case it comes
        back), but it is no longer this worker's to publish: its next owner's entry is newer."""
        assigned = self.assigned()
        return {
            f"{p.topic_name}/{n}": state
            for p in self.processors
            for n, state in p.states.items()
            if TP(p.source_name, n) in assigned
        }

    def assigned(self) -> set[TP]:
        """The partitions the consumer is assigned now (none before it started)."""
        try:
            return set(self.app.consumer.assignment())
        except ConsumerNotStarted:
            return set()

    def others(self, mine: Collection[str]) -> dict[str, Entry]:
        """The latest known entries (from Redis, without their window totals) of partitions not
        in `mine` ('topic/n')."""
        others = self.store.others if self.store is not None else {}
        return {k: e for k, e in others.items() if k not in mine}

    def leads(self) -> bool:
        """Whether this worker is the preferred writer of the merged snapshot: the owner of the
        first source topic's partition 0, so that Kafka's group membership picks one worker per
        fleet (another writes it while that one does not: lease.py)."""
        return f"{self.processors[0].topic_name}/0" in self.states()

    # -- /metrics ------------------------------------------------------------------------------

    async def metrics_text(self) -> bytes:
        """This worker's /metrics: the families that change with every event, then the windowed
        KPIs (rebuilt only when a window changed)."""
        return generate_latest(self.registry) + await self.window_text.text()

    def local_kpis(self) -> tuple[list[Entry], dict[str, KpiValues]]:
        """This worker's entries (without window totals) and their live KPIs, segments folded
        as the fleet folds them."""
        local = [partition_entry(state, windows=False) for state in self.owned()]
        return local, self.shape.live(local, admitted=self.fleet_admitted())

    def fleet_admitted(self) -> Admitted:
        """Segment values admitted by any partition of the fleet (this worker's live state, the
        others' latest known entries)."""
        mine = self.states()
        return merge_admitted(
            [
                *(state.names.admitted for state in mine.values()),
                *(e.segments for e in self.others(mine).values()),
            ]
        )

    def keep(self) -> dict[str, frozenset[str]]:
        """Per dimension, the segment values that keep their name fleet-wide."""
        return fleet_names(self.fleet_admitted(), self.settings.max_segment_values)

    def window_key(self) -> tuple[Hashable, ...]:
        """Changes whenever the windowed KPIs of this worker's partitions may have."""
        return tuple(sorted(self.keep().items())), window_versions(self.owned())

    def window_inputs(self) -> Callable[[], Windows]:
        """A renderer of the windowed KPIs over copies of this worker's window totals."""
        shape = self.shape
        return window_renderer(
            self.owned(), shape.windows_ms, self.keep(), self.settings.enabled, shape.extra
        )

    async def snapshot(self) -> dict[str, Any]:
        """Live entries of this worker merged with the latest known entries of the others."""
        mine = self.states()
        others = self.others(mine)
        now = wall_ms()
        entries = [replace(partition_entry(state), published_at=now) for state in mine.values()]
        if self.store is not None:
            try:
                windows = await self.store.windows_of(others)
            except (RedisError, OSError):  # the latest ones held, as for the entries
                windows = self.store.held_windows(others)
            entries += [
                replace(e, windows=windows[k].totals if k in windows else {})
                for k, e in others.items()
            ]
        document = self.shape.stamp(self.shape.document(entries), entries, now, self.name)
        covered = {e.field for e in entries}
        expected = {f"{t}/{n}" for t, count in self.partitions.items() for n in range(count)}
        document["complete"] = expected <= covered
        document["snapshot_store"] = (
            "disabled" if self.store is None else "up" if self.store.available else "down"
        )
        return document

    def lags(self) -> dict[tuple[str, int], int]:
        """Records not yet processed per owned partition, where the high watermark is known."""
        consumer = self.app.consumer
        out: dict[tuple[str, int], int] = {}
        for processor in self.processors:
            for partition, state in processor.states.items():
                tp = TP(processor.source_name, partition)
                highwater = consumer.highwater(tp) if consumer else None
                if highwater is not None:
                    out[processor.topic_name, partition] = max(0, highwater - state.offset - 1)
        return out

    # -- timers -------------------------------------------------------------------------------

    async def _tick(self) -> None:
        # at once: one topic's slow flush round does not hold back the others'
        await asyncio.gather(*(processor.tick() for processor in self.processors))
        heap.release_free_memory()

    async def _publish(self) -> None:
        """Start a publish unless the last one is still running: a hung Redis holds a publish
        for its timeouts, and the store says once that it is away (the timer would otherwise
        warn that it overlaps at every interval)."""
        if self.store is None or (self._publishing is not None and not self._publishing.done()):
            return
        self._publishing = asyncio.create_task(self.store.publish(self.states(), self.leads()))

    async def final_flush(self, timeout_s: float) -> bool:
        """On stop: commit what was applied, for at most timeout_s, and say what was not.
        Returns whether the broker is away (then the Kafka clients cannot close either)."""
        for processor in self.processors:
            processor.stop()
        waiting = sum(p.unflushed() for p in self.processors)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.flush() for p in self.processors)), timeout_s)
        except TimeoutError:
            log.warning(
                "stopping: %d applied records not committed to the changelog within %.0f s "
                "(%s); they were not acknowledged, so their partitions' next owner applies them "
                "again",
                waiting,
                timeout_s,
                self.broker.describe() if not self.broker.answering else "broker too slow",
            )
            return True
        if not self.broker.answering:
            log.warning("stopping: everything applied is committed; %s", self.broker.describe())
            return True
        log.info("stopping: everything applied is committed (%d in the last round)", waiting)
        return False

    def readiness(self) -> tuple[bool, str]:
        """Ready once the broker answers the consumer and the worker owns partitions whose state
        is recovered."""
        if not self.broker.answering:
            return False, self.broker.describe()
        if self.app.rebalancing:
            return False, "rebalancing"
        assigned = self.assigned()
        if not assigned:
            return False, "no partitions assigned yet"
        for processor in self.processors:
            for tp in assigned:
                if tp.topic == processor.source_name and tp.partition not in processor.states:
                    return False, f"recovering {tp.topic}[{tp.partition}]"
        return True, "ok"
