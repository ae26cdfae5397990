"""Event-to-published latency from /metrics scrapes, without scraping faster than is fair.

A scrape of /metrics costs the worker tens of milliseconds of CPU (more with more windows), so
polling it every few milliseconds to catch the moment each event shows up would load the worker
far more than the events do. Instead the harness scrapes at random moments a few times a second
and each scrape tells, for every event sent before it, whether its effect was visible by then
(its partition's outcome count has passed its offset) at that age. Over many scrapes this gives
the latency distribution function at every age (current-status data), and its quantiles are the
latency quantiles. Ages are taken at the end of each response, so both visible and not yet
visible events look older than they were: the estimate errs towards higher latency.

The plain upper bound, the first scrape at which each event was visible, is reported too.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

#: Resolution of the estimated distribution (seconds).
BIN_S = 0.01
#: Ages observed by default; callers pass the largest latency seen (the upper bounds) so that
#: the distribution is never cut off below it.
MAX_AGE_S = 10.0


@dataclass(frozen=True, slots=True)
class Sent:
    """One event of the offered load: where it went and when it was sent (monotonic seconds)."""

    topic: str
    partition: int
    offset: int
    t: float


@dataclass(frozen=True, slots=True)
class Scrape:
    """One /metrics response: when it ended, and records with an outcome per partition."""

    t: float
    counts: dict[tuple[str, int], int]


def visible(event: Sent, scrape: Scrape) -> bool:
    """Whether the event's effect shows in the scrape: its partition counted past its offset."""
    return scrape.counts.get((event.topic, event.partition), 0) > event.offset


def first_visible(events: list[Sent], scrapes: list[Scrape]) -> list[float | None]:
    """Per event: the age at the first scrape that showed it (an upper bound), or None."""
    times = [s.t for s in scrapes]
    out: list[float | None] = []
    for event in events:
        age: float | None = None
        for scrape in scrapes[bisect.bisect_right(times, event.t) :]:
            if visible(event, scrape):
                age = scrape.t - event.t
                break
        out.append(age)
    return out


def visibility_by_age(
    events: list[Sent], scrapes: list[Scrape], max_age_s: float = MAX_AGE_S
) -> tuple[list[int], list[int]]:
    """Per age bin (up to max_age_s, older ones pooled in the last bin): observations, and how
    many of them were visible."""
    bins = max(1, int(max_age_s / BIN_S))
    seen, shown = [0] * bins, [0] * bins
    sent_times = [e.t for e in events]
    for scrape in scrapes:
        lo = bisect.bisect_left(sent_times, scrape.t - max_age_s)
        for event in events[lo : bisect.bisect_left(sent_times, scrape.t)]:
            k = min(int((scrape.t - event.t) / BIN_S), bins - 1)
            seen[k] += 1
            shown[k] += visible(event, scrape)
    return seen, shown


def monotone(seen: list[int], shown: list[int]) -> list[float]:
    """The non-decreasing fit of the visible share per bin (pool adjacent violators, weighted
    by observations); a bin without observations takes the share of the bin before it."""
    blocks: list[tuple[float, float, list[int]]] = []  # (visible, observations, bins)
    for k, (n, v) in enumerate(zip(seen, shown, strict=True)):
        if not n:
            continue
        block = (float(v), float(n), [k])
        while blocks and blocks[-1][0] / blocks[-1][1] > block[0] / block[1]:
            v2, n2, ks = blocks.pop()
            block = (block[0] + v2, block[1] + n2, ks + block[2])
        blocks.append(block)
    share = [0.0] * len(seen)
    for v, n, ks in blocks:
        for k in ks:
            share[k] = v / n
    last = 0.0
    for k, n in enumerate(seen):
        share[k] = share[k] if n else last
        last = share[k]
    return share


def quantiles(
    events: list[Sent],
    scrapes: list[Scrape],
    qs: tuple[float, ...] = (0.5, 0.99),
    max_age_s: float = MAX_AGE_S,
) -> dict[float, float]:
    """Estimated latency quantiles in seconds: the upper edge of the first age bin where the
    fitted visible share reaches q (max_age_s when it never does)."""
    seen, shown = visibility_by_age(events, scrapes, max_age_s)
    if not any(seen):
        raise ValueError("no scrape came after an event was sent")
    share = monotone(seen, shown)
    return {
        q: (next((k for k, s in enumerate(share) if s >= q), len(share) - 1) + 1) * BIN_S
        for q in qs
    }


def percentile(values: list[float], q: float) -> float:
    """The q-quantile of the values (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]
