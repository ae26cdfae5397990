"""`cxkpi soak`: does a worker's memory stay flat under a steady load?

One worker runs in its own process (so its resident memory is its own) against the embedded
broker and redis-server, or against --broker/--redis-url. This process sends it generated events
at a steady rate, with event times = the wall clock, from a thread outside the worker. Windows
and timeouts are short by default, so the largest window fills, and the first carts and tickets
are forgotten, within minutes. From then on the state stops growing, and the process should too.

Every --sample-every the worker's RSS (/proc/PID/status) and its outcome counts (/kpis) are
printed; its log is watched for errors. The run fails when RSS grew after the warm-up by more
than --max-growth, on any error line in the worker's log, on a dead letter, or when sent events
are still unprocessed after the load (within --drain-timeout). Ctrl-C stops everything and still
prints the summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import orjson
from rich.console import Console

from stream.config import ConfigError, Settings, flags_from, parse_duration
from stream.config import add_arguments as add_setting_arguments
from stream.connection import client_options
from stream.dev import Children, fetch_json, spawn, start_redis_child
from stream.devservers import DevServerUnavailable, free_port, start_broker
from stream.generate import Profile, generate
from stream.topics import ensure_topics

#: Worker settings of the soak: small, so the largest window fills and old state goes quickly.
WORKER_DEFAULTS = {
    "windows": "1m,5m",
    "step": "10s",
    "grace": "30s",
    "inactivity_timeout": "2m",
    "ticket_retention": "2m",
}
#: Generated tickets are solved after about this long (the usual 4 h would outlive any soak).
RESOLUTION_MEDIAN = "1m"
READY_TIMEOUT_S = 120.0
KIB_PER_MIB = 1024
ERROR_LINE = re.compile(r"\b(?:ERROR|CRITICAL)\b|Traceback \(most recent call last\)")
WARNING_LINE = re.compile(r"\bWARNING\b")
SHOWN_ERRORS = 50
#: A backlog of more than this much load is pointed out next to the growth.
BEHIND_NOTE_S = 10.0
#: The linear trend of RSS is printed once it spans this long (shorter, it is mostly noise).
TREND_AFTER_S = 600.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `cxkpi soak`; every one says what it does and its default."""
    load = parser.add_argument_group("load and measurement")
    load.add_argument(
        "--rate", type=float, default=200.0, help="generated events per second (default 200)"
    )
    load.add_argument(
        "--duration",
        type=_duration,
        default=3600.0,
        metavar="DURATION",
        help="how long the load runs, e.g. 3m or 1h (default 1h); start-up and the final "
        "drain come on top",
    )
    load.add_argument(
        "--warmup",
        type=_duration,
        default=None,
        metavar="DURATION",
        help="growth is measured from this point of the load on (default: the largest window + "
        "the longer of --inactivity-timeout and --ticket-retention + --grace: by then the "
        "largest window is full and the first carts and tickets have been forgotten)",
    )
    load.add_argument(
        "--sample-every",
        type=_duration,
        default=10.0,
        metavar="DURATION",
        help="how often RSS and progress are sampled and printed (default 10s)",
    )
    load.add_argument(
        "--max-growth",
        type=_percent,
        default=10.0,
        metavar="PERCENT",
        help="fail when RSS at the end exceeds RSS at the warm-up by more than this many "
        "percent (default 10)",
    )
    load.add_argument(
        "--drain-timeout",
        type=_duration,
        default=120.0,
        metavar="DURATION",
        help="after the load, how long to wait for the worker to process every sent event "
        "(default 2m)",
    )
    load.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    load.add_argument(
        "--resolution-median",
        type=_duration,
        default=parse_duration(RESOLUTION_MEDIAN),
        metavar="DURATION",
        help=f"median resolution time of the generated tickets (default {RESOLUTION_MEDIAN}, "
        "so that tickets end within the run)",
    )
    load.add_argument(
        "--report", type=Path, metavar="FILE.json", help="write every sample and the summary here"
    )
    load.add_argument(
        "--logs",
        type=Path,
        metavar="DIR",
        help="keep the worker's and the servers' logs here (default: a temporary directory, "
        "removed after a passing run)",
    )

    servers = parser.add_argument_group("servers")
    servers.add_argument(
        "--broker",
        metavar="URL",
        help="Kafka bootstrap URL(s) of a broker used by this soak alone (default: start the "
        "embedded Tansu broker on a free port)",
    )
    servers.add_argument(
        "--redis-url",
        dest="redis_url",
        metavar="URL",
        help="Redis for the snapshot, or 'none' (default: start redis-server on a free port, or "
        "run without it when it is not installed)",
    )
    servers.add_argument(
        "--profile",
        choices=("production", "dev"),
        help="the worker's profile (default: dev with the embedded broker, else "
        "CXKPI_PROFILE or production; use dev for any Tansu broker)",
    )
    servers.add_argument(
        "--app-id",
        dest="app_id",
        default="cxkpi-soak",
        metavar="NAME",
        help="consumer group and key prefix of the soak's worker (default cxkpi-soak, apart "
        "from production's)",
    )

    worker = parser.add_argument_group("worker settings (short, so the largest window fills soon)")
    for name, help_text in (
        ("windows", "window sizes, comma-separated"),
        ("step", "bucket size"),
        ("grace", "how late an event may be and still count"),
        ("inactivity_timeout", "cart inactivity before abandonment"),
        ("ticket_retention", "an idle ticket is forgotten after this"),
    ):
        worker.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=WORKER_DEFAULTS[name],
            metavar="VALUE",
            help=f"{help_text} (default {WORKER_DEFAULTS[name]})",
        )
    add_setting_arguments(parser, ("config", "partitions", "log_level"))


