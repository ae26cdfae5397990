"""Bounded segment values, so no producer can grow the number of metric series without limit.

Per dimension, a value keeps its name when it is on the configured allow-list, or (with no list)
when it is among the first N distinct values seen; anything else becomes `other`. A missing value
is `unknown`. Neither `unknown` nor `other` uses up a place.

Each partition admits its first N values and remembers the event time it first saw each. The
merged view keeps, per dimension, the N values first seen earliest over all partitions and folds
the rest into `other` too (`fleet_names`), so the bound holds for the whole fleet, not per
partition. Every event whose value a partition folds is counted.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping

UNKNOWN = "unknown"
OTHER = "other"
RESERVED = frozenset({UNKNOWN, OTHER})

#: dimension -> admitted value -> event time (ms) it was first seen
Admitted = dict[str, dict[str, int]]


class SegmentNames:
    """Decides the name of each segment value on one partition, per dimension."""

    def __init__(
        self,
        max_values: int,
        allow: Mapping[str, frozenset[str]],
        admitted: Mapping[str, Mapping[str, int]] | None = None,
        folded: Mapping[str, int] | None = None,
    ) -> None:
        self.max_values = max_values
        self.allow = allow
        self.admitted: Admitted = {d: dict(v) for d, v in (admitted or {}).items()}
        self.folded: dict[str, int] = dict(folded or {})

    def admit(self, dimension: str, value: object, t_ms: int) -> None:
        """Record a value seen in an applied event: admit it, or count it as folded."""
        if not isinstance(value, str) or not value or value in RESERVED:
            return
        allowed = self.allow.get(dimension)
        if allowed is not None:  # the list decides; nothing is admitted (else the fleet's
            if value not in allowed:  # bound would keep none of the allowed values)
                self.folded[dimension] = self.folded.get(dimension, 0) + 1
            return
        seen = self.admitted.setdefault(dimension, {})
        if value in seen:
            return
        if len(seen) < self.max_values:
            seen[value] = t_ms
        else:
            self.folded[dimension] = self.folded.get(dimension, 0) + 1

    def name(self, dimension: str, value: object) -> str:
        """The bounded name of a raw value."""
        if not isinstance(value, str) or not value:
            return UNKNOWN
        if value in RESERVED:
            return value  # a producer's own 'unknown' or 'other' means just that
        allowed = self.allow.get(dimension)
        kept = (
            value in allowed if allowed is not None else value in self.admitted.get(dimension, ())
        )
        # interned: the state keeps one copy of each (bounded) name, not one per event
        return sys.intern(value) if kept else OTHER


def merge_admitted(parts: Iterable[Mapping[str, Mapping[str, int]]]) -> Admitted:
    """Admitted values of several partitions, each with its earliest first-seen time."""
    merged: Admitted = {}
    for admitted in parts:
        for dimension, values in admitted.items():
            target = merged.setdefault(dimension, {})
            for value, t in values.items():
                target[value] = min(t, target.get(value, t))
    return merged


def fleet_names(admitted: Admitted, max_values: int) -> dict[str, frozenset[str]]:
    """Per dimension, the values that keep their name fleet-wide: the N first seen earliest."""
    return {  # a dimension with none admitted has an allow-list (or no values): nothing to fold
        dimension: frozenset(sorted(values, key=lambda v: (values[v], v))[:max_values])
        for dimension, values in admitted.items()
        if values
    }
