"""No personal data (customer, agent, order ids, SKUs, comments) in /metrics, /kpis, the logs
or Redis."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import redis

from tests.integration.test_pipeline import generate, wait_processed
from tests.servers import RedisServer, Worker, cxkpi

pytestmark = pytest.mark.integration

PERSONAL = ("customer_id", "agent_id", "order_id", "sku", "comment")


def redis_dump(server: RedisServer) -> str:
    """Every key and value in the Redis database, as text."""
    client = redis.Redis.from_url(server.url)
    parts: list[bytes] = []
    for key in client.scan_iter():
        parts.append(key)
        kind = client.type(key)
        if kind == b"string":
            parts.append(client.get(key) or b"")
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                parts.extend((field, value))
        else:
            raise AssertionError(f"unexpected Redis type {kind!r} for {key!r}")
    assert parts, "Redis is empty: nothing was checked"
    return b"\n".join(parts).decode()


def test_no_personal_value_is_published_or_logged(
    redis_server: RedisServer, worker_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**worker_env, "CXKPI_LOG_LEVEL": "debug"}  # the most talkative logs
    lines = generate(tmp_path / "events.jsonl", env, 3000, seed=13)
    values = {
        str(event[field])
        for event in map(orjson.loads, lines)
        for field in PERSONAL
        if field in event
    }
    # "ok" (a comment) is too short to mean anything as a substring; every other value counts
    values = {v for v in values if len(v) >= 6}
    assert len(values) > 500
    cxkpi("produce", str(tmp_path / "events.jsonl"), "--quiet", env=env)
    worker = Worker(env, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        wait_processed(worker, len(lines))
        metrics = (worker.get("/metrics") or b"").decode()
        kpis = (worker.get("/kpis") or b"").decode()
        places = {
            "/metrics": metrics,
            "/kpis": kpis,
            "worker log": worker.log.read_text(),
            "redis": redis_dump(redis_server),
        }
        assert "cxkpi_nps_promoters" in metrics and '"windows"' in kpis
        for place, text in places.items():
            leaked = sorted(v for v in values if v in text)
            assert not leaked, f"{place} contains personal values: {leaked[:5]}"
    finally:
        worker.stop()
