"""The cost of scoring what customers write: the production worker over the benchmark's log,
and over the same log without text (comments left out, each review's and mention's text cut to
one character, which no scorer can tell a language of), on an embedded broker of its own.

The log's survey replies carry the generator's texts: a comment on 30 % of scored replies, and
every review and mention (docs/sentiment.md). `text_on_vs_off` is the production run's events/s
over this run's, repeat by repeat; the target is ≥ 0.9.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from bench.eventlog import Record, log_events, now_utc
from bench.phases import Context, Produced, Throughput, measure_full
from tests.servers import Broker

_TEXT_TYPES = (b'"type":"review"', b'"type":"mention"')


def without_text(record: Record) -> Record:
    """The record with no text worth scoring: the contract requires a review's and mention's
    text (1 character at least), so it becomes '-'; a comment is optional, so it goes."""
    if record.topic != "survey-replies" or not (
        b'"comment"' in record.value or any(t in record.value for t in _TEXT_TYPES)
    ):
        return record
    event = orjson.loads(record.value)
    event.pop("comment", None)
    if "text" in event:
        event["text"] = "-"
    return Record(record.topic, record.key, orjson.dumps(event))


def with_text(records: list[Record]) -> int:
    """How many records carry a text."""
    return sum(1 for r in records if without_text(r) is not r)


#: Produces a log to a broker (bench.run's `prepare`): (broker, records, quiet, label).
Prepare = Callable[[str, list[Any], bool, str], Awaitable[Produced]]


async def run_without_text(
    args: argparse.Namespace,
    workdir: Path,
    say: Callable[[str], None],
    quiet: bool,
    redis_url: str,
    prepare: Prepare,
) -> list[Throughput]:
    """The production worker over the log without text, `args.repeat` times."""
    records = log_events(args.events, args.seed, args.event_rate, now_utc())
    texts = with_text(records)
    stripped = [without_text(r) for r in records]
    del records
    say(f"log without text: {texts:,} of {len(stripped):,} events had a text")
    folder = workdir / "without-text"
    folder.mkdir(exist_ok=True)
    server = Broker(folder)
    runs: list[Throughput] = []
    try:
        profile = args.profile or "dev"
        produced = await prepare(server.url, stripped, quiet, "producing it")
        del stripped
        ctx = Context(server.url, profile, folder, produced, redis_url=redis_url, quiet=quiet)
        for r in range(args.repeat):
            run_, _ = await measure_full(ctx, f"no-text-{r}", args.windows)
            runs.append(run_)
            say(f"full worker, without text {r + 1}/{args.repeat}: {run_.rate:,.0f} events/s")
    finally:
        server.stop()
    return runs
