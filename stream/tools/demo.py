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
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console
from rich.live import Live

from stream.config.settings import Settings
from stream.runtime.topics import ensure_topics
from stream.tools.children import Children, fetch_json, spawn, start_redis_child
from stream.tools.devservers import free_port, start_broker, wait_for_port
from stream.tools.kpitable import kpi_table, summary_line

#: Demo defaults: short enough to see carts abandoned and tickets solved within minutes.
DEMO = {"inactivity_timeout": "2m", "idle_timeout": "10s"}
DEMO_RESOLUTION_MEDIAN = "3m"


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


