"""The Redis snapshot store against a real redis-server: one writer merges every partition,
window totals are written only when they change, and the document stays exact through a Redis
restart, a second writer and entries written by an earlier version (a writer that stops and is
replaced: test_writer_lease.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import pytest
import redis
from prometheus_client import CollectorRegistry

from stream.kpis.customers import CUSTOMERS_TOPIC
from stream.publish.document import Shape, format_time
from stream.publish.entries import encode_entry, partition_entry
from stream.publish.lease import Lease, decode_lease, encode_lease
from stream.publish.redis_store import SnapshotStore
from stream.state.partition import PartitionState
from tests.servers import RedisServer, wait_until
from tests.unit.feed import CONFIG, MIN, T0, Feed
from tests.unit.kpis.test_customers import DAY, Customers, order

TOPICS = ("cart-events", "tickets", "survey-replies")
SHAPE = Shape(CONFIG.windows_ms, dict.fromkeys(TOPICS, 2), CONFIG.max_segment_values)


def fleet_states() -> dict[str, PartitionState]:
    """Two partitions per topic, each with a few events a few minutes apart (so that some
    steps have closed and the windows hold samples)."""
    states: dict[str, PartitionState] = {}
    for topic in TOPICS:
        for n in range(2):
            feed = Feed(topic, partition=n)
            for i in range(3):
                key = f"{topic[0]}{n}-{i}"
                if topic == "cart-events":
                    feed(key, "cart_created", i, channel="web")
                    feed(key, "order_placed", i + 1, amount=10.5 + i, currency="EUR")
                elif topic == "tickets":
                    feed(key, "ticket_opened", i, channel="email", priority="high")
                    feed(key, "ticket_solved", i + 2)
                else:
                    feed(key, "nps", i + n, score=9 - 3 * i)  # 9, 6, 3
            feed.state.advance(feed.state.stream_time + 10 * 60_000)
            feed.state.flush()
            states[f"{topic}/{n}"] = feed.state
    return states


def expected(states: dict[str, PartitionState], shape: Shape = SHAPE) -> dict[str, Any]:
    """The document of every partition merged in one process, as JSON would carry it."""
    return orjson.loads(orjson.dumps(shape.document([partition_entry(s) for s in states.values()])))


#: Fields of the Redis document that the offline reference has not: checked apart.
STAMPS = ("windows_valid_at", "published_at", "writer", "partitions_published_at")


def stored(server: RedisServer, prefix: str) -> dict[str, Any] | None:
    """The merged document in Redis, without the fields checked apart (`STAMPS`)."""
    doc = document(server, prefix)
    if doc is None:
        return None
    for name in STAMPS:
        del doc[name]
    return doc


def document(server: RedisServer, prefix: str) -> dict[str, Any] | None:
    """The merged document in Redis, whole."""
    raw = redis.Redis.from_url(server.url).get(f"{prefix}:snapshot")
    return None if raw is None else orjson.loads(raw)


def windows_valid_at(server: RedisServer, prefix: str) -> str:
    return orjson.loads(redis.Redis.from_url(server.url).get(f"{prefix}:snapshot"))[
        "windows_valid_at"
    ]


def store(
    server: RedisServer,
    registry: CollectorRegistry | None = None,
    shape: Shape = SHAPE,
    writer: str = "",
    lease_ttl_s: float = 3.0,
) -> SnapshotStore:
    """A store whose window totals are never held back (see the pacing test)."""
    return SnapshotStore(
        server.url,
        "t",
        shape,
        registry or CollectorRegistry(),
        windows_cpu_budget=1e9,
        writer=writer,
        lease_ttl_s=lease_ttl_s,
    )


def split(states: dict[str, PartitionState]) -> tuple[dict[str, PartitionState], ...]:
    """The leader's partitions (the first topic's partition 0 among them) and the rest."""
    keys = sorted(states, key=lambda k: (k.split("/")[1], k))
    half = len(keys) // 2
    return {k: states[k] for k in keys[:half]}, {k: states[k] for k in keys[half:]}


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(scenario)


def value(registry: CollectorRegistry, name: str) -> float:
    return registry.get_sample_value(name) or 0.0


def test_one_writer_merges_the_partitions_of_every_worker(redis_server: RedisServer) -> None:
    states = fleet_states()
    mine, theirs = split(states)
    assert "cart-events/0" in mine

    async def scenario() -> None:
        leader = store(redis_server, writer="leader")
        follower = store(redis_server, writer="follower")
        await leader.publish(mine, preferred=True)
        first = document(redis_server, "t")
        assert first is not None and first["writer"] == "leader"
        await follower.publish(theirs, preferred=False)
        # no follower writes the document while the writer's lease lives
        assert document(redis_server, "t") == first
        await leader.publish(mine, preferred=True)
        assert stored(redis_server, "t") == expected(states)
        assert windows_valid_at(redis_server, "t") == expected(states)["valid_at"]
        nps = expected(states)["windows"]["1h"]["nps"]["overall"]  # scores 9, 6, 3 twice
        assert (nps["promoters"], nps["passives"], nps["detractors"]) == (2, 0, 4)
        # the follower sees the leader's entries (for the segment names and its /kpis)
        await follower.publish(theirs, preferred=False)
        assert set(follower.others) == set(mine)
        windows = await follower.windows_of(follower.others)
        entries = [partition_entry(s) for s in theirs.values()]
        entries += [replace(e, windows=windows[k].totals) for k, e in follower.others.items()]
        assert orjson.loads(orjson.dumps(SHAPE.document(entries))) == expected(states)
        await asyncio.gather(leader.close(), follower.close())

    run(scenario())


def test_a_worker_that_starts_leading_merges_its_own_windows(redis_server: RedisServer) -> None:
    """Partition 0 moves to a worker that published its partitions' window totals as a follower
    and they have not changed since: its documents hold them (it held no copies while it
    followed), also when it leads again after its totals changed while it followed."""
    states = fleet_states()
    mine, theirs = split(states)

    async def scenario() -> None:
        first, second = store(redis_server), store(redis_server)
        await first.publish(mine, preferred=True)
        await second.publish(theirs, preferred=False)
        await second.publish(theirs, preferred=True)  # leads now; nothing changed
        assert stored(redis_server, "t") == expected(states)
        carts = mine["cart-events/0"]
        carts.advance(carts.stream_time + 60 * 60_000)  # changes while `first` follows
        await first.publish(mine, preferred=False)
        await first.publish(mine, preferred=True)  # leads again
        assert stored(redis_server, "t") == expected(states)
        await asyncio.gather(first.close(), second.close())

    run(scenario())


def test_window_totals_are_written_only_when_they_change(redis_server: RedisServer) -> None:
    states = fleet_states()
    registry = CollectorRegistry()
    written = "cxkpi_snapshot_windows_written_total"

    async def scenario() -> None:
        snapshots = store(redis_server, registry)
        await snapshots.publish(states, preferred=True)
        assert value(registry, written) == len(states)
        await snapshots.publish(states, preferred=True)
        assert value(registry, written) == len(states)  # nothing changed
        carts = states["cart-events/1"]
        carts.advance(carts.stream_time + 60 * 60_000)  # its windows slide: their totals change
        await snapshots.publish(states, preferred=True)
        assert value(registry, written) == len(states) + 1
        assert stored(redis_server, "t") == expected(states)
        assert value(registry, "cxkpi_snapshot_leader") == 1
        assert value(registry, "cxkpi_snapshot_publish_seconds_count") == 3
        await snapshots.close()

    run(scenario())


def test_a_redis_restart_that_lost_everything_is_repaired(redis_server: RedisServer) -> None:
    states = fleet_states()
    registry = CollectorRegistry()

    async def scenario() -> None:
        snapshots = store(redis_server, registry)
        await snapshots.publish(states, preferred=True)
        redis_server.stop()
        await snapshots.publish(states, preferred=True)
        assert snapshots.available is False
        assert value(registry, "cxkpi_snapshot_publish_failures_total") == 1
        redis_server.restart()  # empty: it keeps nothing on disk
        for _ in range(50):
            await snapshots.publish(states, preferred=True)
            if snapshots.available:
                break
            await asyncio.sleep(0.1)
        assert stored(redis_server, "t") == expected(states)
        await snapshots.close()

    run(scenario())


#: What another writer leaves meanwhile: a document, or the lease taken (lease.py)
OVERTAKEN = {
    "t:snapshot": b'{"other": "writer"}',
    "t:writer": encode_lease(Lease("other", "0123456789ab", 1)),
}


@dataclass(frozen=True)
class InterruptedShape(Shape):
    """A shape whose first document is overtaken by another worker writing `key`."""

    url: str = ""
    key: str = "t:snapshot"
    calls: list[int] = field(default_factory=list)

    def document(self, entries: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(1)
        if len(self.calls) == 1:
            redis.Redis.from_url(self.url).set(self.key, OVERTAKEN[self.key])
        return super().document(entries, *args, **kwargs)


@pytest.mark.parametrize("key", sorted(OVERTAKEN))
def test_a_writer_overtaken_by_another_merges_again(redis_server: RedisServer, key: str) -> None:
    """Another worker writes the document while the preferred writer merges: under WATCH of
    the document, the transaction fails and the writer merges again. Another worker taking
    the lease meanwhile does not stop the preferred writer, which writes whoever holds it:
    it writes at once and takes the lease back."""
    states = fleet_states()
    registry = CollectorRegistry()

    async def scenario() -> None:
        shape = InterruptedShape(
            SHAPE.windows_ms, SHAPE.partitions, SHAPE.max_values, url=redis_server.url, key=key
        )
        snapshots = SnapshotStore(redis_server.url, "t", shape, registry, writer="preferred")
        await snapshots.publish(states, preferred=True)
        retries = 1 if key == "t:snapshot" else 0
        assert value(registry, "cxkpi_snapshot_publish_retries_total") == retries
        assert len(shape.calls) == 1 + retries
        assert stored(redis_server, "t") == expected(states)
        lease = decode_lease(redis.Redis.from_url(redis_server.url).get("t:writer"))
        assert lease is not None and lease.instance == snapshots.instance
        await snapshots.close()

    run(scenario())


def test_a_lease_expiring_while_the_preferred_writer_writes_costs_no_retry(
    redis_server: RedisServer,
) -> None:
    """A killed worker's lease (or the writer's own, after a slow round) expires while the
    preferred writer merges: it writes the document at the first attempt, with its lease."""
    states = fleet_states()
    registry = CollectorRegistry()
    client = redis.Redis.from_url(redis_server.url)
    client.set("t:writer", OVERTAKEN["t:writer"], px=300)  # a dead worker's, about to expire

    class Slow(Shape):
        def document(self, entries: Any, *args: Any, **kwargs: Any) -> Any:
            wait_until(lambda: not client.exists("t:writer"), 10, "the dead worker's lease to go")
            return super().document(entries, *args, **kwargs)

    async def scenario() -> None:
        shape = Slow(SHAPE.windows_ms, SHAPE.partitions, SHAPE.max_values)
        snapshots = SnapshotStore(redis_server.url, "t", shape, registry, writer="restarted")
        await snapshots.publish(states, preferred=True)
        assert value(registry, "cxkpi_snapshot_publish_retries_total") == 0
        assert stored(redis_server, "t") == expected(states)
        lease = decode_lease(client.get("t:writer"))
        assert lease is not None and lease.writer == "restarted"
        await snapshots.close()

    run(scenario())


def test_entries_of_an_earlier_version_are_merged(redis_server: RedisServer) -> None:
    """An earlier version wrote whole entries (window totals inside) to the same hash: during a
    rolling upgrade the leader merges them as they are."""
    states = fleet_states()
    mine, theirs = split(states)
    old: dict[str, bytes] = {k: encode_entry(partition_entry(s)) for k, s in theirs.items()}
    redis.Redis.from_url(redis_server.url).hset("t:partitions", mapping=old)

    async def scenario() -> None:
        snapshots = store(redis_server)
        await snapshots.publish(mine, preferred=True)
        assert stored(redis_server, "t") == expected(states)
        await snapshots.close()

    run(scenario())


def test_window_totals_that_change_all_the_time_are_paced(redis_server: RedisServer) -> None:
    """With a budget, totals that cost c s of CPU wait c / budget before the next ones go out;
    the rest of the entry (counts, stream time) goes out at every publish meanwhile."""
    states = fleet_states()
    registry = CollectorRegistry()
    written = "cxkpi_snapshot_windows_written_total"

    async def scenario() -> None:
        snapshots = SnapshotStore(redis_server.url, "t", SHAPE, registry, windows_cpu_budget=1e-6)
        await snapshots.publish(states, preferred=True)  # the first totals always go out
        assert snapshots.pacer.next_at > time.monotonic() + 60  # a long wait at this budget
        before = expected(states)["valid_at"]
        for state in states.values():  # every window slides
            state.advance(state.stream_time + 60 * 60_000)
        await snapshots.publish(states, preferred=True)
        assert value(registry, written) == len(states)  # held back
        held = stored(redis_server, "t")
        assert held is not None and held["valid_at"] == expected(states)["valid_at"]
        assert held["windows"] != expected(states)["windows"]  # the windows before the slide
        assert windows_valid_at(redis_server, "t") == before < held["valid_at"]
        snapshots.pacer.next_at = 0.0  # the budget allows again
        await snapshots.publish(states, preferred=True)
        assert value(registry, written) == 2 * len(states)
        assert stored(redis_server, "t") == expected(states)
        assert windows_valid_at(redis_server, "t") == expected(states)["valid_at"]
        await snapshots.close()

    run(scenario())


def restarted(state: PartitionState) -> PartitionState:
    """The state as a restarted worker restores it from its changelog."""
    records, marker = state.flush()
    return PartitionState.restore(
        state.topic, state.partition, state.rules, state.config, [*records, marker]
    )


def test_windows_valid_at_follows_stream_time_while_the_windows_stay_the_same(
    redis_server: RedisServer,
) -> None:
    """After a restart, a customers partition (it holds no windows) restored three weeks back
    catches up, and the source partitions' stream times move on within a step (their window
    totals stay the same): the next document's windows hold at its `valid_at`."""
    states = fleet_states()
    customers = Customers()
    customers.watermark(T0 - 21 * DAY)
    customers.apply(order("c1", T0 - 22 * DAY))
    shape = replace(SHAPE, partitions={**SHAPE.partitions, CUSTOMERS_TOPIC: 1})
    mine, theirs = split(states)
    theirs[f"{CUSTOMERS_TOPIC}/0"] = restarted(customers.state)  # reaches the leader via Redis
    fleet = {**mine, **theirs}

    async def scenario() -> None:
        leader, follower = store(redis_server, shape=shape), store(redis_server, shape=shape)
        for lead, snapshots, owned in ((False, follower, theirs), (True, leader, mine)):
            await snapshots.publish(owned, preferred=lead)
        before = expected(fleet, shape)
        assert windows_valid_at(redis_server, "t") == before["valid_at"]
        versions = {k: s.windows[0].version for k, s in states.items()}
        for state in states.values():  # within the step: no window total changes
            state.advance(state.stream_time + 30_000)
        customers_time = min(s.stream_time for s in states.values()) - 6 * MIN
        fleet[f"{CUSTOMERS_TOPIC}/0"].watermark(0, customers_time, 5)
        assert {k: s.windows[0].version for k, s in states.items()} == versions
        for lead, snapshots, owned in ((False, follower, theirs), (True, leader, mine)):
            await snapshots.publish(owned, preferred=lead)
        after = expected(fleet, shape)
        assert after["valid_at"] > before["valid_at"]
        assert stored(redis_server, "t") == after
        assert after["live"]["customers"]["overall"]["as_of"] == format_time(customers_time)
        assert windows_valid_at(redis_server, "t") == after["valid_at"]
        await asyncio.gather(leader.close(), follower.close())

    run(scenario())


