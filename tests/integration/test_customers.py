"""Customers regrouped through Kafka: 70 days of events through a real broker and redis-server,
two workers that rebalance, one SIGKILLed while orders are forwarded and applied; retention,
churn, repeat purchase, frequency and lifetime value equal the offline reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_long_horizons import generate_days, produce
from tests.integration.test_pipeline import expected_for, wait_redis_equal, wait_same
from tests.integration.test_scale_out import fleet_processed
from tests.servers import Broker, RedisServer, Worker, wait_until

pytestmark = pytest.mark.integration

DAYS = 70
EVERY_S = 120  # one event every 2 minutes of event time: 50,400 events


def test_customer_kpis_of_70_days_equal_the_reference_through_a_kill_and_a_rebalance(
    broker: Broker, redis_server: RedisServer, worker_env: dict[str, str], tmp_path: Path
) -> None:
    lines = generate_days(
        tmp_path / "events.jsonl", worker_env, seed=70, days=DAYS, every_s=EVERY_S
    )
    workers = [Worker(worker_env, tmp_path / "a-1.log"), Worker(worker_env, tmp_path / "b.log")]
    try:
        for worker in workers:
            worker.wait_ready()
        produce(lines, tmp_path / "all.jsonl", worker_env)
        wait_until(
            lambda: fleet_processed(redis_server) > len(lines) // 3,
            240,
            "a third of the log processed",
        )
        workers[0].kill()  # part-way: orders forwarded, not all applied or committed
        workers[0] = Worker(worker_env, tmp_path / "a-2.log")  # back: partitions move again
        workers[0].wait_ready(timeout=120)
        wait_until(
            lambda: fleet_processed(redis_server) == len(lines), 240, "the whole log processed"
        )
        expected = expected_for(broker, len(lines))
        customers = expected["live"]["customers"]["overall"]
        assert customers["active"] > 200 and customers["previous"] > 200
        assert 0 < customers["retained"] < customers["previous"]
        assert customers["repeat_customers"] > 20 and customers["anonymous_orders"] > 20
        assert set(customers["lifetime_value"]) == {"EUR", "USD"}
        assert all(v["lifetime_value"] > 0 for v in customers["lifetime_value"].values())
        wait_redis_equal(redis_server, expected)
        for worker in workers:  # each worker's /kpis joins its partitions with the others'
            wait_same(worker.kpis, expected)
    finally:
        for worker in workers:
            worker.stop()
