"""The engagement rows of the benchmark: the state a partition of `activity` holds per user
(every user active in the longest window: those still kept as facts and those remembered), the
state's own cost per event against carts' (both in this process, and split by what an activity
event does), and a production worker's throughput on an activity-only log against a cart-only
log of the same size."""

from __future__ import annotations

import argparse
import heapq
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from stream.config.settings import Settings
from stream.contract.events import Event, decode
from stream.contract.schemas import topic_of
from stream.state.partition import PartitionState
from stream.tools.generate import Profile, generate
from stream.wiring import state_config, topic_rules

if TYPE_CHECKING:
    from bench.cpu import WorkerRun

#: Keys the activity topic's users, as the worker's customer key secret does.
SECRET = b"bench-secret-of-32-bytes-at-least"


def _events(topic: str, days: float, seed: int, end: datetime, rate: float) -> Iterator[Event]:
    """The decoded events of one topic of a generated log of `days` days ending at `end`."""
    now_ms = int(time.time() * 1000)
    start = end - timedelta(days=days)
    for event in generate(seed, start, rate, duration_s=days * 86400, profile=Profile()):
        if topic_of(event) == topic:
            decoded = decode(
                orjson.dumps(event),
                topic,
                max_bytes=65536,
                now_ms=now_ms,
                max_future_ms=3_600_000,
                customer_secret=SECRET,
            )
            if isinstance(decoded, Event):
                yield decoded


def _deep(value: object, seen: set[int]) -> int:
    """sys.getsizeof of a fact and what it holds (tuples, lists, str, int, bytes), each object
    once (`seen`: the ids counted): the heap holds one of each segment name, kind letter and
    None that many facts share (counted per fact, they made a user held as facts a quarter
    bigger than it is)."""
    if id(value) in seen:
        return 0
    seen.add(id(value))
    size = sys.getsizeof(value)
    if isinstance(value, list | tuple):
        size += sum(_deep(item, seen) for item in value)
    return size


#: How far apart the ends of the 35-day logs of `bytes_per_user` are: the state per user depends
#: on the hour and weekday a log ends at (users in a session, or within their activation period,
#: are held as facts: 339-377 B over a week's ends, 13 h apart), so the benchmark takes the mean
#: over ends at other hours and days (42 h: four span a week).
ENDS_APART = timedelta(hours=42)


def bytes_per_user(
    days: float, seed: int, end: datetime, windows: str, rate: float = 0.3
) -> tuple[float, float, float, int]:
    """What an `activity` partition holds per user after `days` of the generator's traffic:
    (mean over every user active in the longest window, per user still held as facts, per
    remembered user, users), counting the table slot, key, entity and facts (each object
    once), or the memory and its expiry-list slot (sys.getsizeof). Buckets and window totals
    are not per user."""
    settings = Settings.load({"config": "none", "windows": windows}, environ={})
    rules = next(r for r in topic_rules(settings) if r.topic == "activity")
    state = PartitionState("activity", 0, rules, state_config(settings))
    for offset, event in enumerate(_events("activity", days, seed, end, rate)):
        state.apply(event, offset)
    state.flush()
    entities, memories = state.entities, state.memories
    slot = sys.getsizeof(entities) / max(len(entities), 1)
    seen: set[int] = set()
    held = sum(
        sys.getsizeof(k) + sys.getsizeof(e) + _deep(e.facts, seen) for k, e in entities.items()
    )
    held_each = held / max(len(entities), 1) + slot
    remembered = sum(sys.getsizeof(k) + sys.getsizeof(m) + 8 for k, m in memories.items())
    remembered_each = remembered / max(len(memories), 1) + 2 * 8  # a dict slot: hash, pointers
    users = len(entities) + len(memories)
    mean = (held_each * len(entities) + remembered_each * len(memories)) / max(users, 1)
    return mean, held_each, remembered_each, users


def first_events(topic: str, count: int, seed: int, end: datetime) -> list[Event]:
    """The first `count` decoded events of one topic of a generated log."""
    events: list[Event] = []
    for event in _events(topic, 30, seed, end, rate=2.0):
        events.append(event)
        if len(events) >= count:
            break
    return events


def _partition(topic: str) -> PartitionState:
    """A partition state of the topic, with the worker's default settings."""
    settings = Settings.load({"config": "none"}, environ={})
    rules = next(r for r in topic_rules(settings) if r.topic == topic)
    return PartitionState(topic, 0, rules, state_config(settings))


def state_rate(topic: str, events: list[Event]) -> float:
    """Events a partition state applies per CPU second (decoding excluded): the state's share
    of a worker's cost."""
    state = _partition(topic)
    started = time.process_time()
    for offset, event in enumerate(events):
        state.apply(event, offset)
        if offset % 500 == 0:
            state.flush()
    return len(events) / (time.process_time() - started)


