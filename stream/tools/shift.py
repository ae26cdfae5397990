"""A change injected into generated traffic (`cxkpi generate --shift`): NPS points or cart
abandonment points added for one segment over a span of event time, to see change alerts fire
(tests/integration/test_change_alerts.py, docs/monitoring.md)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from stream.config import parse_duration

#: The KPIs a shift moves, with the segment dimensions of their events.
KPIS = {"nps": ("channel", "region", "team"), "cart_abandonment": ("channel", "region")}
SYNTAX = "KPI:POINTS[:DIMENSION=VALUE][@FROM[+FOR]], e.g. nps:-15:team=billing@10m+2h"


@dataclass(frozen=True)
class Shift:
    """`points` added to a KPI (NPS points; cart abandonment in percentage points) for the
    entities of one segment (all when `dimension` is None) started from `start_s` after the
    first event for `duration_s`. An NPS shift moves half the points from promoters to
    detractors (or back), so passives stay as many."""

    kpi: str
    points: float
    dimension: str | None = None
    value: str | None = None
    start_s: float = 0.0
    duration_s: float = math.inf

    def __post_init__(self) -> None:
        if self.kpi not in KPIS:
            raise ValueError(f"a shift moves one of {', '.join(KPIS)}, not {self.kpi!r}")
        if self.dimension is not None and self.dimension not in KPIS[self.kpi]:
            raise ValueError(f"{self.kpi} has no segment dimension {self.dimension!r}")
        if not math.isfinite(self.points) or self.start_s < 0 or self.duration_s <= 0:
            raise ValueError("a shift needs finite points, a start >= 0 and a duration > 0")

    def applies(self, kpi: str, now: float, segments: Mapping[str, str]) -> bool:
        """Whether an entity of this KPI started at `now` (s) with these segments moves."""
        return (
            kpi == self.kpi
            and self.start_s <= now < self.start_s + self.duration_s
            and (self.dimension is None or segments.get(self.dimension) == self.value)
        )


def parse_shift(text: str) -> Shift:
    """`cxkpi generate --shift`'s value: see SYNTAX."""
    head, _, timing = text.partition("@")
    parts = head.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(SYNTAX)
    try:
        points = float(parts[1])
    except ValueError:
        raise ValueError(SYNTAX) from None
    dimension = value = None
    if len(parts) == 3:
        dimension, sep, value = parts[2].partition("=")
        if not sep or not value:
            raise ValueError(SYNTAX)
    start, _, lasting = timing.partition("+")
    return Shift(
        parts[0],
        points,
        dimension,
        value,
        parse_duration(start) if start else 0.0,
        parse_duration(lasting) if lasting else math.inf,
    )
