"""What the soak does to the worker (a steady load from a thread) and what it reads of it (its
resident memory and the error lines of its log)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stream.tools.generate import Profile, generate

KIB_PER_MIB = 1024
ERROR_LINE = re.compile(r"\b(?:ERROR|CRITICAL)\b|Traceback \(most recent call last\)")
WARNING_LINE = re.compile(r"\bWARNING\b")


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
        from stream.tools.produce import send_live  # the pacing loop of `cxkpi generate`

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
