"""A cheaper hand-off from Faust's fetcher to the agents' streams.

Faust's fetch loop (`Consumer._drain_messages`) hands every record to the topic conductor through
`Service.wait_first(callback(message), suspend_flow.wait())`: four tasks and an `asyncio.wait`
per record, so that delivery is abandoned if flow is suspended (a rebalance) while it waits on a
full stream buffer. That costs more than a bare agent's own iteration.

`fast_drain` keeps the loop as it is and delivers by awaiting the conductor directly while flow is
active; while it is suspended, records are not delivered, as Faust's own loop would abandon them
(after a rebalance the consumer resumes from committed offsets, and the state skips what it has).
A delivery that waits on a full buffer can still finish after flow was suspended: its event is
dropped when flow resumes, since Faust clears the stream buffers then.
"""

from __future__ import annotations

import asyncio
import types
from typing import Any

from faust.transport.consumer import CONSUMER_FETCHING, Consumer

#: Records handed over between yields to the event loop (Faust's own loop uses 100).
YIELD_EVERY = 100


async def fast_drain(self: Consumer, fetcher: Any) -> None:
    """`Consumer._drain_messages` without a task per record (see the module docstring)."""
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    suspended = self.suspend_flow.is_set
    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    acks_enabled_for = self.app.topics.acks_enabled_for
    commit_every = self._commit_every
    since_yield = 0
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            self.diag.set_flag(CONSUMER_FETCHING)
            records = getmany(timeout=1.0)
            await self.sleep(0)
            if self.should_stop:
                continue
            async for tp, message in records:
                since_yield += 1
                if since_yield > YIELD_EVERY:
                    await asyncio.sleep(0)
                    since_yield = 0
                offset = message.offset
                read = get_read_offset(tp)
                if read is not None and offset < read:
                    continue  # Faust drops records below its read mark
                if read and offset - read > 1 and acks_enabled_for(message.topic):
                    await self._add_gap(tp, read + 1, offset)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                if not suspended():  # else a rebalance: Faust's loop abandons the record too
                    await callback(message)
                set_read_offset(tp, offset)
            self.diag.unset_flag(CONSUMER_FETCHING)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            return
        raise
    finally:
        self.diag.unset_flag(CONSUMER_FETCHING)


def install(consumer: Consumer) -> None:
    """Make `consumer`'s fetcher use `fast_drain`."""
    consumer._drain_messages = types.MethodType(fast_drain, consumer)  # type: ignore[method-assign]
