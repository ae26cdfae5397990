"""Step buckets at one or more resolutions, and how they are rebuilt for other windows or steps.

A partition keeps one *resolution* per step size: the step (default 1 m) for the windows of up to
24 h, the long step (default 1 h) for longer ones. A sample lands in the bucket of its event time
at every resolution, so an event costs one bucket write per resolution whatever the number and
size of windows, and a 30 d window holds 720 hourly buckets, not 43,200 one-minute ones.

Each resolution knows from when its buckets hold every event (`coverage`): from the start of the
source log (None) on a state built from it, or from some later time when the state was rebuilt
for other windows or steps than its changelog was written with. A window whose buckets reach back
before that is incomplete until it has slid past it; it is then published again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from stream.config import is_long_window, window_span
from stream.state.windows import SeriesKey, Totals, Window, add_into, keeps


@dataclass
class Resolution:
    """The buckets of one step size and the windows that advance by it."""

    kind: str  # the changelog key prefix of its buckets
    step_ms: int
    windows: list[Window]
    buckets: dict[int, Totals] = field(default_factory=dict)
    floor: int = 0  # buckets below this index are in no window and are dropped
    #: Event time (ms, a bucket start) from which the buckets hold every event; None: all along.
    complete_from: int | None = None
    _last_closed: int = -(2**62)  # before stream time: every bucket is open

    @cached_property
    def largest(self) -> Window:
        """The window whose start sets the floor: the one reaching furthest back (the window
        list never changes)."""
        return max(self.windows, key=lambda w: w.reach_ms)

    @property
    def coverage(self) -> int | None:
        """From when the buckets kept hold every event (those below the floor are gone)."""
        if self.complete_from is None and self.floor <= 0:
            return None
        return max(self.complete_from or 0, self.floor * self.step_ms)

    @property
    def last_closed(self) -> int:
        """The index of the last closed bucket (the one before stream time's)."""
        return self._last_closed

    def advance(self, stream_time: int) -> list[int]:
        """Slide the windows; returns the buckets that fell below every window (the caller
        records them as deleted, then drops them)."""
        self._last_closed = stream_time // self.step_ms - 1
        for window in self.windows:
            window.advance(stream_time, self.buckets)
        lo = self.largest.lo
        if lo <= self.floor:
            return []
        self.floor = lo
        return [k for k in self.buckets if k < lo]

    def land(self, k: int, other: int | None, deltas: Iterable[tuple[SeriesKey, int]]) -> None:
        """Add deltas to bucket k and to the windows holding it; for a move, `other` is the
        bucket of the opposite change, and a window holding both is left alone."""
        bucket = self.buckets.setdefault(k, {})
        # every window ends at the last closed bucket, or before it (the lagged ones, listed
        # after the others): a sample in the open one is in none
        windows = self.windows
        closed = k <= windows[0].hi
        covering = [w for w in windows if w.lo <= k <= w.hi] if closed else []
        if other is not None:
            covering = [w for w in covering if not w.lo <= other <= w.hi]
        targets = [bucket, *(w.changed() for w in covering if w.measures is None)]
        limited = [(w.changed(), w.measures) for w in covering if w.measures is not None]
        for series, delta in deltas:
            for totals in targets:
                value = totals.get(series, 0) + delta
                if value:
                    totals[series] = value
                else:  # zero: drop the series (a 0 ms sample adds 0 to one not there yet)
                    totals.pop(series, None)
            for totals, measures in limited:
                if keeps(measures, series[0]):
                    add_into(totals, {series: delta})
        if not bucket:
            del self.buckets[k]

    def rebuild_windows(self, stream_time: int) -> None:
        self._last_closed = stream_time // self.step_ms - 1
        for window in self.windows:
            window.rebuild(stream_time, self.buckets)
        self.floor = self.largest.lo

    def incomplete(self, stream_time: int | None) -> dict[int, tuple[int, int]]:
        """Windows that reach back before the coverage: key -> (covered from, complete at)."""
        since = self.complete_from
        if since is None or stream_time is None:
            return {}
        return {
            w.key: (since, since + w.reach_ms)
            for w in self.windows
            if (stream_time - w.reach_ms) // self.step_ms * self.step_ms < since
        }


@dataclass(frozen=True)
class Kept:
    """The buckets of one resolution as a changelog holds them."""

    step_ms: int
    buckets: Mapping[int, Totals]
    coverage: int | None  # from when they hold every event; None: all along


def regroup(
    kept: Iterable[Kept], step_ms: int, stream_time: int | None
) -> tuple[dict[int, Totals], int | None]:
    """Buckets of `step_ms` rebuilt from the kept buckets of any step that divides it, and from
    when they hold every event.

    The source covering the most is used; a bucket made of source buckets from before its
    coverage is partial, so coverage starts at the first whole bucket. With no usable source the
    buckets start empty and hold every event from the next bucket on (events before it are
    in no bucket of this step).
    """
    usable = [k for k in kept if step_ms % k.step_ms == 0]
    if not usable:
        if stream_time is None:
            return {}, None
        return {}, (stream_time // step_ms + 1) * step_ms
    source = min(usable, key=lambda k: (-1 if k.coverage is None else k.coverage, -k.step_ms))
    if source.step_ms == step_ms:
        buckets = {k: dict(totals) for k, totals in source.buckets.items()}
    else:
        buckets: dict[int, Totals] = {}
        ratio = step_ms // source.step_ms
        for k, totals in source.buckets.items():
            add_into(buckets.setdefault(k // ratio, {}), totals)
        buckets = {k: totals for k, totals in buckets.items() if totals}
    if source.coverage is None:
        return buckets, None
    return buckets, -(-source.coverage // step_ms) * step_ms


def restore(
    resolutions: list[Resolution],
    kept: dict[str, dict[int, Totals]],
    written: dict[str, list[Any]] | None,
    step_ms: int,
    stream_time: int | None,
) -> list[tuple[str, int, Totals | None]]:
    """Give the resolutions their buckets from those a changelog holds (bucket kind -> index
    -> totals), written with the steps and coverage of `written` (kind -> [step, coverage]),
    which may be other windows or steps than these: rebuilt from any finer step that divides
    theirs, with the windows reaching back before what is covered marked incomplete. Returns
    the buckets that differ from the changelog's, with their value there: (kind, index, totals
    or None)."""
    if written is None:  # written before steps were recorded: its buckets are of the step
        first = min((min(b) for b in kept.values() if b), default=None)
        written = {"b": [step_ms, None if first is None else first * step_ms]}
    sources = [Kept(step, kept.get(kind, {}), cover) for kind, (step, cover) in written.items()]
    for resolution in resolutions:
        old = written.get(resolution.kind)
        if old is not None and old[0] == resolution.step_ms:
            resolution.buckets = kept.get(resolution.kind, {})
            resolution.complete_from = old[1]
        else:
            resolution.buckets, resolution.complete_from = regroup(
                sources, resolution.step_ms, stream_time
            )
    now = {resolution.kind: resolution.buckets for resolution in resolutions}
    differ: list[tuple[str, int, Totals | None]] = []
    for kind in kept.keys() | now.keys():  # what changed, or went
        before, after = kept.get(kind, {}), now.get(kind, {})
        differ += [
            (kind, k, before.get(k))
            for k in before.keys() | after.keys()
            if after.get(k) != before.get(k)
        ]
    return differ


@dataclass(frozen=True)
class StateConfig:
    """The settings state arithmetic depends on."""

    step_ms: int
    grace_ms: int
    windows_ms: tuple[int, ...]
    max_segment_values: int
    allow: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: The step of the windows longer than 24 h; None: every window advances by step_ms.
    long_step_ms: int | None = None
    #: Keep what the rules decide about forgotten facts (orders to forward) until taken.
    collect_decided: bool = False
    #: Source partitions whose watermarks drive stream time (the customers topic: one per
    #: cart-events partition); 0: stream time follows the events' own times.
    watermark_sources: int = 0
    #: Window key -> the base measures it holds (stream/state/windows.py, `keeps`); a window
    #: not named holds every series. The windows only change alerts read hold their KPIs'.
    window_measures: Mapping[int, frozenset[str]] = field(default_factory=dict)

    def resolutions(self) -> list[Resolution]:
        """One resolution per step in use, the finest first: 'b' buckets of the step, 'l'
        buckets of the long step. `windows_ms` are window keys (stream/config: a size, or a
        lagged window's key); each resolution lists its windows by lag, those ending at stream
        time first."""
        by_step: dict[int, list[tuple[int, int, int]]] = {}
        for key in self.windows_ms:
            size, lag = window_span(key)
            long = self.long_step_ms is not None and is_long_window(size / 1000)
            step = self.long_step_ms if long else self.step_ms
            by_step.setdefault(step, []).append((size, lag, key))
        return [
            Resolution(
                kind,
                step,
                [
                    Window(size, step, lag_ms=lag, measures=self.window_measures.get(key))
                    for size, lag, key in sorted(by_step[step], key=lambda span: span[1])
                ],
            )
            for kind, step in zip("bl", sorted(by_step), strict=False)
        ]
