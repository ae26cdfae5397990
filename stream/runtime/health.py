"""Is the broker there? A TCP probe of the bootstrap servers, for readiness and one log line.

The Kafka clients retry quietly while the broker is away, so the worker would otherwise look
ready while nothing moves. A connection attempt every second is cheap and says it plainly.
"""

from __future__ import annotations

import asyncio
import logging
import time

log = logging.getLogger(__name__)


def _host_port(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return host.strip("[]"), int(port)


class BrokerProbe:
    """Whether any bootstrap server accepts a TCP connection."""

    def __init__(self, servers: list[str], timeout_s: float = 1.0) -> None:
        self.servers = [_host_port(s) for s in servers]
        self.timeout_s = timeout_s
        self.down_since: float | None = None  # monotonic time of the first failed probe

    @property
    def reachable(self) -> bool:
        return self.down_since is None

    async def check(self) -> None:
        reason = ""
        for host, port in self.servers:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), self.timeout_s
                )
            except (OSError, TimeoutError) as exc:
                reason = f"{host}:{port}: {type(exc).__name__}: {exc}".rstrip(": ")
                continue
            writer.close()
            if self.down_since is not None:
                log.info("broker reachable again after %.0f s", time.monotonic() - self.down_since)
                self.down_since = None
            return
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("broker unreachable (%s); not ready until it is back", reason)

    def describe(self) -> str:
        """Why the worker is not ready, while the broker is away."""
        assert self.down_since is not None
        return f"broker unreachable for {time.monotonic() - self.down_since:.0f} s"
