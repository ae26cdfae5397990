"""The declarative KPI configuration file (`cxkpi.toml`): windows, timeouts, segments, alerts.

`load_kpi_config` reads and checks the whole file; any problem raises `ConfigError` naming the
file, the dotted key and what is allowed. `settings_overrides` turns the values that are also
settings into option text, so the worker can apply the file below environment variables and flags
(flag > environment > file > built-in default).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from stream.config import AUTO, ConfigError, parse_duration, window_problem

#: repo root cxkpi.toml, the file used when none is given
DEFAULT_CONFIG_PATH: Path = Path(__file__).resolve().parents[2] / "cxkpi.toml"

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
    "customers": (0.0, 1.0, "churn ratio"),
}
#: KPIs whose alerts are on the p90 of a distribution of seconds
DURATION_KPIS = frozenset(k for k, (_, _, unit) in KPI_RANGES.items() if unit == "seconds")
#: KPIs that are a gauge of now: alerts take no window and no min_samples
LIVE_KPIS = frozenset({"open_backlog", "backlog_age", "customers"})
#: segment dimensions an allow-list may name
DIMENSIONS = ("channel", "region", "team", "priority")
_RESERVED_SEGMENTS = frozenset({"other", "unknown"})

_DEFAULTS: dict[str, dict[str, Any]] = {
    "windows": {
        "sizes": ["5m", "1h", "24h", "7d", "30d"],
        "step": "1m",
        "long_step": "1h",
        "grace": "5m",
    },
    "timeouts": {
        "cart_inactivity": "30m",
        "idle_partition": "1m",
        "ticket_retention": AUTO,
        "cart_retention": "7d",
    },
    "segments": {"max_values": 20, "allow": {}},
    "alerting": {
        "for": "5m",
        "severity": "warning",
        "runbook_url": "docs/runbook.md",
        "dead_letter_ratio": 0.01,
        "dead_letter_min_events": 100,
        "stalled_for": "5m",
        "silent_for": "15m",
        "uncovered_for": "2m",
    },
    "kpis": {},
}
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
_DURATION_TEXT = "a duration such as 30s, 5m, 1h, 1d or a number of seconds"


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


@dataclass(frozen=True)
class KpiSettings:
    """One KPI: whether it is computed and published, and its optional alert."""

    name: str
    enabled: bool
    alert: Alert | None


@dataclass(frozen=True)
class KpiConfig:
    """The whole checked file; durations in seconds."""

    path: Path
    windows_s: tuple[int, ...]
    step_s: int
    long_step_s: int
    grace_s: int
    cart_inactivity_s: int
    idle_partition_s: float
    #: None: auto, the longest window plus grace
    ticket_retention_s: int | None
    cart_retention_s: int
    max_segment_values: int
    allow: dict[str, frozenset[str]]
    kpis: dict[str, KpiSettings]
    alerting: Alerting = Alerting()


class _Checker:
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
            raise self.bad(key, value, _DURATION_TEXT)
        text = f"{Decimal(repr(value)):f}" if isinstance(value, float) else str(value)
        try:
            seconds = parse_duration(text)
        except ValueError:
            raise self.bad(key, value, _DURATION_TEXT) from None
        if not math.isfinite(seconds):
            raise self.bad(key, value, _DURATION_TEXT)
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


def _range_text(name: str) -> str:
    lo, hi, unit = KPI_RANGES[name]
    if hi == math.inf:
        return f"a number >= {lo:g} ({unit})"
    return f"a number from {lo:g} to {hi:g} ({unit})"


def _severity(check: _Checker, value: object, key: str) -> str:
    if value not in SEVERITIES:
        raise check.bad(key, value, f"one of {', '.join(SEVERITIES)}")
    return str(value)


def _alerting(check: _Checker, table: dict[str, Any]) -> Alerting:
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
    )


def _alert(
    check: _Checker, name: str, value: object, sizes: dict[int, str], defaults: Alerting
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
                f"age, {_DURATION_TEXT}, greater than zero), and only backlog_age takes it",
            )
        threshold = check.duration(raw, kind_key)
        if threshold <= 0:
            raise check.bad(kind_key, raw, "a duration greater than zero")
    elif name in DURATION_KPIS:
        if kind != "p90_above":
            raise check.fail(
                kind_key,
                f"not allowed: {name} is a duration KPI; expected p90_above "
                f"({_DURATION_TEXT}, greater than zero)",
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
        # customers: min_samples is the previous customers the churn ratio is taken from
        extras = ("window",) if name == "customers" else ("window", "min_samples")
        for extra in extras:
            if extra in alert:
                raise check.fail(
                    f"{key}.{extra}",
                    f"not allowed: {name} is a live gauge, not windowed; expected only "
                    f"{'above, min_samples' if name == 'customers' else 'above or below'}",
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


def _parse(path: Path, doc: Mapping[str, Any]) -> KpiConfig:
    check = _Checker(path)
    check.table(doc, "", tuple(_DEFAULTS))
    sections = {
        name: {
            **default,
            **check.table(doc.get(name, {}), name, tuple(default) if name != "kpis" else None),
        }
        for name, default in _DEFAULTS.items()
    }

    windows = sections["windows"]
    step_s = check.whole_seconds(windows["step"], "windows.step")
    long_step_s = check.whole_seconds(windows["long_step"], "windows.long_step")
    if long_step_s % step_s:
        raise check.bad(
            "windows.long_step", windows["long_step"], f"a multiple of windows.step ({step_s}s)"
        )
    grace_s = check.whole_seconds(windows["grace"], "windows.grace", allow_zero=True)
    raw_sizes = windows["sizes"]
    sizes_expected = (
        f"a non-empty list of durations up to 400d, each a multiple of step ({step_s}s), or of "
        f'long_step ({long_step_s}s) when longer than 24h, e.g. ["5m", "1h", "30d"]'
    )
    if not isinstance(raw_sizes, list) or not raw_sizes:
        raise check.bad("windows.sizes", raw_sizes, sizes_expected)
    sizes: dict[int, str] = {}
    for raw in raw_sizes:
        seconds = check.duration(raw, "windows.sizes")
        problem = window_problem(seconds, step_s, long_step_s, prefix="windows.")
        if problem:
            raise check.bad("windows.sizes", raw, problem)
        if int(seconds) in sizes:
            raise check.bad(
                "windows.sizes", raw, f"each size once ({sizes[int(seconds)]!r} repeats)"
            )
        sizes[int(seconds)] = str(raw)

    timeouts = sections["timeouts"]
    cart_inactivity_s = check.whole_seconds(timeouts["cart_inactivity"], "timeouts.cart_inactivity")
    idle_partition_s = check.duration(timeouts["idle_partition"], "timeouts.idle_partition")
    if idle_partition_s <= 0:
        raise check.bad(
            "timeouts.idle_partition", timeouts["idle_partition"], "a duration greater than zero"
        )
    ticket_retention_s = (
        None
        if timeouts["ticket_retention"] == AUTO
        else check.whole_seconds(timeouts["ticket_retention"], "timeouts.ticket_retention")
    )
    cart_retention_s = check.whole_seconds(timeouts["cart_retention"], "timeouts.cart_retention")

    segments = sections["segments"]
    max_values = check.integer(segments["max_values"], "segments.max_values", 1, 1000)
    allow: dict[str, frozenset[str]] = {}
    for dimension, names in check.table(segments["allow"], "segments.allow", DIMENSIONS).items():
        key = f"segments.allow.{dimension}"
        expected = (
            'a non-empty list of non-empty strings such as ["web", "app"], '
            f"none of them {' or '.join(sorted(_RESERVED_SEGMENTS))}"
        )
        if not isinstance(names, list) or not names:
            raise check.bad(key, names, expected)
        for item in names:
            if not isinstance(item, str) or not item.strip() or item in _RESERVED_SEGMENTS:
                raise check.bad(key, item, expected)
        allow[dimension] = frozenset(names)

    alerting = _alerting(check, sections["alerting"])
    kpis_doc = sections["kpis"]
    for name in kpis_doc:
        if name not in KPI_RANGES:
            raise check.fail(
                f"kpis.{name}", f"unknown KPI; expected one of {', '.join(KPI_RANGES)}"
            )
    kpis: dict[str, KpiSettings] = {}
    for name in KPI_RANGES:
        table = check.table(kpis_doc.get(name, {}), f"kpis.{name}", ("enabled", "alert"))
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            raise check.bad(f"kpis.{name}.enabled", enabled, "true or false")
        alert = _alert(check, name, table["alert"], sizes, alerting) if "alert" in table else None
        kpis[name] = KpiSettings(name, enabled, alert)

    return KpiConfig(
        path=path,
        windows_s=tuple(sizes),
        step_s=step_s,
        long_step_s=long_step_s,
        grace_s=grace_s,
        cart_inactivity_s=cart_inactivity_s,
        idle_partition_s=idle_partition_s,
        ticket_retention_s=ticket_retention_s,
        cart_retention_s=cart_retention_s,
        max_segment_values=max_values,
        allow=allow,
        kpis=kpis,
        alerting=alerting,
    )


def load_kpi_config(path: Path = DEFAULT_CONFIG_PATH) -> KpiConfig:
    """Read and check a KPI configuration file.

    Raises ConfigError naming the file, the dotted key and what is allowed.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            doc = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the KPI configuration: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return _parse(path, doc)


