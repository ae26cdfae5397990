"""Logging of the worker: plain or JSON lines, and the Kafka client's reconnect errors not
repeated.

While the broker is away, aiokafka logs a connection error every few milliseconds. The worker
says once that the broker is unreachable (stream/runtime/health.py); the client's own lines are let
through once per message per `every_s` seconds, with a count of the ones held back.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import orjson

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class QuietRepeats(logging.Filter):
    """Let a repeated message (same logger and format string) of the loggers under `prefix`
    through once per every_s."""

    def __init__(self, prefix: str = "aiokafka", every_s: float = 30.0) -> None:
        super().__init__()
        self.prefix = prefix
        self.every_s = every_s
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix):
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        if now - self._last.get(key, -self.every_s) < self.every_s:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} (and {held} more like it in the last {self.every_s:.0f} s)"
        return True


class JsonLines(logging.Formatter):
    """One JSON object per record and line, for log shippers: time (UTC, RFC 3339), level,
    logger, message, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def setup_logging(level: str, form: str = "text") -> None:
    """Log to standard error, as plain lines ('text') or JSON lines ('json')."""
    logging.basicConfig(level=level.upper(), format=FORMAT)
    quiet = QuietRepeats()
    for handler in logging.getLogger().handlers:
        handler.addFilter(quiet)
        if form == "json":
            handler.setFormatter(JsonLines())
