"""The change alerts' windows and condition over simulated minutes, with the snapshot's own
arithmetic (stream/kpis/change.py: `estimate`, `Comparison`, `Watch.beyond`, which the tests show
equal to the Prometheus rules).

Time is in minutes; the stream time of the evaluation after minute t is T = t + 1. As the worker
keeps them (stream/state/windows.py): the short and confirmation windows hold the minutes ending
in (T - size, T]; a baseline the hours ending in (T - lag - size, T - lag]. Windows are read as
differences of cumulative sums. Prometheus evaluates the rules at least once a minute and the
windows move once a minute, so the condition is judged once a minute: an alert fires once it
has held for `for` (for + 1 evaluations in a row), and one run of it is one alarm.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate

from bench.alerts.volumes import Series, poisson
from stream.kpis.change import Comparison, Estimate, Watch, estimate

MINUTE_S = 60


def reach(watch: Watch) -> int:
    """Minutes of history the alert's windows need before it can be judged."""
    c = watch.change
    return (c.baseline_s + c.confirmation_s) // MINUTE_S + 60


class Windows:
    """Window sums of one series from its per-minute components."""

    def __init__(self, watch: Watch, columns: Sequence[Sequence[float]]) -> None:
        self.watch = watch
        self.names = watch.estimator.components
        self.cums = [[0.0, *accumulate(column)] for column in columns]
        c = watch.change
        self.short, self.confirmation = c.short_s // MINUTE_S, c.confirmation_s // MINUTE_S
        self.baseline = c.baseline_s // MINUTE_S
        # the baselines advance by the long step when longer than a day, else by the minute
        self.step = 60 if c.baseline_s > 86400 else 1

    def _sum(self, start: int, end: int) -> Estimate | None:
        """The estimate over the minutes [start, end)."""
        named = {n: cum[end] - cum[start] for n, cum in zip(self.names, self.cums, strict=False)}
        return estimate(self.watch.estimator, named)

    def _baseline(self, end_t: int, lag: int) -> Estimate | None:
        end = (end_t - lag) // self.step * self.step
        return self._sum(end - self.baseline, end)

    def short_test(self, end_t: int) -> Comparison:
        return Comparison(self._sum(end_t - self.short, end_t), self._baseline(end_t, self.short))

    def confirmation_test(self, end_t: int) -> Comparison:
        return Comparison(
            self._sum(end_t - self.confirmation, end_t),
            self._baseline(end_t, self.confirmation),
        )

    def holds(self, end_t: int) -> bool:
        """The alert's condition at stream time end_t (in minutes): `Watch.beyond`, with the
        confirmation window read only when the short one is beyond its threshold."""
        watch, c = self.watch, self.watch.change
        short = self.short_test(end_t)
        z = short.z
        if z is None or short.window is None or short.window.samples < c.min_samples:
            return False
        direction = watch.direction
        if not ((direction != "up" and z <= -c.z) or (direction != "down" and z >= c.z)):
            return False
        return watch.beyond(short, self.confirmation_test(end_t))


def alarms(holding: Sequence[bool], for_minutes: int) -> list[int]:
    """The minutes (indices) at which an alert starts firing: when its condition has held at
    for_minutes + 1 evaluations in a row; one alarm per run."""
    out, run = [], 0
    for i, held in enumerate(holding):
        run = run + 1 if held else 0
        if run == for_minutes + 1:
            out.append(i)
    return out


@dataclass
class Stationary:
    """One series over stationary days: its samples an hour and its false alarms."""

    series: Series
    per_hour: float
    alarms: int
    beyond_minutes: int  # evaluations at which the condition held (before `for`)


def stationary(
    series: list[Series],
    lib: list[list[list[float]]],
    days: float,
    seed: int,
    progress: Callable[[int], None] | None = None,
) -> list[Stationary]:
    """Every series over `days` of minutes drawn at random from the library (the same draw for
    all series: the segments of one dimension add up to the overall), judged every minute after
    the longest reach of history."""
    rng = random.Random(seed)
    warm = max(reach(s.watch) for s in series)
    evaluated = int(days * 1440)
    size = len(lib[0][0])
    drawn = [rng.randrange(size) for _ in range(warm + evaluated)]
    out = []
    for i, one in enumerate(series):
        watch = one.watch
        n = len(watch.estimator.components)
        columns = [[lib[i][c][m] for m in drawn] for c in range(n)]
        windows = Windows(watch, columns)
        holding = [windows.holds(t + 1) for t in range(warm, warm + evaluated)]
        count = sum(
            windows.cums[watch.estimator.components.index(k)][-1] for k in watch.estimator.count
        )
        out.append(
            Stationary(
                one,
                count / (warm + evaluated) * 60,
                len(alarms(holding, watch.change.for_s // MINUTE_S)),
                sum(holding),
            )
        )
        if progress is not None:
            progress(i + 1)
    return out


@dataclass(frozen=True)
class Classes:
    """Samples of a KPI as classes, each adding a vector to the estimator's components
    (an NPS promoter: one response, one promoter), with their shares before and during a
    change."""

    vectors: tuple[tuple[float, ...], ...]
    before: tuple[float, ...]
    during: tuple[float, ...]


def drop_delays(
    watch: Watch,
    classes: Classes,
    per_hour: float,
    lasting: int,
    trials: int,
    seed: int,
) -> list[int | None]:
    """Minutes from the start of a change lasting `lasting` minutes until the alert fires
    (None: not by `lasting` + 30 minutes), over `trials` runs at per_hour samples an hour, each
    with its own history and the change starting at another minute of the hour."""
    rng = random.Random(seed)
    warm = reach(watch)
    for_minutes = watch.change.for_s // MINUTE_S
    n = len(watch.estimator.components)
    out: list[int | None] = []
    for _ in range(trials):
        start = warm + rng.randrange(60)
        end = start + lasting + 30
        columns = [[0.0] * end for _ in range(n)]
        for minute in range(end):
            shares = classes.during if start <= minute < start + lasting else classes.before
            for vector, share in zip(classes.vectors, shares, strict=True):
                k = poisson(rng, per_hour / 60 * share)
                if k:
                    for c in range(n):
                        columns[c][minute] += k * vector[c]
        windows = Windows(watch, columns)
        run, fired = 0, None
        for t in range(start, end):
            run = run + 1 if windows.holds(t + 1) else 0
            if run == for_minutes + 1:
                fired = t + 1 - start
                break
        out.append(fired)
    return out
