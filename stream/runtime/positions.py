"""Where the consumer reads each partition: the state decides, not the consumer.

Around rebalances Faust can fetch records and drop them (faust-streaming #216, #221). The state
knows exactly which offset it needs next, so a gap between that offset and the next record, or a
quiet partition whose consumer position is past it, sends the consumer back to it. Until the
missing record arrives, later records are held back. Seeking back is always safe: records the
state already has are skipped. A source log that ends below what was applied (a recreated topic,
a broker that lost its data) is read again from its start.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import faust
from aiokafka.errors import IllegalStateError
from faust.types import TP

from stream.state.partition import PartitionState

log = logging.getLogger(__name__)

#: After this long without a record on a partition, check that the consumer did not skip any;
#: and how long a seek back may go without the re-read starting before it is sent again.
STALL_S = 2.0
#: How long a source log must end below the applied offset before it counts as a new log (a new
#: partition leader's high watermark can lag for a moment).
SHORT_LOG_S = 10.0
#: How many re-reads in a row must start past the wanted offset before it counts as not in the
#: log. Once is not enough: after a rebalance a fetch that goes back somewhere other than the
#: seek (likely the committed offset) looks just like a re-read, and taking it for one lost
#: records in a CI run.
REREADS_PAST = 3


@dataclass
class Rewind:
    """A seek back to the first offset the state lacks, until that record arrives.

    Records fetched before the seek still arrive first, in rising order, and are held back. The
    re-read shows itself by going back (an offset at or below the highest one held). If it then
    starts beyond the wanted offset, `REREADS_PAST` times in a row, that offset does not exist in
    the log (a transaction marker, or compaction) and the gap is real. No timeout ever declares a
    record missing.
    """

    offset: int
    attempts: int = 0
    since: float = 0.0
    highest: int = -1  # the highest offset held back since the last seek
    past: int = 0  # re-reads that started past the wanted offset


class ReadPositions:
    """The seeks back of one source topic's partitions, and the checks that call for them."""

    def __init__(self, app: faust.App, topic: str) -> None:
        self.app = app  # its consumer's assignment, positions and seeks
        self.topic = topic
        self.rewinds: dict[int, Rewind] = {}  # partitions waiting for skipped records
        self._short_since: dict[int, float] = {}  # partitions whose log ends below the state

    def forget(self, partition: int) -> None:
        """A partition rebuilt after a rebalance starts with no seek pending."""
        self.rewinds.pop(partition, None)

    async def check(
        self, partition: int, state: PartitionState, now: float, last_record: float
    ) -> None:
        """Once a second: a log that ends below the state, or a consumer past what it has."""
        await self._check_log_end(partition, state, now)
        await self._check_position(partition, state, now, last_record)

    async def held_back(self, partition: int, state: PartitionState, offset: int) -> bool:
        """True when this record must wait: records before it were skipped by the consumer.

        Around rebalances Faust can fetch records and drop them (faust-streaming #216, #221),
        leaving a gap. The state knows exactly which offset it needs next, so the processor seeks
        back to it and, until it arrives, holds off the records after it (prefetched ones would
        otherwise be applied first and the missing ones then skipped as already applied). A gap
        is taken as real only when the re-read starts past it (see Rewind).
        """
        wanted = state.offset + 1
        rewind = self.rewinds.get(partition)
        if offset == wanted:
            self.rewinds.pop(partition, None)
            return False
        if rewind is not None and rewind.offset == wanted and offset <= rewind.highest:
            # the re-read started past the wanted offset: it is not in the log, once that repeats
            rewind.past += 1
            if rewind.past < REREADS_PAST:
                rewind.highest = offset
                await self._rewind(partition, rewind)
                return True
            log.warning(
                "%s[%d]: offsets %d to %d are not in the log; continuing at %d",
                self.topic,
                partition,
                wanted,
                offset - 1,
                offset,
            )
            self.rewinds.pop(partition, None)
            return False
        if rewind is None or rewind.offset != wanted:
            rewind = Rewind(wanted)
            await self._rewind(partition, rewind)
        rewind.highest = max(rewind.highest, offset)
        return True

    async def _rewind(self, partition: int, rewind: Rewind) -> None:
        self.rewinds[partition] = rewind
        rewind.attempts += 1
        rewind.since = time.monotonic()
        tp = TP(self.topic, partition)
        if tp not in self.app.consumer.assignment():
            return  # moving away in a rebalance: its next owner reads from its own state
        log.warning(
            "%s[%d]: the consumer skipped records from offset %d; seeking back (%d)",
            self.topic,
            partition,
            rewind.offset,
            rewind.attempts,
        )
        try:  # in the consumer's own thread: a seek from here races its fetcher
            await self.app.consumer.seek_wait({tp: rewind.offset})
        except (IllegalStateError, TimeoutError):  # revoked meanwhile, or the broker is away
            log.info("%s[%d]: seeking back did not complete", self.topic, partition)

    async def _check_log_end(self, partition: int, state: PartitionState, now: float) -> None:
        """A source log never ends below what was applied from it, unless it was deleted and
        recreated or the broker lost its data (the dev broker keeps nothing across a restart).
        Then the new log is read from its start; the records already applied keep their effect."""
        tp = TP(self.topic, partition)
        if tp not in self.app.consumer.assignment():
            return
        end = self.app.consumer.highwater(tp)
        if end is None or end > state.offset:
            self._short_since.pop(partition, None)
            return
        if now - self._short_since.setdefault(partition, now) < SHORT_LOG_S:
            return
        del self._short_since[partition]
        log.warning(
            "%s[%d]: the log now ends at offset %d, below the %d already applied: the topic was "
            "recreated or the broker lost its data; reading the new log from its start",
            self.topic,
            partition,
            end,
            state.offset + 1,
        )
        state.source_restarted()
        await self._rewind(partition, Rewind(0))

    async def _check_position(
        self, partition: int, state: PartitionState, now: float, last_record: float
    ) -> None:
        """Rewind a partition whose consumer moved past records the state never saw, once the
        whole topic is quiet (while records are being applied, the position runs ahead of them)."""
        rewind = self.rewinds.get(partition)
        quiet = now - last_record >= STALL_S
        tp = TP(self.topic, partition)
        if rewind is not None:
            end = self.app.consumer.highwater(tp) if tp in self.app.consumer.assignment() else None
            if end is not None and end <= rewind.offset and rewind.highest < 0:
                # nothing from the wanted offset on is in the log yet (a new, empty log): the
                # consumer skipped nothing, and seeking again would only repeat the warning
                del self.rewinds[partition]
                return
            waited = now - rewind.since
            if (quiet and waited >= STALL_S) or waited >= 5 * STALL_S:
                await self._rewind(partition, rewind)  # the re-read has not shown up: seek again
            return
        if quiet and tp in self.app.consumer.assignment():
            try:
                position = await self.app.consumer.position(tp)
            except IllegalStateError:  # revoked meanwhile
                return
            if position is not None and position > state.offset + 1:
                await self._rewind(partition, Rewind(state.offset + 1))
