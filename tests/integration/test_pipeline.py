"""End to end: events produced with `cxkpi produce`, a real worker on a real broker and Redis, and
the published KPIs (/kpis, the Redis snapshot, /metrics) against the offline reference."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from stream.contract.events import parse_timestamp_ms
from stream.contract.schemas import SOURCE_TOPICS, dead_letter_topic
from stream.publish.document import format_time
from tests.reference import CUSTOMERS_TOPIC, Rules, compare_snapshots, expected_snapshot
from tests.servers import (
    ROOT,
    Broker,
    RedisServer,
    Worker,
    cxkpi,
    read_messages,
    read_records,
    wait_until,
)

pytestmark = pytest.mark.integration

RULES = Rules(inactivity_timeout_s=120)
#: The partitions of the documents: the source topics, and the customers topic (the workers
#: run in the dev profile, which keeps the customer KPIs with a generated key secret).
PARTITIONS = dict.fromkeys((*SOURCE_TOPICS, CUSTOMERS_TOPIC), 4)


#: Where every generated log ends before it is moved to the present: its users follow the time of
#: day and the weekday, so generating at a fixed time gives a seed the same events at every hour
#: the tests run (a Wednesday afternoon, UTC: a busy hour), a second into a minute.
GENERATED_END = datetime(2026, 11, 25, 15, 0, 1, tzinfo=UTC)


def generate(
    path: Path,
    env: dict[str, str],
    count: int,
    seed: int,
    rate: float = 20,
    activity_share: float | None = None,
) -> list[bytes]:
    """A generated log whose event times end about an hour before now, a second into a minute;
    `activity_share` of the slots users' sessions (default: the generator's).

    The log is generated to end at `GENERATED_END`, then moved in time by whole minutes, so
    that its events are the same at every hour the tests run and keep their place in their
    minutes: windows hold whole 1-minute buckets and leave out the one in progress, so where in
    its minute a short log ends decides how many of its late samples (abandonments) are in the
    windows. The KPIs of a seed are then the same in every run."""
    start = GENERATED_END - timedelta(seconds=count / rate)
    cxkpi(
        "generate",
        "--count",
        str(count),
        "--rate",
        str(rate),
        "--seed",
        str(seed),
        "--start",
        start.isoformat(),
        "--resolution-median",
        "2m",
        "--out",
        str(path),
        "--quiet",
        *(() if activity_share is None else ("--activity-share", str(activity_share))),
        env=env,
    )
    hour_ago = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    by_ms = round((hour_ago + timedelta(seconds=1) - GENERATED_END).total_seconds() * 1000)
    lines = [moved(line, by_ms) for line in path.read_bytes().splitlines()]
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return lines


def moved(line: bytes, by_ms: int) -> bytes:
    """A generated event moved in time (`occurred_at` is its only time)."""
    event = orjson.loads(line)
    at = parse_timestamp_ms(event["occurred_at"])
    assert at is not None, line
    event["occurred_at"] = format_time(at + by_ms)
    return orjson.dumps(event)


def expected_for(
    broker: Broker, total: int, rules: Rules = RULES, change_windows: bool = False
) -> dict[str, Any]:
    records = read_records(broker.url, list(SOURCE_TOPICS), total)
    return expected_snapshot(
        records,
        rules,
        now_ms=int(time.time() * 1000),
        partitions=PARTITIONS,
        change_windows=change_windows,
    )


def wait_processed(worker: Worker, total: int, timeout: float = 240) -> None:
    seen: list[int] = []

    def done() -> bool:
        seen.append(worker.processed())
        assert seen[-1] <= total, f"{seen[-1]} records have an outcome, only {total} were sent"
        return seen[-1] == total

    try:
        wait_until(done, timeout, f"{total} records processed")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last count {seen[-1:]}") from None


def assert_same(actual: dict[str, Any] | None, expected: dict[str, Any]) -> None:
    assert actual is not None
    differences = compare_snapshots(actual, expected)
    assert not differences, "\n".join(differences[:40])


def wait_same(
    fetch: Callable[[], dict[str, Any] | None], expected: dict[str, Any], timeout: float = 60
) -> None:
    """Wait until the fetched document equals the reference: the customers partitions follow
    the cart partitions through Kafka, a flush round or two behind the source records."""
    differences: list[list[str]] = []

    def same() -> bool:
        differences.append(compare_snapshots(fetch() or {}, expected))
        return not differences[-1]

    try:
        wait_until(same, timeout, "the document to equal the reference")
    except AssertionError as exc:
        raise AssertionError(f"{exc}:\n" + "\n".join(differences[-1][:40])) from None


def redis_snapshot(server: RedisServer) -> dict[str, Any] | None:
    raw = redis.Redis.from_url(server.url).get("cxkpi-test:snapshot")
    return orjson.loads(raw) if raw else None


def wait_redis_equal(server: RedisServer, expected: dict[str, Any]) -> None:
    """Wait until the merged snapshot in Redis equals the reference, its windows valid at the
    reference's stream time too (also after a restart); else say how it differs."""
    wait_same(lambda: redis_snapshot(server), expected)

    def windows_valid_at() -> Any:
        return (redis_snapshot(server) or {}).get("windows_valid_at")

    wait_until(
        lambda: windows_valid_at() == expected["valid_at"],
        30,
        f"the Redis document's windows_valid_at to be {expected['valid_at']}",
    )


