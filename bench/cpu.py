"""`python -m bench.cpu`: where one production worker's CPU goes, per event.

`make bench` measures throughput against floors and targets; this is the tool for finding what
to change. It starts the embedded broker and a redis-server, produces a log of the benchmark's
mix, runs one worker as users run it (default windows, Redis on, customer KPIs on) over the
whole log, and prints events/s and the worker's CPU time per event. With `--py-spy FILE`, the
worker runs under py-spy (`pip install py-spy`), sampling only while it holds the GIL, and FILE
gets the collapsed stacks (flamegraph.pl or speedscope.app read them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.eventlog import log_events, now_utc
from bench.phases import Context, parse_counts
from bench.run import FIVE_WINDOWS, prepare
from stream.tools.arguments import count
from tests.servers import Broker, RedisServer, free_port

#: How often /metrics is read to see whether the whole log is done (Prometheus: every 15 s).
POLL_S = 2.0


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
        "--py-spy",
        type=Path,
        metavar="FILE",
        help="run the worker under py-spy and write its collapsed stacks to FILE (default: no "
        "profile)",
    )
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    return parser


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def processed(port: str) -> int | None:
    """Source records with an outcome, from the worker's /metrics (None: not answering)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return sum(parse_counts(response.read()).values())
    except OSError:
        return None


async def measure(args: argparse.Namespace, workdir: Path) -> str:
    redis, broker = RedisServer(workdir), Broker(workdir)
    try:
        records = log_events(args.events, args.seed, 30.0, now_utc())
        produced = await prepare(broker.url, records, False, "producing the log")
        del records
        ctx = Context(broker.url, "dev", workdir, produced, redis_url=redis.url)
        env = ctx.worker_env(ctx.app_id("cpu"), args.windows, redis=args.redis == "on")
        env["CXKPI_WEB_PORT"] = port = str(free_port())
        command = [sys.executable, "-m", "stream", "worker"]
        if args.py_spy:
            command = ["py-spy", "record", "--gil", "-r", "200", "-f", "raw", "-o"]
            command += [str(args.py_spy), "--", sys.executable, "-m", "stream", "worker"]
        log = workdir / "worker.log"
        worker = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            first: tuple[float, int, float] | None = None
            pid = worker.pid  # under py-spy: its child, once it answers
            while True:
                await asyncio.sleep(POLL_S)
                if worker.poll() is not None:
                    raise RuntimeError(f"the worker exited; see {log}")
                done = processed(port)
                if done is None or done == 0:
                    continue
                if args.py_spy and pid == worker.pid:
                    pid = int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
                if first is None:  # measured from the first records on, as the benchmark does
                    first = (time.monotonic(), done, cpu_seconds(pid))
                if done >= produced.total:
                    seconds = time.monotonic() - first[0]
                    events = done - first[1]
                    cpu = cpu_seconds(pid) - first[2]
                    break
        finally:
            os.killpg(worker.pid, 2)
            worker.wait(timeout=60)
    finally:
        broker.stop()
        redis.stop()
    line = (
        f"{events / seconds:,.0f} events/s over {seconds:.1f} s; worker CPU {cpu:.1f} s "
        f"({100 * cpu / seconds:.0f} % of a core), {1e6 * cpu / events:.0f} µs per event"
    )
    if args.py_spy:
        line += f"; profile in {args.py_spy} (the figures above are under py-spy)"
    return line


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.py_spy and shutil.which("py-spy") is None:
        print("error: py-spy is not installed (pip install py-spy)", file=sys.stderr)
        raise SystemExit(2)
    with tempfile.TemporaryDirectory(prefix="cxkpi-cpu-") as workdir:
        print(asyncio.run(measure(args, Path(workdir))))


if __name__ == "__main__":
    main()
