"""A user's facts read once: what the engagement rules (stream/kpis/engagement.py) derive from one
list of facts whatever the stream time, so that `contributions`, `next_due` and `keep` of the
same list, and the `contributions` the state asks for again before the user's next event, parse
the summary, split the sessions and group the keys once rather than each time (they were most of
an activity event's cost)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any

from stream.kpis.users import (
    _CHANNEL,
    _KIND_AT,
    _REGION,
    _T,
    PREFIX,
    SIGNUP,
    SUMMARY,
    VALUE,
    Key,
    Run,
    Summary,
    keys_of,
    sample_of,
    segments_of,
    split_runs,
)
from stream.state.facts import Contribution, Fact
from stream.state.windows import bucket_end

#: Before any stream time: what is counted from this time on is counted always.
ALWAYS = -(2**62)
#: Facts past grace are folded into the summary once this many are, or all of them.
FOLD = 8


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


@dataclass(slots=True)
class Reading:
    """One list of facts, read. `summary` is shared by every use of the reading: not changed."""

    facts: list[Fact]  # a copy of the list read: the state's own list grows in place
    summary: Summary
    raw: list[Fact]  # the facts not yet folded (neither the summary nor a session prefix)
    runs: list[Run]
    signup: list[Any] | None  # [t, channel, region] of the earliest sign-up
    #: per distinct-count key: its summary times (last, prev; None if not in it), the raw times
    keys: list[tuple[Key, int | None, int | None, list[int]]]
    #: (from when, samples) of all but the distinct counts, in the order the rules list them
    timed: list[tuple[int, list[Contribution]]]
    dues: list[int]  # sorted: the stream times `next_due` may answer
    settles: int  # before this stream time `keep` keeps the facts as they are
    top: int  # the latest time read (0 if none)
    #: the last contributions worked out, and the open buckets (capped at `top` + 1) and
    #: number of outcomes due they were worked out for
    out: list[Contribution] | None = None
    opens: tuple[int, ...] = ()
    due: int = 0


def earliest_signup(summary: Summary, raw: list[Fact]) -> list[Any] | None:
    """[t, channel, region] of the user's earliest sign-up, folded or not."""
    signups = [[f[_T], f[_CHANNEL], f[_REGION]] for f in raw if f[_KIND_AT] == SIGNUP]
    if summary.signup is not None:
        signups.append(summary.signup)
    return min(signups, key=lambda s: s[0]) if signups else None


def read(facts: list[Fact], timing: Timing) -> Reading:
    summary = Summary.read(facts)
    raw = [f for f in facts if f[_KIND_AT] not in (SUMMARY, PREFIX)]
    runs = split_runs(facts, timing.timeout_ms)
    signup = earliest_signup(summary, raw)
    keys: dict[Key, tuple[Key, int | None, int | None, list[int]]] = {
        key: (key, last, prev, []) for key, (last, prev) in summary.seen.items()
    }
    for fact in raw:  # in time order: each key's times ascend
        for key in keys_of(fact):
            entry = keys.get(key)
            if entry is None:
                entry = keys[key] = (key, None, None, [])
            entry[3].append(fact[_T])
    timed: list[tuple[int, list[Contribution]]] = [
        (ALWAYS, [(f[_T], "new_users", segments_of(f[_CHANNEL], f[_REGION]), 1)])
        for f in raw
        if f[_KIND_AT] == SIGNUP
    ]
    timed += [_session(run, timing.timeout_ms) for run in runs]
    timed += _value(summary, raw, signup, timing.period_ms)
    forget_at = timing.forget_at
    dues = [forget_at(raw[-1][_T])] if raw else []
    ends: list[int] = []  # where a bucket with the latest event closes
    latest = max((f[_T] for f in raw), default=None)
    last = summary.last()
    for t in (latest, last):
        if t is not None:
            ends += [(t // step + 1) * step for _, step in timing.steps]
    dues += ends
    # keep folds the facts past grace once FOLD of them or all are (each fold writes the summary
    # anew: one per event cost a fifth of an event), and changes them once a session or the
    # activation is final, or the summary alone is left with every bucket of its latest closed
    settles = [forget_at(raw[min(len(raw), FOLD) - 1][_T])] if raw else []
    for run in runs:
        final = run.last if run.ended else run.last + timing.timeout_ms
        dues += [final, forget_at(final)]
        settles.append(forget_at(final))
    if signup is not None and not summary.judged:
        due = signup[0] + timing.period_ms
        dues += [due, forget_at(due)]
        settles.append(forget_at(due))
    if last is not None and not raw and not runs:  # the summary alone
        settles += [(last // step + 1) * step for _, step in timing.steps]
    return Reading(
        list(facts),
        summary,
        raw,
        runs,
        signup,
        list(keys.values()),
        timed,
        sorted(dues),
        min(settles, default=2**62),
        max(t for t in (latest, last, 0) if t is not None),
    )


def contributions(reading: Reading, timing: Timing, now: int) -> list[Contribution]:
    """The samples of the facts read at stream time `now`: the same list as last time while
    no bucket with a time of theirs closed and no outcome came due since."""
    top = reading.top + 1  # past the latest time read: a later open bucket changes nothing
    opens = tuple(min(now - now % step, top) for _, step in timing.steps)
    due = [samples for since, samples in reading.timed if now >= since]
    if reading.opens == opens and reading.due == len(due) and reading.out is not None:
        return reading.out
    out = _distinct(reading, timing, opens)
    for samples in due:
        out += samples
    reading.opens, reading.due, reading.out = opens, len(due), out
    return out


def next_due(reading: Reading, now: int) -> int | None:
    """The first stream time after `now` at which the answers may change."""
    dues = reading.dues
    i = bisect_right(dues, now)
    return dues[i] if i < len(dues) else None


def _distinct(reading: Reading, timing: Timing, opens: tuple[int, ...]) -> list[Contribution]:
    """Per key and step, one sample in the last closed bucket the user was active in (before
    that step's open bucket, starting at `opens`), less the remembered one (a recalled
    baseline) where that is another bucket."""
    out: list[Contribution] = []
    bases = reading.summary.base
    for (kind, step), start in zip(timing.steps, opens, strict=True):
        for key, last, prev, times in reading.keys:
            t = prev if last is None or last >= start else last
            i = bisect_left(times, start)
            if i and (t is None or times[i - 1] > t):  # the latest raw time in a closed bucket
                t = times[i - 1]
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


def _session(run: Run, timeout_ms: int) -> tuple[int, list[Contribution]]:
    """A session's outcome, at its end or at last event + timeout (from then on)."""
    at = run.last if run.ended else run.last + timeout_ms
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


def _value(
    summary: Summary, raw: list[Fact], signup: list[Any] | None, period_ms: int
) -> list[tuple[int, list[Contribution]]]:
    """Time to value (at the first value_reached at or after the sign-up) and the activation
    outcome (at sign-up + period, from then on)."""
    if signup is None:
        return []
    since = signup[0]
    values = [f for f in raw if f[_KIND_AT] == VALUE and f[_T] >= since]
    first = min(values, default=None)
    out: list[tuple[int, list[Contribution]]] = []
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
