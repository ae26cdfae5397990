"""Change alerts of the configuration file: the per-KPI `change` table, checked with messages
that name the key, and the windows the alerts need.

A change alert compares a KPI over a short window with its baseline, the baseline window that
ends where the short one starts, by a z-test, confirmed over a longer window against the
baseline that ends where that one starts (docs/monitoring.md, "Change alerts"). The short and
confirmation windows are windows like the configured ones; the baselines are windows that end
a while before stream time (`lagged_window`). A worker keeps the ones the configured sizes lack
too: the alerts work with any `windows.sizes` (docs/settings.md says what that costs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from stream.config import MAX_WINDOW_S, lagged_window, window_name, window_problem
from stream.config.alerts import LIVE_KPIS, SEVERITIES
from stream.config.checker import Checker

#: KPIs whose estimator has no known variance: the gauges of now, the average order value, the
#: emotions' shares (one per emotion), the distinct-user counts and the pages per session (the
#: spec names the ones with one). Every other KPI takes a change alert, on by default;
#: tests/unit/kpis/test_change.py checks this against the kinds of the catalogue.
WITHOUT_VARIANCE = frozenset(
    {
        "average_order_value",
        "emotions",
        "active_users",
        "new_users",
        "pages_per_session",
        "feature_adoption",
        *LIVE_KPIS,
    }
)
#: The directions a KPI may change in: its value falling, rising, or either.
DIRECTIONS = ("down", "up", "both")
_KEYS = (
    "short",
    "confirmation",
    "baseline",
    "z",
    "confirmation_z",
    "min_samples",
    "direction",
    "for",
    "severity",
)


@dataclass(frozen=True)
class Change:
    """A change alert: |z| >= z over `short_s` against the baseline of `baseline_s` ending
    where the short window starts, and |z| >= confirmation_z over `confirmation_s` against the
    baseline ending where that one starts, in `direction`, with at least `min_samples` samples
    in the short window and in its baseline, held for `for_s`. Defaults: the spec's."""

    short_s: int = 3600
    confirmation_s: int = 6 * 3600
    baseline_s: int = 7 * 86400
    z: float = 3.0
    confirmation_z: float = 2.0
    min_samples: int = 30
    #: "down", "up" or "both"; None: the direction in which the KPI gets worse (its catalogue
    #: entry says which)
    direction: str | None = None
    for_s: int = 900
    severity: str = "warning"

    def windows_s(self) -> tuple[int, int]:
        """The two windows compared with a baseline: short, then confirmation."""
        return self.short_s, self.confirmation_s

    def window_keys(self) -> tuple[int, ...]:
        """The keys (ms) of the four windows this alert reads: short, confirmation, and the
        baseline before each."""
        short, confirmation = self.short_s * 1000, self.confirmation_s * 1000
        return (
            short,
            confirmation,
            lagged_window(self.baseline_s, self.short_s),
            lagged_window(self.baseline_s, self.confirmation_s),
        )


def change_windows(changes: Any) -> tuple[int, ...]:
    """The window keys (ms) that the given `Change`s need, each once, in a fixed order."""
    keys: dict[int, None] = {}
    for change in changes:
        if change is not None:
            keys.update(dict.fromkeys(change.window_keys()))
    return tuple(keys)


def _window(
    check: Checker, table: dict[str, Any], key: str, default: int, steps: tuple[int, int]
) -> int:
    """A window size of the table (`key` its dotted name), valid for the steps."""
    field = key.rsplit(".", 1)[1]
    if field not in table:
        return default
    seconds = check.duration(table[field], key)
    problem = window_problem(seconds, *steps, prefix="windows.")
    if problem:
        raise check.bad(key, table[field], problem)
    return int(seconds)


def _z(check: Checker, table: dict[str, Any], key: str, default: float) -> float:
    field = key.rsplit(".", 1)[1]
    if field not in table:
        return default
    raw = table[field]
    number = not isinstance(raw, bool) and isinstance(raw, int | float)
    if not number or not math.isfinite(raw) or raw <= 0:
        raise check.bad(key, raw, "a number greater than 0, e.g. 3")
    return float(raw)


def change_section(
    check: Checker, table: dict[str, Any], steps: tuple[int, int], severity: str
) -> tuple[bool, Change]:
    """The `[change]` section: whether KPIs without a `change` of their own have one, and the
    values every KPI's change alert starts from (the spec's, else these)."""
    check.table(table, "change", ("enabled", *(k for k in _KEYS if k != "direction")))
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise check.bad("change.enabled", enabled, "true or false")
    values = {k: v for k, v in table.items() if k != "enabled"}
    defaults = _change(check, "change", values, steps, Change(severity=severity))
    return enabled, defaults


def kpi_change(
    check: Checker, name: str, value: object, steps: tuple[int, int], defaults: Change
) -> Change | None:
    """The `kpis.<name>.change` value: a table (missing keys take `defaults`: the `[change]`
    section's, else the spec's), true (all defaults) or false (no change alert)."""
    key = f"kpis.{name}.change"
    if name in WITHOUT_VARIANCE and value is not False:
        raise check.fail(
            key,
            f"not allowed: {name} has no estimator of known variance to test a change with; "
            "change alerts are for the shares, net scores and means (false is accepted)",
        )
    if isinstance(value, bool):
        return defaults if value else None
    example = '{ short = "1h", confirmation = "6h", baseline = "7d", z = 3, min_samples = 30 }'
    if not isinstance(value, dict):
        raise check.bad(key, value, f"true, false or a table such as {example}")
    return _change(check, key, value, steps, defaults)


def _change(
    check: Checker, key: str, value: dict[str, Any], steps: tuple[int, int], default: Change
) -> Change:
    table = check.table(value, key, _KEYS)
    short = _window(check, table, f"{key}.short", default.short_s, steps)
    confirmation = _window(check, table, f"{key}.confirmation", default.confirmation_s, steps)
    baseline = _window(check, table, f"{key}.baseline", default.baseline_s, steps)
    if confirmation <= short:
        raise check.fail(
            f"{key}.confirmation",
            f"{window_name(confirmation)} is not longer than short ({window_name(short)}): "
            "the confirmation window must be the longer one",
        )
    if baseline <= confirmation:
        raise check.fail(
            f"{key}.baseline",
            f"{window_name(baseline)} is not longer than confirmation "
            f"({window_name(confirmation)}): the baseline must be the longest window",
        )
    if baseline + confirmation > MAX_WINDOW_S:
        raise check.fail(
            f"{key}.baseline",
            f"{window_name(baseline)} before the {window_name(confirmation)} confirmation "
            "reaches back more than 400d",
        )
    direction = table.get("direction", default.direction)
    if direction is not None and direction not in DIRECTIONS:
        raise check.bad(f"{key}.direction", direction, f"one of {', '.join(DIRECTIONS)}")
    severity = table.get("severity", default.severity)
    if severity not in SEVERITIES:
        raise check.bad(f"{key}.severity", severity, f"one of {', '.join(SEVERITIES)}")
    return Change(
        short_s=short,
        confirmation_s=confirmation,
        baseline_s=baseline,
        z=_z(check, table, f"{key}.z", default.z),
        confirmation_z=_z(check, table, f"{key}.confirmation_z", default.confirmation_z),
        min_samples=check.integer(table["min_samples"], f"{key}.min_samples", 1, math.inf)
        if "min_samples" in table
        else default.min_samples,
        direction=direction,
        for_s=check.whole_seconds(table["for"], f"{key}.for", allow_zero=True)
        if "for" in table
        else default.for_s,
        severity=str(severity),
    )
