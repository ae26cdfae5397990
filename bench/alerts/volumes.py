"""What the generator sends, per change-alerted KPI and segment: calibrated through the real
rules, then drawn minute by minute.

Calibration: the generator (stream/tools/generate.py) makes carts, tickets and survey replies one
at a time, each with all its later events at the times it schedules them; each entity's events
are decoded as a worker decodes them and go through the real rules (`contributions`, at a stream
time long after its last event) and the real bucket series (`expand`). A KPI's estimator
components are read from those series with the kind's own arithmetic (`value(...).named()`,
which is linear in them). So an entity becomes a *bundle*: what it adds to each (KPI, segment)'s
components.

The engagement KPIs (topic `activity`) are not simulated: a user's sessions span days and
weeks, so no user is an entity whose events end soon after its first (`SIMULATED`).

A simulated minute then holds a Poisson number of new entities of each topic, at the rates the
generator starts them (`expected_events`: events/s x topic share / events per entity), each a
bundle drawn at random. The time between an entity's first event and its samples (a solve hours
after the opening) is left out: in stationary traffic it moves no rate.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from stream.config.settings import Settings
from stream.contract.events import Event, decode
from stream.contract.schemas import topic_of
from stream.kpis.change import Watch
from stream.kpis.kinds import Options
from stream.publish.merge import base_measure
from stream.state.measures import expand
from stream.state.segments import SegmentNames
from stream.tools.generate import DEFAULT_PROFILE, Profile, _Generator, expected_events
from stream.wiring import topic_rules

START = datetime(2026, 1, 5, tzinfo=UTC)
KEYS = {"cart-events": "cart_id", "tickets": "ticket_id", "survey-replies": "response_id"}
#: After an entity's last event, when its rules are asked for its samples (every cart timed out).
LONG_AFTER_MS = 40 * 86400 * 1000


@dataclass(frozen=True)
class Series:
    """One (KPI, segment) a change alert watches."""

    watch: Watch
    dimension: str  # "" for overall
    segment: str

    @property
    def label(self) -> str:
        return "all" if not self.dimension else f"{self.dimension}={self.segment}"


#: What one entity adds: (series index, component index, amount).
Bundle = tuple[tuple[int, int, float], ...]


@dataclass
class Calibration:
    """The series, the bundles of each topic, and entities per minute of each topic."""

    series: list[Series]
    bundles: dict[str, list[Bundle]]
    per_minute: dict[str, float]


def _entities(topic: str, count: int, seed: int, profile: Profile) -> Iterable[list[dict]]:
    """`count` entities of a topic, each as its events with their scheduled times."""
    gen = _Generator(seed, START, profile)
    make = {"cart-events": gen._cart, "tickets": gen._ticket, "survey-replies": gen._survey}[topic]
    for n in range(count):
        now = n * 7.0  # seconds apart: distinct times, no entity depends on another's
        first = make(now)
        events = [(now, first)]
        while gen.pending:
            due, _, event = gen.pending.pop()
            events.append((due, event))
        gen.pending.clear()
        events.sort(key=lambda e: e[0])
        yield [
            {
                "event_id": f"e-{topic}-{seed}-{n}-{i}",
                "occurred_at": (START + timedelta(seconds=due)).isoformat().replace("+00:00", "Z"),
                **event,
            }
            for i, (due, event) in enumerate(events)
        ]


def _coefficients(watch: Watch, metric: str) -> list[tuple[int, float]]:
    """How one unit of a bucket series adds to the watch's estimator components."""
    value = watch.kpi.kind.value(watch.kpi, {(metric, -1): 1}, Options())
    named = value.named()  # type: ignore[attr-defined]
    return [(i, float(named[c])) for i, c in enumerate(watch.estimator.components) if named.get(c)]


#: the topics whose entities the calibration draws
SIMULATED = ("cart-events", "tickets", "survey-replies")


def calibrate(
    watches: list[Watch],
    rate: float,
    entities: int,
    seed: int,
    profile: Profile = DEFAULT_PROFILE,
) -> Calibration:
    """Bundles of `entities` carts, tickets and survey replies of the generator, through the
    real rules; and how many of each the generator starts a minute at `rate` events/s."""
    settings = Settings.load({"config": "none"}, environ={})
    rules = {r.topic: r for r in topic_rules(settings) if r.topic in SIMULATED}
    measures = {w.kpi.name: {m for _, m in w.kpi.parts} for w in watches}
    index: dict[tuple[str, str, str], int] = {}
    series: list[Series] = []
    coefficients: dict[tuple[str, str], list[tuple[int, float]]] = {}
    bundles: dict[str, list[Bundle]] = {}
    for topic, rule in rules.items():
        names = SegmentNames(settings.max_segment_values, {})
        out: list[Bundle] = []
        for events in _entities(topic, entities, seed, profile):
            facts = []
            for event in events:
                raw = orjson.dumps(event)
                decoded = decode(
                    raw, topic_of(event), max_bytes=65536, now_ms=2**62, max_future_ms=0
                )
                assert isinstance(decoded, Event), decoded
                for dimension in rule.dimensions:
                    if dimension in decoded.body:
                        names.admit(dimension, decoded.body[dimension], decoded.t)
                facts.append(rule.fact(decoded, names))
            facts.sort()
            added: dict[tuple[int, int], float] = {}
            contributions = rule.contributions(facts, facts[-1][0] + LONG_AFTER_MS)
            for contribution in contributions:
                for (metric, dim, seg, _), amount in expand(contribution):
                    measure = base_measure(metric)
                    for watch in watches:
                        if measure not in measures[watch.kpi.name]:
                            continue
                        if dim and dim not in watch.kpi.dimensions:
                            continue
                        key = (watch.kpi.name, dim, seg)
                        if key not in index:
                            index[key] = len(series)
                            series.append(Series(watch, dim, seg))
                        found = coefficients.get((watch.kpi.name, metric))
                        if found is None:
                            found = coefficients[watch.kpi.name, metric] = _coefficients(
                                watch, metric
                            )
                        for component, coefficient in found:
                            cell = (index[key], component)
                            added[cell] = added.get(cell, 0.0) + coefficient * amount
            out.append(tuple((s, c, a) for (s, c), a in added.items()))
        bundles[topic] = out
    shares = {
        "cart-events": profile.cart_share,
        "tickets": profile.ticket_share,
        "survey-replies": profile.survey_share,
    }
    total = sum(shares.values())
    per_entity = expected_events(profile)
    per_minute = {t: 60 * rate * shares[t] / total / per_entity[t] for t in rules}
    return Calibration(series, bundles, per_minute)


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw: by inversion below 30, else the normal approximation (rounded, never
    negative), which at those means moves no figure of the benchmark."""
    if mean < 30:
        limit, k, product = math.exp(-mean), 0, rng.random()
        while product > limit:
            k += 1
            product *= rng.random()
        return k
    return max(0, round(rng.gauss(mean, math.sqrt(mean))))


def library(calibration: Calibration, minutes: int, seed: int) -> list[list[list[float]]]:
    """`minutes` independent simulated minutes: [series][component][minute] -> amount."""
    rng = random.Random(seed)
    width = max(len(s.watch.estimator.components) for s in calibration.series)
    cols = [[[0.0] * minutes for _ in range(width)] for _ in calibration.series]
    for m in range(minutes):
        for topic, mean in calibration.per_minute.items():
            bundles = calibration.bundles[topic]
            for bundle in rng.choices(bundles, k=poisson(rng, mean)):
                for s, c, a in bundle:
                    cols[s][c][m] += a
    return cols