def assert_published(worker: Worker, server: RedisServer, expected: dict[str, Any]) -> None:
    """/kpis, the Redis snapshot and /metrics all equal the reference."""
    wait_same(worker.kpis, expected)
    wait_redis_equal(server, expected)
    assert_metrics_match(worker, expected)
    samples = metric_samples(worker)
    standard = {name for name, _ in samples}
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total", "python_info"} <= standard
    # the only worker owns every partition: it writes the merged snapshot, and never conflicts
    assert samples["cxkpi_snapshot_leader", frozenset()] == 1
    assert samples["cxkpi_snapshot_publish_seconds_count", frozenset()] >= 1
    assert samples["cxkpi_snapshot_publish_retries_total", frozenset()] == 0


def metric_samples(worker: Worker) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body = worker.get("/metrics")
    assert body is not None
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def kpi_cells(kpi: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(dimension, segment, value) of a KPI's overall value ("all", "all") and of each segment."""
    return [("all", "all", kpi["overall"])] + [
        (dim, seg, v) for dim, segs in kpi.items() if dim != "overall" for seg, v in segs.items()
    ]


def expected_metric_samples(expected: dict[str, Any]) -> dict[tuple[str, frozenset], float]:
    """The component series /metrics must show for the expected snapshot."""
    out: dict[tuple[str, frozenset], float] = {}
    places = [(w, kpis) for w, kpis in expected["windows"].items()] + [(None, expected["live"])]
    places += expected.get("change_windows", {}).items()  # those only the change alerts read
    for window, kpis in places:
        for kpi, value in kpis.items():
            if not isinstance(value, dict):
                continue  # a window's `complete`
            for dim, seg, v in kpi_cells(value):
                base = {("dimension", dim), ("segment", seg)}
                if window is not None:
                    base.add(("window", window))
                if "buckets" in v:  # a duration, or the backlog age: gauge histogram
                    name = f"cxkpi_{kpi}_seconds"
                    out[(f"{name}_gcount", frozenset(base))] = v.get("count", v.get("tickets"))
                    out[(f"{name}_gsum", frozenset(base))] = v["sum_seconds"]
                    if "sum_of_squares" in v:  # a duration (the backlog age has none)
                        out[(f"{name}_sum_of_squares", frozenset(base))] = v["sum_of_squares"]
                    for le, n in v["buckets"].items():
                        le_label = le if le == "+Inf" else f"{le}.0"
                        out[(f"{name}_bucket", frozenset(base | {("le", le_label)}))] = n
                    if v.get("oldest_seconds") is not None:
                        oldest = ("cxkpi_backlog_oldest_age_seconds", frozenset(base))
                        out[oldest] = v["oldest_seconds"]
                elif kpi == "average_order_value":
                    for currency, money in v.items():
                        labels = frozenset(base | {("currency", currency)})
                        out[(f"cxkpi_{kpi}_orders", labels)] = money["orders"]
                        out[(f"cxkpi_{kpi}_amount", labels)] = money["amount"]
                else:
                    for part, n in v.items():
                        # components; computed values are floats (but the sentiment's score
                        # sum, a component in score units)
                        if isinstance(n, int) or (kpi == "sentiment" and part == "score_sum"):
                            out[(f"cxkpi_{kpi}_{part}", frozenset(base))] = n
                    if kpi == "sentiment":  # a float component: the scores' sum
                        out[(f"cxkpi_{kpi}_score_sum", frozenset(base))] = v["score_sum"]
                    for name, n in v.get("named", {}).items():  # emotions: one per emotion
                        labels = frozenset(base | {("emotion", name)})
                        out[(f"cxkpi_{kpi}_named", labels)] = n
                    for currency, money in v.get("lifetime_value", {}).items():  # customers
                        labels = frozenset(base | {("currency", currency)})
                        out[(f"cxkpi_{kpi}_priced_orders", labels)] = money["orders"]
                        out[(f"cxkpi_{kpi}_amount", labels)] = money["amount"]
    for topic, counts in expected["events"].items():
        for outcome, n in counts.items():
            out[("events_by_topic", frozenset({("topic", topic), ("outcome", outcome)}))] = n
    return out


def assert_metrics_match(worker: Worker, expected: dict[str, Any]) -> None:
    actual = metric_samples(worker)
    by_topic: dict[tuple[str, frozenset], float] = {}
    for (name, labels), value in actual.items():
        if name == "cxkpi_events_total":
            rest = frozenset((k, v) for k, v in labels if k != "partition")
            key = ("events_by_topic", rest)
            by_topic[key] = by_topic.get(key, 0) + value
    actual.update(by_topic)
    # a series /metrics lacks is wrong even where the reference expects 0: components are
    # exported zeros included (stream/publish/prometheus.py)
    wrong = [
        f"{name}{dict(labels)}: {actual.get((name, labels), 'missing')} != {value}"
        for (name, labels), value in expected_metric_samples(expected).items()
        if (name, labels) not in actual
        or abs(actual[(name, labels)] - value) > 1e-6 * max(1.0, abs(value))
    ]
    assert not wrong, "\n".join(wrong[:40])


def test_published_kpis_equal_the_offline_computation(
    broker: Broker, redis_server: RedisServer, worker_env: dict[str, str], tmp_path: Path
) -> None:
    lines = generate(tmp_path / "events.jsonl", worker_env, 4000, seed=7)
    result = cxkpi("produce", str(tmp_path / "events.jsonl"), "--quiet", env=worker_env)
    assert f"sent {len(lines)} events" in result.stdout
    worker = Worker(worker_env, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        wait_processed(worker, len(lines))
        expected = expected_for(broker, len(lines))
        assert expected["windows"]["1h"]["nps"]["overall"]["responses"] > 100
        abandoned = expected["windows"]["1h"]["cart_abandonment"]["overall"]["abandoned"]
        assert abandoned > 10, abandoned
        assert expected["windows"]["1h"]["resolution_time"]["overall"]["count"] > 10
        hour = expected["windows"]["1h"]
        assert hour["first_response_time"]["overall"]["count"] > 10
        assert hour["first_contact_resolution"]["overall"]["solves"] > 10
        assert hour["conversion"]["overall"]["created"] > 10
        assert hour["upsell"]["overall"]["upsold"] > 0
        assert set(hour["average_order_value"]["overall"]) == {"EUR", "USD"}  # two currencies
        assert hour["csat"]["overall"]["responses"] > 10
        assert hour["ces"]["overall"]["responses"] > 5
        assert expected["live"]["open_backlog"]["overall"]["tickets"] > 10
        assert_published(worker, redis_server, expected)
    finally:
        worker.stop()


def test_sigkill_mid_stream_and_duplicate_deliveries_stay_exact(
    broker: Broker, redis_server: RedisServer, worker_env: dict[str, str], tmp_path: Path
) -> None:
    lines = generate(tmp_path / "events.jsonl", worker_env, 2000, seed=11)
    doubled = tmp_path / "doubled.jsonl"
    doubled.write_bytes(b"".join(line + b"\n" + line + b"\n" for line in lines))
    total = 2 * len(lines) + len(lines)  # every event twice in a row, then the log once more
    worker = Worker(worker_env, tmp_path / "worker-1.log")
    worker.wait_ready()
    producer = subprocess.Popen(
        [sys.executable, "-m", "stream", "produce", str(doubled), "--quiet"],
        env={**os.environ, **worker_env},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: worker.processed() > total // 6, 120, "some records processed")
        worker.kill()  # SIGKILL mid-stream
        assert producer.wait(timeout=120) == 0
        cxkpi("produce", str(tmp_path / "events.jsonl"), "--quiet", env=worker_env)
        worker = Worker(worker_env, tmp_path / "worker-2.log")
        worker.wait_ready()
        wait_processed(worker, total)
        expected = expected_for(broker, total)
        assert expected["events"]["cart-events"]["duplicate"] > 100
        wait_same(worker.kpis, expected)
        wait_redis_equal(redis_server, expected)
    finally:
        if producer.poll() is None:
            producer.send_signal(signal.SIGTERM)
        worker.stop()


#: (topic, template, error): `{i}` makes every malformed record distinct
BAD_KINDS: list[tuple[str, bytes, str]] = [
    ("cart-events", b"{not json {i}", "invalid_json"),
    ("cart-events", b"\xff\xfe\x00garbage {i}", "invalid_json"),
    ("cart-events", b'["an", "array", {i}]', "invalid_json"),
    (
        "cart-events",
        b'{"event_id": "b{i}", "type": "cart_exploded", "occurred_at": '
        b'"2026-11-23T10:00:00Z", "cart_id": "x"}',
        "unknown_type",
    ),
    (
        "cart-events",
        b'{"event_id": "b{i}", "type": "item_added", "occurred_at": "2026-11-23T10:00:00Z"}',
        "schema_violation",
    ),
    (
        "tickets",
        b'{"event_id": "b{i}", "type": "ticket_opened", "occurred_at": "yesterday", '
        b'"ticket_id": "t"}',
        "schema_violation",
    ),
    (
        "tickets",
        b'{"event_id": "b{i}", "type": "ticket_opened", "occurred_at": '
        b'"2026-11-23T10:00:00Z", "ticket_id": "t", "schema_version": 2}',
        "unsupported_schema_version",
    ),
    (
        "survey-replies",
        b'{"event_id": "b{i}", "type": "nps", "occurred_at": '
        b'"2026-11-23T10:00:00Z", "response_id": "r", "score": 11}',
        "schema_violation",
    ),
    (  # over the test's max_event_bytes (4 KiB): dead-lettered unparsed
        "survey-replies",
        b'{"event_id": "b{i}", "type": "nps", "occurred_at": '
        b'"2026-11-23T10:00:00Z", "response_id": "r", "score": 5, "comment": "'
        + b"x" * 5000
        + b'"}',
        "too_large",
    ),
    (
        "survey-replies",
        b'{"event_id": "b{i}", "type": "csat", "occurred_at": '
        b'"2099-01-01T00:00:00Z", "response_id": "r", "score": 5}',
        "occurred_at_in_future",
    ),
]
MALFORMED = 10_000
ROUNDS = 10


def malformed(first: int, count: int) -> list[tuple[str, bytes, str]]:
    """`count` distinct malformed records, cycling through every kind."""
    return [
        (topic, template.replace(b"{i}", str(i).encode()), error)
        for i in range(first, first + count)
        for topic, template, error in [BAD_KINDS[i % len(BAD_KINDS)]]
    ]


def test_bad_input_is_dead_lettered_and_valid_kpis_stay_exact(
    broker: Broker, redis_server: RedisServer, worker_env: dict[str, str], tmp_path: Path
) -> None:
    """10,000 malformed records interleaved with valid ones: each is in its dead-letter topic
    with its reason and original bytes, and the valid events' KPIs are exact."""
    env = {**worker_env, "CXKPI_MAX_EVENT_BYTES": "4096"}
    lines = generate(tmp_path / "events.jsonl", env, 3000, seed=5)
    worker = Worker(env, tmp_path / "worker.log")
    worker.wait_ready()
    pid = worker.process.pid
    per_round, bad_per_round = len(lines) // ROUNDS, MALFORMED // ROUNDS
    sent: dict[tuple[str, bytes], str] = {}
    try:
        for i in range(ROUNDS):
            part = tmp_path / f"part-{i}.jsonl"
            part.write_bytes(b"\n".join(lines[i * per_round : (i + 1) * per_round]) + b"\n")
            cxkpi("produce", str(part), "--quiet", env=env)
            bad = malformed(i * bad_per_round, bad_per_round)
            for topic in SOURCE_TOPICS:
                path = tmp_path / f"bad-{i}-{topic}.jsonl"
                path.write_bytes(b"".join(line + b"\n" for t, line, _ in bad if t == topic))
                cxkpi("produce", str(path), "--no-validate", "--topic", topic, "--quiet", env=env)
            sent.update({(t, line): error for t, line, error in bad})
        assert len(sent) == MALFORMED
        total = len(lines) + MALFORMED
        wait_processed(worker, total)
        expected = expected_for(broker, total, replace(RULES, max_event_bytes=4096))
        assert sum(c["dead_lettered"] for c in expected["events"].values()) == MALFORMED
        wait_same(worker.kpis, expected)
        dead = read_messages(broker.url, [dead_letter_topic(t) for t in SOURCE_TOPICS], MALFORMED)
        found: dict[tuple[str, bytes], str] = {}
        for message in dead:
            headers = {k: v.decode() for k, v in message.headers}
            source = headers["source_topic"]
            assert message.topic == dead_letter_topic(source)
            assert headers["error_detail"]
            assert int(headers["source_offset"]) >= 0
            found[source, message.value] = headers["error"]
        assert found == sent, "every malformed record, its original bytes and its reason"
        assert worker.process.poll() is None and worker.process.pid == pid
        assert "Traceback" not in worker.log.read_text()
    finally:
        worker.stop()
