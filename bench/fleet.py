"""The fleet phase: 1, 2 and 4 workers sharing 8 partitions per topic, Redis on.

For each fleet size, fresh workers (their own consumer group and Redis keys) read the whole log
once all of them are ready: total throughput counts the records done after that moment, from
the workers' changelog markers. Then a live load is offered while a reader polls the merged
snapshot in Redis: its age is now minus its `valid_at` (the smallest stream time of all
partitions), which is what a dashboard reading Redis sees. Then each worker's /metrics gives
the WATCH retries of the merged snapshot and which worker wrote it.

The fleet of two then takes the live load once more, and the worker writing the snapshot is
killed with SIGKILL part-way: the snapshot's age by its `published_at` (now minus the time it
was written) through the kill says how soon another worker took over writing it (the lease,
stream/publish/lease.py); its age by `valid_at` says how long the dead worker's partitions stood
still, until the group moved them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from bench.eventlog import connection, format_time, mixed_events, to_record
from bench.latency import percentile
from bench.phases import BenchError, Context, Markers, follow, scraped
from stream.tools.progress import progress_bar
from tests.servers import Worker

#: Partitions of each source topic in the fleet phase.
FLEET_PARTITIONS = 8
_SAMPLE = re.compile(rb"^(cxkpi_snapshot_publish_retries_total|cxkpi_snapshot_leader) (\S+)$", re.M)


#: Fleet size whose snapshot writer is killed under live load.
KILL_FLEET = 2
#: How long the reader waits, after the live load, for another worker to write the snapshot.
TAKEOVER_TIMEOUT_S = 60.0


@dataclass
class Takeover:
    """The snapshot's writer SIGKILLed under live load, read every READ_EVERY_S."""

    age_max_s: float  # the largest now - published_at from the kill on
    takeover_s: float  # from the kill to the first document another worker wrote
    valid_at_age_max_s: float  # the largest now - valid_at from the kill on
    age_p99_before_s: float  # now - published_at before the kill, for comparison


@dataclass
class FleetRun:
    """One fleet size: throughput over the log, snapshot age under live load, conflicts."""

    workers: int
    events: int
    seconds: float
    live_rate: float
    age_reads: int
    age_p50_s: float
    age_p99_s: float
    watch_retries: int
    leaders: int  # workers that said they write the snapshot, at the end (1 in a settled fleet)
    takeover: Takeover | None = None  # the writer SIGKILLed (the fleet of two)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


