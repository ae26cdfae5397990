"""`python -m bench.run` (`make bench`): the whole benchmark in one run, on one broker.

One event log is produced once; then, in each repeat, a bare aiokafka loop, a bare Faust agent (the
floor), the same agent with the worker's fetching (the raised floor, stream/runtime/fetching.py) and
the full worker with three and with twelve windows each read all of it from the start under their
own consumer group. The last full worker, caught up, then takes a fixed offered load of half the
measured maximum for the latency figures. Memory is measured last, on a fresh broker, with a worker
given only open carts and open tickets. Medians of the repeats go to the table and, with every
repeat, to the JSON file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from rich.console import Console

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
from bench.phases import (
    BenchError,
    Context,
    Latency,
    Memory,
    Throughput,
    heap_bytes_per_entity,
    measure_floor,
    measure_full,
    measure_latency,
    measure_memory,
    measure_raw,
)
from bench.report import MB, machine, median, print_table, verdicts, write_json
from stream.config import ConfigError, parse_duration
from stream.config.settings import Settings
from stream.contract.schemas import SOURCE_TOPICS
from stream.runtime.connection import partitions_of
from stream.runtime.topics import ensure_topics
from stream.tools.devservers import DevServerUnavailable
from stream.tools.progress import progress_bar
from tests.servers import Broker, Worker

THREE_WINDOWS = "5m,1h,24h"
TWELVE_WINDOWS = "1m,2m,5m,10m,15m,30m,1h,2h,4h,6h,12h,24h"
#: The default windows: the three short ones and the long 7d and 30d (hourly buckets).
FIVE_WINDOWS = "5m,1h,24h,7d,30d"
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
    "latency_duration": 60.0,
    "long_events": LONG_DAYS * 86400 // 45,
}
QUICK = {
    "events": 3_000,
    "repeat": 1,
    "open_carts": 2_000,
    "open_tickets": 3_000,
    "latency_duration": 6.0,
    "long_events": 1_000,
}
#: Event-time rate of the open carts and tickets (all recent, none past a timeout).
OPEN_ENTITY_RATE = 100.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Benchmark the cxkpi worker against a bare Faust agent (the floor), the same "
        "agent with the worker's fetching (the raised floor) and a bare aiokafka loop on one "
        "pre-produced log (50 % cart, 30 % ticket, 20 % survey events); "
        "latency at half the measured maximum; memory with many open carts and tickets. "
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
        default=THREE_WINDOWS,
        help=f"the worker's windows in the main runs (default {THREE_WINDOWS})",
    )
    parser.add_argument(
        "--windows-many",
        default=TWELVE_WINDOWS,
        help=f"the windows of the second full run, compared with --windows "
        f"(default {TWELVE_WINDOWS})",
    )
    parser.add_argument(
        "--windows-long",
        default=FIVE_WINDOWS,
        help=f"the windows of the third full run, compared with --windows, and of the "
        f"long-horizon memory phase (default {FIVE_WINDOWS})",
    )
    parser.add_argument(
        "--long-events",
        type=int,
        help=f"events of the {LONG_DAYS}-day log of the long-horizon memory phase, replayed with "
        f"--windows and with --windows-long (default {FULL['long_events']:,}; "
        f"--quick: {QUICK['long_events']:,})",
    )
    parser.add_argument(
        "--open-carts",
        type=int,
        help=f"open carts in the memory phase (default {FULL['open_carts']:,}; "
        f"--quick: {QUICK['open_carts']:,})",
    )
    parser.add_argument(
        "--open-tickets",
        type=int,
        help=f"open tickets in the memory phase (default {FULL['open_tickets']:,}; "
        f"--quick: {QUICK['open_tickets']:,})",
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
    for name in ("events", "repeat", "open_carts", "open_tickets", "long_events"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    if args.latency_duration <= 0 or args.event_rate <= 0 or args.latency_load <= 0:
        raise ConfigError("--latency-duration, --latency-load and --event-rate must be positive")
    for option in ("windows", "windows_many", "windows_long"):
        Settings.load({"config": "none", "windows": getattr(args, option)}, environ={})
    return args


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
    say, quiet = phases.say, phases.quiet
    embedded = args.broker is None
    profile = args.profile or ("dev" if embedded else os.environ.get("CXKPI_PROFILE", "production"))
    server = Broker(workdir) if embedded else None
    broker = server.url if server else args.broker
    say(f"broker {broker} ({'embedded Tansu' if server else 'given'}), profile {profile}")
    runs: dict[str, list[Throughput]] = {
        "raw": [],
        "floor": [],
        "raised_floor": [],
        "full": [],
        "full_many": [],
        "full_long": [],
    }
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
        del records
        ctx = Context(broker, profile, workdir, produced, quiet=quiet)
        for r in range(args.repeat):
            last = r == args.repeat - 1
            tag = f"{r + 1}/{args.repeat}"
            runs["raw"].append(await measure_raw(ctx))
            say(f"raw aiokafka loop {tag}: {runs['raw'][-1].rate:,.0f} events/s")
            runs["floor"].append(await measure_floor(ctx, f"floor-{r}"))
            say(f"floor (bare Faust agent) {tag}: {runs['floor'][-1].rate:,.0f} events/s")
            runs["raised_floor"].append(await measure_floor(ctx, f"raised-{r}", raised=True))
            say(f"raised floor {tag}: {runs['raised_floor'][-1].rate:,.0f} events/s")
            many, _ = await measure_full(ctx, f"many-{r}", args.windows_many)
            runs["full_many"].append(many)
            say(f"full worker, {args.windows_many} {tag}: {many.rate:,.0f} events/s")
            long, _ = await measure_full(ctx, f"long-{r}", args.windows_long)
            runs["full_long"].append(long)
            say(f"full worker, {args.windows_long} {tag}: {long.rate:,.0f} events/s")
            keep = last and not args.skip_latency
            full, worker = await measure_full(ctx, f"full-{r}", args.windows, keep=keep)
            runs["full"].append(full)
            say(f"full worker, {args.windows} {tag}: {full.rate:,.0f} events/s")
        if worker is not None:
            rate = median(_rates(runs["full"])) * args.latency_load
            say(f"latency: offering {rate:,.0f} events/s for {args.latency_duration:.0f}s")
            latency = await measure_latency(
                ctx,
                worker,
                rate,
                args.latency_duration,
                start=log_end,
                seed=args.seed + 1,
            )
            say(
                f"latency p50 {latency.p50_s * 1000:,.0f} ms, p99 {latency.p99_s * 1000:,.0f} ms "
                f"({latency.sent:,} events sent at {latency.sent_rate:,.0f}/s, processed at "
                f"{latency.processed_rate:,.0f}/s meanwhile; {latency.scrapes} scrapes)"
            )
    finally:
        if worker is not None:
            worker.stop()
        if server is not None:
            server.stop()
    memory: Memory | None = None
    heap: dict[str, float] = {}
    long_peaks: dict[str, int] = {}
    if not args.skip_memory:
        memory, heap = await run_memory(args, workdir, phases)
        long_peaks = await run_long_memory(args, workdir, phases)
    return results(args, profile, embedded, runs, latency, memory, heap, long_peaks)


async def run_memory(
    args: argparse.Namespace, workdir: Path, phases: Phases
) -> tuple[Memory | None, dict[str, float]]:
    """Open carts, then open tickets, given to a worker on a fresh embedded broker."""
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
        "idle_ticket": heap_bytes_per_entity(tickets, args.windows_long, idle=IDLE_TICKET_AGE),
    }
    say(
        f"state heap per cart {heap['cart']:,.0f} B, per ticket {heap['ticket']:,.0f} B, per "
        f"open ticket idle for {IDLE_TICKET_AGE.days} days {heap['idle_ticket']:,.0f} B"
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
        ctx = Context(server.url, profile, workdir, Produced(), quiet=phases.quiet)
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
    args: argparse.Namespace, workdir: Path, phases: Phases
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
        ctx = Context(server.url, args.profile or "dev", workdir, produced, quiet=phases.quiet)
        for label, windows in (("short", args.windows), ("long", args.windows_long)):
            run_, _ = await measure_full(ctx, f"days-{label}", windows)
            peaks[label] = run_.peak_rss_bytes or 0
            say(f"{LONG_DAYS} days, windows {windows}: peak RSS {peaks[label] / MB:,.0f} MB")
    finally:
        server.stop()
    return peaks


def results(
    args: argparse.Namespace,
    profile: str,
    embedded: bool,
    runs: dict[str, list[Throughput]],
    latency: Latency | None,
    memory: Memory | None,
    heap: dict[str, float],
    long_peaks: dict[str, int],
) -> dict[str, Any]:
    """Every figure: medians in `figures`, each repeat in `repeat_figures` and `runs`."""
    rates = {name: _rates(values) for name, values in runs.items()}
    figures: dict[str, float] = {
        "raw_events_per_s": median(rates["raw"]),
        "floor_events_per_s": median(rates["floor"]),
        "raised_floor_events_per_s": median(rates["raised_floor"]),
        "full_events_per_s": median(rates["full"]),
        "full_many_windows_events_per_s": median(rates["full_many"]),
        "full_long_windows_events_per_s": median(rates["full_long"]),
        "full_peak_rss_mb": max(r.peak_rss_bytes or 0 for r in runs["full"]) / MB,
    }
    figures["full_vs_floor"] = figures["full_events_per_s"] / figures["floor_events_per_s"]
    figures["full_vs_raised_floor"] = (
        figures["full_events_per_s"] / figures["raised_floor_events_per_s"]
    )
    figures["full_vs_raw"] = figures["full_events_per_s"] / figures["raw_events_per_s"]
    figures["many_vs_three_windows"] = (
        figures["full_many_windows_events_per_s"] / figures["full_events_per_s"]
    )
    figures["long_vs_three_windows"] = (
        figures["full_long_windows_events_per_s"] / figures["full_events_per_s"]
    )
    repeat_figures: dict[str, list[float]] = {
        "raw_events_per_s": rates["raw"],
        "floor_events_per_s": rates["floor"],
        "raised_floor_events_per_s": rates["raised_floor"],
        "full_events_per_s": rates["full"],
        "full_many_windows_events_per_s": rates["full_many"],
        "full_vs_floor": [f / b for f, b in zip(rates["full"], rates["floor"], strict=True)],
        "full_vs_raised_floor": [
            f / b for f, b in zip(rates["full"], rates["raised_floor"], strict=True)
        ],
        "full_vs_raw": [f / b for f, b in zip(rates["full"], rates["raw"], strict=True)],
        "many_vs_three_windows": [
            m / f for m, f in zip(rates["full_many"], rates["full"], strict=True)
        ],
        "full_long_windows_events_per_s": rates["full_long"],
        "long_vs_three_windows": [
            m / f for m, f in zip(rates["full_long"], rates["full"], strict=True)
        ],
    }
    if latency is not None:
        figures.update(
            latency_offered_events_per_s=latency.offered_rate,
            latency_processed_events_per_s=latency.processed_rate,
            latency_p50_ms=latency.p50_s * 1000,
            latency_p99_ms=latency.p99_s * 1000,
            latency_upper_p50_ms=latency.upper_p50_s * 1000,
            latency_upper_p99_ms=latency.upper_p99_s * 1000,
        )
    if heap:
        figures["heap_bytes_per_open_cart"] = heap["cart"]
        figures["heap_bytes_per_open_ticket"] = heap["ticket"]
        figures["heap_bytes_per_idle_open_ticket"] = heap["idle_ticket"]
    if long_peaks:
        figures["long_days_peak_rss_short_mb"] = long_peaks["short"] / MB
        figures["long_days_peak_rss_long_mb"] = long_peaks["long"] / MB
        figures["long_vs_short_peak_rss"] = long_peaks["long"] / long_peaks["short"]
    if memory is not None:
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
        "memory": asdict(memory) if memory else None,
        "config": {
            "events": args.events,
            "repeat": args.repeat,
            "mix": MIX,
            "mix_text": " / ".join(f"{share:.0%} {t}" for t, share in MIX.items()),
            "windows": args.windows,
            "windows_many": args.windows_many,
            "windows_long": args.windows_long,
            "long_events": args.long_events,
            "long_days": LONG_DAYS,
            "event_rate": args.event_rate,
            "seed": args.seed,
            "profile": profile,
            "broker": "embedded Tansu" if embedded else "given",
            "redis": "disabled",
            "open_carts": args.open_carts,
            "open_tickets": args.open_tickets,
            "latency_duration_s": args.latency_duration,
            "latency_load": args.latency_load,
            "quick": args.quick,
        },
        "machine": machine(),
    }


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
