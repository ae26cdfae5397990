"""The KPI configuration file: the example loads, every mistake is named, overrides round-trip."""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from pathlib import Path

import pytest

from stream.config import ConfigError
from stream.config.kpifile import (
    DEFAULT_CONFIG_PATH,
    KPI_RANGES,
    Alert,
    Alerting,
    KpiConfig,
    load_kpi_config,
    settings_overrides,
)
from stream.config.settings import Settings
from stream.kpis.catalog import CATALOG

REPO_ROOT = Path(__file__).resolve().parents[3]

EXAMPLE_ALERTS = {
    "cart_abandonment": Alert("above", 0.85, 3600, 50),
    "checkout_abandonment": Alert("above", 0.6, 3600, 30),
    "conversion": Alert("below", 0.1, 3600, 100),
    "average_order_value": None,
    "upsell": None,
    "resolution_time": Alert("p90_above", 8 * 3600, 86400, 20),
    "first_response_time": Alert("p90_above", 3600, 86400, 20),
    "first_contact_resolution": Alert("below", 0.5, 86400, 20),
    "open_backlog": Alert("above", 500, None, 1),
    "backlog_age": Alert("oldest_above", 7 * 86400, None, 1),
    "reopen_rate": Alert("above", 0.2, 86400, 20),
    "nps": Alert("below", 0, 30 * 86400, 100, severity="critical"),
    "csat": Alert("below", 80, 86400, 30),
    "ces": Alert("below", 4.5, 86400, 30),
    "sentiment": Alert("below", -20, 86400, 50),
    "net_emotion": Alert("below", 0, 86400, 50),
    "emotions": None,
    "review_rating": Alert("below", 3.5, 86400, 20),
    "customers": Alert("above", 0.9, None, 100),
    "active_users": None,
    "new_users": None,
    "session_duration": None,
    "bounce_rate": None,
    "pages_per_session": None,
    "time_to_value": None,
    "activation_rate": Alert("below", 0.2, 30 * 86400, 50),
    "feature_adoption": None,
    "stickiness": Alert("below", 0.1, None, 100),
}


