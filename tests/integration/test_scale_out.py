"""Scale-out and rebalancing: workers share the partitions, one is killed and comes back, a third
joins; the merged snapshot stays exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_pipeline import (
    assert_same,
    expected_for,
    generate,
    redis_snapshot,
)
from tests.reference import compare_snapshots
from tests.servers import Broker, RedisServer, Worker, cxkpi, wait_until

pytestmark = pytest.mark.integration
CHUNK = 1500


def fleet_processed(server: RedisServer) -> int:
    doc = redis_snapshot(server)
    return sum(sum(c.values()) for c in doc["events"].values()) if doc else -1


def test_workers_join_and_leave_and_the_snapshot_stays_exact(
    broker: Broker, redis_server: RedisServer, worker_env: dict[str, str], tmp_path: Path
) -> None:
    lines = generate(tmp_path / "events.jsonl", worker_env, 4 * CHUNK, seed=23)
    chunks = []
    for i in range(4):
        chunk = tmp_path / f"chunk-{i}.jsonl"
        chunk.write_bytes(b"\n".join(lines[i * CHUNK : (i + 1) * CHUNK]) + b"\n")
        chunks.append(chunk)
    workers = [Worker(worker_env, tmp_path / "a-1.log"), Worker(worker_env, tmp_path / "b.log")]
    try:
        for worker in workers:
            worker.wait_ready()
        cxkpi("produce", str(chunks[0]), "--quiet", env=worker_env)
        wait_until(
            lambda: fleet_processed(redis_server) >= CHUNK // 2,
            120,
            "the fleet to process part of the first chunk",
        )
        workers[0].kill()  # SIGKILL one worker part-way
        cxkpi("produce", str(chunks[1]), "--quiet", env=worker_env)
        workers[0] = Worker(worker_env, tmp_path / "a-2.log")  # it comes back
        workers[0].wait_ready(timeout=120)
        cxkpi("produce", str(chunks[2]), "--quiet", env=worker_env)
        workers.append(Worker(worker_env, tmp_path / "c.log"))  # a third joins mid-stream
        cxkpi("produce", str(chunks[3]), "--quiet", env=worker_env)
        workers[2].wait_ready(timeout=120)
        expected = expected_for(broker, 4 * CHUNK)
        differences: list[list[str]] = []

        def exact() -> bool:
            differences.append(compare_snapshots(redis_snapshot(redis_server) or {}, expected))
            return not differences[-1]

        try:
            wait_until(exact, 180, "the merged Redis snapshot to equal the reference")
        except AssertionError as exc:
            raise AssertionError(f"{exc}:\n" + "\n".join(differences[-1][-25:])) from None
        for worker in workers:  # each worker's /kpis merges its live state with the others'
            assert worker.process.poll() is None, f"{worker.log} ended"
            wait_until(
                lambda w=worker: not compare_snapshots(w.kpis() or {}, expected),
                30,
                f"/kpis of the worker logging to {worker.log.name} to be exact",
            )
            assert_same(worker.kpis(), expected)
    finally:
        for worker in workers:
            worker.stop()
