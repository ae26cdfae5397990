"""The customer key secret: a setting that never shows, and the one rule for starting without it."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

import pytest

from stream.config import ConfigError
from stream.config.secret import DEV_SECRET_FILE, customer_secret
from stream.config.settings import Settings, add_arguments

SECRET = "correct-horse-battery-staple-42"


def test_the_secret_is_never_shown() -> None:
    settings = Settings.load({}, environ={"CXKPI_CUSTOMER_KEY_SECRET": SECRET})
    assert settings.customer_key_secret == SECRET
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert SECRET not in str(settings.describe())
    assert "customer_key_secret='***'" in repr(settings)
    with pytest.raises(ConfigError) as error:
        Settings.load({}, environ={"CXKPI_CUSTOMER_KEY_SECRET": "short-secret"})
    assert "short-secret" not in str(error.value) and "at least 16 bytes" in str(error.value)


def test_help_shows_no_secret_default() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser, defaults={"customer_key_secret": SECRET})
    text = parser.format_help()
    assert "CXKPI_CUSTOMER_KEY_SECRET" in text and SECRET not in text


def test_the_customer_period_is_a_multiple_of_the_long_step() -> None:
    settings = Settings.load({}, environ={})
    assert (settings.customer_period, settings.max_lifetime_periods) == (30 * 86400, 36)
    with pytest.raises(ConfigError, match="customer_period: 5400s must be a positive multiple"):
        Settings.load({"customer_period": "90m"}, environ={})


def test_production_without_a_secret_refuses_with_what_to_set(tmp_path: Path) -> None:
    settings = Settings.load({"data_dir": str(tmp_path)}, environ={})
    with pytest.raises(ConfigError, match="set CXKPI_CUSTOMER_KEY_SECRET"):
        customer_secret(settings)
    assert not any(tmp_path.iterdir())  # nothing generated outside dev


def test_a_set_secret_is_used_as_is() -> None:
    settings = Settings.load({"profile": "dev"}, environ={"CXKPI_CUSTOMER_KEY_SECRET": SECRET})
    assert customer_secret(settings) == SECRET.encode()


def test_the_dev_fleet_shares_one_generated_secret_across_restarts(tmp_path: Path) -> None:
    settings = Settings.load({"profile": "dev", "data_dir": str(tmp_path)}, environ={})
    found: list[bytes] = []
    workers = [
        threading.Thread(target=lambda: found.append(customer_secret(settings))) for _ in range(8)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(set(found)) == 1 and len(found[0]) == 32
    assert customer_secret(settings) == found[0]  # a restart finds it again
    stored = tmp_path / "cxkpi" / DEV_SECRET_FILE
    assert stored.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in stored.parent.iterdir()] == [DEV_SECRET_FILE]  # no candidates left
    other = Settings.load({"profile": "dev", "data_dir": str(tmp_path), "app_id": "b"}, {})
    assert customer_secret(other) != found[0]  # another app id is another fleet
