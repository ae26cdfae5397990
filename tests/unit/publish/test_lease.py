"""The writer lease's value, who may write, and the published-time gauge (lease.py); the lease
against a real redis-server: tests/integration/test_writer_lease.py."""

from __future__ import annotations

import socket

import pytest
from prometheus_client import CollectorRegistry

from stream.publish.lease import (
    Lease,
    PublishedAt,
    decode_lease,
    encode_lease,
    may_write,
    worker_name,
)

LEASE = Lease("cxkpi-0", "0123456789ab", 1_790_000_000_123)


def test_a_lease_reads_back_as_written() -> None:
    assert decode_lease(encode_lease(LEASE)) == LEASE
    assert decode_lease(None) is None  # expired


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"x",
        b"[]",
        b'"text"',
        b'{"writer": "a"}',
        b'{"writer": "a", "instance": "b", "published_at": "soon"}',
    ],
)
def test_a_value_this_version_cannot_read_is_no_lease(raw: bytes) -> None:
    """A writer replaces it rather than fail every publish."""
    assert decode_lease(raw) is None


def test_the_preferred_writer_always_writes_the_others_only_without_a_live_lease() -> None:
    other = Lease("cxkpi-1", "ba9876543210", LEASE.published_at)
    assert may_write(other, LEASE.instance, preferred=True)
    assert not may_write(other, LEASE.instance, preferred=False)
    assert may_write(None, LEASE.instance, preferred=False)  # expired: take it
    assert may_write(LEASE, LEASE.instance, preferred=False)  # its own: keep it


def test_a_worker_is_named_by_its_static_membership_id_or_its_host_and_port() -> None:
    assert worker_name("cxkpi-2", 6066) == "cxkpi-2"
    assert worker_name("", 6067) == f"{socket.gethostname()}:6067"


def test_the_published_time_has_no_sample_until_one_is_known() -> None:
    registry = CollectorRegistry()
    published = PublishedAt()
    registry.register(published)
    assert registry.get_sample_value(PublishedAt.NAME) is None
    published.seen(None)
    assert registry.get_sample_value(PublishedAt.NAME) is None
    published.seen(LEASE)
    assert registry.get_sample_value(PublishedAt.NAME) == LEASE.published_at / 1000
    published.seen(None)  # no lease read (this worker took it): the last one known stays
    assert registry.get_sample_value(PublishedAt.NAME) == LEASE.published_at / 1000
