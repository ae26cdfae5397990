"""Settings: precedence and fail-fast validation with messages that say what to fix."""

import re
from pathlib import Path

import pytest

from stream.config import ConfigError
from stream.config.options import OPTIONS
from stream.config.settings import Settings, redact_url

SETTINGS_DOC = Path(__file__).resolve().parents[3] / "docs" / "settings.md"


def test_defaults_env_and_flags_in_order() -> None:
    defaults = Settings.load({}, environ={})
    assert defaults.windows == (300, 3600, 86400, 7 * 86400, 30 * 86400)
    assert (defaults.step, defaults.long_step) == (60, 3600)
    env = {"CXKPI_GRACE": "2m", "CXKPI_PARTITIONS": "8"}
    settings = Settings.load({"partitions": "6"}, environ=env)
    assert (settings.grace, settings.partitions) == (120, 6)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"grace": "soon"}, "invalid grace 'soon' from flag --grace: expected a duration"),
        ({"partitions": "0"}, "invalid partitions '0' from flag --partitions: expected a whole"),
        ({"windows": "5m,90s"}, "90s is not a positive multiple of step (60s)"),
        ({"windows": "5m,1441m"}, "86460s is not a positive multiple of long_step (3600s)"),
        ({"windows": "401d"}, "34646400s is not a window of at most 400d"),
        ({"long_step": "90s"}, "invalid long_step: 90s must be a multiple of step (60s)"),
        ({"broker": "http://x"}, "invalid broker"),
        ({"profile": "fast"}, "expected one of production, dev"),
        ({"group_instance_id": "cxkpi 0"}, "invalid group_instance_id 'cxkpi 0' from flag"),
        ({"inactivity_timeout": "0s"}, "inactivity_timeout: must be greater than zero"),
        (
            {"ticket_retention": "7d"},
            "invalid ticket_retention 7d: shorter than the longest window (30d) plus grace (5m), "
            "so a ticket reopened after it would be counted wrong in that window; use at least "
            "43205m (30d + 5m), or auto",
        ),
        ({"ticket_retention": "0s"}, "expected 'auto' or a duration greater than zero"),
        (
            {"cart_retention": "35m"},
            "invalid cart_retention 35m: shorter than inactivity_timeout + step + grace (36m)",
        ),
    ],
)
def test_bad_values_fail_with_the_setting_named(flags: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.load(flags, environ={})
    assert message in str(error.value)


def test_the_ticket_retention_follows_the_longest_window_unless_set() -> None:
    assert Settings.load({"config": "none"}, environ={}).ticket_retention == 30 * 86400 + 300
    short = Settings.load({"config": "none", "windows": "5m,1h", "grace": "2m"}, environ={})
    # the change alerts' baselines reach furthest: 7 d ending 6 h before stream time
    assert short.ticket_retention == 7 * 86400 + 6 * 3600 + 120
    with pytest.raises(ConfigError, match=r"reach of the change alerts' baselines \(174h\)"):
        Settings.load({"config": "none", "windows": "5m,1h", "ticket_retention": "7d"}, {})
    longer = Settings.load({"config": "none", "ticket_retention": "40d"}, environ={})
    assert longer.ticket_retention == 40 * 86400
    assert Settings.load({"config": "none"}, environ={}).cart_retention == 7 * 86400


def test_secrets_are_never_shown() -> None:
    with pytest.raises(ConfigError) as error:
        Settings.load({"redis_url": "http://:hunter2@x"}, environ={})
    assert "hunter2" not in str(error.value)
    settings = Settings.load({"redis_url": "redis://:hunter2@localhost:6379/0"}, environ={})
    assert "hunter2" not in str(settings.describe())
    assert redact_url("rediss://u:pw@h:1/0") == "rediss://u:***@h:1/0"


def test_the_config_file_sits_between_environment_and_defaults(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "k.toml"
    path.write_text(
        '[windows]\ngrace = "2m"\n[segments.allow]\nchannel = ["web", "app"]\n'
        "[kpis.ces]\nenabled = false\n"
    )
    assert Settings.load({"config": str(path)}, environ={}).grace == 120
    assert Settings.load({"config": str(path)}, environ={"CXKPI_GRACE": "3m"}).grace == 180
    assert Settings.load({"config": str(path), "grace": "4m"}, environ={}).grace == 240
    settings = Settings.load({}, environ={"CXKPI_CONFIG": str(path)})
    assert settings.allow == {"channel": frozenset({"web", "app"})}
    assert not settings.enabled("ces") and settings.enabled("nps")
    bare = Settings.load({"config": "none"}, environ={})
    assert bare.kpis is None and bare.enabled("ces") and bare.grace == 300


def test_the_example_file_is_used_by_default() -> None:
    settings = Settings.load({}, environ={})
    assert settings.kpis is not None and settings.kpis.path.name == "cxkpi.toml"
    assert settings.kpis.kpis["nps"].alert is not None


def test_a_bad_file_names_the_file_and_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.toml"
    path.write_text('[windows]\nsizes = ["90s"]\n')
    with pytest.raises(ConfigError) as error:
        Settings.load({"config": str(path)}, environ={})
    assert str(path) in str(error.value) and "windows.sizes" in str(error.value)


def test_repeated_kafka_client_errors_are_held_back() -> None:
    import logging

    from stream.runtime.logs import QuietRepeats

    quiet = QuietRepeats(every_s=30)

    def record(name: str, msg: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, ("x",), None)

    flood = [quiet.filter(record("aiokafka", "Unable connect to node %s")) for _ in range(100)]
    assert flood.count(True) == 1
    assert quiet.filter(record("aiokafka.conn", "another message %s"))
    assert all(quiet.filter(record("stream.app", "ours %s")) for _ in range(3))
    quiet.every_s = 0  # the next one gets through and says how many were held back
    passed = record("aiokafka", "Unable connect to node %s")
    assert quiet.filter(passed) and "(and 99 more like it" in passed.msg


@pytest.mark.parametrize(
    ("flags", "environ"),
    [({"windows": "7m"}, {}), ({}, {"CXKPI_WINDOWS": "5m,1h"})],
)
def test_windows_without_the_alert_windows_of_the_file_are_an_error(
    flags: dict[str, str], environ: dict[str, str]
) -> None:
    """As a windows.sizes without an alert's window is an error inside the file."""
    with pytest.raises(ConfigError) as error:
        Settings.load(flags, environ=environ)
    assert "the alerts in cxkpi.toml use windows these lack" in str(error.value)
    assert "--windows" in str(error.value) and "--config none" in str(error.value)


def test_any_windows_go_without_a_configuration_file() -> None:
    assert Settings.load({"windows": "7m", "config": "none"}, environ={}).windows == (420,)
    windows = Settings.load({"windows": "7m,1h,24h,30d"}, environ={}).windows
    assert windows == (420, 3600, 86400, 30 * 86400)  # the file's alerts use 1h, 24h and 30d


def documented_settings() -> dict[str, tuple[str, str]]:
    """docs/settings.md's settings table: name -> (its flag / env cell, its default cell)."""
    rows: dict[str, tuple[str, str]] = {}
    for line in SETTINGS_DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("setting", "") or set(cells[0]) <= {"-"}:
            continue
        for name in cells[0].split(", "):
            rows[name] = (cells[1], cells[2])
    return rows


def test_the_settings_table_of_the_docs_is_the_options_table() -> None:
    documented = documented_settings()
    assert set(documented) == {o.name for o in OPTIONS}, "docs/settings.md: add or remove rows"
    for option in OPTIONS:
        names, default = documented[option.name]
        assert f"`{option.flag}`" in names and f"`{option.env}`" in names, option.name
        shown = re.match(r"`([^`]*)`", default)
        # data_dir's default follows $TMPDIR; the table shows it where TMPDIR is unset
        expected = "/tmp/cxkpi" if option.name == "data_dir" else option.default
        assert (shown.group(1) if shown else "") == expected, (
            f"docs/settings.md: the default of {option.name} is {option.default!r}"
        )


def test_the_group_instance_id_is_empty_unless_given() -> None:
    assert Settings.load({"config": "none"}, environ={}).group_instance_id == ""
    env = {"CXKPI_GROUP_INSTANCE_ID": "cxkpi-2"}
    assert Settings.load({"config": "none"}, environ=env).group_instance_id == "cxkpi-2"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"CXKPI_SENTIMENT_SCORER": "bert"},
            "invalid sentiment_scorer 'bert' from environment variable CXKPI_SENTIMENT_SCORER: "
            "expected one of lexicon",
        ),
        (
            {"CXKPI_SENTIMENT_POSITIVE_AT": "1.5"},
            "invalid sentiment_positive_at '1.5' from environment variable "
            "CXKPI_SENTIMENT_POSITIVE_AT: expected a number from -1 to 1",
        ),
        (
            {"CXKPI_SENTIMENT_NEGATIVE_AT": "0.2"},
            "invalid sentiment_negative_at: 0.2 is above sentiment_positive_at (0.05)",
        ),
    ],
)
def test_sentiment_settings_are_checked_at_start(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.load({"config": "none"}, environ=environ)
    assert str(error.value) == message


def test_sentiment_defaults_are_the_specs() -> None:
    settings = Settings.load({"config": "none"}, environ={})
    assert settings.sentiment_scorer == "lexicon"
    assert (settings.sentiment_positive_at, settings.sentiment_negative_at) == (0.05, -0.05)
