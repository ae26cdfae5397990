"""A Redis outage never blocks or slows processing; the snapshot catches up when it is back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.test_pipeline import (
    expected_for,
    generate,
    redis_snapshot,
    wait_processed,
)
from tests.reference import compare_snapshots
from tests.servers import Broker, RedisServer, Worker, cxkpi, wait_until

pytestmark = pytest.mark.integration
CHUNK = 2000
OUTAGE_S = 30  # as long as the outage lasts, however fast the chunks are processed


def produce_and_time(worker: Worker, path: Path, env: dict[str, str], total: int) -> float:
    """Seconds from producing a chunk to the worker having processed it."""
    started = time.monotonic()
    cxkpi("produce", str(path), "--quiet", env=env)
    wait_processed(worker, total)
    return time.monotonic() - started


def test_redis_outage(
    broker: Broker, redis_server: RedisServer, worker_env: dict[str, str], tmp_path: Path
) -> None:
    lines = generate(tmp_path / "events.jsonl", worker_env, 3 * CHUNK, seed=17)
    for i in range(3):
        (tmp_path / f"chunk-{i}.jsonl").write_bytes(
            b"\n".join(lines[i * CHUNK : (i + 1) * CHUNK]) + b"\n"
        )
    worker = Worker(worker_env, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        with_redis = produce_and_time(worker, tmp_path / "chunk-0.jsonl", worker_env, CHUNK)
        redis_server.stop()
        down_since = time.monotonic()
        without_redis = produce_and_time(worker, tmp_path / "chunk-1.jsonl", worker_env, 2 * CHUNK)
        doc = worker.kpis()
        assert doc is not None and doc["snapshot_store"] == "down"
        # no blocking, no slowdown (generous bound: the machine is shared)
        assert without_redis <= 2 * with_redis + 3, (with_redis, without_redis)
        produce_and_time(worker, tmp_path / "chunk-2.jsonl", worker_env, 3 * CHUNK)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_since)))  # the outage's length
        redis_server.restart()
        expected = expected_for(broker, 3 * CHUNK)
        back = time.monotonic()
        wait_until(
            lambda: not compare_snapshots(redis_snapshot(redis_server) or {}, expected),
            10,
            "the Redis snapshot to be exact again within 10 s",
        )
        assert time.monotonic() - back <= 10
        log = worker.log.read_text()
        assert log.count("snapshot store") and log.count("unavailable") == 1, (
            "the outage is logged once, with its reason"
        )
        assert "is back" in log
    finally:
        worker.stop()
