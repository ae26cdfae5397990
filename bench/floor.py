"""The floor: a bare Faust app whose agents only iterate, with the worker's own Faust settings.

Whatever the full worker costs beyond this is the KPI processing; everything up to it is Faust
and the broker. Run as `python -m bench.floor --broker URL --app-id ID --expected N --result F`:
when the N-th record has been iterated, the timing is written to F as JSON, and the process
keeps running until it is stopped.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import faust
import orjson

from stream.app import faust_settings, fetch_max_wait_ms
from stream.config.settings import Settings
from stream.contract.schemas import SOURCE_TOPICS
from stream.runtime import transport


class Counter:
    """Records across all agents, and when the first and the expected last one came."""

    def __init__(self, expected: int, result: Path) -> None:
        self.expected = expected
        self.result = result
        self.seen = 0
        self.first = 0.0

    def count(self) -> None:
        self.seen += 1
        if self.seen == 1:
            self.first = time.monotonic()
        if self.seen == self.expected:
            last = time.monotonic()
            body = {"events": self.seen, "first": self.first, "last": last}
            tmp = self.result.with_suffix(".tmp")
            tmp.write_bytes(orjson.dumps(body))
            tmp.rename(self.result)  # the harness sees a complete file or none


def build_app(settings: Settings, counter: Counter, own_transport: bool = False) -> faust.App:
    """One agent per source topic, declared as the worker declares its topics; on Faust's own
    transport, or with `own_transport` on the worker's (stream/runtime/transport.py)."""
    app = faust.App(settings.app_id, **faust_settings(settings, own_transport))
    for name in SOURCE_TOPICS:
        topic = app.topic(
            name, partitions=settings.partitions, key_serializer="raw", value_serializer="raw"
        )

        async def iterate(stream: faust.StreamT) -> None:
            async for _ in stream.events():
                counter.count()

        app.agent(topic, name=f"floor-{name}")(iterate)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.floor",
        description="A Faust app with one agent per source topic that only iterates; writes "
        "the time of its first and N-th record to --result.",
    )
    parser.add_argument("--broker", required=True, help="Kafka URL, e.g. kafka://127.0.0.1:9092")
    parser.add_argument("--app-id", required=True, help="Faust app id (fresh consumer group)")
    parser.add_argument("--expected", type=int, required=True, help="records to wait for")
    parser.add_argument("--result", type=Path, required=True, help="JSON file written at N")
    parser.add_argument("--profile", default="dev", help="the worker's profile (dev on Tansu)")
    parser.add_argument("--partitions", default="4", help="partitions of the source topics")
    parser.add_argument("--web-port", default="6066", help="port of Faust's web server")
    parser.add_argument(
        "--fast-drain",
        action="store_true",
        help="fetch and hand records to the agents on the worker's transport "
        "(stream/runtime/transport.py), not on Faust's own",
    )
    args = parser.parse_args(argv)
    settings = Settings.load(
        {
            "config": "none",
            "broker": args.broker,
            "app_id": args.app_id,
            "profile": args.profile,
            "partitions": args.partitions,
            "web_port": args.web_port,
        }
    )
    logging.basicConfig(level=logging.WARNING)
    app = build_app(settings, Counter(args.expected, args.result), own_transport=args.fast_drain)
    if args.fast_drain:
        transport.consumer_of(app).cap_fetch_wait(fetch_max_wait_ms(settings))
    worker = faust.Worker(app, loglevel="WARNING", redirect_stdouts=False, override_logging=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