def test_windows_valid_at_never_goes_back_while_the_leader_holds_windows_back(
    redis_server: RedisServer,
) -> None:
    """The leader's rendering is held back (a catch-up) when a follower's totals change: the
    windows it holds still hold up to where the follower last said so, not only up to where
    they were copied."""
    states = fleet_states()
    mine, theirs = split(states)

    async def scenario() -> None:
        leader = SnapshotStore(
            redis_server.url, "t", SHAPE, CollectorRegistry(), windows_cpu_budget=1e-6
        )
        follower = store(redis_server)
        for lead, snapshots, owned in ((False, follower, theirs), (True, leader, mine)):
            await snapshots.publish(owned, preferred=lead)
        for state in states.values():  # within the step: no window total changes
            state.advance(state.stream_time + 30_000)
        for lead, snapshots, owned in ((False, follower, theirs), (True, leader, mine)):
            await snapshots.publish(owned, preferred=lead)
        reached = expected(states)["valid_at"]
        assert windows_valid_at(redis_server, "t") == reached
        for state in theirs.values():  # the follower's windows slide; the leader's are paced
            state.advance(state.stream_time + 60 * 60_000)
        for lead, snapshots, owned in ((False, follower, theirs), (True, leader, mine)):
            await snapshots.publish(owned, preferred=lead)
        assert stored(redis_server, "t")["windows"] != expected(states)["windows"]  # held back
        assert windows_valid_at(redis_server, "t") == reached
        await asyncio.gather(leader.close(), follower.close())

    run(scenario())


def test_partitions_a_topic_no_longer_has_are_left_out(redis_server: RedisServer) -> None:
    """A topic once had a third partition: its entry and window totals stay in Redis, and count
    neither in the windows nor in their time (as in `events` and `valid_at`)."""
    states = fleet_states()
    gone = Feed("cart-events", partition=2)
    gone("gone", "cart_created", -60, channel="web")  # an hour before the others' events
    gone.state.advance(gone.state.stream_time + 10 * MIN)
    wider = replace(SHAPE, partitions={**SHAPE.partitions, "cart-events": 3})

    async def scenario() -> None:
        earlier, snapshots = store(redis_server, shape=wider), store(redis_server)
        await earlier.publish({"cart-events/2": gone.state}, preferred=False)
        await snapshots.publish(states, preferred=True)
        assert stored(redis_server, "t") == expected(states)
        assert windows_valid_at(redis_server, "t") == expected(states)["valid_at"]
        await asyncio.gather(earlier.close(), snapshots.close())

    run(scenario())
