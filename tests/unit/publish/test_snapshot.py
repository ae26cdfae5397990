"""The merged document's per-partition progress (docs/snapshot.md, `processed`)."""

from __future__ import annotations

from stream.publish.document import Shape
from stream.publish.entries import partition_entry
from tests.unit.feed import CONFIG, Feed


def test_processed_counts_each_partition_and_shows_the_empty_ones() -> None:
    first, third = Feed("survey-replies", partition=0), Feed("survey-replies", partition=2)
    first("r1", "csat", 1, score=5)
    first("r1", "csat", 1, score=5)  # a duplicate has an outcome too
    third("r2", "csat", 2, score=1)
    shape = Shape(CONFIG.windows_ms, {"survey-replies": 3}, CONFIG.max_segment_values)
    doc = shape.document([partition_entry(first.state), partition_entry(third.state)])
    assert doc["processed"] == {"survey-replies": {"0": 2, "1": 0, "2": 1}}
    assert sum(doc["events"]["survey-replies"].values()) == 3
