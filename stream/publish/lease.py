"""Who writes the merged snapshot: a lease in Redis, so that a dead writer is replaced in seconds.

The owner of the first source topic's partition 0 is the preferred writer (Kafka's group
membership picks exactly one). When it dies, its partitions move only once the group notices
(the session timeout) and their changelogs were read again: in the fleet benchmark the document
stood still for 48.5 s (docs/performance.md). So writing the document is a lease,
`<app_id>:writer`, written in the same transaction as the document and expiring `ttl` after it
(`LEASE_INTERVALS` publish intervals):

- the preferred writer takes it at each publish, whoever holds it;
- any other worker takes it when no live lease exists (its holder stopped writing), and keeps
  it, renewing it with each document, until the preferred writer takes it back.

The lease names its writer and the time its document was written, so every worker learns how
fresh the snapshot is from one small GET. Two writers at once (a lease taken while its holder is
writing, two owners of partition 0 while it moves) stay harmless: the document is written under
WATCH of the document, and of the lease by any worker but the preferred one, so nobody
overwrites a newer document with an older merge. The preferred writer does not watch the lease:
a lease expiring while it writes (a killed worker's, or its own after a slow round) would only
make it write again.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

#: Publish intervals a lease lasts unless renewed: its holder renews it twice per interval, so a
#: publish or two may be slow without another worker taking over.
LEASE_INTERVALS = 3


@dataclass(frozen=True, slots=True)
class Lease:
    """The writer of the merged document: its name (its static membership id or host:port,
    never customer data), its process (a name may repeat across restarts) and when it last
    wrote the document (epoch ms)."""

    writer: str
    instance: str
    published_at: int


def encode_lease(lease: Lease) -> bytes:
    return orjson.dumps(
        {"writer": lease.writer, "instance": lease.instance, "published_at": lease.published_at}
    )


def decode_lease(raw: bytes | None) -> Lease | None:
    """The lease held now; None when it expired (or holds no lease this version can read,
    which a writer then replaces)."""
    if raw is None:
        return None
    try:
        body = orjson.loads(raw)
        return Lease(str(body["writer"]), str(body["instance"]), int(body["published_at"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def wall_ms() -> int:
    """Now, in epoch milliseconds (the documents' time of writing)."""
    return time.time_ns() // 1_000_000


def may_write(lease: Lease | None, instance: str, preferred: bool) -> bool:
    """Whether the worker of process `instance` writes the document at this publish."""
    return preferred or lease is None or lease.instance == instance


def worker_name(group_instance_id: str, web_port: int) -> str:
    """How the documents and logs name a worker: its static membership id (the pod's name on
    Kubernetes) or its host and HTTP port."""
    return group_instance_id or f"{socket.gethostname()}:{web_port}"


class PublishedAt(Collector):
    """`cxkpi_snapshot_published_timestamp_seconds`: when the merged document this worker last
    wrote or saw named in the lease was written. No sample until one is known: a 0 would read
    as a snapshot 56 years old."""

    NAME = "cxkpi_snapshot_published_timestamp_seconds"

    def __init__(self) -> None:
        self.ms: int | None = None

    def seen(self, lease: Lease | None) -> None:
        if lease is not None:
            self.ms = lease.published_at

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.ms is not None:
            yield GaugeMetricFamily(
                self.NAME,
                "When the merged snapshot in Redis was last written (Unix seconds), as this worker "
                "last wrote it or read it in the writer lease; time() - max over workers is the "
                "snapshot's age",
                value=self.ms / 1000,
            )
