"""A user's facts on the `activity` topic: their layout, the rules' durations, the segment keys
of the distinct counts, the summary of the facts past grace, the sessions among them and the
outcomes (a session's, time to value, activation) that the rules (stream/kpis/engagement.py)
and their reading of the facts (stream/kpis/user_reading.py) count."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter
from typing import Any

import orjson

from stream.kpis import shared
from stream.state.facts import OVERALL, Contribution, Fact, Segments
from stream.state.segments import UNKNOWN
from stream.state.windows import bucket_end

TOPIC = "activity"
SIGNUP, START, PAGE, FEATURE, VALUE, END = "u", "s", "p", "f", "v", "e"
#: The fact that summarises a user's facts past grace (first), and an open session's past grace.
SUMMARY, PREFIX = "S", "P"
_KIND = {
    "signed_up": SIGNUP,
    "session_started": START,
    "page_viewed": PAGE,
    "feature_used": FEATURE,
    "value_reached": VALUE,
    "session_ended": END,
}
# fact = (t, rank, event_id, kind, channel, region, feature, session, extra); extra: None, the
# summary's [seen, base, signup, reached, judged] or a prefix's [first, pages, features]
_T, _EVENT_ID, _KIND_AT, _CHANNEL, _REGION, _FEATURE, _SESSION, _EXTRA = 0, 2, 3, 4, 5, 6, 7, 8
#: A fact's time: a user's raw facts are in time order, so a time's place among them is a bisection.
time_of = itemgetter(_T)
#: The distinct counts: users active (any event), users of features (feature_used).
ACTIVE, FEATURES = "active_users", "feature_users"
#: A segment key of a distinct count: (measure, dimension, segment).
Key = tuple[str, str, str]
#: Before any stream time: what is counted from this time on is counted always.
ALWAYS = -(2**62)
#: An outcome: (from which stream time it counts, its samples).
Timed = tuple[int, list[Contribution]]
#: How a memory spells measures and dimensions, in a letter.
MEASURE = {ACTIVE: "a", FEATURES: "f"}
DIMENSION = {"": "", "channel": "c", "region": "r", "feature": "f"}
MEASURE_OF = {v: k for k, v in MEASURE.items()}
DIMENSION_OF = {v: k for k, v in DIMENSION.items()}


def keys_of(fact: Fact) -> tuple[Key, ...]:
    """The distinct-count keys an event counts the user in."""
    used = fact[_KIND_AT] == FEATURE
    return _keys(fact[_CHANNEL], fact[_REGION], fact[_FEATURE] if used else None, used)


@lru_cache(maxsize=4096)
def _keys(
    channel: str | None, region: str | None, feature: str | None, used: bool
) -> tuple[Key, ...]:
    """One tuple per combination of (bounded) segment names: built once, not per evaluation."""
    keys: tuple[Key, ...] = (
        (ACTIVE, "", ""),
        (ACTIVE, "channel", channel or UNKNOWN),
        (ACTIVE, "region", region or UNKNOWN),
    )
    if used:
        keys += ((FEATURES, "", ""), (FEATURES, "feature", feature or UNKNOWN))
    return keys


@dataclass(frozen=True, slots=True)
class Timing:
    """The engagement rules' durations, in ms."""

    step_ms: int
    grace_ms: int
    steps: tuple[tuple[str, int], ...]  # the steps of the distinct counts, with their kind
    timeout_ms: int
    period_ms: int

    def forget_at(self, t: int) -> int:
        """From this stream time on, an event at or before t is late."""
        return bucket_end(t, self.step_ms) + self.grace_ms + 1

    def unsettled_from(self, now: int) -> int:
        """The earliest time not yet settled at stream time `now`: t < this exactly when
        now >= forget_at(t) (both follow t's bucket)."""
        return (now - self.grace_ms - 1) // self.step_ms * self.step_ms


