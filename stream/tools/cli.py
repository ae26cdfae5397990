"""The `cxkpi` command: worker, dev, generate, produce, topics, soak, rules, dashboard.

Every subcommand's --help lists its options with their environment variables and defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import orjson

from stream.config import ConfigError, parse_duration
from stream.config.settings import Settings, add_arguments, flags_from
from stream.tools.soak.options import add_arguments as add_soak_arguments

#: the settings of commands that only talk to the broker
BROKER_ONLY = (
    "broker",
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_password",
    "kafka_ssl_cafile",
    "kafka_ssl_certfile",
    "kafka_ssl_keyfile",
    "partitions",
    "log_level",
)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.run(args)
    except ConfigError as exc:
        print(f"cxkpi {args.command}: configuration error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxkpi",
        description="Live customer-experience KPIs from Kafka events, for Prometheus and Grafana.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = commands.add_parser(
        "worker",
        help="run a stream worker (all agents) against a broker and Redis",
        description="Run a Faust worker that consumes cart-events, tickets and survey-replies, "
        "keeps the KPI state and serves /metrics, /kpis, /health and /ready.",
    )
    add_arguments(worker)
    worker.set_defaults(run=run_worker)

    dev = commands.add_parser(
        "dev",
        help="live demo: embedded broker, redis-server, a worker and a generator",
        description="Start the embedded Tansu broker, create the topics, start redis-server if "
        "it is installed, a worker and a generator, and show the KPIs live. Ctrl-C stops all.",
    )
    dev.add_argument("--rate", type=float, default=40.0, help="generated events per second")
    dev.add_argument("--seed", type=int, default=1, help="generator seed")
    dev.add_argument(
        "--run-for",
        type=parse_duration,
        default=None,
        metavar="DURATION",
        help="stop by itself after this long (default: until Ctrl-C)",
    )
    dev.add_argument("--no-ui", action="store_true", help="print one line a second, no table")
    add_arguments(
        dev,
        ("partitions", "windows", "step", "grace", "inactivity_timeout", "web_port", "log_level"),
    )
    dev.set_defaults(run=run_dev)

    generate = commands.add_parser(
        "generate",
        help="realistic synthetic events, to Kafka or to a JSON Lines file",
        description="Generate events for all three topics (about 70 % of carts abandoned, "
        "log-normal resolution times, NPS around +30). Without --out, events are sent to Kafka "
        "in real time at --rate; with --out they are written as fast as possible, spaced "
        "1/rate apart in event time. Same --seed and --start: same events.",
    )
    bound = generate.add_mutually_exclusive_group()
    bound.add_argument("--count", type=int, help="number of events")
    bound.add_argument("--duration", type=parse_duration, help="event-time span (e.g. 10m)")
    generate.add_argument("--rate", type=float, default=20.0, help="events per second")
    generate.add_argument("--seed", type=int, default=0, help="random seed")
    generate.add_argument(
        "--start",
        type=_timestamp,
        default=None,
        help="event time of the first event, RFC 3339 (default: now)",
    )
    generate.add_argument("--out", type=Path, help="write JSON Lines here instead of Kafka")
    generate.add_argument(
        "--resolution-median",
        type=parse_duration,
        default=None,
        metavar="DURATION",
        help="median ticket resolution time (default 4h; first replies come sooner in proportion)",
    )
    generate.add_argument("--quiet", action="store_true", help="no progress bar")
    add_arguments(generate, BROKER_ONLY)
    generate.set_defaults(run=run_generate)

    produce = commands.add_parser(
        "produce",
        help="publish events from a JSON Lines file (or - for stdin), validating each line",
        description="Publish each line to the topic its type belongs to, keyed by cart_id, "
        "ticket_id or response_id. Invalid lines are reported with line number and reason and "
        "not sent; any invalid line makes the exit code 1.",
    )
    produce.add_argument("file", help="JSON Lines file, or - for standard input")
    produce.add_argument(
        "--no-validate",
        action="store_true",
        help="send lines as they are, to --topic (for testing the dead-letter path)",
    )
    produce.add_argument("--topic", help="target topic (only with --no-validate)")
    produce.add_argument("--quiet", action="store_true", help="no progress bar")
    add_arguments(produce, (*BROKER_ONLY, "max_event_bytes", "max_future"))
    produce.set_defaults(run=run_produce)

    topics = commands.add_parser(
        "topics",
        help="create the source and dead-letter topics (idempotent)",
        description="Create cart-events, tickets, survey-replies and their .dlq topics with the "
        "configured partition count; existing topics are checked, not changed.",
    )
    add_arguments(topics, BROKER_ONLY)
    topics.set_defaults(run=run_topics)

    soak = commands.add_parser(
        "soak",
        help="run a worker under steady generated load and check its memory stays flat",
        description="Start a worker (and the embedded broker and redis-server unless given), "
        "send it generated events at --rate for --duration, print its resident memory and "
        "progress every --sample-every, and fail if memory grew after the warm-up by more "
        "than --max-growth, on an error line in its log, or on unprocessed events. CI runs "
        "3 minutes; an hour is the documented length.",
    )
    add_soak_arguments(soak)
    soak.set_defaults(run=run_soak)

    for name, what, default_out in (
        (
            "rules",
            "Prometheus recording and alert rules (YAML)",
            "ops/prometheus/rules/cxkpi.rules.yml",
        ),
        ("dashboard", "the Grafana dashboard (JSON)", "ops/grafana/dashboards/cxkpi-overview.json"),
    ):
        command = commands.add_parser(
            name,
            help=f"generate {what} from the KPI configuration file",
            description=f"Write {what}, generated from the KPI configuration file's windows, "
            f"KPI switches and alert thresholds. The repository keeps the result in "
            f"{default_out} (`make monitoring` regenerates it).",
        )
        command.add_argument(
            "--out", default="-", help="file to write (default: - for standard output)"
        )
        command.add_argument(
            "--check",
            action="store_true",
            help="write nothing; exit 1 if --out differs from what would be generated",
        )
        add_arguments(command, ("config",))
        command.set_defaults(run=run_generated)
    return parser


def _timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "an RFC 3339 timestamp such as 2026-11-23T10:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run_worker(args: argparse.Namespace) -> int:
    import faust

    from stream.app import KpiApp
    from stream.runtime import heap
    from stream.runtime.logs import setup_logging
    from stream.runtime.topics import ensure_topics

    settings = Settings.load(flags_from(args))
    setup_logging(settings.log_level)
    logging.getLogger(__name__).info("settings: %s", settings.describe())
    asyncio.run(ensure_topics(settings))
    kpi_app = KpiApp(settings)
    heap.freeze_survivors()
    worker = faust.Worker(
        kpi_app.app,
        loglevel=settings.log_level.upper(),
        redirect_stdouts=False,
        override_logging=False,
    )
    worker.execute_from_commandline()
    return 0


def run_topics(args: argparse.Namespace) -> int:
    from stream.runtime.topics import ensure_topics

    settings = Settings.load(flags_from(args))
    for topic, status in asyncio.run(ensure_topics(settings)).items():
        print(f"{topic}: {status} ({settings.partitions} partitions)")
    return 0


def run_produce(args: argparse.Namespace) -> int:
    from stream.runtime.connection import client_options
    from stream.runtime.topics import ensure_topics
    from stream.tools.produce import produce_lines
    from stream.tools.progress import progress_bar

    if args.topic and not args.no_validate:
        raise ConfigError("--topic is only for --no-validate; valid events are routed by type")
    if args.no_validate and not args.topic:
        raise ConfigError("--no-validate needs --topic")
    settings = Settings.load(flags_from(args))
    asyncio.run(ensure_topics(settings))
    if args.file == "-":
        source: IO[bytes] = sys.stdin.buffer
        total = None
    else:
        path = Path(args.file)
        if not path.is_file():
            raise ConfigError(f"no such file: {path}")
        source, total = path.open("rb"), path.stat().st_size
    with source, progress_bar("producing", total, unit="B", disable=args.quiet) as advance:
        outcome = asyncio.run(
            produce_lines(
                source,
                kafka=client_options(settings),
                validate=not args.no_validate,
                topic=args.topic,
                max_bytes=settings.max_event_bytes,
                max_future_s=settings.max_future,
                on_line=advance,
            )
        )
    for number, reason in outcome.invalid:
        print(f"line {number}: {reason}", file=sys.stderr)
    sent = ", ".join(f"{t}: {n}" for t, n in sorted(outcome.sent.items())) or "nothing"
    print(
        f"sent {sum(outcome.sent.values())} events ({sent}); "
        f"{len(outcome.invalid)} invalid lines not sent"
    )
    return 1 if outcome.invalid else 0


def run_generate(args: argparse.Namespace) -> int:
    from stream.runtime.connection import client_options
    from stream.tools.generate import Profile, generate
    from stream.tools.produce import send_live
    from stream.tools.progress import progress_bar

    if args.rate <= 0:
        raise ConfigError("--rate must be greater than zero")
    if args.out is None and args.count is None and args.duration is None:
        count = None  # to Kafka until interrupted
    else:
        count = args.count if args.count is not None else int((args.duration or 60) * args.rate)
    profile = (
        Profile()
        if args.resolution_median is None
        else Profile.with_resolution_median(args.resolution_median)
    )
    start = args.start or datetime.now(UTC)
    events = generate(
        seed=args.seed,
        start=start,
        rate=args.rate,
        count=count,
        duration_s=None if count is not None else 10**9,
        profile=profile,
    )
    if args.out is not None:
        with (
            args.out.open("wb") as out,
            progress_bar("generating", count, unit="events", disable=args.quiet) as advance,
        ):
            for event in events:
                out.write(orjson.dumps(event) + b"\n")
                advance(1)
        print(f"wrote {count} events to {args.out}")
        return 0
    settings = Settings.load(flags_from(args))
    from stream.runtime.topics import ensure_topics

    asyncio.run(ensure_topics(settings))
    with progress_bar("sending", count, unit="events", disable=args.quiet) as advance:
        sent = asyncio.run(send_live(events, client_options(settings), args.rate, advance))
    print(f"sent {sent} events")
    return 0


def run_generated(args: argparse.Namespace) -> int:
    from stream.config.kpifile import default_kpi_config
    from stream.monitoring.dashboard import render_dashboard
    from stream.monitoring.rules import render_rules

    settings = Settings.load(flags_from(args))
    config = settings.kpis or default_kpi_config()
    source = config.path.name if config.path.is_absolute() else str(config.path)
    text = render_rules(config, source) if args.command == "rules" else render_dashboard(config)
    if args.check:
        if args.out == "-":
            raise ConfigError("--check needs --out FILE to compare with")
        path = Path(args.out)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            print(f"{path} is stale: run `cxkpi {args.command} --out {path}`", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


def run_soak(args: argparse.Namespace) -> int:
    from stream.tools.soak.run import run

    return run(args)


def run_dev(args: argparse.Namespace) -> int:
    from stream.tools.demo import run_demo

    return run_demo(args, flags_from(args))
