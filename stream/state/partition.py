"""All KPI state of one source partition: what an event changes, and what its changelog holds.

State = entities (a cart, a ticket, a survey response: their applied facts), what is remembered of
forgotten ones (stream/state/memories.py), step buckets of KPI series at one or two resolutions
(stream/state/buckets.py), running window totals, the partition's stream time, outcome counts
and segment names. Every change records the key's value before the epoch, so that the epoch can
be committed, or rolled back after a crash, as stream/state/changelog.py describes.
"""

from __future__ import annotations

import base64
import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Any

from stream.contract.events import Event
from stream.state.buckets import Resolution, StateConfig, restore
from stream.state.changelog import ENTITY, Epochs, Record, read, record_key, split_key
from stream.state.difference import difference
from stream.state.earlier import Earlier
from stream.state.facts import NOW, Contribution, Fact, Incremental, Rules, add_fact
from stream.state.measures import MINIMUM_MEASURES, expand, sample_deltas
from stream.state.memories import Memories, pack, stored
from stream.state.minima import Minima
from stream.state.segments import SegmentNames
from stream.state.windows import Totals, Window, add_into, is_late, rows_of, totals_of

OUTCOMES = ("applied", "duplicate", "late", "dead_lettered")
_EVENT_ID = itemgetter(2)  # of a fact
__all__ = ["OUTCOMES", "PartitionState", "StateConfig"]


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
        #: rules that know whether an event was applied (else found by scanning the entity's
        #: facts) and what an evaluation changed (else found from the whole lists)
        self._incremental = rules if isinstance(rules, Incremental) else None
        #: (entity, fact) just added, not evaluated yet, whose `before` was not taken
        self._added: tuple[Entity, Fact] | None = None
        self.config = config
        self.offset = -1  # last source offset applied (or skipped, or dead-lettered)
        self.stream_time: int | None = None
        self.counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.names = SegmentNames(config.max_segment_values, config.allow)
        self.entities: dict[str, Entity] = {}
        #: what is remembered of entities whose facts are all forgotten (stream/state/memories.py)
        self.memories = Memories()
        self.resolutions = config.resolutions()
        self._resolution = {r.kind: r for r in self.resolutions}
        self.gauges: Totals = {}  # live values (open backlog), derived from the entities
        self.minima = Minima()  # live smallest values (the oldest open ticket's opening)
        self._timers: list[tuple[int, str]] = []
        #: samples held in an earlier bucket until theirs closes
        self.earlier = Earlier(self.resolutions, self._touch_bucket)
        self._decided: list[Any] = []
        self.watermarks: dict[int, int] = {}  # source partition -> its latest watermark
        self.epochs = Epochs()  # what changed in this epoch, for the changelog
        self._step: int | None = None  # the step stream time was last advanced in

    @property
    def windows(self) -> list[Window]:
        """Every window, of every resolution."""
        return [w for r in self.resolutions for w in r.windows]

    @property
    def buckets(self) -> dict[int, Totals]:
        """The buckets of the finest step."""
        return self.resolutions[0].buckets

    def ages(self) -> dict[tuple[str, str], tuple[int, int]]:
        """Per (dimension, segment) of the backlog age: the open tickets' summed age and the
        oldest one's age, in ms at this partition's stream time."""
        now = self.stream_time
        if now is None:
            return {}
        gauges = self.gauges
        return {
            (dim, seg): (
                gauges.get(("open_tickets", dim, seg, -1), 0) * now
                - gauges.get((measure, dim, seg, -1), 0),
                now - oldest,
            )
            for (measure, dim, seg, _), oldest in self.minima.items()
        }

    def incomplete(self) -> dict[int, tuple[int, int]]:
        """Windows not yet filled after a rebuild: size -> (covered from, complete at)."""
        out: dict[int, tuple[int, int]] = {}
        for resolution in self.resolutions:
            out.update(resolution.incomplete(self.stream_time))
        return out

    # -- processing ---------------------------------------------------------------------------

    def apply(self, event: Event, offset: int) -> str:
        """Apply one valid event; returns its outcome."""
        self.offset = offset
        cfg = self.config
        if is_late(event.t, self.stream_time, cfg.step_ms, cfg.grace_ms):
            return self._count("late")
        entity = self.entities.get(event.key)
        if entity is not None and self._applied(entity.facts, event.event_id):
            return self._count("duplicate")
        for dimension in self.rules.dimensions:  # every applied value counts toward the bound
            if dimension in event.body:
                self.names.admit(dimension, event.body[dimension], event.t)
        fact = self.rules.fact(event, self.names)
        self._touch_entity(event.key)
        if entity is None:  # new, or brought back from what is remembered of it
            memory = self.memories.recall(event.key, self.stream_time)
            facts = [] if memory is None else self.rules.recall(*memory)
            entity = self.entities[event.key] = Entity(facts, before=[])
        elif entity.before is None:
            if self._tracked(entity, fact):  # its rules will say what the fact changed
                self._added = (entity, fact)
            else:
                entity.before = self.rules.contributions(entity.facts, entity.evaluated_at)
        add_fact(entity.facts, fact)
        if not cfg.watermark_sources:
            if self.stream_time is None or event.t > self.stream_time:
                self.advance(event.t)
        elif self.stream_time is None:
            return self._count("applied")  # evaluated once the watermarks give a stream time
        self._evaluate(event.key, entity)
        return self._count("applied")

    def watermark(self, source: int, t: int, offset: int) -> None:
        """A source partition's promise that everything it forwards from now on is newer than
        t. Stream time is the smallest promise, once every source has made one: then nothing
        older than stream time is still on its way, whichever source lags behind."""
        self.offset = offset
        self.watermarks[source] = max(t, self.watermarks.get(source, t))
        self.epochs.marker_due = True  # the watermarks are part of the marker
        sources = self.config.watermark_sources
        promises = [w for s, w in self.watermarks.items() if s < sources]
        if len(promises) == sources:
            self.advance(min(promises))

    def dead_letter(self, offset: int) -> None:
        """Count a record that went to the dead-letter topic."""
        self.offset = offset
        self._count("dead_lettered")

    def source_restarted(self) -> None:
        """The source log now ends below the applied offset (the topic was recreated, or the
        broker lost its data): read the new log from its start. What was applied stays."""
        self.offset = -1
        self.epochs.marker_due = True

    def _count(self, outcome: str) -> str:
        self.counts[outcome] += 1
        return outcome

    def advance(self, stream_time: int) -> None:
        """Move stream time forward: windows slide, timers fire, old buckets go."""
        if self.stream_time is not None and stream_time <= self.stream_time:
            return
        first = self.stream_time is None
        self.stream_time = stream_time
        if first and self.config.watermark_sources:  # what came before the first watermark
            for key, entity in list(self.entities.items()):
                self._evaluate(key, entity)
        step = stream_time // self.config.step_ms
        if step != self._step:  # windows (multiples of the step) slide only when a step ends
            self._step = step
            for resolution in self.resolutions:
                for k in resolution.advance(stream_time):
                    self._touch_bucket(resolution, k)
                    del resolution.buckets[k]
                self.earlier.expire(resolution)
            for key, memory in self.memories.expire(stream_time):
                self._touch_key(key, stored(memory))
        while self._timers and self._timers[0][0] <= stream_time:
            due, key = heapq.heappop(self._timers)
            entity = self.entities.get(key)
            if entity is not None and entity.due == due:
                entity.due = None
                self._evaluate(key, entity)

    def _evaluate(self, key: str, entity: Entity) -> None:
        """Bring an entity's contributions up to date and forget what can no longer change."""
        assert self.stream_time is not None
        rules, now = self.rules, self.stream_time
        fresh = self._update(entity, now)
        kept = rules.keep(entity.facts, now)
        if kept != entity.facts:  # fewer facts, or some replaced by a smaller one
            if self.config.collect_decided:
                self._decided.extend(rules.decided(key, entity.facts, kept))
            self._touch_entity(key)
            # samples of the forgotten facts stay in their buckets; live gauges follow the facts
            if fresh is not None:  # (Incremental rules have none)
                remaining = rules.contributions(kept, now) if kept else []
                self._apply_difference(_live(fresh), _live(remaining))
            elif kept and self._incremental is not None:  # the same answer, from now on
                self._incremental.answer(kept, now)
            if not kept:
                del self.entities[key]
                memory = rules.remember(entity.facts)
                if memory is not None and memory[0] > now:
                    self.memories.put(key, pack(*memory))
                return
            entity.facts = kept
        entity.evaluated_at = now
        self._schedule(key, entity)

    def _applied(self, facts: list[Fact], event_id: str) -> bool:
        """Whether a fact of the list has the event id: the rules may know (Incremental)."""
        known = None if self._incremental is None else self._incremental.applied(facts, event_id)
        return event_id in map(_EVENT_ID, facts) if known is None else known

    def _tracked(self, entity: Entity, fact: Fact) -> bool:
        """Whether the entity's rules will know what the fact, appended to its facts, changes:
        they are incremental, and their last answer was the one the state applied."""
        rules = self._incremental
        return (
            rules is not None
            and not self.config.watermark_sources
            and fact > entity.facts[-1]
            and rules.answered(entity.facts, entity.evaluated_at)
        )

    def _update(self, entity: Entity, now: int) -> list[Contribution] | None:
        """Apply what changed in the entity's contributions since its last evaluation: what its
        rules say changed, or else the difference of the whole lists (the new one returned)."""
        before, entity.before = entity.before, None
        added = None  # a fact just added whose `before` was not taken
        if self._added is not None and self._added[0] is entity:
            added, self._added = self._added[1], None
        if before is None and self._incremental is not None:
            changed = self._incremental.changes(entity.facts, entity.evaluated_at, now)
            if changed is not None:
                turns, gone, new = changed
                if turns:
                    self.earlier.turned(turns)
                self._apply_difference(gone, new)
                return None
        if before is None:  # as they were at the last evaluation
            facts = entity.facts if added is None else [f for f in entity.facts if f is not added]
            before = self.rules.contributions(facts, entity.evaluated_at)
        fresh = self.rules.contributions(entity.facts, now)
        self._apply_difference(before, fresh)
        return fresh

    def _schedule(self, key: str, entity: Entity) -> None:
        assert self.stream_time is not None
        due = self.rules.next_due(entity.facts, self.stream_time)
        if due is not None and (entity.due is None or due < entity.due):
            entity.due = due
            heapq.heappush(self._timers, (due, key))

    def _apply_difference(self, old: list[Contribution], new: list[Contribution]) -> None:
        """Add what is new, subtract what is gone; move what only changed its time (a window
        holding both buckets keeps its totals: stream/state/difference.py)."""
        if old == new:
            return
        moves, turns, added, gone = difference(old, new)
        for (was, t), run in moves.items():
            self._add_at(t, run, 1, was)
            self._add_at(was, run, -1, t)
        if turns:
            self.earlier.turned(turns)
        self._add(added, 1)
        self._add(gone, -1)
        self.earlier.hold(added, 1)
        self.earlier.hold(gone, -1)

    def _add(self, contributions: list[Contribution], times: int) -> None:
        """Add the samples `times` times, in order. A run of samples of one time lands in the
        same buckets, so it looks them up once (a survey reply's texts add a dozen series)."""
        for t, run in groupby(contributions, key=itemgetter(0)):
            if t != NOW:
                self._add_at(t, list(run), times)
                continue
            for contribution in run:
                for series, amount in expand(contribution):
                    add_into(self.gauges, {series: amount * times})
                    if series[0] in MINIMUM_MEASURES:
                        self.minima.add(series, amount, times)

    def _add_at(
        self, t: int, run: list[Contribution], times: int, other: int | None = None
    ) -> None:
        """Add the samples of time t `times` times; for a move, `other` is the time of the
        opposite change, and a window holding both buckets is left alone."""
        samples: list[tuple[str | None, list[tuple[Any, int]]]] | None = None
        for resolution in self.resolutions:
            k = t // resolution.step_ms
            if k < resolution.floor:
                continue  # older than every window of this step: its bucket is gone
            ko = None if other is None else other // resolution.step_ms
            if k == ko:
                continue  # moved within the bucket: nothing changes at this step
            if samples is None:  # a sample lands at every step, or at its `only` one
                samples = [sample_deltas(c, times) for c in run]
            kind = resolution.kind
            deltas = [d for only, ds in samples if only is None or only == kind for d in ds]
            if deltas:
                self._touch_bucket(resolution, k)
                resolution.land(k, ko, deltas)

    # -- persistence --------------------------------------------------------------------------

    def _touch_entity(self, key: str) -> None:
        """Keep the key's value before this epoch (its facts or its memory), before a change."""
        rkey = f"{ENTITY}:{self.partition}:{key}".encode()  # record_key, inline: every event
        if rkey not in self.epochs.before:
            self.epochs.before[rkey] = self._stored(key, copy=True)

    def _touch_key(self, key: str, before: Any) -> None:
        self.epochs.before.setdefault(record_key(ENTITY, self.partition, key), before)

    def _stored(self, key: str, copy: bool = False) -> Any:
        """An entity key's value as the changelog holds it: its facts (a copy when the entity
        may change before it is written), a memory as base64 text, or None."""
        entity = self.entities.get(key)
        if entity is not None:
            return (list(entity.facts) if copy else entity.facts) or None
        memory = self.memories.get(key)
        return None if memory is None else stored(memory)

    def _touch_bucket(self, resolution: Resolution, k: int) -> None:
        rkey = f"{resolution.kind}:{self.partition}:{k}".encode()  # record_key, inline
        epochs = self.epochs
        if rkey not in epochs.before:
            before = epochs.written.get(rkey)
            if before is None:
                bucket = resolution.buckets.get(k)
                before = rows_of(bucket) if bucket else None
            epochs.before[rkey] = before

    def _current(self, rkey: bytes) -> Any:
        kind, rest = split_key(rkey)
        if kind == ENTITY:
            return self._stored(rest)
        resolution = self._resolution.get(kind)  # None: a step no longer in use
        bucket = resolution.buckets.get(int(rest)) if resolution is not None else None
        return rows_of(bucket) if bucket else None

    def take_decided(self) -> list[Any]:
        """What the rules decided since the last call (with collect_decided), to forward. Take
        it right after `flush`, with no await between: it is then what the epoch just closed
        decided, to be sent before that epoch's marker. A crash before the marker rolls the
        epoch back and replay decides the same again (sent twice, counted once)."""
        decided, self._decided = self._decided, []
        return decided

    @property
    def has_changes(self) -> bool:
        return self.epochs.has_changes

    def flush(self) -> tuple[list[Record], Record]:
        """Close the epoch: the changed keys' records, then the marker that commits them.

        The caller writes the records, waits until they are durable, then writes the marker.
        """
        return self.epochs.close(self.partition, self._current, self._meta())

    def _meta(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "stream_time": self.stream_time,
            "counts": self.counts,
            "segments": self.names.admitted,
            "folded": self.names.folded,
            # the steps the buckets were written with, and from when each holds every event
            "resolutions": {r.kind: [r.step_ms, r.coverage] for r in self.resolutions},
            "watermarks": {str(s): t for s, t in sorted(self.watermarks.items())},
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
        """Rebuild from the latest changelog record of each key, rolling back uncommitted epochs
        (stream/state/changelog.py). The caller must flush before applying anything."""
        state = cls(topic, partition, rules, config)
        committed = read(partition, rows)
        state.epochs = committed.epochs
        kept: dict[str, dict[int, Totals]] = {}  # bucket kind -> index -> totals
        for kind, rest, value in committed.values:
            if kind == ENTITY and isinstance(value, str):
                state.memories.put(rest, base64.b64decode(value))
            elif kind == ENTITY:
                state.entities[rest] = Entity([tuple(f) for f in value])
            else:
                kept.setdefault(kind, {})[int(rest)] = totals_of(value)
        meta = committed.meta
        if meta:
            state.offset = meta["offset"]
            state.stream_time = meta["stream_time"]
            state.counts.update(meta["counts"])
            state.watermarks = {int(s): t for s, t in meta.get("watermarks", {}).items()}
            state.names = SegmentNames(
                config.max_segment_values, config.allow, meta["segments"], meta["folded"]
            )
        # buckets for this configuration's steps; what differs is written back with the next flush
        written = meta.get("resolutions")
        for kind, k, old in restore(
            state.resolutions, kept, written, config.step_ms, state.stream_time
        ):
            state.epochs.before[record_key(kind, partition, k)] = rows_of(old) if old else None
        state._rebuild_derived()
        return state

    def _rebuild_derived(self) -> None:
        """Window totals, live gauges and timers follow from the persisted state."""
        if self.stream_time is None:
            return
        for resolution in self.resolutions:
            resolution.rebuild_windows(self.stream_time)
        for key, entity in self.entities.items():
            entity.evaluated_at = self.stream_time
            contributions = self.rules.contributions(entity.facts, self.stream_time)
            self._add(_live(contributions), 1)
            self.earlier.hold(contributions, 1, landed=True)
            self._schedule(key, entity)


def _live(contributions: list[Contribution]) -> list[Contribution]:
    """The contributions to live gauges, which follow an entity's current facts."""
    return [c for c in contributions if c[0] == NOW]
