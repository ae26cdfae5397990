"""The measurements: bare aiokafka loop, bare Faust agent (floor), full worker, latency at a fixed
offered load, memory with many open carts and tickets, and what partitions remember.

Workers run as users run them: Redis on (a real redis-server started by the benchmark) and
/metrics scraped every 15 s as Prometheus would, unless a phase says otherwise.

Every consumer reads the same topics from offset 0 under its own fresh consumer group. The full
worker's progress is read from its consumer group's committed offsets at the broker, not from
/metrics: a scrape costs the worker tens of milliseconds of CPU (more with more windows), which
would slow down exactly what is measured. Offsets are committed a few seconds after records are
processed, at the start as at the end, so the delay cancels out of the rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import random
import re
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.eventlog import (
    Produced,
    Record,
    connection,
    mixed_events,
    produce,
    to_record,
)
from bench.latency import MAX_AGE_S, Scrape, Sent, first_visible, percentile, quantiles
from bench.publishing import texts
from stream.config.settings import Settings
from stream.contract.events import Event, decode
from stream.contract.schemas import SOURCE_TOPICS
from stream.kpis.customers import order_event
from stream.runtime.connection import partitions_of
from stream.state.memories import Memories, pack, until_of
from stream.state.partition import PartitionState
from stream.tools.devservers import free_port
from stream.tools.generate import generate
from stream.tools.progress import progress_bar
from stream.wiring import customer_rules, state_config, topic_rules
from tests.servers import ROOT, Worker
from tests.servers import _stop as stop_process

#: Give up when a consumer makes no progress for this long.
STALL_S = 180.0
_EVENTS_LINE = re.compile(rb"^cxkpi_events_total\{([^}]*)\} (\S+)", re.MULTILINE)
_LABEL = re.compile(rb'(\w+)="([^"]*)"')


class BenchError(RuntimeError):
    """The benchmark itself failed (not a missed target)."""


@dataclass
class Throughput:
    """Records consumed and the time they took, measured from the first record on."""

    events: int
    seconds: float
    peak_rss_bytes: int | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


#: Prometheus's usual scrape interval: how often every worker's /metrics is read meanwhile.
SCRAPE_EVERY_S = 15.0


@dataclass
class Context:
    """What every phase needs: the broker, the log on it, Redis, where to put logs, how to show."""

    broker: str
    profile: str
    workdir: Path
    produced: Produced
    redis_url: str | None = None
    quiet: bool = False
    run_id: str = field(default_factory=lambda: f"{os.getpid()}-{int(time.time())}")

    def app_id(self, label: str) -> str:
        return f"bench-{label}-{self.run_id}"

    def worker_env(
        self, app_id: str, windows: str, redis: bool = True, **extra: str
    ) -> dict[str, str]:
        """A worker's settings; each app id has its own keys in the one redis-server."""
        env = {
            "CXKPI_BROKER": self.broker,
            "CXKPI_REDIS_URL": self.redis_url if redis and self.redis_url else "none",
            "CXKPI_PROFILE": self.profile,
            "CXKPI_APP_ID": app_id,
            "CXKPI_WINDOWS": windows,
            # the built-in defaults: the same KPIs, and no alert that needs a window not given
            "CXKPI_CONFIG": "none",
            "CXKPI_IDLE_TIMEOUT": "1d",  # replaying a log: stream time follows the events only
            "CXKPI_LOG_LEVEL": "warning",
        }
        env.update(extra)
        return env


# -- process and broker probes ----------------------------------------------------------------


def proc_status(pid: int, field_name: str) -> int:
    """A memory figure from /proc/<pid>/status (VmRSS, VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"/proc/{pid}/status has no {field_name}")


def parse_counts(body: bytes) -> dict[tuple[str, int], int]:
    """Records with an outcome per (topic, partition), from a /metrics body."""
    counts: dict[tuple[str, int], int] = {}
    for match in _EVENTS_LINE.finditer(body):
        labels = dict(_LABEL.findall(match.group(1)))
        if labels[b"topic"].decode() not in SOURCE_TOPICS:
            continue  # the customers topic counts forwarded orders, not source records
        tp = (labels[b"topic"].decode(), int(labels[b"partition"]))
        counts[tp] = counts.get(tp, 0) + int(float(match.group(2)))
    return counts


def no_customers_config(workdir: Path) -> Path:
    """A configuration file that switches the customer KPIs off (all else built in)."""
    path = workdir / "no-customers.toml"
    path.write_text("[kpis.customers]\nenabled = false\n")
    return path


async def histogram(worker: Worker, name: str) -> dict[float, float]:
    """Cumulative bucket counts (upper bound -> count) of a histogram on a worker's /metrics."""
    async with aiohttp.ClientSession() as session, session.get(worker.base + "/metrics") as r:
        body = (await r.read()).decode()
    out: dict[float, float] = {}
    for line in body.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            out[float(bound)] = float(line.rsplit(" ", 1)[1])
    return out


