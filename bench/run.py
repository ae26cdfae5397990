"""`python -m bench.run` (`make bench`): the whole benchmark in one run, on one broker.

Workers run in the production configuration unless a row says otherwise: the default windows,
Redis on (a real redis-server, started here), /metrics scraped every 15 s, all three topics.

One event log is produced once; then, in each repeat, a bare aiokafka loop, a bare Faust app with
one agent per topic (the floor), the same app with the worker's fetching (the raised floor,
stream/runtime/transport.py) and the full worker (production; with Redis off; with three short
windows; with twelve) each read all of it from the start under their own consumer group. The last
production worker, caught up, then takes a fixed offered load of half the measured maximum for
the latency figures. The cost of publishing to Redis is measured in this process on the log's
state. Fleets of 1, 2 and 4 workers read a log on 8 partitions, then take a live load while the
Redis snapshot's age is watched; the fleet of 2 takes it again while the worker writing the
snapshot is killed with SIGKILL. Memory is measured last, on fresh brokers, then (in this
process) what partitions remember of solved tickets and carts' customers over 38 days. Medians of
the repeats go to the table and, with every repeat, to the JSON file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry
from rich.console import Console

from bench.engagement import (
    ENDS_APART,
    activity_costs,
    bytes_per_user,
    first_events,
    state_rate,
    worker_ratio,
)
from bench.eventlog import (
    MIX,
    Produced,
    connection,
    last_event_time,
    log_events,
    now_utc,
    open_carts,
    open_tickets,
    produce,
)
from bench.fleet import FLEET_PARTITIONS, FleetRun, measure_fleet
from bench.phases import (
    REMEMBERED_DAYS,
    REMEMBERING,
    SCRAPE_EVERY_S,
    BenchError,
    Context,
    Latency,
    Memory,
    Remembered,
    Throughput,
    heap_bytes_per_customer,
    heap_bytes_per_entity,
    histogram,
    histogram_quantile,
    measure_floor,
    measure_full,
    measure_latency,
    measure_memory,
    measure_raw,
    no_customers_config,
    remembered,
    remembered_log,
)
from bench.publishing import PublishCost, live_seconds, measure_publishing, shape_of, states_from
from bench.report import MB, machine, median, print_table, verdicts, write_json
from bench.texts import run_without_text
from bench.users import peak_rss_bytes as users_peak_rss
from stream.config import ConfigError, parse_duration
from stream.config.settings import Settings
from stream.contract.schemas import SOURCE_TOPICS
from stream.publish.redis_store import SnapshotStore
from stream.runtime.connection import partitions_of
from stream.runtime.topics import ensure_topics
from stream.tools.children import interrupt_on_sigterm
from stream.tools.devservers import DevServerUnavailable
from stream.tools.progress import progress_bar
from tests.servers import Broker, RedisServer, Worker

#: The default windows: the three short ones and the long 7d and 30d (hourly buckets).
FIVE_WINDOWS = "5m,1h,24h,7d,30d"
THREE_WINDOWS = "5m,1h,24h"
TWELVE_WINDOWS = "1m,2m,5m,10m,15m,30m,1h,2h,4h,6h,12h,24h"
#: The worker's default publish interval: the bound on the snapshot's age is twice that.
PUBLISH_INTERVAL_S = 1.0
#: Days of event time of the long-horizon memory log, and its events (one every 45 s).
LONG_DAYS = 35
#: How long the idle open tickets of the heap figure go without an event (past the retention).
IDLE_TICKET_AGE = timedelta(days=8)
#: Sizes of a full run, and of --quick (CI: proves the harness works end to end, in about a
#: minute; its figures mean nothing).
FULL = {
    "events": 200_000,
    "repeat": 3,
    "open_carts": 200_000,
    "open_tickets": 100_000,
    "remembered_events": 300_000,
    "latency_duration": 60.0,
    "long_events": LONG_DAYS * 86400 // 45,
    "publish_rounds": 90,
    "latency_max_rate": None,
    "fleet_events": 200_000,
    "fleet_live_rate": 1000.0,
    "fleet_live_duration": 30.0,
    "active_users": 1_000_000,
    "engagement_events": 100_000,
    "engagement_pairs": 4,
    "engagement_ends": 4,
}
QUICK = {
    "events": 3_000,
    "repeat": 1,
    "open_carts": 2_000,
    "open_tickets": 3_000,
    "remembered_events": 20_000,
    "latency_duration": 6.0,
    "long_events": 1_000,
    "publish_rounds": 3,
    "latency_max_rate": 300.0,
    "fleet_events": 3_000,
    "fleet_live_rate": 200.0,
    "fleet_live_duration": 8.0,
    "active_users": 2_000,
    "engagement_events": 3_000,
    "engagement_pairs": 1,
    "engagement_ends": 1,
}
#: Event-time rate of the open carts and tickets (all recent, none past a timeout).
OPEN_ENTITY_RATE = 100.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Benchmark the cxkpi worker as users run it (default windows, Redis on, "
        "/metrics scraped every 15 s) against a bare Faust app with one agent per topic (the "
        "floor), the same app with the worker's fetching (the raised floor) and a bare aiokafka "
        "loop on one pre-produced log (50 % cart, 30 % ticket, 20 % survey events); the "
        "worker with Redis off and with other windows; latency at half the measured maximum; "
        "the CPU cost of publishing to Redis; fleets of 1, 2 and 4 workers; memory with many "
        "open carts and tickets; the heap of what partitions remember of solved tickets and "
        "carts' customers. "
        "Prints a table with the targets and writes every figure to a JSON file. Targets "
        "are reported, not enforced: the exit code is 0 unless the benchmark itself failed.",
    )
    parser.add_argument(
        "--events",
        type=int,
        help=f"events in the log (default {FULL['events']:,}; --quick: {QUICK['events']:,})",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        help=f"runs of each throughput measurement; the median is reported "
        f"(default {FULL['repeat']}; --quick: {QUICK['repeat']})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench/results.json"),
        help="JSON file for all figures (default bench/results.json)",
    )
    parser.add_argument(
        "--broker",
        help="Kafka URL whose source topics are empty or absent (security settings from the "
        "CXKPI_KAFKA_* environment variables); default: start the embedded Tansu broker on a "
        "free port. The memory phase always uses a fresh embedded broker, since a worker "
        "reads its topics from the start.",
    )
    parser.add_argument(
        "--profile",
        choices=("dev", "production"),
        help="the worker's profile (default: dev with the embedded broker, else production)",
    )
    parser.add_argument("--skip-latency", action="store_true", help="skip the latency phase")
    parser.add_argument("--skip-memory", action="store_true", help="skip the memory phase")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes (for CI: proves the harness works; the figures mean nothing); "
        "explicit size options still win",
    )
    parser.add_argument(
        "--windows",
        default=FIVE_WINDOWS,
        help=f"the worker's windows in the production runs, the latency, fleet and memory "
        f"phases (default {FIVE_WINDOWS}, the worker's own default)",
    )
    parser.add_argument(
        "--windows-short",
        default=THREE_WINDOWS,
        help=f"the short windows of a full run compared with --windows, and of the long-horizon "
        f"memory phase (default {THREE_WINDOWS})",
    )
    parser.add_argument(
        "--windows-many",
        default=TWELVE_WINDOWS,
        help=f"the windows of a full run compared with --windows-short (default {TWELVE_WINDOWS})",
    )
    parser.add_argument(
        "--long-events",
        type=int,
        help=f"events of the {LONG_DAYS}-day log of the long-horizon memory phase, replayed with "
        f"--windows-short and with --windows (default {FULL['long_events']:,}; "
        f"--quick: {QUICK['long_events']:,})",
    )
    parser.add_argument(
        "--publish-rounds",
        type=int,
        help=f"publishes timed on the log's state, one per simulated second of live load "
        f"(default {FULL['publish_rounds']}; --quick: {QUICK['publish_rounds']})",
    )
    parser.add_argument(
        "--fleet-workers",
        default="1,2,4",
        help="fleet sizes of the fleet phase, on "
        f"{FLEET_PARTITIONS} partitions per topic (default 1,2,4; 'none' skips the phase)",
    )
    parser.add_argument(
        "--fleet-events",
        type=int,
        help=f"events of the fleet phase's log (default {FULL['fleet_events']:,}; "
        f"--quick: {QUICK['fleet_events']:,})",
    )
    parser.add_argument(
        "--fleet-live-rate",
        type=float,
        help=f"live events/s offered to each fleet while the snapshot's age is watched "
        f"(default {FULL['fleet_live_rate']:,.0f}; --quick: {QUICK['fleet_live_rate']:,.0f})",
    )
    parser.add_argument(
        "--fleet-live-duration",
        type=parse_duration,
        metavar="DURATION",
        help=f"how long each fleet takes the live load (default "
        f"{FULL['fleet_live_duration']:.0f}s; --quick: {QUICK['fleet_live_duration']:.0f}s)",
    )
    parser.add_argument(
        "--open-carts",
        type=int,
        help=f"open carts in the memory phase (default {FULL['open_carts']:,}; "
        f"--quick: {QUICK['open_carts']:,})",
    )
    parser.add_argument(
        "--active-users",
        type=int,
        help=f"users active in 30 d whose activity state's peak RSS is measured, in a process "
        f"of its own (bench/users.py; default {FULL['active_users']:,}; --quick: "
        f"{QUICK['active_users']:,})",
    )
    parser.add_argument(
        "--engagement-events",
        type=int,
        help=f"events of the activity-only and the cart-only log a production worker runs over, "
        f"in turn, for the engagement throughput ratio (default {FULL['engagement_events']:,}; "
        f"--quick: {QUICK['engagement_events']:,})",
    )
    parser.add_argument(
        "--engagement-pairs",
        type=int,
        help=f"pairs of those runs (default {FULL['engagement_pairs']}; --quick: "
        f"{QUICK['engagement_pairs']})",
    )
    parser.add_argument(
        "--engagement-ends",
        type=int,
        help=f"moments, {ENDS_APART.total_seconds() / 3600:.0f} h apart, at which the 35-day "
        f"activity log of the state per active user ends: the figure is their mean (default "
        f"{FULL['engagement_ends']}; --quick: {QUICK['engagement_ends']})",
    )
    parser.add_argument(
        "--open-tickets",
        type=int,
        help=f"open tickets in the memory phase (default {FULL['open_tickets']:,}; "
        f"--quick: {QUICK['open_tickets']:,})",
    )
    parser.add_argument(
        "--remembered-events",
        type=int,
        help=f"events of the {REMEMBERED_DAYS}-day log (the generator's default traffic) whose "
        f"remembered solved tickets and carts' customers are measured in process (default "
        f"{FULL['remembered_events']:,}; --quick: {QUICK['remembered_events']:,})",
    )
    parser.add_argument(
        "--latency-duration",
        type=parse_duration,
        metavar="DURATION",
        help=f"how long the latency load is offered (default {FULL['latency_duration']:.0f}s; "
        f"--quick: {QUICK['latency_duration']:.0f}s)",
    )
    parser.add_argument(
        "--latency-load",
        type=float,
        default=0.5,
        help="offered load of the latency phase as a share of the full worker's measured "
        "maximum (default 0.5)",
    )
    parser.add_argument(
        "--latency-max-rate",
        type=float,
        help=f"cap on the latency phase's offered events/s (default: none; --quick: "
        f"{QUICK['latency_max_rate']:,.0f}, as a tiny log's maximum means nothing)",
    )
    parser.add_argument(
        "--event-rate",
        type=float,
        default=30.0,
        help="event-time rate of the log in events/s: how much business time it spans "
        "(default 30: 200,000 events are about two hours)",
    )
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where process logs go (default: a new temporary directory, named at the end)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the size options from --quick or the full defaults; check them."""
    sizes = QUICK if args.quick else FULL
    for name, value in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    counts = ("events", "repeat", "open_carts", "open_tickets", "long_events", "publish_rounds")
    for name in (
        *counts,
        "fleet_events",
        "remembered_events",
        "active_users",
        "engagement_events",
        "engagement_pairs",
        "engagement_ends",
    ):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    positive = ("latency_duration", "event_rate", "latency_load", "fleet_live_rate")
    if any(getattr(args, name) <= 0 for name in (*positive, "fleet_live_duration")):
        raise ConfigError(
            "--latency-duration, --latency-load, --event-rate, --fleet-live-rate and "
            "--fleet-live-duration must be positive"
        )
    for option in ("windows", "windows_short", "windows_many"):
        Settings.load({"config": "none", "windows": getattr(args, option)}, environ={})
    args.fleet_sizes = fleet_sizes(args.fleet_workers)
    return args


