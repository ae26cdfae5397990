"""Figures, targets, the printed table and the JSON file.

Targets are reported, not enforced: a missed target is a finding of the benchmark, not a failure
of it, so the exit code stays 0.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

MB = 1024 * 1024


@dataclass(frozen=True)
class Target:
    """A figure the issue sets a bound on."""

    figure: str
    text: str
    ok: Callable[[float], bool]


TARGETS: tuple[Target, ...] = (
    Target("full_vs_floor", "≥ 0.8", lambda v: v >= 0.8),
    Target("redis_on_vs_off", "≥ 0.95", lambda v: v >= 0.95),
    Target("redis_on_vs_off_scraped_1s", "≥ 0.95", lambda v: v >= 0.95),
    Target("customers_on_vs_off", "≥ 0.85", lambda v: v >= 0.85),
    Target("text_on_vs_off", "≥ 0.9", lambda v: v >= 0.9),
    Target("many_vs_short_windows", "≥ 0.9", lambda v: v >= 0.9),
    Target("long_vs_short_windows", "≥ 0.9", lambda v: v >= 0.9),
    Target("long_vs_short_peak_rss", "≤ 1.3", lambda v: v <= 1.3),
    Target("latency_p99_ms", "≤ 1000 ms", lambda v: v <= 1000),
    Target("latency_redis_p99_ms", "≤ 2000 ms", lambda v: v <= 2000),
    Target("fleet_2_vs_1", "≥ 1.6 (cores allowing)", lambda v: v >= 1.6),
    Target("fleet_4_age_p99_ms", "≤ 2000 ms", lambda v: v <= 2000),
    Target("fleet_2_kill_age_max_ms", "≤ 5000 ms", lambda v: v <= 5000),
    Target("rss_bytes_per_open_cart", "≤ 1024 B", lambda v: v <= 1024),
    Target("memory_peak_rss_mb", "≤ 300 MB", lambda v: v <= 300),
    Target("heap_bytes_per_remembered_ticket", "≤ 200 B", lambda v: v <= 200),
    Target("heap_bytes_per_remembered_cart", "≤ 200 B", lambda v: v <= 200),
    Target("bytes_per_active_user", "≤ 400 B", lambda v: v <= 400),
    Target("activity_vs_cart_worker", "≥ 0.9", lambda v: v >= 0.9),
    Target("active_users_worker_peak_rss_mb", "≤ 1024 MB", lambda v: v <= 1024),
)

#: Figures whose expected value is zero (the others are positive in any run).
MAY_BE_ZERO = frozenset(f"fleet_{n}_watch_retries" for n in (1, 2, 4))

#: (figure, label, unit) in the order of the table.
ROWS: tuple[tuple[str, str, str], ...] = (
    ("raw_events_per_s", "raw aiokafka consume loop", "events/s"),
    ("floor_events_per_s", "floor: bare Faust, an agent per topic", "events/s"),
    ("raised_floor_events_per_s", "raised floor: with the worker's fetching", "events/s"),
    ("full_events_per_s", "production worker (5 windows, Redis)", "events/s"),
    ("full_redis_off_events_per_s", "full worker, Redis off", "events/s"),
    ("full_no_customers_events_per_s", "full worker, customer KPIs off", "events/s"),
    ("full_no_text_events_per_s", "full worker, the log without text", "events/s"),
    ("full_short_events_per_s", "full worker, 3 short windows", "events/s"),
    ("full_many_events_per_s", "full worker, 12 short windows", "events/s"),
    ("scraped_1s_events_per_s", "full worker, /metrics every 1 s", "events/s"),
    ("scraped_1s_redis_off_events_per_s", "full, /metrics every 1 s, Redis off", "events/s"),
    ("full_vs_floor", "production ÷ floor", "x"),
    ("full_vs_raised_floor", "production ÷ raised floor", "x"),
    ("full_vs_raw", "production ÷ raw", "x"),
    ("redis_on_vs_off", "Redis on ÷ Redis off", "x"),
    ("redis_on_vs_off_scraped_1s", "Redis on ÷ off, /metrics every 1 s", "x"),
    ("customers_on_vs_off", "customer KPIs on ÷ off", "x"),
    ("text_on_vs_off", "with texts scored ÷ without text", "x"),
    ("long_vs_short_windows", "5 windows (7d, 30d) ÷ 3 windows", "x"),
    ("many_vs_short_windows", "12 windows ÷ 3 windows", "x"),
    ("full_peak_rss_mb", "peak RSS, production worker over the log", "MB"),
    ("latency_offered_events_per_s", "latency: offered load", "events/s"),
    ("latency_processed_events_per_s", "latency: processed meanwhile", "events/s"),
    ("latency_p50_ms", "latency p50, event → /metrics", "ms"),
    ("latency_p99_ms", "latency p99, event → /metrics", "ms"),
    ("latency_upper_p99_ms", "latency p99, first scrape showing it", "ms"),
    ("latency_redis_p50_ms", "latency p50, event → Redis snapshot", "ms"),
    ("latency_redis_p99_ms", "latency p99, event → Redis snapshot", "ms"),
    ("repartition_delay_p99_ms", "repartition delay p99", "ms"),
    ("publish_cpu_ms", "Redis: CPU per publish (log's state)", "ms"),
    ("publish_cpu_max_ms", "Redis: CPU of the costliest publish", "ms"),
    ("publish_series", "Redis: window series in the state", "series"),
    ("fleet_1_events_per_s", "fleet of 1 on 8 partitions", "events/s"),
    ("fleet_2_events_per_s", "fleet of 2", "events/s"),
    ("fleet_4_events_per_s", "fleet of 4", "events/s"),
    ("fleet_2_vs_1", "fleet: 2 workers ÷ 1", "x"),
    ("fleet_4_vs_1", "fleet: 4 workers ÷ 1", "x"),
    ("fleet_1_age_p99_ms", "fleet of 1: snapshot age p99", "ms"),
    ("fleet_2_age_p99_ms", "fleet of 2: snapshot age p99", "ms"),
    ("fleet_4_age_p50_ms", "fleet of 4: snapshot age p50", "ms"),
    ("fleet_4_age_p99_ms", "fleet of 4: snapshot age p99", "ms"),
    ("fleet_1_watch_retries", "fleet of 1: WATCH retries", "retries"),
    ("fleet_2_watch_retries", "fleet of 2: WATCH retries", "retries"),
    ("fleet_4_watch_retries", "fleet of 4: WATCH retries", "retries"),
    ("fleet_2_kill_age_max_ms", "fleet of 2, writer killed: max age", "ms"),
    ("fleet_2_kill_takeover_ms", "fleet of 2, writer killed: takeover", "ms"),
    ("fleet_2_kill_valid_at_age_max_ms", "writer killed: max age of valid_at", "ms"),
    ("memory_peak_rss_mb", "peak RSS with the open carts", "MB"),
    ("memory_peak_rss_with_tickets_mb", "peak RSS with open carts and tickets", "MB"),
    ("rss_bytes_per_open_cart", "RSS growth per open cart", "B"),
    ("heap_bytes_per_open_cart", "state heap per open cart (tracemalloc)", "B"),
    ("changelog_bytes_per_open_cart", "changelog record per open cart", "B"),
    ("rss_bytes_per_open_ticket", "RSS growth per open ticket", "B"),
    ("heap_bytes_per_open_ticket", "state heap per open ticket (tracemalloc)", "B"),
    ("changelog_bytes_per_open_ticket", "changelog record per open ticket", "B"),
    ("heap_bytes_per_idle_open_ticket", "state heap per open ticket idle 8 days", "B"),
    ("heap_bytes_per_customer", "state heap per customer (tracemalloc)", "B"),
    ("heap_bytes_per_remembered_ticket", "heap per remembered solved ticket", "B"),
    ("kept_heap_bytes_per_remembered_ticket", "memories as kept, per remembered ticket", "B"),
    ("remembered_tickets", "38-day log: solved tickets remembered", "tickets"),
    ("heap_bytes_per_remembered_cart", "heap per remembered cart's customer", "B"),
    ("kept_heap_bytes_per_remembered_cart", "memories as kept, per remembered cart", "B"),
    ("remembered_carts", "38-day log: carts' customers remembered", "carts"),
    ("bytes_per_active_user", "35-day activity: state per active user", "B"),
    ("bytes_per_active_user_most", "the same, the most of the log's ends", "B"),
    ("bytes_per_held_user", "35-day activity: per user held as facts", "B"),
    ("bytes_per_remembered_user", "35-day activity: per remembered user", "B"),
    ("active_users_measured", "35-day activity: users active in 30 d", "users"),
    ("activity_vs_cart_state_speed", "state: activity ÷ cart events per CPU s", "x"),
    ("activity_vs_cart_worker", "worker: activity ÷ cart log, events/s", "x"),
    ("activity_worker_events_per_s", "worker on an activity-only log", "events/s"),
    ("cart_worker_events_per_s", "worker on a cart-only log", "events/s"),
    ("activity_worker_us_per_event", "worker CPU per activity event", "µs"),
    ("cart_worker_us_per_event", "worker CPU per cart event", "µs"),
    ("active_users_state_peak_rss_mb", "users active in 30 d: state's peak RSS", "MB"),
    ("active_users_worker_peak_rss_mb", "the same + an empty worker (upper bound)", "MB"),
    ("long_days_peak_rss_short_mb", "35-day log: peak RSS, 3 windows", "MB"),
    ("long_days_peak_rss_long_mb", "35-day log: peak RSS, 5 windows", "MB"),
    ("long_vs_short_peak_rss", "35-day log: peak RSS 5 ÷ 3 windows", "x"),
)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        first = meminfo.read_text().splitlines()[0].split()
        memory = int(first[1]) * 1024
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "memory_bytes": memory,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_average_at_end": list(os.getloadavg()),
    }


def verdicts(figures: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Each target with its figure and PASS/FAIL (absent when its phase was skipped)."""
    out: dict[str, dict[str, Any]] = {}
    for target in TARGETS:
        if target.figure in figures:
            value = figures[target.figure]
            out[target.figure] = {
                "target": target.text,
                "value": value,
                "status": "PASS" if target.ok(value) else "FAIL",
            }
    return out