async def wait_all_ready(workers: list[Worker], timeout: float = 180.0) -> float:
    """Wall-clock time at which every worker answered /ready with 200 in one round."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            if worker.process.poll() is not None:
                raise BenchError(f"a fleet worker exited; see {worker.log}")
        statuses = await asyncio.gather(
            *(asyncio.to_thread(worker.readiness) for worker in workers)
        )
        if all(status == 200 for status, _ in statuses):
            return time.time()
        await asyncio.sleep(0.2)
    raise BenchError(f"the fleet of {len(workers)} was not ready within {timeout:.0f}s")


def done_by(markers: Markers, moment: float) -> int:
    """Records done as of the markers written by `moment` (wall clock)."""
    latest: dict[tuple[str, bytes], int] = {}
    for t, key, count in markers.history:
        if t <= moment:
            latest[key] = count
    return sum(latest.values())


async def measure_fleet(
    ctx: Context, size: int, windows: str, live_rate: float, live_s: float, seed: int
) -> FleetRun:
    """`size` workers over the log on FLEET_PARTITIONS partitions, then under a live load (and,
    for the fleet of KILL_FLEET, under it again while the snapshot's writer is killed)."""
    app_id = ctx.app_id(f"fleet{size}")
    expected = ctx.produced.total
    env = ctx.worker_env(app_id, windows, CXKPI_PARTITIONS=str(FLEET_PARTITIONS))
    workers = [Worker(env, ctx.workdir / f"{app_id}-{i}.log") for i in range(size)]
    key = f"{app_id}:snapshot"
    takeover = None
    try:
        t_ready = await wait_all_ready(workers)
        async with scraped(workers), Markers(ctx.broker, app_id) as markers:
            await follow(
                ctx, markers, expected, f"fleet of {size}", workers[0].process, workers[0].log
            )
            for worker in workers:
                if worker.process.poll() is not None:
                    raise BenchError(f"a fleet worker exited; see {worker.log}")
            t0, _, t_end, n_end = markers.timing(expected)
            before = done_by(markers, t_ready)
            events, seconds = n_end - before, t_end - t_ready
            if before > expected // 2:  # a tiny log (--quick): mostly done while joining
                events, seconds = n_end, t_end - min(t0, t_ready)
            ages = await snapshot_ages(ctx, key, live_rate, live_s, seed)
        retries, leaders = await publish_counters(workers)
        if size == KILL_FLEET:
            takeover = await writer_killed(ctx, key, workers, live_rate, live_s, seed + 1)
    finally:
        for worker in workers:
            worker.stop()
    if not ages:
        raise BenchError(f"fleet of {size}: the Redis snapshot never had a valid_at")
    return FleetRun(
        workers=size,
        events=events,
        seconds=max(seconds, 1e-3),
        live_rate=live_rate,
        age_reads=len(ages),
        age_p50_s=percentile(ages, 0.5),
        age_p99_s=percentile(ages, 0.99),
        watch_retries=retries,
        leaders=leaders,
        takeover=takeover,
    )


def age_of(moment: str) -> float:
    """Seconds from a document's time (RFC 3339, Z) to now."""
    then = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return (datetime.now(UTC) - then) / timedelta(seconds=1)


async def live_load(
    ctx: Context,
    rate: float,
    duration_s: float,
    seed: int,
    read: Callable[[asyncio.Event], Awaitable[None]],
) -> None:
    """Offer `rate` live events/s for `duration_s`, each stamped with the time it is sent, while
    `read(done)` runs (`done` is set once every event was sent)."""
    producer = AIOKafkaProducer(**connection(ctx.broker), linger_ms=5)
    done = asyncio.Event()

    async def offer() -> None:
        events = mixed_events(seed, datetime.now(UTC), rate)
        t_start = time.monotonic()
        total = int(rate * duration_s)
        with progress_bar("fleet live load", total, unit="events", disable=ctx.quiet) as advance:
            for i in range(total):
                delay = t_start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                # stamped when sent: stream time follows the wall clock, as in production
                event = next(events)
                event["occurred_at"] = format_time(datetime.now(UTC))
                record = to_record(event)
                await producer.send(record.topic, record.value, key=record.key)
                advance(1)
        await producer.flush()
        done.set()

    await producer.start()
    try:
        reader = asyncio.create_task(read(done))
        await offer()
        await reader
    finally:
        await producer.stop()


async def snapshot_ages(
    ctx: Context, key: str, rate: float, duration_s: float, seed: int
) -> list[float]:
    """The ages (now - valid_at, seconds) of the snapshot read at random moments under the live
    load, after its first few seconds."""
    client = aioredis.Redis.from_url(ctx.redis_url or "")
    ages: list[float] = []
    settle_s = min(5.0, duration_s / 3)  # the first live events take the windows past the log

    async def read(done: asyncio.Event) -> None:
        rng = random.Random(seed)
        t_start = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(rng.uniform(0.05, 0.25))
            raw = await client.get(key)
            valid_at = orjson.loads(raw).get("valid_at") if raw else None
            if valid_at and time.monotonic() - t_start > settle_s:
                ages.append(age_of(valid_at))

    try:
        await live_load(ctx, rate, duration_s, seed, read)
    finally:
        await client.aclose()
    return ages


#: How often the reader reads the snapshot while its writer is killed.
READ_EVERY_S = 0.05


async def writer_killed(
    ctx: Context, key: str, workers: list[Worker], rate: float, duration_s: float, seed: int
) -> Takeover:
    """Under the live load, SIGKILL the worker the snapshot names as its writer once the load
    settled, and read the snapshot every READ_EVERY_S until the load ends and another worker
    wrote it."""
    client = aioredis.Redis.from_url(ctx.redis_url or "")
    settle_s = min(5.0, duration_s / 3)
    before: list[float] = []  # ages by published_at before the kill
    after: list[tuple[float, float]] = []  # (age by published_at, age by valid_at) from the kill
    moments: list[float] = []  # monotonic times of the kill and of the takeover

    async def read(done: asyncio.Event) -> None:
        t_start = time.monotonic()
        writer: str | None = None
        killed_at: float | None = None
        taken_at: float | None = None
        deadline: float | None = None
        while not (done.is_set() and taken_at is not None):
            await asyncio.sleep(READ_EVERY_S)
            raw = await client.get(key)
            doc = orjson.loads(raw) if raw else {}
            if not doc.get("published_at") or not doc.get("valid_at"):
                continue
            if killed_at is None:
                before.append(age_of(doc["published_at"]))
                if time.monotonic() - t_start > settle_s:
                    writer = doc["writer"]
                    await asyncio.to_thread(writer_of(workers, writer).kill)
                    killed_at = time.monotonic()
                continue
            after.append((age_of(doc["published_at"]), age_of(doc["valid_at"])))
            if taken_at is None and doc["writer"] != writer:
                taken_at = time.monotonic()
            if done.is_set() and taken_at is None:
                deadline = deadline or time.monotonic() + TAKEOVER_TIMEOUT_S
                if time.monotonic() > deadline:
                    raise BenchError(f"no worker took over writing {key} after its writer died")
        assert killed_at is not None and taken_at is not None
        moments.extend((killed_at, taken_at))

    try:
        await live_load(ctx, rate, duration_s, seed, read)
    finally:
        await client.aclose()
    return Takeover(
        age_max_s=max(age for age, _ in after),
        takeover_s=moments[1] - moments[0],
        valid_at_age_max_s=max(age for _, age in after),
        age_p99_before_s=percentile(before, 0.99),
    )


def writer_of(workers: list[Worker], name: str) -> Worker:
    """The worker a document names as its writer (host:port: the port tells them apart)."""
    port = name.rpartition(":")[2]
    for worker in workers:
        if worker.env["CXKPI_WEB_PORT"] == port:
            return worker
    raise BenchError(f"the snapshot names {name!r} as its writer, none of the fleet")


async def publish_counters(workers: list[Worker]) -> tuple[int, int]:
    """WATCH retries summed over the workers, and how many of them lead."""
    retries = leaders = 0
    async with aiohttp.ClientSession() as session:
        for worker in workers:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(worker.base + "/metrics") as response:
                    body = await response.read()
                for name, value in _SAMPLE.findall(body):
                    if name == b"cxkpi_snapshot_leader":
                        leaders += int(float(value))
                    else:
                        retries += int(float(value))
    return retries, leaders
