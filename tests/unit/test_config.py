"""Settings: precedence and fail-fast validation with messages that say what to fix."""

import pytest

from stream.config import ConfigError, Settings, redact_url


def test_defaults_env_and_flags_in_order() -> None:
    assert Settings.load({}, environ={}).windows == (300, 3600, 86400)
    env = {"CXKPI_GRACE": "2m", "CXKPI_PARTITIONS": "8"}
    settings = Settings.load({"partitions": "6"}, environ=env)
    assert (settings.grace, settings.partitions) == (120, 6)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"grace": "soon"}, "invalid grace 'soon' from flag --grace: expected a duration"),
        ({"partitions": "0"}, "invalid partitions '0' from flag --partitions: expected a whole"),
        ({"windows": "5m,90s"}, "90s is not a positive multiple of step (60s)"),
        ({"broker": "http://x"}, "invalid broker"),
        ({"profile": "fast"}, "expected one of production, dev"),
        ({"inactivity_timeout": "0s"}, "inactivity_timeout: must be greater than zero"),
    ],
)
def test_bad_values_fail_with_the_setting_named(flags: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.load(flags, environ={})
    assert message in str(error.value)


def test_secrets_are_never_shown() -> None:
    with pytest.raises(ConfigError) as error:
        Settings.load({"redis_url": "http://:hunter2@x"}, environ={})
    assert "hunter2" not in str(error.value)
    settings = Settings.load({"redis_url": "redis://:hunter2@localhost:6379/0"}, environ={})
    assert "hunter2" not in str(settings.describe())
    assert redact_url("rediss://u:pw@h:1/0") == "rediss://u:***@h:1/0"
