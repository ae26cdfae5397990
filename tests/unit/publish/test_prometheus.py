"""/metrics' windowed KPIs: rebuilt only when a window total may have changed, and then exactly
what rendering the whole document gives."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable

from prometheus_client import generate_latest

from stream.publish.document import render, window_renderer, window_versions, windows_json
from stream.publish.entries import partition_entry
from stream.publish.merge import merge
from stream.publish.prometheus import Windows, WindowText, _Families
from tests.unit.feed import CONFIG, Feed


def surveys() -> Feed:
    feed = Feed("survey-replies")
    feed("r1", "nps", 0, score=10, channel="web")
    feed("r2", "nps", 0.5, score=3, channel="app")
    feed("r3", "csat", 1.5, score=5, channel="web")  # closes minute 0
    return feed


def test_versions_change_when_a_window_does_and_only_then() -> None:
    feed = surveys()
    closed = window_versions([feed.state])
    feed("r4", "nps", 1.6, score=9)  # into the bucket in progress: in no window yet
    assert window_versions([feed.state]) == closed
    feed("r5", "nps", 0.9, score=9)  # inside grace, into minute 0, which the windows hold
    after_late = window_versions([feed.state])
    assert all(a != b for a, b in zip(after_late, closed, strict=True))
    feed("r6", "nps", 2.1, score=9)  # stream time crosses into minute 2: windows slide
    assert all(a != b for a, b in zip(window_versions([feed.state]), after_late, strict=True))


def test_rendered_from_copies_equals_the_whole_document() -> None:
    feed = surveys()
    keep = {"channel": frozenset({"web", "app"})}
    render_copies = window_renderer([feed.state], CONFIG.windows_ms, keep)
    whole = render(
        merge([partition_entry(feed.state)]), CONFIG.windows_ms, {feed.topic: 1}, max_values=20
    )
    feed("r7", "nps", 1.7, score=0)  # later changes do not reach the copies
    assert windows_json(render_copies(), CONFIG.windows_ms) == whole["windows"]
    assert whole["windows"]["5m"]["nps"]["overall"]["responses"] == 2


class Counting:
    """Inputs for WindowText that count how often they are taken."""

    def __init__(self, windows: Windows) -> None:
        self.key: Hashable = 1
        self.windows = windows
        self.taken = 0

    def inputs(self) -> Callable[[], Windows]:
        self.taken += 1
        return lambda: self.windows


def test_text_is_rebuilt_only_when_the_key_changes() -> None:
    feed = surveys()
    windows = window_renderer([feed.state], CONFIG.windows_ms, {})()
    source = Counting(windows)
    text = WindowText(lambda: source.key, source.inputs)

    async def scrapes() -> list[bytes]:
        first = await asyncio.gather(*(text.text() for _ in range(5)))  # concurrent scrapes
        source.key = 2
        return [*first, await text.text(), await text.text()]

    bodies = asyncio.run(scrapes())
    assert source.taken == 2  # once for the concurrent five, once after the key changed
    assert len(set(bodies)) == 1
    assert bodies[0] == generate_latest(_Families(windows))
    assert b'cxkpi_nps_responses{dimension="all",segment="all",window="5m"} 2.0' in bodies[0]


def test_voice_of_the_customer_families() -> None:
    """Emotions: the replies, and one series per emotion named (a label, not a family each);
    sentiment: its components, with the score sum in score units."""
    feed = Feed("survey-replies")
    feed("r1", "emotion", 0, emotions=["happy", "stressed"], team="billing")
    feed("r2", "emotion", 0.2, emotions=["happy"], team="billing")
    feed("r3", "mention", 0.4, voices=[("mention", "en", 2500)], channel="x")
    feed("r4", "csat", 1.5, score=5)  # closes minute 0
    body = generate_latest(_Families(window_renderer([feed.state], CONFIG.windows_ms, {})()))
    lines = body.decode().splitlines()
    where = 'dimension="all",segment="all",window="5m"'
    assert f"cxkpi_emotions_replies{{{where}}} 2.0" in lines

    def named(emotion: str) -> str:  # the labels as the exposition sorts them
        return f'dimension="all",emotion="{emotion}",segment="all",window="5m"'

    assert f"cxkpi_emotions_named{{{named('happy')}}} 2.0" in lines
    assert f"cxkpi_emotions_share{{{named('stressed')}}} 0.5" in lines
    assert f"cxkpi_emotions_share{{{named('valued')}}} 0.0" in lines
    assert f"cxkpi_net_emotion_score{{{where}}} 50.0" in lines
    assert f"cxkpi_sentiment_score_sum{{{where}}} 0.25" in lines
    assert f"cxkpi_sentiment_net{{{where}}} 100.0" in lines
    assert 'cxkpi_sentiment_scored{dimension="source",segment="mention",window="5m"} 1.0' in lines