def fleet_sizes(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4]; 'none' -> []."""
    if text.strip().lower() == "none":
        return []
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--fleet-workers: {text!r} is not a list such as 1,2,4") from None
    if not sizes or any(n < 1 for n in sizes):
        raise ConfigError(f"--fleet-workers: {text!r} is not a list such as 1,2,4")
    return sizes


class Phases:
    """Per-phase lines on stderr; the table goes to stdout."""

    def __init__(self, quiet: bool) -> None:
        self.console = Console(stderr=True)
        self.quiet = quiet
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        self.console.print(f"[dim]{elapsed:7.1f}s[/dim] [bold]»[/bold] {text}", highlight=False)


async def check_empty(broker: str) -> None:
    """The counts of a run are only right on topics that hold nothing else."""
    consumer = AIOKafkaConsumer(**connection(broker), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, SOURCE_TOPICS)
        if tps:
            ends = await consumer.end_offsets(tps)
            held = sum(ends.values())
            if held:
                raise BenchError(
                    f"the source topics on {broker} already hold {held} records; the benchmark "
                    "needs empty topics (or no --broker, for a fresh embedded one)"
                )
    finally:
        await consumer.stop()


async def prepare(broker: str, records: list[Any], quiet: bool, label: str) -> Produced:
    await ensure_topics(Settings.load({"broker": broker, "config": "none"}))
    with progress_bar(label, len(records), unit="events", disable=quiet) as advance:
        return await produce(broker, records, advance)


def _rates(runs: list[Throughput]) -> list[float]:
    return [r.rate for r in runs]


async def run(args: argparse.Namespace, workdir: Path, phases: Phases) -> dict[str, Any]:
    say = phases.say
    redis = RedisServer(workdir)
    say(f"redis-server {redis.url}")
    try:
        runs, latency, publishing, customer_heap = await run_log(args, workdir, phases, redis.url)
        if args.broker is None:  # the same log without text needs a broker of its own
            runs["full_no_text"] = await run_without_text(
                args, workdir, say, phases.quiet, redis.url, prepare
            )
        fleet = await run_fleet(args, workdir, phases, redis.url)
        memory: Memory | None = None
        heap: dict[str, float] = {}
        long_peaks: dict[str, int] = {}
        memories: dict[str, Remembered] = {}
        if not args.skip_memory:
            memory, heap = await run_memory(args, workdir, phases, redis.url)
            long_peaks = await run_long_memory(args, workdir, phases, redis.url)
            memories = run_remembered(args, phases)
    finally:
        redis.stop()
    profile = args.profile or ("dev" if args.broker is None else "production")
    return results(
        args,
        profile,
        runs,
        latency,
        publishing,
        customer_heap,
        fleet,
        memory,
        heap,
        long_peaks,
        memories,
    )


async def run_log(
    args: argparse.Namespace, workdir: Path, phases: Phases, redis_url: str
) -> tuple[dict[str, list[Throughput]], Latency | None, PublishCost, float]:
    """The throughput rows and the latency phase over one log, the cost of publishing its
    state to Redis, and the heap its customers take."""
    say, quiet = phases.say, phases.quiet
    embedded = args.broker is None
    profile = args.profile or ("dev" if embedded else os.environ.get("CXKPI_PROFILE", "production"))
    server = Broker(workdir) if embedded else None
    broker = server.url if server else args.broker
    say(f"broker {broker} ({'embedded Tansu' if server else 'given'}), profile {profile}")
    runs: dict[str, list[Throughput]] = {name: [] for name in THROUGHPUT_RUNS}
    latency: Latency | None = None
    worker: Worker | None = None
    try:
        if not embedded:
            await check_empty(broker)
        started = time.monotonic()
        records = log_events(args.events, args.seed, args.event_rate, now_utc())
        log_end = last_event_time(records)
        say(f"generated {len(records):,} events in {time.monotonic() - started:.1f}s")
        started = time.monotonic()
        produced = await prepare(broker, records, quiet, "producing the log")
        say(
            f"produced the log in {time.monotonic() - started:.1f}s: "
            + ", ".join(f"{t} {n:,}" for t, n in sorted(produced.counts.items()))
        )
        publishing = await run_publishing(args, records, log_end, redis_url, phases)
        customer_heap, customers = heap_bytes_per_customer(records, args.windows)
        say(f"state heap per customer {customer_heap:,.0f} B ({customers:,} customers)")
        del records
        ctx = Context(broker, profile, workdir, produced, redis_url=redis_url, quiet=quiet)
        for r in range(args.repeat):
            last = r == args.repeat - 1
            tag = f"{r + 1}/{args.repeat}"
            runs["raw"].append(await measure_raw(ctx))
            say(f"raw aiokafka loop {tag}: {runs['raw'][-1].rate:,.0f} events/s")
            runs["floor"].append(await measure_floor(ctx, f"floor-{r}"))
            say(f"floor (bare Faust app) {tag}: {runs['floor'][-1].rate:,.0f} events/s")
            runs["raised_floor"].append(await measure_floor(ctx, f"raised-{r}", raised=True))
            say(f"raised floor {tag}: {runs['raised_floor'][-1].rate:,.0f} events/s")
            no_customers = {"CXKPI_CONFIG": str(no_customers_config(workdir))}
            every = SCRAPE_EVERY_S
            for name, label, windows, redis_on, every_s, env in (
                ("full_redis_off", "Redis off", args.windows, False, every, {}),
                ("full_no_customers", "customer KPIs off", args.windows, True, every, no_customers),
                ("full_short", args.windows_short, args.windows_short, True, every, {}),
                ("full_many", args.windows_many, args.windows_many, True, every, {}),
                # a catch-up watched closely: /metrics read every second
                ("scraped_1s", "scraped every 1 s", args.windows, True, 1.0, {}),
                ("scraped_1s_redis_off", "every 1 s, Redis off", args.windows, False, 1.0, {}),
            ):
                run_, _ = await measure_full(
                    ctx, f"{name}-{r}", windows, redis=redis_on, scrape_every_s=every_s, **env
                )
                runs[name].append(run_)
                say(f"full worker, {label} {tag}: {run_.rate:,.0f} events/s")
            keep = last and not args.skip_latency
            full, worker = await measure_full(ctx, f"full-{r}", args.windows, keep=keep)
            runs["full"].append(full)
            say(f"full worker, production {tag}: {full.rate:,.0f} events/s")
        if worker is not None:
            rate = median(_rates(runs["full"])) * args.latency_load
            rate = min(rate, args.latency_max_rate or rate)
            say(f"latency: offering {rate:,.0f} events/s for {args.latency_duration:.0f}s")
            delays = await histogram(worker, REPARTITION_DELAY)
            latency = await measure_latency(
                ctx,
                worker,
                rate,
                args.latency_duration,
                start=log_end,
                seed=args.seed + 1,
                snapshot_key=f"{ctx.app_id(f'full-{args.repeat - 1}')}:snapshot",
            )
            after = await histogram(worker, REPARTITION_DELAY)
            latency.repartition_p99_s = histogram_quantile(delays, after, 0.99)
            say(
                f"latency to /metrics p50 {latency.p50_s * 1000:,.0f} ms, p99 "
                f"{latency.p99_s * 1000:,.0f} ms; to Redis p50 {_ms(latency.redis_p50_s)}, p99 "
                f"{_ms(latency.redis_p99_s)} ({latency.sent:,} events sent at "
                f"{latency.sent_rate:,.0f}/s, processed at {latency.processed_rate:,.0f}/s "
                f"meanwhile; {latency.scrapes} scrapes, {latency.redis_reads} Redis reads)"
            )
    finally:
        if worker is not None:
            worker.stop()
        if server is not None:
            server.stop()
    return runs, latency, publishing, customer_heap


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:,.0f} ms"


async def run_publishing(
    args: argparse.Namespace,
    records: list[Any],
    log_end: Any,
    redis_url: str,
    phases: Phases,
) -> PublishCost:
    """CPU per publish to Redis on the state of the log, under a live load (bench/publishing.py)."""
    started = time.monotonic()
    states = states_from(records, args.windows)
    phases.say(f"publishing: the log's state built in {time.monotonic() - started:.1f}s")
    store = SnapshotStore(
        redis_url, "bench-publishing", shape_of(args.windows), CollectorRegistry()
    )
    try:
        cost = await measure_publishing(
            states,
            lambda mine: store.publish(mine, preferred=True),
            live_seconds(args.seed + 2, log_end + timedelta(seconds=1)),
            rounds=args.publish_rounds,
        )
    finally:
        await store.close()
    phases.say(
        f"publishing: {cost.cpu_per_publish_s * 1000:,.1f} ms CPU per publish (max "
        f"{cost.max_cpu_per_publish_s * 1000:,.0f} ms) on {cost.series:,} window series"
    )
    return cost


async def run_fleet(
    args: argparse.Namespace, workdir: Path, phases: Phases, redis_url: str
) -> list[FleetRun]:
    """Fleets of each size on one fresh embedded broker with 8 partitions per topic."""
    if not args.fleet_sizes:
        return []
    say = phases.say
    (workdir / "fleet").mkdir(exist_ok=True)
    server = Broker(workdir / "fleet")
    out: list[FleetRun] = []
    try:
        topics = {"broker": server.url, "config": "none", "partitions": str(FLEET_PARTITIONS)}
        await ensure_topics(Settings.load(topics))
        records = log_events(args.fleet_events, args.seed, args.event_rate, now_utc())
        with progress_bar(
            "producing the fleet log", len(records), unit="events", disable=phases.quiet
        ) as advance:
            produced = await produce(server.url, records, advance)
        del records
        ctx = Context(
            server.url, args.profile or "dev", workdir, produced, redis_url, quiet=phases.quiet
        )
        for size in args.fleet_sizes:
            run_ = await measure_fleet(
                ctx, size, args.windows, args.fleet_live_rate, args.fleet_live_duration, args.seed
            )
            out.append(run_)
            say(
                f"fleet of {size}: {run_.rate:,.0f} events/s; snapshot age p50 "
                f"{run_.age_p50_s * 1000:,.0f} ms, p99 {run_.age_p99_s * 1000:,.0f} ms at "
                f"{run_.live_rate:,.0f} live events/s; {run_.watch_retries} WATCH retries, "
                f"{run_.leaders} writer(s)"
            )
            if run_.takeover is not None:
                say(
                    f"fleet of {size}, its snapshot's writer SIGKILLed under that load: another "
                    f"worker wrote it {run_.takeover.takeover_s:.1f} s later; the snapshot's age "
                    f"by published_at at most {run_.takeover.age_max_s:.1f} s (p99 before the "
                    f"kill {run_.takeover.age_p99_before_s:.1f} s), by valid_at at most "
                    f"{run_.takeover.valid_at_age_max_s:.1f} s (the dead worker's partitions, "
                    "until the group moved them)"
                )
    finally:
        server.stop()
    return out


async def run_memory(
    args: argparse.Namespace, workdir: Path, phases: Phases, redis_url: str
) -> tuple[Memory | None, dict[str, float]]:
    """Open carts, then open tickets, given to a production worker on a fresh embedded broker."""
    say = phases.say
    now = now_utc()
    # event times: recent and in order, so no cart times out and none is late
    span = timedelta(seconds=5 * args.open_carts / OPEN_ENTITY_RATE)
    carts = open_carts(args.open_carts, args.seed, now - span, OPEN_ENTITY_RATE)
    span = timedelta(seconds=5 * args.open_tickets / OPEN_ENTITY_RATE)
    tickets = open_tickets(args.open_tickets, args.seed, now - span, OPEN_ENTITY_RATE)
    say(f"memory: {len(carts):,} cart events, {len(tickets):,} ticket events generated")
    heap = {
        "cart": heap_bytes_per_entity(carts, args.windows),
        "ticket": heap_bytes_per_entity(tickets, args.windows),
        # open tickets nobody touched for 8 days (past the 7 d retention): kept, and how big
        "idle_ticket": heap_bytes_per_entity(tickets, args.windows, idle=IDLE_TICKET_AGE),
    }
    say(
        f"state heap per cart {heap['cart']:,.0f} B, per ticket {heap['ticket']:,.0f} B, per "
        f"open ticket idle for {IDLE_TICKET_AGE.days} days {heap['idle_ticket']:,.0f} B"
    )
    # engagement (bench/engagement.py): in this process, from the generator's activity
    ends = [now - i * ENDS_APART for i in range(args.engagement_ends)]
    per_end = [bytes_per_user(35, args.seed, end, args.windows, rate=0.2) for end in ends]
    mean, held, kept, users = (statistics.mean(figures) for figures in zip(*per_end, strict=True))
    heap.update(user=mean, held_user=held, remembered_user=kept, users=users)
    heap["user_most"] = max(figures[0] for figures in per_end)
    activity_log = first_events("activity", 15_000, args.seed, now)
    heap["activity_vs_cart_state"] = state_rate("activity", activity_log) / state_rate(
        "cart-events", first_events("cart-events", 15_000, args.seed, now)
    )
    say(
        f"engagement: {mean:,.0f} B per active user ({users:,.0f} users; the mean of "
        f"{len(ends)} ends of the log, the most {heap['user_most']:,.0f} B), state speed vs carts "
        f"{heap['activity_vs_cart_state']:.2f}"
    )
    say(f"engagement: state µs per activity event {activity_costs(activity_log)}")
    heap["active_users_state_rss"] = users_peak_rss(args.active_users)
    say(
        f"engagement: {args.active_users:,} users active in 30 d, peak RSS of their state's "
        f"process {heap['active_users_state_rss'] / MB:,.0f} MB"
    )
    pairs = await worker_ratio(
        workdir / "engagement", args.engagement_events, args.engagement_pairs, args.seed, say
    )
    heap.update(
        activity_vs_cart_worker=pairs.ratio,
        activity_worker_events_per_s=median([r.events_per_s for r in pairs.activity]),
        cart_worker_events_per_s=median([r.events_per_s for r in pairs.carts]),
        activity_worker_us_per_event=median([r.cpu_us_per_event for r in pairs.activity]),
        cart_worker_us_per_event=median([r.cpu_us_per_event for r in pairs.carts]),
    )
    (workdir / "memory").mkdir(exist_ok=True)
    try:
        server = Broker(workdir / "memory")
    except DevServerUnavailable as exc:
        say(f"memory phase skipped: {exc}")
        return None, heap
    profile = args.profile or "dev"
    try:
        await ensure_topics(Settings.load({"broker": server.url, "config": "none"}))
        ctx = Context(server.url, profile, workdir, Produced(), redis_url, quiet=phases.quiet)
        memory = await measure_memory(ctx, carts, tickets, args.windows)
    finally:
        server.stop()
    say(
        f"memory: peak RSS {memory.peak_rss_carts_bytes / MB:,.0f} MB with the open carts, "
        f"{memory.peak_rss_bytes / MB:,.0f} MB with the tickets too; per open cart "
        f"{memory.bytes_per_cart:,.0f} B, per open ticket {memory.bytes_per_ticket:,.0f} B"
    )
    return memory, heap


async def run_long_memory(
    args: argparse.Namespace, workdir: Path, phases: Phases, redis_url: str
) -> dict[str, int]:
    """Peak RSS of a worker replaying a 35-day log with the short windows only, and with the
    long ones too, on a fresh embedded broker: long windows may not multiply memory."""
    say = phases.say
    rate = args.long_events / (LONG_DAYS * 86400)
    records = log_events(args.long_events, args.seed, rate, now_utc() - timedelta(hours=1))
    (workdir / "long").mkdir(exist_ok=True)
    try:
        server = Broker(workdir / "long")
    except DevServerUnavailable as exc:
        say(f"long-horizon memory phase skipped: {exc}")
        return {}
    peaks: dict[str, int] = {}
    try:
        produced = await prepare(server.url, records, phases.quiet, f"producing {LONG_DAYS} days")
        ctx = Context(
            server.url, args.profile or "dev", workdir, produced, redis_url, quiet=phases.quiet
        )
        for label, windows in (("short", args.windows_short), ("long", args.windows)):
            run_, _ = await measure_full(ctx, f"days-{label}", windows)
            peaks[label] = run_.peak_rss_bytes or 0
            say(f"{LONG_DAYS} days, windows {windows}: peak RSS {peaks[label] / MB:,.0f} MB")
    finally:
        server.stop()
    return peaks


def run_remembered(args: argparse.Namespace, phases: Phases) -> dict[str, Remembered]:
    """The heap of what a partition remembers of forgotten entities (stream/state/memories.py)
    after a long log of the generator's default traffic, measured in this process."""
    started = time.monotonic()
    records = remembered_log(args.remembered_events, args.seed, now_utc())
    out = remembered(records, args.windows)
    phases.say(
        f"memories after {REMEMBERED_DAYS} days ({len(records):,} events, "
        f"{time.monotonic() - started:.0f}s): "
        + "; ".join(
            f"{out[topic].count:,} {what}, heap {out[topic].heap_bytes:,.0f} B each "
            f"({out[topic].kept_bytes:,.0f} B as kept)"
            for topic, what in REMEMBERING.items()
        )
    )
    return out


