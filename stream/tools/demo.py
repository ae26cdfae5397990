"""`cxkpi dev`: the whole product on one machine, for a demo.

Starts the embedded broker, creates the topics, starts redis-server when it is installed, then a
worker and a generator as child processes, and shows the KPIs live. Ctrl-C (or --run-for) stops
every child, leaving nothing running.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from stream.config.settings import Settings
from stream.contract.events import parse_timestamp_ms
from stream.runtime.topics import ensure_topics
from stream.tools.children import (
    Children,
    fetch_json,
    interrupt_on_sigterm,
    spawn,
    start_redis_child,
)
from stream.tools.devservers import (
    DevServerUnavailable,
    choose_port,
    free_port,
    start_broker,
    wait_for_own_port,
)
from stream.tools.kpitable import kpi_table, summary_line, waiting_for

#: Demo defaults: short enough to see carts abandoned and tickets solved within minutes.
DEMO = {"inactivity_timeout": "2m", "idle_timeout": "10s"}
DEMO_RESOLUTION_MEDIAN = "3m"


class ChildDied(RuntimeError):
    """A child of the demo exited on its own; the message holds the end of its log."""


def run_demo(args: argparse.Namespace, flags: Mapping[str, str | None]) -> int:
    console = Console(soft_wrap=True)
    workdir = Path(tempfile.mkdtemp(prefix="cxkpi-dev-"))
    children = Children()
    keep_logs = False
    # Ctrl-C stops the demo, as it says, even when it was started with SIGINT ignored (a shell
    # ignores it for background jobs, and Python then never turns it into KeyboardInterrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupt_on_sigterm()
    try:
        broker_port = free_port()
        broker_log = workdir / "broker.log"
        children.add("broker", start_broker(broker_port, broker_log), broker_log)
        broker = f"kafka://127.0.0.1:{broker_port}"
        redis_url = start_redis_child(children, workdir, console)
        # flags, then the environment, then the demo's defaults, then the usual defaults
        chosen = {k: v for k, v in flags.items() if v is not None}
        chosen.update(broker=broker, profile="dev", redis_url=redis_url or "none")
        environ = {**{f"CXKPI_{k.upper()}": v for k, v in DEMO.items()}, **os.environ}
        settings = Settings.load(chosen, environ=environ)
        # the worker's HTTP port: another process's there would be shown as the demo's
        web_port = choose_port(settings.web_host, settings.web_port)
        if web_port != settings.web_port:
            console.print(
                f"port {settings.web_port} is taken by another process: the worker serves on "
                f"{settings.web_host}:{web_port} instead",
                style="yellow",
                highlight=False,
            )
            chosen["web_port"] = str(web_port)
            settings = replace(settings, web_port=web_port)
        asyncio.run(ensure_topics(settings))
        env = {**environ, **{f"CXKPI_{k.upper()}": str(v) for k, v in chosen.items()}}
        _start_worker_and_generator(children, args, env, workdir, settings)
        base = f"http://{settings.web_host}:{settings.web_port}"
        console.print(
            f"[bold]cxkpi dev[/bold]  broker {broker}  redis {redis_url or 'off'}\n"
            f"  metrics  {base}/metrics\n  KPIs     {base}/kpis\n  logs     {workdir}\n"
            "Press Ctrl-C to stop."
        )
        _watch(base, children, args, console, settings.step)
        return 0
    except KeyboardInterrupt:
        return 0
    except ChildDied as exc:
        keep_logs = True
        # the log's lines are text, not markup (Faust's hold brackets)
        message = f"cxkpi dev: {exc}\nlogs kept in {workdir}"
        console.print(message, style="red", markup=False, highlight=False)
        return 1
    finally:
        console.print("stopping…")
        children.stop()
        if not keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)


def _start_worker_and_generator(
    children: Children,
    args: argparse.Namespace,
    env: dict[str, str],
    workdir: Path,
    settings: Settings,
) -> None:
    python = [sys.executable, "-m", "stream"]
    log = workdir / "worker.log"
    worker = children.add("worker", spawn([*python, "worker"], env, log), log)
    try:
        wait_for_own_port(settings.web_host, settings.web_port, 60, worker)
    except DevServerUnavailable:
        raise ChildDied(children.last_words("worker")) from None
    generate = [
        *python,
        "generate",
        *("--rate", str(args.rate), "--seed", str(args.seed)),
        *("--resolution-median", DEMO_RESOLUTION_MEDIAN, "--quiet"),
    ]
    log = workdir / "generator.log"
    children.add("generator", spawn(generate, env, log), log)


#: Shows a snapshot of /kpis (None while the worker does not answer) and what it waits for.
Show = Callable[[dict[str, Any] | None, str | None], None]


def _watch(
    base: str, children: Children, args: argparse.Namespace, console: Console, step_s: int
) -> None:
    """The live table on a terminal; elsewhere (a pipe, CI, a service manager) or with --no-ui,
    plain lines."""
    deadline = time.monotonic() + args.run_for if args.run_for else None
    plain = args.no_ui or not console.is_terminal
    with _plain_lines(console, step_s) if plain else _live_table(console) as show:
        while deadline is None or time.monotonic() < deadline:
            dead = children.dead()
            if dead:
                raise ChildDied(children.last_words(dead))
            snapshot = fetch_json(f"{base}/kpis")
            show(snapshot, waiting_for(snapshot, step_s, time.time()))
            time.sleep(1)


@contextmanager
def _live_table(console: Console) -> Iterator[Show]:
    with Live(console=console, auto_refresh=False, transient=False) as live:
        yield lambda snapshot, waiting: live.update(kpi_table(snapshot, waiting), refresh=True)


@contextmanager
def _plain_lines(console: Console, step_s: int) -> Iterator[Show]:
    """A line each time what the windows wait for changes, then a KPI summary at every step."""
    last: list[object] = [None]

    def show(snapshot: dict[str, Any] | None, waiting: str | None) -> None:
        news: object
        if waiting is not None or snapshot is None:
            news = (waiting or "").split(" (in ")[0]  # the same wait, counting down
        else:
            valid_ms = parse_timestamp_ms(snapshot["valid_at"] or "")
            news = None if valid_ms is None else valid_ms // (step_s * 1000)
        if news != last[0]:
            last[0] = news
            console.print(waiting or summary_line(snapshot), markup=False, highlight=False)

    yield show
