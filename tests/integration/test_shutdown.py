"""Stopping a busy worker is clean: SIGTERM mid-stream exits 0, and the next worker is exact."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from stream.runtime.process import STOP_DEADLINE_S
from tests.integration.test_pipeline import expected_for, generate, wait_processed, wait_same
from tests.servers import Broker, Worker, cxkpi, wait_until

pytestmark = pytest.mark.integration
EVENTS = 12_000


def test_sigterm_while_busy_exits_cleanly(
    broker: Broker, worker_env: dict[str, str], tmp_path: Path
) -> None:
    lines = generate(tmp_path / "events.jsonl", worker_env, EVENTS, seed=31)
    cxkpi("produce", str(tmp_path / "events.jsonl"), "--quiet", env=worker_env)
    worker = Worker(worker_env, tmp_path / "worker-1.log")
    try:
        worker.wait_ready()
        wait_until(lambda: worker.processed() > EVENTS // 6, 120, "the worker to be busy")
        started = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        code = worker.process.wait(timeout=60)
        took = time.monotonic() - started
        log = worker.log.read_text()
        assert code == 0, f"exit code {code}:\n{log[-3000:]}"
        assert took < STOP_DEADLINE_S, f"stopped after {took:.1f} s"
        assert "crash" not in log.lower() and "Traceback" not in log, log[-3000:]
    finally:
        worker.stop()
    worker = Worker(worker_env, tmp_path / "worker-2.log")
    try:
        worker.wait_ready()
        wait_processed(worker, len(lines))
        wait_same(worker.kpis, expected_for(broker, len(lines)))
    finally:
        worker.stop()
