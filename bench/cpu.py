"""`python -m bench.cpu`: where one production worker's CPU goes, per event.

`make bench` measures throughput against floors and targets; this is the tool for finding what
to change. It starts the embedded broker and a redis-server, produces a log of the benchmark's
mix, runs one worker as users run it (default windows, Redis on, customer KPIs on, /metrics read
every 15 s or `--scrape-every`) over the whole log, and prints events/s and the worker's CPU time
per event. With
`--py-spy FILE`, the worker runs under py-spy (`pip install py-spy`), sampling only while it holds
the GIL, and FILE gets the collapsed stacks (flamegraph.pl or speedscope.app read them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.eventlog import ONLY, log_events, now_utc
from bench.phases import (
    SCRAPE_EVERY_S,
    Context,
    Markers,
    follow,
    proc_status,
    rate_from,
    scraped,
)
from bench.report import MB
from bench.run import FIVE_WINDOWS, prepare
from bench.texts import without_text as without_text_of
from stream.tools.arguments import count
from stream.tools.children import interrupt_on_sigterm
from tests.servers import Broker, RedisServer, Worker


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cpu",
        description="Run one production worker over a generated log and print its events/s "
        "and CPU time per event, optionally under py-spy.",
    )
    parser.add_argument(
        "--events", type=count, default=200_000, help="events in the log (default 200,000)"
    )
    parser.add_argument(
        "--windows", default=FIVE_WINDOWS, help=f"the worker's windows (default {FIVE_WINDOWS})"
    )
    parser.add_argument(
        "--redis", choices=("on", "off"), default="on", help="publish to Redis (default on)"
    )
    parser.add_argument(
        "--scrape-every",
        type=float,
        default=SCRAPE_EVERY_S,
        metavar="SECONDS",
        help=f"how often /metrics is read (default {SCRAPE_EVERY_S:g})",
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="FILE",
        help="run the worker under py-spy and write its collapsed stacks to FILE (default: no "
        "profile)",
    )
    parser.add_argument(
        "--without-text",
        action="store_true",
        help="the log without text: comments left out, reviews' and mentions' texts cut to one "
        "character (bench/texts.py); alternate with a run without it for the cost of scoring "
        "(default: the generator's texts)",
    )
    parser.add_argument(
        "--only",
        choices=sorted(ONLY),
        help="a log of this topic only, whole lives of the generator's entities (alternate "
        "activity with cart-events for the engagement target; default: the benchmark's mix)",
    )
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    return parser


def py_spy() -> str:
    """The py-spy command, on PATH or beside this Python (a virtualenv not activated)."""
    found = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if found is None:
        print("error: py-spy is not installed (pip install py-spy)", file=sys.stderr)
        raise SystemExit(2)
    return found


def proc_stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces): the
    process state first."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class WorkerRun:
    """One production worker over a whole log."""

    events_per_s: float
    seconds: float  # from the first event processed after ready to the last
    cpu_s: float  # the worker's, from ready to done
    events: int
    peak_rss_bytes: int

    @property
    def cpu_us_per_event(self) -> float:
        return 1e6 * self.cpu_s / self.events


async def worker_run(
    workdir: Path,
    events: int,
    seed: int,
    only: str | None = None,
    windows: str = FIVE_WINDOWS,
    redis_on: bool = True,
    scrape_every: float = SCRAPE_EVERY_S,
    without_text: bool = False,
    py_spy_out: Path | None = None,
) -> WorkerRun:
    """Produce a log of the benchmark's mix (or of one topic, whole lives of the generator's
    entities) to a fresh embedded broker, and run one production worker over all of it."""
    redis, broker = RedisServer(workdir), Broker(workdir)
    try:
        if only:
            records = log_events(events, seed, 30.0, now_utc(), {only: 1.0}, ONLY[only])
        else:
            records = log_events(events, seed, 30.0, now_utc())
        if without_text:
            records = [without_text_of(r) for r in records]
        produced = await prepare(broker.url, records, False, "producing the log")
        del records
        ctx = Context(broker.url, "dev", workdir, produced, redis_url=redis.url)
        app_id = ctx.app_id("cpu")
        env = ctx.worker_env(app_id, windows, redis=redis_on)
        wrapper = []
        if py_spy_out is not None:
            wrapper = [py_spy(), "record", "--gil", "-r", "200", "-f", "raw", "-o", str(py_spy_out)]
            wrapper.append("--")
        worker = Worker(env, workdir / "worker.log", wrapper)
        try:
            worker.wait_ready(timeout=120)
            t_ready = time.time()  # marker timestamps are wall-clock
            pid = worker.process.pid  # under py-spy, the worker is its child
            if py_spy_out is not None:
                pid = int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
            cpu = cpu_seconds(pid)
            async with scraped([worker], scrape_every), Markers(broker.url, app_id) as markers:
                await follow(ctx, markers, produced.total, "worker", worker.process, worker.log)
                t0, n0, t_end, n_end = markers.timing(produced.total)
            cpu = cpu_seconds(pid) - cpu
            peak = proc_status(pid, "VmHWM")
        finally:  # py-spy writes its profile on an interrupt
            worker.interrupt()
    finally:
        broker.stop()
        redis.stop()
    count, seconds = rate_from(t_ready, t0, n0, t_end, n_end, produced.total)
    return WorkerRun(count / seconds, seconds, cpu, produced.total, peak)


async def measure(args: argparse.Namespace, workdir: Path) -> str:
    run = await worker_run(
        workdir,
        args.events,
        args.seed,
        args.only,
        args.windows,
        args.redis == "on",
        args.scrape_every,
        args.without_text,
        args.py_spy,
    )
    line = (
        f"{run.events_per_s:,.0f} events/s over {run.seconds:.1f} s; worker CPU {run.cpu_s:.1f} s "
        f"from ready to done, {run.cpu_us_per_event:.0f} µs per event; peak RSS "
        f"{run.peak_rss_bytes / MB:.0f} MB"
    )
    if args.py_spy:
        line += f"; profile in {args.py_spy} (the figures above are under py-spy)"
    return line


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.py_spy:
        py_spy()  # fail before the log is produced
    interrupt_on_sigterm()  # the broker and redis-server it starts stop with it
    with tempfile.TemporaryDirectory(prefix="cxkpi-cpu-") as workdir:
        try:
            print(asyncio.run(measure(args, Path(workdir))))
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
