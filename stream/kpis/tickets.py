"""Support KPIs of a ticket (docs/semantics.md, "Tickets").

Every `ticket_solved` is a resolution sample, measured from the ticket's earliest `ticket_opened`,
in the bucket of the solve; the earliest public reply is the first-response sample; each solve is
also judged for first-contact resolution; reopens are counted; and an open ticket adds one to the
live backlog and to the backlog age (its age bin, its opening time for the mean and the oldest).
Samples are recomputed from all of the ticket's facts, so a solve that arrives before its opening
becomes a sample when the opening arrives.

An open ticket is never forgotten, however long it is idle. A closed ticket is forgotten once past
grace. A solved one may still be reopened: once past grace its facts give way to a compact memory
(its opening time and segments, its public replies and reopens so far) kept for `retention` after
its last event, which is never shorter than the longest window plus grace, so that a reopen, and
the replies and solves after it, are measured exactly in every window.
"""

from __future__ import annotations

import struct
from bisect import bisect_left
from typing import Any

from stream.contract.events import Event
from stream.kpis import segment_name, shared
from stream.state.facts import NOW, OVERALL, Contribution, Fact, Segments
from stream.state.measures import AGE_BOUNDS_MS
from stream.state.segments import UNKNOWN, SegmentNames
from stream.state.windows import bucket_end

OPENED, AGENT_REPLY, CUSTOMER_REPLY, SOLVED, REOPENED, CLOSED = "o", "a", "c", "s", "r", "x"
#: What a remembered ticket's facts came to: it stands for an opening and a solve.
SUMMARY = "m"
#: The kinds that set a ticket's status; the latest decides whether it is open.
_STATUS = frozenset((OPENED, REOPENED, SOLVED, CLOSED, SUMMARY))
_KIND = {
    "ticket_opened": OPENED,
    "agent_replied": AGENT_REPLY,
    "customer_replied": CUSTOMER_REPLY,
    "ticket_solved": SOLVED,
    "ticket_reopened": REOPENED,
    "ticket_closed": CLOSED,
}
# fact = (t, 0, event_id, kind, data); data: [team, priority, channel, region] for an opening,
# the `public` flag for an agent reply, [opened, public replies, reopens, team, priority,
# channel, region] for a summary (t: the last event's), None otherwise.
_T, _KIND_AT, _DATA = 0, 3, 4
#: A summary's payload: opening time, public replies, reopens; then each segment name.
_HEAD, _NAME = struct.Struct(">qII"), struct.Struct(">H")
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
        opening = _opening(facts)
        if opening is None:
            return []
        opened, public_replies, reopens, names = opening
        segments: Segments = shared(
            (
                OVERALL,
                *((d, UNKNOWN if v is None else v) for d, v in zip(DIMENSIONS, names, strict=True)),
            )
        )
        out: list[Contribution] = []
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
        """When the facts go: a closed ticket's, and a solved one's (then remembered), once past
        grace; those of a ticket whose opening never came after the retention; an open
        ticket's never."""
        if _is_open(facts):  # also when reopened after a close
            return None
        last = facts[-1][_T]
        past_grace = bucket_end(last, self.step_ms) + self.grace_ms + 1
        if any(f[_KIND_AT] == CLOSED for f in facts):
            return min(last + self.retention_ms, past_grace)
        return past_grace if _has_opening(facts) else last + self.retention_ms

    def next_due(self, facts: list[Fact], stream_time: int) -> int | None:
        """When the ticket is forgotten, or an open one's age passes the next bound."""
        if not facts:
            return None
        forget = self._forget_at(facts)
        if forget is not None:
            return forget
        opening = _opening(facts)
        assert opening is not None  # only an opened ticket is open
        opened = opening[0]
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

    def remember(self, facts: list[Fact]) -> tuple[int, bytes] | None:
        """A solved ticket, for the retention after its last event: what its samples after a
        reopen need (a closed ticket, or one never seen opened, is not remembered)."""
        opening = _opening(facts)
        if opening is None or any(f[_KIND_AT] == CLOSED for f in facts):
            return None
        opened, replies, reopens, names = opening
        for fact in facts:
            kind = fact[_KIND_AT]
            replies += kind == AGENT_REPLY and bool(fact[_DATA])
            reopens += kind == REOPENED
        encoded = [(UNKNOWN if name is None else name).encode() for name in names]
        payload = _HEAD.pack(opened, replies, reopens)
        payload += b"".join(_NAME.pack(len(raw)) + raw for raw in encoded)
        return facts[-1][_T] + self.retention_ms, payload

    def recall(self, until: int, payload: bytes) -> list[Fact]:
        """The summary fact of a remembered ticket, at its last event's time."""
        data: list[Any] = list(_HEAD.unpack_from(payload))
        at = _HEAD.size
        while at < len(payload):
            (size,) = _NAME.unpack_from(payload, at)
            at += _NAME.size + size
            data.append(payload[at - size : at].decode())
        return [(until - self.retention_ms, 0, "", SUMMARY, data)]


def _opening(facts: list[Fact]) -> tuple[int, int, int, list[str | None]] | None:
    """(opening time, public replies, reopens, segment names) that the ticket's facts start from:
    its earliest opening's, or a summary's (which sorts before every other fact)."""
    opening = next((f for f in facts if f[_KIND_AT] in (OPENED, SUMMARY)), None)
    if opening is None:
        return None
    if opening[_KIND_AT] == SUMMARY:
        opened, replies, reopens, *names = opening[_DATA]
        return opened, replies, reopens, names
    return opening[_T], 0, 0, opening[_DATA]


def _has_opening(facts: list[Fact]) -> bool:
    return any(f[_KIND_AT] in (OPENED, SUMMARY) for f in facts)


def _is_open(facts: list[Fact]) -> bool:
    """Opened (and seen opened) and not solved or closed since, by its latest status event (a
    summary stands for a solve). One pass: this runs at every evaluation of a ticket."""
    opened = False
    latest = None
    for fact in facts:
        kind = fact[_KIND_AT]
        if kind in _STATUS:
            latest = kind
            opened = opened or kind in (OPENED, SUMMARY)
    return opened and latest in (OPENED, REOPENED)


def age_bin(age_ms: int) -> int:
    """The backlog-age bin of an age: the first bound it does not exceed (len: +Inf)."""
    return bisect_left(AGE_BOUNDS_MS, age_ms)