#: The classes of activity events `state_costs` splits the state's cost into.
QUIET, MOVES_ON, OUTCOME = "quiet", "moves on", "outcome"


def event_classes(events: list[Event], step_ms: int, timeout_ms: int) -> list[str]:
    """Each activity event's class, from the log alone (not from the state's reading of it):
    `moves on` in another step bucket than its user's previous event (its distinct-count samples
    move), else `outcome` when it signs up, reaches value, ends a session or starts one (a new
    id, or after an end or a gap of the timeout), else `quiet`: it changes no published value
    (until a timer's, when its session times out)."""
    last: dict[str, int] = {}  # user -> the time of its previous event
    runs: dict[tuple[str, str], tuple[int, bool]] = {}  # (user, session) -> (last time, ended)
    out: list[str] = []
    for event in events:
        t, previous = event.t, last.get(event.key)
        session = event.body.get("session_id")
        run = runs.get((event.key, session)) if session else None
        if previous is None or t // step_ms != previous // step_ms:
            out.append(MOVES_ON)
        elif event.type in ("signed_up", "value_reached", "session_ended") or (
            session and (run is None or run[1] or t - run[0] >= timeout_ms)
        ):
            out.append(OUTCOME)
        else:
            out.append(QUIET)
        last[event.key] = t
        if session:
            runs[event.key, session] = (t, event.type == "session_ended")
    return out


@dataclass(frozen=True)
class StateCosts:
    """A partition state's cost, in µs per event of the log: what applying each class of event
    costs (its events, µs each), timers fired as stream time advanced, and flushes."""

    classes: dict[str, tuple[int, float]]
    timers_us: float
    flush_us: float
    mean_us: float

    def line(self) -> str:
        events = sum(n for n, _ in self.classes.values())
        parts = [f"{n / events:.0%} {name} at {us:.0f}" for name, (n, us) in self.classes.items()]
        return (
            f"{self.mean_us:.0f} = {' + '.join(parts)} + timers {self.timers_us:.0f} "
            f"+ flushes {self.flush_us:.0f}"
        )


def state_costs(topic: str, events: list[Event], classes: list[str]) -> StateCosts:
    """Time a partition state over the events (wall clock of this CPU-bound loop): stream time
    is advanced first, so that the timers it fires are timed apart from the event."""
    state = _partition(topic)
    clock = time.perf_counter_ns
    spent: dict[str, list[int]] = {name: [0, 0] for name in dict.fromkeys(classes)}
    timers = flushes = 0
    started = clock()
    for offset, (event, name) in enumerate(zip(events, classes, strict=True)):
        t0 = clock()
        state.advance(event.t)
        t1 = clock()
        state.apply(event, offset)
        t2 = clock()
        if offset % 500 == 0:
            state.flush()
        timers += t1 - t0
        flushes += clock() - t2
        spent[name][0] += 1
        spent[name][1] += t2 - t1
    n = len(events)
    return StateCosts(
        {name: (count, ns / count / 1000) for name, (count, ns) in spent.items()},
        timers / n / 1000,
        flushes / n / 1000,
        (clock() - started) / n / 1000,
    )


def activity_costs(events: list[Event]) -> str:
    """The split of `state_costs` over activity events, classed by `event_classes`."""
    settings = Settings.load({"config": "none"}, environ={})
    classes = event_classes(events, settings.step * 1000, settings.session_timeout * 1000)
    return state_costs("activity", events, classes).line()


def state_ratio(
    activity: list[Event], carts: list[Event], pairs: int
) -> tuple[float, float, float]:
    """(activity ÷ cart, activity, cart events per CPU second), medians of `pairs` runs taken
    in turn on the same events: on shared cores a lone run of each drifts with the load."""
    runs = [
        (state_rate("activity", activity), state_rate("cart-events", carts)) for _ in range(pairs)
    ]
    return (
        statistics.median(a / c for a, c in runs),
        statistics.median(a for a, _ in runs),
        statistics.median(c for _, c in runs),
    )


