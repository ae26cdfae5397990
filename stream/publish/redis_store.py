"""The merged snapshot in Redis: partition entries, their window totals, one merged document.

Every worker writes, each `publish_interval`, the small entries of the partitions it owns (outcome
counts, live gauges, stream time: what changes with every event) to the hash
`<app_id>:partitions`, and their window totals to `<app_id>:windows` only when a window changed
(when stream time crosses a step boundary or a sample lands in a closed bucket): publishing costs
what changed, not what exists. Each entry names the version of the window totals it goes with,
and the stream time up to which they are known to hold (`windows_at`): totals are a function of
stream time that changes only with their version, so while it stays the same they hold at the
partition's current stream time, though nothing was written again.

One worker of the fleet, the writer, also merges every partition into `<app_id>:snapshot`, so
any reader gets the whole fleet's KPIs with one GET and the merge costs the same whatever the
number of workers. The writer is the owner of the first source topic's partition 0 (Kafka's own
group membership picks exactly one) while it publishes; when it stops, another worker takes over
within seconds through a lease in Redis (lease.py), without waiting for the group to move the
dead worker's partitions. The merge reads every partition's entry from `<app_id>:partitions`, so
a dead owner's entries are merged as it left them: the document stays whole and exact at their
stream times, which `valid_at` (the smallest) and `partitions_published_at` show standing still
until their new owner publishes, while `published_at` and `writer` say when and by whom the
document was written.
The writer re-renders the windowed KPIs only when some partition's window totals changed.
While they change all the time (a worker catching up), encoding and rendering them is paced to
a small share of a core (`Pacer`); the document's `windows_valid_at` says up to which stream
time its windows hold (over the source partitions, like `valid_at`: the customers partitions hold
no windows).
While partitions move or a lease changes hands, two workers may briefly both write; the document
is written under WATCH of itself (and of the lease, by a worker other than the preferred one), so
neither overwrites a newer document with one merged from older entries.

A Redis outage never touches event processing: publishing runs on its own timer with short
timeouts, logs the reason once, and the next successful publish makes the snapshot exact again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import orjson
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from redis.exceptions import RedisError, WatchError

from stream.config.settings import redact_url
from stream.contract.schemas import SOURCE_TOPICS
from stream.publish.document import Shape, format_time, stickiness
from stream.publish.entries import (
    Entry,
    decode_entry,
    encode_entry,
    partition_entry,
    window_copies,
    window_version,
)
from stream.publish.held import Held, Pacer, Rendered, pack_windows, unpack_windows
from stream.publish.lease import (
    LEASE_INTERVALS,
    Lease,
    PublishedAt,
    decode_lease,
    encode_lease,
    may_write,
    wall_ms,
)
from stream.state.partition import PartitionState

log = logging.getLogger(__name__)

#: Attempts at writing the merged document when another worker wrote it meanwhile.
MAX_ATTEMPTS = 5
#: Share of a core that encoding and rendering window totals may take, on average.
WINDOWS_CPU_BUDGET = 0.02


class PublishMetrics:
    """What an operator needs to see of publishing: its time, failures, retries, who writes
    the document and how fresh it is."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.seconds = Histogram(
            "cxkpi_snapshot_publish_seconds",
            "Time of one publish to Redis: this worker's entries, and the merged document when "
            "this worker writes it",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=registry,
        )
        self.retries = Counter(
            "cxkpi_snapshot_publish_retries",
            "Merged documents merged again because another worker wrote the snapshot meanwhile "
            "(WATCH conflicts; only while partitions move or the writer lease changes hands)",
            registry=registry,
        )
        self.failures = Counter(
            "cxkpi_snapshot_publish_failures",
            "Publishes that failed because Redis was unreachable or too slow",
            registry=registry,
        )
        self.leader = Gauge(
            "cxkpi_snapshot_leader",
            "1 while this worker writes the merged snapshot (it holds the writer lease: it owns "
            "the first source topic's partition 0, or the worker that does stopped writing), "
            "else 0",
            registry=registry,
        )
        self.published = PublishedAt()
        registry.register(self.published)
        self.windows_written = Counter(
            "cxkpi_snapshot_windows_written",
            "Partition window totals written to Redis (only those that changed are)",
            registry=registry,
        )


