"""All KPI state of one source partition, and how it is persisted without broker transactions.

State = entities (a cart, a ticket, a survey response: their applied facts), step buckets of KPI
series, running window totals, the partition's stream time, outcome counts and segment names.

Exactly-once effect on state, on any broker:

- Changes are collected per **epoch** and written as one changelog record per changed key
  (coalesced: a key changed by a thousand events is written once). Each record carries its epoch,
  its new value and its value before the epoch.
- After those records are durable, a **marker** record (the partition's meta: epoch, last source
  offset applied, stream time, counts) commits the epoch. Source offsets are acknowledged only
  after that, so the committed consumer offset never passes the marker.
- On recovery, a record of an epoch that was never committed is rolled back to its previous value,
  and source records up to the marker's offset are skipped: replay re-applies exactly what the
  state is missing.
"""

from __future__ import annotations

import heapq
from bisect import insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream.contract.events import Event
from stream.state.facts import NOW, Contribution, Fact, Rules
from stream.state.measures import expand
from stream.state.segments import SegmentNames
from stream.state.windows import Totals, Window, add_into, bucket_index, is_late, rows_of, totals_of

OUTCOMES = ("applied", "duplicate", "late", "dead_lettered")

#: Changelog records: (key, value); value None is a tombstone.
Record = tuple[bytes, bytes | None]


@dataclass(frozen=True)
class StateConfig:
    """The settings state arithmetic depends on."""

    step_ms: int
    grace_ms: int
    windows_ms: tuple[int, ...]
    max_segment_values: int
    allow: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(slots=True)
class Entity:
    """One cart, ticket or response: its facts, and when what they contribute was last worked
    out. That is a function of the facts and that stream time, so it is worked out again when
    needed rather than kept (keeping it cost about 130 B per open cart)."""

    facts: list[Fact]
    evaluated_at: int = 0  # stream time of the last evaluation
    due: int | None = None  # earliest scheduled re-evaluation
    #: What the entity contributed before a fact was added, until the next evaluation.
    before: list[Contribution] | None = None


