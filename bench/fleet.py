"""The fleet phase: 1, 2 and 4 workers sharing 8 partitions per topic, Redis on.

For each fleet size, fresh workers (their own consumer group and Redis keys) read the whole log
once all of them are ready: total throughput counts the records done after that moment, from
the workers' changelog markers. Then a live load is offered while a reader polls the merged
snapshot in Redis: its age is now minus its `valid_at` (the smallest stream time of all
partitions), which is what a dashboard reading Redis sees. Last, each worker's /metrics gives
the WATCH retries of the merged snapshot and which worker led.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
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
    leaders: int  # workers that said they lead, at the end (1 in a settled fleet)

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
    """`size` workers over the log on FLEET_PARTITIONS partitions, then under a live load."""
    app_id = ctx.app_id(f"fleet{size}")
    expected = ctx.produced.total
    env = ctx.worker_env(app_id, windows, CXKPI_PARTITIONS=str(FLEET_PARTITIONS))
    workers = [Worker(env, ctx.workdir / f"{app_id}-{i}.log") for i in range(size)]
    try:
        t_ready = await wait_all_ready(workers)
        async with scraped(workers), Markers(ctx.broker, app_id) as markers:
            await follow(
                ctx, markers, expected, f"fleet of {size}", workers[0].process, workers[0].log
            )
            for worker in workers:
                if worker.process.poll() is not None:
                    raise BenchError(f"a fleet worker exited; see {worker.log}")
            t0, _, t_end = markers.timing(expected)
            before = done_by(markers, t_ready)
            events, seconds = expected - before, t_end - t_ready
            if before > expected // 2:  # a tiny log (--quick): mostly done while joining
                events, seconds = expected, t_end - min(t0, t_ready)
            ages = await snapshot_ages(ctx, f"{app_id}:snapshot", live_rate, live_s, seed)
        retries, leaders = await publish_counters(workers)
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
    )


async def snapshot_ages(
    ctx: Context, key: str, rate: float, duration_s: float, seed: int
) -> list[float]:
    """Offer `rate` live events/s for `duration_s`, each stamped with the time it is sent, while
    reading the snapshot at random moments; the ages (now - valid_at, seconds) seen after the
    first few seconds."""
    producer = AIOKafkaProducer(**connection(ctx.broker), linger_ms=5)
    client = aioredis.Redis.from_url(ctx.redis_url or "")
    ages: list[float] = []
    done = asyncio.Event()
    settle_s = min(5.0, duration_s / 3)  # the first live events take the windows past the log

    async def offer() -> None:
        start = datetime.now(UTC)
        events = mixed_events(seed, start, rate)
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

    async def read() -> None:
        rng = random.Random(seed)
        t_start = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(rng.uniform(0.05, 0.25))
            raw = await client.get(key)
            valid_at = orjson.loads(raw).get("valid_at") if raw else None
            if valid_at and time.monotonic() - t_start > settle_s:
                moment = datetime.fromisoformat(valid_at.replace("Z", "+00:00"))
                ages.append((datetime.now(UTC) - moment) / timedelta(seconds=1))

    await producer.start()
    try:
        reader = asyncio.create_task(read())
        await offer()
        await reader
    finally:
        await producer.stop()
        await client.aclose()
    return ages


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
