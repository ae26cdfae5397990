"""Idle partitions: stream time follows the wall clock, so a shopper who left is flagged."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from tests.servers import Worker, cxkpi, wait_until

pytestmark = pytest.mark.integration


def test_cart_is_abandoned_with_no_later_event(worker_env: dict[str, str], tmp_path: Path) -> None:
    env = {
        **worker_env,
        "CXKPI_STEP": "1s",
        "CXKPI_CONFIG": "none",  # a 1m window only: not the alert windows of cxkpi.toml
        "CXKPI_WINDOWS": "1m",
        "CXKPI_GRACE": "5s",
        "CXKPI_INACTIVITY_TIMEOUT": "3s",
        "CXKPI_IDLE_TIMEOUT": "1s",
    }
    worker = Worker(env, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        now = datetime.now(UTC)
        event = {
            "event_id": "only",
            "type": "item_added",
            "occurred_at": now.isoformat(),
            "cart_id": "left-alone",
            "channel": "web",
        }
        (tmp_path / "one.jsonl").write_bytes(orjson.dumps(event) + b"\n")
        cxkpi("produce", str(tmp_path / "one.jsonl"), "--quiet", env=env)
        sent = time.monotonic()

        def abandoned() -> int:
            doc = worker.kpis() or {}
            return (
                doc.get("windows", {})
                .get("1m", {})
                .get("cart_abandonment", {})
                .get("overall", {})
                .get("abandoned", 0)
            )

        wait_until(abandoned, 60, "the lone cart to be flagged abandoned")
        doc = worker.kpis()
        assert doc is not None
        assert doc["events"]["cart-events"]["applied"] == 1  # no later event was needed
        assert doc["windows"]["1m"]["cart_abandonment"]["channel"]["web"]["ratio"] == 1.0
        # flagged only after the inactivity timeout, in stream time that followed the clock
        assert time.monotonic() - sent >= 3
        latest = datetime.fromisoformat(doc["latest"])
        assert (latest - now).total_seconds() >= 3  # stream time moved on without any event
    finally:
        worker.stop()
