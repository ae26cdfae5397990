"""Fixtures: a fresh broker and redis-server per integration test, and the worker settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
def worker_env(broker: Broker, redis_server: RedisServer) -> dict[str, str]:
    """Settings of the workers under test: dev profile, short timeouts, idle advancement off
    (the reference computation does not model wall-clock advancement)."""
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
    }
