"""Configuration, read once at start: the settings (`settings.py`: flags, environment, file,
defaults) and the declarative KPI file (`kpifile.py`, `cxkpi.toml`).

The two things both need live here, so that neither imports the other's internals: the error a
bad value raises, and the duration syntax.
"""

from __future__ import annotations

import re


class ConfigError(ValueError):
    """A setting has a value the processor cannot run with."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(text: str) -> float:
    """'90s', '5m', '1h', '1d', '250ms' or a plain number of seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError("a duration such as 30s, 5m, 1h, 1d or a number of seconds")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def window_name(size_s: int) -> str:
    """A short label for a window size: 300 -> 5m, 3600 -> 1h, 86400 -> 24h, 604800 -> 7d."""
    if size_s > 86400 and size_s % 86400 == 0:
        return f"{size_s // 86400}d"
    for unit, seconds in (("h", 3600), ("m", 60)):
        if size_s % seconds == 0:
            return f"{size_s // seconds}{unit}"
    return f"{size_s}s"
