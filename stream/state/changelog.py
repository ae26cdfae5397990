"""A partition's changelog: its records, the epochs that commit them, and what survives a crash.

Exactly-once effect on state, on any broker (no Kafka transactions):

- Changes are collected per **epoch** and written as one changelog record per changed key
  (coalesced: a key changed by a thousand events is written once). Each record carries its epoch,
  its new value and its value before the epoch: `[epoch, value, before]`. An entity's facts
  mostly outlive an epoch, so where both are lists, an item of `before` that `value` holds too
  is written as its index in `value` (an item of either is never a bare integer: a fact is a
  list): the record no longer carries the facts twice.
- After those records are durable, a **marker** record (the partition's meta: epoch, last source
  offset applied, stream time, counts, ...) commits the epoch. Source offsets are acknowledged
  only after that, so the committed consumer offset never passes the marker.
- On recovery, a record of an epoch that was never committed is rolled back to its value before
  the epoch, and source records up to the marker's offset are skipped: replay re-applies exactly
  what the state is missing. Every epoch after the marker (the one being written at a crash, and
  any written by a recovery's own first round before it crashed too) is recorded as aborted, and
  numbering goes past them: a torn epoch's number is never reused.

The order of a flush round around this (records, forwarded orders, markers, acknowledgements) is
stream/runtime/checkpoint.py's; what the values mean is stream/state/partition.py's.

Record keys: `e:<partition>:<key>` an entity (its facts, or its memory as base64 text),
`<kind>:<partition>:<index>` a bucket of a resolution (`b` the step, `l` the long step),
`m:<partition>` the marker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

#: Changelog records: (key, value); value None is a tombstone.
Record = tuple[bytes, bytes | None]
ENTITY, MARKER = "e", "m"
_ENTITY_KEY = f"{ENTITY}:".encode()


def record_key(kind: str, partition: int, rest: object) -> bytes:
    return f"{kind}:{partition}:{rest}".encode()


def marker_key(partition: int) -> bytes:
    return f"{MARKER}:{partition}".encode()


def split_key(rkey: bytes) -> tuple[str, str]:
    """(kind, the rest: an entity key or a bucket index) of a record key."""
    kind, _, rest = rkey.decode().split(":", 2)
    return kind, rest


class Epochs:
    """The keys changed in the current epoch (with their values before it), and the numbering
    of epochs, of one partition."""

    def __init__(self, epoch: int = 1, aborted: Iterable[int] = ()) -> None:
        self.epoch = epoch
        self.aborted: set[int] = set(aborted)
        self.before: dict[bytes, Any] = {}  # record key -> value before this epoch
        self.deleted: list[bytes] = []  # deleted in the last closed epoch: tombstone next time
        self.marker_due = False  # the meta changed: a marker is due even without records
        #: Each bucket's value as the last closed epoch wrote it: its value before this epoch as
        #: long as nothing changed it since (every change records the value before it first).
        #: Entities' are not kept: they are many, and a copy of one's facts costs less.
        self.written: dict[bytes, orjson.Fragment] = {}

    @property
    def has_changes(self) -> bool:
        return bool(self.before) or bool(self.deleted) or self.marker_due

    @property
    def changed(self) -> int:
        """Keys changed in this epoch: the records its close writes (and tombstones)."""
        return len(self.before) + len(self.deleted)

    def close(
        self, partition: int, current: Callable[[bytes], Any], meta: dict[str, Any]
    ) -> tuple[list[Record], Record]:
        """The epoch's records (each changed key's `current` value) and the marker that commits
        them, with the partition's meta; it must be written once the records are durable. The
        next epoch begins."""
        records: list[Record] = [(k, None) for k in self.deleted if k not in self.before]
        deleted: list[bytes] = []
        written: dict[bytes, orjson.Fragment] = {}
        for rkey, before in self.before.items():
            value = current(rkey)
            if value is None:
                deleted.append(rkey)
            elif not rkey.startswith(_ENTITY_KEY):
                # a bucket: encoded once, the same bytes are its value before the next epoch
                # (copied to their size: orjson's own buffer is at least 4 kB, and rounded up)
                encoded = bytes(memoryview(orjson.dumps(value)))
                value = written[rkey] = orjson.Fragment(encoded)
            else:
                before = _by_index(value, before)
            records.append((rkey, orjson.dumps([self.epoch, value, before])))
        body = {"epoch": self.epoch, "aborted": sorted(self.aborted), **meta}
        marker = (marker_key(partition), orjson.dumps(body))
        self.before, self.deleted, self.marker_due = {}, deleted, False
        self.written = written
        self.epoch += 1
        return records, marker


def _by_index(value: Any, before: Any) -> Any:
    """`before` with each item that `value` holds as well (the same object: the state's entity
    keeps its facts' tuples) written as its index in `value`."""
    if not isinstance(value, list) or not isinstance(before, list) or not before:
        return before
    at = {id(item): i for i, item in enumerate(value)}
    return [at.get(id(item), item) for item in before]


def value_before(value: Any, before: Any) -> Any:
    """A record's value before its epoch, from its `value` and `before` as written (the inverse
    of _by_index; a record written before it has no index)."""
    if not isinstance(value, list) or not isinstance(before, list):
        return before
    return [value[item] if type(item) is int else item for item in before]


@dataclass
class Committed:
    """What a changelog holds once uncommitted epochs are rolled back."""

    meta: dict[str, Any]  # the last marker's (empty before the first)
    values: list[tuple[str, str, Any]] = field(default_factory=list)  # (kind, rest, value)
    epochs: Epochs = field(default_factory=Epochs)


def read(partition: int, rows: Iterable[tuple[bytes, bytes]]) -> Committed:
    """The committed value of every key from the latest record of each, rolling back the
    records of epochs the marker does not commit. The caller must close an (empty) epoch and
    write its marker before applying anything, so that the aborted epochs are recorded."""
    meta: dict[str, Any] = {}
    records: list[tuple[bytes, list[Any]]] = []
    marker = marker_key(partition)
    for rkey, raw in rows:
        if rkey == marker:
            meta = orjson.loads(raw)
        else:
            records.append((rkey, orjson.loads(raw)))
    committed, aborted = meta.get("epoch", 0), set(meta.get("aborted", ()))
    out = Committed(meta)
    seen: set[int] = set()
    for rkey, (epoch, value, before) in records:
        seen.add(epoch)
        if epoch <= committed and epoch not in aborted:
            current = value
        else:
            current = value_before(value, before)
        if current is not None:
            out.values.append((*split_key(rkey), current))
    # Every epoch after the marker was never committed: it stays aborted while its records
    # remain, and numbering goes past all of them, so that a torn epoch's number is never
    # committed later (a crash during the round that commits a rollback leaves records of the
    # epoch after the aborted one, too).
    torn = {epoch for epoch in seen if epoch > committed} | {committed + 1}
    out.epochs = Epochs(max(torn) + 1, (aborted & seen) | torn)
    out.epochs.marker_due = True
    return out