class SnapshotStore:
    """Publishes partition entries and, when this worker writes it, the merged snapshot to Redis."""

    def __init__(
        self,
        url: str,
        prefix: str,
        shape: Shape,
        registry: CollectorRegistry,
        timeout_s: float = 1.0,
        windows_cpu_budget: float = WINDOWS_CPU_BUDGET,
        writer: str = "",
        lease_ttl_s: float = LEASE_INTERVALS * 1.0,
    ) -> None:
        self.url = url
        self.entries_key = f"{prefix}:partitions"
        self.windows_key = f"{prefix}:windows"
        self.snapshot_key = f"{prefix}:snapshot"
        self.writer_key = f"{prefix}:writer"
        self.lease_ttl_ms = max(1, round(lease_ttl_s * 1000))
        self.shape = shape
        self.metrics = PublishMetrics(registry)
        self.client = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
        )
        self.available: bool | None = None  # unknown until the first attempt
        self.writing = False  # whether the last publish wrote the merged document
        self.lease: Lease | None = None  # the writer lease as last seen (or written)
        #: Window versions are unique within a process: the instance makes them fleet-unique.
        self.instance = uuid.uuid4().hex[:12]
        self.writer = writer or self.instance  # how the documents it writes name it
        #: field -> version of the window totals written, and up to which stream time they
        #: are known to hold
        self.written: dict[str, tuple[str, int | None]] = {}
        self.others: dict[str, Entry] = {}  # latest entries of partitions owned elsewhere
        self._raw: dict[str, bytes] = {}  # their stored bytes, so unchanged ones are not decoded
        #: field -> (version, window totals) of the other workers' partitions, when fetched
        self._theirs: dict[str, Held] = {}
        #: the same of this worker's partitions, as last written (while it writes the document)
        self._mine: dict[str, Held] = {}
        self._rendered: Rendered | None = None
        self.pacer = Pacer(windows_cpu_budget)

    # -- publishing ----------------------------------------------------------------------------

    async def publish(self, mine: Mapping[str, PartitionState], preferred: bool) -> None:
        """Write this worker's entries, and the merged snapshot when this worker writes it: when
        `preferred` (it owns the first source topic's partition 0), or when no other worker holds
        the writer lease (lease.py). Never raises."""
        started = time.perf_counter()
        try:
            wrote = await self._publish(dict(mine), preferred)
        except (RedisError, OSError) as exc:
            self.metrics.leader.set(0)
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
        self.metrics.leader.set(1 if wrote else 0)
        if wrote != self.writing:  # said once per change of hands
            self.writing = wrote
            if wrote:
                log.info("this worker (%s) writes the merged snapshot now", self.writer)
            elif self.lease is not None and self.lease.instance != self.instance:
                log.info(
                    "this worker (%s) no longer writes the merged snapshot: %s does",
                    self.writer,
                    self.lease.writer,
                )
        if self.available is False:
            log.info("snapshot store %s is back; snapshot is current again", redact_url(self.url))
        self.available = True

    async def _publish(self, mine: dict[str, PartitionState], preferred: bool) -> bool:
        """One publish; whether it wrote the merged document."""
        lease = decode_lease(await self.client.get(self.writer_key))
        write = may_write(lease, self.instance, preferred)
        refresh = self.pacer.due(time.monotonic())
        versions = {f: f"{self.instance}:{window_version(s)}" for f, s in mine.items()}
        if not write:  # a later document needs copies that match the versions named by then
            self._mine.clear()
        # window totals that changed, when the budget allows; new partitions always, and all of
        # this worker's when it starts writing the document (it holds no copies of them yet)
        changed = [
            f
            for f in mine
            if f not in self.written
            or (write and f not in self._mine)
            or (refresh and self.written[f][0] != versions[f])
        ]
        copies = {
            f: Held(versions[f], mine[f].stream_time, window_copies(mine[f])) for f in changed
        }
        named = {f: versions[f] if f in copies else self.written[f][0] for f in mine}
        published_at = wall_ms()
        entries = {
            f: replace(
                partition_entry(s, windows=False),
                windows_version=named[f],
                # held back (changed since written): they held when last seen current
                windows_at=s.stream_time if named[f] == versions[f] else self.written[f][1],
                published_at=published_at,
            )
            for f, s in mine.items()
        }
        # encoding a large state's windows takes a while: in a thread, on copies
        small, windows, cpu = await asyncio.to_thread(self._encode, entries, copies)
        async with self.client.pipeline(transaction=True) as pipe:
            for _ in range(MAX_ATTEMPTS):
                try:
                    document = None
                    if write and preferred:  # it writes whoever holds the lease: under
                        # WATCH of the document only, so that a lease expiring meanwhile (a dead
                        # worker's, or its own after a slow round) does not undo the write
                        await pipe.watch(self.snapshot_key)
                    elif write:  # under WATCH: neither may change before this document is written
                        await pipe.watch(self.snapshot_key, self.writer_key)
                        lease = decode_lease(await pipe.get(self.writer_key))
                        write = may_write(lease, self.instance, preferred)
                        if not write:  # another worker took the lease meanwhile
                            await pipe.reset()
                    if write:
                        self._update_others(await pipe.hgetall(self.entries_key), mine)
                        published_at = wall_ms()
                        document, rendering = await self._document(
                            mine, entries, copies, refresh, published_at
                        )
                        cpu += rendering
                        pipe.multi()
                    if windows:
                        pipe.hset(self.windows_key, mapping=windows)
                    if small:
                        pipe.hset(self.entries_key, mapping=small)
                    if document is None:
                        pipe.hgetall(self.entries_key)
                    else:
                        lease = Lease(self.writer, self.instance, published_at)
                        pipe.set(self.snapshot_key, document)
                        pipe.set(self.writer_key, encode_lease(lease), px=self.lease_ttl_ms)
                    pipe.hkeys(self.windows_key)
                    results = await pipe.execute()
                    break
                except WatchError:
                    self.metrics.retries.inc()
            else:
                log.debug("merged snapshot not written: %d conflicting writers", MAX_ATTEMPTS)
                return False
        self.lease = lease
        self.metrics.published.seen(lease)
        self.pacer.spent(time.monotonic(), cpu)
        self.metrics.windows_written.inc(len(windows))
        if document is None:
            self._update_others(results[-2], mine)
        # what Redis holds now: a field it lost (restarted without persistence) is written again
        held = {f.decode() for f in results[-1]}
        self.written = {
            f: (e.windows_version, e.windows_at) for f, e in entries.items() if f in held
        }
        return document is not None

    def _encode(
        self, entries: dict[str, Entry], copies: dict[str, Held]
    ) -> tuple[dict[str, bytes], dict[str, bytes], float]:
        """Entries and window totals as stored, and the CPU seconds the totals took."""
        small = {f: encode_entry(e) for f, e in entries.items()}
        started = time.thread_time()
        windows = {f: pack_windows(held) for f, held in copies.items()}
        return small, windows, time.thread_time() - started

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

    async def windows_of(self, entries: Mapping[str, Entry]) -> dict[str, Held]:
        """The window totals of other workers' partitions, fetched only when their version is
        not the one held already. A partition whose totals Redis does not hold is left out."""
        wanted = [
            f
            for f, e in entries.items()
            if e.windows_version is not None
            and (f not in self._theirs or self._theirs[f].version != e.windows_version)
        ]
        if wanted:
            raws = await self.client.hmget(self.windows_key, wanted)
            fetched = await asyncio.to_thread(lambda: [unpack_windows(r) for r in raws])
            for field, held in zip(wanted, fetched, strict=True):
                if held is not None:
                    self._theirs[field] = held
        return self.held_windows(entries)

    def held_windows(self, entries: Mapping[str, Entry]) -> dict[str, Held]:
        """The latest window totals held of these partitions, without asking Redis."""
        for field in set(self._theirs) - set(entries):
            del self._theirs[field]
        out: dict[str, Held] = {}
        for field, entry in entries.items():
            if entry.windows_version is None:  # written by an earlier version: totals inside
                version = f"entry:{hash(self._raw.get(field))}"
                out[field] = Held(version, entry.stream_time, entry.windows)
            elif field in self._theirs:
                out[field] = self._theirs[field]
        return out

    # -- the merged document ---------------------------------------------------------------------

    async def _document(
        self,
        mine: Mapping[str, PartitionState],
        entries: Mapping[str, Entry],
        copies: Mapping[str, Held],
        refresh: bool,
        published_at: int,
    ) -> tuple[bytes, float]:
        """The merged document of this worker's partitions and the others' latest entries, and
        the CPU seconds its windowed KPIs took. Those are rendered again when some partition's
        window totals changed and the budget allows (or a partition is new to them)."""
        self._mine = {
            f: copies.get(f) or self._mine[f] for f in mine if f in copies or f in self._mine
        }
        fleet = {**self.others, **entries}
        # as in `valid_at`, `events`: not the partitions a topic no longer has
        current = {f for f, e in fleet.items() if self.shape.current([e])}
        known = {**await self.windows_of(self.others), **self._mine}
        parts = {f: held for f, held in known.items() if f in current}
        keep = self.shape.keep(fleet.values())
        inputs = (sorted((f, held.version) for f, held in parts.items()), sorted(keep.items()))
        rendered, cpu = self._rendered, 0.0
        if rendered is None or (
            rendered.inputs != inputs and (refresh or rendered.fields != set(parts))
        ):
            rendered, cpu = await asyncio.to_thread(
                self._render_windows, parts, fleet, keep, inputs
            )
            self._rendered = rendered
        document = self.shape.document(
            fleet.values(), windows=rendered.sections, sticky=rendered.sticky
        )
        document["windows_valid_at"] = format_time(rendered.valid_at(fleet))
        self.shape.stamp(document, fleet.values(), published_at, self.writer)
        return orjson.dumps(document), cpu

    def _render_windows(
        self,
        parts: dict[str, Held],
        fleet: dict[str, Entry],
        keep: dict[str, frozenset[str]],
        inputs: Any,
    ) -> tuple[Rendered, float]:
        """The windowed KPIs as JSON, kept as is inside every document until they change."""
        started = time.thread_time()
        sections = self.shape.windows(
            [held.totals for held in parts.values()], fleet.values(), keep
        )
        sources = {f: held for f, held in parts.items() if fleet[f].topic in SOURCE_TOPICS}
        sticky = stickiness(sections["windows"])  # None: withheld while a window fills
        rendered = Rendered(
            inputs,
            set(parts),
            {name: orjson.Fragment(orjson.dumps(section)) for name, section in sections.items()},
            {f: held.version for f, held in sources.items()},
            {f: held.stream_time for f, held in sources.items()},
            None if sticky is None else sticky.to_json(),
        )
        return rendered, time.thread_time() - started

    async def close(self) -> None:
        await self.client.aclose()
