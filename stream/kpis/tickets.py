"""Support KPIs of a ticket (docs/semantics.md, "Tickets").

Every `ticket_solved` is a resolution sample, measured from the ticket's earliest `ticket_opened`,
in the bucket of the solve; the earliest public reply is the first-response sample; each solve is
also judged for first-contact resolution; reopens are counted; and an open ticket adds one to the
live backlog. Samples are recomputed from all of the ticket's facts, so a solve that arrives
before its opening becomes a sample when the opening arrives.
"""

from __future__ import annotations

from stream.contract.events import Event
from stream.kpis import segment_name, shared
from stream.state.facts import NOW, OVERALL, Contribution, Fact, Segments
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
        status = [f[_KIND_AT] for f in facts if f[_KIND_AT] in (OPENED, REOPENED, SOLVED, CLOSED)]
        if status[-1] in (OPENED, REOPENED):
            out.append((NOW, "open_tickets", segments, 1))
        return out

    def _forget_at(self, facts: list[Fact]) -> int:
        """A closed ticket is forgotten once past grace; any ticket after the retention."""
        last = facts[-1][_T]
        forget = last + self.retention_ms
        if any(f[_KIND_AT] == CLOSED for f in facts):
            forget = min(forget, bucket_end(last, self.step_ms) + self.grace_ms + 1)
        return forget

    def next_due(self, facts: list[Fact], stream_time: int) -> int | None:
        return self._forget_at(facts) if facts else None

    def keep(self, facts: list[Fact], stream_time: int) -> list[Fact]:
        return facts if facts and stream_time < self._forget_at(facts) else []
