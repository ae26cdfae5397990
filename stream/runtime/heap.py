"""How the worker keeps its heap from stalling the stream or swelling its resident memory.

Garbage collection. The KPI state is hundreds of thousands of long-lived objects. CPython's full
collection traverses all of them whenever the objects promoted since the last one reach a quarter
of the old generation: under load on a 200,000-cart state, a 0.2 to 0.5 s pause every few
seconds, which was most of the tail latency. Those collections find nothing to free: state is
freed by reference counting, and no cycle of it ever becomes garbage. So after each full
collection the survivors are frozen (`gc.freeze`), and later collections skip them. Frozen objects
are still freed by reference counting when they go; only one that dies in a reference cycle would
wait. To bound that, everything is thawed every `THAW_EVERY_S`, and the next full collection
traverses the whole heap once.

Young collections. CPython collects its youngest generation once 700 more container objects
were allocated than freed, the next one every tenth time, and traverses each container collected
and its references. A user's state on the `activity` topic is containers that refer to many older
objects (its facts, their copies for the changelog, a reading's dictionaries), so collections
cost 5.6 µs per activity event against 1.35 per cart event (in process, survivors frozen; 42 and
27 µs per event in all with the collector off). The worker starts a young collection once
`YOUNG_THRESHOLD` more were allocated than freed: what lives a while but not long (a round's
copies for the changelog, a reading's answer replaced a few events later) is then mostly freed
by reference counting before any collection traverses it. Five pairs of workers in turn: 7 %
less CPU per activity event, 4.5 % per cart event; a young collection then pauses about 30 ms.

Freed memory. Catching up allocates and frees fetch buffers and decoded records among the
long-lived state; glibc keeps the freed pages for reuse rather than returning them, and the
worker's resident memory stayed about 60 MB above what it uses. `release_free_memory` hands them
back (`malloc_trim`), once a second from the worker's tick.
"""

from __future__ import annotations

import ctypes
import gc
import time
from collections.abc import Callable
from typing import Any

#: How often frozen objects are thawed, so that cyclic garbage among them is collected.
THAW_EVERY_S = 600.0
#: The generation a full collection collects.
OLDEST = 2
#: Containers allocated and not yet freed that start a collection of the young generation.
YOUNG_THRESHOLD = 50_000


class FreezeSurvivors:
    """A gc callback: freeze what survives a full collection, thaw every `thaw_every_s`."""

    def __init__(
        self, thaw_every_s: float = THAW_EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.thaw_every_s = thaw_every_s
        self.clock = clock
        self._thawed_at = clock()

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase != "stop" or info["generation"] != OLDEST:
            return
        now = self.clock()
        if now - self._thawed_at >= self.thaw_every_s:
            gc.unfreeze()  # the next full collection sees every object again
            self._thawed_at = now
        else:
            gc.freeze()


def freeze_survivors() -> FreezeSurvivors:
    """Freeze survivors of full collections from now on in this process."""
    policy = FreezeSurvivors()
    gc.callbacks.append(policy)
    return policy


def collect_young_less_often(threshold: int = YOUNG_THRESHOLD) -> None:
    """Collect the young generation once `threshold` more containers were allocated than freed
    (the older generations' thresholds stay)."""
    gc.set_threshold(threshold, *gc.get_threshold()[1:])


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None with another C library."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_MALLOC_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Return the C heap's free pages to the OS; False where that is not possible (not glibc)."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True
