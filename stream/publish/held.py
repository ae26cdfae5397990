"""Window totals kept apart from the entries: how `<app_id>:windows` stores them, the writer's
rendering of them, and the pace at which they are encoded and rendered (redis_store.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from stream.publish.entries import Entry, WindowTotals
from stream.state.windows import series_key


@dataclass(frozen=True, slots=True)
class Held:
    """A partition's window totals as written to Redis: their version, and the partition's
    stream time when they were copied."""

    version: str
    stream_time: int | None
    totals: WindowTotals


def pack_windows(held: Held) -> bytes:
    """Window totals as stored in `<app_id>:windows`: each series as [[metric, dimension,
    segment, bin], value] (orjson writes the totals' own tuples, no rows built in Python)."""
    windows = {str(size): list(totals.items()) for size, totals in held.totals.items()}
    return orjson.dumps(
        {"version": held.version, "stream_time": held.stream_time, "windows": windows}
    )


def unpack_windows(raw: bytes | None) -> Held | None:
    """The inverse of pack_windows (None for a field Redis does not hold)."""
    if raw is None:
        return None
    body = orjson.loads(raw)
    totals = {
        int(size): {series_key(tuple(key)): n for key, n in items}
        for size, items in body["windows"].items()
    }
    return Held(body["version"], body["stream_time"], totals)


@dataclass(slots=True)
class Rendered:
    """The writer's windowed KPIs as JSON, what they were rendered from, and per source
    partition the version of the totals they hold and the latest stream time those are known
    to hold at (it moves on with the partition's entry while that names the same version)."""

    inputs: Any
    fields: set[str]
    #: the `windows` and `change` sections, as JSON
    sections: dict[str, orjson.Fragment]
    versions: dict[str, str]
    reach: dict[str, int | None]
    sticky: dict[str, Any] | None = None  # stickiness, read from two of the windows

    def valid_at(self, fleet: Mapping[str, Entry]) -> int | None:
        """Up to which stream time the windows hold, with the partitions' entries now: per
        document and cheap, as stream times move on between the renderings."""
        for field, version in self.versions.items():
            entry = fleet.get(field)
            if entry is not None and entry.windows_version == version:
                self.reach[field] = max_time(self.reach[field], entry.windows_at)
        return min((t for t in self.reach.values() if t is not None), default=None)


def max_time(a: int | None, b: int | None) -> int | None:
    """The later of two stream times, either of which may be unknown."""
    return a if b is None else b if a is None else max(a, b)


class Pacer:
    """Spends at most `budget` of a core on window totals, on average: after totals that took
    c seconds of CPU to encode and render, the next ones wait c / budget. Window totals change
    at step boundaries, so this only holds them back while they change all the time (a worker
    catching up): the rest of each publish (counts, live gauges, stream times) is never held
    back."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.next_at = 0.0

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def spent(self, now: float, cpu_s: float) -> None:
        if cpu_s > 0:
            self.next_at = max(self.next_at, now + cpu_s / self.budget)
