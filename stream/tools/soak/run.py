"""One soak run: start the servers and the worker, send the load while sampling, stop everything
whatever happened, then summarize and judge."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import NoReturn

from rich.console import Console

from stream.config import ConfigError
from stream.config.settings import Settings, flags_from
from stream.runtime.connection import client_options
from stream.runtime.topics import ensure_topics
from stream.tools.children import Children, fetch_json, spawn, start_redis_child
from stream.tools.devservers import DevServerUnavailable, free_port, start_broker
from stream.tools.soak.measure import Load, LogWatch, Sample, rss_kib
from stream.tools.soak.report import (
    clock,
    clock_list,
    mib,
    print_summary,
    summarize,
    verdict,
    warmup_sample,
    write_report,
)

READY_TIMEOUT_S = 120.0


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
            f"load: {args.rate:g} events/s for {clock(args.duration)}, warm-up "
            f"{clock(self.warmup_s)}, windows {clock_list(settings.windows)} step "
            f"{clock(settings.step)}, max growth {args.max_growth:g} %",
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
                f"{clock(args.drain_timeout)} after the load"
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
            f"{clock(sample.t):>8} {phase:<5}  RSS {mib(sample.rss_mib)}  sent {sample.sent:>9}"
            f"  processed {sample.processed:>9}  dead-lettered "
            f"{outcomes.get('dead_lettered', 0)}  error lines {sample.error_lines}{mark}",
            flush=True,
        )

    def _is_warmup_sample(self, sample: Sample) -> bool:
        return sample is warmup_sample(self.samples, self.warmup_s)


def default_warmup(settings: Settings) -> float:
    """The largest window filled, and the first carts and tickets forgotten, past grace."""
    longest_idle = max(settings.cart_retention, settings.ticket_retention)
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


#: The soak's built-in configuration: every KPI, no change alert (their 7 d baselines would
#: make the warm-up a week, for windows of a minute).
SOAK_CONFIG = "[change]\nenabled = false\n"


def run(args: argparse.Namespace) -> int:
    """Run the soak; 0 when memory stayed flat with no errors, 1 otherwise, 130 on Ctrl-C."""
    if str(args.config).lower() != "none":
        return _run(args)
    with tempfile.NamedTemporaryFile("w", prefix="cxkpi-soak-", suffix=".toml") as config:
        config.write(SOAK_CONFIG)
        config.flush()
        args.config = config.name
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    # check the settings (and derive the warm-up) before anything is started
    checked = Settings.load({k: v for k, v in flags_from(args).items() if v is not None})
    warmup = args.warmup if args.warmup is not None else default_warmup(checked)
    if warmup >= args.duration:
        raise ConfigError(
            f"the warm-up ({clock(warmup)}) must be shorter than --duration "
            f"({clock(args.duration)}): growth is measured after it"
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
