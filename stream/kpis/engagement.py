"""Engagement: active users, new users, sessions, bounce, time to value, activation and feature
adoption (docs/semantics.md, "Engagement"), from the `activity` topic, whose entity is the user.

**Distinct active users, exactly, at O(1) state work per event.** A user adds one sample per
segment key (overall, its channel, its region; its features to `feature_users`; keys seen at
the same times share one sample: stream/kpis/key_classes.py) to a single bucket: the last
*closed* bucket in which it was active. Every window of a resolution ends at
the same bucket (the last closed one) and starts at its own, so a user was active in a window
exactly when that last bucket lies in the window, and the window's sum of those samples is its
distinct count, whatever its size; a window that slides past the bucket drops the users last
seen there, who were active in no later bucket. The sample sits in the bucket of the user's
latest event and, while that bucket is open, in the bucket of its latest earlier event as well
(a contribution's fifth element): both come from the facts alone, so nothing about the user
changes when the bucket closes, and the state takes the earlier samples of all the bucket's
users out at once then (stream/state/earlier.py), with no evaluation of each. A user's first
event in a new bucket adds a sample in the open bucket, whose windows are none; a late event in
an earlier bucket moves the held sample. The last closed bucket differs per step (1 m for the
short windows, 1 h for the long ones), so the samples are resolution-specific measures
(`active_users@b`, `active_users@l`: see stream/state/measures.py). A user lives in one
partition (the record key), so partition counts add up to the fleet's.

**Compact.** Facts past grace can no longer be joined by an earlier event, so they are folded
(once `FOLD` of them or half the list are, or all: stream/kpis/user_reading.py) into one summary
fact per user (`Summary`, stream/kpis/users.py: per segment key the last time seen and the last
one in an earlier long-step bucket, the sign-up, whether value was reached and activation
judged) and one prefix fact per open session; once nothing is open, the user is forgotten into
a memory of a few dozen bytes (stream/state/memories.py) kept for `retention` after its last
event, whose samples stay in the buckets. A recalled memory is a *baseline*: what it says is
already counted, so the user's contributions are then the difference to it (move the sample
from the remembered bucket).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import replace
from itertools import islice
from typing import Any

from stream.contract.events import Event
from stream.kpis import segment_name
from stream.kpis.user_reading import Folded, Reading
from stream.kpis.users import (
    _CHANNEL,
    _KIND,
    _KIND_AT,
    _REGION,
    _SESSION,
    _T,
    END,
    FEATURE,
    PAGE,
    PREFIX,
    SIGNUP,
    SUMMARY,
    TOPIC,
    VALUE,
    Key,
    Run,
    Summary,
    Timing,
    earliest_signup,
    keys_of,
    pack_memory,
    time_of,
    unpack_memory,
)
from stream.state.facts import Changes, Contribution, Fact
from stream.state.segments import SegmentNames

#: How many lists of facts are kept read: the users evaluated lately. A reading takes 2-11 kB
#: (a user with 28 facts in 6 sessions: 11 kB; on bench.cpu's activity log, whose users hold
#: 54 facts on average, 17 kB, p90 27 kB, of which the event ids' set 0.7 kB), so at most
#: about 40-110 MB; beyond that many users held at once by a worker, a user is read anew at
#: its evaluations (about twice the CPU).
READINGS = 4096


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
        self.timing = Timing(step_ms, grace_ms, tuple(self.steps), timeout_ms, period_ms)
        #: the lists of facts last read, by identity: an event's evaluations read a list 3-5 times
        self._readings: dict[int, Reading] = {}
        self._latest: Reading | None = None  # the one looked up last

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
        return t < self.timing.unsettled_from(stream_time)

    def _read(self, facts: list[Fact]) -> Reading:
        """The facts read: the list's reading of last time with the fact appended since taken
        in (`_kept_read`), or the list read anew."""
        reading = self._kept_read(facts)
        if reading is None:
            reading = self._latest = Reading(facts, self.timing)
            self._keep_reading(reading)
        return reading

    def _keep_reading(self, reading: Reading) -> None:
        """Keep a reading of the state's list, in place of any earlier one of it. With
        READINGS kept, the oldest kept goes first, unless it was looked up since it was kept or
        passed over: then it goes to the end, and is passed over once (a second chance, as a
        clock evicts pages: an OrderedDict's move to the end at each lookup touched three of
        its nodes per event, among thousands of users' cold ones). The reading being kept is
        never the one to go."""
        readings, key = self._readings, id(reading.facts)
        while len(readings) >= READINGS and key not in readings:
            oldest = next(iter(readings))
            passed = readings.pop(oldest)
            if passed.used:
                passed.used = False
                readings[oldest] = passed
        readings[key] = reading

    def _kept_read(self, facts: list[Fact]) -> Reading | None:
        """The list's reading of last time, with the fact appended since taken in; None if there
        is none, or the list changed in another way. A reading holds its list, so the list's
        identity finds it; and the state's list only grows in place (by `insort`), so its
        length and the fact before the new one tell an append: an event's five lookups of its
        user's reading cost no comparison of the lists (nor a dictionary's, but the first)."""
        reading = self._latest
        if reading is None or reading.facts is not facts:
            reading = self._readings.get(id(facts))
            if reading is None:
                return None
            reading.used = True
            self._latest = reading
        n = reading.taken
        size = len(facts)
        if size == n:
            return reading
        if size == n + 1 and (n == 0 or facts[n - 1] is reading.newest):  # appended: sorts last
            reading.add(facts[n])
            return reading
        return None

    def contributions(self, facts: list[Fact], stream_time: int) -> list[Contribution]:
        return self._read(facts).contributions(stream_time)

    def applied(self, facts: list[Fact], event_id: str) -> bool | None:
        """Whether an event of the id was applied: in the reading's set of event ids; None
        with no reading kept (not read for this: a duplicate needs none)."""
        reading = self._kept_read(facts)
        return None if reading is None else event_id in reading.ids

    def answered(self, facts: list[Fact], since: int) -> bool:
        """Whether the reading's last answer was at `since` (a list read anew has none)."""
        return self._read(facts).answered(since)

    def changes(self, facts: list[Fact], since: int, stream_time: int) -> Changes | None:
        """What changed since the answer at `since`, if that was the reading's last one: the
        reading kept up to date knows."""
        return self._read(facts).changes(stream_time, since)

    def answer(self, facts: list[Fact], stream_time: int) -> None:
        """The answer at `stream_time` is the last one, not built: a list `keep` folded answers
        as the list before it did."""
        self._read(facts).changes(stream_time, None)

    def next_due(self, facts: list[Fact], stream_time: int) -> int | None:
        """Where a raw fact settles (folded), a bucket with the user's latest event closes (its
        sample moves), a session times out or settles, activation is judged or settles."""
        return self._read(facts).next_due(stream_time)

    def keep(self, facts: list[Fact], stream_time: int) -> list[Fact]:
        """Facts past grace folded into the summary and their sessions' prefixes; nothing once
        no session is open, activation is judged and every sample sits where it stays."""
        kept, folded = self._kept(facts, stream_time)
        if kept is not facts and kept != facts:  # the state lets the list go: its reading too
            self._readings.pop(id(facts), None)
            self._latest = None
            if folded is not None:  # the list kept, read: taken over from the list's reading
                self._latest = Reading(kept, self.timing, folded)
                self._keep_reading(self._latest)
        return kept

    def _kept(self, facts: list[Fact], now: int) -> tuple[list[Fact], Folded | None]:
        """The facts kept, and how they were folded (None: not with a summary)."""
        reading = self._read(facts)
        if now < reading.settles(now):
            return facts, None  # nothing settled, final or left alone yet
        summary = reading.summary.own()  # folding changes it
        raw = reading.raw
        cut = self.timing.unsettled_from(now)  # the facts before it are settled
        n = bisect_left(raw, cut, key=time_of)  # (raw facts are in time order)
        settled = raw[:n]
        judged = summary.judged
        times: dict[Key, list[int]] = {}
        for keys in reading.classes.classes.values():
            if i := bisect_left(keys.times, cut):
                times.update(dict.fromkeys(keys.id, keys.times[:i]))
        self._fold(summary, settled, times)
        self._judge(summary, raw, now)
        same = not settled and judged == summary.judged and facts[0][_KIND_AT] == SUMMARY
        kept: list[Fact] = []
        runs: list[Run] = []  # the sessions kept, with their facts kept
        for run in reading.runs:
            final = run.final(self.timeout_ms)
            if now >= final and final < cut:
                continue  # its outcome stands for good
            compacted = self._compact(run, cut)
            runs.append(run if compacted is run.facts else replace(run, facts=compacted))
            kept.extend(compacted)
        kept.extend(f for f in raw[n:] if f[_SESSION] is None)
        kept.sort()
        last = summary.last()
        if last is None:  # nothing past grace yet
            return kept, None
        done = not kept and (summary.signup is None or summary.judged)
        if done and all(now >= (last // step + 1) * step for _, step in self.steps):
            return [], None
        # the same text: not written anew
        return [facts[0] if same else summary.fact(), *kept], (reading, cut, runs)

    def _judge(self, summary: Summary, raw: list[Fact], now: int) -> None:
        """Mark the activation outcome final once a value_reached that could change it is late
        (its sample then stays in its bucket)."""
        signup = earliest_signup(summary, raw)
        if signup is not None and self._settled(signup[0] + self.period_ms, now):
            summary.judged = True

    def _fold(self, summary: Summary, settled: list[Fact], times: dict[Key, list[int]]) -> None:
        """Fold facts past grace into the summary, as one by one in time order would: per key
        (`times`: its settled times, ascending) the latest time, and the latest in an earlier
        long-step bucket than that; the earliest sign-up, and the first value reached at or
        after it."""
        long = self.steps[-1][1]
        for key, ts in times.items():
            last, prev = summary.seen.get(key, (None, None))
            top = ts[-1] if last is None or ts[-1] > last else last
            start = top - top % long  # its long-step bucket
            i = bisect_left(ts, start)
            below = [t for t in (prev, last, ts[i - 1] if i else None) if t is not None]
            summary.seen[key] = [top, max((t for t in below if t < start), default=None)]
        if settled:
            latest = max(fact[_T] for fact in settled)
            summary.latest = latest if summary.latest is None else max(summary.latest, latest)
        outcomes = [f for f in settled if f[_KIND_AT] in (SIGNUP, VALUE)]
        for fact in sorted(outcomes, key=lambda f: (f[_T], f[_KIND_AT] != SIGNUP)):
            t, kind, signup = fact[_T], fact[_KIND_AT], summary.signup
            if kind == SIGNUP and (signup is None or t < signup[0]):
                summary.signup = [t, fact[_CHANNEL], fact[_REGION]]
            elif kind == VALUE and summary.reached is None and signup is not None:
                summary.reached = t if t >= signup[0] else None

    def _compact(self, run: Run, cut: int) -> list[Fact]:
        """An open session's facts, those past grace (before `cut`) as one prefix fact: the
        session's counts less those of its facts within grace (the last few)."""
        facts = run.facts
        first = 1 if facts[0][_KIND_AT] == PREFIX else 0  # the prefix is its first fact
        if len(facts) == first or facts[first][_T] >= cut:
            return facts  # no fact past grace but its prefix (a third of the sessions)
        k = len(facts)
        while facts[k - 1][_T] >= cut:
            k -= 1
        rest = facts[k:]
        kinds = [f[_KIND_AT] for f in rest]
        pages, features = run.pages - kinds.count(PAGE), run.features - kinds.count(FEATURE)
        channel = next((f[_CHANNEL] for f in islice(facts, k) if f[_CHANNEL]), "")
        region = next((f[_REGION] for f in islice(facts, k) if f[_REGION]), "")
        head = (facts[k - 1][_T], 0, "", PREFIX, channel, region, None)
        return [(*head, facts[0][_SESSION], [run.first, pages, features]), *rest]

    # -- memory ---------------------------------------------------------------------------------

    def remember(self, facts: list[Fact]) -> tuple[int, bytes] | None:
        """A forgotten user's last bucket per key and its sign-up, for `retention` after its
        last event: a later event moves its samples from there, and finds its sign-up
        (stream/kpis/users.py packs them in a few dozen bytes)."""
        summary = Summary.read(facts).own()
        raw = [f for f in facts if f[_KIND_AT] not in (SUMMARY, PREFIX)]
        times: dict[Key, list[int]] = {}
        for fact in raw:
            for key in keys_of(fact):
                times.setdefault(key, []).append(fact[_T])
        self._fold(summary, raw, times)
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
