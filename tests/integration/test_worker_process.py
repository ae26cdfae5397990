"""The worker process as an operator meets it: it waits for a broker that is not there yet, stops
within seconds whatever the broker does, is ready only while the broker answers, stays quiet
while Redis hangs, leaves no folder behind, and writes log lines fit for a file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import orjson
import pytest

from stream.runtime.process import FINAL_FLUSH_S, STOP_DEADLINE_S
from stream.tools.devservers import free_port, start_broker
from tests.integration.test_pipeline import generate, wait_processed
from tests.servers import (
    PRODUCTION_SECRET,
    Broker,
    RedisServer,
    Worker,
    _stop,
    cxkpi,
    wait_until,
    without_broker,
)

pytestmark = pytest.mark.integration
EVENTS = 300


def stop_and_time(worker: Worker) -> tuple[int, float]:
    """SIGTERM the worker: (exit code, seconds it took to exit)."""
    started = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    code = worker.process.wait(timeout=60)
    return code, time.monotonic() - started


def answer(worker: Worker) -> tuple[int, str] | None:
    """/ready's status and reason, once the worker answers."""
    status, reason = worker.readiness()
    return None if status is None else (status, reason)


def logged(worker: Worker, text: str, times: int) -> None:
    """Wait until the worker's log holds `text` `times` times (a check runs once a second)."""
    wait_until(lambda: worker.log.read_text().count(text) == times, 15, f"{text!r} logged")


def assert_stopped(worker: Worker, code: int, took: float, says: str) -> None:
    """A stop with the broker away: exit code 0 right after the last flush's time, one line
    saying what was committed, a plain log."""
    log = worker.log.read_text()
    print(f"stopped {took:.2f} s after SIGTERM", file=sys.stderr)
    assert code == 0 and took < FINAL_FLUSH_S + 2, (code, took, log[-3000:])
    assert says in log
    assert_plain_log(log)


def assert_plain_log(log: str) -> None:
    assert "\x1b" not in log, "a terminal escape sequence in the log file"
    assert "Traceback" not in log, log[-3000:]