class PartitionState:
    """The KPI state of one partition of one source topic."""

    def __init__(self, topic: str, partition: int, rules: Rules, config: StateConfig) -> None:
        self.topic = topic
        self.partition = partition
        self.rules = rules
        self.config = config
        self.offset = -1  # last source offset applied (or skipped, or dead-lettered)
        self.stream_time: int | None = None
        self.counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.names = SegmentNames(config.max_segment_values, config.allow)
        self.entities: dict[str, Entity] = {}
        self.buckets: dict[int, Totals] = {}
        self.windows = [Window(size, config.step_ms) for size in config.windows_ms]
        self.gauges: Totals = {}  # live values (open backlog), derived from the entities
        self._largest = max(self.windows, key=lambda w: w.size_ms)
        self._timers: list[tuple[int, str]] = []
        self._floor = 0  # buckets below this index are in no window and are dropped
        # persistence
        self.epoch = 1
        self.aborted: set[int] = set()
        self._dirty: dict[bytes, Any] = {}  # record key -> value before this epoch
        self._deleted: list[bytes] = []  # deleted in the last flushed epoch: tombstone next time
        self._marker_due = False

    # -- processing ---------------------------------------------------------------------------

    def apply(self, event: Event, offset: int) -> str:
        """Apply one valid event; returns its outcome."""
        self.offset = offset
        cfg = self.config
        if is_late(event.t, self.stream_time, cfg.step_ms, cfg.grace_ms):
            return self._count("late")
        entity = self.entities.get(event.key)
        if entity is not None and any(f[2] == event.event_id for f in entity.facts):
            return self._count("duplicate")
        for dimension in self.rules.dimensions:  # every applied value counts toward the bound
            if dimension in event.body:
                self.names.admit(dimension, event.body[dimension], event.t)
        fact = self.rules.fact(event, self.names)
        if entity is None:
            entity = self.entities[event.key] = Entity([], before=[])
        elif entity.before is None:
            entity.before = self.rules.contributions(entity.facts, entity.evaluated_at)
        self._touch_entity(event.key, entity)
        insort(entity.facts, fact)
        if self.stream_time is None or event.t > self.stream_time:
            self.advance(event.t)
        self._evaluate(event.key, entity)
        return self._count("applied")

    def dead_letter(self, offset: int) -> None:
        """Count a record that went to the dead-letter topic."""
        self.offset = offset
        self._count("dead_lettered")

    def source_restarted(self) -> None:
        """The source log now ends below the applied offset (the topic was recreated, or the
        broker lost its data): read the new log from its start. What was applied stays."""
        self.offset = -1
        self._marker_due = True

    def _count(self, outcome: str) -> str:
        self.counts[outcome] += 1
        return outcome

    def advance(self, stream_time: int) -> None:
        """Move stream time forward: windows slide, timers fire, old buckets go."""
        if self.stream_time is not None and stream_time <= self.stream_time:
            return
        self.stream_time = stream_time
        for window in self.windows:
            window.advance(stream_time, self.buckets)
        while self._timers and self._timers[0][0] <= stream_time:
            due, key = heapq.heappop(self._timers)
            entity = self.entities.get(key)
            if entity is not None and entity.due == due:
                entity.due = None
                self._evaluate(key, entity)
        if self._largest.lo > self._floor:
            self._floor = self._largest.lo
            for k in [k for k in self.buckets if k < self._floor]:
                self._touch_bucket(k)
                del self.buckets[k]

    def _evaluate(self, key: str, entity: Entity) -> None:
        """Bring an entity's contributions up to date and forget what can no longer change."""
        assert self.stream_time is not None
        rules, now = self.rules, self.stream_time
        before = entity.before
        if before is None:
            before = rules.contributions(entity.facts, entity.evaluated_at)
        entity.before = None
        fresh = rules.contributions(entity.facts, now)
        self._apply_difference(before, fresh)
        kept = rules.keep(entity.facts, now)
        if len(kept) != len(entity.facts):
            self._touch_entity(key, entity)
            remaining = rules.contributions(kept, now) if kept else []
            # samples of the forgotten facts stay in their buckets; live gauges follow the facts
            self._apply_difference(_live(fresh), _live(remaining))
            if not kept:
                del self.entities[key]
                return
            entity.facts = kept
        entity.evaluated_at = now
        self._schedule(key, entity)

    def _schedule(self, key: str, entity: Entity) -> None:
        assert self.stream_time is not None
        due = self.rules.next_due(entity.facts, self.stream_time)
        if due is not None and (entity.due is None or due < entity.due):
            entity.due = due
            heapq.heappush(self._timers, (due, key))

    def _apply_difference(self, old: list[Contribution], new: list[Contribution]) -> None:
        """Add what is new, subtract what is gone (as multisets; the lists are short)."""
        if old == new:
            return
        gone = list(old)
        for contribution in new:
            try:
                gone.remove(contribution)
            except ValueError:
                self._add(contribution, 1)
        for contribution in gone:
            self._add(contribution, -1)

    def _add(self, contribution: Contribution, times: int) -> None:
        if contribution[0] == NOW:
            for series, amount in expand(contribution):
                add_into(self.gauges, {series: amount * times})
            return
        k = bucket_index(contribution[0], self.config.step_ms)
        if k < self._floor:
            return  # older than every window: invisible, and its bucket is gone
        self._touch_bucket(k)
        bucket = self.buckets.setdefault(k, {})
        # every window ends at the last closed bucket: a sample in the open one is in none yet
        closed = k <= self.windows[0].hi
        covering = [w.changed() for w in self.windows if w.covers(k)] if closed else []
        for series, amount in expand(contribution):
            delta = amount * times
            for totals in (bucket, *covering):
                value = totals.get(series, 0) + delta
                if value:
                    totals[series] = value
                else:  # zero: drop the series (a 0 ms sample adds 0 to a series not there yet)
                    totals.pop(series, None)
        if not bucket:
            del self.buckets[k]

    # -- persistence --------------------------------------------------------------------------

    def _entity_key(self, key: str) -> bytes:
        return f"e:{self.partition}:{key}".encode()

    def _bucket_key(self, k: int) -> bytes:
        return f"b:{self.partition}:{k}".encode()

    def meta_key(self) -> bytes:
        return f"m:{self.partition}".encode()

    def _touch_entity(self, key: str, entity: Entity) -> None:
        rkey = self._entity_key(key)
        if rkey not in self._dirty:
            self._dirty[rkey] = list(entity.facts) if entity.facts else None

    def _touch_bucket(self, k: int) -> None:
        rkey = self._bucket_key(k)
        if rkey not in self._dirty:
            bucket = self.buckets.get(k)
            self._dirty[rkey] = rows_of(bucket) if bucket else None

    def _current(self, rkey: bytes) -> Any:
        kind, _, rest = rkey.decode().split(":", 2)
        if kind == "e":
            entity = self.entities.get(rest)
            return entity.facts if entity is not None else None
        bucket = self.buckets.get(int(rest))
        return rows_of(bucket) if bucket else None

    @property
    def has_changes(self) -> bool:
        return bool(self._dirty) or bool(self._deleted) or self._marker_due

    def flush(self) -> tuple[list[Record], Record]:
        """Close the epoch: the changed keys' records, then the marker that commits them.

        The caller writes the records, waits until they are durable, then writes the marker.
        """
        records: list[Record] = []
        deleted: list[bytes] = []
        for rkey in self._deleted:
            if rkey not in self._dirty:
                records.append((rkey, None))
        for rkey, before in self._dirty.items():
            value = self._current(rkey)
            if value is None:
                deleted.append(rkey)
            records.append((rkey, orjson.dumps([self.epoch, value, before])))
        marker = (self.meta_key(), orjson.dumps(self._meta()))
        self._dirty = {}
        self._deleted = deleted
        self._marker_due = False
        self.epoch += 1
        return records, marker

    def _meta(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "aborted": sorted(self.aborted),
            "offset": self.offset,
            "stream_time": self.stream_time,
            "counts": self.counts,
            "segments": self.names.admitted,
            "folded": self.names.folded,
        }

    @classmethod
    def restore(
        cls,
        topic: str,
        partition: int,
        rules: Rules,
        config: StateConfig,
        rows: Iterable[tuple[bytes, bytes]],
    ) -> PartitionState:
        """Rebuild from the latest changelog record of each key, rolling back uncommitted epochs."""
        state = cls(topic, partition, rules, config)
        meta: dict[str, Any] = {"epoch": 0, "aborted": []}
        records: list[tuple[bytes, list[Any]]] = []
        for rkey, raw in rows:
            if rkey == state.meta_key():
                meta = orjson.loads(raw)
            else:
                records.append((rkey, orjson.loads(raw)))
        committed, aborted = meta["epoch"], set(meta["aborted"])
        seen_epochs: set[int] = set()
        for rkey, (epoch, value, before) in records:
            seen_epochs.add(epoch)
            current = value if epoch <= committed and epoch not in aborted else before
            if current is None:
                continue
            kind, _, rest = rkey.decode().split(":", 2)
            if kind == "e":
                state.entities[rest] = Entity([tuple(f) for f in current])
            else:
                state.buckets[int(rest)] = totals_of(current)
        # Only the epoch after the marker can have been partly written: it is aborted, and
        # numbering skips it. The caller must flush (commit an empty epoch that records this)
        # before applying anything, so that again only marker + 1 can ever be torn.
        state.aborted = (aborted & seen_epochs) | {committed + 1}
        state.epoch = committed + 2
        state._marker_due = True
        if committed:
            state.offset = meta["offset"]
            state.stream_time = meta["stream_time"]
            state.counts.update(meta["counts"])
            state.names = SegmentNames(
                config.max_segment_values, config.allow, meta["segments"], meta["folded"]
            )
        state._rebuild_derived()
        return state

    def _rebuild_derived(self) -> None:
        """Window totals, live gauges and timers follow from the persisted state."""
        if self.stream_time is None:
            return
        for window in self.windows:
            window.rebuild(self.stream_time, self.buckets)
        self._floor = self._largest.lo
        for key, entity in self.entities.items():
            entity.evaluated_at = self.stream_time
            for contribution in _live(self.rules.contributions(entity.facts, self.stream_time)):
                self._add(contribution, 1)
            self._schedule(key, entity)


def _live(contributions: list[Contribution]) -> list[Contribution]:
    """The contributions to live gauges, which follow an entity's current facts."""
    return [c for c in contributions if c[0] == NOW]
