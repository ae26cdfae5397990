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
one summary fact per user (`Summary`, stream/kpis/users.py: per segment key the last time seen and
the last one in an earlier long-step bucket, the sign-up, whether value was reached and activation
judged) and one prefix fact per open session; once nothing is open, the user is forgotten into a
memory of a few dozen bytes (stream/state/memories.py) kept for `retention` after its last event,
whose samples stay in the buckets. A recalled memory is a *baseline*: what it says is already
counted, so the user's contributions are then the difference to it (move the sample from the
remembered bucket).
"""

from __future__ import annotations

from typing import Any

from stream.contract.events import Event
from stream.kpis import segment_name
from stream.kpis.users import (
    _CHANNEL,
    _KIND,
    _KIND_AT,
    _REGION,
    _SESSION,
    _T,
    END,
    PREFIX,
    SIGNUP,
    SUMMARY,
    TOPIC,
    VALUE,
    Key,
    Run,
    Summary,
    keys_of,
    pack_memory,
    sample_of,
    segments_of,
    split_runs,
    unpack_memory,
)
from stream.state.facts import Contribution, Fact
from stream.state.segments import SegmentNames
from stream.state.windows import bucket_end


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
        summary = Summary.of(facts)
        raw = [f for f in facts if f[_KIND_AT] not in (SUMMARY, PREFIX)]
        out = self._distinct(summary, raw, stream_time)
        for fact in raw:
            if fact[_KIND_AT] == SIGNUP:
                out.append((fact[_T], "new_users", segments_of(fact[_CHANNEL], fact[_REGION]), 1))
        for run in split_runs(facts, self.timeout_ms):
            out.extend(self._session(run, stream_time))
        out.extend(self._value(summary, raw, stream_time))
        return out

    def _distinct(self, summary: Summary, raw: list[Fact], now: int) -> list[Contribution]:
        """Per key and step, one sample in the last closed bucket the user was active in, less
        the remembered one (a recalled baseline) where that is another bucket."""
        opens = [now - now % step for _, step in self.steps]  # the open buckets' starts
        latest: dict[Key, list[int | None]] = {}
        for key, (last, prev) in summary.seen.items():  # prev: in an earlier long bucket
            latest[key] = [last if last < o else prev for o in opens]
        combos: dict[tuple[Key, ...], list[int | None]] = {}  # facts with the same keys
        for fact in raw:
            t, combo = fact[_T], keys_of(fact)
            best = combos.get(combo)
            if best is None:
                best = combos[combo] = [None] * len(opens)
            for i, o in enumerate(opens):
                if t < o:  # raw facts come in time order: the later one wins
                    best[i] = t
        for combo, best in combos.items():
            for key in combo:
                known = latest.get(key)
                if known is None:
                    latest[key] = list(best)
                    continue
                for i, t in enumerate(best):
                    if t is not None and (known[i] is None or t > known[i]):  # type: ignore[operator]
                        known[i] = t
        out: list[Contribution] = []
        bases = summary.base
        for i, (kind, step) in enumerate(self.steps):
            for key, best in latest.items():
                t = best[i]
                at = None if t is None else t - t % step
                base = bases.get(key) if bases else None
                was = None if base is None else base - base % step
                if at == was:
                    continue
                measure, segments = sample_of(key, kind)
                if at is not None:
                    out.append((at, measure, segments, 1))
                if was is not None:
                    out.append((was, measure, segments, -1))
        return out

    def _session(self, run: Run, now: int) -> list[Contribution]:
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

    def _signup(self, summary: Summary, raw: list[Fact]) -> list[Any] | None:
        """[t, channel, region] of the user's earliest sign-up."""
        signups = [[f[_T], f[_CHANNEL], f[_REGION]] for f in raw if f[_KIND_AT] == SIGNUP]
        if summary.signup is not None:
            signups.append(summary.signup)
        return min(signups, key=lambda s: s[0]) if signups else None

    def _value(self, summary: Summary, raw: list[Fact], now: int) -> list[Contribution]:
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
            segments = segments_of(first[_CHANNEL], first[_REGION])
            out.append((first[_T], "time_to_value", segments, first[_T] - since))
        due = since + self.period_ms
        if not summary.judged and now >= due:
            segments = segments_of(signup[1], signup[2])
            out.append((due, "activation_signups", segments, 1))
            reached = [t for t in (summary.reached, first and first[_T]) if t is not None]
            if any(since <= t <= due for t in reached):
                out.append((due, "activation_activated", segments, 1))
        return out

    # -- time -----------------------------------------------------------------------------------

    def next_due(self, facts: list[Fact], stream_time: int) -> int | None:
        """Where a raw fact settles (folded), a bucket with the user's latest event closes (its
        sample moves), a session times out or settles, activation is judged or settles."""
        summary = Summary.of(facts)
        raw = [f for f in facts if f[_KIND_AT] not in (SUMMARY, PREFIX)]
        # raw facts are folded whenever the user is evaluated past their grace; the timer only
        # makes sure it happens once the latest is past it (one evaluation, not one per fact)
        due = [self._forget_at(raw[-1][_T])] if raw else []
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
        summary = Summary.of(facts)
        raw = [f for f in facts if f[_KIND_AT] not in (SUMMARY, PREFIX)]
        settled = [f for f in raw if self._settled(f[_T], now)]
        judged = summary.judged
        self._fold(summary, settled)
        self._judge(summary, raw, now)
        same = not settled and judged == summary.judged and facts[0][_KIND_AT] == SUMMARY
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
        return [facts[0] if same else summary.fact(), *kept]  # the same text: not written anew

    def _judge(self, summary: Summary, raw: list[Fact], now: int) -> None:
        """Mark the activation outcome final once a value_reached that could change it is late
        (its sample then stays in its bucket)."""
        signup = self._signup(summary, raw)
        if signup is not None and self._settled(signup[0] + self.period_ms, now):
            summary.judged = True

    def _fold(self, summary: Summary, settled: list[Fact]) -> None:
        """Fold facts past grace into the summary, in time order."""
        long = self.steps[-1][1]
        for fact in sorted(settled, key=lambda f: (f[_T], f[_KIND_AT] != SIGNUP)):
            t = fact[_T]
            summary.latest = t if summary.latest is None else max(summary.latest, t)
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

    def _compact(self, run: Run, now: int) -> list[Fact]:
        """An open session's facts, those past grace as one prefix fact."""
        settled = [f for f in run.facts if self._settled(f[_T], now)]
        if len(settled) <= 1 and (not settled or settled[0][_KIND_AT] == PREFIX):
            return run.facts
        prefix = Run(settled[0][_T], settled[0][_T])
        for fact in settled:
            prefix.add(fact)
        session = settled[0][_SESSION]
        extra = [prefix.first, prefix.pages, prefix.features]
        head = (prefix.last, 0, "", PREFIX, prefix.channel or "", prefix.region or "", None)
        return [(*head, session, extra), *run.facts[len(settled) :]]

    # -- memory ---------------------------------------------------------------------------------

    def remember(self, facts: list[Fact]) -> tuple[int, bytes] | None:
        """A forgotten user's last bucket per key and its sign-up, for `retention` after its
        last event: a later event moves its samples from there, and finds its sign-up
        (stream/kpis/users.py packs them in a few dozen bytes)."""
        summary = Summary.of(facts)
        self._fold(summary, [f for f in facts if f[_KIND_AT] not in (SUMMARY, PREFIX)])
        last = summary.last()
        if last is None:
            return None
        step, at = self.step_ms, last // self.step_ms
        seen = [(key, at - a // step) for key, (a, _) in summary.seen.items()]
        payload = pack_memory(at, seen, summary.signup, summary.reached is not None)
        return last + self.retention_ms, payload

    def recall(self, until: int, payload: bytes) -> list[Fact]:
        """The summary a remembered user starts again from: what it counted is the baseline."""
        at, seen, signup, reached = unpack_memory(payload)
        times = {key: (at - back) * self.step_ms for key, back in seen}
        summary = Summary(
            {key: [t, None] for key, t in times.items()},
            times,
            signup,
            0 if reached else None,
            signup is not None,
        )
        return [summary.fact()]

    def decided(self, key: str, facts: list[Fact], kept: list[Fact]) -> list[Any]:
        return []
