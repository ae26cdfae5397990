"""The change alerts of the KPI file: the spec's defaults, every form accepted, every mistake
named on one line, and the windows the alerts add to the worker's."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.config import (
    ConfigError,
    lagged_window,
    window_label,
    window_span,
)
from stream.config.change import WITHOUT_VARIANCE, Change, change_windows
from stream.config.kpifile import DEFAULT_CONFIG_PATH, KPI_RANGES, load_kpi_config
from stream.config.settings import Settings

HOUR, DAY = 3600, 86400


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "cxkpi.toml"
    path.write_text(text, encoding="utf-8")
    return load_kpi_config(path)


def test_every_kpi_of_known_variance_has_the_spec_defaults() -> None:
    """1 h at |z| >= 3, confirmed over 6 h at |z| >= 2, against 7 d baselines, 30 samples,
    held 15 minutes, in the KPI's worse direction."""
    config = load_kpi_config(DEFAULT_CONFIG_PATH)
    spec = Change(HOUR, 6 * HOUR, 7 * DAY, 3.0, 2.0, 30, None, 15 * 60, "warning")
    for name, kpi in config.kpis.items():
        assert kpi.change == (None if name in WITHOUT_VARIANCE else spec), name
    assert set(config.changes()) == set(KPI_RANGES) - WITHOUT_VARIANCE
    assert {
        "average_order_value",
        "emotions",
        "open_backlog",
        "backlog_age",
        "customers",
        "active_users",
        "new_users",
        "pages_per_session",
        "feature_adoption",
        "stickiness",
    } == WITHOUT_VARIANCE


