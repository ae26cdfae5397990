"""Samples that also count in an earlier bucket while their own bucket is open.

A distinct count's user is counted once, in the last *closed* bucket it was active in
(stream/kpis/engagement.py). Its contribution says so with a fifth element: (t, measure,
segments, value, earlier) counts in the bucket of t, and, while that bucket is still open, in the
bucket of `earlier` as well (stream/state/facts.py). Both times come from the user's facts alone,
so the contribution does not change when the bucket closes, and no user is evaluated then: the
state takes every earlier sample of a bucket out at once as the bucket closes, summed per
(earlier bucket, series), a few dozen series for the thousands of users active in a minute.

What is kept here follows from the entities' contributions and the stream time, so it is not in
the changelog: a restored state registers it again from its entities.
"""

from __future__ import annotations

from collections.abc import Callable

from stream.state.buckets import Resolution
from stream.state.facts import Contribution
from stream.state.measures import sample_deltas
from stream.state.windows import SeriesKey

#: (earlier bucket, series) -> the value it holds there until the bucket closes.
Held = dict[tuple[int, SeriesKey], int]
#: Records a bucket's value before the epoch's first change to it (the state's changelog).
Touch = Callable[[Resolution, int], None]
Deltas = list[tuple[SeriesKey, int]]


class Earlier:
    """Per resolution kind and open bucket: what earlier samples it holds, summed."""

    def __init__(self, resolutions: list[Resolution], touch: Touch) -> None:
        self._resolutions = resolutions
        self._by_kind = {r.kind: r for r in resolutions}
        self._touch = touch
        self._open: dict[tuple[str, int], Held] = {}

    def __len__(self) -> int:
        return sum(len(held) for held in self._open.values())

    def hold(self, contributions: list[Contribution], times: int, landed: bool = False) -> None:
        """Add (or take out) the parts in their earlier buckets of those of the contributions
        that have one, while their own bucket is open; `landed`: in the buckets already (a
        restored state), only remembered."""
        held = [contribution for contribution in contributions if len(contribution) == 5]
        if not held:
            return
        for (kind, k, ke), deltas in self._landings(held, times).items():
            resolution = self._by_kind[kind]
            if k > resolution.last_closed and ke >= resolution.floor:
                if not landed:
                    self._land(resolution, ke, None, deltas)
                self._add(resolution.kind, k, ke, deltas)

    def turned(self, contributions: list[Contribution]) -> None:
        """Samples whose latest bucket moved on from `earlier` (where they counted until now):
        while the new bucket is open they still count there, and in the new bucket from its
        close; a new bucket closed already (a late event) is a plain move."""
        for (kind, k, ke), deltas in self._landings(contributions, 1).items():
            resolution = self._by_kind[kind]
            if k > resolution.last_closed:
                self._land(resolution, k, None, deltas)
                if ke >= resolution.floor:
                    self._add(resolution.kind, k, ke, deltas)
            elif k >= resolution.floor:
                self._land(resolution, k, ke, deltas)
                if ke >= resolution.floor:
                    self._land(resolution, ke, k, [(s, -d) for s, d in deltas])

    def expire(self, resolution: Resolution) -> None:
        """Take out what the buckets that closed held in earlier ones."""
        last, kind = resolution.last_closed, resolution.kind
        out: dict[int, Deltas] = {}
        for key in [key for key in self._open if key[0] == kind and key[1] <= last]:
            for (ke, series), value in self._open.pop(key).items():
                out.setdefault(ke, []).append((series, -value))
        for ke, deltas in out.items():
            if ke >= resolution.floor:
                self._land(resolution, ke, None, deltas)

    def _landings(
        self, contributions: list[Contribution], times: int
    ) -> dict[tuple[str, int, int], Deltas]:
        """Per resolution the samples land in, their bucket and earlier bucket: their deltas
        (a user's keys move on together, and land together)."""
        out: dict[tuple[str, int, int], Deltas] = {}
        for contribution in contributions:
            t, earlier = contribution[0], contribution[4]  # type: ignore[misc]
            only, deltas = sample_deltas(contribution, times)
            for r in self._resolutions:
                if only is None or only == r.kind:
                    key = (r.kind, t // r.step_ms, earlier // r.step_ms)
                    out.setdefault(key, []).extend(deltas)
        return out

    def _land(self, resolution: Resolution, k: int, other: int | None, deltas: Deltas) -> None:
        self._touch(resolution, k)
        resolution.land(k, other, deltas)

    def _add(self, kind: str, k: int, earlier: int, deltas: Deltas) -> None:
        held = self._open.setdefault((kind, k), {})
        for series, delta in deltas:
            key = (earlier, series)
            value = held.get(key, 0) + delta
            if value:
                held[key] = value
            else:
                del held[key]
