"""The merged snapshot in Redis: partition entries, their window totals, one merged document.

Every worker writes, each `publish_interval`, the small entries of the partitions it owns (outcome
counts, live gauges, stream time: what changes with every event) to the hash
`<app_id>:partitions`, and their window totals to `<app_id>:windows` only when a window changed
(when stream time crosses a step boundary or a sample lands in a closed bucket): publishing costs
what changed, not what exists. Each entry names the version of the window totals it goes with.

One worker of the fleet, the owner of the first source topic's partition 0 (Kafka's own group
membership picks exactly one), also merges every partition into `<app_id>:snapshot`, so any
reader gets the whole fleet's KPIs with one GET and the merge costs the same whatever the number
of workers. It re-renders the windowed KPIs only when some partition's window totals changed.
While partitions move, two workers may briefly both lead; the document is written under WATCH,
so neither overwrites a newer document with one merged from older entries.

A Redis outage never touches event processing: publishing runs on its own timer with short
timeouts, logs the reason once, and the next successful publish makes the snapshot exact again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from redis.exceptions import RedisError, WatchError

from stream.config.settings import redact_url
from stream.publish.snapshot import (
    Entry,
    Shape,
    WindowTotals,
    decode_entry,
    decode_windows,
    encode_entry,
    encode_windows,
    partition_entry,
    window_copies,
    window_version,
)
from stream.state.partition import PartitionState

log = logging.getLogger(__name__)

#: Attempts at writing the merged document when another leader wrote it meanwhile.
MAX_ATTEMPTS = 5


class PublishMetrics:
    """What an operator needs to see of publishing: its time, failures, retries, leadership."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.seconds = Histogram(
            "cxkpi_snapshot_publish_seconds",
            "Time of one publish to Redis: this worker's entries, and the merged document when "
            "this worker leads",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=registry,
        )
        self.retries = Counter(
            "cxkpi_snapshot_publish_retries",
            "Merged documents merged again because another worker wrote the snapshot meanwhile "
            "(WATCH conflicts; only while partitions move)",
            registry=registry,
        )
        self.failures = Counter(
            "cxkpi_snapshot_publish_failures",
            "Publishes that failed because Redis was unreachable or too slow",
            registry=registry,
        )
        self.leader = Gauge(
            "cxkpi_snapshot_leader",
            "1 while this worker writes the merged snapshot (it owns the first source topic's "
            "partition 0), else 0",
            registry=registry,
        )
        self.windows_written = Counter(
            "cxkpi_snapshot_windows_written",
            "Partition window totals written to Redis (only those that changed are)",
            registry=registry,
        )