def write(tmp_path: Path, text: str, name: str = "bad-kpis.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_default_path_is_the_repo_root_example() -> None:
    assert DEFAULT_CONFIG_PATH == REPO_ROOT / "cxkpi.toml"
    assert DEFAULT_CONFIG_PATH.is_file()


def test_example_file_loads_with_the_documented_values() -> None:
    config = load_kpi_config(DEFAULT_CONFIG_PATH)
    assert config.path == DEFAULT_CONFIG_PATH
    assert config.windows_s == (300, 3600, 86400, 7 * 86400, 30 * 86400)
    assert (config.step_s, config.long_step_s, config.grace_s) == (60, 3600, 300)
    assert config.cart_inactivity_s == 1800
    assert config.idle_partition_s == 60.0
    assert config.ticket_retention_s is None  # auto: the longest window plus grace
    assert config.cart_retention_s == 7 * 86400
    assert config.max_segment_values == 20
    assert config.allow == {}
    assert list(config.kpis) == list(KPI_RANGES)
    assert all(k.enabled for k in config.kpis.values())
    assert {name: k.alert for name, k in config.kpis.items()} == EXAMPLE_ALERTS
    assert all(name == k.name for name, k in config.kpis.items())
    assert config.alerting == Alerting()  # the file spells out the built-in defaults
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.step_s = 1  # type: ignore[misc]


def test_known_kpis_match_the_catalog_and_ranges() -> None:
    assert set(KPI_RANGES) == {k.name for k in CATALOG}
    for name in ("cart_abandonment", "checkout_abandonment", "conversion", "upsell"):
        assert KPI_RANGES[name][:2] == (0, 1)
    assert KPI_RANGES["first_contact_resolution"][:2] == (0, 1)
    assert KPI_RANGES["reopen_rate"][:2] == (0, 1)
    assert KPI_RANGES["nps"][:2] == (-100, 100)
    assert KPI_RANGES["csat"][:2] == (0, 100)
    assert KPI_RANGES["ces"][:2] == (1, 7)
    assert KPI_RANGES["net_emotion"][:2] == (-100, 100)
    assert KPI_RANGES["review_rating"][:2] == (1, 5)
    assert KPI_RANGES["open_backlog"][:2] == (0, math.inf)
    assert KPI_RANGES["average_order_value"][:2] == (0, math.inf)
    assert KPI_RANGES["resolution_time"][2] == KPI_RANGES["first_response_time"][2] == "seconds"


def test_empty_file_takes_the_defaults(tmp_path: Path) -> None:
    config = load_kpi_config(write(tmp_path, ""))
    example = load_kpi_config(DEFAULT_CONFIG_PATH)
    for field in dataclasses.fields(KpiConfig):
        if field.name not in ("path", "kpis"):
            assert getattr(config, field.name) == getattr(example, field.name), field.name
    assert all(k.enabled and k.alert is None for k in config.kpis.values())
    assert list(config.kpis) == list(KPI_RANGES)


def test_partial_file_and_other_accepted_forms(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[windows]
sizes = ["2m", "10m"]
step = "2m"
grace = "0s"
[timeouts]
idle_partition = "250ms"
ticket_retention = 86400
cart_retention = "2d"
[segments]
max_values = 7
[segments.allow]
channel = ["web", "app", "web"]
team = ["billing"]
[kpis.nps]
enabled = false
alert = { below = -100, window = "10m" }
[kpis.open_backlog]
alert = { below = 0 }
[kpis.resolution_time]
alert = { p90_above = 5400, window = 120, min_samples = 3 }
[kpis.customers]
alert = { above = 0.4, min_samples = 25 }
""",
    )
    config = load_kpi_config(path)
    assert (config.windows_s, config.step_s, config.grace_s) == ((120, 600), 120, 0)
    assert config.cart_inactivity_s == 1800
    assert config.idle_partition_s == 0.25
    assert config.ticket_retention_s == 86400
    assert config.cart_retention_s == 2 * 86400
    assert config.max_segment_values == 7
    assert config.allow == {"channel": frozenset({"web", "app"}), "team": frozenset({"billing"})}
    assert config.kpis["nps"].enabled is False
    assert config.kpis["nps"].alert == Alert("below", -100, 600, 1)
    assert config.kpis["open_backlog"].alert == Alert("below", 0, None, 1)
    assert config.kpis["resolution_time"].alert == Alert("p90_above", 5400, 120, 3)
    assert config.kpis["customers"].alert == Alert("above", 0.4, None, 25)
    assert config.kpis["ces"].enabled and config.kpis["ces"].alert is None


KNOWN = "cart_abandonment, checkout_abandonment, conversion, average_order_value, upsell"

INVALID = [
    # unknown tables and keys
    (
        "[window]\nstep = '1m'",
        "window",
        "expected one of windows, timeouts, segments, alerting, change, kpis",
    ),
    ("top = 1", "top", "expected one of windows, timeouts, segments, alerting, change, kpis"),
    ("windows = 5", "windows", "expected a table"),
    ("[windows]\nsize = ['5m']", "windows.size", "expected one of sizes, step, long_step, grace"),
    (
        "[timeouts]\ncart = '1m'",
        "timeouts.cart",
        "expected one of cart_inactivity, idle_partition, ticket_retention, cart_retention",
    ),
    ("[segments]\nmax = 3", "segments.max", "expected one of max_values, allow"),
    ("[kpis.nps]\nenable = true", "kpis.nps.enable", "expected one of enabled, alert"),
    ("[kpis]\nnps = true", "kpis.nps", "expected a table"),
    ("[kpis.churn]", "kpis.churn", f"unknown KPI; expected one of {KNOWN}"),
    ("[kpis.churn]", "kpis.churn", "nps, csat, ces"),
    # enabled
    ("[kpis.nps]\nenabled = 'yes'", "kpis.nps.enabled", "expected true or false"),
    ("[kpis.nps]\nenabled = 1", "kpis.nps.enabled", "expected true or false"),
    # windows and step
    (
        "[windows]\nsizes = ['5m', '90s']",
        "windows.sizes",
        "'90s': expected a positive multiple of windows.step (60s)",
    ),
    ("[windows]\nsizes = ['0s']", "windows.sizes", "positive multiple of windows.step (60s)"),
    (
        "[windows]\nsizes = ['5m', '1441m']",
        "windows.sizes",
        "'1441m': expected a positive multiple of windows.long_step (3600s), as it is longer",
    ),
    ("[windows]\nsizes = ['401d']", "windows.sizes", "'401d': expected a window of at most 400d"),
    (
        "[windows]\nlong_step = '90s'",
        "windows.long_step",
        "'90s': expected a multiple of windows.step (60s)",
    ),
    ("[windows]\nsizes = ['5m', '300s']", "windows.sizes", "each size once"),
    ("[windows]\nsizes = []", "windows.sizes", "a non-empty list of durations"),
    ("[windows]\nsizes = '5m'", "windows.sizes", "a non-empty list of durations"),
    ("[windows]\nsizes = ['soon']", "windows.sizes", "a duration such as 30s, 5m, 1h"),
    ("[windows]\nstep = 'soon'", "windows.step", "'soon': expected a duration such as 30s, 5m"),
    ("[windows]\nstep = '0s'", "windows.step", "a duration greater than zero"),
    ("[windows]\nstep = '1.5s'", "windows.step", "a whole number of seconds"),
    ("[windows]\nstep = true", "windows.step", "a duration such as"),
    ("[windows]\ngrace = '-1m'", "windows.grace", "a duration such as"),
    ("[windows]\ngrace = -60", "windows.grace", "a duration such as"),
    # timeouts
    ("[timeouts]\ncart_inactivity = '0s'", "timeouts.cart_inactivity", "greater than zero"),
    ("[timeouts]\ncart_inactivity = 'later'", "timeouts.cart_inactivity", "a duration such as"),
    ("[timeouts]\nidle_partition = '0ms'", "timeouts.idle_partition", "greater than zero"),
    ("[timeouts]\nidle_partition = 'x'", "timeouts.idle_partition", "a duration such as"),
    ("[timeouts]\nticket_retention = '0d'", "timeouts.ticket_retention", "greater than zero"),
    ("[timeouts]\nticket_retention = 'a week'", "timeouts.ticket_retention", "a duration"),
    ("[timeouts]\ncart_retention = '0s'", "timeouts.cart_retention", "greater than zero"),
    # thresholds outside the KPI's range
    (
        "[kpis.nps]\nalert = { below = 150, window = '1h' }",
        "kpis.nps.alert.below",
        "150: expected a number from -100 to 100 (score)",
    ),
    (
        "[kpis.csat]\nalert = { above = 100.5, window = '1h' }",
        "kpis.csat.alert.above",
        "a number from 0 to 100 (percent)",
    ),
    (
        "[kpis.ces]\nalert = { below = 0.5, window = '1h' }",
        "kpis.ces.alert.below",
        "a number from 1 to 7",
    ),
    (
        "[kpis.conversion]\nalert = { below = 1.5, window = '1h' }",
        "kpis.conversion.alert.below",
        "a number from 0 to 1 (ratio)",
    ),
    (
        "[kpis.reopen_rate]\nalert = { above = -0.1, window = '1h' }",
        "kpis.reopen_rate.alert.above",
        "a number from 0 to 1 (ratio)",
    ),
    (
        "[kpis.open_backlog]\nalert = { above = -1 }",
        "kpis.open_backlog.alert.above",
        "a number >= 0",
    ),
    (
        "[kpis.average_order_value]\nalert = { below = -5, window = '1h' }",
        "kpis.average_order_value.alert.below",
        "a number >= 0",
    ),
    (
        "[kpis.nps]\nalert = { below = nan, window = '1h' }",
        "kpis.nps.alert.below",
        "a number from -100 to 100",
    ),
    (
        "[kpis.nps]\nalert = { below = '0', window = '1h' }",
        "kpis.nps.alert.below",
        "a number from -100 to 100",
    ),
    (
        "[kpis.resolution_time]\nalert = { p90_above = '0s', window = '1h' }",
        "kpis.resolution_time.alert.p90_above",
        "a duration greater than zero",
    ),
    (
        "[kpis.resolution_time]\nalert = { p90_above = 'long', window = '1h' }",
        "kpis.resolution_time.alert.p90_above",
        "a duration such as",
    ),
    # alert shape
    (
        "[kpis.nps]\nalert = { above = 50, below = 0, window = '1h' }",
        "kpis.nps.alert",
        "expected exactly one of above, below, p90_above, oldest_above (got above, below)",
    ),
    (
        "[kpis.nps]\nalert = { window = '1h' }",
        "kpis.nps.alert",
        "expected exactly one of above, below, p90_above, oldest_above (got none)",
    ),
    (
        "[kpis.nps]\nalert = { below = 0, window = '1h', min = 3 }",
        "kpis.nps.alert.min",
        "expected one of above, below, p90_above, oldest_above, window, min_samples",
    ),
    ("[kpis.nps]\nalert = 5", "kpis.nps.alert", "expected a table such as"),
    (
        "[kpis.conversion]\nalert = { p90_above = '1h', window = '1h' }",
        "kpis.conversion.alert.p90_above",
        "only for the duration KPIs (first_response_time, resolution_time, session_duration, "
        "time_to_value); "
        "expected above or below (a number from 0 to 1 (ratio))",
    ),
    (
        "[kpis.resolution_time]\nalert = { above = 3600, window = '1h' }",
        "kpis.resolution_time.alert.above",
        "resolution_time is a duration KPI; expected p90_above",
    ),
    (
        "[kpis.first_response_time]\nalert = { below = 60, window = '1h' }",
        "kpis.first_response_time.alert.below",
        "expected p90_above",
    ),
    (
        "[kpis.nps]\nalert = { below = 0, window = '2h' }",
        "kpis.nps.alert.window",
        "'2h': expected one of the window sizes 5m, 1h, 24h",
    ),
    (
        "[windows]\nsizes = ['10m']\n[kpis.nps]\nalert = { below = 0, window = '5m' }",
        "kpis.nps.alert.window",
        "one of the window sizes 10m",
    ),
    (
        "[kpis.nps]\nalert = { below = 0 }",
        "kpis.nps.alert.window",
        "missing; expected one of the window sizes 5m, 1h, 24h",
    ),
    (
        "[kpis.open_backlog]\nalert = { above = 5, window = '1h' }",
        "kpis.open_backlog.alert.window",
        "live gauge, not windowed; expected only above or below",
    ),
    (
        "[kpis.open_backlog]\nalert = { above = 5, min_samples = 3 }",
        "kpis.open_backlog.alert.min_samples",
        "expected only above or below",
    ),
    (
        "[kpis.customers]\nalert = { above = 0.5, window = '30d' }",
        "kpis.customers.alert.window",
        "live gauge, not windowed; expected only above, min_samples",
    ),
    (
        "[kpis.customers]\nalert = { below = 0.5 }",
        "kpis.customers.alert.below",
        "not allowed: customers alerts on churn rising; expected above (a number from 0 to 1",
    ),
    (
        "[kpis.customers]\nalert = { above = 1.5 }",
        "kpis.customers.alert.above",
        "invalid value 1.5: expected a number from 0 to 1 (churn ratio)",
    ),
    (
        "[kpis.customers]\nalert = { above = 0.5, min_samples = 0 }",
        "kpis.customers.alert.min_samples",
        "0: expected a whole number >= 1",
    ),
    # min_samples
    (
        "[kpis.nps]\nalert = { below = 0, window = '1h', min_samples = 0 }",
        "kpis.nps.alert.min_samples",
        "0: expected a whole number >= 1",
    ),
    (
        "[kpis.nps]\nalert = { below = 0, window = '1h', min_samples = 2.5 }",
        "kpis.nps.alert.min_samples",
        "expected a whole number >= 1",
    ),
    (
        "[kpis.nps]\nalert = { below = 0, window = '1h', min_samples = '10' }",
        "kpis.nps.alert.min_samples",
        "expected a whole number >= 1",
    ),
    # segments
    ("[segments]\nmax_values = 0", "segments.max_values", "a whole number from 1 to 1000"),
    ("[segments]\nmax_values = 1001", "segments.max_values", "a whole number from 1 to 1000"),
    ("[segments]\nmax_values = '20'", "segments.max_values", "a whole number from 1 to 1000"),
    ("[segments]\nmax_values = 2.5", "segments.max_values", "a whole number from 1 to 1000"),
    ("[segments]\nmax_values = true", "segments.max_values", "a whole number from 1 to 1000"),
    ("[segments]\nallow = 3", "segments.allow", "expected a table"),
    (
        "[segments.allow]\nsku = ['a']",
        "segments.allow.sku",
        "expected one of channel, region, team, priority",
    ),
    (
        "[segments.allow]\nchannel = 'web'",
        "segments.allow.channel",
        "a non-empty list of non-empty strings",
    ),
    (
        "[segments.allow]\nchannel = ['web', '']",
        "segments.allow.channel",
        "a non-empty list of non-empty strings",
    ),
    ("[segments.allow]\nchannel = [1]", "segments.allow.channel", "non-empty strings"),
    ("[segments.allow]\nregion = []", "segments.allow.region", "a non-empty list"),
    ("[segments.allow]\nteam = ['other']", "segments.allow.team", "none of them other or unknown"),
]


@pytest.mark.parametrize(("text", "key", "allowed"), INVALID)
def test_invalid_files_name_the_file_key_and_allowed_values(
    tmp_path: Path, text: str, key: str, allowed: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_kpi_config(path)
    message = str(error.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert "bad-kpis.toml" in message
    assert allowed in message, message


def test_invalid_toml_reports_the_parser_message(tmp_path: Path) -> None:
    text = "[windows]\nstep = 1m\n"
    path = write(tmp_path, text)
    with pytest.raises(tomllib.TOMLDecodeError) as parser:
        tomllib.loads(text)
    with pytest.raises(ConfigError) as error:
        load_kpi_config(path)
    assert str(error.value) == f"{path}: invalid TOML: {parser.value}"
    assert "line 2" in str(error.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_kpi_config(tmp_path / "nowhere.toml")
    assert "nowhere.toml" in str(error.value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        """
[windows]
sizes = ["2m", "10m", "1d"]
step = "2m"
grace = "0s"
[timeouts]
cart_inactivity = "90s"
idle_partition = "250ms"
ticket_retention = "8d"
[segments]
max_values = 7
""",
        "[timeouts]\nidle_partition = 0.0000001\n",
    ],
)
def test_overrides_are_accepted_by_settings_with_the_same_numbers(
    tmp_path: Path, text: str
) -> None:
    config = load_kpi_config(write(tmp_path, text, "cxkpi.toml"))
    overrides = settings_overrides(config)
    assert set(overrides) == {
        "windows",
        "step",
        "long_step",
        "grace",
        "inactivity_timeout",
        "idle_timeout",
        "ticket_retention",
        "cart_retention",
        "max_segment_values",
    }
    settings = Settings.load({**overrides, "config": str(config.path)}, environ={})
    assert settings.windows == config.windows_s
    assert settings.step == config.step_s
    assert settings.long_step == config.long_step_s
    assert settings.grace == config.grace_s
    assert settings.inactivity_timeout == config.cart_inactivity_s
    assert settings.idle_timeout == config.idle_partition_s
    longest = settings.reach_s() + config.grace_s  # the change alerts' baselines may reach further
    assert settings.ticket_retention == (config.ticket_retention_s or longest)
    assert settings.cart_retention == config.cart_retention_s
    assert settings.max_segment_values == config.max_segment_values


def test_example_overrides_text() -> None:
    assert settings_overrides(load_kpi_config(DEFAULT_CONFIG_PATH)) == {
        "windows": "300s,3600s,86400s,604800s,2592000s",
        "step": "60s",
        "long_step": "3600s",
        "grace": "300s",
        "inactivity_timeout": "1800s",
        "idle_timeout": "60s",
        "ticket_retention": "auto",
        "cart_retention": "604800s",
        "max_segment_values": "20",
    }


def test_file_values_sit_below_environment_and_flags(tmp_path: Path) -> None:
    config = load_kpi_config(write(tmp_path, '[windows]\ngrace = "2m"\nstep = "30s"\n'))
    file_env = {f"CXKPI_{k.upper()}": v for k, v in settings_overrides(config).items()}
    settings = Settings.load({}, {**file_env, "CXKPI_GRACE": "3m"})
    assert (settings.step, settings.grace) == (30, 180)
    settings = Settings.load({"grace": "4m"}, {**file_env, "CXKPI_GRACE": "3m"})
    assert settings.grace == 240
    assert Settings.load({}, file_env).grace == 120


def test_alert_for_and_severity_default_from_the_alerting_section(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[alerting]\nfor = "10m"\nseverity = "info"\n'
        '[kpis.nps]\nalert = { below = 0, window = "1h" }\n'
        '[kpis.csat]\nalert = { below = 80, window = "1h", for = "0s", severity = "critical" }\n',
    )
    config = load_kpi_config(path)
    assert config.alerting.for_s == 600
    nps, csat = config.kpis["nps"].alert, config.kpis["csat"].alert
    assert nps is not None and (nps.for_s, nps.severity) == (600, "info")
    assert csat is not None and (csat.for_s, csat.severity) == (0, "critical")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[alerting]\nseverity = "page"', "alerting.severity: invalid value 'page'"),
        ("[alerting]\ndead_letter_ratio = 0", "alerting.dead_letter_ratio: invalid value 0"),
        ('[alerting]\nstalled_for = "0s"', "alerting.stalled_for: invalid value '0s'"),
        (
            '[alerting]\nsnapshot_stale_after = "0s"',
            "alerting.snapshot_stale_after: invalid value '0s'",
        ),
        ("[alerting]\ndead_letter_min_events = 0", "alerting.dead_letter_min_events"),
        ('[alerting]\nrunbook_url = ""', "alerting.runbook_url: invalid value ''"),
        ('[alerting]\npage_after = "1m"', "alerting.page_after: unknown key"),
        (
            '[kpis.nps]\nalert = { below = 0, window = "1h", severity = "loud" }',
            "kpis.nps.alert.severity: invalid value 'loud'",
        ),
        (
            '[kpis.nps]\nalert = { below = 0, window = "1h", for = "-1m" }',
            "kpis.nps.alert.for: invalid value '-1m'",
        ),
    ],
)
def test_bad_alerting_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_kpi_config(write(tmp_path, text))
