"""The KPI alerts of the configuration file: which threshold each KPI may take, the per-KPI
`alert` tables and the `[alerting]` defaults, checked with messages that name the key."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from stream.config.checker import DURATION_TEXT, Checker

_RATIO = (0.0, 1.0, "ratio")
_SECONDS = (0.0, math.inf, "seconds")

#: KPI name -> (lowest, highest, unit) a threshold may take. Bounds are inclusive, except for
#: the duration KPIs (unit "seconds"), whose thresholds must be greater than zero.
KPI_RANGES: dict[str, tuple[float, float, str]] = {
    "cart_abandonment": _RATIO,
    "checkout_abandonment": _RATIO,
    "conversion": _RATIO,
    "average_order_value": (0.0, math.inf, "amount in the order currency"),
    "upsell": _RATIO,
    "resolution_time": _SECONDS,
    "first_response_time": _SECONDS,
    "first_contact_resolution": _RATIO,
    "open_backlog": (0.0, math.inf, "open tickets"),
    "backlog_age": (0.0, math.inf, "age in seconds"),
    "reopen_rate": _RATIO,
    "nps": (-100.0, 100.0, "score"),
    "csat": (0.0, 100.0, "percent"),
    "ces": (1.0, 7.0, "score on the 1-7 ease scale"),
    "sentiment": (-100.0, 100.0, "net sentiment"),
    "net_emotion": (-100.0, 100.0, "score"),
    "emotions": _RATIO,
    "review_rating": (1.0, 5.0, "mean rating, 1-5"),
    "customers": (0.0, 1.0, "churn ratio"),
    "active_users": (0.0, math.inf, "users"),
    "new_users": (0.0, math.inf, "users"),
    "session_duration": _SECONDS,
    "bounce_rate": _RATIO,
    "pages_per_session": (0.0, math.inf, "page views per session"),
    "time_to_value": _SECONDS,
    "activation_rate": _RATIO,
    "feature_adoption": _RATIO,
    "stickiness": (0.0, 1.0, "ratio of 24h to 30d active users"),
}
#: KPIs whose alerts are on the p90 of a distribution of seconds
DURATION_KPIS = frozenset(k for k, (_, _, unit) in KPI_RANGES.items() if unit == "seconds")
#: KPIs that are a gauge of now: alerts take no window and no min_samples
LIVE_KPIS = frozenset({"open_backlog", "backlog_age", "customers", "stickiness"})
_ALERT_KEYS = (
    "above",
    "below",
    "p90_above",
    "oldest_above",
    "window",
    "min_samples",
    "for",
    "severity",
)
SEVERITIES = ("critical", "warning", "info")
_KINDS = ("above", "below", "p90_above", "oldest_above")


@dataclass(frozen=True)
class Alert:
    """Alert when the KPI's value (or its p90, for durations) crosses threshold in the window."""

    kind: str  # "above" | "below" | "p90_above" | "oldest_above" (backlog_age)
    threshold: float  # in the KPI's unit; seconds for p90_above and oldest_above
    window_s: int | None  # None for the live gauge (open_backlog)
    min_samples: int
    for_s: int = 300  # how long the condition must hold before the alert fires
    severity: str = "warning"


@dataclass(frozen=True)
class Alerting:
    """Defaults of the KPI alerts and the thresholds of the processor's own health alerts."""

    for_s: int = 300
    severity: str = "warning"
    runbook_url: str = "docs/runbook.md"
    dead_letter_ratio: float = 0.01  # share of a topic's records dead-lettered (over 5m)
    dead_letter_min_events: int = 100  # records in 5m before the dead-letter share counts
    stalled_for_s: int = 300  # lag and no progress for this long: consumer stalled
    silent_for_s: int = 900  # no event applied on a topic for this long
    uncovered_for_s: int = 120  # partitions not covered exactly once for this long
    snapshot_stale_after_s: int = 60  # no merged snapshot written in Redis for this long


def _range_text(name: str) -> str:
    lo, hi, unit = KPI_RANGES[name]
    if hi == math.inf:
        return f"a number >= {lo:g} ({unit})"
    return f"a number from {lo:g} to {hi:g} ({unit})"


def _severity(check: Checker, value: object, key: str) -> str:
    if value not in SEVERITIES:
        raise check.bad(key, value, f"one of {', '.join(SEVERITIES)}")
    return str(value)


def alerting_defaults(check: Checker, table: dict[str, Any]) -> Alerting:
    ratio = table["dead_letter_ratio"]
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= 1:
        raise check.bad("alerting.dead_letter_ratio", ratio, "a number greater than 0, at most 1")
    runbook = table["runbook_url"]
    if not isinstance(runbook, str) or not runbook.strip():
        raise check.bad("alerting.runbook_url", runbook, "a URL or path text")
    return Alerting(
        for_s=check.whole_seconds(table["for"], "alerting.for", allow_zero=True),
        severity=_severity(check, table["severity"], "alerting.severity"),
        runbook_url=runbook,
        dead_letter_ratio=float(ratio),
        dead_letter_min_events=check.integer(
            table["dead_letter_min_events"], "alerting.dead_letter_min_events", 1, math.inf
        ),
        stalled_for_s=check.whole_seconds(table["stalled_for"], "alerting.stalled_for"),
        silent_for_s=check.whole_seconds(table["silent_for"], "alerting.silent_for"),
        uncovered_for_s=check.whole_seconds(table["uncovered_for"], "alerting.uncovered_for"),
        snapshot_stale_after_s=check.whole_seconds(
            table["snapshot_stale_after"], "alerting.snapshot_stale_after"
        ),
    )