class SnapshotStore:
    """Publishes partition entries and, when leading, the merged snapshot to Redis."""

    def __init__(
        self,
        url: str,
        prefix: str,
        shape: Shape,
        registry: CollectorRegistry,
        timeout_s: float = 1.0,
    ) -> None:
        self.url = url
        self.entries_key = f"{prefix}:partitions"
        self.windows_key = f"{prefix}:windows"
        self.snapshot_key = f"{prefix}:snapshot"
        self.shape = shape
        self.metrics = PublishMetrics(registry)
        self.client = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
        )
        self.available: bool | None = None  # unknown until the first attempt
        #: Window versions are unique within a process: the instance makes them fleet-unique.
        self.instance = uuid.uuid4().hex[:12]
        self.written: dict[str, str] = {}  # field -> version of the window totals written
        self.others: dict[str, Entry] = {}  # latest entries of partitions owned elsewhere
        self._raw: dict[str, bytes] = {}  # their stored bytes, so unchanged ones are not decoded
        #: field -> (version, window totals) of the other workers' partitions, when fetched
        self._theirs: dict[str, tuple[str, WindowTotals]] = {}
        #: the same of this worker's partitions, as last merged (when leading)
        self._mine: dict[str, tuple[str, WindowTotals]] = {}
        self._rendered: tuple[Any, orjson.Fragment] | None = None  # (inputs, windowed KPIs)

    # -- publishing ----------------------------------------------------------------------------

    async def publish(self, mine: Mapping[str, PartitionState], lead: bool) -> None:
        """Write this worker's entries (and the merged snapshot when `lead`); never raises."""
        self.metrics.leader.set(1 if lead else 0)
        started = time.perf_counter()
        try:
            await self._publish(dict(mine), lead)
        except (RedisError, OSError) as exc:
            self.metrics.failures.inc()
            self.written.clear()  # Redis may come back empty: write everything again
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
        finally:
            self.metrics.seconds.observe(time.perf_counter() - started)
        if self.available is False:
            log.info("snapshot store %s is back; snapshot is current again", redact_url(self.url))
        self.available = True

    async def _publish(self, mine: dict[str, PartitionState], lead: bool) -> None:
        versions = {f: f"{self.instance}:{window_version(s)}" for f, s in mine.items()}
        entries = {f: partition_entry(s, windows=False) for f, s in mine.items()}
        changed = {f for f in mine if self.written.get(f) != versions[f]}
        copies = {f: window_copies(mine[f]) for f in changed}
        # encoding a large state's windows takes a while: in a thread, on copies
        small, windows = await asyncio.to_thread(self._encode, entries, versions, copies)
        async with self.client.pipeline(transaction=True) as pipe:
            for _ in range(MAX_ATTEMPTS):
                try:
                    document = None
                    if lead:
                        await pipe.watch(self.snapshot_key)
                        self._update_others(await pipe.hgetall(self.entries_key), mine)
                        document = await self._document(mine, entries, versions)
                        pipe.multi()
                    if windows:
                        pipe.hset(self.windows_key, mapping=windows)
                    if small:
                        pipe.hset(self.entries_key, mapping=small)
                    pipe.hkeys(self.windows_key)
                    if document is None:
                        pipe.hgetall(self.entries_key)
                    else:
                        pipe.set(self.snapshot_key, document)
                    results = await pipe.execute()
                    break
                except WatchError:
                    self.metrics.retries.inc()
            else:
                log.debug("merged snapshot not written: %d conflicting writers", MAX_ATTEMPTS)
                return
        self.metrics.windows_written.inc(len(windows))
        if document is None:
            self._update_others(results[-1], mine)
        # what Redis holds now: a field it lost (restarted without persistence) is written again
        held = {f.decode() for f in results[-2]}
        self.written = {f: versions[f] for f in mine if f in held}

    def _encode(
        self,
        entries: dict[str, Entry],
        versions: dict[str, str],
        copies: dict[str, WindowTotals],
    ) -> tuple[dict[str, bytes], dict[str, bytes]]:
        small = {f: encode_entry({**e, "windows_version": versions[f]}) for f, e in entries.items()}
        windows = {
            f: orjson.dumps({"version": versions[f], "windows": encode_windows(totals)})
            for f, totals in copies.items()
        }
        return small, windows

    def _update_others(self, stored: dict[bytes, bytes], mine: Mapping[str, Any]) -> None:
        """The other partitions' entries, decoding only those that changed."""
        others: dict[str, Entry] = {}
        raw: dict[str, bytes] = {}
        for key, value in stored.items():
            field = key.decode()
            if field in mine:
                continue
            raw[field] = value
            unchanged = self._raw.get(field) == value
            others[field] = self.others[field] if unchanged else decode_entry(value)
        self.others, self._raw = others, raw

    # -- the other workers' windows --------------------------------------------------------------

    async def windows_of(self, entries: Mapping[str, Entry]) -> dict[str, WindowTotals]:
        """The window totals of other workers' partitions, fetched only when their version is
        not the one held already. A partition whose totals Redis does not hold is left out."""
        wanted = [
            f
            for f, e in entries.items()
            if "windows_version" in e and self._theirs.get(f, ("",))[0] != e["windows_version"]
        ]
        if wanted:
            raws = await self.client.hmget(self.windows_key, wanted)
            fetched = await asyncio.to_thread(
                lambda: [None if r is None else orjson.loads(r) for r in raws]
            )
            for field, body in zip(wanted, fetched, strict=True):
                if body is not None:
                    self._theirs[field] = (body["version"], decode_windows(body["windows"]))
        return self.held_windows(entries)

    def held_windows(self, entries: Mapping[str, Entry]) -> dict[str, WindowTotals]:
        """The latest window totals held of these partitions, without asking Redis."""
        for field in set(self._theirs) - set(entries):
            del self._theirs[field]
        return {
            f: self._theirs[f][1] if "windows_version" in e else e["windows"]  # earlier versions
            for f, e in entries.items()
            if f in self._theirs or "windows_version" not in e
        }

    # -- the merged document ---------------------------------------------------------------------

    async def _document(
        self,
        mine: Mapping[str, PartitionState],
        entries: Mapping[str, Entry],
        versions: Mapping[str, str],
    ) -> bytes:
        """The merged document of this worker's partitions and the others' latest entries; the
        windowed KPIs rendered again only when some partition's window totals changed."""
        theirs = await self.windows_of(self.others)
        for field in set(self._mine) - set(mine):
            del self._mine[field]
        for field, state in mine.items():
            if self._mine.get(field, ("",))[0] != versions[field]:
                self._mine[field] = (versions[field], window_copies(state))
        fleet = {**self.others, **entries}
        keep = self.shape.keep(fleet.values())
        inputs = (
            sorted((f, v) for f, (v, _) in self._mine.items()),
            sorted((f, self._theirs[f][0]) for f in theirs if f in self._theirs),
            sorted(keep.items()),
        )
        earlier = len(theirs) > len([f for f in theirs if f in self._theirs])
        if earlier or self._rendered is None or self._rendered[0] != inputs:
            parts = [totals for _, totals in self._mine.values()] + list(theirs.values())
            section = await asyncio.to_thread(self._render_windows, parts, fleet, keep)
            self._rendered = (inputs, section)
        return orjson.dumps(self.shape.document(fleet.values(), windows=self._rendered[1]))

    def _render_windows(
        self, parts: list[WindowTotals], fleet: dict[str, Entry], keep: dict[str, frozenset[str]]
    ) -> orjson.Fragment:
        """The windowed KPIs as JSON, kept as is inside every document until they change."""
        return orjson.Fragment(orjson.dumps(self.shape.windows(parts, fleet.values(), keep)))

    async def close(self) -> None:
        await self.client.aclose()
