"""A broker outage: the worker waits it out, says it is not ready, and carries on after."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from stream.contract.schemas import SOURCE_TOPICS
from stream.runtime.positions import STALL_S
from tests.integration.test_pipeline import PARTITIONS, RULES, generate, wait_same
from tests.reference import Record, expected_snapshot
from tests.servers import Broker, Worker, cxkpi, read_records, wait_until

pytestmark = pytest.mark.integration
BEFORE, AFTER = 600, 200
OUTAGE_S = 20


def test_broker_outage(broker: Broker, worker_env: dict[str, str], tmp_path: Path) -> None:
    # No product activity: the dev broker loses every log in a restart, and the worker tells a
    # new log only by its ending below the offsets already applied; a sparse partition (a few
    # users' events) may get a new log as long as its old one, whose records are then taken as
    # applied (docs/guarantees.md). Real Kafka loses no log.
    path = tmp_path / "events.jsonl"
    lines = generate(path, worker_env, BEFORE + AFTER, seed=29, activity_share=0)
    (tmp_path / "before.jsonl").write_bytes(b"\n".join(lines[:BEFORE]) + b"\n")
    (tmp_path / "after.jsonl").write_bytes(b"\n".join(lines[BEFORE:]) + b"\n")
    worker = Worker(worker_env, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        pid = worker.process.pid
        cxkpi("produce", str(tmp_path / "before.jsonl"), "--quiet", env=worker_env)
        wait_until(lambda: worker.processed() == BEFORE, 120, "the first events processed")
        old_log = read_records(broker.url, list(SOURCE_TOPICS), BEFORE)

        broker.stop()
        stopped = time.monotonic()
        wait_until(
            lambda: worker.readiness()[1].startswith("broker unreachable"),
            10,
            "/ready to report the broker unreachable",
        )
        while time.monotonic() - stopped < OUTAGE_S:  # the whole outage: alive and not ready
            assert worker.process.poll() is None, "the worker exited during the outage"
            status, reason = worker.readiness()
            assert status == 503 and reason.startswith("broker unreachable"), (status, reason)
            assert worker.get("/health") is not None
            time.sleep(1)

        # The dev broker keeps nothing across a restart: every topic comes back empty, and the
        # worker reads the new logs from their start while keeping what it had applied.
        broker.restart()
        # Before any producer is back, each partition the worker had read finds its new log
        # empty and seeks back to its start once; it then waits for a record without seeking
        # again every STALL_S (watched over a few of those periods).
        wait_until(
            lambda: worker.log.read_text().count("reading the new log from its start") >= 4,
            60,
            "the new logs to be found",
        )
        time.sleep(4 * STALL_S)
        seeks = [line for line in worker.log.read_text().splitlines() if "seeking back" in line]
        assert seeks and not [line for line in seeks if "seeking back (1)" not in line], seeks
        cxkpi("produce", str(tmp_path / "after.jsonl"), "--quiet", env=worker_env)
        worker.wait_ready(timeout=60)
        wait_until(lambda: worker.processed() == BEFORE + AFTER, 120, "the new events processed")
        assert worker.process.pid == pid and worker.process.poll() is None
        new_log = read_records(broker.url, list(SOURCE_TOPICS), AFTER)
        # As one log per partition: the new records follow the old ones.
        ends = {(r.topic, r.partition): r.offset + 1 for r in old_log}
        joined = old_log + [
            Record(r.topic, r.partition, ends.get((r.topic, r.partition), 0) + r.offset, r.value)
            for r in new_log
        ]
        expected = expected_snapshot(
            joined, RULES, now_ms=int(time.time() * 1000), partitions=PARTITIONS
        )
        wait_same(worker.kpis, expected)
        text = worker.log.read_text()
        assert text.count("broker unreachable (") == 1, "the outage is logged once"
        assert "broker reachable again" in text
        # the Kafka client's reconnect errors are held back, not one every few milliseconds
        assert text.count(" ERROR ") < 30, text.count(" ERROR ")
    finally:
        worker.stop()
