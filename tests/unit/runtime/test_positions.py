"""Where the consumer reads a partition: a gap sends it back to the offset the state needs, and a
gap is taken as real only when re-reads keep starting past it. The consumer is a stand-in that
records seeks: the race it stands for (a fetch after a rebalance that goes back, but not to the
seek) cannot be brought about on purpose with a real broker."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from stream.runtime.positions import REREADS_PAST, ReadPositions


class Consumer:
    def __init__(self) -> None:
        self.seeks: list[int] = []

    def assignment(self) -> set[TP]:
        return {TP("cart-events", 0)}

    async def seek_wait(self, offsets: dict[TP, int]) -> None:
        self.seeks += offsets.values()


def positions() -> tuple[ReadPositions, Consumer, Any]:
    consumer = Consumer()
    app = SimpleNamespace(consumer=consumer)
    state = SimpleNamespace(offset=9)  # applied up to 9: 10 is wanted
    return ReadPositions(app, "cart-events"), consumer, state  # type: ignore[arg-type]


def held(reads: ReadPositions, state: Any, offsets: list[int]) -> list[bool]:
    async def run() -> list[bool]:
        return [await reads.held_back(0, state, offset) for offset in offsets]

    return asyncio.run(run())


def test_a_fetch_that_goes_back_past_the_wanted_offset_once_is_not_a_gap() -> None:
    """After a rebalance, records 20-22 arrive, then 20 again (a fetch from the committed offset,
    not the seek): not taken for the re-read, so 10 is sought again and applied when it comes."""
    reads, consumer, state = positions()
    assert held(reads, state, [20, 21, 22, 20]) == [True, True, True, True]
    assert consumer.seeks == [10, 10]
    assert held(reads, state, [10]) == [False]  # the re-read from 10: applied
    assert not reads.rewinds


def test_a_gap_is_real_once_re_reads_start_past_it_repeatedly() -> None:
    """Offsets 10-11 are not in the log (a transaction marker, compaction): each re-read starts
    at 12; after REREADS_PAST of them, reading goes on at 12."""
    reads, consumer, state = positions()
    first = held(reads, state, [12, 13])
    again = held(reads, state, [12, 13] * (REREADS_PAST - 1))
    assert first == [True, True] and all(again)
    assert held(reads, state, [12]) == [False]  # the last re-read starting past 10: a real gap
    assert consumer.seeks == [10] * REREADS_PAST
    assert not reads.rewinds