def histogram_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The upper bound of the bucket holding the q-quantile of what was observed between two
    readings (an upper bound of the quantile; inf when it is past the largest bound)."""
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = counts.get(math.inf, 0.0)
    if not total:
        raise BenchError("the histogram observed nothing")
    return next(bound for bound, n in counts.items() if n >= q * total)


async def scrape(session: aiohttp.ClientSession, worker: Worker) -> Scrape:
    async with session.get(worker.base + "/metrics") as response:
        body = await response.read()
    return Scrape(time.monotonic(), parse_counts(body))


@contextlib.asynccontextmanager
async def scraped(workers: list[Worker], every_s: float = SCRAPE_EVERY_S) -> AsyncIterator[None]:
    """Read every worker's /metrics now and every `every_s` while the block runs, as a
    Prometheus server would (the scrape's cost is part of what users run)."""

    async def scrape_all(session: aiohttp.ClientSession) -> None:
        while True:
            for worker in workers:
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    await scrape(session, worker)
            await asyncio.sleep(every_s)

    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(scrape_all(session))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def snapshot_scrape(raw: bytes | None) -> Scrape:
    """The Redis snapshot as a scrape: records with an outcome per partition (`processed`)."""
    t = time.monotonic()
    doc = orjson.loads(raw) if raw else {}
    counts = {
        (topic, int(n)): count
        for topic, partitions in doc.get("processed", {}).items()
        for n, count in partitions.items()
    }
    return Scrape(t, counts)


class Commits:
    """The committed offsets of a consumer group, read from the broker (costs the group
    nothing). Used for the floor's progress only: the worker's commits can stop short of the
    end (its records are acknowledged by flushes, and a record Faust fetched and dropped is
    never acknowledged), so the worker is followed by its changelog markers instead."""

    def __init__(self, broker: str, group: str) -> None:
        self.consumer = AIOKafkaConsumer(
            **connection(broker), group_id=group, enable_auto_commit=False
        )
        self.tps: list[TopicPartition] = []

    async def __aenter__(self) -> Commits:
        await self.consumer.start()
        self.tps = await partitions_of(self.consumer, SOURCE_TOPICS)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def total(self) -> int:
        offsets = await asyncio.gather(*(self.consumer.committed(tp) for tp in self.tps))
        return sum(o for o in offsets if o)


#: Markers written within this many seconds of the first of them are one round's (a round of
#: every topic's partitions runs at once; one takes tens of ms, rounds come 0.3 s or more apart).
ROUND_S = 0.1


class Markers:
    """The worker's own account of its progress, read from the broker: after each flush, every
    partition's state writes a marker record (key `m:<partition>`) to its changelog holding
    the outcome counts of all records applied so far. The record's timestamp says when.

    Reading the changelog costs the worker nothing. A marker comes a round's duration after
    the records it counts, or up to a flush interval more for the last records of a log
    (`span`).
    """

    def __init__(self, broker: str, app_id: str) -> None:
        self.consumer = AIOKafkaConsumer(
            **connection(broker), enable_auto_commit=False, auto_offset_reset="earliest"
        )
        self.changelogs = [f"{app_id}-state-{t}-changelog" for t in SOURCE_TOPICS]
        self.latest: dict[tuple[str, bytes], int] = {}
        self.history: list[tuple[float, tuple[str, bytes], int]] = []  # (time s, key, count)

    async def __aenter__(self) -> Markers:
        await self.consumer.start()
        tps = await partitions_of(self.consumer, self.changelogs)
        if len({tp.topic for tp in tps}) != len(self.changelogs):
            raise BenchError(f"changelog topics missing: {self.changelogs}")
        self.consumer.assign(tps)
        await self.consumer.seek_to_beginning(*tps)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def total(self) -> int:
        """Records with an outcome, as of the markers read so far."""
        batch = await self.consumer.getmany(timeout_ms=100)
        for tp, messages in batch.items():
            for message in messages:
                if not (message.key or b"").startswith(b"m:") or message.value is None:
                    continue
                count = sum(orjson.loads(message.value)["counts"].values())
                key = (tp.topic, message.key)
                self.latest[key] = count
                self.history.append((message.timestamp / 1000, key, count))
        return sum(self.latest.values())

    def timing(self, expected: int) -> tuple[float, int, float, int]:
        """`span` of the markers read."""
        return span(self.history, expected)


def span(
    history: list[tuple[float, tuple[str, bytes], int]], expected: int
) -> tuple[float, int, float, int]:
    """(t0, n0, t_end, n_end) in wall-clock seconds: the time of the first round with any
    record done and the records done after it; the same of the last round before the one that
    completed the log.

    A round comes right after its records when the records waiting for one reach its bound,
    but the last round of a log waits for the flush timer (up to `flush_interval`) once
    fewer remain: ending at the round before keeps that wait, latency rather than
    throughput, out of the rate (a log that divides into whole rounds has none). A run
    whose rounds before the last cover less than half the log (a tiny one) ends at the
    last."""
    latest: dict[tuple[str, bytes], int] = {}
    rounds: list[tuple[float, int]] = []  # (time of its first marker, records done after it)
    for t, key, count in sorted(history):
        latest[key] = count
        total = sum(latest.values())
        if rounds and t - rounds[-1][0] <= ROUND_S:
            rounds[-1] = (rounds[-1][0], total)
        else:
            rounds.append((t, total))
    first = next((r for r in rounds if r[1]), None)
    last = next((i for i, r in enumerate(rounds) if r[1] >= expected), None)
    if first is None or last is None:
        raise BenchError(f"the markers never reached {expected} records")
    t0, n0 = first
    if last and rounds[last - 1][1] - n0 >= expected // 2:
        return t0, n0, *rounds[last - 1]
    return t0, n0, rounds[last][0], expected


async def follow(
    ctx: Context,
    progress: Commits | Markers,
    expected: int,
    label: str,
    process: subprocess.Popen,
    log: Path,
    done: Callable[[], bool] = lambda: False,
    every: float = 0.5,
) -> None:
    """Wait until `expected` records are done (or `done()`), showing progress; fail when the
    process exits or nothing moves for STALL_S."""
    last_progress, last_n = time.monotonic(), 0
    with progress_bar(label, expected, unit="events", disable=ctx.quiet) as advance:
        while True:
            if process.poll() is not None:
                raise BenchError(f"{label}: the process exited ({process.returncode}); see {log}")
            n = await progress.total()
            now = time.monotonic()
            if n > last_n:
                advance(min(n, expected) - min(last_n, expected))
                last_n, last_progress = n, now
            if n >= expected or done():
                return
            if now - last_progress > STALL_S:
                raise BenchError(f"{label}: stuck at {n} of {expected} records; see {log}")
            await asyncio.sleep(every)


async def follow_worker(
    ctx: Context, app_id: str, expected: int, label: str, worker: Worker
) -> tuple[float, int, float, int]:
    """Follow a worker's markers until `expected` records are done; their `Markers.timing`."""
    async with Markers(ctx.broker, app_id) as markers:
        await follow(ctx, markers, expected, label, worker.process, worker.log)
        return markers.timing(expected)


def rate_from(
    t_ready: float, t0: float, n0: int, t_end: float, n_end: int, expected: int
) -> tuple[int, float]:
    """(events, seconds) from the first marker to `Markers.timing`'s end; from readiness when
    the first marker already held most of the log (tiny runs)."""
    if n0 <= expected // 2 and t_end > t0:
        return n_end - n0, t_end - t0
    return n_end, max(t_end - t_ready, 1e-3)


# -- raw aiokafka --------------------------------------------------------------------------


async def measure_raw(ctx: Context) -> Throughput:
    """A bare aiokafka loop over every partition of the source topics: what the broker and the
    client library can deliver to one Python process."""
    expected = ctx.produced.total
    consumer = AIOKafkaConsumer(
        **connection(ctx.broker), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps = await partitions_of(consumer, SOURCE_TOPICS)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen, first_batch, t_first = 0, 0, 0.0
        deadline = time.monotonic() + STALL_S
        with progress_bar("raw aiokafka", expected, unit="events", disable=ctx.quiet) as advance:
            t_start = time.monotonic()
            while seen < expected:
                if time.monotonic() > deadline:
                    raise BenchError(f"raw consumer: read {seen} of {expected} records")
                batch = await consumer.getmany(timeout_ms=500)
                n = sum(len(messages) for messages in batch.values())
                if n and not seen:
                    t_first, first_batch = time.monotonic(), n
                seen += n
                advance(n)
            t_last = time.monotonic()
    finally:
        await consumer.stop()
    if first_batch <= seen // 2 and t_last > t_first:
        return Throughput(seen - first_batch, t_last - t_first)
    return Throughput(seen, t_last - t_start)  # a tiny log came in one fetch


# -- the floor: a bare Faust agent -----------------------------------------------------------


async def measure_floor(ctx: Context, label: str, raised: bool = False) -> Throughput:
    """The bare Faust app of bench/floor.py: one agent per topic that only iterates. `raised`:
    on the worker's transport (stream/runtime/transport.py) instead of Faust's."""
    app_id = ctx.app_id(label)
    result = ctx.workdir / f"{app_id}.json"
    log = ctx.workdir / f"{app_id}.log"
    expected = ctx.produced.total
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.floor",
            "--broker",
            ctx.broker,
            "--app-id",
            app_id,
            "--expected",
            str(expected),
            "--result",
            str(result),
            "--profile",
            ctx.profile,
            "--web-port",
            str(free_port()),
            *(["--fast-drain"] if raised else []),
        ],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # progress from its commits; the timing itself comes from inside the process
        async with Commits(ctx.broker, app_id) as commits:
            title = "raised floor (worker's fetching)" if raised else "floor (bare Faust)"
            await follow(ctx, commits, expected, title, process, log, done=result.exists)
        deadline = time.monotonic() + 30
        while not result.exists():
            if time.monotonic() > deadline:
                raise BenchError(f"floor: committed everything but wrote no result; see {log}")
            await asyncio.sleep(0.2)
        body = orjson.loads(result.read_bytes())
        peak = proc_status(process.pid, "VmHWM")
    finally:
        stop_process(process)
    return Throughput(body["events"] - 1, body["last"] - body["first"], peak)


# -- the full worker ------------------------------------------------------------------------


async def measure_full(
    ctx: Context,
    label: str,
    windows: str,
    keep: bool = False,
    redis: bool = True,
    scrape_every_s: float = SCRAPE_EVERY_S,
    **env: str,
) -> tuple[Throughput, Worker | None]:
    """The real `cxkpi worker` (whole KPI catalog, all segments) over the whole log, scraped as
    Prometheus would (every `scrape_every_s`). With `keep`, the worker is returned still running
    (caught up), for the latency phase."""
    app_id = ctx.app_id(label)
    log = ctx.workdir / f"{app_id}.log"
    expected = ctx.produced.total
    worker = Worker(ctx.worker_env(app_id, windows, redis=redis, **env), log)
    try:
        worker.wait_ready(timeout=120)
        t_ready = time.time()  # marker timestamps are wall-clock
        async with scraped([worker], scrape_every_s):
            t0, n0, t_end, n_end = await follow_worker(
                ctx, app_id, expected, f"full worker, {label}", worker
            )
        peak = proc_status(worker.process.pid, "VmHWM")
        async with aiohttp.ClientSession() as session:
            counts = (await scrape(session, worker)).counts
        if sum(counts.values()) != expected:
            raise BenchError(
                f"{label}: /metrics counts {sum(counts.values())} records, {expected} were sent"
            )
    except BaseException:
        worker.stop()
        raise
    if not keep:
        worker.stop()
    events, seconds = rate_from(t_ready, t0, n0, t_end, n_end, expected)
    return Throughput(events, seconds, peak), worker if keep else None


# -- latency at a fixed offered load --------------------------------------------------------


@dataclass
class Latency:
    """Latency at a fixed offered load, and whether the worker kept up with it: to /metrics,
    and to the merged snapshot in Redis."""

    offered_rate: float
    sent_rate: float  # what the producer managed
    processed_rate: float  # records/s the worker got through while the load was offered
    sent: int
    scrapes: int
    p50_s: float
    p99_s: float
    upper_p50_s: float
    upper_p99_s: float
    never_visible: int
    redis_reads: int = 0
    redis_p50_s: float | None = None
    redis_p99_s: float | None = None
    #: p99 of the customers topic's delay meanwhile (a histogram bucket's upper bound)
    repartition_p99_s: float | None = None


async def measure_latency(
    ctx: Context,
    worker: Worker,
    rate: float,
    duration_s: float,
    start: datetime,
    seed: int,
    snapshot_key: str | None = None,
    scrape_every: tuple[float, float] = (0.25, 0.75),
    read_every: tuple[float, float] = (0.05, 0.25),
) -> Latency:
    """Offer `rate` events/s in the log's mix to a caught-up worker for `duration_s`, scraping
    /metrics at random moments, and reading the Redis snapshot (`snapshot_key`, when the worker
    publishes one) at random moments too; see bench/latency.py for how latency follows.

    Event times continue from `start` (the log's end) at the offered rate, so stream time
    advances as in production and no event is late.
    """
    events = mixed_events(seed, start + timedelta(seconds=1), rate)
    total = int(rate * duration_s)
    # made before the clock starts, so that only sending shares the machine with the worker
    records = [to_record(next(events)) for _ in range(total)]
    producer = AIOKafkaProducer(**connection(ctx.broker), linger_ms=5)
    sent: list[Sent] = []
    scrapes: list[Scrape] = []
    reads: list[Scrape] = []
    done = asyncio.Event()

    async def offer() -> None:
        pending: list[tuple[Record, float, asyncio.Future[Any]]] = []
        t_start = time.monotonic()
        with progress_bar("latency load", total, unit="events", disable=ctx.quiet) as advance:
            for i, record in enumerate(records):
                delay = t_start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                t = time.monotonic()
                future = await producer.send(record.topic, record.value, key=record.key)
                pending.append((record, t, future))
                advance(1)
        for record, t, future in pending:
            meta = await future
            sent.append(Sent(record.topic, meta.partition, meta.offset, t))
        done.set()

    async def poll(session: aiohttp.ClientSession) -> None:
        rng = random.Random(seed)
        while True:
            await asyncio.sleep(rng.uniform(*scrape_every))
            scrapes.append(await scrape(session, worker))
            if done.is_set() and all(
                scrapes[-1].counts.get((e.topic, e.partition), 0) > e.offset for e in sent[-50:]
            ):
                return

    async def read_snapshot(client: aioredis.Redis, key: str) -> None:
        """Reading Redis costs the worker nothing: more often than the scrapes."""
        rng = random.Random(seed + 1)
        while True:
            await asyncio.sleep(rng.uniform(*read_every))
            reads.append(snapshot_scrape(await client.get(key)))
            if done.is_set() and all(
                reads[-1].counts.get((e.topic, e.partition), 0) > e.offset for e in sent[-50:]
            ):
                return

    await producer.start()
    client = aioredis.Redis.from_url(ctx.redis_url) if ctx.redis_url and snapshot_key else None
    try:
        async with aiohttp.ClientSession() as session:
            pollers = [asyncio.create_task(poll(session))]
            if client is not None and snapshot_key is not None:
                pollers.append(asyncio.create_task(read_snapshot(client, snapshot_key)))
            await offer()
            offered_until = time.monotonic()
            # a worker that fell behind gets time to catch up; events it never shows count as
            # not visible at any age
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*pollers), timeout=max(60.0, 2 * duration_s))
            for poller in pollers:
                poller.cancel()
    finally:
        await producer.stop()
        if client is not None:
            await client.aclose()
    sent.sort(key=lambda e: e.t)
    during = [s for s in scrapes if s.t <= offered_until]
    processed_rate = 0.0
    if len(during) >= 2 and during[-1].t > during[0].t:
        got = sum(during[-1].counts.values()) - sum(during[0].counts.values())
        processed_rate = got / (during[-1].t - during[0].t)
    upper = first_visible(sent, scrapes)
    shown = [a for a in upper if a is not None]
    if not shown:
        raise BenchError("latency: no offered event ever showed in /metrics")
    # observe every age up to the slowest event seen, so the estimate is never cut off
    estimate = quantiles(sent, scrapes, max_age_s=max(MAX_AGE_S, max(shown) + 1.0))
    in_redis: dict[float, float | None] = {0.5: None, 0.99: None}
    if reads:
        seen = [a for a in first_visible(sent, reads) if a is not None]
        if not seen:
            raise BenchError("latency: no offered event ever showed in the Redis snapshot")
        in_redis.update(quantiles(sent, reads, max_age_s=max(MAX_AGE_S, max(seen) + 1.0)))
    return Latency(
        offered_rate=rate,
        sent_rate=len(sent) / max(sent[-1].t - sent[0].t, 1e-3),
        processed_rate=processed_rate,
        sent=len(sent),
        scrapes=len(scrapes),
        p50_s=estimate[0.5],
        p99_s=estimate[0.99],
        upper_p50_s=percentile(shown, 0.5),
        upper_p99_s=percentile(shown, 0.99),
        never_visible=len(upper) - len(shown),
        redis_reads=len(reads),
        redis_p50_s=in_redis[0.5],
        redis_p99_s=in_redis[0.99],
    )


