"""Is the broker there? Judged by the consumer's own contact with it, for readiness and one log
line.

The Kafka clients retry quietly while the broker is away, so the worker would otherwise look ready
while nothing moves. A TCP connect is not enough either: a frozen broker (a stopped process, a
hung host) still accepts connections and answers nothing. So every answer the consumer gets from
the broker (fetches, which return at least every fetch wait even when idle, heartbeats, metadata)
is timed (stream/runtime/transport.py reports each one), and the broker counts as unreachable
once none came for `stale_after_s`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Heartbeat intervals without any answer before the broker counts as unreachable (a fetch or a
#: heartbeat is answered at least once per interval while the broker works).
STALE_HEARTBEATS = 5


class BrokerContact:
    """When the consumer last got an answer from the broker, and whether that is too long ago."""

    def __init__(self, stale_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_after_s = stale_after_s
        self.clock = clock
        self.last_answer: float | None = None  # clock time; written by the consumer's thread
        self.down_since: float | None = None  # clock time the silence began, while it lasts

    def answered(self) -> None:
        """The consumer got an answer from the broker (called in the consumer's thread, by
        stream/runtime/transport.py's client for every response)."""
        self.last_answer = self.clock()

    def silence_s(self) -> float | None:
        """Seconds since the last answer (None before the first)."""
        return None if self.last_answer is None else self.clock() - self.last_answer

    @property
    def answering(self) -> bool:
        silence = self.silence_s()
        return silence is not None and silence < self.stale_after_s

    async def check(self) -> None:
        """Once a second: log when the broker stops or starts answering."""
        if self.last_answer is None:
            return
        if self.answering:
            if self.down_since is not None:
                log.info("broker reachable again after %.0f s", self.clock() - self.down_since)
                self.down_since = None
        elif self.down_since is None:
            self.down_since = self.last_answer
            log.warning(
                "broker unreachable (no answer to the consumer for %.0f s); not ready until it "
                "answers again",
                self.silence_s(),
            )

    def describe(self) -> str:
        """Why the worker is not ready, while the broker is silent."""
        silence = self.silence_s()
        if silence is None:
            return "waiting for the broker's first answer"
        return f"broker unreachable: no answer for {silence:.0f} s"
