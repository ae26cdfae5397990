"""Engagement: active users, new users, sessions, bounce, time to value, activation and feature
adoption (docs/semantics.md, "Engagement"), from the `activity` topic, whose entity is the user.

**Distinct active users, exactly, at O(1) state work per event.** A user adds one sample per
segment key (overall, its channel, its region; its features to `feature_users`) to a single
bucket: the last *closed* bucket in which it was active. Every window of a resolution ends at
the same bucket (the last closed one) and starts at its own, so a user was active in a window
exactly when that last bucket lies in the window, and the window's sum of those samples is its
distinct count, whatever its size. A new event moves the sample (one subtraction, one addition;
both inside every window that holds either leave the windows' totals as they were); a window
that slides past the bucket drops the users last seen there, who were active in no later bucket.
The last closed bucket differs per step (1 m for the short windows, 1 h for the long ones), so
the samples are resolution-specific measures (`active_users@b`, `active_users@l`: see
stream/state/measures.py), and a user active in the open bucket is evaluated again when that
bucket closes (a timer, once per user per step it was active in). A user lives in one partition
(the record key), so partition counts add up to the fleet's.

**Compact.** Facts past grace can no longer be joined by an earlier event, so they are folded into
one summary fact per user (`_Summary`: per segment key the last time seen and the last one in an
earlier long-step bucket, the sign-up, whether value was reached and activation judged) and one
prefix fact per open session; once nothing is open, the user is forgotten into a memory of a few
dozen bytes (stream/state/memories.py) kept for `retention` after its last event, whose samples
stay in the buckets. A recalled memory is a *baseline*: what it says is already counted, so the
user's contributions are then the difference to it (move the sample from the remembered bucket).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from stream.contract.events import Event
from stream.kpis import segment_name, shared
from stream.state.facts import OVERALL, Contribution, Fact, Segments
from stream.state.segments import UNKNOWN, SegmentNames
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
_T, _KIND_AT, _CHANNEL, _REGION, _FEATURE, _SESSION, _EXTRA = 0, 3, 4, 5, 6, 7, 8
#: The distinct counts: users active (any event), users of features (feature_used).
ACTIVE, FEATURES = "active_users", "feature_users"
#: A segment key of a distinct count: (measure, dimension, segment).
Key = tuple[str, str, str]
#: How a memory spells measures and dimensions, in a letter.
_MEASURE = {ACTIVE: "a", FEATURES: "f"}
_DIMENSION = {"": "", "channel": "c", "region": "r", "feature": "f"}
_MEASURE_OF = {v: k for k, v in _MEASURE.items()}
_DIMENSION_OF = {v: k for k, v in _DIMENSION.items()}


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


@dataclass
class _Summary:
    """What the facts past grace leave of a user."""

    #: key -> [last time seen, last time seen in an earlier long-step bucket, or None]
    seen: dict[Key, list[Any]] = field(default_factory=dict)
    #: key -> the time whose buckets a recalled memory's samples are in (already counted)
    base: dict[Key, int] = field(default_factory=dict)
    signup: list[Any] | None = None  # [t, channel, region] of the earliest sign-up
    reached: int | None = None  # its first value_reached at or after the sign-up
    judged: bool = False  # its activation outcome is in the buckets for good

    @classmethod
    def of(cls, facts: list[Fact]) -> _Summary:
        if not facts or facts[0][_KIND_AT] != SUMMARY:
            return cls()
        seen, base, signup, reached, judged = facts[0][_EXTRA]
        return cls(
            {(m, d, s): [a, b] for m, d, s, a, b in seen},
            {(m, d, s): t for m, d, s, t in base},
            list(signup) if signup is not None else None,
            reached,
            judged,
        )

    def fact(self) -> Fact:
        seen = [[*key, a, b] for key, (a, b) in sorted(self.seen.items())]
        base = [[*key, t] for key, t in sorted(self.base.items())]
        extra = [seen, base, self.signup, self.reached, self.judged]
        return (0, -1, "", SUMMARY, None, None, None, None, extra)

    def last(self) -> int | None:
        """The latest time the user was seen, of the facts folded."""
        return max((a for a, _ in self.seen.values()), default=None)


@dataclass
class _Run:
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
        return _segments(self.channel, self.region)


def _segments(channel: str | None, region: str | None) -> Segments:
    return shared((OVERALL, ("channel", channel or UNKNOWN), ("region", region or UNKNOWN)))


def split_runs(facts: list[Fact], timeout_ms: int) -> list[_Run]:
    """The sessions among a user's facts sorted by time: per session id, a new one after an end
    or a gap of the timeout; a prefix fact stands for the start of its session."""
    runs: list[_Run] = []
    current: dict[str, _Run] = {}
    for fact in facts:
        session = fact[_SESSION]
        if session is None:
            continue
        run = current.get(session)
        if run is None or run.ended or fact[_T] - run.last >= timeout_ms:
            run = current[session] = _Run(fact[_T], fact[_T])
            runs.append(run)
        run.add(fact)
    return runs


class EngagementRules:
    """KPI rules of the `activity` topic (the `Rules` of stream/state/facts.py)."""

    topic = TOPIC
    dimensions = ("channel", "region", "feature")

    def __init__(
        self,
        *,
        step_ms: int,
        grace_ms: int,
        long_step_ms: int | None,
        timeout_ms: int,
        period_ms: int,
        retention_ms: int,
    ) -> None:
        self.step_ms = step_ms
        self.grace_ms = grace_ms
        #: the steps the distinct counts are kept at, with their resolution's kind
        long = long_step_ms is not None and long_step_ms != step_ms
        self.steps = [("b", step_ms)] + ([("l", long_step_ms)] if long else [])
        self.timeout_ms = timeout_ms
        self.period_ms = period_ms
        self.retention_ms = retention_ms

    def fact(self, event: Event, names: SegmentNames) -> Fact:
        kind = _KIND[event.type]
        body = event.body
        return (
            event.t,
            1 if kind == END else 0,
            event.event_id,
            kind,
            segment_name(names, "channel", body),
            segment_name(names, "region", body),
            segment_name(names, "feature", body),
            body.get("session_id"),
            None,
        )

    def _settled(self, t: int, stream_time: int) -> bool:
        """From this stream time on, an event at or before t is late."""
        return stream_time >= self._forget_at(t)

    def _forget_at(self, t: int) -> int:
        return bucket_end(t, self.step_ms) + self.grace_ms + 1

    # -- contributions --------------------------------------------------------------------------

    def contributions(self, facts: list[Fact], stream_time: int) -> list[Contribution]:
        summary = _Summary.of(facts)
        raw = [f for f in facts if f[_KIND_AT] not in (SUMMARY, PREFIX)]
        out = self._distinct(summary, raw, stream_time)
        for fact in raw:
            if fact[_KIND_AT] == SIGNUP:
                out.append((fact[_T], "new_users", _segments(fact[_CHANNEL], fact[_REGION]), 1))
        for run in split_runs(facts, self.timeout_ms):
            out.extend(self._session(run, stream_time))
        out.extend(self._value(summary, raw, stream_time))
        return out

    def _distinct(self, summary: _Summary, raw: list[Fact], now: int) -> list[Contribution]:
        """Per key and step, one sample in the last closed bucket the user was active in, less
        the remembered one (a recalled baseline) where that is another bucket."""
        opens = [now - now % step for _, step in self.steps]  # the open buckets' starts
        latest: dict[Key, list[int | None]] = {}
        for key, times in summary.seen.items():
            latest[key] = [
                max((t for t in times if t is not None and t < o), default=None) for o in opens
            ]
        for fact in raw:
            t = fact[_T]
            for key in keys_of(fact):
                best = latest.get(key)
                if best is None:
                    best = latest[key] = [None] * len(opens)
                for i, o in enumerate(opens):
                    if t < o and (best[i] is None or t > best[i]):  # type: ignore[operator]
                        best[i] = t
        out: list[Contribution] = []
        for i, (kind, step) in enumerate(self.steps):
            for key, best in latest.items():
                t = best[i]
                at = None if t is None else t - t % step
                base = summary.base.get(key)
                was = None if base is None else base - base % step
                if at == was:
                    continue
                measure, dim, seg = key
                segments = shared(((dim, seg),))
                if at is not None:
                    out.append((at, f"{measure}@{kind}", segments, 1))
                if was is not None:
                    out.append((was, f"{measure}@{kind}", segments, -1))
        return out

    def _session(self, run: _Run, now: int) -> list[Contribution]:
        """A session's outcome, at its end or at last event + timeout."""
        if run.ended:
            at = run.last
        elif now >= run.last + self.timeout_ms:
            at = run.last + self.timeout_ms
        else:
            return []
        segments = run.segments()
        out: list[Contribution] = [
            (at, "sessions", segments, 1),
            (at, "session_duration", segments, run.last - run.first),
        ]
        if run.pages:
            out.append((at, "session_pages", segments, run.pages))
        if run.pages <= 1 and not run.features:
            out.append((at, "session_bounces", segments, 1))
        return out

    def _signup(self, summary: _Summary, raw: list[Fact]) -> list[Any] | None:
        """[t, channel, region] of the user's earliest sign-up."""
        signups = [[f[_T], f[_CHANNEL], f[_REGION]] for f in raw if f[_KIND_AT] == SIGNUP]
        if summary.signup is not None:
            signups.append(summary.signup)
        return min(signups, key=lambda s: s[0]) if signups else None

    def _value(self, summary: _Summary, raw: list[Fact], now: int) -> list[Contribution]:
        """Time to value (at the first value_reached at or after the sign-up) and the
        activation outcome (at sign-up + period)."""
        signup = self._signup(summary, raw)
        if signup is None:
            return []
        since = signup[0]
        values = [f for f in raw if f[_KIND_AT] == VALUE and f[_T] >= since]
        first = min(values, default=None)
        out: list[Contribution] = []
        if summary.reached is None and first is not None:
            segments = _segments(first[_CHANNEL], first[_REGION])
            out.append((first[_T], "time_to_value", segments, first[_T] - since))
        due = since + self.period_ms
        if not summary.judged and now >= due:
            segments = _segments(signup[1], signup[2])
            out.append((due, "activation_signups", segments, 1))
            reached = [t for t in (summary.reached, first and first[_T]) if t is not None]
            if any(since <= t <= due for t in reached):
                out.append((due, "activation_activated", segments, 1))
        return out

    # -- time -----------------------------------------------------------------------------------

    def next_due(self, facts: list[Fact], stream_time: int) -> int | None:
        """Where a raw fact settles (folded), a bucket with the user's latest event closes (its
        sample moves), a session times out or settles, activation is judged or settles."""
        summary = _Summary.of(facts)
        raw = [f for f in facts if f[_KIND_AT] not in (SUMMARY, PREFIX)]
        due = [self._forget_at(f[_T]) for f in raw]
        latest = max((f[_T] for f in raw), default=None)
        if latest is not None:
            due += [(latest // step + 1) * step for _, step in self.steps]
        last = summary.last()
        if last is not None:
            due += [(last // step + 1) * step for _, step in self.steps]
        for run in split_runs(facts, self.timeout_ms):
            final = run.last if run.ended else run.last + self.timeout_ms
            due += [final, self._forget_at(final)]
        signup = self._signup(summary, raw)
        if signup is not None and not summary.judged:
            due += [signup[0] + self.period_ms, self._forget_at(signup[0] + self.period_ms)]
        return min((d for d in due if d > stream_time), default=None)

    def keep(self, facts: list[Fact], stream_time: int) -> list[Fact]:
        """Facts past grace folded into the summary and their sessions' prefixes; nothing once
        no session is open, activation is judged and every sample sits where it stays."""
        now = stream_time
        summary = _Summary.of(facts)
        raw = [f for f in facts if f[_KIND_AT] not in (SUMMARY, PREFIX)]
        self._fold(summary, [f for f in raw if self._settled(f[_T], now)])
        self._judge(summary, raw, now)
        kept: list[Fact] = []
        for run in split_runs(facts, self.timeout_ms):
            final = run.last if run.ended else run.last + self.timeout_ms
            if now >= final and self._settled(final, now):
                continue  # its outcome stands for good
            kept.extend(self._compact(run, now))
        kept.extend(f for f in raw if not self._settled(f[_T], now) and f[_SESSION] is None)
        kept.sort()
        last = summary.last()
        if last is None:  # nothing past grace yet
            return kept
        done = not kept and (summary.signup is None or summary.judged)
        if done and all(now >= (last // step + 1) * step for _, step in self.steps):
            return []
        return [summary.fact(), *kept]

    def _judge(self, summary: _Summary, raw: list[Fact], now: int) -> None:
        """Mark the activation outcome final once a value_reached that could change it is late
        (its sample then stays in its bucket)."""
        signup = self._signup(summary, raw)
        if signup is not None and self._settled(signup[0] + self.period_ms, now):
            summary.judged = True

    def _fold(self, summary: _Summary, settled: list[Fact]) -> None:
        """Fold facts past grace into the summary, in time order."""
        long = self.steps[-1][1]
        for fact in sorted(settled, key=lambda f: (f[_T], f[_KIND_AT] != SIGNUP)):
            t = fact[_T]
            for key in keys_of(fact):
                seen = summary.seen.setdefault(key, [t, None])
                last, prev = seen
                if t // long > last // long:
                    seen[:] = [t, last]
                elif t // long == last // long:
                    seen[0] = max(t, last)
                elif prev is None or t > prev:
                    seen[1] = t
            kind = fact[_KIND_AT]
            if kind == SIGNUP and (summary.signup is None or t < summary.signup[0]):
                summary.signup = [t, fact[_CHANNEL], fact[_REGION]]
            elif kind == VALUE and summary.reached is None and summary.signup is not None:
                summary.reached = t if t >= summary.signup[0] else None

    def _compact(self, run: _Run, now: int) -> list[Fact]:
        """An open session's facts, those past grace as one prefix fact."""
        settled = [f for f in run.facts if self._settled(f[_T], now)]
        if len(settled) <= 1 and (not settled or settled[0][_KIND_AT] == PREFIX):
            return run.facts
        prefix = _Run(settled[0][_T], settled[0][_T])
        for fact in settled:
            prefix.add(fact)
        session = settled[0][_SESSION]
        extra = [prefix.first, prefix.pages, prefix.features]
        head = (prefix.last, 0, "", PREFIX, prefix.channel or "", prefix.region or "", None)
        return [(*head, session, extra), *run.facts[len(settled) :]]

    # -- memory ---------------------------------------------------------------------------------

    def remember(self, facts: list[Fact]) -> tuple[int, bytes] | None:
        """A forgotten user's last bucket per key and its sign-up, for `retention` after its
        last event: a later event moves its samples from there, and finds its sign-up. Compact
        JSON: [last step, [[measure, dimension, segment, steps before]...], sign-up, reached]."""
        summary = _Summary.of(facts)
        self._fold(summary, [f for f in facts if f[_KIND_AT] not in (SUMMARY, PREFIX)])
        last = summary.last()
        if last is None:
            return None
        step, at = self.step_ms, last // self.step_ms
        seen = [
            [_MEASURE[m], _DIMENSION[d], s, at - a // step]
            for (m, d, s), (a, _) in summary.seen.items()
        ]
        payload = [at, seen, summary.signup, summary.reached is not None]
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        return last + self.retention_ms, text.encode()

    def recall(self, until: int, payload: bytes) -> list[Fact]:
        """The summary a remembered user starts again from: what it counted is the baseline."""
        at, seen, signup, reached = json.loads(payload)
        times = {
            (_MEASURE_OF[m], _DIMENSION_OF[d], s): (at - k) * self.step_ms for m, d, s, k in seen
        }
        summary = _Summary(
            {key: [t, None] for key, t in times.items()},
            times,
            signup,
            0 if reached else None,
            signup is not None,
        )
        return [summary.fact()]

    def decided(self, key: str, facts: list[Fact], kept: list[Fact]) -> list[Any]:
        return []
