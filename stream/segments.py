"""Bounded segment values, so no producer can grow the number of metric series without limit.

Per dimension, a value keeps its name when it is on the configured allow-list, or (with no list)
when it is among the first N distinct values seen; anything else becomes `other`. A missing value
is `unknown`. Neither `unknown` nor `other` uses up a place.
"""

from __future__ import annotations

from collections.abc import Mapping

UNKNOWN = "unknown"
OTHER = "other"


class SegmentNames:
    """Decides the published name of each segment value, per dimension."""

    def __init__(
        self,
        max_values: int,
        allow: Mapping[str, frozenset[str]],
        admitted: Mapping[str, list[str]] | None = None,
    ) -> None:
        self.max_values = max_values
        self.allow = allow
        self.admitted: dict[str, list[str]] = {d: list(v) for d, v in (admitted or {}).items()}
        self._sets = {d: set(v) for d, v in self.admitted.items()}
        self.changed = False

    def name(self, dimension: str, value: object) -> str:
        """The bounded name of a raw value (records the value when it is admitted)."""
        if not isinstance(value, str) or not value:
            return UNKNOWN
        allowed = self.allow.get(dimension)
        if allowed is not None:
            return value if value in allowed else OTHER
        seen = self._sets.setdefault(dimension, set())
        if value in seen:
            return value
        if value in (UNKNOWN, OTHER) or len(seen) >= self.max_values:
            return OTHER
        seen.add(value)
        self.admitted.setdefault(dimension, []).append(value)
        self.changed = True
        return value