# -- memory with many open carts and tickets --------------------------------------------------


@dataclass
class Memory:
    """Resident memory of a worker as open entities are added.

    The first tenth of the carts and tickets warms the worker up (buffers, caches, lazily built
    structures); growth per entity is measured from there, so the fixed costs of the first
    records do not count as state.
    """

    open_carts: int
    open_tickets: int
    warmup_carts: int
    warmup_tickets: int
    rss_empty_bytes: int
    rss_warm_bytes: int
    rss_carts_bytes: int
    rss_tickets_bytes: int
    peak_rss_carts_bytes: int  # VmHWM once the open carts are in, before the tickets
    peak_rss_bytes: int  # VmHWM at the end
    changelog_bytes_per_cart: float
    changelog_bytes_per_ticket: float

    @property
    def bytes_per_cart(self) -> float:
        added = self.open_carts - self.warmup_carts
        return (self.rss_carts_bytes - self.rss_warm_bytes) / max(added, 1)

    @property
    def bytes_per_ticket(self) -> float:
        added = self.open_tickets - self.warmup_tickets
        return (self.rss_tickets_bytes - self.rss_carts_bytes) / max(added, 1)


def split_entities(records: list[Record], share: float) -> tuple[list[Record], list[Record]]:
    """(records of the first `share` of the entities, the rest), each in their order."""
    keys = list(dict.fromkeys(r.key for r in records))
    first = set(keys[: int(len(keys) * share)])
    return [r for r in records if r.key in first], [r for r in records if r.key not in first]


