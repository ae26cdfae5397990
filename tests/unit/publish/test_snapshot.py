"""The merged document's per-partition progress (docs/snapshot.md, `processed`) and its stamp
(`published_at`, `writer`, `partitions_published_at`)."""

from __future__ import annotations

from dataclasses import replace

from stream.publish.document import Shape, format_time
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


def test_the_stamp_says_since_when_every_current_partition_was_published() -> None:
    """The oldest entry's time of writing, over the partitions the topics have now; unknown
    (null) while some entry does not say (written by an earlier version)."""
    feeds = [Feed("survey-replies", partition=n) for n in range(3)]
    entries = [partition_entry(f.state) for f in feeds]
    old, new, gone = 1_790_000_000_000, 1_790_000_005_000, 1_700_000_000_000
    dated = [replace(entries[0], published_at=new), replace(entries[1], published_at=old)]
    shape = Shape(CONFIG.windows_ms, {"survey-replies": 2}, CONFIG.max_segment_values)
    stale_third = replace(entries[2], published_at=gone)  # a partition the topic no longer has
    doc = shape.stamp(shape.document(dated), [*dated, stale_third], new + 250, "cxkpi-0")
    assert doc["published_at"] == format_time(new + 250) == "2026-09-21T14:13:25.250Z"
    assert doc["writer"] == "cxkpi-0"
    assert doc["partitions_published_at"] == format_time(old)
    undated = shape.stamp(shape.document(entries[:2]), [dated[0], entries[1]], new, "cxkpi-0")
    assert undated["partitions_published_at"] is None