#: The throughput runs over the log, each repeated.
THROUGHPUT_RUNS = (
    "raw",
    "floor",
    "raised_floor",
    "full",
    "full_redis_off",
    "full_no_customers",
    "full_short",
    "full_many",
    "scraped_1s",
    "scraped_1s_redis_off",
)
#: The histogram of the customers topic's delay, read around the latency phase.
REPARTITION_DELAY = "cxkpi_repartition_delay_seconds"


def results(
    args: argparse.Namespace,
    profile: str,
    runs: dict[str, list[Throughput]],
    latency: Latency | None,
    publishing: PublishCost,
    customer_heap: float,
    fleet: list[FleetRun],
    memory: Memory | None,
    heap: dict[str, float],
    long_peaks: dict[str, int],
    memories: dict[str, Remembered],
) -> dict[str, Any]:
    """Every figure: medians in `figures`, each repeat in `repeat_figures` and `runs`."""
    rates = {name: _rates(values) for name, values in runs.items()}
    repeat_figures: dict[str, list[float]] = {
        f"{name}_events_per_s": values for name, values in rates.items()
    }
    for figure, numerator, denominator in RATIOS:
        if not rates.get(denominator):
            continue  # a run this benchmark did not make (without text: needs its own broker)
        repeat_figures[figure] = [
            a / b if b else 0.0 for a, b in zip(rates[numerator], rates[denominator], strict=True)
        ]
    figures: dict[str, float] = {name: median(values) for name, values in repeat_figures.items()}
    figures["full_peak_rss_mb"] = max(r.peak_rss_bytes or 0 for r in runs["full"]) / MB
    figures.update(
        publish_cpu_ms=publishing.cpu_per_publish_s * 1000,
        publish_cpu_max_ms=publishing.max_cpu_per_publish_s * 1000,
        publish_cpu_share=publishing.cpu_per_publish_s / PUBLISH_INTERVAL_S,
        publish_series=publishing.series,
        heap_bytes_per_customer=customer_heap,
    )
    if latency is not None:
        figures.update(
            latency_offered_events_per_s=latency.offered_rate,
            latency_processed_events_per_s=latency.processed_rate,
            latency_p50_ms=latency.p50_s * 1000,
            latency_p99_ms=latency.p99_s * 1000,
            latency_upper_p50_ms=latency.upper_p50_s * 1000,
            latency_upper_p99_ms=latency.upper_p99_s * 1000,
        )
        if latency.repartition_p99_s is not None:
            figures["repartition_delay_p99_ms"] = latency.repartition_p99_s * 1000
        if latency.redis_p50_s is not None and latency.redis_p99_s is not None:
            figures["latency_redis_p50_ms"] = latency.redis_p50_s * 1000
            figures["latency_redis_p99_ms"] = latency.redis_p99_s * 1000
    by_size = {run_.workers: run_ for run_ in fleet}
    for size, run_ in by_size.items():
        figures.update(
            {
                f"fleet_{size}_events_per_s": run_.rate,
                f"fleet_{size}_age_p50_ms": run_.age_p50_s * 1000,
                f"fleet_{size}_age_p99_ms": run_.age_p99_s * 1000,
                f"fleet_{size}_watch_retries": run_.watch_retries,
            }
        )
        if 1 in by_size and size > 1 and by_size[1].rate:
            figures[f"fleet_{size}_vs_1"] = run_.rate / by_size[1].rate
        if run_.takeover is not None:
            figures.update(
                {
                    f"fleet_{size}_kill_age_max_ms": run_.takeover.age_max_s * 1000,
                    f"fleet_{size}_kill_takeover_ms": run_.takeover.takeover_s * 1000,
                    f"fleet_{size}_kill_valid_at_age_max_ms": run_.takeover.valid_at_age_max_s
                    * 1000,
                    f"fleet_{size}_kill_age_p99_before_ms": run_.takeover.age_p99_before_s * 1000,
                }
            )
    if heap:
        figures["heap_bytes_per_open_cart"] = heap["cart"]
        figures["heap_bytes_per_open_ticket"] = heap["ticket"]
        figures["heap_bytes_per_idle_open_ticket"] = heap["idle_ticket"]
        for figure, key in (
            ("bytes_per_active_user", "user"),
            ("bytes_per_active_user_most", "user_most"),
            ("bytes_per_held_user", "held_user"),
            ("bytes_per_remembered_user", "remembered_user"),
            ("active_users_measured", "users"),
            ("activity_vs_cart_state_speed", "activity_vs_cart_state"),
            ("activity_vs_cart_worker", "activity_vs_cart_worker"),
            ("activity_worker_events_per_s", "activity_worker_events_per_s"),
            ("cart_worker_events_per_s", "cart_worker_events_per_s"),
            ("activity_worker_us_per_event", "activity_worker_us_per_event"),
            ("cart_worker_us_per_event", "cart_worker_us_per_event"),
        ):
            figures[figure] = heap[key]
        figures["active_users_state_peak_rss_mb"] = heap["active_users_state_rss"] / MB
    for name, topic in (("ticket", "tickets"), ("cart", "cart-events")):
        if topic in memories:
            figures[f"heap_bytes_per_remembered_{name}"] = memories[topic].heap_bytes
            figures[f"kept_heap_bytes_per_remembered_{name}"] = memories[topic].kept_bytes
            figures[f"remembered_{name}s"] = memories[topic].count
    if long_peaks:
        figures["long_days_peak_rss_short_mb"] = long_peaks["short"] / MB
        figures["long_days_peak_rss_long_mb"] = long_peaks["long"] / MB
        figures["long_vs_short_peak_rss"] = long_peaks["long"] / long_peaks["short"]
    if memory is not None:
        if heap:  # an upper bound: the interpreter and modules are counted in both
            figures["active_users_worker_peak_rss_mb"] = (
                heap["active_users_state_rss"] + memory.rss_empty_bytes
            ) / MB
        figures.update(
            memory_peak_rss_mb=memory.peak_rss_carts_bytes / MB,
            memory_peak_rss_with_tickets_mb=memory.peak_rss_bytes / MB,
            rss_bytes_per_open_cart=memory.bytes_per_cart,
            rss_bytes_per_open_ticket=memory.bytes_per_ticket,
            changelog_bytes_per_open_cart=memory.changelog_bytes_per_cart,
            changelog_bytes_per_open_ticket=memory.changelog_bytes_per_ticket,
        )
    return {
        "figures": figures,
        "targets": verdicts(figures),
        "repeat_figures": repeat_figures,
        "runs": {
            name: [asdict(r) | {"rate": r.rate} for r in values] for name, values in runs.items()
        },
        "latency": asdict(latency) if latency else None,
        "publishing": asdict(publishing),
        "fleet": [asdict(r) | {"rate": r.rate} for r in fleet],
        "memory": asdict(memory) if memory else None,
        "remembered": {topic: asdict(r) for topic, r in memories.items()},
        "config": {
            "events": args.events,
            "repeat": args.repeat,
            "mix": MIX,
            "mix_text": " / ".join(f"{share:.0%} {t}" for t, share in MIX.items()),
            "windows": args.windows,
            "windows_short": args.windows_short,
            "windows_many": args.windows_many,
            "long_events": args.long_events,
            "long_days": LONG_DAYS,
            "event_rate": args.event_rate,
            "seed": args.seed,
            "profile": profile,
            "broker": "embedded Tansu" if args.broker is None else "given",
            "redis": "redis-server started by the benchmark (off in the 'Redis off' row)",
            "scrape_every_s": SCRAPE_EVERY_S,
            "publish_rounds": args.publish_rounds,
            "fleet_workers": args.fleet_sizes,
            "fleet_partitions": FLEET_PARTITIONS,
            "fleet_events": args.fleet_events,
            "fleet_live_rate": args.fleet_live_rate,
            "fleet_live_duration_s": args.fleet_live_duration,
            "open_carts": args.open_carts,
            "open_tickets": args.open_tickets,
            "remembered_events": args.remembered_events,
            "remembered_days": REMEMBERED_DAYS,
            "latency_duration_s": args.latency_duration,
            "latency_load": args.latency_load,
            "quick": args.quick,
        },
        "machine": machine(),
    }


