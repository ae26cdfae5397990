"""The worker's heap policy: survivors of full collections are frozen and thawed on schedule,
and freed C-heap pages go back to the OS."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.runtime import heap


@pytest.fixture
def policy() -> Iterator[heap.FreezeSurvivors]:
    """The policy on a hand-moved clock, installed for one test and removed after it."""
    now = [0.0]
    installed = heap.FreezeSurvivors(thaw_every_s=600.0, clock=lambda: now[0])
    installed.now = now  # type: ignore[attr-defined]
    gc.callbacks.append(installed)
    try:
        yield installed
    finally:
        gc.callbacks.remove(installed)
        gc.unfreeze()


def test_survivors_of_a_full_collection_are_frozen(policy: heap.FreezeSurvivors) -> None:
    survivor = [object() for _ in range(1000)]
    gc.collect(1)  # a younger collection freezes nothing
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert gc.get_freeze_count() >= len(survivor)


def test_frozen_objects_are_still_freed_by_reference_counting(
    policy: heap.FreezeSurvivors,
) -> None:
    class Tracked:
        freed = 0

        def __del__(self) -> None:
            Tracked.freed += 1

    held = [Tracked() for _ in range(100)]
    gc.collect()
    assert gc.get_freeze_count() > 0
    del held
    assert Tracked.freed == 100


def test_cyclic_garbage_among_frozen_objects_is_collected_after_the_thaw(
    policy: heap.FreezeSurvivors,
) -> None:
    class Node:
        freed = 0

        def __init__(self) -> None:
            self.me = self  # a cycle: only the collector can free it

        def __del__(self) -> None:
            Node.freed += 1

    node = Node()
    gc.collect()  # node survives and is frozen
    del node
    gc.collect()
    assert Node.freed == 0  # frozen: not traversed
    policy.now[0] = 600.0  # type: ignore[attr-defined]
    gc.collect()  # due: this collection ends by thawing everything
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert Node.freed == 1


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_freed_pages_go_back_to_the_os() -> None:
    # 2 KiB blocks come from the C heap (pymalloc serves only blocks up to 512 B); the blocks
    # allocated after them pin the heap's top, so freeing them cannot simply shrink it
    blocks = [bytearray(2048) for _ in range(32 * 1024)]  # 64 MiB
    pins = [bytearray(600) for _ in range(1024)]
    del blocks
    before = _rss()
    assert heap.release_free_memory(), "this machine's C library is glibc"
    after = _rss()
    assert before - after > 40 * 1024 * 1024, (before, after)
    del pins


def test_young_collections_wait_for_the_threshold() -> None:
    """With the worker's threshold, allocating fewer containers than it starts no collection;
    allocating more starts one."""
    started: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    thresholds = gc.get_threshold()
    gc.collect()
    gc.callbacks.append(count)
    try:
        heap.collect_young_less_often(20_000)
        kept = [[] for _ in range(15_000)]  # fewer than the threshold: no collection
        assert started == []
        kept += [[] for _ in range(10_000)]  # past it
        assert started and started[0] == 0
        assert gc.get_threshold() == (20_000, *thresholds[1:])
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*thresholds)
    assert len(kept) == 25_000