def kpi_alert(
    check: Checker, name: str, value: object, sizes: dict[int, str], defaults: Alerting
) -> Alert:
    key = f"kpis.{name}.alert"
    example = (
        '{ p90_above = "8h", window = "24h", min_samples = 20 }'
        if name in DURATION_KPIS
        else '{ oldest_above = "7d" }'
        if name == "backlog_age"
        else "{ above = 0.5, min_samples = 100 }"
        if name == "customers"
        else "{ above = 500 }"
        if name in LIVE_KPIS
        else '{ below = 0.5, window = "24h", min_samples = 20 }'
    )
    if not isinstance(value, dict):
        raise check.bad(key, value, f"a table such as {example}")
    alert = check.table(value, key, _ALERT_KEYS)
    kinds = [k for k in _KINDS if k in alert]
    if len(kinds) != 1:
        got = ", ".join(kinds) if kinds else "none"
        raise check.fail(key, f"expected exactly one of {', '.join(_KINDS)} (got {got})")
    kind = kinds[0]
    kind_key = f"{key}.{kind}"
    raw = alert[kind]
    if name == "backlog_age" or kind == "oldest_above":
        if name != "backlog_age" or kind != "oldest_above":
            raise check.fail(
                kind_key,
                "not allowed: backlog_age takes exactly oldest_above (the oldest open ticket's "
                f"age, {DURATION_TEXT}, greater than zero), and only backlog_age takes it",
            )
        threshold = check.duration(raw, kind_key)
        if threshold <= 0:
            raise check.bad(kind_key, raw, "a duration greater than zero")
    elif name in DURATION_KPIS:
        if kind != "p90_above":
            raise check.fail(
                kind_key,
                f"not allowed: {name} is a duration KPI; expected p90_above "
                f"({DURATION_TEXT}, greater than zero)",
            )
        threshold = check.duration(raw, kind_key)
        if threshold <= 0:
            raise check.bad(kind_key, raw, "a duration greater than zero")
    else:
        if kind == "p90_above":
            raise check.fail(
                kind_key,
                f"not allowed: p90_above is only for the duration KPIs "
                f"({', '.join(sorted(DURATION_KPIS))}); expected above or below "
                f"({_range_text(name)})",
            )
        if name == "customers" and kind != "above":
            raise check.fail(
                kind_key,
                "not allowed: customers alerts on churn rising; expected above "
                f"({_range_text(name)})",
            )
        lo, hi, _ = KPI_RANGES[name]
        if (
            isinstance(raw, bool)
            or not isinstance(raw, int | float)
            or not math.isfinite(raw)
            or not lo <= raw <= hi
        ):
            raise check.bad(kind_key, raw, _range_text(name))
        threshold = float(raw)

    window_s: int | None = None
    min_samples = 1
    if name in LIVE_KPIS:
        # customers: min_samples is the previous customers the churn ratio is taken from;
        # stickiness: the 30 d active users it divides by
        counted = name in ("customers", "stickiness")
        extras = ("window",) if counted else ("window", "min_samples")
        for extra in extras:
            if extra in alert:
                raise check.fail(
                    f"{key}.{extra}",
                    f"not allowed: {name} is a live gauge, not windowed; expected only "
                    f"{'above, min_samples' if name == 'customers' else 'above or below'}"
                    f"{', min_samples' if name == 'stickiness' else ''}",
                )
        if "min_samples" in alert:
            min_samples = check.integer(alert["min_samples"], f"{key}.min_samples", 1, math.inf)
    else:
        allowed_windows = ", ".join(sizes.values())
        if "window" not in alert:
            raise check.fail(
                f"{key}.window", f"missing; expected one of the window sizes {allowed_windows}"
            )
        raw_window = alert["window"]
        seconds = check.duration(raw_window, f"{key}.window")
        if seconds not in sizes:
            raise check.bad(
                f"{key}.window",
                raw_window,
                f"one of the window sizes {allowed_windows} (windows.sizes)",
            )
        window_s = int(seconds)
        if "min_samples" in alert:
            min_samples = check.integer(alert["min_samples"], f"{key}.min_samples", 1, math.inf)
    for_s = (
        check.whole_seconds(alert["for"], f"{key}.for", allow_zero=True)
        if "for" in alert
        else defaults.for_s
    )
    severity = (
        _severity(check, alert["severity"], f"{key}.severity")
        if "severity" in alert
        else defaults.severity
    )
    return Alert(kind, threshold, window_s, min_samples, for_s, severity)
