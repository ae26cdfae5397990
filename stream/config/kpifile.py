"""The declarative KPI configuration file (`cxkpi.toml`): windows, timeouts, segments, alerts.

`load_kpi_config` reads and checks the whole file; any problem raises `ConfigError` naming the
file, the dotted key and what is allowed. `settings_overrides` turns the values that are also
settings into option text, so the worker can apply the file below environment variables and flags
(flag > environment > file > built-in default).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from stream.config import AUTO, ConfigError, window_problem
from stream.config.alerts import (
    KPI_RANGES,
    Alert,
    Alerting,
    alerting_defaults,
    kpi_alert,
)
from stream.config.change import WITHOUT_VARIANCE, Change, change_section, kpi_change
from stream.config.checker import Checker

#: repo root cxkpi.toml, the file used when none is given
DEFAULT_CONFIG_PATH: Path = Path(__file__).resolve().parents[2] / "cxkpi.toml"

#: segment dimensions an allow-list may name
DIMENSIONS = ("channel", "region", "team", "priority", "feature")
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
        "snapshot_stale_after": "1m",
    },
    "change": {},
    "kpis": {},
}


@dataclass(frozen=True)
class KpiSettings:
    """One KPI: whether it is computed and published, its optional threshold alert, and its
    change alert (None: none; on by default for every KPI of known variance)."""

    name: str
    enabled: bool
    alert: Alert | None
    change: Change | None = None


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
    alerting: Alerting = field(default_factory=Alerting)

    def changes(self) -> dict[str, Change]:
        """The change alerts of the KPIs switched on, by KPI name."""
        return {
            name: k.change for name, k in self.kpis.items() if k.enabled and k.change is not None
        }


def _parse(path: Path, doc: Mapping[str, Any]) -> KpiConfig:
    check = Checker(path)
    check.table(doc, "", tuple(_DEFAULTS))
    sections = {
        name: {
            **default,
            **check.table(
                doc.get(name, {}), name, tuple(default) if name not in ("kpis", "change") else None
            ),
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

    alerting = alerting_defaults(check, sections["alerting"])
    steps = (step_s, long_step_s)
    changes_on, change_defaults = change_section(
        check, sections["change"], steps, alerting.severity
    )
    kpis_doc = sections["kpis"]
    for name in kpis_doc:
        if name not in KPI_RANGES:
            raise check.fail(
                f"kpis.{name}", f"unknown KPI; expected one of {', '.join(KPI_RANGES)}"
            )
    kpis: dict[str, KpiSettings] = {}
    for name in KPI_RANGES:
        table = check.table(kpis_doc.get(name, {}), f"kpis.{name}", ("enabled", "alert", "change"))
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            raise check.bad(f"kpis.{name}.enabled", enabled, "true or false")
        alert = None
        if "alert" in table:
            alert = kpi_alert(check, name, table["alert"], sizes, alerting)
        default_change = changes_on and name not in WITHOUT_VARIANCE
        change = kpi_change(
            check, name, table.get("change", default_change), steps, change_defaults
        )
        kpis[name] = KpiSettings(name, enabled, alert, change)

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


@cache
def default_kpi_config() -> KpiConfig:
    """The built-in defaults, for `--config none` (read once: it is frozen)."""
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