@dataclass
class Summary:
    """What the facts past grace leave of a user. In the fact it is compact JSON text (a few
    dozen bytes a key, where nested lists cost a few hundred): the latest time seen in ms, then
    per key the times as seconds before it (a time cut to its second stays in its bucket, as
    every step is whole seconds)."""

    #: key -> [last time seen, last time seen in an earlier long-step bucket, or None]
    seen: dict[Key, list[Any]] = field(default_factory=dict)
    #: key -> the time whose buckets a recalled memory's samples are in (already counted)
    base: dict[Key, int] = field(default_factory=dict)
    signup: list[Any] | None = None  # [t, channel, region] of the earliest sign-up
    reached: int | None = None  # its first value_reached at or after the sign-up
    judged: bool = False  # its activation outcome is in the buckets for good
    latest: int | None = None  # the latest time seen, exactly (ms)

    def own(self) -> Summary:
        """A copy of a summary read, its own to fold more into (folding replaces a key's times
        and the sign-up, never changes them in place: they are shared)."""
        return Summary(
            dict(self.seen), dict(self.base), self.signup, self.reached, self.judged, self.latest
        )

    @classmethod
    def read(cls, facts: list[Fact]) -> Summary:
        """The summary of a user's facts, not to be changed: one per text, parsed once."""
        if not facts or facts[0][_KIND_AT] != SUMMARY:
            return cls()
        return _parsed(facts[0][_EXTRA])

    def fact(self) -> Fact:
        latest = self.last()
        assert latest is not None
        zero = latest - latest % 1000

        def back(t: int | None) -> int | None:
            return None if t is None else (zero - (t - t % 1000)) // 1000

        seen = [
            [MEASURE[m], DIMENSION[d], s, back(a), back(b)]
            for (m, d, s), (a, b) in sorted(self.seen.items())
        ]
        base = [
            [MEASURE[m], DIMENSION[d], s, back(t)] for (m, d, s), t in sorted(self.base.items())
        ]
        extra = [latest, seen, base, self.signup, self.reached, self.judged]
        text = orjson.dumps(extra).decode()
        return (0, -1, "", SUMMARY, None, None, None, None, text)

    def last(self) -> int | None:
        """The latest time the user was seen, of the facts folded."""
        if self.latest is not None:
            return self.latest
        return max((a for a, _ in self.seen.values()), default=None)


@lru_cache(maxsize=1024)
def _parsed(text: str) -> Summary:
    """A summary fact's text, parsed once per user evaluated lately, not per list of its facts
    read (shared: not to be changed)."""
    latest, seen, base, signup, reached, judged = orjson.loads(text)
    zero = latest - latest % 1000

    def at(back: int | None) -> int | None:
        return None if back is None else zero - back * 1000

    return Summary(
        {(MEASURE_OF[m], DIMENSION_OF[d], s): [at(a), at(b)] for m, d, s, a, b in seen},
        {(MEASURE_OF[m], DIMENSION_OF[d], s): at(t) for m, d, s, t in base},
        signup,
        reached,
        judged,
        latest,
    )


@dataclass
class Run:
    """One session: consecutive events of a session id without a timeout gap, up to its end."""

    first: int
    last: int
    pages: int = 0
    features: int = 0
    channel: str | None = None
    region: str | None = None
    ended: bool = False
    facts: list[Fact] = field(default_factory=list)

    def add(self, fact: Fact) -> None:
        self.facts.append(fact)
        kind = fact[_KIND_AT]
        if kind == PREFIX:
            first, pages, features = fact[_EXTRA]
            self.first, self.pages, self.features = first, pages, features
        else:
            self.pages += kind == PAGE
            self.features += kind == FEATURE
            self.ended = kind == END
        self.last = fact[_T]
        self.channel = self.channel or fact[_CHANNEL] or None
        self.region = self.region or fact[_REGION] or None

    def segments(self) -> Segments:
        return segments_of(self.channel, self.region)

    def final(self, timeout_ms: int) -> int:
        """When its outcome is final: at its end, or at its last event + timeout."""
        return self.last if self.ended else self.last + timeout_ms


def earliest_signup(summary: Summary, raw: list[Fact]) -> list[Any] | None:
    """[t, channel, region] of the user's earliest sign-up, folded or not."""
    signups = [[f[_T], f[_CHANNEL], f[_REGION]] for f in raw if f[_KIND_AT] == SIGNUP]
    if summary.signup is not None:
        signups.append(summary.signup)
    return min(signups, key=lambda s: s[0]) if signups else None


