"""Reading values out of a parsed TOML file, with errors that name the file, the dotted key
and what is allowed (stream/config/kpifile.py and its alerts use it)."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path
from typing import Any

from stream.config import ConfigError, parse_duration

DURATION_TEXT = "a duration such as 30s, 5m, 1h, 1d or a number of seconds"


class Checker:
    """Reads values out of the parsed file, raising ConfigError that names file and key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {problem}")

    def bad(self, key: str, value: object, expected: str) -> ConfigError:
        return self.fail(key, f"invalid value {value!r}: expected {expected}")

    def table(
        self, value: object, key: str, allowed: tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        """A TOML table whose keys are all in allowed (any keys when allowed is None)."""
        if not isinstance(value, dict):
            raise self.bad(key, value, "a table")
        if allowed is not None:
            for name in value:
                if name not in allowed:
                    where = f"{key}.{name}" if key else name
                    what = "table" if not key else "key"
                    raise self.fail(where, f"unknown {what}; expected one of {', '.join(allowed)}")
        return value

    def duration(self, value: object, key: str) -> float:
        """A duration given as text (or a number of seconds), in seconds."""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.bad(key, value, DURATION_TEXT)
        text = f"{Decimal(repr(value)):f}" if isinstance(value, float) else str(value)
        try:
            seconds = parse_duration(text)
        except ValueError:
            raise self.bad(key, value, DURATION_TEXT) from None
        if not math.isfinite(seconds):
            raise self.bad(key, value, DURATION_TEXT)
        return seconds

    def whole_seconds(self, value: object, key: str, *, allow_zero: bool = False) -> int:
        """A duration that is a whole number of seconds, > 0 (or >= 0 with allow_zero)."""
        seconds = self.duration(value, key)
        bound = "0 or more" if allow_zero else "greater than zero"
        if seconds != int(seconds):
            raise self.bad(key, value, f"a whole number of seconds (e.g. 90s, 5m), {bound}")
        if seconds < 0 or (seconds == 0 and not allow_zero):
            raise self.bad(key, value, f"a duration {bound}")
        return int(seconds)

    def integer(self, value: object, key: str, lo: int, hi: float) -> int:
        """A TOML integer in lo..hi."""
        expected = (
            f"a whole number from {lo} to {hi}" if hi != math.inf else f"a whole number >= {lo}"
        )
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.bad(key, value, expected)
        return value