def test_forms_of_the_change_setting(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
[alerting]
severity = "info"
[kpis.nps]
change = { short = "30m", z = 2.5, direction = "both", for = "0s", severity = "critical" }
[kpis.csat]
change = false
[kpis.ces.change]
baseline = "14d"
min_samples = 100
confirmation_z = 1.5
[kpis.conversion]
change = true
enabled = false
""",
    )
    kpis = config.kpis
    assert kpis["nps"].change == Change(
        short_s=30 * 60, z=2.5, direction="both", for_s=0, severity="critical"
    )
    assert kpis["csat"].change is None
    assert kpis["ces"].change == Change(
        baseline_s=14 * DAY, min_samples=100, confirmation_z=1.5, severity="info"
    )
    assert kpis["reopen_rate"].change == Change(severity="info")  # alerting.severity
    assert "conversion" not in config.changes() and "csat" not in config.changes()
    assert "nps" in config.changes()


BAD = [
    ("kpis.nps.change", "{ shrot = '1h' }", "kpis.nps.change.shrot: unknown key; expected one of"),
    ("kpis.nps.change", "'yes'", "kpis.nps.change: invalid value 'yes': expected true, false"),
    ("kpis.nps.change", "{ short = '90s' }", "kpis.nps.change.short: invalid value '90s'"),
    ("kpis.nps.change", "{ short = 'an hour' }", "kpis.nps.change.short: invalid value"),
    (
        "kpis.nps.change",
        "{ short = '6h' }",
        "kpis.nps.change.confirmation: 6h is not longer than short (6h)",
    ),
    (
        "kpis.nps.change",
        "{ confirmation = '2d', baseline = '1d' }",
        "kpis.nps.change.baseline: 24h is not longer than confirmation (2d)",
    ),
    (
        "kpis.nps.change",
        "{ baseline = '86430s' }",
        "kpis.nps.change.baseline: invalid value '86430s'",
    ),
    (
        "kpis.nps.change",
        "{ baseline = '400d' }",
        "kpis.nps.change.baseline: 400d before the 6h confirmation reaches back more than 400d",
    ),
    ("kpis.nps.change", "{ z = 0 }", "kpis.nps.change.z: invalid value 0: expected a number"),
    ("kpis.nps.change", "{ z = 'high' }", "kpis.nps.change.z: invalid value 'high'"),
    ("kpis.nps.change", "{ confirmation_z = -2 }", "kpis.nps.change.confirmation_z: invalid"),
    ("kpis.nps.change", "{ min_samples = 0 }", "kpis.nps.change.min_samples: invalid value 0"),
    (
        "kpis.nps.change",
        "{ direction = 'worse' }",
        "kpis.nps.change.direction: invalid value 'worse': expected one of down, up, both",
    ),
    ("kpis.nps.change", "{ for = '-5m' }", "kpis.nps.change.for: invalid value '-5m'"),
    ("kpis.nps.change", "{ severity = 'page' }", "kpis.nps.change.severity: invalid value"),
    (
        "kpis.average_order_value.change",
        "true",
        "kpis.average_order_value.change: not allowed: average_order_value has no estimator",
    ),
    ("kpis.open_backlog.change", "{ z = 3 }", "kpis.open_backlog.change: not allowed"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD, ids=[b[2][:60] for b in BAD])
def test_mistakes_fail_at_start_on_one_line_naming_the_key(
    tmp_path: Path, key: str, value: str, message: str
) -> None:
    table, _, field = key.rpartition(".")
    with pytest.raises(ConfigError) as error:
        load(tmp_path, f"[{table}]\n{field} = {value}\n")
    text = str(error.value)
    assert message in text and str(tmp_path / "cxkpi.toml") in text
    assert "\n" not in text


def test_a_kpi_without_variance_may_say_false(tmp_path: Path) -> None:
    config = load(tmp_path, "[kpis.average_order_value]\nchange = false\n")
    assert config.kpis["average_order_value"].change is None


def test_change_windows_must_suit_the_steps_given_by_flags_too(tmp_path: Path) -> None:
    path = tmp_path / "cxkpi.toml"
    path.write_text('[kpis.nps]\nchange = { short = "10m", confirmation = "1h" }\n')
    with pytest.raises(ConfigError, match=r"invalid kpis.nps.change.short 10m: not a positive"):
        Settings.load({"config": str(path), "step": "4m", "windows": "4m,1h,24h,7d"}, {})


def test_lagged_window_keys_are_negative_and_decode() -> None:
    key = lagged_window(7 * DAY, HOUR)
    assert key < 0 and window_span(key) == (7 * DAY * 1000, HOUR * 1000)
    assert window_label(key) == "7d_before_1h"
    assert window_span(3_600_000) == (3_600_000, 0) and window_label(3_600_000) == "1h"
    assert window_label(lagged_window(10 * 60, 90)) == "10m_before_90s"
    with pytest.raises(ValueError):
        lagged_window(DAY, 0)


def test_the_worker_keeps_the_windows_the_change_alerts_need() -> None:
    """The configured windows first, then the 6 h confirmation and the two 7 d baselines the
    default change alerts add; `--config none` keeps the built-in change alerts too."""
    for flags in ({}, {"config": "none"}):
        settings = Settings.load(flags, environ={})
        names = [window_label(k) for k in settings.state_windows_ms]
        assert names == ["5m", "1h", "24h", "7d", "30d", "6h", "7d_before_1h", "7d_before_6h"]
    assert change_windows([None, Change(), Change()]) == (
        HOUR * 1000,
        6 * HOUR * 1000,
        lagged_window(7 * DAY, HOUR),
        lagged_window(7 * DAY, 6 * HOUR),
    )


def test_the_change_section_sets_every_kpi_s_defaults_and_may_switch_them_off(
    tmp_path: Path,
) -> None:
    config = load(
        tmp_path,
        """
[change]
short = "30m"
for = "5m"
min_samples = 50
[kpis.nps.change]
min_samples = 200
""",
    )
    assert config.kpis["csat"].change == Change(short_s=1800, for_s=300, min_samples=50)
    assert config.kpis["nps"].change == Change(short_s=1800, for_s=300, min_samples=200)
    off = load(tmp_path, "[change]\nenabled = false\n[kpis.nps]\nchange = true\n")
    assert set(off.changes()) == {"nps"} and off.kpis["nps"].change == Change()
    for text, message in (
        ("[change]\ndirection = 'up'", "change.direction: unknown key"),
        ("[change]\nenabled = 1", "change.enabled: invalid value 1: expected true or false"),
        ("[change]\nz = -1", "change.z: invalid value -1"),
    ):
        with pytest.raises(ConfigError, match=message):
            load(tmp_path, text)
