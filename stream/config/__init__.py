"""Configuration, read once at start: the settings (`settings.py`: flags, environment, file,
defaults) and the declarative KPI file (`kpifile.py`, `cxkpi.toml`).

The two things both need live here, so that neither imports the other's internals: the error a
bad value raises, and the duration syntax.
"""

from __future__ import annotations

import re


class ConfigError(ValueError):
    """A setting has a value the processor cannot run with."""


#: The value of a setting that follows from others (the ticket retention: the longest window
#: plus grace).
AUTO = "auto"

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


#: A lagged window's key is -(size_s * LAG_BASE + lag_s): negative, so it is never a size in
#: ms, and the same on every worker (keys are merged across the fleet).
LAG_BASE = 10**8


def lagged_window(size_s: int, lag_s: int) -> int:
    """The key of the window of size_s that ends lag_s before stream time: the buckets that end
    in (S - lag - size, S - lag]. A change alert's baseline is one (stream/config/change.py).
    A key of a window that ends at stream time is its size in ms."""
    if not 0 < lag_s < LAG_BASE or size_s <= 0:
        raise ValueError(f"no lagged window of {size_s}s ending {lag_s}s before stream time")
    return -(size_s * LAG_BASE + lag_s)


def window_span(key: int) -> tuple[int, int]:
    """(size, lag) in ms of a window key: a size in ms, or a lagged window's key."""
    if key >= 0:
        return key, 0
    size_s, lag_s = divmod(-key, LAG_BASE)
    return size_s * 1000, lag_s * 1000


def window_label(key: int) -> str:
    """The name of a window key: '1h', and '7d_before_1h' for the 7 d ending 1 h ago."""
    size_ms, lag_ms = window_span(key)
    name = window_name(size_ms // 1000)
    return f"{name}_before_{window_name(lag_ms // 1000)}" if lag_ms else name


#: Windows longer than this advance by the long step; the others by the step.
LONG_WINDOW_OVER_S = 86400
#: The largest window that may be configured.
MAX_WINDOW_S = 400 * 86400


def is_long_window(size_s: float) -> bool:
    """Whether a window advances by the long step: a 30 d window costs 720 one-hour buckets,
    not 43,200 one-minute buckets."""
    return size_s > LONG_WINDOW_OVER_S


def window_problem(size_s: float, step_s: int, long_step_s: int, prefix: str = "") -> str | None:
    """What a window size should be instead (None when it is fine), for the settings and the KPI
    file alike; `prefix` names the steps as the caller's user knows them ('windows.')."""
    long = is_long_window(size_s)
    name, own = ("long_step", long_step_s) if long else ("step", step_s)
    if size_s <= 0 or size_s != int(size_s) or int(size_s) % own:
        longer = ", as it is longer than 24h" if long else ""
        return f"a positive multiple of {prefix}{name} ({own}s){longer}"
    if size_s > MAX_WINDOW_S:
        return "a window of at most 400d"
    return None
