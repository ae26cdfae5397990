"""The options of `cxkpi soak` and the worker settings it uses unless told otherwise."""

from __future__ import annotations

import argparse
from pathlib import Path

from stream.config import parse_duration
from stream.config.settings import add_arguments as add_setting_arguments
from stream.tools.arguments import duration, out_file, rate

#: Worker settings of the soak: small, so the largest window fills and old state goes quickly.
WORKER_DEFAULTS = {
    "windows": "1m,5m",
    "step": "10s",
    "grace": "30s",
    "inactivity_timeout": "2m",
    "ticket_retention": "auto",
    "cart_retention": "3m",
}
#: Generated tickets are solved after about this long (the usual 4 h would outlive any soak).
RESOLUTION_MEDIAN = "1m"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `cxkpi soak`; every one says what it does and its default."""
    load = parser.add_argument_group("load and measurement")
    load.add_argument(
        "--rate", type=rate, default=200.0, help="generated events per second (default 200)"
    )
    load.add_argument(
        "--duration",
        type=duration,
        default=3600.0,
        metavar="DURATION",
        help="how long the load runs, e.g. 3m or 1h (default 1h); start-up and the final "
        "drain come on top",
    )
    load.add_argument(
        "--warmup",
        type=duration,
        default=None,
        metavar="DURATION",
        help="growth is measured from this point of the load on (default: the largest window + "
        "the longer of --cart-retention and --ticket-retention + --grace: by then the "
        "largest window is full and the first carts and tickets have been forgotten)",
    )
    load.add_argument(
        "--sample-every",
        type=duration,
        default=10.0,
        metavar="DURATION",
        help="how often RSS and progress are sampled and printed (default 10s)",
    )
    load.add_argument(
        "--max-growth",
        type=_percent,
        default=10.0,
        metavar="PERCENT",
        help="fail when RSS at the end exceeds RSS at the warm-up by more than this many "
        "percent (default 10)",
    )
    load.add_argument(
        "--drain-timeout",
        type=duration,
        default=120.0,
        metavar="DURATION",
        help="after the load, how long to wait for the worker to process every sent event "
        "(default 2m)",
    )
    load.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    load.add_argument(
        "--resolution-median",
        type=duration,
        default=parse_duration(RESOLUTION_MEDIAN),
        metavar="DURATION",
        help=f"median resolution time of the generated tickets (default {RESOLUTION_MEDIAN}, "
        "so that tickets end within the run)",
    )
    load.add_argument(
        "--report",
        type=out_file,
        metavar="FILE.json",
        help="write every sample and the summary here (default: none)",
    )
    load.add_argument(
        "--logs",
        type=Path,
        metavar="DIR",
        help="keep the worker's and the servers' logs here (default: a temporary directory, "
        "removed after a passing run)",
    )

    servers = parser.add_argument_group("servers")
    servers.add_argument(
        "--broker",
        metavar="URL",
        help="Kafka bootstrap URL(s) of a broker used by this soak alone (default: start the "
        "embedded Tansu broker on a free port)",
    )
    servers.add_argument(
        "--redis-url",
        dest="redis_url",
        metavar="URL",
        help="Redis for the snapshot, or 'none' (default: start redis-server on a free port, or "
        "run without it when it is not installed)",
    )
    servers.add_argument(
        "--profile",
        choices=("production", "dev"),
        help="the worker's profile (default: dev with the embedded broker, else "
        "CXKPI_PROFILE or production; use dev for any Tansu broker)",
    )
    servers.add_argument(
        "--app-id",
        dest="app_id",
        default="cxkpi-soak",
        metavar="NAME",
        help="consumer group and key prefix of the soak's worker (default cxkpi-soak, apart "
        "from production's)",
    )

    worker = parser.add_argument_group("worker settings (short, so the largest window fills soon)")
    for name, help_text in (
        ("windows", "window sizes, comma-separated"),
        ("step", "bucket size"),
        ("grace", "how late an event may be and still count"),
        ("inactivity_timeout", "cart inactivity before abandonment"),
        ("ticket_retention", "a solved ticket is forgotten after this (auto: window + grace)"),
        ("cart_retention", "a cart's customer is forgotten this long after its last event"),
    ):
        worker.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=WORKER_DEFAULTS[name],
            metavar="VALUE",
            help=f"{help_text} (default {WORKER_DEFAULTS[name]})",
        )
    # The soak's short windows are not the alert windows of cxkpi.toml: the built-in KPI
    # configuration (every KPI on, without change alerts: run.py) is its default.
    add_setting_arguments(
        parser, ("config", "partitions", "log_level"), defaults={"config": "none"}
    )
    parser.set_defaults(config="none")


def _percent(text: str) -> float:
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise argparse.ArgumentTypeError("a percentage such as 10 or 12.5%") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a percentage of 0 or more")
    return value
