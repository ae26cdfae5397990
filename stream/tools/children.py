"""Child processes of the demo and the soak: started in their own session with their output in a
log file, watched, and stopped together."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from stream.tools.devservers import DevServerUnavailable, free_port, start_redis


class Children:
    """Child processes stopped together: SIGTERM, then SIGKILL after a grace period."""

    def __init__(self) -> None:
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.logs: dict[str, Path] = {}

    def add(
        self, name: str, process: subprocess.Popen, log: Path | None = None
    ) -> subprocess.Popen:
        """Watch a child; `log` is the file its output goes to, for `last_words`."""
        self.processes.append((name, process))
        if log is not None:
            self.logs[name] = log
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

    def last_words(self, name: str, lines: int = 30) -> str:
        """How a child ended: its exit code and the last lines of its log."""
        code = next(p.returncode for n, p in self.processes if n == name)
        log = self.logs.get(name)
        if log is None or not log.is_file():
            return f"the {name} exited with code {code}"
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        return f"the {name} exited with code {code}; the end of {log}:\n" + "\n".join(tail)


def interrupt_on_sigterm() -> None:
    """Make SIGTERM (`kill`, a job's timeout) stop this process as Ctrl-C does, by
    KeyboardInterrupt: its `finally` blocks then stop the children it started, which live in
    sessions of their own and would otherwise outlive it."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


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


def fetch_json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return orjson.loads(response.read())
    except OSError:
        return None
