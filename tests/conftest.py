"""Fixtures: a fresh broker and redis-server per integration test, and the worker settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import Broker, RedisServer


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    server = Broker(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def worker_env(broker: Broker, redis_server: RedisServer, tmp_path: Path) -> dict[str, str]:
    """Settings of the workers under test: dev profile, short timeouts, idle advancement off
    (the reference computation does not model wall-clock advancement), and a data folder of the
    test's own (tests run in parallel: no two tests' workers share scratch files)."""
    return {
        "CXKPI_BROKER": broker.url,
        "CXKPI_REDIS_URL": redis_server.url,
        "CXKPI_PROFILE": "dev",
        "CXKPI_APP_ID": "cxkpi-test",
        "CXKPI_PARTITIONS": "4",
        "CXKPI_INACTIVITY_TIMEOUT": "2m",
        "CXKPI_IDLE_TIMEOUT": "1d",
        "CXKPI_FLUSH_INTERVAL": "0.5s",
        "CXKPI_PUBLISH_INTERVAL": "0.5s",
        "CXKPI_DATA_DIR": str(tmp_path / "data"),
    }


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`pytest -n N` (make test; --dist load, the default): the longest tests first, the
    CPU-bound ones one at a time (tests/schedule.py)."""
    if config.getvalue("dist") != "load":
        return None  # another --dist asked for: xdist's own
    from tests.schedule import LongestFirst  # imports pytest-xdist: only when it runs

    return LongestFirst(config, log)