def _spread(values: list[float] | None, unit: str) -> str:
    if not values or len(values) < 2:
        return ""
    return f"{_value(min(values), unit)} to {_value(max(values), unit)}"


def _value(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}" if value >= 0.1 else f"{value:.4f}"
    if unit == "MB":
        return f"{value:,.1f}"
    return f"{value:,.0f}"


def table(results: dict[str, Any]) -> Table:
    """The short table: median of the repeats, their range, the target and its verdict."""
    figures: dict[str, float] = results["figures"]
    repeats: dict[str, list[float]] = results.get("repeat_figures", {})
    checks = results["targets"]
    config = results["config"]
    out = Table(
        title=f"cxkpi benchmark: {config['events']:,} events "
        f"({config['mix_text']}), median of {config['repeat']}",
        title_justify="left",
    )
    out.add_column("measurement")
    out.add_column("median", justify="right")
    out.add_column("unit")
    out.add_column("range of repeats", justify="right")
    out.add_column("target")
    out.add_column("")
    for figure, label, unit in ROWS:
        if figure not in figures:
            continue
        check = checks.get(figure)
        status = ""
        if check:
            colour = "green" if check["status"] == "PASS" else "red"
            status = f"[{colour}]{check['status']}[/{colour}]"
        out.add_row(
            label,
            _value(figures[figure], unit),
            unit,
            _spread(repeats.get(figure), unit),
            check["target"] if check else "",
            status,
        )
    return out


def print_table(results: dict[str, Any]) -> None:
    console = Console(width=120)
    console.print(table(results))
    if results.get("fleet"):
        cores = results["machine"]["nproc"]
        console.print(
            f"The fleet's workers, the broker and Redis share this machine's {cores} cores: "
            "scaling with the number of workers is bounded by that."
        )


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
