"""`cxkpi dev`: the whole product on one machine, for a demo.

Starts the embedded broker, creates the topics, starts redis-server when it is installed, then a
worker and a generator as child processes, and shows the KPIs live. Ctrl-C (or --run-for) stops
every child, leaving nothing running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.live import Live
from rich.table import Table

from stream.config import Settings
from stream.devservers import (
    DevServerUnavailable,
    free_port,
    start_broker,
    start_redis,
    wait_for_port,
)
from stream.topics import ensure_topics

#: Demo defaults: short enough to see carts abandoned and tickets solved within minutes.
DEMO = {"inactivity_timeout": "2m", "idle_timeout": "10s"}
DEMO_RESOLUTION_MEDIAN = "3m"


class Children:
    """Child processes stopped together: SIGTERM, then SIGKILL after a grace period."""

    def __init__(self) -> None:
        self.processes: list[tuple[str, subprocess.Popen]] = []

    def add(self, name: str, process: subprocess.Popen) -> subprocess.Popen:
        self.processes.append((name, process))
        return process

    def stop(self) -> None:
        for _, process in reversed(self.processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, process in reversed(self.processes):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def dead(self) -> str | None:
        """The name of a child that exited on its own, if any."""
        return next((n for n, p in self.processes if p.poll() is not None), None)


def run_demo(args: argparse.Namespace, flags: Mapping[str, str | None]) -> int:
    console = Console(stderr=True, soft_wrap=True)
    workdir = Path(tempfile.mkdtemp(prefix="cxkpi-dev-"))
    children = Children()
    # Ctrl-C stops the demo, as it says, even when it was started with SIGINT ignored (a shell
    # ignores it for background jobs, and Python then never turns it into KeyboardInterrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        broker_port = free_port()
        children.add("broker", start_broker(broker_port, workdir / "broker.log"))
        broker = f"kafka://127.0.0.1:{broker_port}"
        redis_url = start_redis_child(children, workdir, console)
        # flags, then the environment, then the demo's defaults, then the usual defaults
        chosen = {k: v for k, v in flags.items() if v is not None}
        chosen.update(broker=broker, profile="dev", redis_url=redis_url or "none")
        environ = {**{f"CXKPI_{k.upper()}": v for k, v in DEMO.items()}, **os.environ}
        settings = Settings.load(chosen, environ=environ)
        asyncio.run(ensure_topics(settings))
        env = {**environ, **{f"CXKPI_{k.upper()}": str(v) for k, v in chosen.items()}}
        python = [sys.executable, "-m", "stream"]
        children.add("worker", spawn([*python, "worker"], env, workdir / "worker.log"))
        wait_for_port(settings.web_host, settings.web_port, 60, children.processes[-1][1])
        children.add(
            "generator",
            spawn(
                [
                    *python,
                    "generate",
                    "--rate",
                    str(args.rate),
                    "--seed",
                    str(args.seed),
                    "--resolution-median",
                    DEMO_RESOLUTION_MEDIAN,
                    "--quiet",
                ],
                env,
                workdir / "generator.log",
            ),
        )
        base = f"http://{settings.web_host}:{settings.web_port}"
        console.print(
            f"[bold]cxkpi dev[/bold]  broker {broker}  redis {redis_url or 'off'}\n"
            f"  metrics  {base}/metrics\n  KPIs     {base}/kpis\n  logs     {workdir}\n"
            "Press Ctrl-C to stop."
        )
        _watch(base, children, args, console)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        console.print("stopping…")
        children.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def start_redis_child(children: Children, workdir: Path, console: Console) -> str | None:
    port = free_port()
    try:
        children.add("redis", start_redis(port, workdir))
    except DevServerUnavailable as exc:
        console.print(f"[yellow]{exc}: running without the snapshot store[/yellow]")
        return None
    return f"redis://127.0.0.1:{port}/0"


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _watch(base: str, children: Children, args: argparse.Namespace, console: Console) -> None:
    deadline = time.monotonic() + args.run_for if args.run_for else None
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while deadline is None or time.monotonic() < deadline:
            dead = children.dead()
            if dead:
                raise SystemExit(f"{dead} exited unexpectedly; see its log above")
            snapshot = fetch_json(f"{base}/kpis")
            if args.no_ui:
                console.print(summary_line(snapshot))
            else:
                live.update(kpi_table(snapshot), refresh=True)
            time.sleep(1)


def fetch_json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return orjson.loads(response.read())
    except OSError:
        return None


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "—" if value is None else format(value, spec)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _minutes(v: dict[str, Any]) -> str:
    p50, p90 = v["p50_seconds"], v["p90_seconds"]
    return f"{_fmt(p50 and p50 / 60)} / {_fmt(p90 and p90 / 60)} min  (n={v['count']})"


def _money(v: dict[str, Any]) -> str:
    return "  ".join(f"{cur} {_fmt(m['average'], '.2f')}" for cur, m in v.items()) or "—"


#: (row label, KPI, how to show its overall value) for the live table, in catalog order.
ROWS: tuple[tuple[str, str, Any], ...] = (
    (
        "cart abandonment",
        "cart_abandonment",
        lambda v: f"{_percent(v['ratio'])}  ({v['abandoned']}/{v['abandoned'] + v['converted']})",
    ),
    (
        "checkout abandonment",
        "checkout_abandonment",
        lambda v: f"{_percent(v['ratio'])}  ({v['abandoned']}/{v['abandoned'] + v['converted']})",
    ),
    ("conversion", "conversion", lambda v: f"{_percent(v['ratio'])}  (of {v['created']})"),
    ("average order value", "average_order_value", _money),
    ("upsell", "upsell", lambda v: f"{_percent(v['ratio'])}  (of {v['orders']})"),
    ("resolution p50 / p90", "resolution_time", _minutes),
    ("first response p50 / p90", "first_response_time", _minutes),
    (
        "first-contact resolution",
        "first_contact_resolution",
        lambda v: f"{_percent(v['ratio'])}  (of {v['solves']})",
    ),
    ("reopen rate", "reopen_rate", lambda v: f"{_percent(v['ratio'])}  (of {v['solves']})"),
    (
        "NPS",
        "nps",
        lambda v: (
            f"{_fmt(v['score'], '+.1f')} ± {_fmt(v['margin_of_error'])}  (n={v['responses']})"
        ),
    ),
    ("CSAT", "csat", lambda v: f"{_fmt(v['score'])}  (n={v['responses']})"),
    ("CES (1-7)", "ces", lambda v: f"{_fmt(v['mean'], '.2f')}, {_percent(v['easy_ratio'])} easy"),
)


def kpi_rows(snapshot: dict[str, Any]) -> Iterator[tuple[str, list[str]]]:
    """(KPI, one formatted cell per window) for the live table."""
    windows = snapshot["windows"]
    for label, kpi, show in ROWS:
        yield label, [show(w[kpi]["overall"]) for w in windows.values()]


def kpi_table(snapshot: dict[str, Any] | None) -> Table:
    if snapshot is None:
        return Table(title="waiting for the worker…")
    table = Table(title=f"cxkpi — KPIs valid at {snapshot['valid_at'] or '(no events yet)'}")
    table.add_column("KPI")
    for window in snapshot["windows"]:
        table.add_column(window, justify="right")
    for name, row in kpi_rows(snapshot):
        table.add_row(name, *row)
    backlog = snapshot["live"]["open_backlog"]["overall"]["tickets"]
    events = snapshot["events"]
    table.caption = f"open backlog: {backlog} tickets   events: " + "  ".join(
        f"{t} {c['applied']} applied, {c['dead_lettered']} DLQ" for t, c in events.items()
    )
    return table


def summary_line(snapshot: dict[str, Any] | None) -> str:
    if snapshot is None:
        return "waiting for the worker…"
    first = next(iter(snapshot["windows"]))
    return f"[{snapshot['valid_at']}] {first}: " + "; ".join(
        f"{name} {row[0]}" for name, row in kpi_rows(snapshot)
    )
