"""The consumer adjustments of stream/runtime/fetching.py, on a real (unstarted) Faust app."""

from __future__ import annotations

import asyncio
import tempfile

import faust
import pytest
from faust.types import TP

from stream.runtime import fetching


def new_app() -> faust.App:
    return faust.App("fetching-test", broker="kafka://127.0.0.1:1", datadir=tempfile.mkdtemp())


def test_install_replaces_the_fetch_loop_and_the_read_mark() -> None:
    app = new_app()
    consumer = app.consumer

    async def on_record(message: object) -> None: ...

    fetching.install(consumer, deliver={"cart-events": on_record})
    drain = consumer._drain_messages.__func__
    assert drain.func is fetching.fast_drain
    assert drain.keywords == {"deliver": {"cart-events": on_record}}
    consumer._read_offset[TP("cart-events", 0)] = 41  # Faust records its read mark...
    assert consumer._read_offset[TP("cart-events", 0)] is None  # ...and never drops below it


def test_the_fetch_wait_is_capped_only_when_asked() -> None:
    async def fetch_waits() -> tuple[int, int]:
        waits = []
        for cap in (None, 100):
            app = new_app()
            fetching.install(app.consumer, cap)
            thread = app.consumer._thread
            client = thread._create_worker_consumer(app.transport)
            waits.append(client._fetch_max_wait_ms)
        return waits[0], waits[1]

    default, capped = asyncio.run(fetch_waits())
    assert default == 1500  # Faust's own
    assert capped == 100


def test_a_faust_without_what_is_adjusted_fails_at_start_with_a_clear_message() -> None:
    app = new_app()
    consumer = app.consumer
    del consumer._read_offset
    with pytest.raises(RuntimeError, match=r"_read_offset.*pyproject\.toml"):
        fetching.install(consumer)
