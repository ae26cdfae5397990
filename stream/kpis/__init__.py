"""The KPI rules: pure functions from an entity's facts to what it contributes to the buckets.

Each source topic has one rules object. State code asks it three questions about an entity (a
cart, a ticket, a survey response), always from the entity's full list of applied facts, so that
an out-of-order event simply changes the answer:

- `contributions`: which samples the entity adds, each in the bucket of its event time (or to a
  live gauge);
- `next_due`: the stream time at which the answer changes without a new event (a cart times out,
  a finished entity can be forgotten);
- `keep`: which facts are still needed (the rest can no longer change, their samples stay).
"""

from __future__ import annotations

from typing import Any, Protocol

from stream.events import Event
from stream.segments import SegmentNames

#: One applied event reduced to what the KPIs need: (t_ms, rank, event_id, kind, *data).
#: Facts sort by (t, rank, event_id); rank orders events of the same time.
Fact = tuple[Any, ...]
#: ((dimension, segment), ...) with ("", "") for overall.
Segments = tuple[tuple[str, str], ...]
#: (t_ms, measure, segments, value): one sample in the bucket of t; t = NOW for a live gauge
#: (such as the open backlog) that belongs to no bucket and follows the entity's current facts.
Contribution = tuple[int, str, Segments, int]

OVERALL = ("", "")
NOW = -1


class Rules(Protocol):
    """What state code needs from a topic's KPI rules."""

    topic: str
    dimensions: tuple[str, ...]

    def fact(self, event: Event, names: SegmentNames) -> Fact: ...

    def contributions(self, facts: list[Fact], stream_time: int) -> list[Contribution]: ...

    def next_due(self, facts: list[Fact], stream_time: int) -> int | None: ...

    def keep(self, facts: list[Fact], stream_time: int) -> list[Fact]: ...


_SHARED: dict[Segments, Segments] = {}


def shared(segments: Segments) -> Segments:
    """One tuple per distinct segment combination, shared by every contribution that has it.
    Segment names are bounded per dimension, so this stays small; each open cart or ticket no
    longer carries its own copies (about a quarter of its memory)."""
    return _SHARED.setdefault(segments, segments)


def segment_name(names: SegmentNames, dimension: str, body: dict[str, Any]) -> str | None:
    """The bounded name of a body field, or None when the event does not carry it."""
    value = body.get(dimension)
    return None if value is None else names.name(dimension, value)
