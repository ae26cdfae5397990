"""The broker counts as unreachable once the consumer has had no answer for a while, whether it
refuses connections or accepts them and answers nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from stream.runtime.health import BrokerContact


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Client:
    """The consumer's client (stream/runtime/transport.py's AnsweredClient): its requests are
    answered, and each answer reported, or they hang like a frozen broker's."""

    def __init__(self, on_answer: Callable[[], None]) -> None:
        self.on_answer = on_answer
        self.frozen = False

    async def send(self, node: int, request: str) -> str:
        if self.frozen:
            await asyncio.Event().wait()
        self.on_answer()
        return f"answer to {request}"


def test_answers_keep_the_broker_reachable_and_silence_does_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    contact = BrokerContact(stale_after_s=5, clock=clock)
    client = Client(on_answer=contact.answered)
    assert not contact.answering and contact.describe() == "waiting for the broker's first answer"

    async def scenario() -> None:
        assert await client.send(1, "fetch") == "answer to fetch"  # answers pass through
        assert contact.answering
        client.frozen = True
        hung = asyncio.create_task(client.send(1, "heartbeat"))
        for _ in range(10):
            clock.now += 1
            await contact.check()
        assert not contact.answering
        assert contact.describe() == "broker unreachable: no answer for 10 s"
        hung.cancel()
        client.frozen = False
        clock.now += 1
        await client.send(1, "fetch")
        await contact.check()
        assert contact.answering

    with caplog.at_level(logging.INFO, logger="stream.runtime.health"):
        asyncio.run(scenario())
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "broker unreachable (no answer to the consumer for 5 s); not ready until it answers again",
        "broker reachable again after 11 s",
    ]