async def settled_rss(pid: int, seconds: float = 1.5) -> int:
    """VmRSS after the worker's flushes have run (buffers of the last records released)."""
    await asyncio.sleep(seconds)
    return proc_status(pid, "VmRSS")


async def measure_memory(
    ctx: Context, carts: list[Record], tickets: list[Record], windows: str
) -> Memory:
    """A worker on empty topics given open carts and tickets: resident memory after each step
    (its growth per entity is the state's cost, allocator overhead included), the peak, and
    the size of an entity's changelog record."""
    app_id = ctx.app_id("memory")
    log = ctx.workdir / f"{app_id}.log"
    env = ctx.worker_env(app_id, windows, CXKPI_INACTIVITY_TIMEOUT="1d")
    warm_carts, more_carts = split_entities(carts, 0.1)
    warm_tickets, more_tickets = split_entities(tickets, 0.1)
    steps = (
        ("warm-up carts and tickets", warm_carts + warm_tickets),
        ("open carts", more_carts),
        ("open tickets", more_tickets),
    )
    worker = Worker(env, log)
    try:
        worker.wait_ready(timeout=120)
        pid = worker.process.pid
        rss = [await settled_rss(pid)]
        peaks: list[int] = []
        done = 0
        for label, records in steps:
            with progress_bar(
                f"producing {label}", len(records), unit="events", disable=ctx.quiet
            ) as advance:
                ctx.produced.merge(await produce(ctx.broker, records, advance))
            done += len(records)
            await follow_worker(ctx, app_id, done, f"worker, {label}", worker)
            rss.append(await settled_rss(pid))
            peaks.append(proc_status(pid, "VmHWM"))
        peak = proc_status(pid, "VmHWM")
        async with aiohttp.ClientSession() as session:
            counts = (await scrape(session, worker)).counts
        if sum(counts.values()) != done:
            raise BenchError(f"memory: /metrics counts {sum(counts.values())} of {done} records")
    finally:
        worker.stop()
    per_key = await changelog_sizes(ctx.broker, app_id)
    return Memory(
        open_carts=len({r.key for r in carts}),
        open_tickets=len({r.key for r in tickets}),
        warmup_carts=len({r.key for r in warm_carts}),
        warmup_tickets=len({r.key for r in warm_tickets}),
        rss_empty_bytes=rss[0],
        rss_warm_bytes=rss[1],
        rss_carts_bytes=rss[2],
        rss_tickets_bytes=rss[3],
        peak_rss_carts_bytes=peaks[1],
        peak_rss_bytes=peak,
        changelog_bytes_per_cart=per_key.get("cart-events", 0.0),
        changelog_bytes_per_ticket=per_key.get("tickets", 0.0),
    )


