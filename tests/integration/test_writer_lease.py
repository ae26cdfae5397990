"""The writer lease against a real redis-server (stream/publish/lease.py): the document says when
and by whom it was written; when its writer stops, a follower takes over once the lease expired,
merging the stopped writer's entries as they were left, and hands it back to the preferred
writer. Workers that die on a real broker: test_writer_takeover.py."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

from stream.publish.lease import PublishedAt, decode_lease
from stream.publish.redis_store import SnapshotStore
from tests.integration.test_snapshot_store import (
    SHAPE,
    InterruptedShape,
    document,
    expected,
    fleet_states,
    run,
    split,
    store,
    stored,
    value,
)
from tests.servers import RedisServer, wait_until


def ms(text: str) -> int:
    """A document's time (RFC 3339, ms, Z) as epoch ms."""
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def wall() -> int:
    return time.time_ns() // 1_000_000


def test_the_document_says_when_and_by_whom_it_was_written(redis_server: RedisServer) -> None:
    """`published_at` is the time of writing, `writer` the writer's name,
    `partitions_published_at` when the least recently published partition was; every worker's
    gauge holds the time of the latest document it wrote or saw in the lease."""
    states = fleet_states()
    mine, theirs = split(states)
    leading, following = CollectorRegistry(), CollectorRegistry()

    async def scenario() -> None:
        leader = store(redis_server, leading, writer="leader-0:6066")
        follower = store(redis_server, following, writer="follower-1:6066")
        assert following.get_sample_value(PublishedAt.NAME) is None  # none known yet
        await leader.publish(mine, preferred=True)
        first = document(redis_server, "t")
        assert first is not None
        before = wall()
        await follower.publish(theirs, preferred=False)
        after = wall()
        # the follower saw the leader's document in the lease
        assert following.get_sample_value(PublishedAt.NAME) == ms(first["published_at"]) / 1000
        assert value(following, "cxkpi_snapshot_leader") == 0
        await leader.publish(mine, preferred=True)
        written = wall()
        doc = document(redis_server, "t")
        assert doc is not None and doc["writer"] == "leader-0:6066"
        assert after <= ms(doc["published_at"]) <= written
        # the follower's entries are the least recently published
        assert before <= ms(doc["partitions_published_at"]) <= after
        assert leading.get_sample_value(PublishedAt.NAME) == ms(doc["published_at"]) / 1000
        assert value(leading, "cxkpi_snapshot_leader") == 1
        await asyncio.gather(leader.close(), follower.close())

    run(scenario())


def test_a_follower_takes_over_once_the_writer_stopped(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The writer stops publishing (as if killed): once its lease expired, the follower's next
    publish writes the document, whole and exact, the stopped writer's entries as it left them
    (`valid_at` and `partitions_published_at` stand still with them); the follower keeps writing
    until the preferred writer is back and takes the lease. It says so once each time."""
    states = fleet_states()
    mine, theirs = split(states)
    following = CollectorRegistry()
    client = redis.Redis.from_url(redis_server.url)

    async def scenario() -> None:
        leader = store(redis_server, writer="leader-0:6066", lease_ttl_s=0.5)
        follower = store(redis_server, following, writer="follower-1:6066", lease_ttl_s=0.5)
        await leader.publish(mine, preferred=True)
        await follower.publish(theirs, preferred=False)
        await leader.publish(mine, preferred=True)
        last = document(redis_server, "t")
        assert last is not None and last["writer"] == "leader-0:6066"
        # the leader stops; its lease expires on its own
        await asyncio.to_thread(
            wait_until, lambda: not client.exists("t:writer"), 10, "the lease to expire"
        )
        await follower.publish(theirs, preferred=False)
        taken = document(redis_server, "t")
        assert taken is not None and taken["writer"] == "follower-1:6066"
        assert ms(taken["published_at"]) > ms(last["published_at"])
        assert stored(redis_server, "t") == expected(states)  # whole: the leader's entries too
        assert taken["valid_at"] == last["valid_at"]
        # the least recently published entries are the stopped leader's, from its last publish
        assert ms(taken["partitions_published_at"]) <= ms(last["published_at"])
        assert value(following, "cxkpi_snapshot_leader") == 1
        await follower.publish(theirs, preferred=False)  # it keeps the lease
        kept = document(redis_server, "t")
        assert kept is not None and kept["writer"] == "follower-1:6066"
        assert ms(kept["published_at"]) > ms(taken["published_at"])
        await leader.publish(mine, preferred=True)  # the preferred writer is back
        await follower.publish(theirs, preferred=False)
        back = document(redis_server, "t")
        assert back is not None and back["writer"] == "leader-0:6066"
        assert value(following, "cxkpi_snapshot_leader") == 0
        assert following.get_sample_value(PublishedAt.NAME) == ms(back["published_at"]) / 1000
        assert stored(redis_server, "t") == expected(states)
        await asyncio.gather(leader.close(), follower.close())

    with caplog.at_level(logging.INFO, logger="stream.publish.redis_store"):
        run(scenario())
    assert [r.getMessage() for r in caplog.records] == [
        "this worker (leader-0:6066) writes the merged snapshot now",
        "this worker (follower-1:6066) writes the merged snapshot now",
        "this worker (follower-1:6066) no longer writes the merged snapshot: leader-0:6066 does",
    ]


def test_a_follower_that_loses_the_race_for_the_lease_writes_only_its_entries(
    redis_server: RedisServer,
) -> None:
    """No lease lives, so a follower merges a document, but another worker takes the lease
    before it writes: its transaction fails under WATCH, and it publishes as a follower."""
    states = fleet_states()
    mine, _ = split(states)
    registry = CollectorRegistry()
    client = redis.Redis.from_url(redis_server.url)

    async def scenario() -> None:
        shape = InterruptedShape(
            SHAPE.windows_ms,
            SHAPE.partitions,
            SHAPE.max_values,
            url=redis_server.url,
            key="t:writer",
        )
        follower = SnapshotStore(redis_server.url, "t", shape, registry)
        await follower.publish(mine, preferred=False)
        assert value(registry, "cxkpi_snapshot_publish_retries_total") == 1
        assert value(registry, "cxkpi_snapshot_leader") == 0
        assert client.get("t:snapshot") is None
        lease = decode_lease(client.get("t:writer"))
        assert lease is not None and lease.writer == "other"
        entries: dict[Any, Any] = client.hgetall("t:partitions")
        assert {f.decode() for f in entries} == set(mine)
        await follower.close()

    run(scenario())