def session_outcome(run: Run, timeout_ms: int) -> Timed:
    """A session's outcome, at its end or at last event + timeout (from then on)."""
    at = run.final(timeout_ms)
    segments = run.segments()
    out: list[Contribution] = [
        (at, "sessions", segments, 1),
        (at, "session_duration", segments, run.last - run.first),
    ]
    if run.pages:
        out.append((at, "session_pages", segments, run.pages))
    if run.pages <= 1 and not run.features:
        out.append((at, "session_bounces", segments, 1))
    return (ALWAYS if run.ended else at), out


def value_outcomes(
    summary: Summary, raw: list[Fact], signup: list[Any] | None, period_ms: int
) -> list[Timed]:
    """Time to value (at the first value_reached at or after the sign-up) and the activation
    outcome (at sign-up + period, from then on)."""
    if signup is None:
        return []
    since = signup[0]
    values = [f for f in raw if f[_KIND_AT] == VALUE and f[_T] >= since]
    first = min(values, default=None)
    out: list[Timed] = []
    if summary.reached is None and first is not None:
        segments = segments_of(first[_CHANNEL], first[_REGION])
        out.append((ALWAYS, [(first[_T], "time_to_value", segments, first[_T] - since)]))
    due = since + period_ms
    if not summary.judged:
        segments = segments_of(signup[1], signup[2])
        samples: list[Contribution] = [(due, "activation_signups", segments, 1)]
        reached = [t for t in (summary.reached, first and first[_T]) if t is not None]
        if any(since <= t <= due for t in reached):
            samples.append((due, "activation_activated", segments, 1))
        out.append((due, samples))
    return out


@lru_cache(maxsize=4096)
def segments_of(channel: str | None, region: str | None) -> Segments:
    """A user's segments: built once per (bounded) pair of names, not per evaluation."""
    return shared((OVERALL, ("channel", channel or UNKNOWN), ("region", region or UNKNOWN)))


_HEAD = struct.Struct(">qBB")  # last step, sign-up (0 none, 1 signed up, 2 and reached), keys
_KEY = struct.Struct(">BI")  # measure x dimension code, steps before the last


def _name(text: str | None) -> bytes:
    raw = b"" if text is None else text.encode()
    return struct.pack(">H", len(raw)) + raw


def _unname(payload: bytes, at: int) -> tuple[str | None, int]:
    (size,) = struct.unpack_from(">H", payload, at)
    at += 2
    return (payload[at : at + size].decode() or None), at + size


def pack_memory(
    at: int, seen: list[tuple[Key, int]], signup: list[Any] | None, reached: bool
) -> bytes:
    """A forgotten user: the step of its last event, per key the steps before it that its last
    bucket lies, its sign-up (time, channel, region) and whether it reached value. About 60
    bytes for a user on one channel and region who used a few features (JSON took 280)."""
    flag = 0 if signup is None else 2 if reached else 1
    out = [_HEAD.pack(at, flag, len(seen))]
    if signup is not None:
        out += [struct.pack(">q", signup[0]), _name(signup[1]), _name(signup[2])]
    for (measure, dim, seg), back in seen:
        code = _CODES.index((measure, dim))
        out += [_KEY.pack(code, back), _name(seg)]
    return b"".join(out)


def unpack_memory(
    payload: bytes,
) -> tuple[int, list[tuple[Key, int]], list[Any] | None, bool]:
    """The inverse of pack_memory."""
    at, flag, count = _HEAD.unpack_from(payload)
    pos = _HEAD.size
    signup: list[Any] | None = None
    if flag:
        (t,) = struct.unpack_from(">q", payload, pos)
        channel, pos = _unname(payload, pos + 8)
        region, pos = _unname(payload, pos)
        signup = [t, channel, region]
    seen: list[tuple[Key, int]] = []
    for _ in range(count):
        code, back = _KEY.unpack_from(payload, pos)
        seg, pos = _unname(payload, pos + _KEY.size)
        seen.append(((*_CODES[code], seg or ""), back))
    return at, seen, signup, flag == 2


#: The (measure, dimension) pairs of the distinct counts, by their code in a memory.
_CODES = (
    (ACTIVE, ""),
    (ACTIVE, "channel"),
    (ACTIVE, "region"),
    (FEATURES, ""),
    (FEATURES, "feature"),
)
