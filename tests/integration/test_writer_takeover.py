"""Two workers on a real broker and redis-server; the one writing the merged snapshot is killed
with SIGKILL. The other writes it within seconds, long before the group moves the dead worker's
partitions (the lease, stream/publish/lease.py), from the dead worker's entries as it left them:
the document stays exact, and says which partitions stand still. Once their partitions moved,
the snapshot is exact again with the events sent after the kill."""

from __future__ import annotations

import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from stream.publish.lease import LEASE_INTERVALS, PublishedAt
from tests.integration.test_pipeline import (
    assert_same,
    expected_for,
    generate,
    metric_samples,
    redis_snapshot,
    wait_redis_equal,
    wait_same,
)
from tests.servers import Broker, RedisServer, Worker, cxkpi, wait_until

pytestmark = pytest.mark.integration
CHUNK = 1200
#: The lease outlives its last renewal by LEASE_INTERVALS publish intervals; the survivor's
#: next publish (twice per interval) takes it. The bound leaves room for a loaded machine, and
#: stays under the dev profile's 8 s session timeout, after which the group only starts to move
#: the dead worker's partitions.
TAKEOVER_S = 6.0


def ms(text: str) -> int:
    """A document's time (RFC 3339, ms, Z) as epoch ms."""
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def name_of(worker: Worker) -> str:
    """The name a worker's documents give it (no static membership id here: host:port)."""
    return f"{socket.gethostname()}:{worker.env['CXKPI_WEB_PORT']}"


def assigned(worker: Worker) -> float:
    """Source partitions the worker owns, from its /metrics."""
    samples = metric_samples(worker)
    return sum(v for (name, _), v in samples.items() if name == "cxkpi_partitions_assigned")


def test_another_worker_writes_the_snapshot_within_seconds_of_the_writer_s_sigkill(
    broker: Broker, redis_server: RedisServer, worker_env: dict[str, str], tmp_path: Path
) -> None:
    lines = generate(tmp_path / "events.jsonl", worker_env, 2 * CHUNK, seed=31)
    chunks = []
    for i in range(2):
        chunk = tmp_path / f"chunk-{i}.jsonl"
        chunk.write_bytes(b"\n".join(lines[i * CHUNK : (i + 1) * CHUNK]) + b"\n")
        chunks.append(chunk)
    workers = [Worker(worker_env, tmp_path / f"worker-{i}.log") for i in range(2)]
    try:
        for worker in workers:
            worker.wait_ready(timeout=120)
        wait_until(
            lambda: all(assigned(w) > 0 for w in workers), 120, "both workers to own partitions"
        )
        cxkpi("produce", str(chunks[0]), "--quiet", env=worker_env)
        expected = expected_for(broker, CHUNK)
        wait_redis_equal(redis_server, expected)
        names = {name_of(w): w for w in workers}
        before = redis_snapshot(redis_server)
        assert before is not None and before["writer"] in names
        writer = names.pop(before["writer"])
        survivor_name, survivor = names.popitem()
        assert metric_samples(writer)["cxkpi_snapshot_leader", frozenset()] == 1
        assert metric_samples(survivor)["cxkpi_snapshot_leader", frozenset()] == 0

        killed_at = time.time_ns() // 1_000_000
        writer.kill()
        last = redis_snapshot(redis_server)
        assert last is not None and last["writer"] == name_of(writer)

        def taken() -> dict[str, Any] | None:
            doc = redis_snapshot(redis_server)
            newer = doc and ms(doc["published_at"]) > ms(last["published_at"])
            return doc if newer and doc["writer"] == survivor_name else None

        started = time.monotonic()
        doc = wait_until(taken, TAKEOVER_S, "the survivor to write the snapshot", every=0.05)
        took = time.monotonic() - started
        # written from the dead worker's entries as it left them: before its partitions moved
        assert ms(doc["partitions_published_at"]) <= killed_at, (took, doc["published_at"])
        assert_same(doc, expected)  # whole and exact: every event was in before the kill
        assert doc["valid_at"] == doc["windows_valid_at"] == expected["valid_at"]
        # the lease lasts LEASE_INTERVALS of the test's 0.5 s publish interval
        ttl_ms = redis.Redis.from_url(redis_server.url).pttl("cxkpi-test:writer")
        assert 0 < ttl_ms <= LEASE_INTERVALS * 500
        survivor_metrics = metric_samples(survivor)
        assert survivor_metrics["cxkpi_snapshot_leader", frozenset()] == 1
        seen = survivor_metrics[PublishedAt.NAME, frozenset()]
        assert seen >= ms(doc["published_at"]) / 1000
        kpis = survivor.kpis()  # its /kpis says the same of itself
        assert kpis is not None and kpis["writer"] == survivor_name and kpis["complete"]
        assert ms(kpis["partitions_published_at"]) <= killed_at < ms(kpis["published_at"])

        # the group moves the dead worker's partitions; events sent after the kill arrive
        cxkpi("produce", str(chunks[1]), "--quiet", env=worker_env)
        expected = expected_for(broker, 2 * CHUNK)
        wait_redis_equal(redis_server, expected)
        wait_same(survivor.kpis, expected)
        final = redis_snapshot(redis_server)
        assert final is not None and final["writer"] == survivor_name
        assert ms(final["partitions_published_at"]) > killed_at  # every partition moves on
        print(f"takeover {took:.2f} s after SIGKILL (lease {LEASE_INTERVALS} publish intervals)")
    finally:
        for worker in workers:
            worker.stop()
