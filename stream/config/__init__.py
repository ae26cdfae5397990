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


#: Windows longer than this advance by the long step; the others by the step.
LONG_WINDOW_OVER_S = 86400
#: The largest window that may be configured.
MAX_WINDOW_S = 400 * 86400


def is_long_window(size_s: float) -> bool:
    """Whether a window advances by the long step: a 30 d window costs 720 one-hour buckets,
    not 43,200 one-minute buckets."""
    return size_s > LONG_WINDOW_OVER_S


def window_step(size_s: int, step_s: int, long_step_s: int) -> int:
    """The step a window of this size advances by."""
    return long_step_s if is_long_window(size_s) else step_s


def check_windows(sizes: tuple[int, ...], step_s: int, long_step_s: int) -> str | None:
    """What is wrong with a window list and its steps (None when nothing is), shared by the
    settings and the KPI file so that a flag and the file are judged alike."""
    if long_step_s % step_s:
        return f"long_step ({long_step_s}s) must be a multiple of step ({step_s}s)"
    for size in sizes:
        own = window_step(size, step_s, long_step_s)
        which = "long_step" if is_long_window(size) else "step"
        if size <= 0 or size % own:
            return f"{size}s is not a positive multiple of {which} ({own}s)"
        if size > MAX_WINDOW_S:
            return f"{size}s is longer than the longest window allowed (400d)"
    return None