def test_worker_waits_for_the_broker_then_runs_and_leaves_no_folder(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    port = free_port()
    env = {
        "CXKPI_BROKER": f"kafka://127.0.0.1:{port}",
        "CXKPI_REDIS_URL": redis_server.url,
        "CXKPI_PROFILE": "dev",
        "CXKPI_APP_ID": "cxkpi-wait",
        "CXKPI_LOG_FORMAT": "json",
        "TMPDIR": str(temp),  # the worker's scratch files go under the system temp dir
    }
    brokers: list[subprocess.Popen] = []
    try:
        for start in range(2):
            worker = Worker(env, tmp_path / f"worker-{start}.log")
            try:
                if not brokers:  # no broker yet: alive, healthy, not ready, and saying why
                    status, reason = wait_until(partial(answer, worker), 30, "/ready to answer")
                    assert status == 503 and "waiting for the broker" in reason
                    time.sleep(3)
                    assert worker.process.poll() is None, worker.log.read_text()
                    assert worker.get("/health") is not None
                    brokers.append(start_broker(port, tmp_path / "broker.log"))
                worker.wait_ready()
                code, took = stop_and_time(worker)
            finally:
                worker.stop()
            log = worker.log.read_text()
            assert code == 0 and took < STOP_DEADLINE_S, (code, took, log[-3000:])
            records = [orjson.loads(line) for line in log.splitlines() if line.strip()]
            assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
            assert_plain_log(log)
    finally:
        for process in brokers:
            _stop(process)
    messages = [orjson.loads(line)["message"] for line in (tmp_path / "worker-0.log").open()]
    assert sum("cannot reach the broker" in m for m in messages) == 1, "the wait is logged once"
    assert any(m.startswith("broker reachable after") for m in messages)
    # two starts, one data folder for the app id, nothing else under the temp dir
    assert [p.relative_to(temp).as_posix() for p in sorted(temp.iterdir())] == ["cxkpi"]
    assert [p.name for p in (temp / "cxkpi").iterdir()] == ["cxkpi-wait"]


def test_worker_gives_up_on_a_missing_broker_when_told(tmp_path: Path) -> None:
    started = time.monotonic()
    result = cxkpi(
        "worker",
        "--exit-if-no-broker-after",
        "2s",
        env=without_broker(),
        check=False,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert time.monotonic() - started < 30
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("cxkpi worker: error: cannot reach the broker at kafka://127.0.0.1:")
    assert "gave up after" in last and "Traceback" not in result.stderr


def test_a_web_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cxkpi(
            "worker",
            *("--web-port", str(port), "--broker", f"kafka://127.0.0.1:{free_port()}"),
            env={"CXKPI_REDIS_URL": "none", **PRODUCTION_SECRET},
            check=False,
            timeout=60,
        )
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"cxkpi worker: error: cannot serve HTTP on 127.0.0.1:{port}")


def test_sigterm_with_the_broker_stopped_exits_in_seconds_and_says_what_was_not_flushed(
    broker: Broker, worker_env: dict[str, str], tmp_path: Path
) -> None:
    generate(tmp_path / "events.jsonl", worker_env, EVENTS, seed=41)
    env = {**worker_env, "CXKPI_FLUSH_INTERVAL": "1h"}  # what is applied stays unflushed
    worker = Worker(env, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        cxkpi("produce", str(tmp_path / "events.jsonl"), "--quiet", env=env)
        wait_processed(worker, EVENTS)
        broker.stop()
        code, took = stop_and_time(worker)
    finally:
        worker.stop()
    assert_stopped(worker, code, took, f"stopping: {EVENTS} applied records not committed to the")


def test_readiness_follows_the_brokers_answers_not_its_port(
    broker: Broker, worker_env: dict[str, str], tmp_path: Path
) -> None:
    """A frozen broker (SIGSTOP) still accepts connections and answers nothing."""
    worker = Worker(worker_env, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        for freeze in range(1, 3):
            os.killpg(broker.process.pid, signal.SIGSTOP)
            frozen = time.monotonic()
            wait_until(
                lambda: worker.readiness()[1].startswith("broker unreachable"),
                20,
                "/ready to see the frozen broker",
            )
            flipped = time.monotonic() - frozen
            assert worker.readiness()[0] == 503
            logged(worker, "broker unreachable (", freeze)
            os.killpg(broker.process.pid, signal.SIGCONT)
            worker.wait_ready(timeout=60)
            logged(worker, "broker reachable again", freeze)
        print(f"readiness flipped {flipped:.1f} s after SIGSTOP", file=sys.stderr)
        os.killpg(broker.process.pid, signal.SIGSTOP)  # and a stop while it is frozen
        logged(worker, "broker unreachable (", 3)
        code, took = stop_and_time(worker)
        os.killpg(broker.process.pid, signal.SIGCONT)
    finally:
        worker.stop()
    assert_stopped(worker, code, took, "stopping: everything applied is committed; broker unrea")


def test_a_hung_redis_is_reported_once_and_never_overlaps_the_publish_timer(
    redis_server: RedisServer, worker_env: dict[str, str], tmp_path: Path
) -> None:
    worker = Worker(worker_env, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        os.killpg(redis_server.process.pid, signal.SIGSTOP)
        wait_until(
            lambda: (worker.kpis() or {}).get("snapshot_store") == "down", 30, "Redis seen down"
        )
        time.sleep(8)  # eight publish intervals of a hung Redis
        os.killpg(redis_server.process.pid, signal.SIGCONT)
        wait_until(lambda: (worker.kpis() or {}).get("snapshot_store") == "up", 30, "Redis back")
    finally:
        worker.stop()
    log = worker.log.read_text()
    assert log.count("unavailable") == 1, "one warning with the reason"
    assert "overlapping" not in log
    assert "is back" in log