async def changelog_sizes(broker: str, app_id: str) -> dict[str, float]:
    """Mean bytes (key + value) of the latest changelog record of each live entity, per topic."""
    out: dict[str, float] = {}
    for topic in SOURCE_TOPICS:
        latest = await latest_entity_records(broker, f"{app_id}-state-{topic}-changelog")
        if latest:
            out[topic] = sum(latest.values()) / len(latest)
    return out


async def latest_entity_records(broker: str, changelog: str) -> dict[bytes, int]:
    """Size of the latest record of each entity key in a changelog topic.

    The worker's dev profile writes one record per batch, so end offsets are right even on the
    dev broker.
    """
    consumer = AIOKafkaConsumer(
        **connection(broker), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    latest: dict[bytes, int] = {}
    try:
        tps = await partitions_of(consumer, [changelog])
        if not tps:
            return latest
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        position = dict.fromkeys(tps, 0)
        deadline = time.monotonic() + STALL_S
        while any(position[tp] < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise BenchError(f"could not read the changelog {changelog}")
            batch = await consumer.getmany(timeout_ms=500)
            for tp, messages in batch.items():
                for message in messages:
                    position[tp] = message.offset + 1
                    if not (message.key or b"").startswith(b"e:"):
                        continue
                    if message.value is None:
                        latest.pop(message.key, None)
                    else:
                        latest[message.key] = len(message.key) + len(message.value)
    finally:
        await consumer.stop()
    return latest


#: What the benchmark keys customer ids with when it decodes as a worker does
#: (stream/contract/customers.py): carts then carry their customers' pseudonymous keys.
CUSTOMER_SECRET = b"bench-secret-of-32-bytes-at-least"


def decoded(
    records: Iterable[Record], topic: str, customer_secret: bytes | None = None
) -> Iterator[tuple[int, Event]]:
    """The valid events of one topic's records, decoded as the worker decodes them, with their
    offsets in that topic (the heap figures apply them to a partition in this process)."""
    now_ms = int(time.time() * 1000)
    for offset, record in enumerate(r for r in records if r.topic == topic):
        event = decode(
            record.value,
            topic,
            max_bytes=1 << 20,
            now_ms=now_ms,
            max_future_ms=3_600_000,
            customer_secret=customer_secret,
            sentiment=texts(),
        )
        if isinstance(event, Event):
            yield offset, event


def heap_bytes_per_customer(records: list[Record], windows: str) -> tuple[float, int]:
    """Python heap held per customer by a partition of the customers topic once the log's
    orders of known customers are decided, forwarded and applied (tracemalloc, as for carts),
    and how many customers that was."""
    settings = Settings.load({"config": "none", "windows": windows}, environ={})
    carts_rules = next(r for r in topic_rules(settings) if r.topic == "cart-events")
    config = replace(state_config(settings), collect_decided=True)
    carts = PartitionState("cart-events", 0, carts_rules, config)
    for offset, event in decoded(records, "cart-events", CUSTOMER_SECRET):
        carts.apply(event, offset)
    if carts.stream_time is None:
        return 0.0, 0
    carts.advance(carts.stream_time + 86_400_000)  # every order decided
    orders = [o for o in carts.take_decided() if o.customer is not None]
    rules, config = customer_rules(settings)  # one cart partition sends watermarks here
    customers = PartitionState(rules.topic, 0, rules, replace(config, watermark_sources=1))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for offset, order in enumerate(orders):
            customers.apply(order_event(order), offset)
        customers.watermark(0, carts_rules.watermark(carts.stream_time), len(orders))
        customers.flush()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before) / max(len(customers.entities), 1), len(customers.entities)


def heap_bytes_per_entity(
    records: list[Record], windows: str, sample: int = 20_000, idle: timedelta | None = None
) -> float:
    """Python heap held per entity by a partition's state once these records are decoded,
    applied and flushed (and, with `idle`, stream time moved that far on without events),
    measured in this process with tracemalloc on (a sample of) the entities: the state's own
    cost (its ids and names included), without allocator slack or the rest of the worker."""
    records = records[:sample]
    if not records:
        return 0.0
    topic = records[0].topic
    settings = Settings.load(
        {"config": "none", "windows": windows, "inactivity_timeout": "1d"}, environ={}
    )
    rules = next(r for r in topic_rules(settings) if r.topic == topic)
    config = state_config(settings)
    state = PartitionState(topic, 0, rules, config)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for offset, event in decoded(records, topic):
            state.apply(event, offset)
        event = None  # the last event is not state
        if idle is not None and state.stream_time is not None:
            state.advance(state.stream_time + int(idle.total_seconds() * 1000))
        state.flush()  # the epoch's before-images are released once written
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before) / max(len(state.entities), 1)


