"""The times the Redis document states after a SIGKILL and a restart: once the worker has caught
up, `valid_at`, `latest`, `windows_valid_at` and the customers' `as_of` are those of the event
log, although the restarted worker first published its partitions (the customers partitions
among them, whose window totals never change) at the old stream times it restored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from tests.integration.test_long_horizons import generate_days, produce
from tests.integration.test_pipeline import (
    expected_for,
    redis_snapshot,
    wait_processed,
    wait_redis_equal,
)
from tests.reference import CUSTOMERS_TOPIC
from tests.servers import Broker, RedisServer, Worker, wait_until

pytestmark = pytest.mark.integration

DAYS = 4
EVERY_S = 120  # 2,880 events; the restart comes two days of event time before the end


def entries(server: RedisServer, app_id: str) -> dict[str, dict[str, Any]]:
    """The partition entries the workers wrote, by 'topic/partition'."""
    stored = redis.Redis.from_url(server.url).hgetall(f"{app_id}:partitions")
    return {field.decode(): orjson.loads(raw) for field, raw in stored.items()}


def writers(stored: dict[str, dict[str, Any]]) -> set[str]:
    """The worker incarnations (store instances) that wrote these entries."""
    return {e["windows_version"].split(":")[0] for e in stored.values()}


def times(server: RedisServer) -> dict[str, Any]:
    """The times the merged document states."""
    doc = redis_snapshot(server) or {}
    customers = doc.get("live", {}).get("customers", {}).get("overall", {})
    return {
        "valid_at": doc.get("valid_at"),
        "latest": doc.get("latest"),
        "windows_valid_at": doc.get("windows_valid_at"),
        "as_of": customers.get("as_of"),
    }


def test_a_restarted_worker_publishes_the_times_of_the_log(
    broker: Broker, redis_server: RedisServer, worker_env: dict[str, str], tmp_path: Path
) -> None:
    app_id = worker_env["CXKPI_APP_ID"]
    lines = generate_days(tmp_path / "events.jsonl", worker_env, seed=4, days=DAYS, every_s=EVERY_S)
    cut = len(lines) // 2
    worker = Worker(worker_env, tmp_path / "worker-1.log")
    try:
        worker.wait_ready()
        produce(lines[:cut], tmp_path / "first.jsonl", worker_env)
        wait_redis_equal(redis_server, expected_for(broker, cut))
        (killed,) = writers(entries(redis_server, app_id))
        worker.kill()
        worker = Worker(worker_env, tmp_path / "worker-2.log")
        worker.wait_ready()

        def republished() -> bool:
            """Every partition published by the new incarnation, the customers partitions at
            the (old) stream time they restored: nothing newer has been produced yet."""
            now = entries(redis_server, app_id)
            customers = [e for e in now.values() if e["topic"] == CUSTOMERS_TOPIC]
            return (
                killed not in writers(now)
                and len(customers) == 4
                and all(e["stream_time"] is not None for e in customers)
            )

        wait_until(republished, 120, "the restarted worker to publish every partition")
        produce(lines[cut:], tmp_path / "rest.jsonl", worker_env)
        wait_processed(worker, len(lines))
        expected = expected_for(broker, len(lines))
        wait_redis_equal(redis_server, expected)
        want = {
            "valid_at": expected["valid_at"],
            "latest": expected["latest"],
            "windows_valid_at": expected["valid_at"],  # over the source partitions, too
            "as_of": expected["live"]["customers"]["overall"]["as_of"],
        }
        assert want["as_of"] is not None  # every cart partition has decided orders
        try:  # the windows may be held back by the pacing for a few seconds
            wait_until(lambda: times(redis_server) == want, 60, "the document's times")
        except AssertionError:
            assert times(redis_server) == want
    finally:
        worker.stop()
