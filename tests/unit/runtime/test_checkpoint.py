"""The order of a flush round and of recovery, on stand-ins for Faust, the producer, the
partition states and the forwarder: each step, and each crash point right after its step."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from stream.runtime import checkpoint
from stream.runtime.checkpoint import POINTS, Checkpoint
from stream.runtime.crash import CrashAt


class Producer:
    def __init__(self, steps: list[tuple[Any, ...]]) -> None:
        self.steps = steps

    async def send(self, topic: str, key: bytes, value: Any, partition: int, *_: Any) -> None:
        self.steps.append(("marker", partition))

    async def flush(self) -> None:
        self.steps.append(("flush",))


class Store(dict):
    async def on_recovery_completed(self, *_: Any) -> None:
        pass


class App:
    """What the checkpoint uses of a Faust app."""

    def __init__(self, steps: list[tuple[Any, ...]], assigned: list[tuple[str, int]]) -> None:
        self.producer = Producer(steps)
        self.consumer = SimpleNamespace(
            ack=lambda m: steps.append(("ack", m.partition, m.offset)),
            assignment=lambda: [SimpleNamespace(topic=t, partition=p) for t, p in assigned],
        )
        self.on_partitions_revoked = SimpleNamespace(connect=lambda receiver: None)
        self.store = Store()

    def Table(self, name: str, **_: Any) -> Any:  # Faust's name
        topic = SimpleNamespace(get_topic_name=lambda: f"{name}-changelog")
        return SimpleNamespace(changelog_topic=topic, data=self.store)


class State:
    """A partition state with one changed key, and an order decided when given one."""

    def __init__(self, partition: int, decided: list[str] | None = None) -> None:
        self.partition = partition
        self.decided = decided or []
        self.has_changes = True
        self.epochs = SimpleNamespace(changed=1)  # keys changed in the epoch
        self.stream_time = 60_000
        self.offset, self.entities = 7, {}

    def flush(self) -> tuple[list[Any], Any]:
        self.has_changes, self.epochs.changed = False, 0
        return [(b"k", b"v")], (f"m:{self.partition}".encode(), b"{}")

    def take_decided(self) -> list[str]:
        decided, self.decided = self.decided, []
        return decided


class Forwarder:
    def __init__(self, steps: list[tuple[Any, ...]]) -> None:
        self.steps = steps

    def moved(self, stream_times: dict[int, int]) -> dict[int, int]:
        return {p: t - 1 for p, t in stream_times.items()}

    async def orders(self, orders: list[Any]) -> None:
        self.steps.append(("orders", len(orders)))

    async def watermarks(self, marks: dict[int, int]) -> None:
        self.steps.append(("watermarks", sorted(marks)))


class Recorder(CrashAt):
    """Records every point reached instead of killing anything."""

    def __init__(self, steps: list[tuple[Any, ...]]) -> None:
        super().__init__("never", 1)
        self.steps = steps

    def reached(self, point: str, where: str) -> None:
        self.steps.append((point,))


def checkpoint_of(
    steps: list[tuple[Any, ...]],
    monkeypatch: pytest.MonkeyPatch,
    forwarder: bool = True,
    assigned: list[tuple[str, int]] | None = None,
    rebuild: Any = None,
) -> Checkpoint:
    async def send_in_batches(producer: Any, topic: str, partition: int, records: Any) -> None:
        steps.append(("records", partition))

    monkeypatch.setattr(checkpoint, "kafka_producer", lambda app: None)
    monkeypatch.setattr(checkpoint, "send_in_batches", send_in_batches)
    app: Any = App(steps, assigned or [])
    return Checkpoint(
        app,
        "cart-events",
        "cart-events",
        2,
        rebuild or (lambda partition, rows: State(partition)),
        forwarder=Forwarder(steps) if forwarder else None,  # type: ignore[arg-type]
        crash=Recorder(steps),
    )


def message(partition: int, offset: int) -> Any:
    return SimpleNamespace(partition=partition, offset=offset)


def test_a_round_commits_then_acknowledges_and_names_each_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps: list[tuple[Any, ...]] = []
    cp = checkpoint_of(steps, monkeypatch)
    cp.states.update({0: State(0, ["order"]), 1: State(1)})  # type: ignore[dict-item]
    assert not cp.applied(message(0, 5)) and not cp.applied(message(1, 9))
    assert cp.unflushed() == 2
    asyncio.run(cp.round())
    assert steps == [
        ("records", 0),
        ("records", 1),
        ("records-sent",),
        ("orders", 1),
        ("orders-sent",),
        ("flush",),
        ("records-durable",),
        ("watermarks", [0, 1]),
        ("watermarks-sent",),
        ("marker", 0),
        ("marker", 1),
        ("markers-sent",),
        ("flush",),
        ("markers-durable",),
        ("ack", 0, 5),
        ("ack", 1, 9),
        ("acknowledged",),
    ]
    assert [s for s in steps if s[0] in POINTS] == [(p,) for p in POINTS[:-1]]
    assert cp.unflushed() == 0


def test_reading_waits_for_a_round_once_enough_records_wait_or_keys_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Records of a few keys wait up to MAX_WAITING; records of many keys up to MAX_CHANGED of
    them (their epochs' changelog records), whichever comes first."""
    monkeypatch.setattr(checkpoint, "MAX_WAITING", 5)
    monkeypatch.setattr(checkpoint, "MAX_CHANGED", 3)
    cp = checkpoint_of([], monkeypatch)
    states = {0: State(0), 1: State(1)}
    cp.states.update(states)  # type: ignore[arg-type]
    due = [cp.applied(message(0, offset)) for offset in range(5)]  # one key each: 2 in all
    assert due == [False, False, False, False, True]
    asyncio.run(cp.round())
    assert cp.unflushed() == 0 and cp.changed() == 0
    due = []
    for offset in range(5, 8):  # each record changes another key
        states[offset % 2].epochs.changed += 1
        due.append(cp.applied(message(offset % 2, offset)))
    assert due == [False, False, True]


