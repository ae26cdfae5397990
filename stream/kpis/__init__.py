"""The KPI rules: pure functions from an entity's facts to what it contributes to the buckets.

Each source topic has one rules object (`carts.py`, `tickets.py`, `surveys.py`) implementing the
`Rules` interface of `stream/state/facts.py`; `catalog.py` says how each published KPI is made of
the summed samples. Nothing here imports Faust or Kafka. This module holds the helpers the rules
share.
"""

from __future__ import annotations

from typing import Any

from stream.state.facts import Fact, Segments
from stream.state.segments import SegmentNames

#: Order amounts are summed exactly, in millionths of the currency unit.
MICROS = 1_000_000

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


class RemembersNothing:
    """The rules of entities of which nothing needs remembering once their facts are forgotten
    (a survey response, a customer's orders)."""

    def remember(self, facts: list[Fact]) -> tuple[int, bytes] | None:
        return None

    def recall(self, until: int, payload: bytes) -> list[Fact]:
        raise ValueError(f"{type(self).__name__} remembers nothing, so recalls nothing")
