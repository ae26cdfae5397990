"""What a partition remembers of forgotten entities: until when, and at what cost."""

from __future__ import annotations

from stream.state.memories import SLACK, SWEEP_MS, Memories, pack

HOUR = SWEEP_MS


def test_an_expired_memory_is_never_recalled_whenever_the_sweep_runs() -> None:
    memories = Memories()
    memories.put("t1", pack(10 * HOUR + 5, b"payload"))
    assert memories.recall("t1", 10 * HOUR + 4) == (10 * HOUR + 5, b"payload")
    memories.put("t1", pack(10 * HOUR + 5, b"payload"))
    assert memories.recall("t1", 10 * HOUR + 5) is None  # not swept yet, but expired
    assert len(memories) == 0


def test_the_hourly_sweep_drops_what_expired_and_keeps_what_was_remembered_again() -> None:
    memories = Memories()
    memories.put("a", pack(2 * HOUR + 1, b"a"))
    memories.put("b", pack(2 * HOUR + 2, b"b"))
    assert memories.expire(3 * HOUR - 1) == []  # the hour has not ended
    later = pack(5 * HOUR, b"b again")
    memories.recall("b", 2 * HOUR)
    memories.put("b", later)  # remembered again, for a later hour
    assert memories.expire(3 * HOUR) == [("a", pack(2 * HOUR + 1, b"a"))]
    assert memories.get("b") == later
    assert memories.expire(6 * HOUR) == [("b", later)] and len(memories) == 0
    assert memories.indexed() == 0


def test_recalled_keys_never_make_the_index_much_larger_than_the_memories() -> None:
    """Solved tickets closed an hour later: each is remembered, then recalled for good."""
    memories = Memories()
    for n in range(400):
        memories.put(f"kept{n}", pack(30 * 24 * HOUR, b"k"))
    for n in range(10_000):
        memories.put(f"t{n}", pack(30 * 24 * HOUR + n, b"t"))
        assert memories.recall(f"t{n}", n) is not None
        assert memories.indexed() <= len(memories) * 5 / 4 + SLACK + 1
    assert len(memories) == 400 and memories.get("kept0") == pack(30 * 24 * HOUR, b"k")
    assert len(memories.expire(31 * 24 * HOUR)) == 400