def default_kpi_config() -> KpiConfig:
    """The built-in defaults, for `--config none`."""
    return _parse(Path("built-in defaults"), {})


def _seconds_text(seconds: float) -> str:
    """Seconds as duration text that parse_duration reads back exactly (no exponent)."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{Decimal(repr(seconds)):f}s"


def settings_overrides(config: KpiConfig) -> dict[str, str]:
    """The file's values as text for the Settings options they correspond to.

    Apply them below the environment and flags, e.g. as environment defaults:
    `file_env = {f"CXKPI_{name.upper()}": text for name, text in overrides.items()}` then
    `Settings.load(flags, {**file_env, **os.environ})`.
    """
    return {
        "windows": ",".join(_seconds_text(s) for s in config.windows_s),
        "step": _seconds_text(config.step_s),
        "long_step": _seconds_text(config.long_step_s),
        "grace": _seconds_text(config.grace_s),
        "inactivity_timeout": _seconds_text(config.cart_inactivity_s),
        "idle_timeout": _seconds_text(config.idle_partition_s),
        "ticket_retention": AUTO
        if config.ticket_retention_s is None
        else _seconds_text(config.ticket_retention_s),
        "cart_retention": _seconds_text(config.cart_retention_s),
        "max_segment_values": str(config.max_segment_values),
    }