def _duration(text: str) -> float:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError("a duration greater than zero")
    return value


def _percent(text: str) -> float:
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise argparse.ArgumentTypeError("a percentage such as 10 or 12.5%") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a percentage of 0 or more")
    return value


# -- measurements ------------------------------------------------------------------------------


@dataclass
class Sample:
    """One look at the worker: seconds since the load started, its RSS, and progress."""

    t: float
    phase: str  # "load" or "drain"
    rss_kib: int | None
    sent: int
    processed: int
    outcomes: dict[str, int]
    error_lines: int

    @property
    def rss_mib(self) -> float | None:
        return None if self.rss_kib is None else self.rss_kib / KIB_PER_MIB


def rss_kib(pid: int) -> int | None:
    """Resident set size of a process in KiB, from /proc (None once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", status, re.MULTILINE)
    return int(match.group(1)) if match else None


class LogWatch:
    """The error and warning lines a log file gained since the last look."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.errors: list[str] = []
        self.warnings = 0
        self._offset = path.stat().st_size if path.exists() else 0  # a kept log of an earlier run
        self._partial = ""

    def read(self) -> None:
        try:
            with self.path.open("rb") as log:
                log.seek(self._offset)
                chunk = log.read()
        except OSError:
            return
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk.decode(errors="replace")).split("\n")
        for line in lines:
            if ERROR_LINE.search(line):
                self.errors.append(line)
            elif WARNING_LINE.search(line):
                self.warnings += 1


class Load:
    """Generated events sent at a steady rate from a thread of this process, not the worker's."""

    def __init__(
        self, kafka: dict[str, Any], rate: float, count: int, seed: int, median_s: float
    ) -> None:
        self.kafka, self.rate, self.count = kafka, rate, count
        self.profile = Profile.with_resolution_median(median_s)
        self.seed = seed
        self.sent = 0
        self.error: str | None = None
        self.started = 0.0  # time.monotonic() of the first event
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[int] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cxkpi-soak-load", daemon=True)

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread.start()
        self._ready.wait()

    def stop(self, within_s: float = 0.0, timeout_s: float = 15.0) -> None:
        """Stop sending after at most `within_s` more (what the producer holds is delivered)."""
        if self._thread.ident is not None:
            self._thread.join(within_s)
        if self._loop is not None and self._task is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._task.cancel)
        if self._thread.ident is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        from stream.produce import send_live  # the pacing loop of `cxkpi generate`

        loop = asyncio.new_event_loop()
        try:
            events = generate(
                seed=self.seed,
                start=datetime.now(UTC),
                rate=self.rate,
                count=self.count,
                profile=self.profile,
            )
            self._loop = loop
            self._task = loop.create_task(send_live(events, self.kafka, self.rate, self._sent))
            self._ready.set()
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # reported in the summary; the worker is what is under test
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._ready.set()
            loop.close()

    def _sent(self, n: int) -> None:
        self.sent += n


