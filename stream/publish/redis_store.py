"""The merged snapshot in Redis: one hash of partition entries, one key with the merged document.

Each worker writes the entries of the partitions it owns and re-merges all entries into
`<app_id>:snapshot`, atomically (WATCH/MULTI), so any reader gets the whole fleet's KPIs with one
GET. A Redis outage never touches event processing: publishing runs on its own timer with short
timeouts, logs the reason once, and the next successful publish makes the snapshot exact again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError, WatchError

from stream.config.settings import redact_url
from stream.publish.snapshot import Entry, decode_entry, encode_entry

log = logging.getLogger(__name__)

#: Builds the merged document from all entries (the worker passes a closure over its settings).
Render = Callable[[list[Entry]], dict[str, Any]]


class SnapshotStore:
    """Publishes partition entries and the merged snapshot to Redis."""

    def __init__(self, url: str, prefix: str, render: Render, timeout_s: float = 1.0) -> None:
        self.url = url
        self.entries_key = f"{prefix}:partitions"
        self.snapshot_key = f"{prefix}:snapshot"
        self.render = render
        self.client = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
        )
        self.available: bool | None = None  # unknown until the first attempt
        self.others: dict[str, Entry] = {}  # last seen entries of partitions owned elsewhere

    async def publish(self, mine: dict[str, Entry]) -> None:
        """Write this worker's entries and the re-merged snapshot; never raises."""
        try:
            await self._publish(mine)
        except (RedisError, OSError) as exc:
            if self.available is not False:
                log.warning(
                    "snapshot store %s unavailable (%s: %s); processing continues and the "
                    "snapshot catches up when it is back",
                    redact_url(self.url),
                    type(exc).__name__,
                    exc,
                )
            self.available = False
            return
        if self.available is False:
            log.info("snapshot store %s is back; snapshot is current again", redact_url(self.url))
        self.available = True

    async def _publish(self, mine: dict[str, Entry]) -> None:
        """Encoding and rendering a large state take a tenth of a second or more: they run in a
        thread, on the entries (copies), so that events keep flowing meanwhile."""
        encoded = await asyncio.to_thread(
            lambda: {field: encode_entry(entry) for field, entry in mine.items()}
        )
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(self.entries_key)
                    stored = await pipe.hgetall(self.entries_key)
                    others, document = await asyncio.to_thread(self._merged, stored, mine)
                    pipe.multi()
                    if encoded:
                        pipe.hset(self.entries_key, mapping=encoded)
                    pipe.set(self.snapshot_key, document)
                    await pipe.execute()
                    self.others = others
                    return
                except WatchError:
                    continue

    def _merged(
        self, stored: dict[bytes, bytes], mine: dict[str, Entry]
    ) -> tuple[dict[str, Entry], bytes]:
        """The other workers' entries from the stored hash, and the merged document as JSON."""
        others = {f.decode(): decode_entry(v) for f, v in stored.items() if f.decode() not in mine}
        return others, orjson.dumps(self.render([*others.values(), *mine.values()]))

    async def close(self) -> None:
        await self.client.aclose()