# -- what partitions remember of forgotten tickets and carts ----------------------------------

#: Days of event time of the log whose memories are measured: past the ticket retention (the
#: longest window plus grace, 30 d 5 m by default) and the cart retention (7 d), so that the
#: memories are those of a worker that has run for longer than either.
REMEMBERED_DAYS = 38
#: The topics whose partitions remember something (stream/state/memories.py), and what of.
REMEMBERING = {"tickets": "solved tickets", "cart-events": "carts' customers"}


@dataclass
class Remembered:
    """What one partition's memories hold at the end of the log, per remembered entity.

    `heap_bytes` is the cost of a memory itself, volume aside: fresh copies of the keys and packed
    bytes put into a new `Memories` (its dict slot, key, bytes and expiry-list slot), all expiring
    in one hour, as thousands do per hour at the generator's rates, where the hourly expiry index
    costs nothing per memory. `kept_bytes` is the partition's own structure as it is after the
    log (the hourly index of this log's volume, dict tables sized for earlier peaks, and list
    slots of memories since recalled or replaced), divided by the memories it holds.
    """

    count: int
    heap_bytes: float
    kept_bytes: float
    key_bytes: float  # mean sys.getsizeof of a key
    memory_bytes: float  # mean sys.getsizeof of a packed memory


def remembered_log(total: int, seed: int, end: datetime) -> list[Record]:
    """`total` events of the generator's default traffic over REMEMBERED_DAYS up to `end`: its
    tickets reopened days after their solve and its shoppers returning days later are what
    partitions remember (a low rate: per-memory bytes do not depend on it)."""
    days = timedelta(days=REMEMBERED_DAYS)
    rate = total / days.total_seconds()
    return [to_record(e) for e in generate(seed, end - days, rate, count=total)]