class WorkerExited(RuntimeError):
    """The worker under test stopped by itself."""


@dataclass
class Soak:
    """One soak run: the processes, the samples taken so far and what went wrong."""

    args: argparse.Namespace
    warmup_s: float
    workdir: Path
    children: Children = field(default_factory=Children)
    samples: list[Sample] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    settings: Settings | None = None
    worker_pid: int | None = None
    load: Load | None = None
    log: LogWatch | None = None
    base: str = ""
    _processed_before: int = 0
    _last_outcomes: dict[str, int] = field(default_factory=dict)

    # -- starting ---------------------------------------------------------------------------

    def start(self) -> None:
        """Servers (unless given), topics, then the worker, until it owns its partitions."""
        args = self.args
        chosen = {k: v for k, v in flags_from(args).items() if v is not None}
        if args.broker is None:
            port = free_port()
            self.children.add("broker", start_broker(port, self.workdir / "broker.log"))
            chosen["broker"] = f"kafka://127.0.0.1:{port}"
            chosen.setdefault("profile", "dev")
        if args.redis_url is None:
            console = Console(stderr=True, soft_wrap=True)
            chosen["redis_url"] = start_redis_child(self.children, self.workdir, console) or "none"
        chosen["web_port"] = str(free_port())
        self.settings = settings = Settings.load(chosen)
        asyncio.run(ensure_topics(settings))
        env = {**os.environ, **{f"CXKPI_{k.upper()}": str(v) for k, v in chosen.items()}}
        self.log = LogWatch(self.workdir / "worker.log")
        worker = self.children.add(
            "worker",
            spawn([sys.executable, "-m", "stream", "worker"], env, self.workdir / "worker.log"),
        )
        self.worker_pid = worker.pid
        self.base = f"http://{settings.web_host}:{settings.web_port}"
        print(
            f"cxkpi soak: worker pid {worker.pid} ({self.base}/metrics), broker "
            f"{settings.broker}, redis {settings.redis_url or 'off'}, logs {self.workdir}",
            flush=True,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not (fetch_json(f"{self.base}/ready") or {}).get("ready"):
            self._check_worker()
            if time.monotonic() > deadline:
                raise WorkerExited(f"the worker was not ready after {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.5)
        self._processed_before = self._outcomes_now()[1] or 0

    def _check_worker(self) -> None:
        name = self.children.dead()
        if name is not None:
            raise WorkerExited(f"the {name} exited unexpectedly")

    # -- measuring --------------------------------------------------------------------------

    def measure(self) -> None:
        """Send the load for --duration, sampling on schedule, then wait for it to be processed."""
        args, settings = self.args, self.settings
        assert settings is not None
        print(
            f"load: {args.rate:g} events/s for {_clock(args.duration)}, warm-up "
            f"{_clock(self.warmup_s)}, windows {_clock_list(settings.windows)} step "
            f"{_clock(settings.step)}, max growth {args.max_growth:g} %",
            flush=True,
        )
        self.load = load = Load(
            client_options(settings),
            args.rate,
            int(args.rate * args.duration),
            args.seed,
            args.resolution_median,
        )
        load.start()
        every = args.sample_every
        ticks = {*(k * every for k in range(int(args.duration // every) + 1)), self.warmup_s}
        for at in sorted(t for t in ticks if t < args.duration):
            self._wait_until(load.started + at)
            if load.error:
                break
            self._sample("load")
        self._wait_until(load.started + args.duration)
        load.stop(within_s=2.0)  # normally done by now: it sends rate x duration events
        self._sample("load")
        if load.error:
            self.failures.append(f"the load generator failed: {load.error}")
            return
        deadline = time.monotonic() + args.drain_timeout
        while self.samples[-1].processed < load.sent and time.monotonic() < deadline:
            self._wait_until(time.monotonic() + min(every, 2.0))
            self._sample("drain")
        last = self.samples[-1]
        if last.processed < load.sent:
            self.failures.append(
                f"{load.sent - last.processed} of {load.sent} sent events still unprocessed "
                f"{_clock(args.drain_timeout)} after the load"
            )
            return
        # let the last epochs reach the changelog, so the worker is stopped idle, not mid-flush
        self._wait_until(time.monotonic() + 2 * settings.flush_interval + 1)
        self._sample("drain")

    def _wait_until(self, moment: float) -> None:
        while (left := moment - time.monotonic()) > 0:
            self._check_worker()
            if self.load is not None and self.load.error:
                return
            time.sleep(min(left, 0.5))
        self._check_worker()

    def _outcomes_now(self) -> tuple[dict[str, int], int | None]:
        doc = fetch_json(f"{self.base}/kpis")
        if doc is None:
            return self._last_outcomes, None
        outcomes: dict[str, int] = {}
        for counts in doc["events"].values():
            for outcome, n in counts.items():
                outcomes[outcome] = outcomes.get(outcome, 0) + n
        self._last_outcomes = outcomes
        return outcomes, sum(outcomes.values())

    def _sample(self, phase: str) -> None:
        assert self.load is not None and self.log is not None and self.worker_pid is not None
        self.log.read()
        rss = rss_kib(self.worker_pid)
        outcomes, total = self._outcomes_now()
        if total is None:  # the worker did not answer in time: keep the last count
            processed = self.samples[-1].processed if self.samples else 0
        else:
            processed = total - self._processed_before
        sample = Sample(
            t=round(time.monotonic() - self.load.started, 2),
            phase=phase,
            rss_kib=rss,
            sent=self.load.sent,
            processed=processed,
            outcomes=dict(outcomes),
            error_lines=len(self.log.errors),
        )
        self.samples.append(sample)
        mark = "  (warm-up)" if self._is_warmup_sample(sample) else ""
        print(
            f"{_clock(sample.t):>8} {phase:<5}  RSS {_mib(sample.rss_mib)}  sent {sample.sent:>9}"
            f"  processed {sample.processed:>9}  dead-lettered "
            f"{outcomes.get('dead_lettered', 0)}  error lines {sample.error_lines}{mark}",
            flush=True,
        )

    def _is_warmup_sample(self, sample: Sample) -> bool:
        return sample is warmup_sample(self.samples, self.warmup_s)


# -- the verdict -------------------------------------------------------------------------------


def warmup_sample(samples: list[Sample], warmup_s: float) -> Sample | None:
    """The first sample with an RSS taken once the warm-up was over."""
    return next((s for s in samples if s.t >= warmup_s and s.rss_kib is not None), None)


def summarize(samples: list[Sample], warmup_s: float) -> dict[str, Any]:
    """RSS at the warm-up and at the end, the growth in between and its trend per hour."""
    measured = [s for s in samples if s.rss_kib is not None]
    warm = warmup_sample(samples, warmup_s)
    end = measured[-1] if measured else None
    summary: dict[str, Any] = {
        "duration_s": max((s.t for s in samples if s.phase == "load"), default=0.0),
        "sent": samples[-1].sent if samples else 0,
        "processed": samples[-1].processed if samples else 0,
        "outcomes": samples[-1].outcomes if samples else {},
        "warmup_s": warmup_s,
        "warmup_t": warm.t if warm else None,
        "rss_warmup_mib": warm.rss_mib if warm else None,
        "rss_end_mib": end.rss_mib if end else None,
        "rss_max_mib": max(s.rss_kib or 0 for s in measured) / KIB_PER_MIB if measured else None,
        "max_backlog": max((s.sent - s.processed for s in samples), default=0),
        "growth_mib": None,
        "growth_percent": None,
        "trend_mib_per_hour": None,
    }
    if warm is not None and end is not None and warm.rss_kib and end.t > warm.t:
        assert end.rss_kib is not None
        summary["growth_mib"] = (end.rss_kib - warm.rss_kib) / KIB_PER_MIB
        summary["growth_percent"] = 100 * (end.rss_kib - warm.rss_kib) / warm.rss_kib
        after = [s for s in measured if s.t >= warm.t]
        if len(after) >= 2:
            slope = statistics.linear_regression(
                [s.t for s in after], [s.rss_kib or 0 for s in after]
            ).slope
            summary["trend_mib_per_hour"] = slope * 3600 / KIB_PER_MIB
    return summary


def verdict(summary: dict[str, Any], error_lines: list[str], max_growth: float) -> list[str]:
    """Why the run failed (nothing when it passed)."""
    failures: list[str] = []
    growth = summary["growth_percent"]
    if growth is None:
        failures.append("the run ended before the warm-up: memory growth was not measured")
    elif growth > max_growth:
        failures.append(
            f"RSS grew {growth:.1f} % ({summary['growth_mib']:+.1f} MiB) after the warm-up, "
            f"more than the allowed {max_growth:g} %"
        )
    dead = summary["outcomes"].get("dead_lettered", 0)
    if dead:
        failures.append(f"{dead} generated events were dead-lettered")
    if error_lines:
        failures.append(f"{len(error_lines)} error lines in the worker's log")
    return failures


def print_summary(soak: Soak, summary: dict[str, Any], failures: list[str]) -> None:
    outcomes = summary["outcomes"]
    shown = ", ".join(f"{k.replace('_', '-')} {v}" for k, v in outcomes.items()) or "none"
    log = soak.log
    errors = log.errors if log else []
    growth = summary["growth_percent"]
    trend = summary["trend_mib_per_hour"]
    warm_at = summary["warmup_t"]
    long_enough = warm_at is not None and summary["duration_s"] - warm_at >= TREND_AFTER_S
    lines = [
        "",
        "soak summary",
        f"  load            {_clock(summary['duration_s'])} at {soak.args.rate:g} events/s "
        f"(warm-up {_clock(soak.warmup_s)})",
        f"  events          sent {summary['sent']}, processed {summary['processed']} ({shown})",
        f"  backlog         at most {summary['max_backlog']} events sent but not yet processed",
        f"  RSS at warm-up  {_mib(summary['rss_warmup_mib'])}"
        + (f" (at {_clock(warm_at)})" if warm_at is not None else " (warm-up not reached)"),
        f"  RSS at end      {_mib(summary['rss_end_mib'])}",
        f"  RSS max         {_mib(summary['rss_max_mib'])}",
        "  growth          "
        + (
            "not measured"
            if growth is None
            else f"{summary['growth_mib']:+.1f} MiB ({growth:+.1f} %) after the warm-up"
            + (f", trend {trend:+.1f} MiB/h" if trend is not None and long_enough else "")
            + f"; allowed {soak.args.max_growth:g} %"
        ),
    ]
    behind_s = summary["max_backlog"] / soak.args.rate
    if behind_s > BEHIND_NOTE_S:
        lines.append(
            f"  note            the worker fell up to {_clock(behind_s)} of load behind: RSS then "
            "includes fetched records waiting, so growth is not only state"
        )
    lines.append(
        f"  worker log      {len(errors)} error lines, {log.warnings if log else 0} warnings"
    )
    lines += [f"    {line}" for line in errors[:SHOWN_ERRORS]]
    if len(errors) > SHOWN_ERRORS:
        lines.append(f"    … and {len(errors) - SHOWN_ERRORS} more")
    lines += [f"FAIL: {reason}" for reason in failures] or [
        "PASS: memory stayed flat, every event processed, no errors"
    ]
    print("\n".join(lines), flush=True)


def write_report(path: Path, soak: Soak, summary: dict[str, Any], failures: list[str]) -> None:
    settings = soak.settings.describe() if soak.settings else {}
    report = {
        "rate": soak.args.rate,
        "duration_s": soak.args.duration,
        "warmup_s": soak.warmup_s,
        "sample_every_s": soak.args.sample_every,
        "max_growth_percent": soak.args.max_growth,
        "settings": settings,
        "worker_pid": soak.worker_pid,
        "samples": [{**asdict(s), "rss_mib": s.rss_mib} for s in soak.samples],
        "summary": summary,
        "error_lines": soak.log.errors if soak.log else [],
        "failures": failures,
    }
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


# -- the command -------------------------------------------------------------------------------


def default_warmup(settings: Settings) -> float:
    """The largest window filled, and the first carts and tickets forgotten, past grace."""
    longest_idle = max(settings.inactivity_timeout, settings.ticket_retention)
    return float(max(settings.windows) + longest_idle + settings.grace)


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def _execute(soak: Soak) -> bool:
    """Start, measure and always stop everything; True when interrupted (Ctrl-C, SIGTERM)."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main else None
    interrupted = False
    try:
        soak.start()
        soak.measure()
    except KeyboardInterrupt:
        interrupted = True
    except (WorkerExited, DevServerUnavailable) as exc:
        soak.failures.append(str(exc))
    finally:
        # a second Ctrl-C must not cut the stop short and leave processes behind
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
        try:
            if soak.load is not None:
                soak.load.stop()
            print("stopping…", flush=True)
            soak.children.stop()
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            if previous_int is not None:
                signal.signal(signal.SIGINT, previous_int)
    return interrupted


def run(args: argparse.Namespace) -> int:
    """Run the soak; 0 when memory stayed flat with no errors, 1 otherwise, 130 on Ctrl-C."""
    if args.rate <= 0:
        raise ConfigError("--rate must be greater than zero")
    # check the settings (and derive the warm-up) before anything is started
    checked = Settings.load({k: v for k, v in flags_from(args).items() if v is not None})
    warmup = args.warmup if args.warmup is not None else default_warmup(checked)
    if warmup >= args.duration:
        raise ConfigError(
            f"the warm-up ({_clock(warmup)}) must be shorter than --duration "
            f"({_clock(args.duration)}): growth is measured after it"
        )
    if args.logs is not None:
        args.logs.mkdir(parents=True, exist_ok=True)
    workdir = args.logs or Path(tempfile.mkdtemp(prefix="cxkpi-soak-"))
    soak = Soak(args=args, warmup_s=warmup, workdir=workdir)
    try:
        interrupted = _execute(soak)
    except ConfigError:  # e.g. the broker cannot be reached: the command line reports it
        if args.logs is None:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    if soak.log is not None:
        soak.log.read()  # including what the worker logged while it stopped
    summary = summarize(soak.samples, warmup)
    failures = soak.failures + verdict(
        summary, soak.log.errors if soak.log else [], args.max_growth
    )
    if interrupted:
        failures.insert(0, "interrupted")
    print_summary(soak, summary, failures)
    if args.report is not None:
        write_report(args.report, soak, summary, failures)
        print(f"report: {args.report}", flush=True)
    if failures and args.logs is None:
        print(f"logs kept in {workdir}", flush=True)
    elif args.logs is None:
        shutil.rmtree(workdir, ignore_errors=True)
    if interrupted:
        return 130
    return 1 if failures else 0


def _clock(seconds: float) -> str:
    """90.5 -> '1m30s'; 3600 -> '1h00m00s'."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _clock_list(values: tuple[int, ...]) -> str:
    return ",".join(_clock(v) for v in values)


def _mib(value: float | None) -> str:
    return "      — MiB" if value is None else f"{value:7.1f} MiB"
