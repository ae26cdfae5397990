"""What the state keeps of an entity, and what it asks of the KPI rules about it.

The state keeps, per entity (a cart, a ticket, a survey response), the list of its applied facts.
The KPI rules of its topic (`stream/kpis/`) answer three questions about that list, always from
the whole list, so that an out-of-order event simply changes the answer:

- `contributions`: which samples the entity adds, each in the bucket of its event time (or to a
  live gauge);
- `next_due`: the stream time at which the answer changes without a new event (a cart times out,
  a finished entity can be forgotten), or an earlier one (after `now`): the entity is then
  evaluated once more, to no effect;
- `applied`, `answered`, `changes` and `answer` (optional, `Incremental`): whether an event was
  applied and what an evaluation changed in the contributions, known to rules that keep a list
  read between events, so that the state need not scan the list nor take the difference of whole
  lists;
- `keep`: which facts are still needed (the rest can no longer change, their samples stay);
- `decided`: what the facts no longer kept settle for good, to be sent on (a cart's orders, to
  their customer's partition);
- `remember` / `recall`: what to keep, compactly and until when, of an entity none of whose facts
  is kept any more (a solved ticket that may be reopened, a cart's customer), and the facts that
  stand for it when a later event of the same key comes (stream/state/memories.py).

The state defines this interface and the rules implement it, so the state never imports a rule.
"""

from __future__ import annotations

from bisect import insort
from typing import Any, Protocol, runtime_checkable

from stream.contract.events import Event
from stream.state.segments import SegmentNames

#: One applied event reduced to what the KPIs need: (t_ms, rank, event_id, kind, *data).
#: Facts sort by (t, rank, event_id); rank orders events of the same time.
Fact = tuple[Any, ...]
#: ((dimension, segment), ...) with ("", "") for overall.
Segments = tuple[tuple[str, str], ...]
#: (t_ms, measure, segments, value): one sample in the bucket of t; t = NOW for a live gauge
#: (such as the open backlog) that belongs to no bucket and follows the entity's current facts.
#: (t_ms, measure, segments, value, earlier): a sample in the bucket of t that, while that bucket
#: is open, counts in the bucket of `earlier` as well; the state takes it out of there as the
#: bucket closes, with no evaluation (stream/state/earlier.py).
Contribution = tuple[int, str, Segments, int] | tuple[int, str, Segments, int, int]

#: (turns, gone, added): what changed in an entity's contributions (stream/state/difference.py).
Changes = tuple[list[Contribution], list[Contribution], list[Contribution]]

OVERALL = ("", "")
NOW = -1


def add_fact(facts: list[Fact], fact: Fact) -> None:
    """Put a fact in its place among an entity's facts, in order. Most sort last: they are
    appended, with no bisection through the entity's older facts (which touched a few of them,
    cold in memory, per event)."""
    if facts and fact < facts[-1]:
        insort(facts, fact)
    else:
        facts.append(fact)


class Rules(Protocol):
    """What state code needs from a topic's KPI rules."""

    topic: str
    dimensions: tuple[str, ...]

    def fact(self, event: Event, names: SegmentNames) -> Fact: ...

    def contributions(self, facts: list[Fact], stream_time: int) -> list[Contribution]: ...

    def next_due(self, facts: list[Fact], stream_time: int) -> int | None: ...

    def keep(self, facts: list[Fact], stream_time: int) -> list[Fact]: ...

    def decided(self, key: str, facts: list[Fact], kept: list[Fact]) -> list[Any]: ...

    def remember(self, facts: list[Fact]) -> tuple[int, bytes] | None:
        """(stream time it is forgotten at, payload) of an entity whose facts are all forgotten;
        None: nothing to remember."""
        ...

    def recall(self, until: int, payload: bytes) -> list[Fact]:
        """The facts that stand for a remembered entity: they contribute no sample of their
        own, and sort before any fact a later event can add."""
        ...


@runtime_checkable
class Incremental(Protocol):
    """Rules that keep what they read of an entity's list of facts between events (the list
    grows in place by the facts added), and answer from it: whether an event was applied,
    and what an evaluation changed in the contributions, which the state then applies rather
    than the difference of the whole lists before and after. Their samples all land in
    buckets: they have no live gauges (NOW), which follow the facts kept."""

    def applied(self, facts: list[Fact], event_id: str) -> bool | None:
        """Whether a fact of the list has the event id; None when not known without reading
        the list (the state then looks for it)."""
        ...

    def answered(self, facts: list[Fact], since: int) -> bool:
        """Whether their last answer for the list was the one at `since`: then `changes` knows
        what a fact added to it changes (unless the list is read anew meanwhile)."""
        ...

    def changes(self, facts: list[Fact], since: int, stream_time: int) -> Changes | None:
        """What turns the contributions at `since` of the facts before the one just added
        (what the state applied) into those at `stream_time`: (turns, gone, added), to the same
        effect as the difference of the whole lists; None when not known (that was not the
        rules' last answer for this list: it was read anew). The answer at `stream_time` is
        the last one from then on."""
        ...

    def answer(self, facts: list[Fact], stream_time: int) -> None:
        """Make the answer at `stream_time` the last one for the list (a list just kept in
        place of another, with the same answer): what the next `changes` starts from."""
        ...
