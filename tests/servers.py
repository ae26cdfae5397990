"""Real servers for integration tests: the Tansu broker, redis-server and cxkpi workers, each on
free loopback ports, started and stopped by the fixtures."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.runtime.connection import bootstrap_servers, partitions_of
from stream.tools.devservers import free_port, start_broker, start_redis
from tests.reference import Record

ROOT = Path(__file__).resolve().parent.parent


def wait_until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    """Poll until condition() is truthy; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


#: A production worker keeps the customer KPIs, which need the key secret.
PRODUCTION_SECRET = {"CXKPI_CUSTOMER_KEY_SECRET": "a-test-secret-of-32-characters!!"}


def without_broker() -> dict[str, str]:
    """Settings of a production worker whose broker never answers (nothing listens on its port),
    without Redis, on a free web port."""
    return {
        "CXKPI_BROKER": f"kafka://127.0.0.1:{free_port()}",
        "CXKPI_REDIS_URL": "none",
        "CXKPI_WEB_PORT": str(free_port()),
        **PRODUCTION_SECRET,
    }


class Broker:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"kafka://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.process = start_broker(self.port, workdir / "broker.log")

    def restart(self) -> None:
        """Start again on the same port. The dev broker keeps nothing: it comes back empty."""
        self.process = start_broker(self.port, self.workdir / "broker.log")

    def stop(self) -> None:
        _stop(self.process)


class RedisServer:
    def __init__(self, workdir: Path, password: str | None = None) -> None:
        self.port = free_port()
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        self.workdir, self.password = workdir, password
        self.process = start_redis(self.port, workdir, password)

    def restart(self) -> None:
        """Start again on the same port (empty: it keeps nothing on disk)."""
        self.process = start_redis(self.port, self.workdir, self.password)

    def stop(self) -> None:
        _stop(self.process)


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    """Signal the process's group, and kill it if it has not stopped within `timeout`."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def cxkpi(
    *args: str, env: dict[str, str], check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run the cxkpi command line as a user would."""
    result = subprocess.run(
        [sys.executable, "-m", "stream", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"cxkpi {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


class Worker:
    """A `cxkpi worker` process (run by `wrapper`, e.g. a profiler, when given)."""

    def __init__(self, env: dict[str, str], log: Path, wrapper: Sequence[str] = ()) -> None:
        self.env = {**env, "CXKPI_WEB_PORT": str(free_port())}
        self.base = f"http://127.0.0.1:{self.env['CXKPI_WEB_PORT']}"
        self.log = log
        self.process = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "stream", "worker"],
            env={**os.environ, **self.env},
            cwd=ROOT,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as response:
                return response.read()
        except OSError:
            return None

    def readiness(self) -> tuple[int | None, str]:
        """/ready's status and reason (None when the worker does not answer)."""
        try:
            with urllib.request.urlopen(self.base + "/ready", timeout=5) as response:
                return response.status, orjson.loads(response.read())["reason"]
        except urllib.error.HTTPError as error:
            return error.code, orjson.loads(error.read())["reason"]
        except OSError:
            return None, ""

    def kpis(self) -> dict[str, Any] | None:
        body = self.get("/kpis")
        return orjson.loads(body) if body else None

    def wait_ready(self, timeout: float = 90) -> None:
        def ready() -> bool:
            assert self.process.poll() is None, f"worker exited; log:\n{self.log.read_text()}"
            return self.get("/ready") is not None

        wait_until(ready, timeout, "the worker to be ready")

    def processed(self) -> int:
        """Records of all source topics with an outcome, from the worker's own snapshot."""
        doc = self.kpis()
        if doc is None:
            return -1
        return sum(sum(c.values()) for c in doc["events"].values())

    def stop(self) -> None:
        _stop(self.process)

    def kill(self) -> None:
        _stop(self.process, signal.SIGKILL)

    def interrupt(self, timeout: float = 60) -> None:
        """Ctrl-C (a profiler wrapping the worker writes its profile then); killed if it has
        not stopped within `timeout`, as one interrupted while it starts may not."""
        _stop(self.process, signal.SIGINT, timeout)


@contextlib.asynccontextmanager
async def _from_start(
    broker_url: str, topics: list[str]
) -> AsyncIterator[tuple[AIOKafkaConsumer, list[TopicPartition]]]:
    """A consumer assigned every partition of the topics, at their beginning."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(broker_url),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tps = await partitions_of(consumer, topics)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        yield consumer, tps
    finally:
        await consumer.stop()


async def _read_topics(
    broker_url: str, topics: list[str], expected: int, timeout: float
) -> list[Any]:
    async with _from_start(broker_url, topics) as (consumer, _):
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(out) < expected:
            assert time.monotonic() < deadline, f"read {len(out)} of {expected} records"
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                out.extend(messages)
        return out


def read_messages(
    broker_url: str, topics: list[str], expected: int, timeout: float = 60
) -> list[Any]:
    """The first `expected` records of the topics, read back from the broker."""
    return asyncio.run(_read_topics(broker_url, topics, expected, timeout))


async def _read_to_end(broker_url: str, topics: list[str], timeout: float) -> list[Any]:
    async with _from_start(broker_url, topics) as (consumer, tps):
        ends = await consumer.end_offsets(tps)
        position = dict.fromkeys(tps, 0)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(position[tp] < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"could not read {topics} to their end"
            batch = await consumer.getmany(timeout_ms=200)
            for tp, messages in batch.items():
                out.extend(messages)
                position[tp] = messages[-1].offset + 1
        return out


def read_to_end(broker_url: str, topics: list[str], timeout: float = 60) -> list[Any]:
    """Every record the topics hold now (up to the end offsets the broker reports)."""
    return asyncio.run(_read_to_end(broker_url, topics, timeout))


def read_records(broker_url: str, topics: list[str], expected: int) -> list[Record]:
    """Source records as the reference computation takes them."""
    return [
        Record(m.topic, m.partition, m.offset, m.value)
        for m in read_messages(broker_url, topics, expected)
    ]