#: (figure, numerator run, denominator run) of the ratios, per repeat.
RATIOS = (
    ("full_vs_floor", "full", "floor"),
    ("full_vs_raised_floor", "full", "raised_floor"),
    ("full_vs_raw", "full", "raw"),
    ("redis_on_vs_off", "full", "full_redis_off"),
    ("redis_on_vs_off_scraped_1s", "scraped_1s", "scraped_1s_redis_off"),
    ("customers_on_vs_off", "full", "full_no_customers"),
    ("text_on_vs_off", "full", "full_no_text"),
    ("long_vs_short_windows", "full", "full_short"),
    ("many_vs_short_windows", "full_many", "full_short"),
)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args = resolve(args)
    except ConfigError as exc:
        parser.error(str(exc))
    quiet = args.quiet or not sys.stderr.isatty()
    phases = Phases(quiet)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cxkpi-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    interrupt_on_sigterm()  # the brokers, workers and redis-server it starts stop with it
    try:
        results_ = asyncio.run(run(args, workdir, phases))
    except (BenchError, DevServerUnavailable, ConfigError) as exc:
        phases.say(f"[red]benchmark failed:[/red] {exc} (process logs in {workdir})")
        return 1
    except KeyboardInterrupt:
        phases.say(f"interrupted (process logs in {workdir})")
        return 130
    write_json(results_, args.out)
    print_table(results_)
    phases.say(f"wrote {args.out}; process logs in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
