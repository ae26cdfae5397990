"""No personal data (customer, user, agent, order ids, SKUs, pages, comments, review and mention
texts) in Redis, or any topic the worker writes: the changelogs and the customers topic (which
hold pseudonymous customer and user keys only)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import redis

from stream.contract.schemas import SOURCE_TOPICS, dead_letter_topic
from stream.runtime.repartition import customers_topic
from tests.integration.test_pipeline import generate, metric_samples, wait_processed
from tests.reference import CUSTOMERS_TOPIC
from tests.servers import Broker, RedisServer, Worker, cxkpi, read_to_end, wait_until

pytestmark = pytest.mark.integration

PERSONAL = ("customer_id", "user_id", "agent_id", "order_id", "sku", "comment", "text", "page")


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


def wait_snapshot(server: RedisServer, app_id: str) -> None:
    """Wait until the worker has published its snapshot, so the dump has something to search."""
    client = redis.Redis.from_url(server.url)
    wait_until(lambda: client.exists(f"{app_id}:snapshot"), 30, "the snapshot in Redis")


def written_topics(broker: Broker, app_id: str) -> dict[str, str]:
    """Every topic the worker writes (its changelogs, the customers topic and its dead-letter
    topic), as text of all their keys and values."""
    topics = [f"{app_id}-state-{topic}-changelog" for topic in (*SOURCE_TOPICS, CUSTOMERS_TOPIC)]
    topics += [customers_topic(app_id), dead_letter_topic(customers_topic(app_id))]
    out: dict[str, str] = {}
    for topic in topics:
        records = read_to_end(broker.url, [topic])
        out[topic] = b"\n".join(b"%s %s" % (r.key or b"", r.value or b"") for r in records).decode()
    return out


def test_no_personal_value_is_published_or_logged(
    broker: Broker, redis_server: RedisServer, worker_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**worker_env, "CXKPI_LOG_LEVEL": "debug"}  # the most talkative logs
    # 25 minutes of events: orders are forwarded once decided, a step and grace after them
    lines = generate(tmp_path / "events.jsonl", env, 3000, seed=13, rate=2)
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
        wait_snapshot(redis_server, env["CXKPI_APP_ID"])
        metrics = (worker.get("/metrics") or b"").decode()
        kpis = (worker.get("/kpis") or b"").decode()
        # the last decided orders reach the customers topic a flush round after their carts
        forwarded_topic = customers_topic(env["CXKPI_APP_ID"])

        def all_forwarded() -> dict[str, str] | None:
            written = written_topics(broker, env["CXKPI_APP_ID"])
            return written if written[forwarded_topic].count('"order"') > 20 else None

        topics = wait_until(all_forwarded, 30, "more than 20 orders forwarded", every=1)
        forwarded = topics[forwarded_topic]
        assert forwarded.count('"order"') > 20, "no orders were forwarded: nothing was checked"
        assert all(text for t, text in topics.items() if not t.endswith(".dlq")), topics.keys()
        places = {
            "/metrics": metrics,
            "/kpis": kpis,
            "worker log": worker.log.read_text(),
            "redis": redis_dump(redis_server),
            **topics,
        }
        assert "cxkpi_nps_promoters" in metrics and '"windows"' in kpis
        active = orjson.loads(kpis)["windows"]["24h"]["active_users"]["overall"]["users"]
        assert active > 0, "no activity was applied: its users and pages were not checked"
        assert any(v.startswith("user-") for v in values)
        assert any(v.startswith("/p/") for v in values)
        for place, text in places.items():
            leaked = sorted(v for v in values if v in text)
            assert not leaked, f"{place} contains personal values: {leaked[:5]}"
    finally:
        worker.stop()


def failures(worker: Worker) -> float:
    """The worker's failed publishes to Redis, from its /metrics."""
    return metric_samples(worker)["cxkpi_snapshot_publish_failures_total", frozenset()]


def test_secrets_stay_out_of_logs_and_endpoints_and_redis_auth_works(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    """A password-protected Redis (the URL carries the password) and a Kafka SASL password in
    the environment: the snapshot lands in Redis, and neither password is ever shown. A second
    worker with a wrong Redis password keeps processing and logs the refusal once."""
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis", password="redis-pw-Lm42")
    env = {
        **worker_env,
        "CXKPI_REDIS_URL": server.url,
        "CXKPI_KAFKA_SASL_PASSWORD": "kafka-pw-Zq81",  # set, though PLAINTEXT does not use it
        "CXKPI_LOG_LEVEL": "debug",
    }
    lines = generate(tmp_path / "events.jsonl", env, 500, seed=3)
    cxkpi("produce", str(tmp_path / "events.jsonl"), "--quiet", env=env)
    wrong = {  # its own consumer group, so it processes every record too
        **env,
        "CXKPI_REDIS_URL": server.url.replace("redis-pw-Lm42", "wrong-pw-Xy77"),
        "CXKPI_APP_ID": "cxkpi-wrong",
    }
    workers = [Worker(env, tmp_path / "worker.log"), Worker(wrong, tmp_path / "wrong.log")]
    try:
        for worker in workers:
            worker.wait_ready()
        for worker in workers:
            wait_processed(worker, len(lines))
        wait_snapshot(server, env["CXKPI_APP_ID"])
        places = {
            "/metrics": (workers[0].get("/metrics") or b"").decode(),
            "/kpis": (workers[0].get("/kpis") or b"").decode(),
            "redis": redis_dump(server),
            **{worker.log.name: worker.log.read_text() for worker in workers},
            "settings line": next(
                line for line in workers[0].log.read_text().splitlines() if "settings:" in line
            ),
        }
        assert "redis://:***@127.0.0.1" in places["settings line"]
        for place, text in places.items():
            for secret in ("redis-pw-Lm42", "kafka-pw-Zq81", "wrong-pw-Xy77"):
                assert secret not in text, f"{place} shows a secret"
        assert workers[1].process.poll() is None
        refusals = workers[1].log.read_text
        wait_until(lambda: "unavailable" in refusals(), 30, "the refusal in the log")
        # publishing is retried every publish interval: three more refusals, no more lines
        first = failures(workers[1])
        wait_until(lambda: failures(workers[1]) >= first + 3, 30, "three more refused publishes")
        assert refusals().count("unavailable") == 1, "the refusal is logged once"
        assert (workers[1].kpis() or {}).get("snapshot_store") == "down"
    finally:
        for worker in workers:
            worker.stop()
        server.stop()
