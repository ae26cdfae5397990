"""The checkpoint's crash points: a worker SIGKILLs itself at each named step of a flush round
(and of recovery) part-way through a log, a restarted worker finishes it, and the published KPIs,
the customers' included, equal the offline reference exactly.

The worker kills itself through its test hook (CXKPI_CRASH_AT, stream/runtime/crash.py): the
crash happens at that step, not at a random moment. docs/architecture.md says why each is safe.
"""

from __future__ import annotations

import asyncio
import re
import signal
import threading
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from stream.runtime.checkpoint import POINTS
from stream.runtime.connection import bootstrap_servers
from stream.tools.produce import route
from tests.integration.test_pipeline import assert_published, expected_for, generate, wait_processed
from tests.servers import Broker, RedisServer, Worker, wait_until

pytestmark = pytest.mark.integration

#: 100 minutes of event time: carts are decided (inactivity 2 min, grace 5 min) and their orders
#: forwarded from a few minutes in, and the customers' stream time passes an hour boundary (the
#: customer KPIs are evaluated at whole long steps).
EVENTS, RATE = 3000, 0.5
#: The log is produced over about PRODUCE_S seconds, so that a worker reading it runs several
#: flush rounds (one a second per topic) with something in each step.
PRODUCE_S, CHUNKS = 8.0, 40

#: Where each worker dies in turn before the last one finishes the log (<point>:<n>: the n-th
#: time a round passes the point having done that step). Recovery's rounds count too (a marker
#: per topic at start), and four topics' rounds run each second, so each n falls a few seconds
#: into the log.
CRASHES = {
    "records-sent": ["records-sent:8"],
    "orders-sent": ["orders-sent:3"],
    "records-durable": ["records-durable:10"],
    "watermarks-sent": ["watermarks-sent:3"],
    "markers-sent": ["markers-sent:10"],
    "markers-durable": ["markers-durable:10"],
    "acknowledged": ["acknowledged:6"],
    # the first dies with a round's records durable and its markers not, the second while
    # rebuilding that (the rollback computed, not committed), the third once the rollback is
    # committed and new epochs follow it (a torn epoch's number must never be reused)
    "restored": ["records-durable:10", "restored:1", "markers-durable:6"],
}


@pytest.fixture(scope="module")
def log_lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    path = tmp_path_factory.mktemp("crash-points") / "events.jsonl"
    return generate(path, {}, EVENTS, seed=23, rate=RATE)


def produce_paced(broker: Broker, lines: list[bytes]) -> threading.Thread:
    """Send the lines in CHUNKS chunks over PRODUCE_S seconds, in a thread."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(broker.url), linger_ms=5)
        await producer.start()
        try:
            size = -(-len(lines) // CHUNKS)
            for first in range(0, len(lines), size):
                for line in lines[first : first + size]:
                    routed = route(line, max_bytes=65536, max_future_s=3600)
                    assert not isinstance(routed, str), routed
                    topic, key = routed
                    await producer.send(topic, value=line, key=key)
                await producer.flush()
                await asyncio.sleep(PRODUCE_S / CHUNKS)
        finally:
            await producer.stop()

    thread = threading.Thread(target=asyncio.run, args=(send(),), daemon=True)
    thread.start()
    return thread


def crash(env: dict[str, str], at: str, log: Path) -> Worker:
    """A worker armed to SIGKILL itself at `at` (<point>:<n>)."""
    return Worker({**env, "CXKPI_CRASH_AT": at}, log)


def assert_crashed_at(worker: Worker, point: str) -> None:
    """The worker died of SIGKILL, by its own hook, at that point."""
    wait_until(lambda: worker.process.poll() is not None, 120, f"the worker to crash at {point}")
    text = worker.log.read_text()
    assert worker.process.returncode == -signal.SIGKILL, text[-3000:]
    assert f"crash point {point} reached" in text, text[-3000:]


@pytest.mark.parametrize("point", POINTS)
def test_a_crash_at_each_point_of_the_checkpoint_leaves_the_kpis_exact(
    point: str,
    broker: Broker,
    redis_server: RedisServer,
    worker_env: dict[str, str],
    log_lines: list[bytes],
    tmp_path: Path,
) -> None:
    assert list(CRASHES) == list(POINTS)
    workers: list[Worker] = []
    try:
        for i, at in enumerate(CRASHES[point], start=1):
            workers.append(crash(worker_env, at, tmp_path / f"worker-{i}.log"))
            if i == 1:
                workers[0].wait_ready()
                producer = produce_paced(broker, log_lines)
            assert_crashed_at(workers[-1], at.split(":")[0])
            if at.startswith("restored"):  # it rebuilt what the one before committed
                assert re.search(r"recovered: offset [0-9]", workers[-1].log.read_text())
        producer.join(timeout=60)
        assert not producer.is_alive()
        last = Worker(worker_env, tmp_path / "worker-last.log")
        workers.append(last)
        last.wait_ready(timeout=120)
        wait_processed(last, len(log_lines))
        expected = expected_for(broker, len(log_lines))
        customers = expected["live"]["customers"]["overall"]
        assert customers["active"] > 5, "orders were decided and forwarded"
        assert expected["windows"]["1h"]["cart_abandonment"]["overall"]["abandoned"] > 10
        assert_published(last, redis_server, expected)
    finally:
        for worker in workers:
            worker.stop()
