"""What a partition remembers of entities whose facts are all forgotten.

Once nothing about an entity can change any more (every fact is past grace), its facts go, but a
later event may still need something of it: a solved ticket can be reopened weeks later and must
still be measured from its opening; a cart's customer must still be known when the shopper comes
back days later to order. The rules (`Rules.remember`) say what to keep and until when, as a
few packed bytes; a later event of the same key brings it back as facts (`Rules.recall`).

Memories are kept compact because there are many (30 days of solved tickets, 7 days of carts):
one `bytes` per key, whose first 8 bytes are the stream time it is forgotten at, and a key per
memory in a list of its expiry hour, so that expiring costs no timer per memory. A recalled
memory leaves its key in that list (removing it would cost a search); once such stale keys pass
a quarter of the memories (and `SLACK`), the lists and the table are rebuilt, at an amortized
cost of a few steps per recall. Without that, a solved ticket closed an hour later would leave
its key there for the whole retention, and the table would stay as large as its peak.

An expired memory is never recalled, even before the hourly sweep has dropped it: what is
recalled does not depend on when the sweep ran.
"""

from __future__ import annotations

import base64
import heapq
import struct
from collections.abc import Iterator

_UNTIL = struct.Struct(">q")
#: Memories are swept per hour of their expiry.
SWEEP_MS = 3_600_000
#: Stale keys tolerated in the expiry lists beyond a quarter of the memories.
SLACK = 16


def pack(until: int, payload: bytes) -> bytes:
    """A memory as stored: the stream time it is forgotten at, then the rules' payload."""
    return _UNTIL.pack(until) + payload


def stored(memory: bytes) -> str:
    """A memory as the changelog's JSON holds it."""
    return base64.b64encode(memory).decode("ascii")


def until_of(memory: bytes) -> int:
    return int(_UNTIL.unpack_from(memory)[0])


class Memories:
    """key -> packed memory, with an hourly expiry index."""

    def __init__(self) -> None:
        self._by_key: dict[str, bytes] = {}
        self._expiring: dict[int, list[str]] = {}  # expiry hour -> keys (maybe stale)
        self._hours: list[int] = []  # the hours of _expiring, as a heap
        self._stale = 0  # keys in _expiring whose memory was recalled

    def __len__(self) -> int:
        return len(self._by_key)

    def items(self) -> Iterator[tuple[str, bytes]]:
        return iter(self._by_key.items())

    def get(self, key: str) -> bytes | None:
        return self._by_key.get(key)

    def indexed(self) -> int:
        """Keys in the expiry lists, stale ones included."""
        return sum(len(keys) for keys in self._expiring.values())

    def put(self, key: str, memory: bytes) -> None:
        if key in self._by_key:
            self._stale += 1  # its earlier memory's key
        self._by_key[key] = memory
        self._index(key, memory)

    def _index(self, key: str, memory: bytes) -> None:
        hour = until_of(memory) // SWEEP_MS
        keys = self._expiring.get(hour)
        if keys is None:
            keys = self._expiring[hour] = []
            heapq.heappush(self._hours, hour)
        keys.append(key)

    def _reindex(self) -> None:
        """The expiry lists of the memories there are, without stale keys, and a table no
        larger than they need."""
        self._by_key = dict(self._by_key)
        self._expiring, self._hours, self._stale = {}, [], 0
        for key, memory in self._by_key.items():
            self._index(key, memory)

    def recall(self, key: str, stream_time: int | None) -> tuple[int, bytes] | None:
        """(until, payload) of a key's memory, taken out, unless it expired by this stream time
        (then it is dropped, and None returned)."""
        memory = self._by_key.pop(key, None)
        if memory is None:
            return None
        self._stale += 1
        if self._stale > len(self._by_key) // 4 + SLACK:
            self._reindex()
        until = until_of(memory)
        if stream_time is not None and until <= stream_time:
            return None
        return until, memory[_UNTIL.size :]

    def expire(self, stream_time: int) -> list[tuple[str, bytes]]:
        """Drop the memories that expire by this stream time, from the hours that ended;
        returns them."""
        gone: list[tuple[str, bytes]] = []
        while self._hours and (self._hours[0] + 1) * SWEEP_MS <= stream_time:
            hour = heapq.heappop(self._hours)
            for key in self._expiring.pop(hour):
                memory = self._by_key.get(key)
                if memory is not None and until_of(memory) // SWEEP_MS == hour:
                    del self._by_key[key]
                    gone.append((key, memory))
                else:  # recalled, or remembered again for another hour
                    self._stale -= 1
        return gone
