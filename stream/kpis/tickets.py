"""Support KPIs of a ticket (docs/semantics.md, "Tickets").

Every `ticket_solved` is a resolution sample, measured from the ticket's earliest `ticket_opened`,
in the bucket of the solve; the earliest public reply is the first-response sample; each solve is
also judged for first-contact resolution; reopens are counted; and an open ticket adds one to the
live backlog and to the backlog age (its age bin, its opening time for the mean and the oldest).
Samples are recomputed from all of the ticket's facts, so a solve that arrives before its opening
becomes a sample when the opening arrives.

An open ticket is never forgotten, however long it is idle. A closed ticket is forgotten once past
grace; a solved one (which may still be reopened) after `retention` without events.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from stream.contract.events import Event
from stream.kpis import segment_name, shared
from stream.state.facts import NOW, OVERALL, Contribution, Fact, Segments
from stream.state.measures import AGE_BOUNDS_MS
from stream.state.segments import UNKNOWN, SegmentNames
from stream.state.windows import bucket_end

OPENED, AGENT_REPLY, CUSTOMER_REPLY, SOLVED, REOPENED, CLOSED = "o", "a", "c", "s", "r", "x"
_KIND = {
    "ticket_opened": OPENED,
    "agent_replied": AGENT_REPLY,
    "customer_replied": CUSTOMER_REPLY,
    "ticket_solved": SOLVED,
    "ticket_reopened": REOPENED,
    "ticket_closed": CLOSED,
}
# fact = (t, 0, event_id, kind, data); data: [team, priority, channel, region] for an opening,
# the `public` flag for an agent reply, None otherwise.
_T, _KIND_AT, _DATA = 0, 3, 4
DIMENSIONS = ("team", "priority", "channel", "region")
#: The backlog age is kept per team and per priority (and overall).
AGE_DIMENSIONS = ("team", "priority")


class TicketRules:
    """KPI rules of the `tickets` topic."""

    topic = "tickets"
    dimensions = DIMENSIONS

    def __init__(self, *, step_ms: int, grace_ms: int, retention_ms: int) -> None:
        self.step_ms = step_ms
        self.grace_ms = grace_ms
        self.retention_ms = retention_ms

    def fact(self, event: Event, names: SegmentNames) -> Fact:
        kind = _KIND[event.type]
        data: object = None
        if kind == OPENED:
            data = [segment_name(names, d, event.body) for d in DIMENSIONS]
        elif kind == AGENT_REPLY:
            data = bool(event.body.get("public", True))
        return (event.t, 0, event.event_id, kind, data)

    def contributions(self, facts: list[Fact], stream_time: int) -> list[Contribution]:
        opening = next((f for f in facts if f[_KIND_AT] == OPENED), None)
        if opening is None:
            return []
        opened = opening[_T]
        segments: Segments = shared(
            (
                OVERALL,
                *(
                    (d, v if v is not None else UNKNOWN)
                    for d, v in zip(DIMENSIONS, opening[_DATA], strict=True)
                ),
            )
        )
        out: list[Contribution] = []
        public_replies = reopens = 0
        for fact in facts:  # in event-time order: each solve is judged by what came before it
            kind, t = fact[_KIND_AT], fact[_T]
            if kind == AGENT_REPLY and fact[_DATA]:
                if public_replies == 0:
                    out.append((t, "first_response", segments, max(0, t - opened)))
                public_replies += 1
            elif kind == REOPENED:
                reopens += 1
                out.append((t, "ticket_reopens", segments, 1))
            elif kind == SOLVED:
                out.append((t, "resolution", segments, max(0, t - opened)))
                out.append((t, "ticket_solves", segments, 1))
                if public_replies <= 1 and reopens == 0:
                    out.append((t, "first_contact_solves", segments, 1))
        if _is_open(facts):
            by_age: Segments = shared(segments[:3])  # overall, team, priority
            out.append((NOW, "open_tickets", segments, 1))
            out.append((NOW, "backlog_age", by_age, age_bin(stream_time - opened)))
            out.append((NOW, "backlog_opened", by_age, opened))
        return out

    def _forget_at(self, facts: list[Fact]) -> int | None:
        """A closed ticket is forgotten once past grace, a solved one (or one whose opening never
        came) after the retention; an open ticket never."""
        last = facts[-1][_T]
        if any(f[_KIND_AT] == CLOSED for f in facts):
            return min(last + self.retention_ms, bucket_end(last, self.step_ms) + self.grace_ms + 1)
        if _is_open(facts):
            return None
        return last + self.retention_ms

    def next_due(self, facts: list[Fact], stream_time: int) -> int | None:
        """When the ticket is forgotten, or an open one's age passes the next bound."""
        if not facts:
            return None
        forget = self._forget_at(facts)
        if forget is not None:
            return forget
        opened = next(f[_T] for f in facts if f[_KIND_AT] == OPENED)
        bin_ = age_bin(stream_time - opened)
        return opened + AGE_BOUNDS_MS[bin_] + 1 if bin_ < len(AGE_BOUNDS_MS) else None

    def keep(self, facts: list[Fact], stream_time: int) -> list[Fact]:
        if not facts:
            return []
        forget = self._forget_at(facts)
        return facts if forget is None or stream_time < forget else []

    def decided(self, key: str, facts: list[Fact], kept: list[Fact]) -> list[Any]:
        """Nothing of a ticket is sent on to another partition."""
        return []


def _is_open(facts: list[Fact]) -> bool:
    """Opened (and seen opened) and not solved or closed since, by its latest status event."""
    status = [f[_KIND_AT] for f in facts if f[_KIND_AT] in (OPENED, REOPENED, SOLVED, CLOSED)]
    has_opening = any(f[_KIND_AT] == OPENED for f in facts)
    return has_opening and status[-1] in (OPENED, REOPENED)


def age_bin(age_ms: int) -> int:
    """The backlog-age bin of an age: the first bound it does not exceed (len: +Inf)."""
    return bisect_left(AGE_BOUNDS_MS, age_ms)
