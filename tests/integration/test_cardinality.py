"""A flood of distinct segment values never grows the series count past the bound."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from tests.integration.test_pipeline import (
    assert_same,
    expected_for,
    metric_samples,
    wait_processed,
)
from tests.servers import Broker, Worker, cxkpi

pytestmark = pytest.mark.integration

DISTINCT = 10_000
BOUND = 20


def test_ten_thousand_channels_give_at_most_the_bound_plus_other(
    broker: Broker, worker_env: dict[str, str], tmp_path: Path
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    with (tmp_path / "flood.jsonl").open("wb") as out:
        for i in range(DISTINCT):
            event = {
                "event_id": f"e{i}",
                "type": "nps",
                "occurred_at": (start + timedelta(milliseconds=60 * i)).isoformat(),
                "response_id": f"r{i}",
                "score": i % 11,
                "channel": f"channel-{i}",
                "region": "eu",
            }
            out.write(orjson.dumps(event) + b"\n")
    cxkpi("produce", str(tmp_path / "flood.jsonl"), "--quiet", env=worker_env)
    worker = Worker(worker_env, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        wait_processed(worker, DISTINCT)
        doc = worker.kpis()
        assert doc is not None
        # the flood spans 10 minutes: the hourly buckets of 7d and 30d may not have closed yet
        filled = {w: v for w, v in doc["windows"].items() if v["nps"]["overall"]["responses"]}
        assert {"5m", "1h", "24h"} <= set(filled)
        for name, window in doc["windows"].items():
            channels = set(window["nps"]["channel"])
            assert len(channels - {"other"}) <= BOUND, len(channels)
            assert "other" in channels or name not in filled
        folded = doc["segments"]["folded_events"]["survey-replies"]["channel"]
        assert folded == DISTINCT - 4 * BOUND  # each of the 4 partitions admits its first 20
        assert len(doc["segments"]["kept"]["channel"]) == BOUND

        series: dict[str, set[str]] = defaultdict(set)
        for (name, labels), _ in metric_samples(worker).items():
            label = dict(labels)
            if label.get("dimension") == "channel" and "segment" in label:
                series[name].add(label["segment"])
        assert series, "no per-channel series at all"
        for name, segments in series.items():
            assert len(segments) <= BOUND + 1, (name, len(segments))
        assert_same(doc, expected_for(broker, DISTINCT))
    finally:
        worker.stop()