def test_a_point_is_reached_only_when_its_step_did_something(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps: list[tuple[Any, ...]] = []
    cp = checkpoint_of(steps, monkeypatch, forwarder=False)
    cp.states[0] = State(0)  # type: ignore[assignment]
    asyncio.run(cp.round())  # no orders, no watermarks, nothing to acknowledge
    assert [s[0] for s in steps if s[0] in POINTS] == [
        "records-sent",
        "records-durable",
        "markers-sent",
        "markers-durable",
    ]
    steps.clear()
    asyncio.run(cp.round())  # nothing changed: no round at all
    assert steps == []


def test_recovery_drops_moved_partitions_and_commits_the_rollback_before_applying(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps: list[tuple[Any, ...]] = []
    rebuilt: dict[int, list[Any]] = {}

    def rebuild(partition: int, rows: list[Any]) -> Any:
        rebuilt[partition] = rows
        return State(partition)

    cp = checkpoint_of(
        steps, monkeypatch, forwarder=False, assigned=[("cart-events", 1)], rebuild=rebuild
    )
    cp.states[0] = State(0)  # type: ignore[assignment]  # moves away
    cp.applied(message(0, 3))  # never acknowledged: the next owner replays it
    store = cp.table.data
    store.update({b"e:0:a": b"[1]", b"e:1:b": b"[2]", b"m:1": b"{}"})
    asyncio.run(cp.recover())
    assert set(cp.states) == {1}
    assert rebuilt == {1: [(b"e:1:b", b"[2]"), (b"m:1", b"{}")]}
    assert store == {}  # the rows are freed
    assert steps == [
        ("restored",),
        ("records", 1),
        ("records-sent",),
        ("flush",),
        ("records-durable",),
        ("marker", 1),
        ("markers-sent",),
        ("flush",),
        ("markers-durable",),
    ]
    assert cp.unflushed() == 0