class Floor:
    """The least state work an activity event needs, as a floor for what a state of per-user
    counters could cost: in-order events, per segment key the latest time (a sample lands in
    the bucket of a user's first event in it, at each step, and is held in the bucket before),
    per session its counts, an event id set per user, a timer per session. No late events,
    folding, memories or changelog: a bound from below, not a design."""

    def __init__(self, steps: tuple[int, ...], timeout_ms: int) -> None:
        self.steps, self.timeout_ms = steps, timeout_ms
        self.users: dict[str, tuple[set[str], dict[Any, int], dict[str, list[Any]]]] = {}
        self.buckets: dict[tuple[int, int], dict[Any, int]] = {}  # (step, bucket) -> key -> n
        self.held: dict[tuple[int, int], dict[Any, int]] = {}  # ... -> (earlier, key) -> n
        self.sessions = 0  # ended or timed out
        self._timers: list[tuple[int, str, str]] = []

    def apply(self, event: Event) -> None:
        t, body = event.t, event.body
        while self._timers and self._timers[0][0] <= t:  # sessions timed out
            due, key, session = heapq.heappop(self._timers)
            run = self.users[key][2].get(session)
            self.sessions += run is not None and not run[3] and run[1] + self.timeout_ms == due
        ids, latest, runs = self.users.setdefault(event.key, (set(), {}, {}))
        if event.event_id in ids:
            return
        ids.add(event.event_id)
        keys = [("active", "", ""), ("active", "channel", body.get("channel"))]
        keys.append(("active", "region", body.get("region")))
        if event.type == "feature_used":
            keys += [("feature", "", ""), ("feature", "feature", body.get("feature"))]
        for key in keys:
            before, latest[key] = latest.get(key), t
            for step in self.steps:
                k = t // step
                if before is None or before // step != k:
                    bucket = self.buckets.setdefault((step, k), {})
                    bucket[key] = bucket.get(key, 0) + 1
                    if before is not None:
                        held = self.held.setdefault((step, k), {})
                        held[before // step, key] = held.get((before // step, key), 0) + 1
        session = body.get("session_id")
        if session:
            run = runs.get(session)
            if run is None or run[3] or t - run[1] >= self.timeout_ms:
                run = runs[session] = [t, t, 0, False]
                heapq.heappush(self._timers, (t + self.timeout_ms, event.key, session))
            run[1], run[2], run[3] = t, run[2] + 1, event.type == "session_ended"
            self.sessions += run[3]


def floor_us(events: list[Event]) -> float:
    """`Floor`'s CPU µs per event over the events, with the worker's default steps."""
    settings = Settings.load({"config": "none"}, environ={})
    steps = (settings.step * 1000, settings.long_step * 1000)
    floor = Floor(steps, settings.session_timeout * 1000)
    started = time.process_time()
    for event in events:
        floor.apply(event)
    return (time.process_time() - started) / len(events) * 1e6


@dataclass(frozen=True)
class WorkerRatio:
    """Activity-only against cart-only logs, runs taken in turn."""

    activity: list[WorkerRun]
    carts: list[WorkerRun]

    @property
    def ratio(self) -> float:
        """The median of each pair's activity ÷ cart events/s."""
        pairs = zip(self.activity, self.carts, strict=True)
        return statistics.median(a.events_per_s / c.events_per_s for a, c in pairs)


async def worker_ratio(
    workdir: Path, events: int, pairs: int, seed: int, say: Callable[[str], None]
) -> WorkerRatio:
    """A production worker (default windows, Redis on, scraped) over an activity-only log and
    over a cart-only log of `events` events each (whole lives of the generator's users, or
    carts), `pairs` times in turn: the issue's target is ≥ 0.9."""
    from bench.cpu import worker_run  # bench.cpu imports bench.run, which imports this module

    out = WorkerRatio([], [])
    for n in range(pairs):
        for topic, runs in (("activity", out.activity), ("cart-events", out.carts)):
            where = workdir / f"{topic}-{n}"
            where.mkdir(parents=True, exist_ok=True)
            run = await worker_run(where, events, seed, only=topic)
            runs.append(run)
            say(
                f"engagement: {topic}-only log of {events:,} events, {run.events_per_s:,.0f} "
                f"events/s, {run.cpu_us_per_event:.0f} µs of worker CPU per event"
            )
    return out


def main() -> None:
    """`python -m bench.engagement`: the state's speed on activity against carts'."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument(
        "--events", type=int, default=15_000, help="events of each topic (default 15,000)"
    )
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument("--pairs", type=int, default=3, help="runs of each, in turn (default 3)")
    args = parser.parse_args()
    end = datetime(2024, 6, 1, tzinfo=UTC)  # a fixed log: the same events each time
    activity_log = first_events("activity", args.events, args.seed, end)
    carts_log = first_events("cart-events", args.events, args.seed, end)
    ratio, activity, carts = state_ratio(activity_log, carts_log, args.pairs)
    print(f"activity {activity:,.0f}/s, carts {carts:,.0f}/s per CPU second: ratio {ratio:.2f}")
    print("state µs per event, in this process:")
    print(f"  activity {activity_costs(activity_log)}")
    print(f"  carts    {state_costs('cart-events', carts_log, ['cart'] * len(carts_log)).line()}")
    print(f"  activity's floor (bench.engagement.Floor) {floor_us(activity_log):.1f}")


if __name__ == "__main__":
    main()
