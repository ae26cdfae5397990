"""The `cxkpi` command: worker, dev, generate, produce, topics, soak, rules, dashboard.

Every subcommand's --help lists its options with their environment variables and defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, NoReturn

import orjson

from stream.config import ConfigError, window_label
from stream.config.settings import Settings, add_arguments, flags_from
from stream.tools import arguments
from stream.tools.demo import DEMO
from stream.tools.generate import Profile, generate
from stream.tools.generated import RULE_FORMATS
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
        print(f"cxkpi {args.command}: error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code or 0)


class Parser(argparse.ArgumentParser):
    """argparse, with a mistake reported on one line (its usage is one --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="cxkpi",
        description="Live customer-experience KPIs from Kafka events, for Prometheus and Grafana.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = commands.add_parser(
        "worker",
        help="run a stream worker (every topic) against a broker and Redis",
        description="Run a Faust worker that consumes cart-events, tickets, survey-replies and "
        "activity, keeps the KPI state and serves /metrics, /kpis, /health and /ready.",
    )
    worker.add_argument(
        "--exit-if-no-broker-after",
        type=arguments.duration,
        default=None,
        metavar="DURATION",
        help="exit (code 2) if the broker has not answered this long after start (default: wait "
        "for it, with /ready 503 and a log line every 30 s)",
    )
    add_arguments(worker)
    worker.set_defaults(run=run_worker)

    dev = commands.add_parser(
        "dev",
        help="live demo: embedded broker, redis-server, a worker and a generator",
        description="Start the embedded Tansu broker, create the topics, start redis-server if "
        "it is installed, a worker and a generator, and show the KPIs live. Ctrl-C stops all.",
    )
    dev.add_argument(
        "--rate",
        type=arguments.rate,
        default=40.0,
        help="generated events per second (default: %(default)g)",
    )
    dev.add_argument("--seed", type=int, default=1, help="generator seed (default: %(default)s)")
    dev.add_argument(
        "--run-for",
        type=arguments.duration,
        default=None,
        metavar="DURATION",
        help="stop by itself after this long (default: until Ctrl-C)",
    )
    dev.add_argument(
        "--no-ui",
        action="store_true",
        help="print a one-line KPI summary every step instead of the live table (the default "
        "when the output is not a terminal)",
    )
    add_arguments(
        dev,
        ("partitions", "windows", "step", "grace", "inactivity_timeout", "web_port", "log_level"),
        defaults=DEMO,
    )
    dev.set_defaults(run=run_dev)

    generate = commands.add_parser(
        "generate",
        help="realistic synthetic events, to Kafka or to a JSON Lines file",
        description="Generate events for all four topics (about 70 % of carts abandoned, "
        "log-normal resolution times, NPS around +30, users with a daily rhythm). Without "
        "--out, events are sent to Kafka in real time at --rate; with --out they are written "
        "as fast as possible, spaced 1/rate apart in event time. Same --seed and --start: "
        "same events. Without --count or --duration, events go to Kafka until Ctrl-C, or one "
        "minute's worth to --out.",
    )
    bound = generate.add_mutually_exclusive_group()
    bound.add_argument(
        "--count",
        type=arguments.count,
        help="number of events (default: no limit to Kafka, runs until Ctrl-C; "
        "--rate x 60 with --out)",
    )
    bound.add_argument(
        "--duration",
        type=arguments.duration,
        metavar="DURATION",
        help="event-time span, e.g. 10m: --rate x DURATION events (default: see --count)",
    )
    generate.add_argument(
        "--rate",
        type=arguments.rate,
        default=20.0,
        help="events per second (default: %(default)g)",
    )
    generate.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    generate.add_argument(
        "--start",
        type=_timestamp,
        default=None,
        help="event time of the first event, RFC 3339 (default: now)",
    )
    generate.add_argument(
        "--out",
        type=arguments.out_file,
        metavar="FILE",
        help="write JSON Lines here instead of sending to Kafka (default: send to Kafka)",
    )
    generate.add_argument(
        "--resolution-median",
        type=arguments.duration,
        default=None,
        metavar="DURATION",
        help="median ticket resolution time (default 4h; first replies come sooner in proportion)",
    )
    generate.add_argument(
        "--shift",
        type=arguments.shift,
        default=None,
        metavar="KPI:POINTS[:DIM=VALUE][@FROM[+FOR]]",
        help="inject a change: NPS points or cart abandonment points for one segment, from FROM "
        "after the start for FOR, e.g. nps:-15:team=billing@10m+2h (default: none)",
    )
    generate.add_argument(
        "--activity-share",
        type=arguments.share,
        default=Profile.activity_share,
        metavar="SHARE",
        help="share of the slots that start a user's session on the activity topic, more "
        "around 14:00 UTC (0: no activity, and a log that does not depend on the time of day; "
        f"default {Profile.activity_share:g})",
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
    produce.add_argument("--topic", help="target topic (only with --no-validate; no default)")
    produce.add_argument(
        "--dry-run",
        action="store_true",
        help="validate every line and report, without a broker; nothing is sent",
    )
    produce.add_argument("--quiet", action="store_true", help="no progress bar")
    add_arguments(produce, (*BROKER_ONLY, "max_event_bytes", "max_future"))
    produce.set_defaults(run=run_produce)

    topics = commands.add_parser(
        "topics",
        help="create the source and dead-letter topics (idempotent)",
        description="Create cart-events, tickets, survey-replies, activity and their .dlq topics "
        "with the configured partition count; existing topics are checked, not changed.",
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
            "--out",
            type=arguments.out_file,
            default=None,
            metavar="FILE",
            help="file to write, or - for standard output (default: standard output; with "
            f"--check, {default_out})",
        )
        command.add_argument(
            "--check",
            action="store_true",
            help="write nothing; exit 1 if the file (--out, default the committed one) is "
            "missing or differs from what would be generated",
        )
        if name == "rules":
            command.add_argument(
                "--format",
                choices=tuple(RULE_FORMATS),
                default="prometheus",
                help="prometheus: a rule file; prometheus-rule: the same groups as a Prometheus "
                f"Operator PrometheusRule ({RULE_FORMATS['prometheus-rule']})",
            )
        add_arguments(command, ("config",))
        command.set_defaults(run=run_generated, committed=default_out)
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
    from stream.app import KpiApp
    from stream.config.secret import customer_secret
    from stream.config.webconfig import load_web_config
    from stream.kpis.catalog import CATALOG
    from stream.publish.auth import web_security
    from stream.runtime import heap
    from stream.runtime.logs import setup_logging
    from stream.runtime.process import KpiWorker, quiet_cancelled_threads, wait_for_broker

    settings = Settings.load(flags_from(args))
    # personal ids are keyed for the customer KPIs and the activity topic's users alike
    keyed = ["customers", *(k.name for k in CATALOG if k.topic == "activity")]
    secret = customer_secret(settings) if any(map(settings.enabled, keyed)) else None
    web_config = load_web_config(settings.web_config) if settings.web_config else None
    web = web_security(settings, web_config)
    setup_logging(settings.log_level, settings.log_format)
    quiet_cancelled_threads()
    log = logging.getLogger(__name__)
    log.info("settings: %s", settings.describe())
    extra = settings.state_windows_ms[len(settings.windows) :]
    if extra:  # stream/config/change.py: kept beside windows.sizes, for the change alerts
        shown = ", ".join(window_label(k) for k in extra)
        log.info("change alerts of %d KPIs: also keeping windows %s", len(settings.changes), shown)
    if web_config is not None:
        log.info("%s", web_config.describe())
        if web_config.tls is None:
            log.warning("basic auth without TLS: passwords cross the network in clear text")
    ssl_context, middlewares = (web.ssl_context, web.middlewares) if web else (None, ())
    broker = wait_for_broker(settings, args.exit_if_no_broker_after, ssl_context, middlewares)
    if not asyncio.run(broker):
        return 0  # stopped by a signal before the broker answered
    kpi_app = KpiApp(settings, secret, web)
    heap.freeze_survivors()
    heap.collect_young_less_often()
    worker = KpiWorker(
        kpi_app.app,
        final_flush=kpi_app.final_flush,
        log_level=settings.log_level,
        plain=settings.log_format == "json" or not sys.stdout.isatty(),
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
    if args.no_validate and args.dry_run:
        raise ConfigError("--dry-run validates; it does not go with --no-validate")
    settings = Settings.load(flags_from(args))
    source, total = _input(args.file)  # before the broker: a missing file is the first mistake
    if not args.dry_run:
        asyncio.run(ensure_topics(settings))
    label = "checking" if args.dry_run else "producing"
    with source, progress_bar(label, total, unit="B", disable=args.quiet) as advance:
        outcome = asyncio.run(
            produce_lines(
                source,
                kafka=None if args.dry_run else client_options(settings),
                validate=not args.no_validate,
                topic=args.topic,
                max_bytes=settings.max_event_bytes,
                max_future_s=settings.max_future,
                on_line=advance,
            )
        )
    for number, reason in outcome.invalid:
        print(f"line {number}: {reason}", file=sys.stderr)
    counts = ", ".join(f"{t}: {n}" for t, n in sorted(outcome.sent.items())) or "nothing"
    done = "dry run: nothing sent, valid" if args.dry_run else "sent"
    print(
        f"{done} {sum(outcome.sent.values())} events ({counts}); "
        f"{len(outcome.invalid)} invalid lines not sent"
    )
    return 1 if outcome.invalid else 0


def _input(name: str) -> tuple[IO[bytes], int | None]:
    """The lines to produce and their size in bytes (None when unknown): standard input for
    '-', else any readable file (a regular file, a pipe, /dev/null), but not a folder."""
    if name == "-":
        return sys.stdin.buffer, None
    path = Path(name)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give a JSON Lines file")
    try:
        source = path.open("rb")
    except FileNotFoundError:
        raise ConfigError(f"no such file: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return source, path.stat().st_size if path.is_file() else None


def run_generate(args: argparse.Namespace) -> int:
    from stream.runtime.connection import client_options
    from stream.tools.produce import send_live
    from stream.tools.progress import progress_bar

    if args.out is None and args.count is None and args.duration is None:
        count = None  # to Kafka until interrupted
    else:
        count = args.count if args.count is not None else int((args.duration or 60) * args.rate)
    median = args.resolution_median
    profile = Profile() if median is None else Profile.with_resolution_median(median)
    profile = replace(profile, shift=args.shift, activity_share=args.activity_share)
    start, duration_s = args.start or datetime.now(UTC), None if count is not None else 10**9
    events = generate(args.seed, start, args.rate, count, duration_s, profile)
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
    from stream.tools.generated import run

    return run(args)


def run_soak(args: argparse.Namespace) -> int:
    from stream.tools.soak.run import run

    return run(args)


def run_dev(args: argparse.Namespace) -> int:
    from stream.tools.demo import run_demo

    return run_demo(args, flags_from(args))
