"""A user's facts read once, and kept read as facts are appended: what the engagement rules
(stream/kpis/engagement.py) derive from one list of facts whatever the stream time.

An activity event usually comes after every earlier one of its user, so the state's list of the
user's facts grows by one at its end. Reading the whole list again at each event (parsing the
summary, splitting the sessions, grouping the times by key) cost most of an event; a `Reading`
instead takes the new fact in (`add`), which touches only its session, its keys and the cached
answers it can change. A list that `keep` folded is taken over from the reading of the list it
folded (a fold changes no answer). A list changed in any other way (a late event inserted before
others) is read anew, with the same code; a test checks every answer against the list read anew.

Kept up to date as facts come:
- per step and class of keys (stream/kpis/key_classes.py), the distinct-count samples (a fact
  in the bucket of its keys' latest, the usual case, changes none of them; one that moves a
  class on to a later bucket changes that class's alone);
- the outcomes (sign-ups, sessions, time to value, activation), rebuilt from per-session parts;
- the contributions last answered, in parts (per step and class, per outcome), and until which
  stream time they hold: an event of an open session (most events) changes no outcome that is
  due, so the answer stands; otherwise `changes` tells the state what differs, from the parts
  the fact changed, and the whole list is built only when asked for;
- the sessions' final times, sorted: `next_due` and `settles` take from them, the latest fact
  and the activation the few times they depend on. Both are kept between events as a bound
  that a new fact can only bring forward (to one of its own times): an earlier `next_due` costs
  one evaluation that changes nothing, an earlier `settles` one exact look.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from typing import Any

from stream.kpis.key_classes import ClassId, KeyClasses
from stream.kpis.users import (
    _CHANNEL,
    _EVENT_ID,
    _KIND_AT,
    _REGION,
    _SESSION,
    _T,
    ALWAYS,
    PREFIX,
    SIGNUP,
    SUMMARY,
    VALUE,
    Run,
    Summary,
    Timed,
    Timing,
    keys_of,
    segments_of,
    session_outcome,
    time_of,
    value_outcomes,
)
from stream.state.facts import Changes, Contribution, Fact

#: After any stream time.
NEVER = 2**62
#: A reading whose list `keep` folded, the time before which it folded the facts, and the
#: sessions kept with their facts kept (see `Reading._take_folded`).
Folded = tuple["Reading", int, list[Run]]
#: Facts past grace are folded into the summary once this many are (or half the list: a user
#: with many open sessions folds less often; without it, 2.3 times as many folds on bench.cpu's
#: activity log for 8 % less changelog), or all of them. 64 rather than 8: a third of the folds
#: on that log and about 7 % fewer instructions per event, for 11 % more changelog and 8 B
#: more state per active user (docs/performance.md, "an eleventh look").
FOLD = 64


class Reading:
    """One list of facts, read; `add` takes in a fact that sorts after all of them. `summary`
    is shared by every use of the reading: not changed."""

    # fmt: off
    __slots__ = (
        "_answered", "_changed", "_distinct", "_finals", "_keys_moved", "_last",
        "_latest_run", "_moved", "_next", "_next_at", "_out", "_out_at", "_parts",
        "_raw_signup", "_sessions", "_settles", "_signups", "_timed", "_until", "_values",
        "classes", "facts", "ids", "newest", "raw", "runs", "signup", "summary", "taken", "timing",
        "used",
    )
    # fmt: on

    def __init__(self, facts: list[Fact], timing: Timing, folded: Folded | None = None) -> None:
        """The list read, or (`folded`) the list that the rules' `keep` folded another reading's
        list into, taken over from that reading: a fold changes no answer, and reading the
        facts kept anew cost 58 µs a fold (43 taken over, on bench.cpu's activity log)."""
        self.timing = timing
        self.facts = facts  # the state's list, held (no other list takes its id); it grows
        self.taken = 0  # how many of its facts were taken in ...
        self.newest: Fact | None = None  # ... and the last of them
        self.used = False  # looked up since kept (the rules' eviction reads it)
        self.summary = summary = Summary.read(facts)
        self.raw: list[Fact] = []  # the facts not folded (neither the summary nor a prefix)
        self.ids: set[str] = set()  # their event ids (the others have none)
        self.runs: list[Run] = []
        self.signup: list[Any] | None = summary.signup  # [t, channel, region], the earliest
        self.classes = KeyClasses(summary)  # the distinct-count keys, with their raw times
        self._last = summary.last()  # the latest time of the facts folded
        self._latest_run: dict[str, int] = {}  # session id -> index of its latest run
        self._signups: list[Timed] = []  # per raw sign-up, its new user
        self._values: list[Timed] | None = None  # time to value and activation (None: stale)
        self._raw_signup = False  # the earliest sign-up is a raw fact's
        #: per step, the distinct-count samples per class (None: all to be worked out) ...
        self._distinct: list[dict[ClassId, list[Contribution]] | None] = [None] * len(timing.steps)
        #: ... and per step, the classes whose sample is to be worked out again (in the order
        #: read; one no longer a class: its sample is gone)
        self._moved: list[dict[ClassId, Any]] = [{} for _ in timing.steps]
        self._timed: list[Timed] | None = None
        self._answered = False  # an answer was given: changes are known from it on
        self._changed = True  # an outcome that counts may differ from the last answer's
        self._keys_moved = True  # ... or a key class's distinct-count samples
        self._parts: list[list[Contribution]] = []  # the samples of the outcomes last due
        self._out: list[Contribution] | None = None  # the last answer whole (None: to be built)
        self._out_at = ALWAYS  # the latest stream time answered for
        self._until = ALWAYS  # ... and the earliest one at which an outcome comes due
        self._next: int | None = None  # next_due, or earlier (None: to be worked out) ...
        self._next_at = ALWAYS  # ... for a stream time from this one on
        self._settles: int | None = None  # settles, or earlier (None: to be worked out)
        if folded is None:
            for fact in facts:
                self._take(fact)
        else:
            self._take_folded(facts, *folded)
        timeout = timing.timeout_ms  # the sessions' outcomes, once they have all their facts
        #: per session its outcome (None: to be worked out, from its run)
        self._sessions: list[Timed | None] = [None] * len(self.runs)
        #: sorted: when each session's outcome is final
        self._finals: list[int] = sorted(run.final(timeout) for run in self.runs)

    def add(self, fact: Fact) -> None:
        """Take in a fact that sorts after every fact read."""
        joined = self._take(fact, self._moved)
        settles = soon = self.timing.forget_at(fact[_T])  # it settles (and can be folded)
        if joined is not None:
            i, before = joined  # its session's outcome and final time change
            finals, run = self._finals, self.runs[i]
            final = run.final(self.timing.timeout_ms)  # no earlier than the fact: settles later
            if i == len(self._sessions):  # a new session
                self._sessions.append(None)
            else:
                self._sessions[i] = None
                del finals[bisect_left(finals, before)]
                if before <= self._out_at:  # it had timed out (a late fact): counted no more
                    self._changed = True
            insort(finals, final)
            since = ALWAYS if run.ended else final
            if since <= self._out_at:
                self._changed = True  # it counts from now on
            self._until = min(self._until, since)
            soon = min(soon, final)
        if self._settles is not None:
            self._settles = min(self._settles, settles)
        if self._next is not None:
            self._next = min(self._next, soon)

    def _take(
        self, fact: Fact, moved: list[dict[ClassId, Any]] | None = None
    ) -> tuple[int, int] | None:
        """Take a fact in, but for its session's outcome: (the index of the session it joins,
        that session's final time before it), or None without a session. `moved`: mark stale
        the distinct-count samples of its key classes that move on to a later bucket (or are
        new or split), per step (an event in the bucket of its keys' latest changes none)."""
        joined = None
        self.taken += 1
        self.newest = fact
        kind = fact[_KIND_AT]
        if kind == SUMMARY:
            return None
        self._timed = None
        t = fact[_T]
        if fact[_SESSION] is not None:
            joined = self._join(fact)
        if kind == PREFIX:
            return joined
        self.raw.append(fact)
        self.ids.add(fact[_EVENT_ID])
        classes, steps = self.classes, self.timing.steps
        covered = classes.cover(keys_of(fact))
        if classes.changed:
            if moved is not None:
                self._keys_moved = True
                for stale in moved:
                    stale.update(dict.fromkeys(classes.changed))
            classes.changed.clear()
        short = self.timing.step_ms  # every other step is a multiple of it
        bucket = t // short
        for keys in covered:
            times = keys.times
            if moved is not None:
                latest = times[-1] if times else keys.last
                if latest is None or latest // short != bucket:
                    self._keys_moved = True
                    for i, (_, step) in enumerate(steps):
                        if latest is None or t // step != latest // step:
                            moved[i][keys.id] = None
            times.append(t)
        if kind == SIGNUP:
            self._signed_up(fact)
        elif kind == VALUE:
            self._values, self._changed = None, True
        return joined

    def _take_folded(self, facts: list[Fact], before: Reading, cut: int, runs: list[Run]) -> None:
        """Take in the facts that `keep` left of `before`'s when it folded the facts before
        `cut` into the summary (read already) and the sessions' prefixes (in `runs`, the
        sessions kept, with their facts kept): as `_take` one by one would."""
        self.taken, self.newest = len(facts), facts[-1]
        runs.sort(key=lambda run: run.facts[0])  # as read: by their first fact
        self.runs = runs
        for i, run in enumerate(runs):
            self._latest_run[run.facts[0][_SESSION]] = i
        self.raw = raw = before.raw[bisect_left(before.raw, cut, key=time_of) :]
        self.ids = {fact[_EVENT_ID] for fact in raw}
        classes = self.classes
        for fact in raw:
            for keys in classes.cover(keys_of(fact)):
                keys.times.append(fact[_T])
            if fact[_KIND_AT] == SIGNUP:
                self._signed_up(fact)
        classes.changed.clear()
        if not before._keys_moved:
            self._carry_distinct(before)

    def _carry_distinct(self, before: Reading) -> None:
        """Take over `before`'s distinct-count samples (in the order read) of the key classes
        seen since the fold's cut: folding their earlier times moved none (a time cut to its
        second stays in its bucket at every step). A class seen only before it is worked out
        again: its sample's earlier bucket may now be the summary's; and one whose keys the
        fold joined to others' is gone."""
        self._keys_moved = False
        for i, known in enumerate(before._distinct):
            if known is None:
                self._keys_moved = True
                continue
            distinct: dict[ClassId, list[Contribution]] = {}
            self._distinct[i], moved = distinct, self._moved[i]
            for id, keys in self.classes.classes.items():
                if keys.times and id in known:
                    distinct[id] = known[id]
                else:
                    distinct[id] = []  # in its place, worked out again
                    moved[id] = None
            for id, samples in known.items():
                if id not in distinct:  # its keys are in other classes now: to be gone
                    distinct[id] = samples
                    moved[id] = None
            self._keys_moved = self._keys_moved or bool(moved)

    def _signed_up(self, fact: Fact) -> None:
        """A raw sign-up: a new user, and the earliest sign-up unless a folded one is earlier."""
        t = fact[_T]
        segments = segments_of(fact[_CHANNEL], fact[_REGION])
        self._signups.append((ALWAYS, [(t, "new_users", segments, 1)]))
        signup = self.signup
        if signup is None or (not self._raw_signup and t <= signup[0]):
            self.signup, self._raw_signup = [t, fact[_CHANNEL], fact[_REGION]], True
            self._values = self._next = self._settles = None  # the activation moves
        self._changed = True  # a new user counts at once

    def _join(self, fact: Fact) -> tuple[int, int]:
        """Per session id, a new run after an end or a gap of the timeout; a prefix fact stands
        for the start of its session. (The run's index, its final time before the fact.)"""
        timeout = self.timing.timeout_ms
        i = self._latest_run.get(fact[_SESSION])
        run = None if i is None else self.runs[i]
        if run is None or run.ended or fact[_T] - run.last >= timeout:
            run = Run(fact[_T], fact[_T])
            i = self._latest_run[fact[_SESSION]] = len(self.runs)
            self.runs.append(run)
        before = run.final(timeout)
        run.add(fact)
        return i, before

    # -- answers ---------------------------------------------------------------------------------

    def contributions(self, now: int) -> list[Contribution]:
        """The samples of the facts read at stream time `now`: the same list as last time while
        no fact changed them and no outcome came due."""
        self.changes(now, None)
        out = self._out
        if out is None:  # built from the parts kept, once asked for
            distincts = [distinct for distinct in self._distinct if distinct]
            out = [s for distinct in distincts for samples in distinct.values() for s in samples]
            for samples in self._parts:
                out += samples
            self._out = out
        return out

    def changes(self, now: int, since: int | None) -> Changes | None:
        """The answer at stream time `now` becomes the last; returns (turns, gone, added) that
        turn the last answer into it, if that was the one at `since`, else None. Only what
        facts changed since is looked at: the keys moved on (a single sample that moved on to
        a later bucket from the one it counted in is a turn: stream/state/earlier.py), and the
        outcomes changed or come due."""
        answered = self.answered(since)
        none_due = self._out_at <= now < self._until  # no outcome came due since the last
        if none_due and not self._changed and not self._keys_moved:
            self._out_at = now
            return ([], [], []) if answered else None
        turns: list[Contribution] = []
        gone: list[Contribution] = []
        added: list[Contribution] = []
        if self._keys_moved:
            self._distinct_changes(turns, gone, added)
        if self._changed or not none_due:
            timed = self.timed()
            due = [samples for since, samples in timed if now >= since]
            parts, self._parts = self._parts, due
            if due != parts:  # (the same lists mostly: compared by identity first)
                same = {id(samples) for samples in due} & {id(samples) for samples in parts}
                gone += [s for samples in parts if id(samples) not in same for s in samples]
                added += [s for samples in due if id(samples) not in same for s in samples]
            self._until = min((since for since, _ in timed if since > now), default=NEVER)
        self._out_at = now
        self._answered, self._changed = True, False
        if turns or gone or added:
            self._out = None
        return (turns, gone, added) if answered else None

    def answered(self, since: int | None) -> bool:
        """Whether the last answer was the one at `since`."""
        return self._answered and self._out_at == since

    def _distinct_changes(
        self, turns: list[Contribution], gone: list[Contribution], added: list[Contribution]
    ) -> None:
        """Work out the samples of the key classes moved on again, per step, and add what
        changed."""
        classes = self.classes.classes
        for i, (kind, step) in enumerate(self.timing.steps):
            distinct, moved = self._distinct[i], self._moved[i]
            if distinct is None:  # every class, in the order read
                distinct = self._distinct[i] = {}
                moved = classes
            for id in moved:
                keys = classes.get(id)
                if keys is None:  # split, or joined to others by a fold: its sample is gone
                    gone += distinct.pop(id, None) or ()
                    continue
                was = distinct.get(id)
                samples = distinct[id] = keys.samples(kind, step)
                if was == samples:
                    continue
                if was and len(was) == len(samples) == 1:
                    # a turn: the sample counts in a later bucket, and in old's until it closes
                    old, new = was[0], samples[0]
                    if len(new) == 5 and new[4] == old[0] and new[1:4] == old[1:4]:
                        turns.append(new)
                        continue
                gone += was or ()
                added += samples
            if moved:
                self._moved[i] = {}
        self._keys_moved = False

    def timed(self) -> list[Timed]:
        """The outcomes: new users, sessions, time to value and activation, in that order."""
        if self._timed is None:
            if self._values is None:
                self._values = value_outcomes(
                    self.summary, self.raw, self.signup, self.timing.period_ms
                )
            sessions, timeout = self._sessions, self.timing.timeout_ms
            for i, outcome in enumerate(sessions):
                if outcome is None:
                    sessions[i] = session_outcome(self.runs[i], timeout)
            self._timed = [*self._signups, *sessions, *self._values]  # type: ignore[list-item]
        return self._timed

    def next_due(self, now: int) -> int | None:
        """The first stream time after `now` at which the answers may change, or an earlier one
        (after `now`) once facts were taken in since it was worked out (`add`)."""
        if self._next is not None and self._next_at <= now < self._next:
            return None if self._next == NEVER else self._next
        due = self._next_due(now)
        self._next, self._next_at = NEVER if due is None else due, now
        return due

    def _next_due(self, now: int) -> int | None:
        """The first stream time after `now` at which the answers may change: where a raw fact
        settles (it can be folded), a session times out or settles, activation is judged or
        settles, the summary alone can be forgotten (its buckets closed)."""
        timing, raw, finals, last = self.timing, self.raw, self._finals, self._last
        forget_at = timing.forget_at
        found: list[int] = []
        if raw:
            found.append(forget_at(raw[-1][_T]))
        elif last is not None and not self.runs:  # the summary alone: forgotten once closed
            found += [last - last % step + step for _, step in timing.steps]
        activation = self._activation()
        if activation is not None:
            found += [activation, forget_at(activation)]
        found = [due for due in found if due > now]
        j = bisect_right(finals, now)
        k = bisect_left(finals, timing.unsettled_from(now))  # the first not settled by now
        found += [*finals[j : j + 1], *(forget_at(final) for final in finals[k : k + 1])]
        return min(found, default=None)

    def settles(self, now: int) -> int:
        """Before this stream time `keep` keeps the facts as they are (worked out again once
        `now` reached the bound kept since facts were taken in)."""
        if self._settles is None or self._settles <= now:
            self._settles = self._settles_exactly()
        return self._settles

    def _settles_exactly(self) -> int:
        """Before this stream time `keep` keeps the facts as they are: it folds the facts past
        grace once FOLD of them (or half the list) or all are (each fold writes the summary
        anew: one per event cost a fifth of an event), and changes them once the activation is
        final, a session is final with no fact left to fold (else it goes with the next fold: one
        more fold per session cost a tenth of an event), or the summary alone is left with its
        buckets closed."""
        timing, raw, last = self.timing, self.raw, self._last
        forget_at = timing.forget_at
        found: list[int] = []
        if raw:
            fold = max(FOLD, self.taken // 2)
            found.append(forget_at(raw[min(len(raw), fold) - 1][_T]))
        if self._finals and not raw:  # the first session to be final settles first
            found.append(forget_at(self._finals[0]))
        activation = self._activation()
        if activation is not None:
            found.append(forget_at(activation))
        if last is not None and not raw and not self.runs:  # the summary alone
            found += [last - last % step + step for _, step in timing.steps]
        return min(found, default=NEVER)

    def _activation(self) -> int | None:
        """When the activation is judged, unless it was."""
        if self.signup is None or self.summary.judged:
            return None
        return int(self.signup[0]) + self.timing.period_ms