def remembered(records: list[Record], windows: str) -> dict[str, Remembered]:
    """Per remembering topic: the heap its partition's memories take per remembered entity once
    the log is applied (one partition per topic, the default retentions for these windows)."""
    settings = Settings.load({"config": "none", "windows": windows}, environ={})
    config = state_config(settings)
    out: dict[str, Remembered] = {}
    for rules in topic_rules(settings):
        if rules.topic not in REMEMBERING:
            continue
        state = PartitionState(rules.topic, 0, rules, config)
        for offset, event in decoded(records, rules.topic, CUSTOMER_SECRET):
            state.apply(event, offset)
        out[rules.topic] = measure_memories(state.memories)
    return out


def measure_memories(memories: Memories) -> Remembered:
    """The heap a partition's memories take per memory (see `Remembered`)."""
    items = list(memories.items())
    count = len(items)
    if not count:
        return Remembered(0, 0.0, 0.0, 0.0, 0.0)
    until = until_of(items[0][1])
    payload_at = len(pack(until, b""))

    def fresh_copy() -> Memories:
        copy = Memories()
        for key, memory in items:
            copy.put(key.encode().decode(), pack(until, memory[payload_at:]))
        return copy

    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        copy = fresh_copy()
        gc.collect()
        heap = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return Remembered(
        count=count,
        heap_bytes=heap / len(copy),
        kept_bytes=retained_bytes(memories) / count,
        key_bytes=sum(sys.getsizeof(key) for key, _ in items) / count,
        memory_bytes=sum(sys.getsizeof(memory) for _, memory in items) / count,
    )


def retained_bytes(root: object) -> int:
    """sys.getsizeof of root and of every object it reaches through its attributes, dicts, lists
    and tuples, each counted once (as tracemalloc counts a fresh copy, shared objects aside):
    the heap an object's contents hold, measured without copying them."""
    seen: set[int] = set()
    total = 0
    todo: list[object] = [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if obj is root or isinstance(obj, dict | list | tuple):
            todo.extend(gc.get_referents(obj))
    return total
