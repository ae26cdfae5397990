"""A partition's entry: what the merged snapshot needs of one partition, and its Redis codec.

Each partition contributes an entry (its window totals at its own stream time, its live gauges,
its outcome counts, ...). Entries merge by addition, whoever owns the partition
(stream/publish/merge.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from stream.state.partition import PartitionState
from stream.state.segments import Admitted
from stream.state.windows import Totals, rows_of, totals_of

#: A partition's window totals by window key (a size in ms, or a lagged window's key).
WindowTotals = dict[int, Totals]


@dataclass(slots=True)
class Entry:
    """A summary of one partition. `windows` is empty when sent without its window totals,
    which the Redis store keeps apart: then `windows_version` names the version of the totals
    it goes with and `windows_at` the stream time up to which they are known to hold (both None
    in an entry of a worker of an earlier version, whose totals are inside). `published_at` is
    when its owner wrote it to Redis (epoch ms; None before it is, and in an entry of an earlier
    version): an owner that died leaves its entries as they were, and this says since when."""

    topic: str
    partition: int
    stream_time: int | None
    counts: dict[str, int]
    windows: WindowTotals
    live: Totals
    #: [dimension, segment, summed age ms, oldest age ms] of the open tickets
    ages: list[list[Any]]
    #: [size ms, covered from, complete at] of the windows not yet filled after a rebuild
    incomplete: list[list[int]]
    segments: Admitted
    folded: dict[str, int]
    windows_version: str | None = None
    windows_at: int | None = None
    published_at: int | None = None

    @property
    def field(self) -> str:
        """Its field in Redis and its name in the fleet: 'topic/partition'."""
        return f"{self.topic}/{self.partition}"

    def to_json(self) -> dict[str, Any]:
        """The entry as stored in Redis: totals as rows, window sizes as strings."""
        out = {
            "topic": self.topic,
            "partition": self.partition,
            "stream_time": self.stream_time,
            "counts": self.counts,
            "windows": encode_windows(self.windows),
            "live": rows_of(self.live),
            "ages": self.ages,
            "incomplete": self.incomplete,
            "segments": self.segments,
            "folded": self.folded,
        }
        if self.windows_version is not None:
            out["windows_version"] = self.windows_version
            out["windows_at"] = self.windows_at
        if self.published_at is not None:
            out["published_at"] = self.published_at
        return out

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Entry:
        """The inverse of to_json; an entry of a worker of an earlier version may lack `ages`,
        `incomplete`, `windows_version`, `windows_at` and `published_at`."""
        return cls(
            body["topic"],
            body["partition"],
            body["stream_time"],
            body["counts"],
            decode_windows(body["windows"]),
            totals_of(body["live"]),
            body.get("ages", []),
            body.get("incomplete", []),
            body["segments"],
            body["folded"],
            body.get("windows_version"),
            body.get("windows_at"),
            body.get("published_at"),
        )


def partition_entry(state: PartitionState, windows: bool = True) -> Entry:
    """The entry of one partition (without the window totals when `windows` is false). A copy:
    it may be encoded in another thread."""
    return Entry(
        state.topic,
        state.partition,
        state.stream_time,
        dict(state.counts),
        window_copies(state) if windows else {},
        dict(state.gauges),
        [[d, s, total, oldest] for (d, s), (total, oldest) in state.ages().items()],
        [[size, *span] for size, span in state.incomplete().items()],
        {d: dict(values) for d, values in state.names.admitted.items()},
        dict(state.names.folded),
    )


def window_copies(state: PartitionState) -> WindowTotals:
    """Copies of a partition's window totals, by window size (they may be encoded or merged in
    another thread while the state changes)."""
    return {w.key: dict(w.totals) for w in state.windows}


def window_version(state: PartitionState) -> int:
    """Changes whenever any window total of the partition may have (versions only grow, and are
    unique in the process)."""
    return max((w.version for w in state.windows), default=0)


def encode_entry(entry: Entry) -> bytes:
    """An entry as JSON, as stored in Redis."""
    return orjson.dumps(entry.to_json())


def decode_entry(raw: bytes) -> Entry:
    """The inverse of encode_entry."""
    return Entry.from_json(orjson.loads(raw))


def encode_windows(windows: WindowTotals) -> dict[str, list[list[Any]]]:
    """Window totals as JSON-able rows, window sizes as strings."""
    return {str(size): rows_of(totals) for size, totals in windows.items()}


def decode_windows(encoded: Mapping[str, list[list[Any]]]) -> WindowTotals:
    """The inverse of encode_windows."""
    return {int(size): totals_of(rows) for size, rows in encoded.items()}
